package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is a minimal OTLP/HTTP receiver: it decodes the protobuf export
// requests pingmcp sends it.
type collector struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	attrs map[string]string // of the resource
}

func newCollector(t *testing.T) *collector {
	c := &collector{attrs: map[string]string{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.GetAttributes() {
				c.attrs[a.Key] = a.Value.GetStringValue()
			}
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

// await returns the spans of a trace once it has one of each name.
func (c *collector) await(t *testing.T, ctx context.Context, traceID string, names ...string) map[string][]*tracepb.Span {
	t.Helper()
	for {
		byName := map[string][]*tracepb.Span{}
		c.mu.Lock()
		for _, s := range c.spans {
			if hex.EncodeToString(s.TraceId) == traceID {
				byName[s.Name] = append(byName[s.Name], s)
			}
		}
		c.mu.Unlock()
		missing := ""
		for _, n := range names {
			if len(byName[n]) == 0 {
				missing = n
			}
		}
		if missing == "" {
			return byName
		}
		select {
		case <-ctx.Done():
			t.Fatalf("trace %s has no span %q (has %d names)", traceID, missing, len(byName))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// traceTransport adds a bearer token and a traceparent to every request.
type traceTransport struct{ token, traceparent string }

func (tt traceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tt.token)
	r.Header.Set("Traceparent", tt.traceparent)
	return http.DefaultTransport.RoundTrip(r)
}

// TestTracingAndAudit runs `pingmcp dev` exporting to an OTLP/HTTP receiver
// and writing an audit file with arguments: a tool call made with a
// traceparent yields one trace from the edge to the Todo API's own span,
// and one audit record naming who, where, on whose behalf, with what
// outcome; no span and no record holds a token.
func TestTracingAndAudit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	col := newCollector(t)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // export every 100 ms: the process is killed, not drained
	d := runDev(t, "--otlp-endpoint", col.URL, "--audit-log", auditPath, "--audit-tool-args")
	token := login(t, ctx, d.Issuer, d.MCP, "alice", "openid todo_api:read todo_api:write")

	const traceID, parentID = "5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.MCP, DisableStandaloneSSE: true,
		HTTPClient: &http.Client{Transport: traceTransport{token, "00-" + traceID + "-" + parentID + "-01"}}},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if text, isErr := call(t, ctx, cs, "create_new_todo", map[string]any{"text": "traced-e2e-argument"}); isErr {
		t.Fatalf("create_new_todo: %s", text)
	}

	byName := col.await(t, ctx, traceID, "mcp tools/call", "actor tools/call", "tools/call create_new_todo",
		"token exchange", "oauth POST", "todo-api POST")
	only := func(name string, kind tracepb.Span_SpanKind) *tracepb.Span {
		var found []*tracepb.Span
		for _, s := range byName[name] {
			if s.Kind == kind {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d spans %q of kind %v", len(found), name, kind)
		}
		return found[0]
	}
	parentOf := func(child, parent *tracepb.Span) {
		t.Helper()
		if hex.EncodeToString(child.ParentSpanId) != hex.EncodeToString(parent.SpanId) {
			t.Errorf("span %q is not a child of %q", child.Name, parent.Name)
		}
	}
	edge := only("mcp tools/call", tracepb.Span_SPAN_KIND_SERVER)
	if hex.EncodeToString(edge.ParentSpanId) != parentID {
		t.Errorf("edge span's parent %x, want the client's %s", edge.ParentSpanId, parentID)
	}
	actor := only("actor tools/call", tracepb.Span_SPAN_KIND_SERVER)
	parentOf(actor, edge)
	tool := only("tools/call create_new_todo", tracepb.Span_SPAN_KIND_INTERNAL)
	parentOf(tool, actor)
	parentOf(only("token exchange", tracepb.Span_SPAN_KIND_INTERNAL), tool)
	apiClient := only("todo-api POST", tracepb.Span_SPAN_KIND_CLIENT)
	parentOf(apiClient, tool)
	parentOf(only("todo-api POST", tracepb.Span_SPAN_KIND_SERVER), apiClient)
	col.mu.Lock()
	if col.attrs["service.name"] != "pingmcp" || col.attrs["pingmcp.node"] == "" {
		t.Errorf("resource %v", col.attrs)
	}
	for _, s := range col.spans {
		if dump := fmt.Sprint(s); strings.Contains(dump, token) {
			t.Errorf("span %q holds the user's token", s.Name)
		}
	}
	col.mu.Unlock()

	// The audit record, written when the call ended.
	rec := auditRecords(t, ctx, auditPath, "create_new_todo")["create_new_todo"]
	if b, _ := os.ReadFile(auditPath); strings.Contains(string(b), token) {
		t.Fatal("the audit log holds the user's token")
	}
	p, _ := rec["principal"].(map[string]any)
	ds, _ := rec["delegations"].([]any)
	args, _ := rec["arguments"].(map[string]any)
	if p["sub"] != "alice" || rec["outcome"] != "ok" || rec["trace_id"] != traceID || rec["session"] != cs.ID() ||
		len(ds) != 1 || args["text"] != "traced-e2e-argument" {
		t.Errorf("audit record %v", rec)
	}
	if dl, _ := ds[0].(map[string]any); dl["audience"] != d.TodoAPI || dl["jti"] == nil {
		t.Errorf("audit delegation %v (Todo API %s)", ds[0], d.TodoAPI)
	}
}

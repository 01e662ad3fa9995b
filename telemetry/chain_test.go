package telemetry_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/devidp"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/todo"
	"github.com/pingmcp/pingmcp/transport"
)

// chain is the whole request path in this process: the edge, a one-node
// cluster with real session and principal actors running the todo tools,
// the development authorization server (token exchange) and the Todo API,
// every span going to an in-memory exporter.
type chain struct {
	spans    *tracetest.InMemoryExporter // the package's (recorded)
	from     int                         // how many spans it had before this chain
	mcp      string                      // the edge's /mcp URL
	todoURL  string
	token    string // alice's access token for /mcp
	sessionA *logtest.Buffer
	statelsA *logtest.Buffer

	mu          sync.Mutex
	downstream  []string // bearer tokens the Todo API received
	traceparent []string // and the traceparent of each request
}

const mcpURI = "http://127.0.0.1:8080/mcp"

// recorded is the tracer provider of every chain, and what it recorded: one
// for the package, since the tracers other packages keep (the OAuth
// client's, an HTTP transport's) stay bound to the provider current when
// they were made, so that a provider of each test's own would miss their
// spans after the first. Tests tell theirs apart by trace id.
var recorded = sync.OnceValues(func() (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	spans := tracetest.NewInMemoryExporter()
	return sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)), spans
})

func newChain(t *testing.T) *chain {
	tp, spans := recorded()
	c := &chain{spans: spans, from: len(spans.GetSpans()), sessionA: &logtest.Buffer{}, statelsA: &logtest.Buffer{}}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	discard := slog.New(slog.DiscardHandler)

	idpSrv := httptest.NewUnstartedServer(nil)
	todoSrv := httptest.NewUnstartedServer(nil)
	c.todoURL = "http://" + todoSrv.Listener.Addr().String()
	scopes := []string{todoapi.ScopeRead, todoapi.ScopeWrite}
	idp, err := devidp.New(&devidp.Options{
		Issuer:    "http://" + idpSrv.Listener.Addr().String(),
		Clients:   []devidp.Client{{ID: "pingmcp", Secret: "s3cret"}},
		Resources: []devidp.Resource{{URI: mcpURI, Scopes: scopes}, {URI: c.todoURL, Scopes: scopes}},
		Logger:    discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv.Config.Handler = idp
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	api, err := todoapi.New(todoapi.Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: idp.Issuer(), Audiences: []string{c.todoURL}}),
		Logger:   discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	todoSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.downstream = append(c.downstream, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		c.traceparent = append(c.traceparent, r.Header.Get("Traceparent"))
		c.mu.Unlock()
		api.ServeHTTP(w, r)
	})
	todoSrv.Start()
	t.Cleanup(todoSrv.Close)

	if c.token, err = idp.AccessToken("alice", "claude", mcpURI, scopes...); err != nil {
		t.Fatal(err)
	}

	cfg := actors.Config{
		Implementation: &mcp.Implementation{Name: "pingmcp-test", Version: "0"},
		Toolsets:       []tools.Toolset{todo.New(todo.Options{APIURL: c.todoURL})},
		IdleTimeout:    time.Minute,
		SchemaCache:    mcp.NewSchemaCache(),
		Logger:         discard,
		Authenticated:  true,
		Exchanger:      auth.NewExchanger(auth.ExchangeOptions{Issuer: idp.Issuer(), ClientID: "pingmcp", ClientSecret: "s3cret"}),
		// Sessions record no arguments; stateless calls do.
		Audit: audit.New(c.sessionA, false),
	}
	stateless := cfg
	stateless.Audit = audit.New(c.statelsA, true)
	node, err := cluster.Start(cluster.Config{
		Addr: "127.0.0.1:0", Provider: cluster.ProviderSingle, Role: cluster.RoleBoth, Logger: discard,
		Kinds: []*protocluster.Kind{
			protocluster.NewKind(cluster.SessionKind, actors.SessionProps(cfg)),
			protocluster.NewKind(cluster.PrincipalKind, actors.PrincipalProps(stateless)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Stop(false) })
	edge := httptest.NewServer(transport.NewEdge(node, transport.Options{
		Loopback: true,
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: idp.Issuer(), Audiences: []string{mcpURI}}),
		Logger:   discard,
	}))
	t.Cleanup(edge.Close)
	c.mcp = edge.URL + "/mcp"
	return c
}

// post sends one JSON-RPC message and returns the status, the session id
// and the JSON-RPC response (from a JSON or an SSE answer).
func (c *chain) post(t *testing.T, session string, header map[string]string, body string) (int, string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, c.mcp, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+c.token)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var msg map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				json.Unmarshal([]byte(d), &msg)
			}
		}
	} else if len(raw) > 0 {
		json.Unmarshal(raw, &msg)
	}
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), msg
}

func (c *chain) initialize(t *testing.T) string {
	t.Helper()
	status, sid, _ := c.post(t, "", nil, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, session %q", status, sid)
	}
	if status, _, _ := c.post(t, sid, nil, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	return sid
}

// callTool calls a tool and fails the test unless it succeeded.
func (c *chain) callTool(t *testing.T, session string, header map[string]string, id int, tool, args, meta string) {
	t.Helper()
	params := fmt.Sprintf(`{"name":%q,"arguments":%s`, tool, args)
	if meta != "" {
		params += `,"_meta":` + meta
	}
	status, _, msg := c.post(t, session, header, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}}`, id, params))
	res, _ := msg["result"].(map[string]any)
	if status != http.StatusOK || res == nil || res["isError"] == true {
		t.Fatalf("%s: %d %v", tool, status, msg)
	}
}

// recorded are the spans recorded since c was made.
func (c *chain) recorded() tracetest.SpanStubs { return c.spans.GetSpans()[c.from:] }

// trace waits until the trace has a span of each name, and returns its
// spans.
func (c *chain) trace(t *testing.T, id trace.TraceID, names ...string) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out tracetest.SpanStubs
		have := map[string]bool{}
		for _, s := range c.recorded() {
			if s.SpanContext.TraceID() == id {
				out = append(out, s)
				have[s.Name] = true
			}
		}
		missing := ""
		for _, n := range names {
			if !have[n] {
				missing = n
			}
		}
		if missing == "" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s has no span %q; it has %v", id, missing, spanNames(out))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func spanNames(ss tracetest.SpanStubs) []string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s(%s<-%s)", s.Name, s.SpanContext.SpanID(), s.Parent.SpanID()))
	}
	return out
}

// one returns the only span of a name and kind in ss.
func one(t *testing.T, ss tracetest.SpanStubs, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range ss {
		if s.Name == name && s.SpanKind == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %q of kind %s; spans: %v", len(found), name, kind, spanNames(ss))
	}
	return found[0]
}

func childOf(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() {
		t.Errorf("span %q's parent is %s, want %q (%s)", child.Name, child.Parent.SpanID(), parent.Name, parent.SpanContext.SpanID())
	}
}

func descendantOf(t *testing.T, ss tracetest.SpanStubs, span, ancestor tracetest.SpanStub) {
	t.Helper()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range ss {
		byID[s.SpanContext.SpanID()] = s
	}
	for s, ok := span, true; ok; s, ok = byID[s.Parent.SpanID()] {
		if s.Parent.SpanID() == ancestor.SpanContext.SpanID() {
			return
		}
	}
	t.Errorf("span %q does not descend from %q: %v", span.Name, ancestor.Name, spanNames(ss))
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// TestTraceChain follows one tool call through the edge, the session
// actor, the token exchange and the Todo API, checks where each trace
// starts (traceparent header, params._meta, neither), and that no span and
// no audit record holds a token or (unless asked) a tool's arguments.
func TestTraceChain(t *testing.T) {
	c := newChain(t)
	sid := c.initialize(t)

	// 1. A traceparent header: every hop is in the client's trace, each
	// span the child of the one before.
	clientTrace, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	clientSpan, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	header := map[string]string{"traceparent": "00-" + clientTrace.String() + "-" + clientSpan.String() + "-01"}
	c.callTool(t, sid, header, 2, "get_my_todo_list", `{}`, "")
	ss := c.trace(t, clientTrace, "mcp tools/call", "actor tools/call", "tools/call get_my_todo_list", "token exchange", "oauth POST", "todo-api GET")
	edge := one(t, ss, "mcp tools/call", trace.SpanKindServer)
	if edge.Parent.SpanID() != clientSpan || !edge.Parent.IsRemote() {
		t.Errorf("edge span's parent %s, want the client's %s", edge.Parent.SpanID(), clientSpan)
	}
	if attr(edge, "mcp.session.id") != sid || attr(edge, "mcp.method.name") != "tools/call" || attr(edge, "http.response.status_code") != "200" {
		t.Errorf("edge span attributes: %v", edge.Attributes)
	}
	actor := one(t, ss, "actor tools/call", trace.SpanKindServer)
	childOf(t, actor, edge)
	if attr(actor, "mcp.session.id") != sid || attr(actor, "pingmcp.node") == "" {
		t.Errorf("actor span attributes: %v", actor.Attributes)
	}
	tool := one(t, ss, "tools/call get_my_todo_list", trace.SpanKindInternal)
	childOf(t, tool, actor)
	exchange := one(t, ss, "token exchange", trace.SpanKindInternal)
	childOf(t, exchange, tool)
	if attr(exchange, "pingmcp.exchange.audience") != c.todoURL || attr(exchange, "pingmcp.exchange.cached") != "false" ||
		attr(exchange, "pingmcp.exchange.outcome") != "ok" || attr(exchange, "pingmcp.exchange.jti") == "" {
		t.Errorf("exchange span attributes: %v", exchange.Attributes)
	}
	// zitadel's client adds spans of its own between the exchange and
	// its HTTP call.
	descendantOf(t, ss, one(t, ss, "oauth POST", trace.SpanKindClient), exchange)
	apiClient := one(t, ss, "todo-api GET", trace.SpanKindClient)
	childOf(t, apiClient, tool)
	apiServer := one(t, ss, "todo-api GET", trace.SpanKindServer)
	childOf(t, apiServer, apiClient)
	if attr(apiServer, "http.response.status_code") != "200" {
		t.Errorf("todo api span attributes: %v", apiServer.Attributes)
	}

	// 2. No header, the trace context in params._meta: the edge's span is
	// its child; the exchanged token now comes from the cache.
	metaTrace, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	metaSpan, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	meta := fmt.Sprintf(`{"traceparent":"00-%s-%s-01","tracestate":"vendor=x"}`, metaTrace, metaSpan)
	c.callTool(t, sid, nil, 3, "get_my_todo_list", `{}`, meta)
	ss = c.trace(t, metaTrace, "mcp tools/call", "actor tools/call", "token exchange", "todo-api GET")
	edge = one(t, ss, "mcp tools/call", trace.SpanKindServer)
	if edge.Parent.SpanID() != metaSpan {
		t.Errorf("edge span's parent %s, want _meta's %s", edge.Parent.SpanID(), metaSpan)
	}
	if got := edge.SpanContext.TraceState().Get("vendor"); got != "x" {
		t.Errorf("tracestate from _meta lost: %q", got)
	}
	if ex := one(t, ss, "token exchange", trace.SpanKindInternal); attr(ex, "pingmcp.exchange.cached") != "true" {
		t.Errorf("second exchange not from the cache: %v", ex.Attributes)
	}
	childOf(t, one(t, ss, "todo-api GET", trace.SpanKindServer), one(t, ss, "todo-api GET", trace.SpanKindClient))

	// 3. Neither: each request starts a trace of its own.
	before := len(c.recorded())
	c.callTool(t, sid, nil, 4, "create_new_todo", `{"text":"buy secret-argument-value"}`, "")
	c.callTool(t, sid, nil, 5, "get_my_todo_list", `{}`, "")
	roots := map[trace.TraceID]string{}
	deadline := time.Now().Add(5 * time.Second)
	for len(roots) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		for _, s := range c.recorded()[before:] {
			if s.Name == "mcp tools/call" {
				if s.Parent.IsValid() {
					t.Errorf("edge span without trace context has a parent: %s", s.Parent.SpanID())
				}
				roots[s.SpanContext.TraceID()] = s.Name
			}
		}
	}
	if len(roots) != 2 {
		t.Errorf("two calls without trace context made %d traces, want 2", len(roots))
	}
	for id := range roots {
		c.trace(t, id, "mcp tools/call", "actor tools/call")
	}

	// A stateless (2026-07-28) call, served by the principal actor, whose
	// audit log records arguments.
	status, _, msg := c.post(t, "", map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "create_new_todo"},
		`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"create_new_todo","arguments":{"text":"stateless-argument-value"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`)
	if res, _ := msg["result"].(map[string]any); status != http.StatusOK || res == nil || res["isError"] == true {
		t.Fatalf("stateless create_new_todo: %d %v", status, msg)
	}

	// No token anywhere: neither the user's nor an exchanged one.
	c.mu.Lock()
	secrets := append([]string{c.token}, c.downstream...)
	c.mu.Unlock()
	if len(secrets) < 2 {
		t.Fatal("the Todo API saw no token")
	}
	for _, s := range c.recorded() {
		dump := fmt.Sprintf("%s %v %v %v %v", s.Name, s.Attributes, s.Events, s.Status, s.Resource)
		for _, secret := range secrets {
			if secret != "" && strings.Contains(dump, secret) {
				t.Fatalf("span %q holds a token: %s", s.Name, dump)
			}
		}
		if strings.Contains(dump, "secret-argument-value") {
			t.Errorf("span %q holds a tool argument", s.Name)
		}
	}

	// The audit records of the session's calls.
	recs := auditRecords(t, c.sessionA, secrets)
	if len(recs) != 4 {
		t.Fatalf("%d audit records of the session, want 4: %v", len(recs), recs)
	}
	first := recs[0]
	want := map[string]any{"log": "audit", "event": "tool_call", "session": sid, "tool": "get_my_todo_list", "request_id": "2",
		"outcome": "ok", "trace_id": clientTrace.String()}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("audit record %s = %v, want %v", k, first[k], v)
		}
	}
	if p, _ := first["principal"].(map[string]any); p["sub"] != "alice" || p["client_id"] != "claude" || p["iss"] == "" {
		t.Errorf("audit principal: %v", first["principal"])
	}
	if n, _ := first["node"].(string); n == "" {
		t.Error("audit record names no node")
	}
	if d, _ := first["duration_ms"].(float64); d <= 0 {
		t.Errorf("audit duration %v", first["duration_ms"])
	}
	ds, _ := first["delegations"].([]any)
	if len(ds) != 1 {
		t.Fatalf("audit delegations: %v", first["delegations"])
	}
	d := ds[0].(map[string]any)
	if d["audience"] != c.todoURL || d["jti"] == "" || d["jti"] == nil || d["cached"] != false {
		t.Errorf("audit delegation: %v", d)
	}
	if act, _ := d["act"].([]any); len(act) == 0 || act[0] != "pingmcp" {
		t.Errorf("audit act chain: %v", d["act"])
	}
	if d2 := recs[1]["delegations"].([]any)[0].(map[string]any); d2["cached"] != true || d2["jti"] != d["jti"] {
		t.Errorf("second call's delegation: %v", d2)
	}
	for _, r := range recs {
		if _, ok := r["arguments"]; ok {
			t.Errorf("arguments recorded without --audit-tool-args: %v", r)
		}
	}
	if strings.Contains(c.sessionA.String(), "secret-argument-value") {
		t.Error("an argument is in the audit log without --audit-tool-args")
	}
	// The stateless call's, with arguments.
	recs = auditRecords(t, c.statelsA, secrets)
	if len(recs) != 1 {
		t.Fatalf("%d stateless audit records, want 1", len(recs))
	}
	if args, _ := recs[0]["arguments"].(map[string]any); args["text"] != "stateless-argument-value" || recs[0]["session"] != "" || recs[0]["request_id"] != "6" {
		t.Errorf("stateless audit record: %v", recs[0])
	}
}

// auditRecords parses the records of b, failing if one holds a secret.
func auditRecords(t *testing.T, b *logtest.Buffer, secrets []string) []map[string]any {
	t.Helper()
	text := b.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Fatalf("the audit log holds a token")
		}
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// With tracing off (the no-op provider, as telemetry.Setup installs it),
// where the edge, the actor and the tool call build no span
// (telemetry.Untraced), the client's trace context still reaches the
// downstream API and the audit record, from the traceparent header or from
// params._meta.
func TestTraceContextWithTracingOff(t *testing.T) {
	c := newChain(t)
	otel.SetTracerProvider(noop.NewTracerProvider())
	t.Cleanup(func() { tp, _ := recorded(); otel.SetTracerProvider(tp) })
	if telemetry.Tracing() {
		t.Fatal("Tracing() with the no-op provider")
	}
	sid := c.initialize(t)
	const header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	c.callTool(t, sid, map[string]string{"traceparent": header}, 2, "get_my_todo_list", `{}`, "")
	const meta = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	c.callTool(t, sid, nil, 3, "get_my_todo_list", `{}`, `{"traceparent":"`+meta+`"}`)
	c.mu.Lock()
	got := slices.Clone(c.traceparent)
	c.mu.Unlock()
	if !slices.Equal(got, []string{header, meta}) {
		t.Errorf("the Todo API's traceparents %q, want the client's %q then %q", got, header, meta)
	}
	for _, id := range []string{"4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"} {
		if !strings.Contains(c.sessionA.String(), `"trace_id":"`+id+`"`) {
			t.Errorf("no audit record of trace %s: %s", id, c.sessionA.String())
		}
	}
}

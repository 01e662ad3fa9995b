package transport

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/conformance"
)

// The edge is tested against a real single-node cluster with real session
// actors (one per process: protoactor cannot host two clusters in one).
var (
	testNode *cluster.Node
	records  = &recorder{}
	// live is the node's registry of live actors, which the admin API
	// reads: their open GET streams and requests in flight.
	live = actors.NewLocal()
)

// resourceHosts maps the address of a test edge that serves a resource
// (resourceEdge) to that resource's host, which every request to the edge
// names in its Host header, as a client pointed at the resource's URL does.
var resourceHosts sync.Map

type resourceHostTransport struct{ next http.RoundTripper }

func (rt resourceHostTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if h, ok := resourceHosts.Load(r.URL.Host); ok && (r.Host == "" || r.Host == r.URL.Host) {
		r = r.Clone(r.Context())
		r.Host = h.(string)
	}
	return rt.next.RoundTrip(r)
}

// resourceEdge serves an edge for resource (its challenges name its
// metadata, its tokens must be for it), reached by its Host.
func resourceEdge(t *testing.T, resource string, opts Options) *httptest.Server {
	t.Helper()
	u, err := url.Parse(resource)
	if err != nil {
		t.Fatal(err)
	}
	opts.Resources = NewResources([]string{resource})
	opts.AllowedHosts = append(opts.AllowedHosts, u.Hostname())
	srv := newEdge(t, opts)
	addr := strings.TrimPrefix(srv.URL, "http://")
	resourceHosts.Store(addr, u.Host)
	t.Cleanup(func() { resourceHosts.Delete(addr) })
	return srv
}

func TestMain(m *testing.M) {
	http.DefaultClient.Transport = resourceHostTransport{http.DefaultTransport}
	logger := slog.New(records)
	cfg := actors.Config{
		Implementation: &mcp.Implementation{Name: "pingmcp-test", Version: "0"},
		Toolsets:       []tools.Toolset{conformance.New(), panicky{}, closesThenWaits{}, answersLater{}},
		IdleTimeout:    time.Minute,
		SchemaCache:    mcp.NewSchemaCache(),
		Logger:         logger,
		Local:          live,
	}
	var err error
	testNode, err = cluster.Start(cluster.Config{
		Addr: "127.0.0.1:0", Provider: cluster.ProviderSingle, Role: cluster.RoleBoth, Logger: logger,
		Kinds: []*protocluster.Kind{
			protocluster.NewKind(cluster.SessionKind, actors.SessionProps(cfg)),
			protocluster.NewKind(cluster.PrincipalKind, actors.PrincipalProps(cfg)),
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testNode.Stop(false)
	os.Exit(code)
}

// newEdge serves an edge on a loopback httptest server.
func newEdge(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	_, srv := newEdgeOf(t, opts)
	return srv
}

// newEdgeOf is newEdge, with the Edge it serves.
func newEdgeOf(t *testing.T, opts Options) (*Edge, *httptest.Server) {
	t.Helper()
	opts.Loopback = true
	opts.Logger = slog.New(records)
	e := NewEdge(testNode, opts)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv
}

type call struct {
	method  string
	headers map[string]string
	body    string
}

func (c call) do(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(c.method, url, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range c.headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// initialize opens a session and returns its id.
func initialize(t *testing.T, url string) string {
	t.Helper()
	resp, body := call{method: http.MethodPost, body: initBody}.do(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	id := resp.Header.Get("Mcp-Session-Id")
	resp, body = call{method: http.MethodPost, body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		headers: map[string]string{"Mcp-Session-Id": id, "Mcp-Protocol-Version": "2025-11-25"}}.do(t, url)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", resp.StatusCode, body)
	}
	return id
}

func TestEdgeRefusals(t *testing.T) {
	srv := newEdge(t, Options{AllowedOrigins: []string{"https://app.example"}, MaxBodyBytes: 1024})
	sid := initialize(t, srv.URL)
	session := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name    string
		call    call
		status  int
		errText string
	}{
		{"bad origin POST", call{http.MethodPost, with(session, "Origin", "https://evil.example"), `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, 403, "Origin"},
		{"bad origin GET", call{http.MethodGet, with(session, "Origin", "https://evil.example"), ""}, 403, "Origin"},
		{"bad origin DELETE", call{http.MethodDelete, with(session, "Origin", "https://evil.example"), ""}, 403, "Origin"},
		{"bad origin OPTIONS", call{http.MethodOptions, map[string]string{"Origin": "https://evil.example"}, ""}, 403, "Origin"},
		{"rebinding Host", call{http.MethodPost, with(session, "Host", "evil.example:8080"), `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, 403, "Host"},
		{"body too large", call{http.MethodPost, session, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", 2000) + `"}}`}, 413, "exceeds"},
		{"PUT", call{http.MethodPut, session, "{}"}, 405, "not allowed"},
		{"no session POST", call{http.MethodPost, nil, `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`}, 400, "Mcp-Session-Id"},
		{"no session GET", call{http.MethodGet, nil, ""}, 400, "Mcp-Session-Id"},
		{"no session DELETE", call{http.MethodDelete, nil, ""}, 400, "Mcp-Session-Id"},
		{"unknown session", call{http.MethodPost, with(session, "Mcp-Session-Id", "AAAAAAAAAAAAAAAAAAAAAA"), `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, 404, `"code":-32001`},
		{"batch on 2025-11-25", call{http.MethodPost, session, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`}, 400, `"id":null,"error":{"code":-32600,"message":"JSON-RPC batches are not part of MCP from 2025-06-18 on`},
		{"batch on 2026-07-28", call{http.MethodPost, with(session, "Mcp-Protocol-Version", "2026-07-28"), `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`}, 400, `"code":-32600,"message":"JSON-RPC batches are not part of MCP`},
		{"batch with an id twice", call{http.MethodPost, with(session, "Mcp-Protocol-Version", "2025-03-26"), `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`}, 400, `"code":-32600,"message":"the requests of a batch need distinct ids`},
		{"null id", call{http.MethodPost, session, `{"jsonrpc":"2.0","id":null,"method":"ping"}`}, 400, `"code":-32600,"message":"an MCP request's id must be a string or an integer, not null"`},
		{"malformed session", call{http.MethodPost, with(session, "Mcp-Session-Id", "../../etc/passwd"), `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, 404, "session not found"},
		{"garbage body", call{http.MethodPost, nil, `{not json`}, 400, "not JSON"},
		{"header not UTF-8", call{http.MethodPost, with(session, "X-Note", "caf\xe9"), `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, 400, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tt.call.do(t, srv.URL)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(body, tt.errText) {
				t.Errorf("body %q does not mention %q", body, tt.errText)
			}
			if tt.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	// None of that harmed the session.
	resp, body := call{http.MethodPost, session, `{"jsonrpc":"2.0","id":2,"method":"ping"}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id":2`) {
		t.Fatalf("session after refusals: %d %s", resp.StatusCode, body)
	}
}

func TestEdgeErrorsAreJSONRPC(t *testing.T) {
	srv := newEdge(t, Options{})
	resp, body := call{http.MethodPost, nil, `{"jsonrpc":"2.0","id":"abc","method":"tools/list"}`}.do(t, srv.URL)
	var msg struct {
		JSONRPC string
		ID      any
		Error   struct{ Code int }
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("not a JSON-RPC error: %v %q", err, body)
	}
	if msg.JSONRPC != "2.0" || msg.ID != "abc" || msg.Error.Code != -32600 {
		t.Errorf("got %+v", msg)
	}
}

// A session id the edge refuses unread (malformed) and one no actor serves
// (unknown) answer alike: 404 with rpcerr.SessionNotFound, so that a client
// tells "start a new session" from a refused request by the code alone.
func TestEdgeSessionNotFoundCode(t *testing.T) {
	srv := newEdge(t, Options{})
	for _, sid := range []string{"../../etc/passwd", "AAAAAAAAAAAAAAAAAAAAAA"} {
		resp, body := call{http.MethodPost, map[string]string{"Mcp-Session-Id": sid}, `{"jsonrpc":"2.0","id":1,"method":"ping"}`}.do(t, srv.URL)
		var msg struct{ Error struct{ Code int } }
		if err := json.Unmarshal([]byte(body), &msg); err != nil || resp.StatusCode != http.StatusNotFound || msg.Error.Code != rpcerr.SessionNotFound {
			t.Errorf("session %q: %d %s, want 404 with code %d", sid, resp.StatusCode, body, rpcerr.SessionNotFound)
		}
	}
}

func TestEdgeAllowedOrigin(t *testing.T) {
	srv := newEdge(t, Options{AllowedOrigins: []string{"https://app.example"}})
	resp, _ := call{http.MethodOptions, map[string]string{"Origin": "https://app.example"}, ""}.do(t, srv.URL)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body := call{http.MethodPost, map[string]string{"Origin": "https://app.example"}, initBody}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
		t.Fatalf("allowed origin: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// A loopback origin is fine on a loopback listener.
	resp, _ = call{http.MethodPost, map[string]string{"Origin": "http://localhost:6274"}, initBody}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loopback origin: %d", resp.StatusCode)
	}
}

func TestEdgeMintsDistinctSessionIDs(t *testing.T) {
	srv := newEdge(t, Options{})
	seen := map[string]bool{}
	for range 20 {
		id := initialize(t, srv.URL)
		raw, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(raw) < 16 {
			t.Fatalf("session id %q: %d bytes, err %v; want ≥128 bits base64url", id, len(raw), err)
		}
		if seen[id] {
			t.Fatalf("session id %q minted twice", id)
		}
		seen[id] = true
	}
}

func TestEdgeStatelessRoute(t *testing.T) {
	srv := newEdge(t, Options{})
	h := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "test_simple_text"}
	body := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	// The go-sdk connects a session for each stateless request, which it
	// logs at info before it answers: a principal's actor keeps it quiet.
	before := records.count("server session connected", "principal=")
	resp, got := call{http.MethodPost, h, body}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK || !strings.Contains(got, "simple text") {
		t.Fatalf("stateless call: %d %s", resp.StatusCode, got)
	}
	if n := records.count("server session connected", "principal="); n != before {
		t.Errorf("a stateless request logged the go-sdk's session at info (%d records)", n-before)
	}
	if resp.Header.Get("Mcp-Session-Id") != "" {
		t.Error("stateless response carries a session id")
	}
	// The same request without its header is routed by its _meta, and the
	// stateless handler answers with the protocol's own error.
	resp, got = call{http.MethodPost, nil, body}.do(t, srv.URL)
	if resp.StatusCode < 400 || !strings.Contains(got, `"error"`) {
		t.Fatalf("stateless without header: %d %s", resp.StatusCode, got)
	}
}

// TestEdgeDisconnectCancels closes a client's SSE stream and checks that the
// actor's request ends: the edge told it to cancel.
func TestEdgeDisconnectCancels(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// Its headers come from the actor: it serves the stream.
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream: %d %v", resp.StatusCode, resp.Header)
	}
	if s := live.Live([]string{sid})[sid]; s.GetStreams() != 1 {
		t.Fatalf("the session's actor serves %d GET streams, want 1", s.GetStreams())
	}
	cancel()
	resp.Body.Close()
	awaitServing(t, sid, "the actor let go of the GET stream after the client went away", 0, 0)
}

// awaitServing waits until session sid's actor serves streams GET streams
// and inFlight other requests (as the node's registry of live actors
// counts them), for effects of a client's disconnect, which nothing
// signals to it.
func awaitServing(t *testing.T, sid, what string, streams, inFlight int32) {
	t.Helper()
	eventually(t, what, func() bool {
		s := live.Live([]string{sid})[sid]
		return s != nil && s.Streams == streams && s.InFlight == inFlight
	})
}

// TestToolPanicIsContained: a panicking tool answers its call with an error;
// its session and the others keep working.
func TestToolPanicIsContained(t *testing.T) {
	srv := newEdge(t, Options{})
	a, b := initialize(t, srv.URL), initialize(t, srv.URL)
	h := func(id string) map[string]string {
		return map[string]string{"Mcp-Session-Id": id, "Mcp-Protocol-Version": "2025-11-25"}
	}
	resp, body := call{http.MethodPost, h(a), `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"panic","arguments":{}}}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"error"`) || !strings.Contains(body, "internal error") {
		t.Fatalf("panicking tool: %d %s", resp.StatusCode, body)
	}
	for _, id := range []string{a, b} {
		resp, body = call{http.MethodPost, h(id), `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`}.do(t, srv.URL)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "simple text") {
			t.Fatalf("session %s after a panic: %d %s", id, resp.StatusCode, body)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		body string
		want bodyKind
	}{
		{initBody, bodyInitialize},
		{`[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]`, bodyInitialize},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, bodyStateless},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`, bodyOther},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1,2]}`, bodyOther},
		{`{"jsonrpc":"2.0","id":1,"method":"ping"}`, bodyOther},
	}
	for _, tt := range tests {
		rb, err := rpcbody.Read([]byte(tt.body))
		if err != nil {
			t.Fatalf("rpcbody.Read(%s): %v", tt.body, err)
		}
		if got := classify(rb); got != tt.want {
			t.Errorf("classify(%s) = %d, want %d", tt.body, got, tt.want)
		}
	}
}

func TestValidSessionID(t *testing.T) {
	for id, want := range map[string]bool{
		newSessionID():              true,
		"AAAAAAAAAAAAAAAAAAAAAA":    true,
		"":                          false,
		"short":                     false,
		"AAAAAAAAAAAAAAAAAAAAA=":    false,
		"AAAAAAAAAAAAAAAAAAAA/A":    false,
		"AAAAAAAAAAAAAAAAAAAAAAA":   false,
		strings.Repeat("A", 10_000): false,
	} {
		if got := validSessionID(id); got != want {
			t.Errorf("validSessionID(%q) = %v, want %v", id, got, want)
		}
	}
}

// panicky is a toolset with one tool that panics.
type panicky struct{}

func (panicky) Name() string                 { return "panicky" }
func (panicky) Configure(*mcp.ServerOptions) {}
func (panicky) Scopes() map[string][]string  { return nil }
func (panicky) Install(s *mcp.Server, _ tools.Caller) {
	s.AddTool(&mcp.Tool{Name: "panic", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) { panic("boom") })
}

// closesThenWaits is a toolset with one tool, close_then_wait, that
// closes its event stream for its client to resume (SEP-1699), then waits
// until its context ends, which it tells on waitEnded.
type closesThenWaits struct{}

var waitEnded = make(chan struct{}, 16)

func (closesThenWaits) Name() string                 { return "closes-then-waits" }
func (closesThenWaits) Configure(*mcp.ServerOptions) {}
func (closesThenWaits) Scopes() map[string][]string  { return nil }
func (closesThenWaits) Install(s *mcp.Server, _ tools.Caller) {
	s.AddTool(&mcp.Tool{Name: "close_then_wait", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if req.Extra != nil && req.Extra.CloseSSEStream != nil {
				req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 10 * time.Millisecond})
			}
			<-ctx.Done()
			waitEnded <- struct{}{}
			return nil, ctx.Err()
		})
	// close_often closes its stream times times, each with a retry field
	// of retry_ms, and sends nothing else before its answer: the first at
	// once, each other after the edge resumed the stream the last one
	// ended (a close while no request holds the stream does nothing, so it
	// closes until the edge's count of resumptions rises).
	s.AddTool(&mcp.Tool{Name: "close_often", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var in struct {
				Times   int `json:"times"`
				RetryMS int `json:"retry_ms"`
			}
			if err := json.Unmarshal(req.Params.Arguments, &in); err != nil {
				return nil, err
			}
			retry := time.Duration(in.RetryMS) * time.Millisecond
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: retry})
			for range in.Times - 1 {
				before := counterValue(nil, metrics.JSONResumes)
				closed := time.Now()
				for counterValue(nil, metrics.JSONResumes) == before {
					if time.Since(closed) > retry+50*time.Millisecond {
						req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: retry})
						closed = time.Now()
					}
					select {
					case <-ctx.Done():
						return nil, ctx.Err()
					case <-tick.C:
					}
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "closed " + strconv.Itoa(in.Times) + " times"}}}, nil
		})
}

// recorder is a slog handler that keeps every record, rendered, for the
// tests that check what was logged (or that nothing was).
type recorder struct {
	mu     sync.Mutex
	attrs  []slog.Attr
	parent *recorder
	lines  []string
}

func (r *recorder) root() *recorder {
	if r.parent != nil {
		return r.parent.root()
	}
	return r
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	root := r.root()
	var line strings.Builder
	line.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		line.WriteString(" " + a.String())
		return true
	})
	root.mu.Lock()
	defer root.mu.Unlock()
	root.lines = append(root.lines, line.String())
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{attrs: append(append([]slog.Attr{}, r.attrs...), as...), parent: r.root()}
}
func (r *recorder) WithGroup(string) slog.Handler { return r }

// count is how many records so far contain every one of ss.
func (r *recorder) count(ss ...string) int {
	root := r.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	n := 0
	for _, l := range root.lines {
		if !slices.ContainsFunc(ss, func(s string) bool { return !strings.Contains(l, s) }) {
			n++
		}
	}
	return n
}

// logged reports whether any record so far contains s.
func (r *recorder) logged(s string) bool {
	root := r.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	for _, l := range root.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

package transport

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// runStage runs one stage of the edge alone on r, as NewEdge's chain would
// with nothing after it, and reports its answer, the facts it noted and
// whether it passed r on.
func runStage(stage func(http.Handler) http.Handler, r *http.Request) (*httptest.ResponseRecorder, *facts, bool) {
	return runStageWith(stage, r, &facts{})
}

// runStageWith is runStage with the facts the stages before it noted.
func runStageWith(stage func(http.Handler) http.Handler, r *http.Request, f *facts) (*httptest.ResponseRecorder, *facts, bool) {
	f.span = &edgeSpan{start: time.Now()}
	rec := httptest.NewRecorder()
	passed := false
	stage(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { passed = true })).ServeHTTP(rec, withFacts(r, f))
	return rec, f, passed
}

// stageEdge is an edge without a node, for its stages alone.
func stageEdge(opts Options) *Edge {
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return NewEdge(nil, opts)
}

func stageRequest(method, host string, headers map[string]string, body string) *http.Request {
	r := httptest.NewRequest(method, "http://"+host+"/mcp", strings.NewReader(body))
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func TestChainOrder(t *testing.T) {
	var met []string
	stage := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				met = append(met, name)
				next.ServeHTTP(w, r)
			})
		}
	}
	h := chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { met = append(met, "handler") }), stage("first"), stage("second"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if got := strings.Join(met, " "); got != "first second handler" {
		t.Errorf("met %q, want first second handler", got)
	}
}

// hinted is a handler that sets the server's Keep-Alive hint, as
// cmd/pingmcp's does for every HTTP/1.1 request, before h.
func hinted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Keep-Alive", "timeout=115")
		h.ServeHTTP(w, r)
	})
}

func TestCloseUnread(t *testing.T) {
	for _, tc := range []struct {
		body, want, hint string
	}{{"", "", "timeout=115"}, {"{}", "close", ""}} {
		rec, _, passed := runStage(func(next http.Handler) http.Handler { return hinted(closeUnread(next)) }, stageRequest(http.MethodPost, "localhost", nil, tc.body))
		if !passed || rec.Header().Get("Connection") != tc.want || rec.Header().Get("Keep-Alive") != tc.hint {
			t.Errorf("body %q: passed %v, Connection %q, Keep-Alive %q, want %q and %q", tc.body, passed, rec.Header().Get("Connection"), rec.Header().Get("Keep-Alive"), tc.want, tc.hint)
		}
	}
}

func TestCheckHost(t *testing.T) {
	loopback := stageEdge(Options{Loopback: true})
	listed := stageEdge(Options{AllowedHosts: []string{"mcp.example", "other.example:8443"}})
	open := stageEdge(Options{})
	// As a URL spells them (the Helm chart's default is the host of
	// publicURL): a default port, an IPv6 literal in brackets.
	spelt := stageEdge(Options{AllowedHosts: []string{"mcp.example.com:443", "[2001:DB8::1]", "[2001:db8::2]:8443"}})
	for _, tc := range []struct {
		name string
		edge *Edge
		host string
		pass bool
	}{
		{"loopback name", loopback, "localhost:8080", true},
		{"loopback address", loopback, "127.0.0.1:8080", true},
		{"loopback v6", loopback, "[::1]:8080", true},
		{"rebinding", loopback, "evil.example:8080", false},
		{"listed", listed, "MCP.example:443", true},
		{"listed with port", listed, "other.example:8443", true},
		{"listed other port", listed, "other.example:9000", false},
		{"not listed", listed, "evil.example", false},
		{"any", open, "anything.example", true},
		{"default port listed, none sent", spelt, "mcp.example.com", true},
		{"default port listed and sent", spelt, "MCP.example.com:443", true},
		{"default port listed, another sent", spelt, "mcp.example.com:8443", false},
		{"IPv6 listed in brackets, a port sent", spelt, "[2001:db8::1]:8443", true},
		{"IPv6 listed in brackets, none sent", spelt, "[2001:db8::1]", true},
		{"IPv6 listed with its port", spelt, "[2001:db8::2]:8443", true},
		{"IPv6 listed with its port, another sent", spelt, "[2001:db8::2]:9000", false},
	} {
		rec, _, passed := runStage(tc.edge.checkHost, stageRequest(http.MethodPost, tc.host, nil, ""))
		if passed != tc.pass || !passed && rec.Code != http.StatusForbidden {
			t.Errorf("%s: Host %q passed %v (status %d), want %v", tc.name, tc.host, passed, rec.Code, tc.pass)
		}
	}
}

func TestCheckResource(t *testing.T) {
	none := stageEdge(Options{})
	two := stageEdge(Options{Resources: NewResources([]string{"https://mcp.example/mcp", "http://127.0.0.1:8080/mcp"})})
	for _, tc := range []struct {
		edge     *Edge
		host     string
		resource string // "" refused, unless edge is none
	}{
		{none, "anything.example", ""},
		{two, "mcp.example", "https://mcp.example/mcp"},
		{two, "mcp.example:443", "https://mcp.example/mcp"},
		{two, "127.0.0.1:8080", "http://127.0.0.1:8080/mcp"},
		{two, "other.example", ""},
	} {
		rec, f, passed := runStage(tc.edge.checkResource, stageRequest(http.MethodPost, tc.host, nil, ""))
		wantPass := tc.resource != "" || tc.edge == none
		if passed != wantPass || f.resource != tc.resource {
			t.Errorf("Host %q: passed %v, resource %q; want %v, %q", tc.host, passed, f.resource, wantPass, tc.resource)
		}
		if !passed && rec.Code != http.StatusMisdirectedRequest {
			t.Errorf("Host %q: status %d, want 421", tc.host, rec.Code)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	e := stageEdge(Options{Loopback: true, AllowedOrigins: []string{"https://app.example/"}})
	for _, tc := range []struct {
		origin string
		pass   bool
	}{
		{"", true},
		{"https://app.example", true},
		{"http://localhost:8080", true}, // same origin
		{"http://127.0.0.1:3000", true}, // loopback origin on a loopback listener
		{"https://evil.example", false},
		{"null", false},
	} {
		rec, _, passed := runStage(e.checkOrigin, stageRequest(http.MethodPost, "localhost:8080", map[string]string{"Origin": tc.origin}, ""))
		if passed != tc.pass {
			t.Errorf("Origin %q: passed %v, want %v", tc.origin, passed, tc.pass)
			continue
		}
		cors := rec.Header().Get("Access-Control-Allow-Origin")
		switch {
		case !passed && rec.Code != http.StatusForbidden:
			t.Errorf("Origin %q: status %d, want 403", tc.origin, rec.Code)
		case passed && tc.origin != "" && cors != tc.origin:
			t.Errorf("Origin %q: Access-Control-Allow-Origin %q", tc.origin, cors)
		case (!passed || tc.origin == "") && cors != "":
			t.Errorf("Origin %q: Access-Control-Allow-Origin %q, want none", tc.origin, cors)
		}
	}
}

func TestCheckMethod(t *testing.T) {
	e := stageEdge(Options{})
	for _, tc := range []struct {
		method, origin string
		pass           bool
		status         int
	}{
		{http.MethodPost, "", true, 0},
		{http.MethodGet, "", true, 0},
		{http.MethodDelete, "", true, 0},
		{http.MethodOptions, "", false, http.StatusNoContent},
		{http.MethodOptions, "https://app.example", false, http.StatusNoContent},
		{http.MethodPut, "", false, http.StatusMethodNotAllowed},
		{http.MethodPatch, "", false, http.StatusMethodNotAllowed},
	} {
		rec, _, passed := runStage(e.checkMethod, stageRequest(tc.method, "localhost", map[string]string{"Origin": tc.origin}, ""))
		if passed != tc.pass || !passed && rec.Code != tc.status {
			t.Errorf("%s: passed %v, status %d; want %v, %d", tc.method, passed, rec.Code, tc.pass, tc.status)
			continue
		}
		if !passed && rec.Header().Get("Allow") != allowedMethods {
			t.Errorf("%s: Allow %q", tc.method, rec.Header().Get("Allow"))
		}
		if preflight := rec.Header().Get("Access-Control-Allow-Methods") != ""; preflight != (tc.method == http.MethodOptions && tc.origin != "") {
			t.Errorf("%s with Origin %q: Access-Control-Allow-Methods %q", tc.method, tc.origin, rec.Header().Get("Access-Control-Allow-Methods"))
		}
	}
}

func TestCheckHeaders(t *testing.T) {
	rec, _, passed := runStage(checkHeaders, stageRequest(http.MethodPost, "localhost", map[string]string{"X-Name": "caf\xe9"}, ""))
	if passed || rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "X-Name") {
		t.Errorf("header not UTF-8: passed %v, status %d, body %s", passed, rec.Code, rec.Body)
	}
	if _, _, passed := runStage(checkHeaders, stageRequest(http.MethodPost, "localhost", map[string]string{"X-Name": "café"}, "")); !passed {
		t.Error("a UTF-8 header was refused")
	}
}

func TestCheckTokenWithoutVerifier(t *testing.T) {
	e := stageEdge(Options{})
	_, f, passed := runStage(e.checkToken, stageRequest(http.MethodPost, "localhost", map[string]string{"Authorization": "Bearer anything"}, ""))
	if !passed || f.token != nil || f.principal != nil {
		t.Errorf("without a verifier: passed %v, token %v, principal %v", passed, f.token, f.principal)
	}
}

func TestReadBody(t *testing.T) {
	e := stageEdge(Options{MaxBodyBytes: 8})
	_, f, passed := runStage(e.readBody, stageRequest(http.MethodPost, "localhost", nil, `"1234"`))
	if !passed || string(f.body) != `"1234"` {
		t.Errorf("body within the limit: passed %v, body %q", passed, f.body)
	}
	rec, _, passed := runStage(e.readBody, stageRequest(http.MethodPost, "localhost", nil, `"123456789"`))
	if passed || rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("body beyond the limit: passed %v, status %d", passed, rec.Code)
	}
	if _, f, passed := runStage(e.readBody, stageRequest(http.MethodGet, "localhost", nil, "")); !passed || f.body != nil {
		t.Errorf("GET: passed %v, body %q", passed, f.body)
	}
}

func TestReadBodyKeepsConnection(t *testing.T) {
	e := stageEdge(Options{})
	h := chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), hinted, closeUnread, e.readBody)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, withFacts(stageRequest(http.MethodPost, "localhost", nil, "{}"), &facts{}))
	if c, k := rec.Header().Get("Connection"), rec.Header().Get("Keep-Alive"); c != "" || k != "timeout=115" {
		t.Errorf("Connection %q, Keep-Alive %q once the body is read, want none and timeout=115", c, k)
	}
}

func TestParseBody(t *testing.T) {
	e := stageEdge(Options{MaxBatch: 2})
	for _, tc := range []struct {
		body   string
		pass   bool
		status int
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"ping"}`, true, 0},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`, true, 0},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"ping"}]`, false, http.StatusBadRequest},
		{`{not json`, false, http.StatusBadRequest},
	} {
		rec, f, passed := runStageWith(e.parseBody, stageRequest(http.MethodPost, "localhost", nil, ""), &facts{body: []byte(tc.body)})
		if passed != tc.pass || !passed && rec.Code != tc.status {
			t.Errorf("%s: passed %v, status %d; want %v, %d", tc.body, passed, rec.Code, tc.pass, tc.status)
		}
		if passed && (f.rpc == nil || f.rpc.First() == nil || f.rpc.First().Method != "ping") {
			t.Errorf("%s: reading %+v", tc.body, f.rpc)
		}
		if f.span.span == nil {
			t.Errorf("%s: no span started", tc.body)
		}
	}
}

func TestRouteRequest(t *testing.T) {
	e := stageEdge(Options{})
	for _, tc := range []struct {
		method, sid string
		pass        bool
		status      int
	}{
		{http.MethodGet, "", false, http.StatusBadRequest},
		{http.MethodGet, "not-a-session-id", false, http.StatusNotFound},
		{http.MethodGet, newSessionID(), true, 0},
	} {
		rec, f, passed := runStage(e.routeRequest, stageRequest(tc.method, "localhost", map[string]string{headerSessionID: tc.sid}, ""))
		if passed != tc.pass || !passed && rec.Code != tc.status {
			t.Errorf("%s %q: passed %v, status %d; want %v, %d", tc.method, tc.sid, passed, rec.Code, tc.pass, tc.status)
		}
		if passed && f.route.identity != tc.sid {
			t.Errorf("%s %q: routed to %+v", tc.method, tc.sid, f.route)
		}
	}
}

package transport

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// meta2026 is the _meta every 2026-07-28 request carries.
const meta2026 = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`

// A browser client of 2026-07-28 must send Mcp-Method on every POST, and
// Mcp-Name (and the tools' Mcp-Param-*) on tools/call, resources/read and
// prompts/get ("These headers are REQUIRED for compliance"): its preflight
// asks for them, and the edge must allow them, or the browser never sends
// the request.
func TestPreflightAllows2026RequestHeaders(t *testing.T) {
	e := stageEdge(Options{Loopback: true})
	asked := []string{"authorization", "content-type", "mcp-protocol-version", "mcp-method", "mcp-name", "mcp-param-region"}
	r := stageRequest(http.MethodOptions, "localhost", map[string]string{
		"Origin":                         "http://localhost:6274",
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": strings.Join(asked, ","),
	}, "")
	rec, _, _ := runStage(e.checkMethod, r)
	allowed := map[string]bool{}
	for _, h := range strings.Split(rec.Header().Get("Access-Control-Allow-Headers"), ",") {
		allowed[strings.ToLower(strings.TrimSpace(h))] = true
	}
	for _, h := range asked {
		if !allowed[h] && !allowed["*"] {
			t.Errorf("preflight for %s: Access-Control-Allow-Headers %q does not allow it", h, rec.Header().Get("Access-Control-Allow-Headers"))
		}
	}
}

// 2026-07-28, Value Encoding: "servers MUST decode an encoded Mcp-Name or
// Mcp-Param-{Name} value before comparing it to the corresponding request
// body value during Server Validation." A client that encodes the name
// (it must for a name or URI outside the header-safe set) is refused with
// -32020 HeaderMismatch.
func TestEdgeDecodesBase64McpName(t *testing.T) {
	srv := newEdge(t, Options{})
	name := "test_simple_text"
	h := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
		"Mcp-Name": "=?base64?" + base64.StdEncoding.EncodeToString([]byte(name)) + "?="}
	body := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"` + name + `","arguments":{},` + meta2026 + `}}`
	resp, got := call{http.MethodPost, h, body}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK || !strings.Contains(got, "simple text") {
		t.Fatalf("tools/call with a Base64-encoded Mcp-Name: %d %s", resp.StatusCode, got)
	}
}

// 2026-07-28, Receiving Messages: "When initiating an SSE stream, servers
// SHOULD include the X-Accel-Buffering: no header in the HTTP response."
// Behind nginx (an Ingress) without it, a listen's notifications and a
// call's progress sit in the proxy's buffer.
func TestEdgeSSEDisablesProxyBuffering(t *testing.T) {
	srv := newEdge(t, Options{})
	h := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
	resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{` + meta2026 + `}}`}.do(t, srv.URL)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("tools/list: %d %v %s, want an event stream", resp.StatusCode, resp.Header, body)
	}
	if got := resp.Header.Get("X-Accel-Buffering"); got != "no" {
		t.Errorf("SSE response: X-Accel-Buffering %q, want \"no\"", got)
	}
	// The listen's stream, the one that stays open.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(listenBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range listenHeaders(nil) {
		req.Header.Set(k, v)
	}
	lresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer lresp.Body.Close()
	if got := lresp.Header.Get("X-Accel-Buffering"); !strings.HasPrefix(lresp.Header.Get("Content-Type"), "text/event-stream") || got != "no" {
		t.Errorf("listen: %d Content-Type %q, X-Accel-Buffering %q, want an event stream with \"no\"", lresp.StatusCode, lresp.Header.Get("Content-Type"), got)
	}
}

// sessionSwap replaces the Mcp-Session-Id a client sends with to, once set:
// a client holding a session id pingmcp did not mint (one from the server
// that answered at this URL before pingmcp, say).
type sessionSwap struct {
	to   string
	on   atomic.Bool // from the first request after the handshake
	next http.RoundTripper
}

func (s *sessionSwap) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.on.Load() && r.Header.Get("Mcp-Session-Id") != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Mcp-Session-Id", s.to)
	}
	return s.next.RoundTrip(r)
}

// 2025-11-25, Session Management: "When a client receives HTTP 404 in
// response to a request containing an MCP-Session-Id, it MUST start a new
// session". The go-sdk v1.8.0 client knows a 404 as the session's end
// (ErrSessionMissing, which fails the connection so that its owner
// reconnects) only when the body is not a JSON-RPC error with an id: the
// edge's 404 for an id it did not mint names the request's id, so the
// go-sdk client takes it as one refused call and goes on with a session
// that does not exist; the actor's 404 for an unknown id (id null) is
// recognised. README: malformed and unknown ids get "the answer an unknown
// or malformed session id gets".
func TestGoSDKClientSeesForeignSessionAsMissing(t *testing.T) {
	srv := newEdge(t, Options{})
	for _, sid := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "0b5c3a52-6f07-4a4e-9d7c-2f7f4b1b0c11"} {
		t.Run(sid, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			swap := &sessionSwap{to: sid, next: http.DefaultTransport}
			tr := &mcp.StreamableClientTransport{Endpoint: srv.URL, DisableStandaloneSSE: true,
				HTTPClient: &http.Client{Transport: swap}}
			c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
			cs, err := c.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			swap.on.Store(true)
			_, err = cs.ListTools(ctx, nil)
			if !errors.Is(err, mcp.ErrSessionMissing) {
				t.Errorf("the go-sdk client was told %v, want ErrSessionMissing (start a new session)", err)
			}
		})
	}
}

// 2026-07-28, Protocol Version Header: "If the server does not implement
// the requested protocol version (whether the version is unknown to the
// server, ...), it MUST respond with 400 Bad Request and an
// UnsupportedProtocolVersionError listing its supported versions." A
// request whose header names an unknown version gets that only when its
// body's _meta names the same one; without _meta it gets -32602.
func TestEdgeUnknownVersionIsUnsupportedProtocolVersion(t *testing.T) {
	srv := newEdge(t, Options{})
	h := map[string]string{"Mcp-Protocol-Version": "2099-01-01", "Mcp-Method": "tools/list"}
	resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":-32022`) || !strings.Contains(body, `"supported"`) {
		t.Errorf("unknown version: %d %s, want 400 with -32022 and the supported versions", resp.StatusCode, body)
	}
}

// JSON-RPC 2.0 §5: a response has "result" or "error", "but both members
// MUST NOT be included"; a message with an id and neither a method nor a
// result nor an error is no JSON-RPC message. MCP 2025-11-25: "If the
// server cannot accept the input, it MUST return an HTTP error status
// code"; the edge answers 202, as for an accepted response.
func TestEdgeRefusesMalformedResponses(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":7}`,
		`{"jsonrpc":"2.0","id":7,"result":{},"error":{"code":1,"message":"x"}}`,
	} {
		if resp, got := (call{http.MethodPost, h, body}).do(t, srv.URL); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %q, want 400 (-32600)", body, resp.StatusCode, got)
		}
	}
	// "error": null is no error (the go-sdk reads it so; some JSON-RPC
	// libraries send it beside every result): a result beside it is a
	// response, taken; alone, it is still neither.
	if resp, got := (call{http.MethodPost, h, `{"jsonrpc":"2.0","id":7,"result":{},"error":null}`}).do(t, srv.URL); resp.StatusCode != http.StatusAccepted {
		t.Errorf(`a result beside "error": null: %d %q, want 202`, resp.StatusCode, got)
	}
	if resp, got := (call{http.MethodPost, h, `{"jsonrpc":"2.0","id":7,"error":null}`}).do(t, srv.URL); resp.StatusCode != http.StatusBadRequest {
		t.Errorf(`"error": null alone: %d %q, want 400`, resp.StatusCode, got)
	}
}

// A client that takes one of a POST's two answers gets that one: MCP says
// a client lists both in Accept, and the go-sdk refuses one that does not
// (400), but clients in use send `Accept: application/json` alone (Claude
// Code's HTTP client was seen doing so). Such a client gets its answer as
// JSON, the stream's notifications dropped; one that takes the event
// stream alone, or sends no Accept (RFC 9110: any), gets the event stream;
// one that takes neither is still refused.
func TestEdgeAnswersWhatAcceptTakes(t *testing.T) {
	srv := newEdge(t, Options{})
	post := func(accept []string, session, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for _, a := range accept {
			req.Header.Add("Accept", a)
		}
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	jsonOnly := []string{"application/json"}
	resp, body := post(jsonOnly, "", initBody)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("initialize taking JSON alone: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var init struct {
		ID     int `json:"id"`
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &init); err != nil || init.ID != 1 || init.Result.ProtocolVersion != "2025-11-25" {
		t.Fatalf("initialize's JSON answer: %q (%v)", body, err)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatal("initialize's JSON answer has no Mcp-Session-Id")
	}
	if resp, body := post(jsonOnly, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %q", resp.StatusCode, body)
	}
	// A tool that sends progress notifications before its result: the
	// answer is the result alone.
	resp, body = post(jsonOnly, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"p"}}}`)
	var answer struct {
		ID     int             `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &answer) != nil || answer.ID != 2 || answer.Result == nil {
		t.Fatalf("tools/call taking JSON alone: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// An error comes as JSON too.
	resp, body = post([]string{"application/json;q=0.9"}, sid, `{"jsonrpc":"2.0","id":3,"method":"no/such/method"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id":3`) || !strings.Contains(body, `"error"`) || strings.Contains(body, "data:") {
		t.Fatalf("an unknown method taking JSON alone: %d %q", resp.StatusCode, body)
	}
	for _, accept := range [][]string{{"text/event-stream"}, nil, {"*/*"}, {"application/json", "text/event-stream"}} {
		resp, body := post(accept, sid, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || !strings.Contains(body, "data: ") || !strings.Contains(body, `"result"`) {
			t.Errorf("Accept %q: %d %s %q, want the event stream", accept, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if resp, body := post([]string{"text/html"}, sid, `{"jsonrpc":"2.0","id":5,"method":"tools/list"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("Accept text/html: %d %q, want 400", resp.StatusCode, body)
	}
	// 2026-07-28 (stateless) the same.
	h := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list", "Accept": "application/json"}
	resp, body = call{http.MethodPost, h, `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{` + meta2026 + `}}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(body, `{"jsonrpc":"2.0","id":7,"result":{`) {
		t.Errorf("2026-07-28 tools/list taking JSON alone: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// 2026-07-28, Server Validation: servers "MUST reject requests where the
// values specified in the headers do not match the corresponding values in
// the request body" (400, -32020), among the failures "A header value
// contains invalid characters"; Value Encoding: a value outside visible
// ASCII, space and tab is sent as =?base64?…?=, which servers "MUST decode".
// The go-sdk compares the first field line alone, as sent: a second line
// (RFC 9110 §5.3: one value, "a, b", which matches no body), a raw UTF-8
// value equal to the body's, a sentinel that is not Base64 and equals the
// body's text, each reached the handler, the call ran; an intermediary
// reading the header otherwise routed on another value than the one run.
// A second Mcp-Protocol-Version line makes the version "a, b", one not
// served (-32022), whichever line names 2026-07-28.
func TestEdgeRefusesMalformedRequestHeaders(t *testing.T) {
	srv := newEdge(t, Options{})
	region := func(r string) string {
		return `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_x_mcp_header","arguments":{"region":"` + r + `"},` + meta2026 + `}}`
	}
	// post sends body with the headers h as a JSON POST.
	post := func(h http.Header, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	read := func(uri string) string {
		return `{"jsonrpc":"2.0","id":9,"method":"resources/read","params":{"uri":"` + uri + `",` + meta2026 + `}}`
	}
	base := func(method, name string) http.Header {
		h := http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {method}}
		if name != "" {
			h["Mcp-Name"] = []string{name}
		}
		return h
	}
	with := func(h http.Header, name string, values ...string) http.Header {
		h[name] = append(h[name], values...)
		return h
	}
	// tools/call of test_x_mcp_header with region eu, each header right.
	eu := func() http.Header { return with(base("tools/call", "test_x_mcp_header"), "Mcp-Param-Region", "eu") }
	for _, c := range []struct {
		name string
		h    http.Header
		body string
		code string
	}{
		{"a second Mcp-Name", with(eu(), "Mcp-Name", "test_simple_text"), region("eu"), "-32020"},
		{"a second Mcp-Method", with(eu(), "Mcp-Method", "tools/list"), region("eu"), "-32020"},
		{"a second Mcp-Param-Region", with(eu(), "Mcp-Param-Region", "us"), region("eu"), "-32020"},
		{"a raw UTF-8 Mcp-Param-Region", with(base("tools/call", "test_x_mcp_header"), "Mcp-Param-Region", "é"), region("é"), "-32020"},
		{"a raw UTF-8 Mcp-Name", base("resources/read", "test://café"), read("test://café"), "-32020"},
		{"a sentinel that is not Base64", base("resources/read", "=?base64?@@?="), read("=?base64?@@?="), "-32020"},
		{"a second Mcp-Protocol-Version", with(eu(), "Mcp-Protocol-Version", "2025-11-25"), region("eu"), "-32022"},
	} {
		resp, b := post(c.h, c.body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"code":`+c.code) || !strings.Contains(string(b), `"id":9`) {
			t.Errorf("%s: %d %s, want 400 with %s and the request's id", c.name, resp.StatusCode, b, c.code)
		}
	}
	// The same requests, each header once and as the spec encodes it, run.
	resp, b := post(with(base("tools/call", "test_x_mcp_header"), "Mcp-Param-Region", "=?base64?w6k=?="), region("é"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "region=é") {
		t.Errorf("an encoded Mcp-Param-Region: %d %s, want the tool's result", resp.StatusCode, b)
	}
}

// 2026-07-28, Protocol Version Header: the header "MUST match the
// io.modelcontextprotocol/protocolVersion field carried in the request
// body's _meta. If the values do not match, the server MUST reject the
// request with 400 Bad Request and a HeaderMismatch JSON-RPC error". A
// client naming a session's revision in its header (or none, on an
// initialize) and 2026-07-28 in its body got the go-sdk's -32022 from the
// session's server, whose data named the header's revision as the one
// unsupported while listing it among those supported, and listed no
// 2026-07-28 (so a client following the error would take this server for
// one without it); the error code reserved to the specification MUST be
// used "only with their specified meanings". The session is left as it was.
func TestLegacyHeaderModernBodyIsHeaderMismatch(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	list := `{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{` + meta2026 + `}}`
	init := `{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"},` + meta2026 + `}}`
	for _, c := range []struct {
		name string
		h    map[string]string
		body string
	}{
		{"a session's request", map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}, list},
		{"an initialize without the header", nil, init},
		{"an initialize naming 2025-11-25", map[string]string{"Mcp-Protocol-Version": "2025-11-25"}, init},
	} {
		resp, body := call{http.MethodPost, c.h, c.body}.do(t, srv.URL)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":-32020`) || !strings.Contains(body, `"id":4`) || resp.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("%s: %d %v %s, want 400 with -32020, the request's id and no session", c.name, resp.StatusCode, resp.Header, body)
		}
	}
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	if resp, body := (call{http.MethodPost, h, `{"jsonrpc":"2.0","id":5,"method":"tools/list"}`}).do(t, srv.URL); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"tools"`) {
		t.Errorf("the session after: %d %s, want its tools", resp.StatusCode, body)
	}
}

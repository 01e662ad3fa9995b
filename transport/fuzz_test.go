package transport

// Fuzz targets of the edge's request parsing. The seed corpora are under
// testdata/fuzz/<target>/ and run as ordinary tests; scripts/test.sh also
// fuzzes each target for a bounded time. A crash the fuzzer finds is kept
// there as a regression test.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/metrics"
)

// fuzzMethods are the HTTP methods FuzzEdgeRequest picks from (its method
// byte, modulo): any other method takes the same 405 path as PUT.
var fuzzMethods = []string{http.MethodPost, http.MethodGet, http.MethodDelete, http.MethodOptions, http.MethodPut, "post", http.MethodHead, http.MethodPatch}

// fuzzAuthed is the bit of the method byte that sends a request to the edge
// that authenticates callers; without it, to the one that does not.
const fuzzAuthed = 0x80

// tokenPlaceholder, in a fuzzed Authorization value, is replaced by a valid
// token of the test issuer, so that the fuzzer reaches what lies behind
// authentication (and mutates around a real token).
const tokenPlaceholder = "$TOKEN"

// sessionPlaceholder, in a fuzzed Mcp-Session-Id, is replaced by the id of
// a live session of the edge (re-opened when a request ends it), and
// eventPlaceholder, in Last-Event-ID, by an event id that session sent: so
// that the fuzzer reaches sessions and stream resumption, not just "not
// found".
const (
	sessionPlaceholder = "$SESSION"
	eventPlaceholder   = "$EVENT"
)

// liveCut is how long a request to a live session may run before the
// client goes away: a GET on a session is a stream that never ends by
// itself, as is a tool call that waits for the client.
const liveCut = 250 * time.Millisecond

// edgeStatuses are the statuses a response may have: the edge's own, and
// what the go-sdk's handler answers.
var edgeStatuses = map[int]bool{
	200: true, 202: true, 204: true, // served; accepted notification; OPTIONS
	400: true, 401: true, 403: true, 404: true, 405: true, 406: true, 409: true, 413: true, 415: true,
	429: true, 503: true, // only with Retry-After (checked below)
}

// refusedStatuses are what the edge answers without forwarding.
var refusedStatuses = map[int]bool{204: true, 400: true, 401: true, 403: true, 404: true, 405: true, 413: true, 429: true, 503: true}

// fuzzMaxBody bounds request bodies of the fuzzed edges (413 beyond).
const fuzzMaxBody = 64 << 10

// edgeTimeout is how long one fuzzed request may take. Only a request to a
// live session may rightly stay open (a stream, a tool waiting for the
// client): its client goes away after liveCut, and it must end then.
const edgeTimeout = 10 * time.Second

// FuzzEdgeRequest drives the real edge, on the test node's real actors,
// with arbitrary method, MCP headers and body; against an edge without
// authentication and one that verifies tokens of a test issuer. Header
// values may hold several values (split at "\n": the header is repeated)
// and are given as net/http's server would (no control characters, no
// surrounding blanks). It asserts:
//   - no panic, no hang: every request is answered within edgeTimeout, a
//     request to a live session as soon as its client went away (liveCut);
//   - the status is one of edgeStatuses; a 503 says when to retry;
//   - every error the edge answers itself is a JSON-RPC error (and any
//     application/json error is): jsonrpc "2.0", an id that is null, a
//     string or a number, an error with a code and a message;
//   - a request the edge refuses never reaches an actor: no request is
//     forwarded, no session actor activated;
//   - a session is created only by an initialize without Mcp-Session-Id
//     (as the edge classifies it), and a response names a new session only
//     when it is a 200 to such an initialize;
//   - a request to a live session that is refused leaves the session
//     serving; one cut by its client (a stream) ends promptly;
//   - on the authenticating edge, only the issuer's one valid token gets
//     through, and no response echoes it.
func FuzzEdgeRequest(f *testing.F) {
	is := authtest.NewIssuer(f)
	const resource = "http://127.0.0.1:8080/mcp" // the requests' URL
	claims := is.Claims("alice", resource, "mcp:tools")
	claims["exp"] = time.Now().Add(24 * time.Hour).Unix() // outlives any fuzzing run
	token := is.Token(f, claims)
	discard := slog.New(slog.DiscardHandler)
	open := NewEdge(testNode, Options{Loopback: true, AllowedOrigins: []string{"https://app.example"}, MaxBodyBytes: fuzzMaxBody, Logger: discard})
	authed := NewEdge(testNode, Options{
		Loopback: true, AllowedOrigins: []string{"https://app.example"}, MaxBodyBytes: fuzzMaxBody, Logger: discard,
		Verifier:  auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{resource}}),
		Resources: NewResources([]string{resource}),
		Scopes:    []string{"mcp:tools"},
	})

	const (
		post, get, del, options, put = 0, 1, 2, 3, 4
		accept                       = "application/json, text/event-stream"
		ctype                        = "application/json"
		bearer                       = "Bearer " + tokenPlaceholder
	)
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	stateless := `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	for _, s := range []struct {
		method                                          byte
		sid, version, lastEvent, ct, acc, origin, authz string
		body                                            string
	}{
		{post, "", "", "", ctype, accept, "", "", initBody},
		{post | fuzzAuthed, "", "", "", ctype, accept, "", bearer, initBody},
		{post | fuzzAuthed, "", "", "", ctype, accept, "", "bearer   " + tokenPlaceholder, initBody},
		{post | fuzzAuthed, "", "", "", ctype, accept, "", bearer + "\n" + bearer, initBody},
		{post | fuzzAuthed, "", "", "", ctype, accept, "", "Bearer " + authtest.AlgNone(token), initBody},
		{post, "", "", "", ctype, accept, "https://app.example", "", initBody},
		{post, "", "", "", ctype, accept, "https://evil.example", "", initBody},
		{post, "", "", "", ctype, accept, "null", "", initBody},
		{post, "", "2025-03-26", "", ctype, accept, "", "", `[` + initBody + `]`},
		{post, "", "", "", ctype, accept, "", "", `[]`},
		{post, "", "", "", ctype, accept, "", "", `[[` + initBody + `]]`},
		{post, "", "", "", ctype, accept, "", "", `{"jsonrpc":"2.0","id":1,"Method":"initialize","params":{}}`},
		{post, "", "", "", ctype, accept, "", "", `{"jsonrpc":"2.0","id":1,"method":"ping","method":"initialize"}`},
		{post, "", "", "", ctype, accept, "", "", `{"jsonrpc":"2.0","id":{"x":[1]},"method":"tools/list"}`},
		{post, "", "", "", ctype, accept, "", "", `{"jsonrpc":"2.0","id":1e999999,"method":"tools/list"}`},
		{post, "", "", "", ctype, accept, "", "", `{"jsonrpc":"2.0","id":"` + strings.Repeat("9", 4096) + `","method":"tools/list"}`},
		{post, "", "", "", ctype, accept, "", "", "{\"jsonrpc\":\"2.0\",\"id\":\"\x00\xff\",\"method\":\"init\xc0ialize\"}"},
		{post, "", "", "", ctype, accept, "", "", stateless},
		{post, "", "2026-07-28", "", ctype, accept, "", "", stateless},
		{post | fuzzAuthed, "", "2026-07-28", "", ctype, accept, "", bearer, stateless},
		{post, "", "2099-01-01", "", ctype, accept, "", "", ping},
		{post, "AAAAAAAAAAAAAAAAAAAAAA", "2025-11-25", "", ctype, accept, "", "", ping},
		{post, "../../etc/passwd", "2025-11-25", "", ctype, accept, "", "", ping},
		{post, "AAAAAAAAAAAAAAAAAAAAAA\n", "2025-11-25", "", ctype, accept, "", "", ping},
		{post, "\nAAAAAAAAAAAAAAAAAAAAAA", "", "", ctype, accept, "", "", initBody},
		{post, "caf\xe9", "", "", ctype, accept, "", "", ping},
		{post, "", "", "", "text/plain", "text/html", "", "", initBody},
		{get, "AAAAAAAAAAAAAAAAAAAAAA", "2025-11-25", "0", "", "text/event-stream", "", "", ""},
		{get, "AAAAAAAAAAAAAAAAAAAAAA", "2025-11-25", "\xff\xfe", "", "text/event-stream", "", "", ""},
		{get, "", "2026-07-28", "", "", "text/event-stream", "", "", ""},
		{get, "", "", "", "", "text/event-stream", "", "", ""},
		{del, "AAAAAAAAAAAAAAAAAAAAAA", "2025-11-25", "", "", "", "", "", ""},
		{del | fuzzAuthed, "AAAAAAAAAAAAAAAAAAAAAA", "2025-11-25", "", "", "", "", bearer, ""},
		{options, "", "", "", "", "", "https://app.example", "", ""},
		{put, "", "", "", ctype, accept, "", "", initBody},
		{post, sessionPlaceholder, "2025-11-25", "", ctype, accept, "", "", ping},
		{post | fuzzAuthed, sessionPlaceholder, "2025-11-25", "", ctype, accept, "", bearer, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`},
		{post, sessionPlaceholder, "2025-11-25", "", ctype, accept, "", "", `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]`},
		{post, sessionPlaceholder, "2025-11-25", "", ctype, accept, "", "", initBody},
		{post, sessionPlaceholder, "2025-11-25", "", ctype, accept, "", "", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"panic","arguments":{}}}`},
		{get, sessionPlaceholder, "2025-11-25", eventPlaceholder, "", "text/event-stream", "", "", ""},
		{get, sessionPlaceholder, "2025-11-25", "_0", "", "text/event-stream", "", "", ""},
		{get, sessionPlaceholder, "2025-11-25", eventPlaceholder + "_1", "", "text/event-stream", "", "", ""},
		{get, sessionPlaceholder, "2025-11-25", "x_-1", "", "text/event-stream", "", "", ""},
		{get, sessionPlaceholder, "2025-11-25", "x_99999999999999999999", "", "text/event-stream", "", "", ""},
		{get | fuzzAuthed, sessionPlaceholder, "2025-11-25", eventPlaceholder, "", "text/event-stream", "", bearer, ""},
		{del, sessionPlaceholder, "2025-11-25", "", "", "", "", "", ""},
		{post, "", "", "", ctype, accept, "", "", strings.Repeat("[", 10_000)},
		{post, "", "", "", ctype, accept, "", "", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", fuzzMaxBody) + `"}}`},
	} {
		f.Add(s.method, s.sid, s.version, s.lastEvent, s.ct, s.acc, s.origin, s.authz, []byte(s.body))
	}

	type live struct{ session, event, authz string }
	lives := map[*Edge]*live{open: {authz: ""}, authed: {authz: "Bearer " + token}}
	reopen := func(t testing.TB, e *Edge) {
		l := lives[e]
		l.session, l.event = openLive(t, e, l.authz)
	}
	reopen(f, open)
	reopen(f, authed)

	f.Fuzz(func(t *testing.T, method byte, sid, version, lastEvent, contentType, acceptH, origin, authz string, body []byte) {
		e := open
		if method&fuzzAuthed != 0 {
			e = authed
			authz = strings.ReplaceAll(authz, tokenPlaceholder, token)
		}
		l := lives[e]
		toLive := strings.Contains(sid, sessionPlaceholder)
		sid = strings.ReplaceAll(sid, sessionPlaceholder, l.session)
		lastEvent = strings.ReplaceAll(lastEvent, eventPlaceholder, l.event)
		r, err := http.NewRequest(fuzzMethods[int(method&^fuzzAuthed)%len(fuzzMethods)], "http://127.0.0.1:8080/mcp", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.RemoteAddr = "127.0.0.1:40000"
		for name, value := range map[string]string{
			"Mcp-Session-Id": sid, "MCP-Protocol-Version": version, "Last-Event-ID": lastEvent,
			"Content-Type": contentType, "Accept": acceptH, "Origin": origin, "Authorization": authz,
		} {
			if value == "" {
				continue
			}
			for _, v := range strings.Split(value, "\n") {
				if !serverValue(v) {
					return // net/http's server answers 400 itself
				}
				r.Header.Add(name, v)
			}
		}

		seq := e.seq.Load()
		created := counted(t, "new")
		activated := created + counted(t, "unknown") + counted(t, "rehydrated")
		cut := time.Duration(0)
		if toLive {
			cut = liveCut
		}
		w := serveWithin(t, e, r, cut)
		status, got := w.Code, w.Body.Bytes()
		forwarded := e.seq.Load() != seq
		named := w.Header().Get("Mcp-Session-Id")
		minted := named != "" && named != r.Header.Get("Mcp-Session-Id")
		if minted {
			// Not fuzzed further, and the actor does not linger.
			defer endSession(t, e, named, authz)
		}

		if !edgeStatuses[status] {
			t.Fatalf("status %d: %s", status, got)
		}
		if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
			t.Fatalf("%d without Retry-After: %s", status, got)
		}
		jsonBody := strings.HasPrefix(w.Header().Get("Content-Type"), "application/json")
		if status >= 400 && (jsonBody || !forwarded) {
			if err := checkRPCError(got); err != "" {
				t.Fatalf("status %d, Content-Type %q: %s: %s", status, w.Header().Get("Content-Type"), err, got)
			}
		}
		if !forwarded {
			if !refusedStatuses[status] {
				t.Fatalf("the edge answered %d without forwarding: %s", status, got)
			}
			if n := counted(t, "new") + counted(t, "unknown") + counted(t, "rehydrated"); n != activated {
				t.Fatalf("a request the edge refused (%d) activated %v actors", status, n-activated)
			}
		}
		initialize := r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") == "" &&
			(r.Header.Get("Mcp-Protocol-Version") == "" || sessionVersions[r.Header.Get("Mcp-Protocol-Version")]) &&
			classify(readBody(body)) == bodyInitialize
		if counted(t, "new") != created && !initialize {
			t.Fatalf("a session was created for a request that is not an initialize (status %d)", status)
		}
		if minted && (status != http.StatusOK || !initialize) {
			t.Fatalf("status %d names new session %q", status, named)
		}
		if toLive && status >= 400 {
			// Refused: the session is unharmed.
			if !pingLive(t, e, l.session, l.authz) {
				if r.Method != http.MethodDelete {
					t.Fatalf("the live session stopped answering after a refused request (%d: %s)", status, got)
				}
				reopen(t, e)
			}
		} else if toLive && r.Method == http.MethodDelete {
			reopen(t, e) // it may have ended it
		}
		if e == authed {
			if forwarded {
				if tok, _, err := auth.BearerToken(r.Header.Values("Authorization")); err != nil || tok != token {
					t.Fatalf("authorization %q got through", authz)
				}
			}
			for name, values := range w.Header() {
				if strings.Contains(strings.Join(values, " "), token) {
					t.Fatalf("header %s echoes the token", name)
				}
			}
			if bytes.Contains(got, []byte(token)) {
				t.Fatalf("the response echoes the token: %s", got)
			}
		}
	})
}

// serverValue says whether net/http's server would hand a handler this
// header value: no control characters but tab, no surrounding blanks (it
// trims them).
func serverValue(v string) bool {
	if strings.Trim(v, " \t") != v {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// serveWithin serves r and fails if that takes longer than edgeTimeout. A
// non-zero cut is when the client goes away: the request must end soon
// after.
func serveWithin(t testing.TB, e *Edge, r *http.Request, cut time.Duration) *httptest.ResponseRecorder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), edgeTimeout)
	defer cancel()
	client, gone := context.WithCancel(ctx)
	defer gone()
	if cut > 0 {
		defer context.AfterFunc(ctx, gone)()
		timer := time.AfterFunc(cut, gone)
		defer timer.Stop()
		r = r.WithContext(client)
	}
	w := httptest.NewRecorder()
	done := make(chan struct{})
	if cut == 0 {
		r = r.WithContext(ctx)
	}
	go func() {
		defer close(done)
		e.ServeHTTP(w, r)
	}()
	select {
	case <-done:
	case <-time.After(edgeTimeout + 5*time.Second):
		t.Fatalf("%s request not answered within %v (it hangs)", r.Method, edgeTimeout)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s request took longer than %v (it hangs)", r.Method, edgeTimeout)
	}
	return w
}

// endSession deletes a session a fuzzed initialize opened.
func endSession(t *testing.T, e *Edge, sid, authz string) {
	r := httptest.NewRequest(http.MethodDelete, "http://127.0.0.1:8080/mcp", nil)
	r.Header.Set("Mcp-Session-Id", sid)
	if authz != "" && e.opts.Verifier != nil {
		r.Header["Authorization"] = strings.Split(authz, "\n")
	}
	w := serveWithin(t, e, r, 0)
	if w.Code >= 300 {
		t.Fatalf("DELETE of session %s: %d %s", sid, w.Code, w.Body)
	}
}

// openLive opens a session on e (initialize, initialized) and returns its
// id and the id of the initialize response's event.
func openLive(t testing.TB, e *Edge, authz string) (session, event string) {
	post := func(sid, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/mcp", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			r.Header.Set("Mcp-Session-Id", sid)
			r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		}
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		return serveWithin(t, e, r, 0)
	}
	w := post("", initBody)
	session = w.Header().Get("Mcp-Session-Id")
	if w.Code != http.StatusOK || session == "" {
		t.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	for line := range strings.Lines(w.Body.String()) {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "id: "); ok {
			event = id
		}
	}
	if w := post(session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); w.Code != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", w.Code, w.Body)
	}
	return session, event
}

// pingLive says whether the live session still answers a ping.
func pingLive(t testing.TB, e *Edge, session, authz string) bool {
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":"live","method":"ping"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Mcp-Session-Id", session)
	r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := serveWithin(t, e, r, 0)
	return w.Code == http.StatusOK && strings.Contains(w.Body.String(), `"id":"live"`)
}

// counted reads the session activations counted with outcome.
func counted(t *testing.T, outcome string) float64 {
	return counterValue(t, metrics.Activations.WithLabelValues(outcome))
}

// checkRPCError says what is wrong with a JSON-RPC error response ("" if
// nothing): one object, no batch, since the edge answers a request whole.
func checkRPCError(b []byte) string {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(b, &msg); err != nil {
		return "not a JSON object: " + err.Error()
	}
	if string(msg["jsonrpc"]) != `"2.0"` {
		return "jsonrpc is not 2.0"
	}
	if id, ok := msg["id"]; ok && !validRPCID(id) {
		return "id is neither null, a string nor a number"
	}
	var e struct {
		Code    *int    `json:"code"`
		Message *string `json:"message"`
	}
	if err := json.Unmarshal(msg["error"], &e); err != nil || e.Code == nil || e.Message == nil {
		return "no error object with a code and a message"
	}
	if !utf8.Valid(b) {
		return "not UTF-8"
	}
	return ""
}

// validRPCID: JSON-RPC 2.0 ids are strings, numbers or null.
func validRPCID(id json.RawMessage) bool {
	dec := json.NewDecoder(bytes.NewReader(id))
	dec.UseNumber() // a number too large for a float64 is still a number
	var v any
	if dec.Decode(&v) != nil {
		return false
	}
	switch v.(type) {
	case nil, string, json.Number:
		return true
	}
	return false // an object, an array or a boolean
}

// FuzzValidSessionID: a session id the edge routes on is exactly 22
// characters of base64url, so that it can name no other actor (no path, no
// separator); and headersValid refuses exactly the values that are not UTF-8.
func FuzzValidSessionID(f *testing.F) {
	for _, s := range []string{newSessionID(), "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAA/A",
		"AAAAAAAAAAAAAAAAAAAAA\x00", "../../../../etc/passwd", "AAAAAAAAAAAAAAAAAAAA\r\n", "caf\xe9", "", strings.Repeat("A", 10_000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validSessionID(s) {
			if len(s) != sessionIDLen {
				t.Fatalf("valid session id of length %d", len(s))
			}
			for i := 0; i < len(s); i++ {
				c := s[i]
				if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
					t.Fatalf("valid session id %q holds %q", s, c)
				}
			}
		}
		h := http.Header{"Mcp-Session-Id": {"ok", s}}
		name, ok := headersValid(h)
		if ok != utf8.ValidString(s) || (!ok && name != "Mcp-Session-Id") {
			t.Fatalf("headersValid(%q) = %q, %v", s, name, ok)
		}
	})
}

// readBody is the edge's reading of body, nil for one it refuses.
func readBody(body []byte) *rpcbody.Body {
	rb, _ := rpcbody.Read(body)
	return rb
}

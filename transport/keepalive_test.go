package transport

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/sse"
	"github.com/pingmcp/pingmcp/internal/ssetest"
	"github.com/pingmcp/pingmcp/metrics"
)

// readStream sends a request whose answer is an event stream.
func readStream(t *testing.T, ctx context.Context, method, url string, headers map[string]string, body string) *ssetest.Stream {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	req.Header.Set("Accept", "application/json, text/event-stream")
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return ssetest.Read(t, method, resp)
}

const initElicitation = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`

// initializeWith opens a session with body and headers (a token).
func initializeWith(t *testing.T, url, body string, headers map[string]string) string {
	t.Helper()
	resp, b := call{method: http.MethodPost, body: body, headers: headers}.do(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, b)
	}
	id := resp.Header.Get("Mcp-Session-Id")
	h := map[string]string{"Mcp-Session-Id": id, "Mcp-Protocol-Version": "2025-11-25"}
	for k, v := range headers {
		h[k] = v
	}
	if resp, b := (call{method: http.MethodPost, body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, headers: h}).do(t, url); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", resp.StatusCode, b)
	}
	return id
}

// Every open stream that stays silent carries keep-alive comments, one an
// interval: the standalone GET stream, and a POST's stream waiting for the
// client (a tool that asked for an elicitation nobody answers).
func TestEdgeKeepAliveOnIdleStreams(t *testing.T) {
	// Not shorter: the edge cuts a stream its actor left silent for three
	// intervals, and a loaded CI machine (the race detector, the e2e
	// suite's nodes beside it) stalled 150 ms once.
	const interval = 250 * time.Millisecond
	srv := newEdge(t, Options{SSEKeepAlive: interval})
	sid := initializeWith(t, srv.URL, initElicitation, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	session := map[string]string{"Mcp-Session-Id": sid}

	get := readStream(t, ctx, http.MethodGet, srv.URL, session, "")
	post := readStream(t, ctx, http.MethodPost, srv.URL, session,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`)
	post.Await(t, 10*time.Second, "the elicitation request", func(l string) bool { return strings.Contains(l, "elicitation/create") })
	for name, s := range map[string]*ssetest.Stream{"GET": get, "POST": post} {
		for i := range 3 {
			lines := s.Await(t, 10*time.Second, "a keep-alive", ssetest.IsKeepAlive)
			for _, l := range lines[:len(lines)-1] {
				if l != "" && !strings.HasPrefix(l, ":") {
					t.Errorf("%s: keep-alive %d came after %q on an idle stream", name, i, l)
				}
			}
		}
	}
}

// The GET stream ends when the token that opened it is no longer
// accepted, with a retry hint; the client, refused that token, resumes with
// a fresh one and Last-Event-ID, and loses nothing: what the server sent
// meanwhile is replayed. A POST's stream, which carries only its request's
// messages, runs to its answer whatever its token's expiry.
func TestEdgeEndsStreamsAtTokenExpiry(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := resourceEdge(t, mcpResource, Options{
		// A millisecond of skew: the token's exp is the end.
		Verifier:     auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}, Leeway: time.Millisecond}),
		SSEKeepAlive: time.Hour, // only the expiry ends streams here
	})
	token := func(exp time.Time) map[string]string {
		c := is.Claims("alice", mcpResource, "mcp:tools")
		c["exp"] = exp.Unix()
		return map[string]string{"Authorization": "Bearer " + is.Token(t, c)}
	}
	lasting := token(time.Now().Add(time.Hour))
	sid := initializeWith(t, srv.URL, initElicitation, lasting)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	with := func(h map[string]string, more ...string) map[string]string {
		out := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(more); i += 2 {
			out[more[i]] = more[i+1]
		}
		return out
	}
	// A server notification outside any request goes to the GET stream.
	notify := func() {
		t.Helper()
		resp, b := call{method: http.MethodPost, headers: with(lasting),
			body: `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_trigger_prompt_change","arguments":{}}}`}.do(t, srv.URL)
		if resp.StatusCode != http.StatusOK || !strings.Contains(b, `"result"`) {
			t.Fatalf("test_trigger_prompt_change: %d %s", resp.StatusCode, b)
		}
	}
	listChanged := func(l string) bool { return strings.Contains(l, "notifications/prompts/list_changed") }

	ended := streamsEnded("token_expired")
	// The short token's exp is the very time the test checks against (one
	// computed apart could be a second later), and leaves the streams'
	// opening and the notification 3 s at least, under load too.
	exp := time.Now().Add(4 * time.Second).Truncate(time.Second)
	short := token(exp)
	get := readStream(t, ctx, http.MethodGet, srv.URL, with(short), "")
	post := readStream(t, ctx, http.MethodPost, srv.URL, with(short),
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`)
	notify()
	var lastID string
	for _, l := range get.Await(t, 10*time.Second, "the list_changed notification", listChanged) {
		if v, ok := strings.CutPrefix(l, "id: "); ok {
			lastID = v
		}
	}
	if lastID == "" {
		t.Fatal("the GET stream's event carried no id")
	}
	var elicitData string
	for _, l := range post.Await(t, 10*time.Second, "the elicitation request", func(l string) bool { return strings.Contains(l, "elicitation/create") }) {
		if v, ok := strings.CutPrefix(l, "data: "); ok {
			elicitData = v
		}
	}

	rest := get.End(t, 10*time.Second)
	if time.Now().Before(exp) {
		t.Errorf("the GET stream ended before its token expired (%s)", exp)
	}
	if len(rest) < 2 || rest[len(rest)-2] != "retry: 500" {
		t.Errorf("the GET stream ended without a retry hint: %q", rest)
	}
	if n := streamsEnded("token_expired") - ended; n != 1 {
		t.Errorf("pingmcp_streams_ended_total{reason=\"token_expired\"} grew by %v, want 1", n)
	}
	notify() // while the client is away
	// The expired token is refused now: the client refreshes, and resumes
	// the stream with the fresh token where it was.
	if resp, _ := (call{method: http.MethodGet, headers: with(short)}).do(t, srv.URL); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET with the expired token: %d, want 401", resp.StatusCode)
	}
	resumed := readStream(t, ctx, http.MethodGet, srv.URL, with(lasting, "Last-Event-ID", lastID), "")
	resumed.Await(t, 10*time.Second, "the notification sent while the client was away", listChanged)

	// The POST's stream outlived its token, and carries its answer.
	var elicit struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal([]byte(elicitData), &elicit); err != nil || len(elicit.ID) == 0 {
		t.Fatalf("elicitation request %q: %v", elicitData, err)
	}
	answer := `{"jsonrpc":"2.0","id":` + string(elicit.ID) + `,"result":{"action":"accept","content":{"username":"alice","email":"alice@example.com"}}}`
	if resp, b := (call{method: http.MethodPost, body: answer, headers: with(lasting)}).do(t, srv.URL); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("elicitation answer: %d %s", resp.StatusCode, b)
	}
	post.Await(t, 10*time.Second, "the tool's result on the POST's stream, past its token's expiry", func(l string) bool {
		return strings.HasPrefix(l, "data: ") && strings.Contains(l, `"id":2`) && strings.Contains(l, "alice@example.com")
	})
}

// A stream resumed with Last-Event-ID when nothing is left to replay (the
// client lost its connection while a tool waits) gets its headers and
// keep-alives at once, not only with the tool's next event: the go-sdk
// writes nothing then, and the client would wait for headers. The call
// goes on meanwhile: on a session (2025-11-25) a closed POST stream is not
// a cancellation, since its client may resume it (only a stateless
// request's is), and the resumed stream carries the tool's result.
func TestEdgeKeepAliveOnResumedStream(t *testing.T) {
	const interval = 250 * time.Millisecond // as above
	srv := newEdge(t, Options{SSEKeepAlive: interval})
	sid := initializeWith(t, srv.URL, initElicitation, nil)
	session := map[string]string{"Mcp-Session-Id": sid}
	postCtx, disconnect := context.WithCancel(context.Background())
	post := readStream(t, postCtx, http.MethodPost, srv.URL, session,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`)
	var lastID string
	var elicit struct {
		ID json.RawMessage `json:"id"`
	}
	for _, l := range post.Await(t, 10*time.Second, "the elicitation request", func(l string) bool { return strings.Contains(l, "elicitation/create") }) {
		if v, ok := strings.CutPrefix(l, "id: "); ok {
			lastID = v
		}
		if v, ok := strings.CutPrefix(l, "data: "); ok {
			json.Unmarshal([]byte(v), &elicit)
		}
	}
	if len(elicit.ID) == 0 {
		t.Fatal("the elicitation request carried no id")
	}
	disconnect()
	awaitServing(t, sid, "the actor let go of the cut POST stream", 0, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resumed := readStream(t, ctx, http.MethodGet, srv.URL, map[string]string{"Mcp-Session-Id": sid, "Last-Event-ID": lastID}, "")
	resumed.Await(t, 10*time.Second, "a keep-alive on the resumed stream", ssetest.IsKeepAlive)

	answer := `{"jsonrpc":"2.0","id":` + string(elicit.ID) + `,"result":{"action":"accept","content":{"username":"alice","email":"alice@example.com"}}}`
	if resp, b := (call{method: http.MethodPost, body: answer, headers: session}).do(t, srv.URL); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("elicitation answer: %d %s", resp.StatusCode, b)
	}
	resumed.Await(t, 10*time.Second, "the tool's result on the resumed stream", func(l string) bool {
		return strings.HasPrefix(l, "data: ") && strings.Contains(l, `"id":2`) && strings.Contains(l, "alice@example.com") && !strings.Contains(l, `"isError":true`)
	})
}

// Which streams end with their token: those no request bounds.
func TestUnbounded(t *testing.T) {
	tests := []struct {
		method, body string
		want         bool
	}{
		{http.MethodGet, "", true},
		{http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{}}`, true},
		{http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`, false},
		{http.MethodPost, `[{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`, false},
		{http.MethodDelete, "", false},
	}
	for _, tt := range tests {
		var rb *rpcbody.Body
		if tt.body != "" {
			var err error
			if rb, err = rpcbody.ReadAtMost([]byte(tt.body), 10); err != nil {
				t.Fatalf("%s: %v", tt.body, err)
			}
		}
		if got := relayedOf(tt.method, rb, true, nil).unbounded; got != tt.want {
			t.Errorf("relayedOf(%s %s).unbounded = %v, want %v", tt.method, tt.body, got, tt.want)
		}
	}
}

// streamsEnded reads pingmcp_streams_ended_total{reason}.
func streamsEnded(reason string) float64 {
	return counterValue(nil, metrics.StreamsEnded.WithLabelValues(reason))
}

// counterValue reads a counter (t nil: 0 if it cannot be read).
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil && t != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// listenBody is a 2026-07-28 subscriptions/listen (id "l-1") for the tools'
// list changes, and listenHeaders its headers.
const listenBody = `{"jsonrpc":"2.0","id":"l-1","method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}},"notifications":{"toolsListChanged":true}}}`

func listenHeaders(more map[string]string) map[string]string {
	h := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"}
	for k, v := range more {
		h[k] = v
	}
	return h
}

// awaitListenAck reads a listen's stream to its acknowledgement.
func awaitListenAck(t *testing.T, s *ssetest.Stream) {
	t.Helper()
	s.Await(t, 10*time.Second, "the acknowledgement", func(l string) bool {
		return strings.Contains(l, "notifications/subscriptions/acknowledged")
	})
}

// awaitListenEnded reads a listen's stream (id "l-1") to its end, which
// must be the server's end of the subscription: notifications/cancelled
// naming it for reason, then its completion result, and nothing after (no
// retry hint: a listen has nothing to resume).
func awaitListenEnded(t *testing.T, s *ssetest.Stream, reason string) {
	t.Helper()
	var msgs []map[string]any
	rest := s.End(t, 10*time.Second)
	for _, l := range rest {
		if data, ok := strings.CutPrefix(l, "data: "); ok {
			var m map[string]any
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatalf("%q: %v", data, err)
			}
			msgs = append(msgs, m)
		}
	}
	if len(msgs) != 2 || slices.Contains(rest, "retry: 500") {
		t.Fatalf("the listen's stream ended with %q, want two messages and no retry hint", rest)
	}
	p, _ := msgs[0]["params"].(map[string]any)
	meta, _ := p["_meta"].(map[string]any)
	if msgs[0]["method"] != "notifications/cancelled" || p["requestId"] != "l-1" || p["reason"] != reason ||
		meta["io.modelcontextprotocol/subscriptionId"] != "l-1" {
		t.Errorf("first message %v, want notifications/cancelled naming the listen (reason %q)", msgs[0], reason)
	}
	if r, _ := msgs[1]["result"].(map[string]any); msgs[1]["id"] != "l-1" || r["resultType"] != "complete" {
		t.Errorf("last message %v, want the listen's completion result", msgs[1])
	}
}

// A listen's stream is bounded by its token, as the GET stream is; it ends
// as the server's end of the subscription, and its client listens again
// with a fresh token.
func TestEdgeEndsListenAtTokenExpiry(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := resourceEdge(t, mcpResource, Options{
		Verifier:     auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}, Leeway: time.Millisecond}),
		SSEKeepAlive: time.Hour, // only the expiry ends the stream here
	})
	c := is.Claims("alice", mcpResource, "mcp:tools")
	exp := time.Now().Add(3 * time.Second).Truncate(time.Second)
	c["exp"] = exp.Unix()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := streamsEnded("token_expired")
	s := readStream(t, ctx, http.MethodPost, srv.URL, listenHeaders(map[string]string{"Authorization": "Bearer " + is.Token(t, c)}), listenBody)
	awaitListenAck(t, s)
	awaitListenEnded(t, s, "the token that opened the subscription expired; listen again with a fresh one")
	if time.Now().Before(exp) {
		t.Errorf("the listen ended before its token expired (%s)", exp)
	}
	if n := streamsEnded("token_expired") - ended; n != 1 {
		t.Errorf("pingmcp_streams_ended_total{reason=\"token_expired\"} grew by %v, want 1", n)
	}
}

// A draining edge ends the listens it relays at once, as the server's end
// of their subscriptions: a listen never ends by itself, and would hold the
// node's drain to its deadline.
func TestEdgeDrainEndsListens(t *testing.T) {
	e, srv := newEdgeOf(t, Options{SSEKeepAlive: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := readStream(t, ctx, http.MethodPost, srv.URL, listenHeaders(nil), listenBody)
	awaitListenAck(t, s)
	e.Drain()
	awaitListenEnded(t, s, "the node relaying the subscription is stopping; listen again to go on")
}

// The edge ends a listen's stream with its subscription's end once, and
// only when the subscription began (its acknowledgement went through) and
// did not end already (its answer went through); any other stream with a
// retry hint.
func TestRelayedEnd(t *testing.T) {
	rb, err := rpcbody.Read([]byte(listenBody))
	if err != nil {
		t.Fatal(err)
	}
	ack := []byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\",\"params\":{}}\n\n")
	answer := []byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"l-1\",\"result\":{\"resultType\":\"complete\"}}\n\n")
	ends := func(rel *relayed, times int) string {
		var b strings.Builder
		for range times {
			rel.end(&b, "why")
		}
		return b.String()
	}

	rel := relayedOf(http.MethodPost, rb, true, nil)
	if got := ends(rel, 1); got != "" {
		t.Errorf("a listen not acknowledged: ended with %q, want nothing", got)
	}
	rel.saw(ack)
	if got, want := ends(rel, 2), string(sse.ListenEnded(json.RawMessage(`"l-1"`), "why")); got != want {
		t.Errorf("an acknowledged listen, ended twice: %q, want its end once, %q", got, want)
	}
	rel = relayedOf(http.MethodPost, rb, true, nil)
	rel.saw(ack)
	rel.saw(answer)
	if got := ends(rel, 1); got != "" {
		t.Errorf("a listen whose answer went through: ended with %q, want nothing", got)
	}
	if got := ends(relayedOf(http.MethodGet, nil, false, nil), 1); got != sse.RetryHint {
		t.Errorf("a GET stream: ended with %q, want the retry hint", got)
	}
	// A session's listen is resumed like its GET stream.
	session := relayedOf(http.MethodPost, rb, false, nil)
	session.saw(ack)
	if got := ends(session, 1); !session.unbounded || got != sse.RetryHint {
		t.Errorf("a session's listen (unbounded %v): ended with %q, want the retry hint", session.unbounded, got)
	}
}

// A listen whose actor stops (here: its user's sessions ended by an
// operator; also a placement that moved, a link that died) ends as the
// server's end of its subscription, not as a dropped connection.
func TestEdgeEndsListenWhenItsActorStops(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := resourceEdge(t, mcpResource, Options{
		Verifier:     auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}}),
		SSEKeepAlive: time.Hour,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := readStream(t, ctx, http.MethodPost, srv.URL, listenHeaders(map[string]string{"Authorization": "Bearer " + is.Token(t, is.Claims("carol", mcpResource, "mcp:tools"))}), listenBody)
	awaitListenAck(t, s)
	if n := live.StopSubject(testNode.System, is.URL, "carol", "ended by an operator"); n != 1 {
		t.Fatalf("stopped %d actors of carol's, want her principal actor", n)
	}
	awaitListenEnded(t, s, "the node serving the subscription stopped; listen again to go on")
}

package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// TestSessionsFollowTheirClients: sessions whose node died are rehydrated
// on the node their clients' next requests reached, wherever their
// identities hash, so that those requests take no hop from then on; and a
// request reaching another node finds them there.
//
// Eight sessions are opened on follow-a, which is then killed; each is
// called through follow-b. Placed by their identity's hash among the two
// left, about half would live on follow-c, and all eight on follow-b once
// in 256 runs.
func TestSessionsFollowTheirClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	a := startNode(t, "follow-a", append([]string{"--cluster-provider", "automanaged"}, durable...)...)
	b := startNode(t, "follow-b", append([]string{"--cluster-seeds", a.Cluster}, durable...)...)
	c := startNode(t, "follow-c", append([]string{"--cluster-seeds", a.Cluster}, durable...)...)
	for _, n := range []*node{a, b, c} {
		n.awaitMembers(ctx, 3)
	}

	const sessions = 8
	var ids []string
	for i := range sessions {
		dc := connectDurable(t, ctx, a.URL(), false, nil)
		id := dc.cs.ID()
		if status, body := rawPost(t, ctx, a.URL(), id, setLevelBody("info")); status != http.StatusOK {
			t.Fatalf("session %d: setLevel through follow-a: %d %s", i, status, body)
		}
		if h := host(t, ctx, id, a, b, c); h != a {
			t.Fatalf("session %d was opened through follow-a but lives on %s", i, nameOf(h))
		}
		ids = append(ids, id)
	}

	a.kill()
	b.awaitMembers(ctx, 2)
	c.awaitMembers(ctx, 2)

	// Calls through follow-b log: the level set through follow-a holds.
	const call = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_tool_with_logging"}}`
	for i, id := range ids {
		status, body := rawPostRetrying(t, ctx, b.URL(), id, call)
		if status != http.StatusOK || !containsAll(body, `"result"`, "notifications/message") {
			t.Fatalf("session %d through follow-b after the kill: %d %s; want its result and its log messages", i, status, body)
		}
	}
	onB := 0
	for _, id := range ids {
		if host(t, ctx, id, b, c) == b {
			onB++
		}
	}
	if onB != sessions {
		t.Fatalf("%d of %d sessions live on follow-b, which their requests reached after the kill; want all", onB, sessions)
	}
	// (host reads where each session's snapshot says it lives; the nodes
	// count their own live sessions.)
	if onB, onC := b.metric(ctx, liveSessions), c.metric(ctx, liveSessions); onB != sessions || onC != 0 {
		t.Fatalf("live sessions: %v on follow-b, %v on follow-c; want %d and 0", onB, onC, sessions)
	}

	// Through follow-c the sessions are found where they live: none is
	// made anew there.
	rehydratedOnC := c.metric(ctx, rehydrated)
	for i, id := range ids {
		if status, body := rawPostRetrying(t, ctx, c.URL(), id, call); status != http.StatusOK || !containsAll(body, `"result"`, "notifications/message") {
			t.Fatalf("session %d through follow-c: %d %s", i, status, body)
		}
		if h := host(t, ctx, id, b, c); h != b {
			t.Fatalf("session %d moved to %s when called through follow-c", i, nameOf(h))
		}
	}
	if got := c.metric(ctx, rehydrated); got != rehydratedOnC {
		t.Fatalf("follow-c rehydrated %v sessions as it was called, want none", got-rehydratedOnC)
	}
	if onB, onC := b.metric(ctx, liveSessions), c.metric(ctx, liveSessions); onB != sessions || onC != 0 {
		t.Fatalf("live sessions after calls through follow-c: %v on follow-b, %v on follow-c; want %d and 0", onB, onC, sessions)
	}
}

// TestSessionMovesToItsRequests: a session whose requests keep coming
// through another node than its own moves there, once they came eight in
// a row (actors/follow.go's followAfter), and goes on there with its state;
// requests alternating between the nodes leave it where it is.
func TestSessionMovesToItsRequests(t *testing.T) {
	const followAfter = 8
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	a, b := durablePair(t, ctx, "move")

	dc := connectDurable(t, ctx, a.URL(), false, nil)
	id := dc.cs.ID()
	if status, body := rawPost(t, ctx, a.URL(), id, setLevelBody("info")); status != http.StatusOK {
		t.Fatalf("setLevel through move-a: %d %s", status, body)
	}
	const call = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_tool_with_logging"}}`
	callThrough := func(n *node, what string) {
		t.Helper()
		status, body := rawPostRetrying(t, ctx, n.URL(), id, call)
		if status != http.StatusOK || !containsAll(body, `"result"`, "notifications/message") {
			t.Fatalf("%s through %s: %d %s; want its result and its log messages", what, n.name, status, body)
		}
	}
	const moves = "pingmcp_session_moves_total"

	for range 2 * followAfter {
		callThrough(a, "alternating call")
		callThrough(b, "alternating call")
	}
	if h := host(t, ctx, id, a, b); h != a {
		t.Fatalf("after calls alternating between the nodes the session lives on %s, want move-a", nameOf(h))
	}
	if got := a.metric(ctx, moves); got != 0 {
		t.Fatalf("move-a counted %v moves of a session whose calls alternated", got)
	}

	// A session whose stream is held through move-a stays there, whatever
	// comes through move-b: moved, its stream would bring it back.
	streaming := connectDurable(t, ctx, a.URL(), true, nil)
	if _, err := streaming.cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_trigger_tool_change"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-streaming.toolsChanged: // its stream is open
	case <-ctx.Done():
		t.Fatal("no tools/list_changed on the standalone stream")
	}
	for range 2 * followAfter {
		if status, body := rawPostRetrying(t, ctx, b.URL(), streaming.cs.ID(), call); status != http.StatusOK {
			t.Fatalf("call through move-b on the streaming session: %d %s", status, body)
		}
	}
	if h := host(t, ctx, streaming.cs.ID(), a, b); h != a {
		t.Fatalf("the session streaming through move-a lives on %s", nameOf(h))
	}
	if got := a.metric(ctx, moves); got != 0 {
		t.Fatalf("move-a moved the session whose stream it holds (%v moves)", got)
	}

	rehydratedOnB := b.metric(ctx, rehydrated)
	for range followAfter {
		callThrough(b, "call")
	}
	// The eighth moves it, once it ended; the next, through move-b, finds
	// it gone and activates it there.
	if got := a.awaitMetric(ctx, moves, 1); got != 1 {
		t.Fatalf("move-a counted %v moves, want 1", got)
	}
	callThrough(b, "the call after the move")
	if h := host(t, ctx, id, a, b); h != b {
		t.Fatalf("after %d calls in a row through move-b the session lives on %s, want move-b", followAfter, nameOf(h))
	}
	awaitLive(t, ctx, map[*node]float64{a: 1, b: 1}) // (a: the streaming one)
	if got := b.metric(ctx, rehydrated); got != rehydratedOnB+1 {
		t.Fatalf("move-b rehydrated %v sessions, want 1", got-rehydratedOnB)
	}
	// Fewer than eight through move-a leave it on move-b.
	for range followAfter - 1 {
		callThrough(a, "call")
	}
	callThrough(b, "call")
	if h := host(t, ctx, id, a, b); h != b {
		t.Fatalf("the session moved back to %s after %d calls through it", nameOf(h), followAfter-1)
	}
	if got := b.metric(ctx, moves); got != 0 {
		t.Fatalf("move-b counted %v moves after %d calls through move-a", got, followAfter-1)
	}
	if got := b.metric(ctx, rehydrated); got != rehydratedOnB+1 {
		t.Fatalf("move-b rehydrated the session again: %v in all", got-rehydratedOnB)
	}
	awaitLive(t, ctx, map[*node]float64{a: 1, b: 1})
}

// awaitLive waits until each node counts its live sessions as want says.
func awaitLive(t *testing.T, ctx context.Context, want map[*node]float64) {
	t.Helper()
	got := map[string]float64{}
	if !poll(ctx, func() bool {
		ok := true
		for n, w := range want {
			got[n.name] = n.metric(ctx, liveSessions)
			ok = ok && got[n.name] == w
		}
		return ok
	}) {
		t.Fatalf("live sessions by node: %v; want %v", got, want)
	}
}

// TestSessionFollowsAHashingProxy: behind a proxy that sends a session's
// requests to one node, which is not the node that opened it (as a proxy
// hashing on Mcp-Session-Id does), the session moves to that node with its
// standalone stream, and goes on there. The go-sdk client, unaware, gets
// every result, its log messages at the level it set, and a notification
// on its stream after the move.
func TestSessionFollowsAHashingProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	a, b := durablePair(t, ctx, "hash")
	// initialize (no session yet) to hash-a, every request of a session to
	// hash-b.
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			to := a
			if r.In.Header.Get("Mcp-Session-Id") != "" {
				to = b
			}
			r.SetURL(&url.URL{Scheme: "http", Host: to.HTTP})
		},
		FlushInterval: -1, // SSE
	})
	t.Cleanup(proxy.Close)

	dc := connectDurable(t, ctx, proxy.URL+"/mcp", true, nil)
	if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("call %d through the proxy: %v", i, err)
		}
	}
	if got := a.awaitMetric(ctx, "pingmcp_session_moves_total", 1); got != 1 {
		t.Fatalf("hash-a counted %v moves, want 1", got)
	}
	awaitLive(t, ctx, map[*node]float64{a: 0, b: 1})
	// The stream came back, to hash-b.
	for {
		_, err := dc.cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_trigger_tool_change"})
		if err == nil {
			break
		}
		if !retryable(err) || ctx.Err() != nil {
			t.Fatalf("trigger a tool change after the move: %v", err)
		}
	}
	select {
	case <-dc.toolsChanged:
	case <-ctx.Done():
		t.Fatal("tools/list_changed never arrived on the standalone stream after the move")
	}
	if _, err := dc.callLogging(t, ctx); err != nil {
		t.Fatalf("a call after the move: %v", err)
	}
	before := b.metric(ctx, `pingmcp_forwarded_requests_total{route="local"}`)
	if _, err := dc.callLogging(t, ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.metric(ctx, `pingmcp_forwarded_requests_total{route="local"}`); got <= before {
		t.Fatal("a call after the move was not served where it arrived")
	}
}

// nameOf names a node for a message; host's nil is no node.
func nameOf(n *node) string {
	if n == nil {
		return "no node"
	}
	return n.name
}

// BenchmarkSessionMove measures what a session's move costs and saves
// (BENCHMARKS.md, "Sessions follow their traffic"). Each round opens a
// session through move-a, then calls a tool on it through move-b 24 times,
// one at a time: calls 1–8 hop to move-a; the 8th moves it, and one of
// the next two (the move is the actor's once the 8th ended) is refused
// unserved, sent again and activates it on move-b; the rest are served
// where they arrive. It reports the medians, in ms, of the hopping calls
// (1–8), of the slowest of calls 9–11 in each round (the move), and of calls
// 12–24.
func BenchmarkSessionMove(b *testing.B) {
	ctx := context.Background()
	na, nb := durablePair(b, ctx, "move", "--log-level", "info")
	const call = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_simple_text"}}`
	timed := func(url, id string) float64 {
		start := time.Now()
		resp, err := postOnSession(ctx, url, id, call)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"result"`) {
			b.Fatalf("tool call through %s: %d %s", url, resp.StatusCode, body)
		}
		return float64(time.Since(start).Microseconds()) / 1000
	}
	var hop, move, local []float64
	for range b.N {
		id := connectDurable(b, ctx, na.URL(), false, nil).cs.ID()
		timed(na.URL(), id)
		slowest := 0.0
		for i := range 24 {
			d := timed(nb.URL(), id)
			switch {
			case i < 8:
				hop = append(hop, d)
			case i < 11:
				slowest = max(slowest, d)
			default:
				local = append(local, d)
			}
		}
		move = append(move, slowest)
	}
	if got := na.metric(ctx, "pingmcp_session_moves_total"); got != float64(b.N) {
		b.Fatalf("%v moves in %d rounds", got, b.N)
	}
	b.ReportMetric(median(hop), "hop-ms")
	b.ReportMetric(median(move), "move-ms")
	b.ReportMetric(median(local), "local-ms")
	b.ReportMetric(0, "ns/op")
}

// durablePair starts Redis and two nodes of one cluster keeping their
// sessions in it, prefix-a and prefix-b, with args besides, and waits until
// each sees the other.
func durablePair(t testing.TB, ctx context.Context, prefix string, args ...string) (a, b *node) {
	t.Helper()
	rdb := redistest.Start(t)
	common := append(durableArgs(rdb.Options().Addr, newStateKey(t)), args...)
	a = startNode(t, prefix+"-a", append([]string{"--cluster-provider", "automanaged"}, common...)...)
	b = startNode(t, prefix+"-b", append([]string{"--cluster-seeds", a.Cluster}, common...)...)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)
	return a, b
}

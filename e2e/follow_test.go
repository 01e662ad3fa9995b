package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

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
}

// TestSessionMovesToItsRequests: a session whose requests keep coming
// through another node than its own moves there, once they came eight in
// a row (actors/follow.go's followAfter), and goes on there with its state;
// requests alternating between the nodes leave it where it is.
func TestSessionMovesToItsRequests(t *testing.T) {
	const followAfter = 8
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	a := startNode(t, "move-a", append([]string{"--cluster-provider", "automanaged"}, durable...)...)
	b := startNode(t, "move-b", append([]string{"--cluster-seeds", a.Cluster}, durable...)...)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)

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

	rehydratedOnB := b.metric(ctx, rehydrated)
	for range followAfter {
		callThrough(b, "call")
	}
	// The eighth moved it; the next, through move-b, finds it gone and
	// activates it there.
	callThrough(b, "the call after the move")
	if h := host(t, ctx, id, a, b); h != b {
		t.Fatalf("after %d calls in a row through move-b the session lives on %s, want move-b", followAfter, nameOf(h))
	}
	if got := a.awaitMetric(ctx, moves, 1); got != 1 {
		t.Fatalf("move-a counted %v moves, want 1", got)
	}
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
}

// nameOf names a node for a message; host's nil is no node.
func nameOf(n *node) string {
	if n == nil {
		return "no node"
	}
	return n.name
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// listenTasks opens a subscriptions/listen (request id 5) asking for
// notifications/tasks of ids, declaring the tasks extension or not; it
// returns the HTTP status and the stream's JSON-RPC messages as they
// arrive (closed when the stream ends).
func listenTasks(ctx context.Context, t *testing.T, url string, withExt bool, ids ...string) (int, <-chan map[string]any) {
	t.Helper()
	caps := map[string]any{}
	if withExt {
		caps["extensions"] = map[string]any{"io.modelcontextprotocol/tasks": map[string]any{}}
	}
	return listenFor(ctx, t, url, caps, map[string]any{"taskIds": ids})
}

// listenFor is listenTasks for the notifications given, with the client's
// capabilities caps.
func listenFor(ctx context.Context, t *testing.T, url string, caps, notifications map[string]any) (int, <-chan map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 5, "method": "subscriptions/listen", "params": map[string]any{
		"_meta": map[string]any{
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "e2e", "version": "1"},
			"io.modelcontextprotocol/clientCapabilities": caps,
		},
		"notifications": notifications}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "subscriptions/listen")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan map[string]any, 64)
	go func() {
		defer close(msgs)
		defer resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			msgs <- m
			return
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				json.Unmarshal([]byte(data), &m)
				msgs <- m
			}
		}
	}()
	return resp.StatusCode, msgs
}

// TestTaskNotificationsThroughTheEdge: an edge-only node forwards a
// subscriptions/listen asking for notifications/tasks (SEP-2663) to the
// member running the principal's actor, with Redis: the listen is
// acknowledged with the tasks, and gets notifications/tasks as one task
// completes (with its result) and as another is cancelled, each carrying
// the listen's subscription id, then the listen's answer. A client without
// the extension is refused (-32021).
func TestTaskNotificationsThroughTheEdge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	common := []string{"--tools", "conformance", "--log-level", "info"}
	edge := startNode(t, "edge", append(append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, common...), durable...)...)
	member := startNode(t, "member", append(append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, common...), durable...)...)
	edge.awaitMembers(ctx, 2)
	member.awaitMembers(ctx, 2)

	start := func(seconds int) string {
		res, e := taskRPC(ctx, edge.URL(), "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": seconds, "label": "notify"}}, "slow_compute")
		id, _ := res["taskId"].(string)
		if res["resultType"] != "task" || id == "" {
			t.Fatalf("slow_compute: %v %v, want a CreateTaskResult", res, e)
		}
		return id
	}
	quick, long := start(2), start(60)

	if status, msgs := listenTasks(ctx, t, edge.URL(), false, quick); status != http.StatusBadRequest {
		t.Errorf("a listen for tasks without the extension: HTTP %d, want 400", status)
	} else if m := <-msgs; m["error"].(map[string]any)["code"] != float64(-32021) {
		t.Errorf("a listen for tasks without the extension: %v, want -32021", m)
	}

	lctx, leave := context.WithCancel(ctx)
	defer leave()
	status, msgs := listenTasks(lctx, t, edge.URL(), true, quick, long)
	if status != http.StatusOK {
		t.Fatalf("listen: HTTP %d", status)
	}
	got := map[string]map[string]any{} // by "taskId status"
	next := func(what string) map[string]any {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("the listen ended waiting for %s", what)
			}
			p, _ := m["params"].(map[string]any)
			if p == nil {
				p, _ = m["result"].(map[string]any) // the listen's answer
			}
			meta, _ := p["_meta"].(map[string]any)
			if meta["io.modelcontextprotocol/subscriptionId"] != float64(5) {
				t.Fatalf("message without the listen's subscription id: %v", m)
			}
			if m["method"] == "notifications/tasks" {
				got[p["taskId"].(string)+" "+p["status"].(string)] = p
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatalf("nothing on the listen for 30s, waiting for %s", what)
			return nil
		}
	}
	awaitNote := func(id, status string) map[string]any {
		for got[id+" "+status] == nil {
			next(id + " " + status)
		}
		return got[id+" "+status]
	}
	ack := next("the acknowledgement")
	if ack["method"] != "notifications/subscriptions/acknowledged" {
		t.Fatalf("first message: %v", ack)
	}
	if ids, _ := ack["params"].(map[string]any)["notifications"].(map[string]any)["taskIds"].([]any); len(ids) != 2 {
		t.Fatalf("acknowledged %v, want both tasks", ack)
	}
	t0 := time.Now()
	p := awaitNote(quick, "completed")
	if res, _ := p["result"].(map[string]any); res["content"] == nil {
		t.Fatalf("completed notification without the result: %v", p)
	}
	t.Logf("completion notified %s after the listen was acknowledged", time.Since(t0).Round(time.Millisecond))
	if res, e := taskRPC(ctx, edge.URL(), "tasks/cancel", map[string]any{"taskId": long}, long); res["resultType"] != "complete" {
		t.Fatalf("tasks/cancel: %v %v", res, e)
	}
	t1 := time.Now()
	awaitNote(long, "cancelled")
	t.Logf("cancellation notified %s after the cancel's answer", time.Since(t1).Round(time.Microsecond))
	// Both ended: the server ends the subscription, notifications/cancelled
	// naming the listen first (2026-07-28), then the listen's answer.
	var before map[string]any // the message before the answer
	cancels := 0
	for m := next("the listen's answer"); m["id"] != float64(5); m = next("the listen's answer") {
		if m["method"] == "notifications/cancelled" {
			cancels++
		}
		before = m
	}
	if p, _ := before["params"].(map[string]any); cancels != 1 || before["method"] != "notifications/cancelled" || p["requestId"] != float64(5) {
		t.Errorf("the listen's answer came after %v (%d notifications/cancelled), want right after one naming it", before, cancels)
	}
}

// listenToolChanges opens a stateless listen for the tools' list changes
// (request id 5), as listenFor.
func listenToolChanges(ctx context.Context, t *testing.T, url string) (int, <-chan map[string]any) {
	t.Helper()
	return listenFor(ctx, t, url, map[string]any{}, map[string]any{"toolsListChanged": true})
}

// startCluster starts a node of each role (edge or member), each with
// args: the first with the automanaged provider, the others seeded by it;
// it returns them, in that order, once each sees them all as members.
func startCluster(t *testing.T, ctx context.Context, args []string, roles ...string) []*node {
	t.Helper()
	var nodes []*node
	for i, role := range roles {
		join := []string{"--cluster-provider", "automanaged"}
		if i > 0 {
			join = []string{"--cluster-seeds", nodes[0].Cluster}
		}
		nodes = append(nodes, startNode(t, fmt.Sprintf("%s%d", role, i), append(append([]string{"--role", role}, join...), args...)...))
	}
	for _, n := range nodes {
		n.awaitMembers(ctx, len(roles))
	}
	return nodes
}

// TestDrainEndsListens: a node that drains (SIGTERM) ends the stateless
// listens it serves or relays at once, as the server's end of their
// subscriptions (notifications/cancelled naming the listen, then its
// completion result, once), and exits: a listen never ends by itself, and
// each would otherwise hold the drain to --drain-timeout (10 minutes
// here), then end with an error. First the member whose actor serves a
// listen through an edge-only node drains, then that edge with another
// listen it relays to the member that took the principal over.
func TestDrainEndsListens(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := startCluster(t, ctx, []string{"--drain-timeout", "10m"}, "edge", "member", "member")
	edge, m1, m2 := nodes[0], nodes[1], nodes[2]

	listen := func(what string) <-chan map[string]any {
		t.Helper()
		status, msgs := listenToolChanges(ctx, t, edge.URL())
		if status != http.StatusOK {
			t.Fatalf("%s: HTTP %d", what, status)
		}
		select {
		case m := <-msgs:
			if m["method"] != "notifications/subscriptions/acknowledged" {
				t.Fatalf("%s: first message %v, want the acknowledgement", what, m)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no acknowledgement", what)
		}
		return msgs
	}
	ended := func(what string, msgs <-chan map[string]any, node *node, reason string) {
		t.Helper()
		var got []map[string]any
		for m := range msgs {
			got = append(got, m)
		}
		if len(got) != 2 {
			t.Fatalf("%s: the listen ended with %v, want its cancellation and its answer", what, got)
		}
		p, _ := got[0]["params"].(map[string]any)
		if got[0]["method"] != "notifications/cancelled" || p["requestId"] != float64(5) || !strings.Contains(p["reason"].(string), reason) {
			t.Errorf("%s: %v, want notifications/cancelled naming the listen (%q)", what, got[0], reason)
		}
		if r, _ := got[1]["result"].(map[string]any); got[1]["id"] != float64(5) || r["resultType"] != "complete" {
			t.Errorf("%s: %v, want the listen's completion result", what, got[1])
		}
		select {
		case <-node.done:
		case <-ctx.Done():
			t.Fatalf("%s: %s did not exit: the listen held its drain", what, node.name)
		}
	}

	msgs := listen("a listen through the edge")
	var host, other *node
	for _, n := range edge.nodes(ctx) {
		switch {
		case n.Principals == 1 && n.Address == m1.Cluster:
			host, other = m1, m2
		case n.Principals == 1 && n.Address == m2.Cluster:
			host, other = m2, m1
		}
	}
	if host == nil {
		t.Fatalf("no member hosts the listen's principal: %+v", edge.nodes(ctx))
	}
	host.cmd.Process.Signal(syscall.SIGTERM)
	ended("its member drained", msgs, host, "is stopping")
	edge.awaitMembers(ctx, 2)

	msgs = listen("a listen relayed by the edge")
	edge.cmd.Process.Signal(syscall.SIGTERM)
	ended("the edge drained", msgs, edge, "relaying the subscription is stopping")
	if other.logged(`"msg":"drain timed out`) || host.logged(`"msg":"drain timed out`) {
		t.Error("a drain timed out")
	}
}

// TestListensCappedAcrossEdges: a principal's stateless listens are capped
// by its actor, whichever edges they come through (each edge caps only
// what passes through it): with --max-streams-per-principal 1, a listen
// through one edge-only node holds the one place, and a second through
// another edge, which has none of the principal's streams, is refused 429
// by the actor; once the first ends, the second is taken.
func TestListensCappedAcrossEdges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := startCluster(t, ctx, []string{"--max-streams-per-principal", "1"}, "edge", "edge", "member")
	e1, e2 := nodes[0], nodes[1]

	lctx, leave := context.WithCancel(ctx)
	status, msgs := listenToolChanges(lctx, t, e1.URL())
	if m := <-msgs; status != http.StatusOK || m["method"] != "notifications/subscriptions/acknowledged" {
		t.Fatalf("the first listen: %d %v", status, m)
	}
	status, refused := listenToolChanges(ctx, t, e2.URL())
	m := <-refused
	e, _ := m["error"].(map[string]any)
	data, _ := e["data"].(map[string]any)
	if status != http.StatusTooManyRequests || data["limit"] != "principal_listens" || data["retryable"] != true {
		t.Fatalf("a second listen through another edge: %d %v, want 429 principal_listens", status, m)
	}
	leave()
	if !poll(ctx, func() bool {
		status, msgs := listenToolChanges(ctx, t, e2.URL())
		<-msgs
		return status == http.StatusOK
	}) {
		t.Fatal("no listen through the other edge once the first ended")
	}
}

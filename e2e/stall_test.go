package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/internal/redistest"
)

// TestStalledNodeRejoins: a member stopped for longer than the failure
// detector allows (a long collection, CPU throttling, a paused VM) counts
// as gone; resumed, it is a member again on both sides, under its own id,
// and serves its sessions through the other node. protoactor blocks, for
// good, the id of a member that left: before the seeds provider reported
// admissions (cluster/seeds.go), the two stayed apart until one restarted.
// The second stop outlasts protoactor's gossip heartbeat expiration (20 s),
// which blocked a member too before gossip was silenced.
func TestStalledNodeRejoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	a := startNode(t, "stall-a", "--cluster-insecure", "--cluster-provider", "automanaged")
	b := startNode(t, "stall-b", "--cluster-insecure", "--cluster-seeds", a.Cluster)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)
	bID := b.id(ctx)

	cs := connect(t, ctx, b.URL(), nil) // lives on b, where it was opened
	if owner := host(t, ctx, cs.ID(), a, b); owner != b {
		t.Fatalf("session %s lives on %v, want stall-b", cs.ID(), owner)
	}
	throughA := connectRaw(t, a.URL(), cs.ID())
	if code := throughA.post(ctx, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); code != http.StatusOK {
		t.Fatalf("ping through stall-a before the stop: %d", code)
	}

	for round, stop := range []time.Duration{0, 21 * time.Second} {
		stopped := time.Now()
		if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		a.awaitMembers(ctx, 1)                 // b missed its probes
		time.Sleep(stop - time.Since(stopped)) // the stall itself, not a wait for an event
		if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		a.awaitMembers(ctx, 2)
		b.awaitMembers(ctx, 2)
		if !slices.ContainsFunc(a.nodes(ctx), func(m admin.NodeInfo) bool { return m.ID == bID && !m.Self }) {
			t.Fatalf("round %d: stall-a's nodes %+v do not name stall-b by its id %s", round, a.nodes(ctx), bID)
		}
		if code := throughA.post(ctx, `{"jsonrpc":"2.0","id":2,"method":"ping"}`); code != http.StatusOK {
			t.Fatalf("round %d: ping through stall-a to the session on stall-b: %d", round, code)
		}
		if err := cs.Ping(ctx, nil); err != nil {
			t.Fatalf("round %d: ping through stall-b: %v", round, err)
		}
	}
}

// TestStalledNodeRejoinsDurable: with Redis, a session whose node is
// stopped goes on through the other node, from Redis; once the stopped node
// is back and a member again, its activation from before the stop, stale,
// serves nothing: what the session became meanwhile (here, its log level)
// holds through either node, and it is live on one.
func TestStalledNodeRejoinsDurable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel) // after the client's cleanup: it closes its session with it
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	a := startNode(t, "stall-a", append([]string{"--cluster-insecure", "--cluster-provider", "automanaged"}, durable...)...)
	b := startNode(t, "stall-b", append([]string{"--cluster-insecure", "--cluster-seeds", a.Cluster}, durable...)...)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)

	dc := connectDurable(t, ctx, b.URL(), false, nil)
	if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.callLogging(t, ctx); err != nil {
		t.Fatal(err)
	}
	id := dc.cs.ID()
	if owner := host(t, ctx, id, a, b); owner != b {
		t.Fatalf("session %s lives on %v, want stall-b", id, owner)
	}
	epochKey := "pingmcp:session:{" + id + "}:epoch"
	epoch := func() int {
		e, err := rdb.Get(ctx, epochKey).Int()
		if err != nil {
			t.Fatalf("the session's epoch: %v", err)
		}
		return e
	}
	before := epoch()

	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	a.awaitMembers(ctx, 1)
	// Through a, the session comes back from Redis and changes: at "error",
	// the tool's three info messages are no longer sent.
	if status, body := rawPostRetrying(t, ctx, a.URL(), id, setLevelBody("error")); status != http.StatusOK || strings.Contains(body, `"error"`) && !strings.Contains(body, `"result"`) {
		t.Fatalf("setLevel through stall-a while stall-b is stopped: %d %s", status, body)
	}
	if e := epoch(); e <= before {
		t.Fatalf("epoch %d after stall-a took the session, want more than %d", e, before)
	}
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)

	// b's activation from before the stop holds level "info": had it served
	// a call, the three messages would be in the answer.
	const call = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_tool_with_logging"}}`
	for _, n := range []*node{a, b, a} {
		status, body := rawPostRetrying(t, ctx, n.URL(), id, call)
		if status != http.StatusOK || !strings.Contains(body, `"result"`) || strings.Contains(body, "notifications/message") {
			t.Fatalf("tool call through %s after the rejoin: %d %s; want its result and no log message (level error)", n.name, status, body)
		}
	}
	if got := b.awaitMetric(ctx, "pingmcp_fencing_rejections_total", 1); got < 1 {
		t.Fatal("stall-b never counted its activation from before the stop fenced")
	}
	// It lives on one node (host fails the test if on both): which one,
	// the first of its requests after the rejoin decided (its activation
	// is made where a request reached, cluster/placement.go).
	if owner := host(t, ctx, id, a, b); owner == nil {
		t.Fatal("after the rejoin the session is live nowhere")
	}
	if snap := rdb.Get(ctx, "pingmcp:session:{"+id+"}:snap").Val(); !strings.Contains(snap, `"log_level":"error"`) {
		t.Fatalf("the session's snapshot lost its level: %s", snap)
	}
}

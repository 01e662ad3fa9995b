package e2e

import (
	"context"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/admin"
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

package cluster

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
)

// sharedStoresNode is a node of its own (SharedStores: it may take an
// unreachable member's sessions over).
func sharedStoresNode(tb testing.TB) *Node {
	tb.Helper()
	n, err := Start(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), SharedStores: true,
		Kinds: []*cluster.Kind{cluster.NewKind(probeKind, actor.PropsFromFunc(func(actor.Context) {}))}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Stop(false) })
	return n
}

// A member that a node cannot reach (a port nothing listens on: refused)
// counts in its placement as one that left: the identities it owned are
// placed here at once. Membership listing it anew (a restart at the same
// address) counts it again, and the next sign is tried anew at once:
// found by a review, a retry loop outliving the first watch ignored new
// signs, and kept the placer refusing activations, for up to 5 s.
func TestSuspectExcludesAndReincludes(t *testing.T) {
	node := sharedStoresNode(t)
	me := node.Cluster.MemberList.Members().Members()[0]
	other := &cluster.Member{Id: "other", Host: "127.0.0.1", Port: 1, Kinds: []string{probeKind}}
	two := cluster.NewRendezvous()
	two.UpdateMembers(cluster.Members{me, other})
	var theirs *cluster.ClusterIdentity
	for i := 0; theirs == nil; i++ {
		c := cluster.NewClusterIdentity(fmt.Sprintf("s-%d", i), probeKind)
		if two.GetByClusterIdentity(c) == other.Address() {
			theirs = c
		}
	}
	// Told to the placement alone: protoactor's own parts, told of a member
	// at a port nothing listens on, would dial it over gRPC, whose retries
	// outlive the node and race with the next test's (grpclog's global
	// logger, set by each node's start).
	node.place.heard(&cluster.ClusterTopology{Members: []*cluster.Member{me, other}, Joined: []*cluster.Member{other}})
	if owner := node.place.rdv.Load().GetByClusterIdentity(theirs); owner != other.Address() {
		t.Fatalf("owner %s", owner)
	}
	node.suspect(other.Address())
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, u := node.place.listedMember(other.Address()); u {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never counted unreachable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if owner := node.place.rdv.Load().GetByClusterIdentity(theirs); owner != me.Address() {
		t.Fatalf("owner while unreachable: %s", owner)
	}
	start := time.Now()
	pid := node.place.get(theirs, true, nil)
	t.Logf("get while unreachable: %v in %v", pid, time.Since(start))
	if pid == nil || pid.Address != me.Address() {
		t.Fatalf("get while unreachable: %v", pid)
	}
	// (Stopped, so that the placer registers no activation with the member
	// that joins next: protoactor would dial it over gRPC, whose client
	// outlives the test and races with the next test's node start: grpclog's
	// global logger, set by each.)
	if err := node.System.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	// Restarted at the same address, a new member.
	again := &cluster.Member{Id: "other-2", Host: "127.0.0.1", Port: 1, Kinds: []string{probeKind}}
	node.place.heard(&cluster.ClusterTopology{Members: []*cluster.Member{me, again}, Joined: []*cluster.Member{again}, Left: []*cluster.Member{other}})
	if _, u := node.place.listedMember(other.Address()); u {
		t.Fatalf("still unreachable after joining anew")
	}
	if owner := node.place.rdv.Load().GetByClusterIdentity(theirs); owner != other.Address() {
		t.Fatalf("owner after joining anew: %s", owner)
	}
	if node.tryingToReach(other.Address()) {
		t.Errorf("tryingToReach says a probe of the member that joined anew is under way; none is (the placer refuses Failed meanwhile)")
	}
	// It is suspected again at once (a lookup timed out, say).
	node.suspect(other.Address())
	deadline = time.Now().Add(4 * time.Second)
	for {
		if _, u := node.place.listedMember(other.Address()); u {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never counted unreachable again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

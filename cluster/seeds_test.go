package cluster

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// TestSeedsAdmitAnew: the seeds provider reports a peer under an admission
// id, which changes each time the peer is counted in again (after counting
// gone, or restarted) and never otherwise, and is never one drawn before:
// protoactor blocks for good the id of a member that leaves, so a peer
// reported again under the same id would never be a member again.
func TestSeedsAdmitAnew(t *testing.T) {
	p := newSeedsProvider(Config{ProbeFailures: 3, Logger: slog.New(slog.DiscardHandler)})
	p.self = &cluster.Member{Id: "self", Host: "127.0.0.1", Port: 1, Kinds: []string{SessionKind}}
	const seed, learned = "127.0.0.1:2", "127.0.0.1:3"
	p.peers[seed] = &peer{seed: true}
	answer := func(id string, port int32, members ...*envelope.Member) *envelope.MemberInfo {
		return &envelope.MemberInfo{Self: &envelope.Member{Id: id, Host: "127.0.0.1", Port: port, Kinds: []string{SessionKind}}, Members: members}
	}
	miss := func(addr string, times int) {
		for range times {
			p.merge(addr, nil)
		}
	}
	reported := func() []string {
		var ids []string
		for _, m := range p.alive() {
			ids = append(ids, m.Id)
		}
		return ids
	}
	check := func(step string, want ...string) {
		t.Helper()
		if got := reported(); !slices.Equal(got, want) {
			t.Fatalf("%s: reported %q, want %q", step, got, want)
		}
	}

	check("alone", "self")
	p.merge(seed, answer("b", 2, &envelope.Member{Id: "c", Host: "127.0.0.1", Port: 3}))
	check("b answered", "self", "b#1")
	miss(seed, 2)
	p.merge(seed, answer("b", 2))
	check("b missed two probes, then answered", "self", "b#1")
	miss(seed, 3)
	check("b missed three", "self")
	p.merge(seed, answer("b", 2))
	check("b answers again", "self", "b#2")

	p.merge(learned, answer("c", 3))
	check("c, learned from b, answered", "self", "b#2", "c#3")
	miss(learned, 3) // forgotten: only a seed is kept
	if _, known := p.peers[learned]; known {
		t.Fatal("a learned peer that missed its probes is still probed")
	}
	p.heardOf(&envelope.Member{Id: "c", Host: "127.0.0.1", Port: 3})
	p.merge(learned, answer("c", 3))
	check("c back", "self", "b#2", "c#4")

	p.merge(seed, answer("b2", 2))
	check("b restarted on its address", "self", "b2#5", "c#4")

	// Probes are answered under the processes' ids.
	info := p.info()
	if info.Self.GetId() != "self" || len(info.Members) != 3 || info.Members[0].GetId() != "self" || info.Members[1].GetId() != "b2" || info.Members[2].GetId() != "c" {
		t.Fatalf("info = %v", info)
	}
	if got := MemberID(&cluster.Member{Id: "b2#5"}); got != "b2" {
		t.Errorf("MemberID(b2#5) = %q", got)
	}
	if got := MemberID(p.self); got != "self" {
		t.Errorf("MemberID(self) = %q", got)
	}
}

package cluster

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

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

// TestSeedsDampFlaps: a process counted gone and back again and again
// within flapWindow is taken back only after 1, 2, 4 ... answers in a row
// (a missed probe starts the count again), at most maxHoldAnswers; a
// learned peer forgotten meanwhile keeps its record (it is the process's);
// a restart, or a process that stayed away flapWindow, is admitted at its
// first answer.
func TestSeedsDampFlaps(t *testing.T) {
	p := newSeedsProvider(Config{ProbeFailures: 3, Logger: slog.New(slog.DiscardHandler)})
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	p.self = &cluster.Member{Id: "self", Host: "127.0.0.1", Port: 1}
	const seed, learned = "127.0.0.1:2", "127.0.0.1:3"
	p.peers[seed] = &peer{seed: true}
	answer := func(addr, id string, times int) {
		port, _ := strconv.Atoi(addr[len("127.0.0.1:"):])
		for range times {
			p.merge(addr, &envelope.MemberInfo{Self: &envelope.Member{Id: id, Host: "127.0.0.1", Port: int32(port)}})
			now = now.Add(500 * time.Millisecond)
		}
	}
	gone := func(addr string) {
		for range 3 {
			p.merge(addr, nil)
			now = now.Add(500 * time.Millisecond)
		}
	}
	counted := func(id string) bool {
		for _, m := range p.alive() {
			if MemberID(m) == id {
				return true
			}
		}
		return false
	}
	// admittedAfter checks that id is counted in after exactly want
	// answers in a row.
	admittedAfter := func(step, addr, id string, want int) {
		t.Helper()
		for i := 1; i <= want; i++ {
			answer(addr, id, 1)
			if got := counted(id); got != (i == want) {
				t.Fatalf("%s: after %d answers counted in %v, want in only after %d", step, i, got, want)
			}
		}
	}

	admittedAfter("first sight", seed, "b", 1)
	for ends, want := range []int{1, 2, 4, 8} {
		gone(seed)
		if counted("b") {
			t.Fatalf("b missed three probes and is still counted in")
		}
		admittedAfter(fmt.Sprintf("after %d ends", ends+1), seed, "b", want)
	}
	// A missed probe while held starts the count again.
	gone(seed)
	answer(seed, "b", 15)
	p.merge(seed, nil)
	admittedAfter("16 answers after a miss", seed, "b", 16)
	// Capped.
	for range 4 {
		gone(seed)
		answer(seed, "b", maxHoldAnswers)
	}
	gone(seed)
	admittedAfter("capped", seed, "b", maxHoldAnswers)
	// A restart is a new process.
	gone(seed)
	admittedAfter("restarted", seed, "b2", 1)
	// Ends long ago are forgotten, and so is their record.
	now = now.Add(flapWindow)
	gone(seed)
	p.mu.Lock()
	p.forgetFlapsLocked()
	records := len(p.flaps)
	p.mu.Unlock()
	if records != 1 {
		t.Errorf("%d flap records, want b2's alone", records)
	}
	admittedAfter("after flapWindow", seed, "b2", 1)

	// A learned peer: forgotten after its misses, heard of again, still held.
	p.heardOf(&envelope.Member{Id: "c", Host: "127.0.0.1", Port: 3})
	admittedAfter("c first", learned, "c", 1)
	for _, want := range []int{1, 2} {
		gone(learned)
		if _, known := p.peers[learned]; known {
			t.Fatal("a learned peer that missed its probes is still probed")
		}
		p.heardOf(&envelope.Member{Id: "c", Host: "127.0.0.1", Port: 3})
		admittedAfter("c back", learned, "c", want)
	}
}

// TestSeedsCountAProcessOnce: a process reached under two addresses (a
// seed given by a name, and the address it advertises, learned from its
// answer) is reported once, under one admission while either address
// answers (protoactor would take a new one as the process leaving and
// another joining, and end every stream to it), and its going is one end,
// not two. A seed that led back to this node is no longer probed.
func TestSeedsCountAProcessOnce(t *testing.T) {
	p := newSeedsProvider(Config{ProbeFailures: 3, Logger: slog.New(slog.DiscardHandler)})
	p.self = &cluster.Member{Id: "self", Host: "127.0.0.1", Port: 1}
	const seed, advertised = "localhost:2", "127.0.0.1:2"
	p.peers[seed] = &peer{seed: true}
	b := &envelope.MemberInfo{Self: &envelope.Member{Id: "b", Host: "127.0.0.1", Port: 2}}
	b.Members = []*envelope.Member{b.Self}
	reported := func() (out []string) {
		for _, m := range p.alive() {
			out = append(out, m.Id+"@"+m.Address())
		}
		return out
	}
	check := func(step string, want ...string) {
		t.Helper()
		if got := reported(); !slices.Equal(got, want) {
			t.Fatalf("%s: reported %q, want %q", step, got, want)
		}
	}
	miss := func(addr string) {
		for range 3 {
			p.merge(addr, nil)
		}
	}

	p.merge(seed, b) // b answers the seed's name, and names itself
	check("b answered its seed's name", "self@127.0.0.1:1", "b#1@127.0.0.1:2")
	if _, known := p.peers[advertised]; !known {
		t.Fatal("b's own address was not learned from its answer")
	}
	p.merge(advertised, b)
	check("b answered under its own address too", "self@127.0.0.1:1", "b#1@127.0.0.1:2")
	miss(seed)
	check("b's seed name stopped answering", "self@127.0.0.1:1", "b#1@127.0.0.1:2")
	p.merge(seed, b)
	check("b's seed name answers again", "self@127.0.0.1:1", "b#1@127.0.0.1:2")
	miss(advertised)
	check("b's own address stopped answering", "self@127.0.0.1:1", "b#1@127.0.0.1:2")
	if f := p.flaps["b"]; f.ends != 0 {
		t.Errorf("b counted gone %d times while still counted in", f.ends)
	}
	miss(seed)
	check("b gone under both", "self@127.0.0.1:1")
	if f := p.flaps["b"]; f.ends != 1 {
		t.Errorf("b's going counted %d times, want 1", f.ends)
	}
	p.merge(seed, b)
	check("b back", "self@127.0.0.1:1", "b#2@127.0.0.1:2")
	p.merge(advertised, b)
	check("b back under its own address too", "self@127.0.0.1:1", "b#2@127.0.0.1:2")

	p.forgetSelf(seed)
	if _, known := p.peers[seed]; known {
		t.Error("a seed that led back to this node is still probed")
	}
	check("the seed forgotten, b still counted under its own address", "self@127.0.0.1:1", "b#2@127.0.0.1:2")
}

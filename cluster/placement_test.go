package cluster

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
)

const probeKind = "probe"

// probeNode is a single node hosting probe actors, which do nothing.
func probeNode(tb testing.TB) *Node {
	tb.Helper()
	n, err := Start(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		Kinds: []*cluster.Kind{cluster.NewKind(probeKind, actor.PropsFromFunc(func(actor.Context) {}))}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Stop(false) })
	return n
}

// probePair is a probe node, its member, another member at an address
// where nothing listens, and rendezvous hashing over the two.
func probePair(tb testing.TB) (node *Node, me, other *cluster.Member, two *cluster.Rendezvous) {
	node = probeNode(tb)
	me = node.Cluster.MemberList.Members().Members()[0]
	other = &cluster.Member{Id: "other", Host: "127.0.0.1", Port: 1, Kinds: []string{probeKind}}
	two = cluster.NewRendezvous()
	two.UpdateMembers(cluster.Members{me, other})
	return node, me, other, two
}

// activate returns the activations of n identities, made by the cluster.
func activate(tb testing.TB, node *Node, prefix string, n int) map[string]*actor.PID {
	tb.Helper()
	pids := make(map[string]*actor.PID, n)
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		pid := node.Cluster.Get(id, probeKind)
		if pid == nil {
			tb.Fatalf("no activation of %s", id)
		}
		pids[id] = pid
	}
	return pids
}

// terminations watches pids and counts those that terminate.
type terminations struct {
	mu   sync.Mutex
	gone map[string]bool
	cond chan struct{} // a signal per termination
}

func watchAll(tb testing.TB, node *Node, pids map[string]*actor.PID) *terminations {
	t := &terminations{gone: map[string]bool{}, cond: make(chan struct{}, len(pids))}
	byID := map[string]string{}
	for id, pid := range pids {
		byID[pid.Id] = id
	}
	watcher := node.System.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			for _, pid := range pids {
				ctx.Watch(pid)
			}
		case *actor.Terminated:
			t.mu.Lock()
			t.gone[byID[m.Who.Id]] = true
			t.mu.Unlock()
			t.cond <- struct{}{}
		}
	}))
	tb.Cleanup(func() { node.System.Root.Stop(watcher) })
	return t
}

func (t *terminations) await(tb testing.TB, n int) {
	tb.Helper()
	for i := range n {
		select {
		case <-t.cond:
		case <-time.After(30 * time.Second):
			tb.Fatalf("%d of %d activations terminated", i, n)
		}
	}
}

// When membership gives identities to another member, this member
// registers their activations with it, and stops exactly those it does not
// take (it lists another activation), at its handback pace. The others
// live on, kept for it: the next request for one finds it, not a new
// activation, when the identity comes back to this member too.
func TestPlacementHandsBackMovedActivations(t *testing.T) {
	node, me, other, two := probePair(t)
	sent := elsewhereAsked(node, other.Address())
	pids := activate(t, node, "s", 5*handbackBatch)
	gone := watchAll(t, node, pids)

	moved := map[string]bool{}
	for id := range pids {
		if two.GetByClusterIdentity(cluster.NewClusterIdentity(id, probeKind)) == other.Address() {
			moved[id] = true
		}
	}
	if len(moved) <= handbackBatch || len(moved) == len(pids) {
		t.Fatalf("%d of %d identities move: want more than a batch and not all", len(moved), len(pids))
	}
	// Told to the placement actor alone: lookups here still pick this node.
	node.System.Root.Send(actor.NewPID(node.Address(), activatorName),
		&cluster.ClusterTopology{Members: []*cluster.Member{me, other}, Joined: []*cluster.Member{other}})
	// other takes every other one, and lists another activation of the
	// rest (one a request to it made meanwhile, say).
	taken := map[string]bool{}
	asked := registrations(t, node, sent, len(moved), func(id string, pid *actor.PID) *cluster.ActivationResponse {
		if !pid.Equal(pids[id]) {
			t.Errorf("%s registered as %v, its activation is %v", id, pid, pids[id])
		}
		if len(taken)*2 < len(moved) {
			taken[id] = true
			return &cluster.ActivationResponse{Pid: pid}
		}
		return &cluster.ActivationResponse{Pid: actor.NewPID(other.Address(), "another")}
	})
	for _, id := range asked {
		if !moved[id] {
			t.Errorf("%s registered with other, which does not own it", id)
		}
	}
	gone.await(t, len(moved)-len(taken))

	// Back to this node alone: a kept or taken identity's activation is
	// the same, a refused one's is new. (protoactor tells a stopped
	// activation's watchers before its parent, the placement actor: right
	// after this test's watcher heard, a request may still find the dead
	// one, as in TestPlacementForgetsTerminated.)
	node.System.Root.Send(actor.NewPID(node.Address(), activatorName),
		&cluster.ClusterTopology{Members: []*cluster.Member{me}, Left: []*cluster.Member{other}})
	deadline := time.Now().Add(10 * time.Second)
	for id, pid := range pids {
		again := node.Cluster.Get(id, probeKind)
		stopped := moved[id] && !taken[id]
		for stopped && again.Equal(pid) && time.Now().Before(deadline) {
			again = node.Cluster.Get(id, probeKind)
		}
		switch {
		case again == nil:
			t.Fatalf("no activation of %s", id)
		case stopped && again.Equal(pid):
			t.Errorf("%s moved and was refused, but its activation was kept", id)
		case !stopped && !again.Equal(pid):
			t.Errorf("%s stayed or was taken, but its activation was replaced", id)
		}
	}
	gone.mu.Lock()
	defer gone.mu.Unlock()
	for id := range gone.gone {
		if !moved[id] || taken[id] {
			t.Errorf("%s stayed or was taken, but its activation was stopped", id)
		}
	}
}

// An owner lists the activation a member registers with it as membership
// made it the owner (hostedHere), and hands it out; it answers a second
// registration with the one it lists, and refuses one for an identity it
// does not own, or of an activation that is not of the identity.
func TestPlacementListsRegisteredActivations(t *testing.T) {
	node, me, other, two := probePair(t)
	mine, its := ownedBy(two, "r", me.Address(), 1)[0], ownedBy(two, "r", other.Address(), 1)[0]
	answers := elsewhere(node, other.Address())
	placer := actor.NewPID(node.Address(), activatorName)
	root := node.System.Root
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}})
	register := func(id, activation string) *cluster.ActivationResponse {
		root.RequestWithCustomSender(placer, &cluster.ActivationRequest{
			ClusterIdentity: cluster.NewClusterIdentity(id, newKind+probeKind), RequestId: hostedHere + activation,
		}, actor.NewPID(other.Address(), "future"))
		select {
		case a := <-answers:
			if r, ok := a.(*cluster.ActivationResponse); ok {
				return r
			}
			t.Fatalf("a registration answered %T", a)
		case <-time.After(10 * time.Second):
			t.Fatal("a registration unanswered")
		}
		return nil
	}
	child := func(id, n string) string { return activatorName + "/" + id + "$" + n }
	if r := register(mine, child(its, "1")); !r.Failed || r.Pid != nil {
		t.Fatalf("a registration of another identity's activation answered %v", r)
	}
	first := actor.NewPID(other.Address(), child(mine, "1"))
	if r := register(mine, first.Id); r.Failed || !r.Pid.Equal(first) {
		t.Fatalf("registration of %v answered %v, want it listed", first, r)
	}
	// The placement's own view is this node alone: Get asks the placer
	// here, which hands out what it lists.
	if got := node.Cluster.Get(mine, probeKind); !got.Equal(first) {
		t.Fatalf("Get found %v, not the registered activation %v", got, first)
	}
	if r := register(mine, child(mine, "2")); !r.Pid.Equal(first) {
		t.Fatalf("a second registration answered %v, want the one listed (%v)", r, first)
	}
	if r := register(its, child(its, "1")); !r.Failed || r.Pid != nil {
		t.Fatalf("a registration with a member that does not own the identity answered %v", r)
	}
	if n := node.Cluster.GetClusterKind(probeKind).Count(); n != 0 {
		t.Fatalf("%d activations made here, want none", n)
	}
}

// An activation that stops by itself is forgotten: a request for its
// identity then gets a new one, never the dead one. (protoactor tells an
// actor's watchers it stopped before its parent, the placement actor: a
// request right after this test's watcher heard may still find the dead
// one, as a request sent while it stopped would.)
func TestPlacementForgetsTerminated(t *testing.T) {
	node := probeNode(t)
	pids := activate(t, node, "p", 300)
	gone := watchAll(t, node, pids)
	for _, pid := range pids {
		node.System.Root.Poison(pid)
	}
	gone.await(t, len(pids))
	deadline := time.Now().Add(10 * time.Second)
	for id, pid := range pids {
		again := node.Cluster.Get(id, probeKind)
		for again.Equal(pid) && time.Now().Before(deadline) {
			again = node.Cluster.Get(id, probeKind)
		}
		if again == nil || again.Equal(pid) {
			t.Fatalf("%s after its activation stopped: %v (was %v)", id, again, pid)
		}
	}
}

// BenchmarkPlacementStopAll activates b.N identities, stops them all at
// once and times until the placement actor has taken every Terminated (a
// new activation request, queued behind them, is answered): what a
// handback, a drain or passivation under memory pressure costs it.
// Against protoactor's disthash, which scans all its activations for each
// one that stops.
func BenchmarkPlacementStopAll(b *testing.B) {
	for _, lookup := range []struct {
		name string
		new  func() cluster.IdentityLookup
	}{{"pingmcp", identityLookup}, {"disthash", disthash.New}} {
		b.Run(lookup.name, func(b *testing.B) {
			defer func(was func() cluster.IdentityLookup) { identityLookup = was }(identityLookup)
			identityLookup = lookup.new
			node := probeNode(b)
			pids := activate(b, node, "b", b.N)
			gone := watchAll(b, node, pids)
			b.ResetTimer()
			for _, pid := range pids {
				node.System.Root.Poison(pid)
			}
			gone.await(b, len(pids))
			if node.Cluster.Get("after", probeKind) == nil {
				b.Fatal("no activation after the stops")
			}
		})
	}
}

// A node alone in its cluster owns every identity: NewIdentity takes the
// first one drawn (two nodes, in separate processes: e2e
// TestSessionsCrossNodes).
func TestNewIdentityAlone(t *testing.T) {
	n := probeNode(t)
	draws := 0
	id := n.NewIdentity(probeKind, func() string { draws++; return fmt.Sprint("id-", draws) })
	if id != "id-1" || draws != 1 {
		t.Errorf("NewIdentity = %q after %d draws, want id-1 after 1", id, draws)
	}
}

// NewIdentity draws until the placement's rendezvous over the members puts
// the identity on this node: among three members hosting the kind (the
// other two only in the membership this node sees; no process behind
// them), every identity it returns hashes here, after about three draws;
// a node that does not host the kind (an edge) takes the first draw.
func TestNewIdentityHashesHere(t *testing.T) {
	n := probeNode(t) // a single node: its only topology event came at its start
	owners := seeMembers(t, n, 3, true)
	draws := 0
	mint := func() string { draws++; return fmt.Sprint("id-", draws) }
	const ids = 300
	misses := 0
	for range ids {
		before := draws
		id := n.NewIdentity(probeKind, mint)
		if owner := owners.GetByClusterIdentity(cluster.NewClusterIdentity(id, probeKind)); owner != n.Address() {
			// Only once every try missed (each 2/3 likely with three
			// members: (2/3)^24, one identity in 17,000).
			if tries := draws - before; tries != 1+mintTries*3 {
				t.Fatalf("NewIdentity = %s after %d draws, which hashes to %s, not this node (%s); a miss only after %d", id, tries, owner, n.Address(), 1+mintTries*3)
			}
			misses++
		}
	}
	if misses > 2 {
		t.Errorf("%d of %d new identities hash elsewhere; want about none", misses, ids)
	}
	if per := float64(draws) / ids; per < 2 || per > 4.5 {
		t.Errorf("%.2f draws per identity; want about 3 (one member of three)", per)
	}
	seeMembers(t, n, 3, false) // an edge: no kind
	draws = 0
	if id := n.NewIdentity(probeKind, mint); id != "id-1" || draws != 1 {
		t.Errorf("an edge's NewIdentity = %q after %d draws, want id-1 after 1", id, draws)
	}
}

// seeMembers makes node see a membership of itself and others-1 members
// hosting probe actors (data only: no process behind them), itself hosting
// them if host is set, as its topology events would; it returns the
// rendezvous over them.
func seeMembers(tb testing.TB, n *Node, others int, host bool) *cluster.Rendezvous {
	tb.Helper()
	h, port, err := net.SplitHostPort(n.Address())
	if err != nil {
		tb.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	me := &cluster.Member{Id: "me", Host: h, Port: int32(p)}
	if host {
		me.Kinds = []string{probeKind}
	}
	members := []*cluster.Member{me}
	for i := 1; i < others; i++ {
		members = append(members, &cluster.Member{Id: fmt.Sprint("m", i), Host: fmt.Sprintf("192.0.2.%d", i), Port: 7000, Kinds: []string{probeKind}})
	}
	owners := cluster.NewRendezvous()
	owners.UpdateMembers(members)
	n.mu.Lock()
	n.members, n.hosts = members, hostsByKind(members)
	n.mu.Unlock()
	return owners
}

// BenchmarkNewIdentity: what drawing a new session's id that hashes to
// this node costs an initialize, by members hosting sessions (about one draw
// per member, each hashing the id for every member).
func BenchmarkNewIdentity(b *testing.B) {
	n := probeNode(b)
	for _, members := range []int{3, 10, 30, 100} {
		b.Run(fmt.Sprint(members), func(b *testing.B) {
			seeMembers(b, n, members, true)
			draws := 0
			mint := func() string { draws++; return newTestID() }
			for b.Loop() {
				n.NewIdentity(probeKind, mint)
			}
			b.ReportMetric(float64(draws)/float64(b.N), "draws/op")
		})
	}
}

// newTestID is a session id's shape: 128 random bits, base64url.
func newTestID() string {
	var id [16]byte
	rand.Read(id[:])
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// ownedHere agrees with protoactor's rendezvous (what placement uses) on
// which identities hash to this node, whatever the membership's size.
func TestOwnedHereAgreesWithRendezvous(t *testing.T) {
	for _, size := range []int{2, 3, 7, 30, 100} {
		var members []*cluster.Member
		var addrs []string
		for i := range size {
			m := &cluster.Member{Id: fmt.Sprint("m", i), Host: fmt.Sprintf("10.1.%d.%d", i/200, i%200), Port: int32(7000 + i), Kinds: []string{probeKind}}
			members, addrs = append(members, m), append(addrs, m.Address())
		}
		rdv := cluster.NewRendezvous()
		rdv.UpdateMembers(members)
		me := addrs[size/2]
		here := 0
		for range 2000 {
			id := newTestID()
			want := rdv.GetByClusterIdentity(cluster.NewClusterIdentity(id, probeKind)) == me
			if got := ownedHere(id, me, addrs); got != want {
				t.Fatalf("%d members, id %s: ownedHere %v, protoactor's rendezvous says %v", size, id, got, want)
			}
			if want {
				here++
			}
		}
		if here == 0 {
			t.Errorf("%d members: no id of 2000 hashed to %s", size, me)
		}
	}
}

// elsewhere makes messages this node sends to the members at addrs (which
// do not exist) come to the channel it returns, instead of a connection
// protoactor's remote would try to make (whose logging, outliving the
// test, would race with the next node's start).
func elsewhere(node *Node, addrs ...string) <-chan any {
	got := make(chan any, 64)
	divert(node, sink(got), addrs)
	return got
}

// elsewhereAsked is elsewhere, each message with its sender, to answer.
func elsewhereAsked(node *Node, addrs ...string) <-chan asked {
	got := make(chan asked, 1024)
	divert(node, askedSink(got), addrs)
	return got
}

// divert hands to to what node sends to the members at addrs.
func divert(node *Node, to actor.Process, addrs []string) {
	resolve := func(pid *actor.PID) (actor.Process, bool) {
		if slices.Contains(addrs, pid.Address) {
			return to, true
		}
		return nil, false
	}
	// Ahead of the remote's resolver, which takes every address; set before
	// this node sends anything anywhere.
	reg := node.System.ProcessRegistry
	reg.RemoteHandlers = append([]actor.AddressResolver{resolve}, reg.RemoteHandlers...)
}

// sink is a Process that hands what it is sent to a channel.
type sink chan<- any

func (s sink) SendUserMessage(to *actor.PID, m any) {
	if to.Id == "eventstream" {
		return // a placer's word to every node's event stream (placer.broadcast)
	}
	_, m, _ = actor.UnwrapEnvelope(m)
	s <- m
}
func (s sink) SendSystemMessage(*actor.PID, any) {}
func (s sink) Stop(*actor.PID)                   {}

// asked is a message sent to another member, and its sender.
type asked struct {
	m    any
	from *actor.PID
}

// askedSink is sink, with each message's sender.
type askedSink chan<- asked

func (s askedSink) SendUserMessage(to *actor.PID, m any) {
	if to.Id == "eventstream" {
		return // as sink
	}
	_, m, from := actor.UnwrapEnvelope(m)
	s <- asked{m, from}
}
func (s askedSink) SendSystemMessage(*actor.PID, any) {}
func (s askedSink) Stop(*actor.PID)                   {}

// registrations answers the next n registrations (hostedHere) node
// sends, each with what answer says, and returns the identities asked
// about: it fails t if another message comes first, or none within 10 s.
func registrations(t *testing.T, node *Node, from <-chan asked, n int, answer func(id string, pid *actor.PID) *cluster.ActivationResponse) []string {
	t.Helper()
	var ids []string
	for range n {
		select {
		case a := <-from:
			m, ok := a.m.(*cluster.ActivationRequest)
			if !ok || !strings.HasPrefix(m.RequestId, hostedHere) {
				t.Fatalf("sent %T %v, want a registration", a.m, a.m)
			}
			id := m.ClusterIdentity.Identity
			ids = append(ids, id)
			node.System.Root.Send(a.from, answer(id, actor.NewPID(node.Address(), strings.TrimPrefix(m.RequestId, hostedHere))))
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d registrations sent", len(ids), n)
		}
	}
	return ids
}

// An activation made here for the identity's owner (hostForOwner, sent by
// the owner when a request reached this member) lives as long as that
// member owns the identity: it is kept when membership gives the identity
// to its host, which adopts it, and registered with a third member that
// takes it, stopped if that one lists another.
// A request from a member that does not own the identity, or to a member
// that drains, makes nothing.
func TestPlacementHostsForTheOwner(t *testing.T) {
	node, me, other, _ := probePair(t)
	third := &cluster.Member{Id: "third", Host: "127.0.0.1", Port: 2, Kinds: []string{probeKind}}
	two, three := cluster.NewRendezvous(), cluster.NewRendezvous()
	two.UpdateMembers(cluster.Members{me, other})
	three.UpdateMembers(cluster.Members{me, other, third})
	// kept: other's with two members and with three; moved: other's, then third's.
	pick := func(want2, want3 string) string {
		for i := 0; ; i++ {
			id := fmt.Sprintf("h-%d", i)
			ci := cluster.NewClusterIdentity(id, probeKind)
			if two.GetByClusterIdentity(ci) == want2 && three.GetByClusterIdentity(ci) == want3 {
				return id
			}
		}
	}
	kept, moved := pick(other.Address(), other.Address()), pick(other.Address(), third.Address())
	answers := elsewhereAsked(node, other.Address(), third.Address())
	placer := actor.NewPID(node.Address(), activatorName)
	root := node.System.Root
	topology := func(ms ...*cluster.Member) {
		root.Send(placer, &cluster.ClusterTopology{Members: ms})
	}
	// hostFor sends hostForOwner as from the member at addr, and returns
	// the answer.
	hostFor := func(id, from string) *cluster.ActivationResponse {
		root.RequestWithCustomSender(placer, &cluster.ActivationRequest{
			ClusterIdentity: cluster.NewClusterIdentity(id, probeKind), RequestId: hostForOwner,
		}, actor.NewPID(from, "future"))
		select {
		case a := <-answers:
			if r, ok := a.m.(*cluster.ActivationResponse); ok {
				return r
			}
			t.Fatalf("hostForOwner answered %T", a.m)
		case <-time.After(10 * time.Second):
			t.Fatal("hostForOwner unanswered")
		}
		return nil
	}
	count := func() int32 { return node.Cluster.GetClusterKind(probeKind).Count() }

	topology(me, other)
	if r := hostFor(kept, third.Address()); !r.Failed || r.Pid != nil {
		t.Fatalf("a member that does not own the identity got %v", r)
	}
	pids := map[string]*actor.PID{}
	for _, id := range []string{kept, moved} {
		r := hostFor(id, other.Address())
		if r.Failed || r.Pid == nil || r.Pid.Address != node.Address() {
			t.Fatalf("%s for its owner: %v, want an activation here", id, r)
		}
		pids[id] = r.Pid
		// The placement's own view is this node alone: Get asks the
		// placer here, which finds what it made.
		if again := node.Cluster.Get(id, probeKind); !again.Equal(r.Pid) {
			t.Fatalf("%s: Get found %v, not the activation made for its owner (%v)", id, again, r.Pid)
		}
	}
	if n := count(); n != 2 {
		t.Fatalf("%d activations made, want 2", n)
	}
	gone := watchAll(t, node, pids)

	another := func(string, *actor.PID) *cluster.ActivationResponse {
		return &cluster.ActivationResponse{Pid: actor.NewPID(third.Address(), "another")}
	}
	topology(me, other, third)
	if asked := registrations(t, node, answers, 1, another); asked[0] != moved {
		t.Fatalf("%s registered with the third member, want %s", asked[0], moved)
	}
	gone.await(t, 1)
	gone.mu.Lock()
	stopped := gone.gone[moved]
	gone.mu.Unlock()
	if !stopped {
		t.Fatal("the activation whose identity a third member took was not the one stopped")
	}
	topology(me) // adopted
	if again := node.Cluster.Get(kept, probeKind); !again.Equal(pids[kept]) {
		t.Fatalf("the kept activation was replaced (%v, was %v) when this member became the owner", again, pids[kept])
	}
	topology(me, other) // its own: other owns it now, and lists another
	registrations(t, node, answers, 1, another)
	gone.await(t, 1)

}

// A member whose stores are unreachable makes no activation for another
// while they are, nor does a draining one.
func TestPlacementDecliningHostsNothing(t *testing.T) {
	node, me, other, two := probePair(t)
	ids := ownedBy(two, "d", other.Address(), 4)
	answers := elsewhere(node, other.Address())
	placer := actor.NewPID(node.Address(), activatorName)
	root := node.System.Root
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}})
	steps := []struct {
		what  string
		set   func()
		hosts bool
	}{
		{"serving", func() {}, true},
		{"stores unreachable", func() { node.StoreReachable(false) }, false},
		{"stores back", func() { node.StoreReachable(true) }, true},
		{"draining", node.Drain, false},
	}
	for i, step := range steps {
		step.set()
		root.RequestWithCustomSender(placer, &cluster.ActivationRequest{
			ClusterIdentity: cluster.NewClusterIdentity(ids[i], probeKind), RequestId: hostForOwner,
		}, actor.NewPID(other.Address(), "future"))
		r, _ := (<-answers).(*cluster.ActivationResponse)
		if made := r != nil && r.Pid != nil; made != step.hosts {
			t.Fatalf("%s: asked to make an activation for its owner, answered %v", step.what, r)
		}
	}
	if n := node.Cluster.GetClusterKind(probeKind).Count(); n != 2 {
		t.Fatalf("%d activations, want 2", n)
	}
}

func TestAskRequestIDs(t *testing.T) {
	gone := actor.NewPID("10.0.0.1:4020", "partition-activator/a b$7")
	for _, c := range []struct {
		here bool
		gone *actor.PID
	}{{false, nil}, {true, nil}, {false, gone}, {true, gone}} {
		id := askFor(c.here, c.gone)
		here, g := parseAsk(id)
		if here != c.here || (g == nil) != (c.gone == nil) || g != nil && !g.Equal(c.gone) {
			t.Errorf("askFor(%v, %v) = %q reads back as %v, %v", c.here, c.gone, id, here, g)
		}
	}
	if askFor(false, nil) != "" {
		t.Error("a plain request carries a RequestId")
	}
}

// An owner whose asker did not answer whether it made the activation
// (it may have) makes none itself, and asks that member again first,
// whoever asks next: there is never a second activation elsewhere.
func TestPlacementAsksTheSilentAskerAgain(t *testing.T) {
	node, me, other, two := probePair(t)
	id := ownedBy(two, "s", me.Address(), 1)[0]
	sent := elsewhereAsked(node, other.Address()) // other never answers but where the activation is: nowhere
	placer := actor.NewPID(node.Address(), activatorName)
	root := node.System.Root
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}})
	ci := cluster.NewClusterIdentity(id, probeKind)
	next := func() any {
		for {
			select {
			case a := <-sent:
				if m, ok := a.m.(*cluster.ActivationRequest); ok && m.RequestId == whereIs {
					root.Send(a.from, &cluster.ActivationResponse{Failed: true})
					continue
				}
				return a.m
			case <-time.After(10 * time.Second):
				t.Fatal("nothing sent to the other member")
				return nil
			}
		}
	}
	asks := 0
	// other's request: the owner asks other to make it, hears nothing, and
	// answers other that it failed.
	root.RequestWithCustomSender(placer, &cluster.ActivationRequest{ClusterIdentity: ci, RequestId: hostAtAsker},
		actor.NewPID(other.Address(), "future"))
	for range 2 {
		switch m := next().(type) {
		case *cluster.ActivationRequest:
			if m.RequestId == hostForOwner {
				asks++
			}
		case *cluster.ActivationResponse:
			if m.Pid != nil || !m.Failed {
				t.Fatalf("other's request answered %v; want a failure", m)
			}
		}
	}
	// This node's own request, which would make the activation here: other
	// is asked again instead (after it says, as the previous owner, that it
	// lists none).
	own := make(chan any, 1)
	go func() {
		res, err := root.RequestFuture(placer, &cluster.ActivationRequest{ClusterIdentity: ci}, 10*time.Second).Result()
		own <- cmp.Or[any](err, res)
	}()
	if m, ok := next().(*cluster.ActivationRequest); ok && m.RequestId == hostForOwner {
		asks++
	}
	if r, ok := (<-own).(*cluster.ActivationResponse); !ok || r.Pid != nil || !r.Failed {
		t.Fatalf("this node's request answered %v; want a failure (other never answered)", r)
	}
	if asks != 2 {
		t.Fatalf("other was asked to make the activation %d times, want 2", asks)
	}
	if n := node.Cluster.GetClusterKind(probeKind).Count(); n != 0 {
		t.Fatalf("%d activations made here, want none", n)
	}
}

// ownedBy returns n probe identities (prefix-0, prefix-1, …) that rdv
// places on the member at addr.
func ownedBy(rdv *cluster.Rendezvous, prefix, addr string, n int) []string {
	var ids []string
	for i := 0; len(ids) < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if rdv.GetByClusterIdentity(cluster.NewClusterIdentity(id, probeKind)) == addr {
			ids = append(ids, id)
		}
	}
	return ids
}

// A member that just joined, asked for an identity it now owns and lists
// no activation of, asks the member that owned it before (whereIs) and
// lists the one that member lists, rather than making a second: the
// activation's host may not have registered it here yet (hostedHere).
// Without one there, it makes one.
func TestPlacementAsksThePreviousOwner(t *testing.T) {
	node, me, other, two := probePair(t)
	ids := ownedBy(two, "w", me.Address(), 2)
	sent := elsewhereAsked(node, other.Address())
	root := node.System.Root
	// This member joins other (the placement's own view is this node
	// alone: Get asks the placer here).
	root.Send(actor.NewPID(node.Address(), activatorName), &cluster.ClusterTopology{Members: []*cluster.Member{me, other}})
	theirs := actor.NewPID(other.Address(), activatorName+"/"+ids[0]+"$1")
	found := getAsync(node, ids[0])
	root.Send(whereAsked(t, sent, ids[0]), &cluster.ActivationResponse{Pid: theirs})
	if got := <-found; !got.Equal(theirs) {
		t.Fatalf("Get found %v, not the activation the previous owner lists (%v)", got, theirs)
	}
	if got := node.Cluster.Get(ids[0], probeKind); !got.Equal(theirs) {
		t.Fatalf("Get then found %v, not %v: it was not listed", got, theirs)
	}
	made := getAsync(node, ids[1])
	root.Send(whereAsked(t, sent, ids[1]), &cluster.ActivationResponse{Failed: true})
	if got := <-made; got == nil || got.Address != node.Address() {
		t.Fatalf("with none listed by the previous owner, Get found %v; want one made here", got)
	}
	if n := node.Cluster.GetClusterKind(probeKind).Count(); n != 1 {
		t.Fatalf("%d activations made here, want 1", n)
	}
}

// A member that joined with another asks, when the member that owned an
// identity before them as it computes it (the other that joined, perhaps)
// knows of no activation, the member that owned it before among the rest.
func TestPlacementAsksThePreviousOwnersInTurn(t *testing.T) {
	node, me, other, _ := probePair(t)
	third := &cluster.Member{Id: "third", Host: "127.0.0.1", Port: 2, Kinds: []string{probeKind}}
	all, before, rest := cluster.NewRendezvous(), cluster.NewRendezvous(), cluster.NewRendezvous()
	all.UpdateMembers(cluster.Members{me, other, third})
	before.UpdateMembers(cluster.Members{other, third})
	rest.UpdateMembers(cluster.Members{third})
	var id string
	for i := 0; id == ""; i++ {
		c := cluster.NewClusterIdentity(fmt.Sprintf("t-%d", i), probeKind)
		if all.GetByClusterIdentity(c) == me.Address() && before.GetByClusterIdentity(c) == other.Address() {
			id = c.Identity
		}
	}
	sent := elsewhereAsked(node, other.Address(), third.Address())
	root := node.System.Root
	root.Send(actor.NewPID(node.Address(), activatorName), &cluster.ClusterTopology{Members: []*cluster.Member{me, other, third}})
	found := getAsync(node, id)
	theirs := actor.NewPID(third.Address(), activatorName+"/"+id+"$1")
	for _, who := range []*cluster.Member{other, third} {
		select {
		case a := <-sent:
			m, ok := a.m.(*cluster.ActivationRequest)
			if !ok || m.RequestId != whereIs || a.from.Address != node.Address() {
				t.Fatalf("sent %T %v, want where %s is", a.m, a.m, id)
			}
			answer := &cluster.ActivationResponse{Failed: true} // other joined with this member
			if who == third {
				answer = &cluster.ActivationResponse{Pid: theirs}
			}
			root.Send(a.from, answer)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not asked", who.Id)
		}
	}
	if got := <-found; !got.Equal(theirs) {
		t.Fatalf("Get found %v, want %v, which the member asked second lists", got, theirs)
	}
}

// A host whose registration the new owner refuses (its view of membership
// may trail this member's) asks again, and keeps its activation once it
// is listed; an activation made here for a member whose view differs (it
// asked this member, which does not own the identity) is registered with
// the owner alike.
func TestPlacementRegistersAgain(t *testing.T) {
	node, me, other, two := probePair(t)
	ids := ownedBy(two, "g", other.Address(), 2)
	sent := elsewhereAsked(node, other.Address())
	pid := node.Cluster.Get(ids[0], probeKind) // made here: this member alone
	if pid == nil {
		t.Fatal("no activation")
	}
	gone := watchAll(t, node, map[string]*actor.PID{ids[0]: pid})
	placer := actor.NewPID(node.Address(), activatorName)
	root := node.System.Root
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}})
	refused := registrations(t, node, sent, 1, func(string, *actor.PID) *cluster.ActivationResponse {
		return &cluster.ActivationResponse{Failed: true}
	})
	taken := registrations(t, node, sent, 1, func(_ string, p *actor.PID) *cluster.ActivationResponse {
		return &cluster.ActivationResponse{Pid: p}
	})
	if refused[0] != ids[0] || taken[0] != ids[0] {
		t.Fatalf("registered %v, then %v; want %s twice", refused, taken, ids[0])
	}

	// A request from a member that sees this one as ids[1]'s owner.
	res, err := root.RequestFuture(placer, &cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(ids[1], probeKind)},
		10*time.Second).Result()
	r, _ := res.(*cluster.ActivationResponse)
	if err != nil || r == nil || r.Pid == nil || r.Pid.Address != node.Address() {
		t.Fatalf("a request for an identity another member owns answered %v, %v; want one made here", res, err)
	}
	if asked := registrations(t, node, sent, 1, func(_ string, p *actor.PID) *cluster.ActivationResponse {
		return &cluster.ActivationResponse{Pid: p}
	}); asked[0] != ids[1] {
		t.Fatalf("registered %s, want %s", asked[0], ids[1])
	}

	// Back to this member alone: both adopted, as they were.
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me}})
	if again := node.Cluster.Get(ids[0], probeKind); !again.Equal(pid) {
		t.Fatalf("the activation registered on the second try was replaced: %v, was %v", again, pid)
	}
	if again := node.Cluster.Get(ids[1], probeKind); !again.Equal(r.Pid) {
		t.Fatalf("the activation made for a differing view was replaced: %v, was %v", again, r.Pid)
	}
	gone.mu.Lock()
	defer gone.mu.Unlock()
	if len(gone.gone) != 0 {
		t.Fatalf("stopped: %v", gone.gone)
	}
}

// A member that an identity passed to because its owner left (with its
// directory) asks the other members that host its kind where the
// activation is (whereIs), rather than making a second: its host may not
// have registered it here yet. It lists the one named; with none named, it
// makes one; while a member does not answer, it makes none, and the
// request is refused, to ask again.
func TestPlacementAsksTheMembersWhenTheOwnerLeft(t *testing.T) {
	node, me, other, _ := probePair(t)
	third := &cluster.Member{Id: "third", Host: "127.0.0.1", Port: 2, Kinds: []string{probeKind}}
	all, joined, after := cluster.NewRendezvous(), cluster.NewRendezvous(), cluster.NewRendezvous()
	all.UpdateMembers(cluster.Members{me, other, third})
	joined.UpdateMembers(cluster.Members{other, third}) // this member joining: the previous owners
	after.UpdateMembers(cluster.Members{me, other})
	var ids []string
	for i := 0; len(ids) < 3; i++ {
		c := cluster.NewClusterIdentity(fmt.Sprintf("o-%d", i), probeKind)
		if all.GetByClusterIdentity(c) == third.Address() && after.GetByClusterIdentity(c) == me.Address() &&
			joined.GetByClusterIdentity(c) == third.Address() {
			ids = append(ids, c.Identity)
		}
	}
	sent := elsewhereAsked(node, other.Address(), third.Address())
	placer := actor.NewPID(node.Address(), activatorName)
	root := node.System.Root
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other, third}})
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}}) // third leaves

	theirs := actor.NewPID(other.Address(), activatorName+"/"+ids[0]+"$1")
	found := getAsync(node, ids[0])
	root.Send(whereAsked(t, sent, ids[0]), &cluster.ActivationResponse{Pid: theirs})
	if got := <-found; !got.Equal(theirs) {
		t.Fatalf("Get found %v, not the activation the other member hosts (%v)", got, theirs)
	}
	if got := node.Cluster.Get(ids[0], probeKind); !got.Equal(theirs) {
		t.Fatalf("Get then found %v, not %v: it was not listed", got, theirs)
	}

	silent := getAsync(node, ids[1])
	whereAsked(t, sent, ids[1]) // never answered
	if got := <-silent; got != nil {
		t.Fatalf("with a member silent, Get found %v; want none made", got)
	}
	if n := node.Cluster.GetClusterKind(probeKind).Count(); n != 0 {
		t.Fatalf("%d activations made here while a member was silent, want none", n)
	}

	made := getAsync(node, ids[2])
	root.Send(whereAsked(t, sent, ids[2]), &cluster.ActivationResponse{Failed: true})
	if got := <-made; got == nil || got.Address != node.Address() {
		t.Fatalf("with none hosted elsewhere, Get found %v; want one made here", got)
	}
	if n := node.Cluster.GetClusterKind(probeKind).Count(); n != 1 {
		t.Fatalf("%d activations made here, want 1", n)
	}

	// The activation found first is reported gone by a requester; a member
	// that names it still (its end not heard of) is not believed.
	again := make(chan *actor.PID, 1)
	go func() {
		res, err := root.RequestFuture(placer, &cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(ids[0], probeKind),
			RequestId: askFor(false, theirs)}, 10*time.Second).Result()
		r, _ := res.(*cluster.ActivationResponse)
		if err != nil || r == nil {
			again <- nil
			return
		}
		again <- r.Pid
	}()
	root.Send(whereAsked(t, sent, ids[0]), &cluster.ActivationResponse{Pid: theirs})
	if got := <-again; got == nil || got.Equal(theirs) || got.Address != node.Address() {
		t.Fatalf("with the one found gone named again, the placer answered %v; want one made here", got)
	}
}

// A member counts as joining, and asks an identity's previous owner, when
// it first sees another member with no activation of its own, however long
// after its start (a join that took long: seeds that answered late); one
// that has activations by then, after joinWindow, is the cluster's first
// member, which others join: it owned every identity before.
func TestPlacementJoiningLateAsksThePreviousOwner(t *testing.T) {
	for _, first := range []bool{false, true} {
		t.Run(fmt.Sprintf("first=%v", first), func(t *testing.T) {
			w := joinWindow
			t.Cleanup(func() { joinWindow = w }) // after the node stops
			joinWindow = 0                       // every join comes late
			node, me, other, two := probePair(t)
			sent := elsewhereAsked(node, other.Address())
			if first { // (of an identity it keeps: nothing to register)
				if node.Cluster.Get(ownedBy(two, "before", me.Address(), 1)[0], probeKind) == nil {
					t.Fatal("no activation")
				}
			}
			ids := ownedBy(two, "late", me.Address(), 1)
			placer := actor.NewPID(node.Address(), activatorName)
			node.System.Root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}})
			found := getAsync(node, ids[0])
			if first {
				if got := <-found; got == nil || got.Address != node.Address() {
					t.Fatalf("the cluster's first member found %v for an identity it owns, want one made here", got)
				}
				select {
				case a := <-sent:
					t.Fatalf("the cluster's first member sent %T %v to the member that joined it", a.m, a.m)
				default:
				}
				return
			}
			select {
			case a := <-sent:
				if m, ok := a.m.(*cluster.ActivationRequest); !ok || m.RequestId != whereIs || m.ClusterIdentity.Identity != ids[0] {
					t.Fatalf("sent %T %v, want where %s is", a.m, a.m, ids[0])
				}
				theirs := actor.NewPID(other.Address(), activatorName+"/"+ids[0]+"$1")
				node.System.Root.Send(a.from, &cluster.ActivationResponse{Pid: theirs})
				if got := <-found; !got.Equal(theirs) {
					t.Fatalf("Get found %v, want %v, which the previous owner lists", got, theirs)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a member joining late did not ask the previous owner")
			}
		})
	}
}

// getAsync asks the cluster for id's activation, and returns where the
// answer comes.
func getAsync(node *Node, id string) <-chan *actor.PID {
	c := make(chan *actor.PID, 1)
	go func() { c <- node.Cluster.Get(id, probeKind) }()
	return c
}

// whereAsked waits for the next message sent to another member, which
// must ask where id's activation is (whereIs), and returns its sender, to
// answer.
func whereAsked(t *testing.T, sent <-chan asked, id string) *actor.PID {
	t.Helper()
	select {
	case a := <-sent:
		m, ok := a.m.(*cluster.ActivationRequest)
		if !ok || m.RequestId != whereIs || m.ClusterIdentity.Identity != id || m.ClusterIdentity.Kind != newKind+probeKind {
			t.Fatalf("sent %T %v, want where %s is", a.m, a.m, id)
		}
		return a.from
	case <-time.After(10 * time.Second):
		t.Fatalf("no member was asked where %s is", id)
	}
	return nil
}

// identityWhere returns a probe identity (prefix-n) for which each
// rendezvous in rdvs picks the member at the address beside it.
func identityWhere(prefix string, rdvs []*cluster.Rendezvous, owners []string) string {
	for i := range 1 << 20 {
		c := cluster.NewClusterIdentity(fmt.Sprintf("%s-%d", prefix, i), probeKind)
		if !slices.ContainsFunc(rdvs, func(r *cluster.Rendezvous) bool {
			return r.GetByClusterIdentity(c) != owners[slices.Index(rdvs, r)]
		}) {
			return c.Identity
		}
	}
	panic("no identity is placed so: rendezvous hashing allows no such placements")
}

// rendezvous is protoactor's rendezvous hashing over members.
func rendezvous(members ...*cluster.Member) *cluster.Rendezvous {
	r := cluster.NewRendezvous()
	r.UpdateMembers(members)
	return r
}

// The members asked where an orphaned identity's activation is answer in
// any order: the one that names it wins over one that knows of none. And
// a second departure within the window leaves the first one's orphans
// orphaned: the identities of the member that left first are asked about
// still.
func TestPlacementAsksTheMembersAfterDepartures(t *testing.T) {
	node, me, other, _ := probePair(t)
	third := &cluster.Member{Id: "third", Host: "127.0.0.1", Port: 2, Kinds: []string{probeKind}}
	fourth := &cluster.Member{Id: "fourth", Host: "127.0.0.1", Port: 3, Kinds: []string{probeKind}}
	all, joined := rendezvous(me, other, third, fourth), rendezvous(other, third, fourth)
	three, two := rendezvous(me, other, third), rendezvous(me, other)
	// j: fourth's, then this member's once fourth left; i: the same, and
	// still this member's once third left too.
	j := identityWhere("j", []*cluster.Rendezvous{all, joined, three}, []string{fourth.Address(), fourth.Address(), me.Address()})
	i := identityWhere("i", []*cluster.Rendezvous{all, joined, three, two}, []string{fourth.Address(), fourth.Address(), me.Address(), me.Address()})
	sent := elsewhereAsked(node, other.Address(), third.Address(), fourth.Address())
	placer := actor.NewPID(node.Address(), activatorName)
	root := node.System.Root
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other, third, fourth}})
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other, third}}) // fourth leaves

	found := getAsync(node, j)
	first, second := whereAsked(t, sent, j), whereAsked(t, sent, j) // other and third
	theirs := actor.NewPID(third.Address(), activatorName+"/"+j+"$1")
	root.Send(first, &cluster.ActivationResponse{Failed: true})
	root.Send(second, &cluster.ActivationResponse{Pid: theirs})
	if got := <-found; !got.Equal(theirs) {
		t.Fatalf("Get found %v, want %v, which the second member asked named", got, theirs)
	}

	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}}) // third leaves
	found = getAsync(node, i)
	theirs = actor.NewPID(other.Address(), activatorName+"/"+i+"$1")
	root.Send(whereAsked(t, sent, i), &cluster.ActivationResponse{Pid: theirs})
	if got := <-found; !got.Equal(theirs) {
		t.Fatalf("after a second departure, Get found %v, want %v, which the member asked named", got, theirs)
	}
	if n := node.Cluster.GetClusterKind(probeKind).Count(); n != 0 {
		t.Fatalf("%d activations made here, want none", n)
	}
}

// A member that joined asks an identity's previous owner first; when that
// one does not answer, none is made, since it may list one: whether or not
// the identity's owner since (a member that joined later) left, and the
// other members then know of none.
func TestPlacementSilentPreviousOwnerMakesNone(t *testing.T) {
	for _, left := range []bool{false, true} {
		t.Run(fmt.Sprintf("left=%v", left), func(t *testing.T) {
			node, me, other, two := probePair(t)
			third := &cluster.Member{Id: "third", Host: "127.0.0.1", Port: 2, Kinds: []string{probeKind}}
			k := identityWhere("k", []*cluster.Rendezvous{rendezvous(me, other, third), two}, []string{third.Address(), me.Address()})
			sent := elsewhereAsked(node, other.Address(), third.Address())
			placer := actor.NewPID(node.Address(), activatorName)
			root := node.System.Root
			root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}}) // this member joins other
			if left {
				root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other, third}})
				root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}}) // third leaves
			}
			found := getAsync(node, k)
			whereAsked(t, sent, k) // other, the previous owner: it never answers
			if got := <-found; got != nil {
				t.Fatalf("with the previous owner silent, Get found %v; want none made", got)
			}
			if n := node.Cluster.GetClusterKind(probeKind).Count(); n != 0 {
				t.Fatalf("%d activations made here, want none", n)
			}
		})
	}
}

// A member asked where an activation is gives no answer while it does not
// know: for an identity whose owner left (with its directory) and that no
// one asked it about since, and when what it was finding out about ended
// in a refusal (a member silent). The asker counts that as silence, and
// makes none. One that waited while it was finding out gets what it found.
func TestPlacementGivesNoAnswerItDoesNotKnow(t *testing.T) {
	node, me, other, _ := probePair(t)
	third := &cluster.Member{Id: "third", Host: "127.0.0.1", Port: 2, Kinds: []string{probeKind}}
	all, three, two := rendezvous(me, other, third), rendezvous(other, third), rendezvous(me, other)
	var ids []string
	for _, prefix := range []string{"u", "v", "w"} {
		ids = append(ids, identityWhere(prefix, []*cluster.Rendezvous{all, three, two}, []string{third.Address(), third.Address(), me.Address()}))
	}
	sent := elsewhereAsked(node, other.Address(), third.Address())
	placer := actor.NewPID(node.Address(), activatorName)
	root := node.System.Root
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other, third}})
	root.Send(placer, &cluster.ClusterTopology{Members: []*cluster.Member{me, other}}) // third leaves
	where := func(id string, wait time.Duration) <-chan any {
		c := make(chan any, 1)
		go func() {
			res, err := root.RequestFuture(placer, &cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(id, newKind+probeKind),
				RequestId: whereIs}, wait).Result()
			c <- cmp.Or[any](err, res)
		}()
		return c
	}
	if got := <-where(ids[0], time.Second); got != actor.ErrTimeout {
		t.Fatalf("asked where an orphaned identity's activation is: %v; want no answer", got)
	}

	found := getAsync(node, ids[1]) // this member asks other, which answers later
	from := whereAsked(t, sent, ids[1])
	waited := where(ids[1], 10*time.Second)
	theirs := actor.NewPID(other.Address(), activatorName+"/"+ids[1]+"$1")
	root.Send(from, &cluster.ActivationResponse{Pid: theirs})
	if got := <-found; !got.Equal(theirs) {
		t.Fatalf("Get found %v, want %v", got, theirs)
	}
	if r, _ := (<-waited).(*cluster.ActivationResponse); r == nil || !r.Pid.Equal(theirs) {
		t.Fatalf("asked while it was finding out: %v; want %v", r, theirs)
	}

	refused := getAsync(node, ids[2]) // this member asks other, which never answers
	whereAsked(t, sent, ids[2])
	waited = where(ids[2], 4*time.Second)
	if got := <-refused; got != nil {
		t.Fatalf("with the member asked silent, Get found %v; want none", got)
	}
	if got := <-waited; got != actor.ErrTimeout {
		t.Fatalf("asked while it was finding out, and it learnt nothing: %v; want no answer", got)
	}
}

package cluster

import (
	"cmp"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/eventstream"

	"github.com/pingmcp/pingmcp/metrics"
)

// placement is the cluster's identity lookup. An identity's owner is the
// member rendezvous hashing picks among those of its kind, as with
// protoactor's disthash, whose messages and activator name it keeps (a node
// of an older pingmcp places and finds activations with it alike). The
// owner's placement actor is the identity's directory: it says where the
// activation is, and makes one when there is none. Four things differ:
//
//   - a session's activation is made where its requests arrive. A node that
//     hosts sessions, asking the owner for one, says so (hostAtAsker); the
//     owner, with no activation, asks that node's placement actor to make
//     one there (hostForOwner), records it and watches it. A session whose
//     node died or left is thus rehydrated on the node its client's next
//     request reached, and its requests take no hop, rather than on a
//     member picked by its identity's hash. An activation made for an owner
//     lives as long as that member owns its identity: when membership gives
//     the identity to its host, the host adopts it; to a third member, the
//     host registers it with that member (hostedHere), which lists it in its
//     directory: membership changing (a node joining, or the owner leaving)
//     stops no activation whose host stays, and an owner's own activations
//     are registered with their identity's new owner alike;
//   - a terminated activation is found by its PID in one map lookup.
//     disthash scans every activation of the node for each one that stops,
//     so stopping many at once (a handback, a drain, passivation under
//     memory pressure) costs the square of the node's actors: about 16 ns
//     times n²/4 (3.6 s for 30,000 here), while its activator answers no
//     activation request;
//   - a member that joins asks an identity's previous owner, for a
//     request it has no activation for, within previousWindow of joining
//     (whereIs): the activation's host may not have registered it yet;
//     likewise a member that an identity passed to because its owner left
//     (with its directory) asks the other members that host its kind
//     (askHosts), and makes none while one of them is silent;
//   - an activation its identity's new owner does not take (it lists
//     another, or refuses or does not answer for registerFor, as an older
//     node does), and with handBack every activation whose identity
//     another member now owns, is stopped, handbackBatch at a time, every
//     handbackEvery, rather than all at once, each checked again when its
//     turn comes (membership may have moved it back): the member taking
//     them over rehydrates them as their requests come, at a rate it can
//     take. Until its turn an activation serves the requests that reach it;
//     one activated meanwhile on the new owner fences it out (epochs, see
//     actors/activation.go), as when two nodes' views of membership differ;
//   - a member this node finds unreachable while membership lists it
//     (suspects.go) counts, here only, as one that left: its identities go
//     to the other members, which make their activations anew, and
//     fencing stops the old ones should it be alive after all.
type placement struct {
	c   *cluster.Cluster
	rdv atomic.Pointer[cluster.Rendezvous]
	pid *actor.PID
	sub *eventstream.Subscription
	// refuse is set as the node drains or stops, noStore while its stores
	// are unreachable: it makes no activation for another member, and asks
	// for none here, meanwhile.
	refuse, noStore atomic.Bool
	// logger logs what the placement decides, at debug (the node's; the
	// cluster's, floored at warnings, without one).
	logger *slog.Logger
	// handBack stops the activations whose identities membership gives to
	// another member rather than registering them with it (Config.SharedStores).
	handBack bool
	// suspect, if set, is told of a member another member finds
	// unreachable (Node.suspect), and of one whose placement actor did not
	// answer here.
	suspect func(addr string)
	// tryingToReach, if set, says whether this node is trying to reach a
	// member it has a sign is gone (Node.tryingToReach).
	tryingToReach func(addr string) bool

	// mu guards listed and unreachable: the placement's view of
	// membership is listed but the members found unreachable.
	mu          sync.Mutex
	listed      []*cluster.Member
	unreachable map[string]bool
}

// declines says whether this node takes no activation it does not own.
func (p *placement) declines() bool { return p.refuse.Load() || p.noStore.Load() }

// Pace of the handback of moved activations: 2,000 per second per node.
const (
	handbackBatch = 100
	handbackEvery = 50 * time.Millisecond
)

// activatorName is the placement actor's name on every member.
const activatorName = disthash.PartitionActivatorActorName

// The RequestId of an ActivationRequest (a field protoactor's placement
// actors and older pingmcp nodes ignore) says where an activation that
// does not exist yet is to be made:
const (
	// hostAtAsker: on the member asking, which hosts the kind. Sent to the
	// identity's owner.
	hostAtAsker = "pingmcp/host-at-asker"
	// hostForOwner: here, for the sender, the identity's owner. Sent by the
	// owner to the member that asked.
	hostForOwner = "pingmcp/host-for-owner"
	// askOnly: where the owner sees fit (as with no RequestId), when the
	// request carries a gone PID.
	askOnly = "pingmcp/ask"
	// hostedHere, then the id of an activation on the sender, registers
	// that activation with the identity's owner, which membership just made
	// so. The owner answers with the activation it lists (that one if it
	// listed none): the sender stops its own if that is another.
	hostedHere = "pingmcp/hosted-here "
	// whereIs asks the member that owned an identity before this member
	// joined the cluster, by this member, which owns it since, for the
	// activation it lists; it makes none. Sent for a request this member
	// has no activation for, within previousWindow of joining: the
	// activation's host may not have registered it here yet (hostedHere).
	whereIs = "pingmcp/where"
	// newKind prefixes the kind of a hostedHere or whereIs request's
	// identity: an older node, or protoactor's disthash, finds no such kind
	// and refuses it, rather than making an activation.
	newKind = "pingmcp/"
	// unreachableAt tells a member's placement actor that the sender
	// finds the member at the request's identity unreachable, of kind
	// unreachableKind (newKind before it); it answers nothing.
	unreachableAt   = "pingmcp/unreachable"
	unreachableKind = "member"
	// goneMark, then an address, a space and an id, ends a request to the
	// owner from a member that found that activation gone (a request to it
	// was never delivered): the owner forgets it if it is the one it lists
	// on another member. A Terminated from a watched PID on another member
	// may never come (protoactor sends its remote messages at most once).
	goneMark = " gone="
)

// askFor is the RequestId of a request to an identity's owner (above).
func askFor(here bool, gone *actor.PID) string {
	id := ""
	if here {
		id = hostAtAsker
	}
	if gone != nil {
		id = cmp.Or(id, askOnly) + goneMark + gone.Address + " " + gone.Id
	}
	return id
}

// parseAsk reads askFor's RequestId.
func parseAsk(id string) (here bool, gone *actor.PID) {
	here = strings.HasPrefix(id, hostAtAsker)
	if _, g, ok := strings.Cut(id, goneMark); ok {
		if addr, pid, ok := strings.Cut(g, " "); ok {
			gone = actor.NewPID(addr, pid)
		}
	}
	return here, gone
}

// hostTimeout bounds the owner's wait for the asker to make an activation;
// then it makes one itself. (The asker waits 5 s for the owner's answer.)
const hostTimeout = 2 * time.Second

// previousWindow is how long after joining a member asks an identity's
// previous owner for its activation (whereIs), and after members left, the
// other members (askHosts): as long as a host tries to register one
// (registerFor). It runs from when this member saw the change: a host
// that sees it much later (a slower failure detector) registers later
// than that, and a request in between makes a second activation, as
// before this. A member counts as joining when it first sees another, if
// it has no activation then, or within joinWindow of its start. So the
// cluster's first member, which others join later, does not, once it has
// activations; without any (all passivated), it asks the member that
// joined it, which knows of none, for previousWindow. And a member that
// made activations alone before it saw the others (a slow provider)
// after joinWindow asks no previous owner. previousAsks bounds how many
// members it asks for one request (members that joined with it own
// nothing yet).
const (
	previousWindow = registerFor
	previousAsks   = 3
)

var joinWindow = 10 * time.Second

// keptFor is how long a member keeps the entry of an activation on
// another member whose identity it no longer owns: for the new owner's
// whereIs.
const keptFor = previousWindow + registerFor

func newPlacement() *placement { return &placement{} }

var _ cluster.IdentityLookup = (*placement)(nil)

func (p *placement) Setup(c *cluster.Cluster, _ []string, _ bool) {
	p.c = c
	p.rdv.Store(cluster.NewRendezvous())
	system := c.ActorSystem
	p.pid, _ = system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &placer{c: c, declines: p.declines, log: cmp.Or(p.logger, c.Logger()), handBack: p.handBack, suspect: p.suspect, tryingToReach: p.tryingToReach,
			actors: map[string]grain{}, byPID: map[pidKey]string{}, queued: map[string]bool{},
			pending: map[string][]*actor.PID{}, unanswered: map[string]string{}, registering: map[string]registration{},
			members: map[string]*cluster.Member{}, started: time.Now(), whereAsks: map[pidKey]bool{}}
	}), activatorName)
	p.sub = system.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*cluster.ClusterTopology); ok {
			p.heard(t)
		}
	})
}

// heard takes membership's new view, t: the members listed, but those
// found unreachable that are still listed and did not join anew.
func (p *placement) heard(t *cluster.ClusterTopology) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listed = slices.Clone(t.Members)
	for addr := range p.unreachable {
		// Left (gone for all), or joined anew (reached).
		if !hasMember(t.Members, addr) ||
			hasMember(t.Joined, addr) {
			delete(p.unreachable, addr)
			metrics.UnreachableMembers.Dec()
		}
	}
	p.viewLocked()
}

// viewLocked hands the placer (and get) membership as this node sees it:
// the members listed but those found unreachable.
func (p *placement) viewLocked() {
	members := p.listed
	if len(p.unreachable) > 0 {
		members = slices.DeleteFunc(slices.Clone(members), func(m *cluster.Member) bool { return p.unreachable[m.Address()] })
	}
	rdv := cluster.NewRendezvous()
	rdv.UpdateMembers(members)
	p.rdv.Store(rdv)
	// (The placer reads the members alone.)
	p.c.ActorSystem.Root.Send(p.pid, &cluster.ClusterTopology{Members: members})
}

// hasMember says whether ms holds a member at addr.
func hasMember(ms []*cluster.Member, addr string) bool {
	return slices.ContainsFunc(ms, func(m *cluster.Member) bool { return m.Address() == addr })
}

// setUnreachable counts the member at addr as unreachable, or reached
// again, in the placement's view of membership; it says whether that
// changed it. A member membership does not list is neither.
func (p *placement) setUnreachable(addr string, unreachable bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	listed := hasMember(p.listed, addr)
	if p.unreachable[addr] == unreachable || (unreachable && !listed) {
		return false
	}
	if unreachable {
		if p.unreachable == nil {
			p.unreachable = map[string]bool{}
		}
		p.unreachable[addr] = true
		metrics.UnreachableMembers.Inc()
	} else {
		delete(p.unreachable, addr)
		metrics.UnreachableMembers.Dec()
	}
	p.viewLocked()
	return true
}

// listedMember says whether membership lists a member at addr, and whether
// this node counts it unreachable.
func (p *placement) listedMember(addr string) (listed, unreachable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return hasMember(p.listed, addr), p.unreachable[addr]
}

// tellUnreachable tells the placement actor of every other member listed
// but addr that this node finds addr unreachable (unreachableAt): each
// then sees for itself (Node.suspect). Older nodes refuse it.
func (p *placement) tellUnreachable(addr string) {
	p.mu.Lock()
	to := Addresses(p.listed)
	p.mu.Unlock()
	me := p.c.ActorSystem.Address()
	msg := &cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(addr, newKind+unreachableKind), RequestId: unreachableAt}
	for _, m := range to {
		if m != me && m != addr {
			p.c.ActorSystem.Root.Send(actor.NewPID(m, activatorName), msg)
		}
	}
}

func (p *placement) Shutdown() {
	system := p.c.ActorSystem
	system.EventStream.Unsubscribe(p.sub)
	if err := system.Root.PoisonFuture(p.pid).Wait(); err != nil {
		p.c.Logger().Error("stopping the placement actor", slog.Any("error", err))
	}
}

// Get asks the identity's owner for its activation (made on the owner if
// need be); nil without an answer within 5 s.
func (p *placement) Get(ci *cluster.ClusterIdentity) *actor.PID { return p.get(ci, false, nil) }

// get is Get; here asks for an activation that does not exist yet to be
// made on this node, which hosts ci's kind; gone, if set, is an activation
// of ci this node found gone.
func (p *placement) get(ci *cluster.ClusterIdentity, here bool, gone *actor.PID) *actor.PID {
	owner := p.rdv.Load().GetByClusterIdentity(ci)
	if owner == "" {
		return nil
	}
	req := &cluster.ActivationRequest{ClusterIdentity: ci, RequestId: askFor(here, gone)}
	res, err := p.c.ActorSystem.Root.RequestFuture(actor.NewPID(owner, activatorName), req, 5*time.Second).Result()
	if err != nil {
		if p.suspect != nil && owner != p.c.ActorSystem.Address() {
			p.suspect(owner) // silent, or its connection ended: is it there at all?
		}
		return nil
	}
	if r, ok := res.(*cluster.ActivationResponse); ok {
		return r.Pid
	}
	return nil
}

// RemovePid tells every member that pid, the activation of ci, is gone
// (placer.broadcast).
func (p *placement) RemovePid(ci *cluster.ClusterIdentity, pid *actor.PID) {
	p.c.ActorSystem.Root.Send(p.pid, goneEverywhere{&cluster.ActivationTerminated{Pid: pid, ClusterIdentity: ci}})
}

// goneEverywhere asks the placer to tell every member of an activation
// that is gone.
type goneEverywhere struct{ m *cluster.ActivationTerminated }

// grain is one activation the placer made, or (on its identity's owner)
// one another member made for it.
type grain struct {
	ci  *cluster.ClusterIdentity
	pid *actor.PID
	// owner is, for an activation this member made for another, that
	// member's address; "" for this member's own.
	owner string
	// unwatched says, of an activation another member hosts, that the
	// watch on it ended with the connection to its member: it is watched
	// again when next handed out.
	unwatched bool
	// keptUntil is when the entry of an activation another member hosts,
	// of an identity this member no longer owns, is dropped (keptFor).
	keptUntil time.Time
}

// placer makes and keeps the activations of the identities this member
// owns, and those it makes for other members; they are its children, so
// their Terminated comes to it. The activations of identities it owns
// that live on other members it watches.
type placer struct {
	c        *cluster.Cluster
	log      *slog.Logger      // placement.logger
	handBack bool              // placement.handBack
	suspect  func(addr string) // placement.suspect
	// tryingToReach is placement.tryingToReach.
	tryingToReach func(addr string) bool
	declines      func() bool       // placement.declines
	actors        map[string]grain  // by identity key (kind/identity)
	byPID         map[pidKey]string // identity key by activation PID
	rdv           *cluster.Rendezvous
	// members are the cluster's members, by address.
	members map[string]*cluster.Member
	// moved are the keys of activations to stop, oldest first; queued the
	// same as a set; ticking says a handback tick is on its way.
	moved   []string
	queued  map[string]bool
	ticking bool
	// pending are the identities whose activation another member is
	// making, with the requests that wait for it.
	pending map[string][]*actor.PID
	// unanswered are the identities whose asker did not answer whether it
	// made the activation, with its address: it is asked again first,
	// whoever asks next, lest a second activation be made elsewhere.
	unanswered map[string]string
	// registering are the identities of activations here being registered
	// with their new owner (hostedHere): not stopped meanwhile; generation
	// numbers them.
	registering map[string]registration
	generation  uint64
	// previous is how membership placed identities before this member
	// joined the cluster, at joined (the first membership with another
	// member in it).
	previous        *cluster.Rendezvous
	previousMembers cluster.Members
	joined          time.Time
	started         time.Time
	// lost are the changes of membership of the last previousWindow in
	// which members left: their directories went with them (orphaned).
	lost []departure
	// whereAsks are the members' whereIs waiting in pending, by sender:
	// a refusal does not answer them (answerAll).
	whereAsks map[pidKey]bool
}

// departure is a change of membership in which members left.
type departure struct {
	before *cluster.Rendezvous // membership before it
	left   map[string]bool     // the addresses of the members that left
	at     time.Time
}

// handbackTick stops the next batch of moved activations.
type handbackTick struct{}

// dropKept drops the entry of key's activation, on another member, kept
// since its identity went to another owner (keptFor), if it still is.
type dropKept string

func (p *placer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ActivationRequest:
		p.activate(ctx, m)
	case *actor.Terminated:
		p.terminated(ctx, m)
	case *cluster.ActivationTerminated:
		p.handedOver(ctx, m)
	case *cluster.ClusterTopology:
		p.topology(ctx, m)
	case handbackTick:
		p.handback(ctx)
	case registerAgain:
		p.registerTry(ctx, m)
	case goneEverywhere:
		p.broadcast(ctx, m.m)
	case dropKept:
		if g, ok := p.actors[string(m)]; ok && !g.keptUntil.IsZero() && !time.Now().Before(g.keptUntil) {
			p.drop(ctx, string(m), g)
			p.log.Debug("entry kept for the identity's new owner dropped", slog.String("identity", string(m)))
		}
	case *actor.Stopping:
		p.stopAll(ctx)
	}
}

func (p *placer) activate(ctx actor.Context, m *cluster.ActivationRequest) {
	ci := m.ClusterIdentity
	if kind, ok := strings.CutPrefix(ci.GetKind(), newKind); ok {
		p.asked(ctx, m, cluster.NewClusterIdentity(ci.Identity, kind))
		return
	}
	key := ci.AsKey()
	if m.RequestId == hostForOwner {
		p.hostFor(ctx, ci, key)
		return
	}
	_, gone := parseAsk(m.RequestId)
	me := ctx.ActorSystem().Address()
	if g, ok := p.actors[key]; ok && gone != nil && g.pid.Address != me && g.pid.Equal(gone) {
		// (This member's own activations tell their end themselves.)
		p.drop(ctx, key, g)
	}
	if g, ok := p.actors[key]; ok {
		if g.unwatched {
			g.unwatched = false
			p.actors[key] = g
			ctx.Watch(g.pid) // a gone one answers at once
		}
		ctx.Respond(&cluster.ActivationResponse{Pid: g.pid})
		return
	}
	if waiting, ok := p.pending[key]; ok {
		p.pending[key] = append(waiting, ctx.Sender())
		return
	}
	if owner := p.rdv.GetByClusterIdentity(ci); owner != me && p.tryingToReach != nil && p.tryingToReach(owner) {
		// The asker finds the identity's owner unreachable (it said so
		// first: unreachableAt), and this node is finding out: made
		// now, the activation would be handed to that owner. The asker
		// asks again.
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	kind := p.c.GetClusterKind(ci.Kind)
	if kind == nil {
		ctx.Logger().Error("activation of an unknown kind", slog.String("kind", ci.Kind))
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	if prev := p.previousOwner(ctx, ci, nil); prev != "" {
		p.pending[key] = nil // requests for it wait meanwhile
		p.askPrevious(ctx, m, kind, prev, nil, false)
		return
	}
	if p.orphaned(ctx, ci) {
		p.pending[key] = nil
		p.askHosts(ctx, m, kind, nil, false)
		return
	}
	p.place(ctx, m, kind, nil)
}

// asked answers a request of another member's about ci's activation
// (hostedHere, whereIs), whose identity's kind is marked newKind.
func (p *placer) asked(ctx actor.Context, m *cluster.ActivationRequest, ci *cluster.ClusterIdentity) {
	key := ci.AsKey()
	if id, ok := strings.CutPrefix(m.RequestId, hostedHere); ok {
		p.hosted(ctx, ci, key, actor.NewPID(ctx.Sender().GetAddress(), id))
		return
	}
	if m.RequestId == unreachableAt && ci.Kind == unreachableKind {
		if p.suspect != nil && ci.Identity != ctx.ActorSystem().Address() {
			p.suspect(ci.Identity)
		}
		return
	}
	if m.RequestId != whereIs {
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	if waiting, ok := p.pending[key]; ok { // answered with the one being made, if made
		p.pending[key] = append(waiting, ctx.Sender())
		p.whereAsks[keyOf(ctx.Sender())] = true
		return
	}
	g, listed := p.actors[key]
	_, unsure := p.unanswered[key]
	if (listed && g.unwatched) || (!listed && (unsure || p.orphaned(ctx, ci))) {
		// This member does not know: its watch of the one it lists
		// ended, the member it asked to make one did not say whether it
		// did, or the identity's owner left with its directory and no
		// one asked here since. No answer: the asker counts it as
		// silence, and makes none.
		return
	}
	if listed {
		ctx.Respond(&cluster.ActivationResponse{Pid: g.pid})
		return
	}
	ctx.Respond(&cluster.ActivationResponse{Failed: true})
}

// place makes the activation m asks for, which does not exist: at the
// asker, when this member owns the identity as it sees membership (one
// that does not would hand the activation back at once), or at the member
// asked before, which did not answer; else here. It answers m's sender
// and waiting, requests for it that came meanwhile.
func (p *placer) place(ctx actor.Context, m *cluster.ActivationRequest, kind *cluster.ActivatedKind, waiting []*actor.PID) {
	ci, key := m.ClusterIdentity, m.ClusterIdentity.AsKey()
	here, _ := parseAsk(m.RequestId)
	me := ctx.ActorSystem().Address()
	asker := ctx.Sender().GetAddress()
	if before, ok := p.unanswered[key]; ok {
		delete(p.unanswered, key)
		if p.members[before] != nil {
			asker, here = before, true
		}
	}
	if here && asker != me && p.hosts(asker, ci.Kind) && p.rdv != nil && p.rdv.GetByClusterIdentity(ci) == me {
		p.activateAt(ctx, ci, key, asker, waiting)
		return
	}
	pid := p.spawn(ctx, kind, ci, "")
	p.respondAll(ctx, waiting, pid)
	if p.rdv != nil && p.rdv.GetByClusterIdentity(ci) != me {
		// Asked by a member whose view of membership differs: registered
		// with the owner, as after a change.
		p.settle(ctx, key, p.actors[key])
	}
}

// activationOf says whether pid may be an activation of ci: every
// activation is its member's placement actor's child, named for its
// identity. (What another member says of an activation is listed only if
// it is one of ci's.)
func activationOf(ci *cluster.ClusterIdentity, pid *actor.PID) bool {
	return strings.HasPrefix(pid.Id, activatorName+"/"+ci.Identity+"$")
}

// respondAll answers the request being handled, and those in waiting,
// with pid.
func (p *placer) respondAll(ctx actor.Context, waiting []*actor.PID, pid *actor.PID) {
	r := &cluster.ActivationResponse{Pid: pid}
	p.answerAll(ctx, waiting, r)
	ctx.Respond(r)
}

// refuseAll refuses the request being handled, and those in waiting:
// they ask again.
func (p *placer) refuseAll(ctx actor.Context, waiting []*actor.PID) {
	r := &cluster.ActivationResponse{Failed: true}
	p.answerAll(ctx, waiting, r)
	ctx.Respond(r)
}

// list lists pid, ci's activation on another member, under key, and
// watches it.
func (p *placer) list(ctx actor.Context, key string, ci *cluster.ClusterIdentity, pid *actor.PID) {
	p.actors[key] = grain{ci: ci, pid: pid}
	p.byPID[keyOf(pid)] = key
	ctx.Watch(pid)
}

// answerAll sends r to every request in waiting; but a refusal to a
// member's whereIs (whereAsks), which gets no answer: "none" is not what
// this member learnt.
func (p *placer) answerAll(ctx actor.Context, waiting []*actor.PID, r *cluster.ActivationResponse) {
	for _, w := range waiting {
		if w == nil { // protoactor's own requests name a sender; a stray one may not
			continue
		}
		if k := keyOf(w); p.whereAsks[k] {
			delete(p.whereAsks, k)
			if r.Failed {
				continue
			}
		}
		ctx.Send(w, r)
	}
}

// previousOwner is the member that owned ci before this member joined,
// less than previousWindow ago, if this member owns it now and the other
// is still a member: the activation's host may not have registered it
// here yet. Members in asked were asked already, and knew of none: they
// joined with this one, perhaps, and own nothing yet.
func (p *placer) previousOwner(ctx actor.Context, ci *cluster.ClusterIdentity, asked []string) string {
	me := ctx.ActorSystem().Address()
	if p.previous == nil || time.Since(p.joined) >= previousWindow || p.rdv.GetByClusterIdentity(ci) != me ||
		len(asked) >= previousAsks {
		return ""
	}
	previous := p.previous
	if len(asked) > 0 {
		var left cluster.Members
		for _, m := range p.previousMembers {
			if !slices.Contains(asked, m.Address()) {
				left = append(left, m)
			}
		}
		previous = cluster.NewRendezvous()
		previous.UpdateMembers(left)
	}
	if prev := previous.GetByClusterIdentity(ci); prev != "" && prev != me && p.members[prev] != nil {
		return prev
	}
	return ""
}

// askPrevious asks prev, ci's owner before this member joined, for the
// activation it lists (whereIs), and lists that one here; without one, it
// asks the next previous owner, but for those in asked, then, if ci's
// owner since left, the other members (askHosts), and then makes it
// (place), unless one asked did not answer (silent: it may list one; the
// requests are refused, to ask again). Requests for it wait meanwhile, in
// pending.
func (p *placer) askPrevious(ctx actor.Context, m *cluster.ActivationRequest, kind *cluster.ActivatedKind, prev string, asked []string, silent bool) {
	ci, key := m.ClusterIdentity, m.ClusterIdentity.AsKey()
	rdv := p.rdv
	f := ctx.RequestFuture(actor.NewPID(prev, activatorName),
		&cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(ci.Identity, newKind+ci.Kind), RequestId: whereIs}, hostTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		waiting := p.pending[key]
		delete(p.pending, key)
		if g, ok := p.actors[key]; ok { // registered meanwhile
			p.respondAll(ctx, waiting, g.pid)
			return
		}
		pid := p.listedElsewhere(ctx, m, res, err)
		if pid == nil {
			// (One that left meanwhile hosts nothing any more.)
			asked, silent = append(asked, prev), silent || (noAnswer(err) && p.members[prev] != nil)
			p.pending[key] = waiting
			if next := p.previousOwner(ctx, ci, asked); next != "" {
				p.askPrevious(ctx, m, kind, next, asked, silent)
				return
			}
			if p.orphaned(ctx, ci) {
				p.askHosts(ctx, m, kind, asked, silent)
				return
			}
			delete(p.pending, key)
			if silent {
				// A previous owner that did not answer may list one.
				p.log.Debug("a previous owner did not say whether it lists an activation: none made", slog.String("identity", key))
				p.refuseAll(ctx, waiting)
				return
			}
			p.place(ctx, m, kind, waiting)
			return
		}
		p.found(ctx, key, ci, pid, rdv, waiting)
		p.log.Debug("activation found with the identity's previous owner", slog.String("identity", key),
			slog.String("previous", prev), slog.String("host", pid.Address))
	})
}

// found lists pid, ci's activation on another member that a member named,
// answers the requests for it, and, if membership changed while it was
// asked about (from rdv), settles it as membership now is.
func (p *placer) found(ctx actor.Context, key string, ci *cluster.ClusterIdentity, pid *actor.PID, rdv *cluster.Rendezvous, waiting []*actor.PID) {
	p.list(ctx, key, ci, pid)
	if p.rdv != rdv {
		p.settle(ctx, key, p.actors[key])
	}
	p.respondAll(ctx, waiting, pid)
}

// listedElsewhere is the activation of ci another member's answer to m's
// whereIs names (res, err), if it is one, on a third member, and not the
// one m's requester found gone (goneMark: another member may list it
// still, its end not heard of); else nil.
func (p *placer) listedElsewhere(ctx actor.Context, m *cluster.ActivationRequest, res any, err error) *actor.PID {
	r, _ := res.(*cluster.ActivationResponse)
	_, gone := parseAsk(m.RequestId)
	if err != nil || r == nil || r.Failed || r.Pid == nil || r.Pid.Address == ctx.ActorSystem().Address() ||
		p.members[r.Pid.Address] == nil || !activationOf(m.ClusterIdentity, r.Pid) || r.Pid.Equal(gone) {
		return nil
	}
	return r.Pid
}

// orphaned says whether this member owns ci, and ci's owner, before
// members left the cluster less than previousWindow ago (as this member
// saw it), was one of them: its directory went with it, and the
// activation's host may not have registered it here yet (hostedHere).
func (p *placer) orphaned(ctx actor.Context, ci *cluster.ClusterIdentity) bool {
	if p.rdv == nil || p.rdv.GetByClusterIdentity(ci) != ctx.ActorSystem().Address() {
		return false // (nil before the first topology)
	}
	return slices.ContainsFunc(p.lost, func(d departure) bool {
		return time.Since(d.at) < previousWindow && d.left[d.before.GetByClusterIdentity(ci)]
	})
}

// noAnswer says whether a whereIs's outcome, err, leaves open what the
// member asked lists: it did not answer in time. (A member whose placement
// actor is gone, a dead letter, lists nothing: its activations went with
// it.)
func noAnswer(err error) bool { return err != nil && !errors.Is(err, actor.ErrDeadLetter) }

// askHosts asks every other member that hosts ci's kind, but those in
// asked, where ci's activation is (whereIs), at once, and lists the first
// one named. With none named it makes one (place), unless a member did not
// answer (or, silent, one asked before did not): it may host it, so none
// is made, lest there be two; the requests waiting are refused, to ask
// again. Requests for it wait meanwhile, in pending.
func (p *placer) askHosts(ctx actor.Context, m *cluster.ActivationRequest, kind *cluster.ActivatedKind, asked []string, silent bool) {
	ci, key := m.ClusterIdentity, m.ClusterIdentity.AsKey()
	me := ctx.ActorSystem().Address()
	var hosts []string
	for addr, member := range p.members {
		if addr != me && member.HasKind(ci.Kind) && !slices.Contains(asked, addr) {
			hosts = append(hosts, addr)
		}
	}
	rdv := p.rdv
	finish := func(pid *actor.PID) {
		waiting := p.pending[key]
		delete(p.pending, key)
		switch g, ok := p.actors[key]; {
		case ok: // (made or listed meanwhile: never two)
			p.respondAll(ctx, waiting, g.pid)
		case pid != nil:
			p.found(ctx, key, ci, pid, rdv, waiting)
			p.log.Debug("activation found with a member, its identity's owner gone", slog.String("identity", key),
				slog.String("host", pid.Address))
		case silent:
			p.log.Debug("a member did not say whether it hosts an activation whose identity's owner left: none made",
				slog.String("identity", key))
			p.refuseAll(ctx, waiting)
		default:
			p.place(ctx, m, kind, waiting)
		}
	}
	if len(hosts) == 0 {
		finish(nil)
		return
	}
	p.log.Debug("asking the members for an activation whose identity's owner left", slog.String("identity", key),
		slog.Int("members", len(hosts)))
	left, done := len(hosts), false
	for _, h := range hosts {
		f := ctx.RequestFuture(actor.NewPID(h, activatorName),
			&cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(ci.Identity, newKind+ci.Kind), RequestId: whereIs}, hostTimeout)
		ctx.ReenterAfter(f, func(res any, err error) {
			left--
			if done {
				return
			}
			silent = silent || (noAnswer(err) && p.members[h] != nil) // (one that left hosts nothing)
			pid := p.listedElsewhere(ctx, m, res, err)
			if pid == nil && left > 0 {
				return
			}
			done = true
			finish(pid)
		})
	}
}

// hosts says whether the member at addr hosts kind.
func (p *placer) hosts(addr, kind string) bool {
	m := p.members[addr]
	return m != nil && m.HasKind(kind)
}

// spawn makes an activation of ci here, for owner ("" for this member).
func (p *placer) spawn(ctx actor.Context, kind *cluster.ActivatedKind, ci *cluster.ClusterIdentity, owner string) *actor.PID {
	pid := ctx.SpawnPrefix(cluster.WithClusterIdentity(kind.Props, ci), ci.Identity)
	kind.Inc()
	key := ci.AsKey()
	p.actors[key] = grain{ci: ci, pid: pid, owner: owner}
	p.byPID[keyOf(pid)] = key
	return pid
}

// activateAt asks the member at asker to make ci's activation, and answers
// every request for it that came meanwhile with that one, or with one made
// here if the asker refused. Without the asker's answer (it may have made
// one, the answer lost or late) it makes none, lest there be two: the
// waiting requests are answered without a PID, and asked again.
func (p *placer) activateAt(ctx actor.Context, ci *cluster.ClusterIdentity, key, asker string, waiting []*actor.PID) {
	p.pending[key] = append(waiting, ctx.Sender())
	rdv := p.rdv
	f := ctx.RequestFuture(actor.NewPID(asker, activatorName),
		&cluster.ActivationRequest{ClusterIdentity: ci, RequestId: hostForOwner}, hostTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		waiting := p.pending[key]
		delete(p.pending, key)
		answer := func(r *cluster.ActivationResponse) { p.answerAll(ctx, waiting, r) }
		if g, ok := p.actors[key]; ok {
			answer(&cluster.ActivationResponse{Pid: g.pid}) // not since activate found none, but never two
			return
		}
		r, _ := res.(*cluster.ActivationResponse)
		var pid *actor.PID
		switch {
		case err != nil || r == nil:
			ctx.Logger().Warn("the member a request came from did not answer whether it made the activation",
				slog.String("member", asker), slog.Any("error", err))
			p.unanswered[key] = asker
			answer(&cluster.ActivationResponse{Failed: true})
			return
		case !r.Failed && r.Pid != nil && r.Pid.Address == asker && p.members[asker] != nil:
			pid = r.Pid
			p.list(ctx, key, ci, pid)
		default:
			// It refused (draining, or its membership differs): here then.
			kind, ok := p.c.TryGetClusterKind(ci.Kind)
			if !ok {
				answer(&cluster.ActivationResponse{Failed: true})
				return
			}
			pid = p.spawn(ctx, kind, ci, "")
		}
		// Membership may have moved the identity while the asker was asked.
		if p.rdv != rdv {
			p.settle(ctx, key, p.actors[key])
		}
		answer(&cluster.ActivationResponse{Pid: pid})
	})
}

// hostFor makes ci's activation here for the sender, its owner, which a
// request that reached this member asked for; if this member has one
// already (it made it for another owner, or as the owner before
// membership moved the identity), it now keeps it for the sender. A member
// refuses while draining, and when the sender is not ci's owner as it sees
// membership (it would stop the activation at once): the owner then makes
// one itself.
func (p *placer) hostFor(ctx actor.Context, ci *cluster.ClusterIdentity, key string) {
	owner := ctx.Sender().GetAddress()
	kind, ok := p.c.TryGetClusterKind(ci.Kind)
	// (Nor while this member asks another to make it: there would be two.)
	if _, asking := p.pending[key]; !ok || asking || p.declines() || p.rdv == nil ||
		p.rdv.GetByClusterIdentity(ci) != owner || owner == ctx.ActorSystem().Address() {
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	if g, ok := p.actors[key]; ok {
		if g.pid.Address != ctx.ActorSystem().Address() {
			ctx.Respond(&cluster.ActivationResponse{Failed: true}) // a directory entry: not here
			return
		}
		g.owner = owner
		p.actors[key] = g
		ctx.Respond(&cluster.ActivationResponse{Pid: g.pid})
		return
	}
	ctx.Respond(&cluster.ActivationResponse{Pid: p.spawn(ctx, kind, ci, owner)})
}

// hosted lists pid, an activation of ci on the sender, which registers it
// as membership made this member ci's owner (hostedHere), unless this
// member lists one already (it answers with that one), does not own ci as
// it sees membership, is having one made, or waits for another member's
// word whether it made one (it refuses).
func (p *placer) hosted(ctx actor.Context, ci *cluster.ClusterIdentity, key string, pid *actor.PID) {
	me := ctx.ActorSystem().Address()
	if p.rdv == nil || p.rdv.GetByClusterIdentity(ci) != me {
		ctx.Respond(&cluster.ActivationResponse{Failed: true}) // (an entry kept for a whereIs is not the directory's)
		return
	}
	if g, ok := p.actors[key]; ok {
		ctx.Respond(&cluster.ActivationResponse{Pid: g.pid})
		return
	}
	_, making := p.pending[key]
	before, asked := p.unanswered[key]
	if making || (asked && before != pid.Address) || pid.Address == me || !p.hosts(pid.Address, ci.Kind) || !activationOf(ci, pid) {
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	delete(p.unanswered, key)
	p.list(ctx, key, ci, pid)
	p.log.Debug("activation registered by its host", slog.String("identity", key), slog.String("host", pid.Address))
	ctx.Respond(&cluster.ActivationResponse{Pid: pid})
}

// register asks owner, which membership made the owner of the identity
// of g, an activation here, to list it (hostedHere). If it lists another,
// g is stopped in the handback; if it refuses or does not answer (its view
// of membership may trail this member's), it is asked again registerEvery
// later, for registerFor in all, and g then stopped.
func (p *placer) register(ctx actor.Context, key string, g grain, owner string) {
	if r, ok := p.registering[key]; ok && r.owner == owner && r.pid.Equal(g.pid) {
		return
	}
	p.generation++
	p.registering[key] = registration{owner: owner, pid: g.pid, generation: p.generation, until: time.Now().Add(registerFor)}
	p.registerTry(ctx, registerAgain{key: key, generation: p.generation})
}

// How long, and how often, an activation's host asks its identity's new
// owner that refuses, or does not answer, to list it.
const (
	registerFor   = 10 * time.Second
	registerEvery = 500 * time.Millisecond
)

// registration is an activation here being registered with owner, its
// identity's new owner; generation tells it from another registration of
// the same identity.
type registration struct {
	owner      string
	pid        *actor.PID
	generation uint64
	until      time.Time
}

// registerAgain asks the new owner of key's identity again to list its
// activation, for the registration of generation.
type registerAgain struct {
	key        string
	generation uint64
}

func (p *placer) registerTry(ctx actor.Context, try registerAgain) {
	key := try.key
	// current is the registration tried, if it is still under way: for
	// the activation listed here, whose identity its owner still owns.
	current := func() (registration, grain, bool) {
		r, ok := p.registering[key]
		if !ok || r.generation != try.generation {
			return r, grain{}, false // done, or another since
		}
		g, ok := p.actors[key]
		if !ok || !g.pid.Equal(r.pid) || p.rdv.GetByClusterIdentity(g.ci) != r.owner {
			// It ended, or membership moved its identity since: that
			// change settled it.
			delete(p.registering, key)
			return r, g, false
		}
		return r, g, true
	}
	_, g, ok := current()
	if !ok {
		return
	}
	f := ctx.RequestFuture(actor.NewPID(p.registering[key].owner, activatorName),
		&cluster.ActivationRequest{ClusterIdentity: cluster.NewClusterIdentity(g.ci.Identity, newKind+g.ci.Kind), RequestId: hostedHere + g.pid.Id},
		hostTimeout)
	ctx.ReenterAfter(f, func(res any, err error) {
		r, g, ok := current()
		if !ok {
			return
		}
		answer, _ := res.(*cluster.ActivationResponse)
		refused := err != nil || answer == nil || answer.Failed
		switch {
		case !refused && g.pid.Equal(answer.Pid):
			delete(p.registering, key)
			g.owner = r.owner
			p.actors[key] = g
			p.log.Debug("activation kept for its identity's new owner", slog.String("identity", key), slog.String("owner", r.owner))
			return
		case refused && time.Now().Before(r.until):
			self, root := ctx.Self(), ctx.ActorSystem().Root
			time.AfterFunc(registerEvery, func() { root.Send(self, try) })
			return
		}
		delete(p.registering, key)
		p.log.Debug("activation not registered with its identity's new owner: stopped", slog.String("identity", key),
			slog.String("owner", r.owner), slog.Bool("another_listed", !refused), slog.Any("error", err))
		if !p.keep(ctx, key, g) {
			p.queue(ctx, key)
		}
	})
}

func (p *placer) terminated(ctx actor.Context, t *actor.Terminated) {
	pid := t.Who
	k := keyOf(pid)
	key, ok := p.byPID[k]
	if !ok {
		return
	}
	g, ok := p.actors[key]
	if !ok || !g.pid.Equal(pid) {
		delete(p.byPID, k) // left from an entry replaced: never drop the one listed
		return
	}
	if pid.Address != ctx.ActorSystem().Address() {
		if t.Why == actor.TerminatedReason_AddressTerminated && p.members[pid.Address] != nil {
			// The connection to its member ended, not the activation
			// perhaps: the entry stays until that member leaves, or a
			// member finds the activation gone (goneMark), or a watch
			// made anew says so.
			g.unwatched = true
			p.actors[key] = g
			return
		}
		p.forget(key, k)
		return // another member's: it tells the cluster
	}
	p.ended(ctx, key, g)
}

// ended forgets an activation of this member's that ended, and tells the
// cluster.
func (p *placer) ended(ctx actor.Context, key string, g grain) {
	p.forget(key, keyOf(g.pid))
	if kind, ok := p.c.TryGetClusterKind(g.ci.Kind); ok {
		kind.Dec()
	}
	p.broadcast(ctx, &cluster.ActivationTerminated{Pid: g.pid, ClusterIdentity: g.ci})
}

// broadcast sends m to the event stream of every member, this one
// included, as the placer last heard of them. (protoactor's
// MemberList.BroadcastEvent reads its member list without its lock, racing
// with the provider's next topology: the race detector caught it.)
func (p *placer) broadcast(ctx actor.Context, m *cluster.ActivationTerminated) {
	root, me := ctx.ActorSystem().Root, ctx.ActorSystem().Address()
	root.Send(actor.NewPID(me, "eventstream"), m)
	for addr := range p.members {
		if addr != me {
			root.Send(actor.NewPID(addr, "eventstream"), m)
		}
	}
}

// handedOver forgets an activation that stops serving before it stops (a
// session that moved, actors/follow.go), told by the activation itself, or
// for an activation on another member, by its member's placement: the next
// request makes a new one, while the old one, lingering, refuses unserved
// what still reaches it. A host tells the identity's owner in turn.
func (p *placer) handedOver(ctx actor.Context, m *cluster.ActivationTerminated) {
	if m.Pid == nil || m.ClusterIdentity == nil {
		return
	}
	key := m.ClusterIdentity.AsKey()
	g, ok := p.actors[key]
	if !ok || !g.pid.Equal(m.Pid) {
		return
	}
	from := ctx.Sender()
	if g.pid.Address != ctx.ActorSystem().Address() {
		if from.GetAddress() == g.pid.Address { // its member's word
			p.drop(ctx, key, g)
		}
		return
	}
	if from == nil || !from.Equal(g.pid) {
		return // only the activation says it is done
	}
	if g.owner != "" {
		ctx.Request(actor.NewPID(g.owner, activatorName), m)
	}
	p.ended(ctx, key, g)
}

// forget drops the activation of key, whose PID's key is k.
func (p *placer) forget(key string, k pidKey) {
	delete(p.byPID, k)
	delete(p.actors, key)
}

// drop forgets the entry of an activation another member hosts, and stops
// watching it.
func (p *placer) drop(ctx actor.Context, key string, g grain) {
	ctx.Unwatch(g.pid)
	p.forget(key, keyOf(g.pid))
}

// topology queues the activations whose identity now belongs to another
// member, and starts handing them back. An activation made here for an
// owner is kept while that member owns its identity, and adopted if this
// member does. The entries of activations on members that left are dropped
// at once: protoactor tells no Terminated for them when the connection
// ends cleanly, or stalls.
func (p *placer) topology(ctx actor.Context, t *cluster.ClusterTopology) {
	me := ctx.ActorSystem().Address()
	if p.joined.IsZero() && len(t.Members) > 1 && (len(p.actors) == 0 || time.Since(p.started) < joinWindow) {
		// Joining: the others owned what this member owns now.
		before := slices.DeleteFunc(slices.Clone(t.Members), func(m *cluster.Member) bool { return m.Address() == me })
		p.previous, p.previousMembers, p.joined = cluster.NewRendezvous(), before, time.Now()
		p.previous.UpdateMembers(before)
	}
	left := make(map[string]bool, len(p.members))
	for addr := range p.members {
		left[addr] = true
	}
	for _, m := range t.Members {
		delete(left, m.Address())
	}
	delete(left, me) // (a member that sees itself leave owns nothing)
	p.lost = slices.DeleteFunc(p.lost, func(d departure) bool { return time.Since(d.at) >= previousWindow })
	if len(left) > 0 && p.rdv != nil {
		p.lost = append(p.lost, departure{before: p.rdv, left: left, at: time.Now()})
	}
	p.rdv = cluster.NewRendezvous()
	p.rdv.UpdateMembers(t.Members)
	clear(p.members)
	for _, m := range t.Members {
		p.members[m.Address()] = m
	}
	for key, addr := range p.unanswered {
		if p.members[addr] == nil {
			delete(p.unanswered, key) // gone, and what it made with it
		}
	}
	for key, g := range p.actors {
		if g.pid.Address != me && p.members[g.pid.Address] == nil {
			p.drop(ctx, key, g)
			continue
		}
		p.settle(ctx, key, g)
	}
}

// settle keeps the activation of key as membership now is (keep), or
// registers it with its identity's new owner; one whose identity belongs
// to no member, or all with handBack, it stops.
func (p *placer) settle(ctx actor.Context, key string, g grain) {
	if p.keep(ctx, key, g) {
		return
	}
	if owner := p.rdv.GetByClusterIdentity(g.ci); owner != "" && !p.handBack {
		p.register(ctx, key, g, owner)
		return
	}
	p.queue(ctx, key)
}

// keep says whether the activation of key stays here as membership now
// is: one of this member's own whose identity it still owns, or one it
// made for the identity's owner; it adopts one made for another whose
// identity it now owns. The entry of one another member hosts stays
// (until the activation ends, or its member leaves), but when that member
// now owns its identity (it adopts it): the host registers it with a new
// owner, which may ask here meanwhile (whereIs).
func (p *placer) keep(ctx actor.Context, key string, g grain) bool {
	me := ctx.ActorSystem().Address()
	owner := p.rdv.GetByClusterIdentity(g.ci)
	switch {
	case g.pid.Address != me: // a directory entry
		switch {
		case owner == g.pid.Address:
			p.drop(ctx, key, g)
		case owner == me:
			g.keptUntil = time.Time{}
			p.actors[key] = g
		case g.keptUntil.IsZero():
			g.keptUntil = time.Now().Add(keptFor)
			p.actors[key] = g
			self, root := ctx.Self(), ctx.ActorSystem().Root
			time.AfterFunc(keptFor, func() { root.Send(self, dropKept(key)) })
		}
		return true
	case g.owner == "":
		return owner == me
	case owner == me:
		g.owner = ""
		p.actors[key] = g
		return true
	}
	return owner == g.owner
}

// queue queues the activation of key for the handback, and starts it.
func (p *placer) queue(ctx actor.Context, key string) {
	if p.queued[key] {
		return
	}
	p.moved = append(p.moved, key)
	p.queued[key] = true
	if !p.ticking {
		p.ticking = true
		p.handback(ctx)
	}
}

// handback stops the next handbackBatch moved activations that are still
// another member's, and schedules the next batch.
func (p *placer) handback(ctx actor.Context) {
	for n := 0; n < handbackBatch && len(p.moved) > 0; {
		key := p.moved[0]
		p.moved[0] = ""
		p.moved = p.moved[1:]
		delete(p.queued, key)
		g, ok := p.actors[key]
		if _, asking := p.registering[key]; !ok || asking || p.keep(ctx, key, g) {
			continue // gone already, being registered with a new owner, or moved back
		}
		ctx.Poison(g.pid)
		n++
	}
	if len(p.moved) == 0 {
		p.moved, p.ticking = nil, false
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(handbackEvery, func() { root.Send(self, handbackTick{}) })
}

// stopAll stops every activation here as the member leaves, and waits for
// them; those on other members are theirs to stop.
func (p *placer) stopAll(ctx actor.Context) {
	me := ctx.ActorSystem().Address()
	futures := make([]*actor.Future, 0, len(p.actors))
	for _, g := range p.actors {
		if g.pid.Address == me {
			futures = append(futures, ctx.PoisonFuture(g.pid))
		}
	}
	for _, f := range futures {
		if err := f.Wait(); err != nil {
			ctx.Logger().Error("stopping an activation", slog.Any("error", err))
		}
	}
}

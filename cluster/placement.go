package cluster

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/eventstream"
)

// placement is the cluster's identity lookup: an identity's activation
// lives on the member rendezvous hashing picks among those of its kind, as
// with protoactor's disthash, whose messages and activator name it keeps (a
// node of an older pingmcp places and finds activations with it alike).
// Two things differ, for nodes of 100,000 actors:
//
//   - a terminated activation is found by its PID in one map lookup.
//     disthash scans every activation of the node for each one that stops,
//     so stopping many at once (a handback, a drain, passivation under
//     memory pressure) costs the square of the node's actors: about 16 ns
//     times n²/4 (3.6 s for 30,000 here), while its activator answers no
//     activation request;
//   - when membership changes, the activations whose identity now belongs
//     to another member are stopped handbackBatch at a time, every
//     handbackEvery, rather than all at once, each checked again when its
//     turn comes (membership may have moved it back): the member taking
//     them over rehydrates them as their requests come, at a rate it can
//     take. Until its turn an activation serves the requests that reach it;
//     one activated meanwhile on the new owner fences it out (epochs, see
//     actors/activation.go), as when two nodes' views of membership differ.
type placement struct {
	c   *cluster.Cluster
	rdv atomic.Pointer[cluster.Rendezvous]
	pid *actor.PID
	sub *eventstream.Subscription
}

// Pace of the handback of moved activations: 2,000 per second per node.
const (
	handbackBatch = 100
	handbackEvery = 50 * time.Millisecond
)

// activatorName is the placement actor's name on every member.
const activatorName = disthash.PartitionActivatorActorName

func newPlacement() *placement { return &placement{} }

var _ cluster.IdentityLookup = (*placement)(nil)

func (p *placement) Setup(c *cluster.Cluster, _ []string, _ bool) {
	p.c = c
	p.rdv.Store(cluster.NewRendezvous())
	system := c.ActorSystem
	p.pid, _ = system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &placer{c: c, actors: map[string]grain{}, byPID: map[string]string{}, queued: map[string]bool{}}
	}), activatorName)
	p.sub = system.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*cluster.ClusterTopology); ok {
			rdv := cluster.NewRendezvous()
			rdv.UpdateMembers(t.Members)
			p.rdv.Store(rdv)
			system.Root.Send(p.pid, t)
		}
	})
}

func (p *placement) Shutdown() {
	system := p.c.ActorSystem
	system.EventStream.Unsubscribe(p.sub)
	if err := system.Root.PoisonFuture(p.pid).Wait(); err != nil {
		p.c.Logger().Error("stopping the placement actor", slog.Any("error", err))
	}
}

// Get asks the identity's owner for its activation (made if need be); nil
// without an answer within 5 s.
func (p *placement) Get(ci *cluster.ClusterIdentity) *actor.PID {
	owner := p.rdv.Load().GetByClusterIdentity(ci)
	if owner == "" {
		return nil
	}
	res, err := p.c.ActorSystem.Root.RequestFuture(actor.NewPID(owner, activatorName),
		&cluster.ActivationRequest{ClusterIdentity: ci}, 5*time.Second).Result()
	if err != nil {
		return nil
	}
	if r, ok := res.(*cluster.ActivationResponse); ok {
		return r.Pid
	}
	return nil
}

// RemovePid tells every member that pid, the activation of ci, is gone.
func (p *placement) RemovePid(ci *cluster.ClusterIdentity, pid *actor.PID) {
	p.c.MemberList.BroadcastEvent(&cluster.ActivationTerminated{Pid: pid, ClusterIdentity: ci}, true)
}

// grain is one activation the placer made.
type grain struct {
	ci  *cluster.ClusterIdentity
	pid *actor.PID
}

// placer makes and keeps the activations of the identities this member
// owns; they are its children, so their Terminated comes to it.
type placer struct {
	c      *cluster.Cluster
	actors map[string]grain  // by identity key (kind/identity)
	byPID  map[string]string // identity key by activation PID id
	rdv    *cluster.Rendezvous
	// moved are the keys of activations to stop, oldest first; queued the
	// same as a set; ticking says a handback tick is on its way.
	moved   []string
	queued  map[string]bool
	ticking bool
}

// handbackTick stops the next batch of moved activations.
type handbackTick struct{}

func (p *placer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ActivationRequest:
		p.activate(ctx, m)
	case *actor.Terminated:
		p.terminated(m.Who)
	case *cluster.ClusterTopology:
		p.topology(ctx, m)
	case handbackTick:
		p.handback(ctx)
	case *actor.Stopping:
		p.stopAll(ctx)
	}
}

func (p *placer) activate(ctx actor.Context, m *cluster.ActivationRequest) {
	key := m.ClusterIdentity.AsKey()
	if g, ok := p.actors[key]; ok {
		ctx.Respond(&cluster.ActivationResponse{Pid: g.pid})
		return
	}
	kind := p.c.GetClusterKind(m.ClusterIdentity.Kind)
	if kind == nil {
		ctx.Logger().Error("activation of an unknown kind", slog.String("kind", m.ClusterIdentity.Kind))
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	pid := ctx.SpawnPrefix(cluster.WithClusterIdentity(kind.Props, m.ClusterIdentity), m.ClusterIdentity.Identity)
	kind.Inc()
	p.actors[key] = grain{ci: m.ClusterIdentity, pid: pid}
	p.byPID[pid.Id] = key
	ctx.Respond(&cluster.ActivationResponse{Pid: pid})
}

func (p *placer) terminated(pid *actor.PID) {
	key, ok := p.byPID[pid.Id]
	if !ok {
		return
	}
	g := p.actors[key]
	delete(p.byPID, pid.Id)
	delete(p.actors, key)
	if kind := p.c.GetClusterKind(g.ci.Kind); kind != nil {
		kind.Dec()
	}
	p.c.MemberList.BroadcastEvent(&cluster.ActivationTerminated{Pid: pid, ClusterIdentity: g.ci}, true)
}

// topology queues the activations whose identity now belongs to another
// member, and starts handing them back.
func (p *placer) topology(ctx actor.Context, t *cluster.ClusterTopology) {
	p.rdv = cluster.NewRendezvous()
	p.rdv.UpdateMembers(t.Members)
	me := ctx.ActorSystem().Address()
	for key, g := range p.actors {
		if !p.queued[key] && p.rdv.GetByClusterIdentity(g.ci) != me {
			p.moved = append(p.moved, key)
			p.queued[key] = true
		}
	}
	if len(p.moved) > 0 && !p.ticking {
		p.ticking = true
		p.handback(ctx)
	}
}

// handback stops the next handbackBatch moved activations that are still
// another member's, and schedules the next batch.
func (p *placer) handback(ctx actor.Context) {
	me := ctx.ActorSystem().Address()
	for n := 0; n < handbackBatch && len(p.moved) > 0; {
		key := p.moved[0]
		p.moved[0] = ""
		p.moved = p.moved[1:]
		delete(p.queued, key)
		g, ok := p.actors[key]
		if !ok || p.rdv.GetByClusterIdentity(g.ci) == me {
			continue // gone already, or moved back
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

// stopAll stops every activation as the member leaves, and waits for them.
func (p *placer) stopAll(ctx actor.Context) {
	futures := make([]*actor.Future, 0, len(p.actors))
	for _, g := range p.actors {
		futures = append(futures, ctx.PoisonFuture(g.pid))
	}
	for _, f := range futures {
		if err := f.Wait(); err != nil {
			ctx.Logger().Error("stopping an activation", slog.Any("error", err))
		}
	}
}

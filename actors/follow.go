package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster/envelope"

	"github.com/pingmcp/pingmcp/metrics"
)

// A session follows its traffic. Its activation is made on the node its
// request reached, when that node hosts sessions (cluster/placement.go);
// then, if another such node forwards it followAfter requests in a row
// (envelope.Request.From), with none served where it arrived between them,
// it moves there: it drains (its streams end with a retry hint, its
// snapshot is written), and the next request, refused unserved and sent
// again by that node, activates it there. A balancer that sends a
// session's requests to one node, which is not the node that took its
// initialize (a proxy hashing on Mcp-Session-Id, a client whose new
// connection landed elsewhere), then costs a hop for followAfter requests,
// not for all of them. Requests spread over the nodes (a round robin)
// rarely come followAfter in a row from one: a session moves then about
// once in 2·N^followAfter requests or more, for N nodes chosen at random.
// A stream held through a node other than the one its requests come from
// keeps it where it is (see follow). Only sessions kept in
// shared stores move (state.Stores.Shared): one kept in a node's memory
// would be lost.
const followAfter = 8

// moveDeadline bounds a moving session's drain. It starts with no
// request in flight but its streams, which end at once.
const moveDeadline = 5 * time.Second

// moveLinger is how long a moved session's activation, written and
// forgotten by the cluster's placement, goes on answering what still
// reaches it "not served" before it stops: the nodes that had its PID
// cached send those requests again, to the session's next activation. An
// actor that stops drops what is in its mailbox, which the node that sent
// it cannot tell from a request that may have been served: without the
// linger, the next request of the very client the session moved for,
// sent as it stopped, would be answered 503.
const moveLinger = time.Second

// handOver ends a moved session's activation once it is written: it tells
// the cluster's placement (its parent) to forget it, so that the next
// request activates the session where it comes from, lingers, then stops.
//
// The requests that came while it wrote are answered now, refused
// unserved as handed over: their nodes send them again at once (rather
// than after a backoff), and find the next activation, since the placement
// here has been told first (the placement of the identity's owner, on
// another member, may hear of it after a request: that request waits the
// backoff).
func (a *core) handOver(ctx actor.Context) {
	if parent := ctx.Parent(); parent != nil {
		ctx.Request(parent, &protocluster.ActivationTerminated{Pid: ctx.Self(), ClusterIdentity: protocluster.GetClusterIdentity(ctx)})
	}
	a.handedOver = true
	// Written: nothing more of this activation's is (a notification to a
	// stream while it lingers would be written under its epoch).
	a.persist.Load().close()
	if a.events != nil {
		a.events.close()
	}
	a.answerHeld(ctx, movedAway)
}

// answerHeld answers the requests held while the session was moving.
func (a *core) answerHeld(ctx actor.Context, refusal func(requestID string) *envelope.ResponsePart) {
	for _, q := range a.held {
		a.reply(ctx, q.replyTo, refusal(q.req.Id))
	}
	a.held = nil
	self, root := ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(moveLinger, func() { root.Send(self, endedNow{}) })
}

// refuseMoving answers a request that reached a session on its way to
// another node: held until the activation is handed over, then refused
// unserved as moved (handOver); at once, as any stopping actor's, if too
// many wait.
func (a *core) refuseMoving(replyTo *actor.PID, req *envelope.Request, send func(*envelope.ResponsePart)) {
	switch {
	case a.handedOver:
		send(movedAway(req.Id))
	case len(a.held) < maxQueued && (a.life == lifeDraining || a.life == lifeFlushing):
		a.held = append(a.held, queued{replyTo, req})
	default:
		send(unavailable(req.Id))
	}
}

// movedAway refuses a request unserved, as handed over.
func movedAway(requestID string) *envelope.ResponsePart {
	p := unavailable(requestID)
	for _, h := range p.Headers {
		if h.Name == envelope.NotServedHeader {
			h.Values = []string{envelope.NotServedMoved}
		}
	}
	return p
}

// trail is the run of requests that one node forwarded to an actor.
type trail struct {
	from string
	run  int32
}

// note counts a request forwarded from the node at from ("" for one served
// where it arrived, or from a node that would not take the session), and
// says whether the session is to move there.
func (t *trail) note(from string) bool {
	if from != t.from {
		t.from, t.run = from, 0
	}
	if from == "" {
		return false
	}
	t.run++
	return t.run >= followAfter
}

// follow moves a session whose requests come from another node, once no
// request is in flight but its streams, and those come from that node too
// (see followAfter); else it waits for the next request to end. A stream
// held through another node would come back to it (its client reconnects
// there at the retry hint, and that node asks for the session there): the
// session would go back and forth. Nor does it move while its store
// refuses writes: what it has not written is all there is of it then (a
// node that cannot reach its stores draws no session either:
// cluster.Node.StoreReachable). Its drain writes the rest (within
// saveTimeout), as a node's drain does.
func (a *core) follow(ctx actor.Context) {
	if a.life != lifeServing {
		return
	}
	for _, f := range a.flights {
		if !f.get || f.from != a.trail.from {
			return
		}
	}
	if a.persist.Load().isFailing() || (a.events != nil && a.events.isFailing()) {
		return
	}
	a.logger.Info("session moving to the node its requests come from", "to", a.trail.from, "requests", a.trail.run)
	metrics.SessionMoves.Inc()
	a.leaving = true
	a.drain(ctx, &drainActor{deadline: time.Now().Add(moveDeadline)})
}

// stay gives up a move whose state the store did not take in time: this
// activation is all there is of what it could not write, so it serves on
// here (its writers retry), and the requests that came meanwhile are
// served now. (Its streams ended with the drain: their clients come back.)
func (a *core) stay(ctx actor.Context) {
	a.logger.Warn("session move given up: its state could not be written; serving on here")
	a.to(lifeServing)
	a.leaving, a.moving, a.trail = false, false, trail{}
	if a.drainTimer != nil {
		a.drainTimer.Stop()
		a.drainTimer = nil
	}
	held := a.held
	a.held = nil
	for _, q := range held {
		a.serveFrom(ctx, q.replyTo, q.req)
	}
	a.settle(ctx)
}

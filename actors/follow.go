package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

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
// once in N^followAfter requests, for N nodes. Only sessions kept in
// shared stores move (state.Stores.Shared): one kept in a node's memory
// would be lost.
const followAfter = 8

// moveDeadline bounds a moving session's drain. It starts with no
// request in flight but its streams, which end at once.
const moveDeadline = 5 * time.Second

// followFlushed tells a session about to move whether what it had not
// written yet is written.
type followFlushed struct{ ok bool }

// flushed moves the session, if it is still to move, once written.
func (a *core) flushed(ctx actor.Context, m followFlushed) {
	a.flushing = false
	if m.ok && a.moving {
		a.follow(ctx)
	}
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
// session would go back and forth. It moves once its snapshot and events
// are written (at once, mostly), and not while they cannot be (the store
// is unreachable): this activation is all there is of them then.
func (a *core) follow(ctx actor.Context) {
	if a.life != lifeServing || a.flushing {
		return
	}
	for _, f := range a.flights {
		if !f.get || f.from != a.trail.from {
			return
		}
	}
	if p := a.persist.Load(); !p.clean() || (a.events != nil && !a.events.clean()) {
		a.flushing = true
		self, root, ev := ctx.Self(), ctx.ActorSystem().Root, a.events
		go func() {
			c, cancel := context.WithTimeout(context.Background(), saveTimeout)
			defer cancel()
			var err error
			if p != nil {
				err = p.flush(c)
			}
			if err == nil && ev != nil {
				err = ev.flush(c)
			}
			root.Send(self, followFlushed{ok: err == nil})
		}()
		return
	}
	a.logger.Info("session moving to the node its requests come from", "to", a.trail.from, "requests", a.trail.run)
	metrics.SessionMoves.Inc()
	a.drain(ctx, &drainActor{deadline: time.Now().Add(moveDeadline)})
}

package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// drainActor asks an actor to drain: take no new request, end its streams
// at once (a GET stream with a retry hint, a listen with its end), let
// requests in flight finish until deadline, write its snapshot and stop.
// Its session goes on elsewhere.
type drainActor struct{ deadline time.Time }

// drainDeadline tells a draining actor that its requests ran out of time.
type drainDeadline struct{}

// drained tells a draining actor that its snapshot was flushed, or (ok
// false) that the store did not take all of it in time.
type drained struct{ ok bool }

func (a *core) drain(ctx actor.Context, m *drainActor) {
	if !a.to(lifeDraining) {
		return
	}
	a.logger.Info("draining actor", "in_flight", len(a.flights))
	// Streams that never end by themselves end now: a GET stream with a
	// retry hint (its client resumes it on the session's next activation),
	// a listen with the subscription's end (its client listens again,
	// through a node that serves).
	for _, f := range a.flights {
		if f.get {
			f.drain()
		} else if f.listen != nil {
			f.stopping.Store(true)
			f.drain()
		}
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	// Requests still running by the deadline are cut too; their clients
	// resume on the next activation, which answers them (journal).
	a.drainTimer = time.AfterFunc(time.Until(m.deadline.Add(-time.Second)), func() { root.Send(self, drainDeadline{}) })
	a.settle(ctx)
}

// finishDrain writes the snapshot (bounded) once no request is in flight,
// then stops the actor.
func (a *core) finishDrain(ctx actor.Context) {
	if !a.to(lifeFlushing) {
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	p, ev := a.persist.Load(), a.events
	go func() {
		c, cancel := context.WithTimeout(context.Background(), saveTimeout)
		defer cancel()
		ok := true
		if p != nil {
			if err := p.flush(c); err != nil {
				a.logger.Warn("drained actor's snapshot not written", "err", err)
				ok = false
			}
		}
		if ev != nil {
			if err := ev.flush(c); err != nil {
				a.logger.Warn("drained actor's events not all written", "err", err)
				ok = false
			}
		}
		root.Send(self, drained{ok: ok})
	}()
}

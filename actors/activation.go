package actors

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/retry"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
)

// activateTimeout bounds how long an activation tries to reach the store
// before its requests are answered 503.
const activateTimeout = 5 * time.Second

// activate takes a new epoch for the session, and its snapshot, off the
// actor's goroutine; the outcome comes back as *activated. A rehydrating
// activation also answers the requests its predecessor left unanswered.
//
// A session being created (create, for owner) is first counted against its
// user's cap (usersessions.go): refused, it is not activated at all.
func (a *SessionActor) activate(ctx actor.Context, create bool, owner *envelope.Principal) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	d, id, logger := a.cfg.Stores, a.id, a.logger
	go func() {
		m := &activated{started: time.Now()}
		deadline := m.started.Add(activateTimeout)
		pace := retry.Backoff{Min: retryMin, Max: retryMax}
		// Paced retries of an unreachable store, none after the deadline.
		retries, stop := context.WithDeadline(context.Background(), deadline)
		defer stop()
		if create {
			c, cancel := context.WithTimeout(context.Background(), saveTimeout)
			m.refused, m.err = claimSession(c, d, id, owner)
			cancel()
			if m.refused != nil || m.err != nil {
				root.Send(self, m)
				return
			}
		}
		for {
			c, cancel := context.WithTimeout(context.Background(), saveTimeout)
			m.epoch, m.snap, m.err = d.Snapshots.Activate(c, id, create)
			cancel()
			if errors.Is(m.err, state.ErrTooLarge) {
				// Activated, with a snapshot larger than pingmcp writes
				// (not read): unreadable, as one that does not decode.
				m.unreadable, m.err = m.err, nil
			}
			if m.err == nil || pace.Wait(retries) != nil {
				break
			}
		}
		if m.err == nil && m.snap != nil {
			c, cancel := context.WithTimeout(context.Background(), saveTimeout)
			// The standalone stream, opened here rather than by the
			// replayed initialize, which runs on the actor's goroutine;
			// without its owner, which the snapshot vouches for only once
			// restored (the session's next stream names it).
			if err := d.Events.OpenFor(c, id, "", "", m.epoch, nil); err != nil {
				logger.Warn("standalone stream not opened in the store", "err", err)
			}
			n, err := answerJournal(c, d.Events, id, m.epoch)
			cancel()
			m.interrupted = n
			switch {
			case errors.Is(err, state.ErrTooLarge):
				// Not pingmcp's: left to expire with the session's events.
				logger.Error("interrupted requests not answered: the session's request journal is refused", "err", err)
			case err != nil:
				// The requests stay journalled for the next activation.
				logger.Warn("interrupted requests not answered yet", "err", err)
			}
		}
		if m.err != nil && create && owner != nil {
			releaseSession(d, id, owner.Issuer, owner.Subject, logger)
		} else if m.err == nil && create {
			m.claimed = owner
		}
		root.Send(self, m)
	}()
}

// activated installs the outcome of the activation and serves the requests
// that waited for it.
func (a *SessionActor) activated(ctx actor.Context, m *activated) {
	pending := a.pending
	a.pending = nil
	switch {
	case m.err != nil:
		metrics.Activations.WithLabelValues("failed").Inc()
	case m.epoch == 0:
		metrics.Activations.WithLabelValues("unknown").Inc()
	case m.snap == nil && m.unreadable == nil:
		metrics.Activations.WithLabelValues("new").Inc()
	default:
		metrics.Activations.WithLabelValues("rehydrated").Inc()
		metrics.Interrupted.Add(float64(m.interrupted))
	}
	if m.refused != nil {
		metrics.Activations.WithLabelValues("refused").Inc()
		a.logger.Info("session not created: its user has as many as allowed")
		for _, q := range pending {
			a.reply(ctx, q.replyTo, m.refused.answer(q.req))
		}
		a.to(lifeEnded)
		a.stop(ctx)
		return
	}
	if m.err == nil && m.epoch == 0 {
		// No such session: what waited is answered as the edge answers an
		// id it cannot route (404, JSON-RPC -32001), not by the SDK, which
		// would say so in plain text; the actor ends.
		for _, q := range pending {
			a.reply(ctx, q.replyTo, notFound(q.req.Id))
		}
		a.to(lifeEnded)
		lingerEnded(ctx)
		return
	}
	if m.err != nil {
		a.logger.Warn("session not activated: its store cannot be reached; answering 503", "err", m.err)
		for _, q := range pending {
			a.reply(ctx, q.replyTo, unavailable(q.req.Id))
		}
		a.to(lifeStopping)
		a.stop(ctx)
		return
	}
	// Activating → Serving; a drain or an operator's end that came first
	// stands, and the requests that waited are refused as it says.
	a.to(lifeServing)
	if m.epoch > 0 {
		a.epoch = m.epoch
		a.live.setEpoch(m.epoch)
		a.events.epoch.Store(m.epoch)
		rec := newSnapshot(nil)
		if m.snap != nil || m.unreadable != nil {
			err := m.unreadable
			if err == nil {
				rec, err = a.restore(m.snap)
			}
			if err != nil {
				// Fail closed: the session is unknown here, and its
				// snapshot is left for its expiry. What the replay made
				// of it in the SDK before it failed (a session that
				// answers, with no owner bound any more) is closed, and
				// nothing is served: every request is answered "not
				// found", whoever sends it, until the actor stops.
				a.logger.Error("session snapshot cannot be restored", "err", err)
				for _, q := range pending {
					a.reply(ctx, q.replyTo, notFound(q.req.Id))
				}
				a.to(lifeEnded)
				a.keepEvents()
				for s := range a.ownSessions() {
					s.Close()
				}
				lingerEnded(ctx)
				return
			}
			a.logger.Info("session rehydrated", "epoch", m.epoch, "duration", time.Since(m.started),
				"interrupted_requests", m.interrupted)
		}
		self, root := ctx.Self(), ctx.ActorSystem().Root
		// Operators see where the session lives now: a restored
		// snapshot is written again at once, a new one with its
		// handshake.
		moved := m.snap != nil && (rec.Node != self.Address || rec.Epoch != m.epoch)
		if m.snap != nil && rec.Node != "" && rec.Node != self.Address {
			metrics.Failovers.Inc()
		}
		rec.Node, rec.Epoch = self.Address, m.epoch
		p := newPersister(a.cfg.Stores, a.id, m.epoch, rec, a.logger, func() { root.Send(self, fencedOut{}) })
		a.persist.Store(p)
		if moved {
			p.update(false, nil)
		}
	}
	a.claimed = m.claimed
	for _, q := range pending {
		a.serveFrom(ctx, q.replyTo, q.req)
	}
	// What waited was cancelled (dropPending), or refused before a flight
	// began (a body that is not JSON-RPC, scopes, limits): with nothing in
	// flight the actor settles as after its last request, ending (and
	// freeing its user's slot) if no session came of it.
	a.settle(ctx)
}

// queued is a request that arrived while the actor was activating.
type queued struct {
	replyTo *actor.PID
	req     *envelope.Request
}

// dropQueued removes from q the request id, if there is one, and says
// whether there was.
func dropQueued(q *[]queued, id string) bool {
	i := slices.IndexFunc(*q, func(e queued) bool { return e.req.Id == id })
	if i < 0 {
		return false
	}
	*q = slices.Delete(*q, i, i+1)
	return true
}

// maxQueued bounds the requests an activating actor holds.
const maxQueued = 256

// activated is the outcome of an activation, sent by its goroutine.
type activated struct {
	epoch int64
	snap  []byte
	err   error
	// unreadable is why the session's snapshot was not read (a
	// *state.TooLarge), its activation's epoch taken: restored, it would
	// fail, and the session is refused as it would then be.
	unreadable  error
	refused     *sessionCap         // the user has as many sessions as allowed
	claimed     *envelope.Principal // whose session it counted (claimSession), if any
	interrupted int                 // journalled requests answered
	started     time.Time
}

// fencedOut tells the actor that a newer activation owns its session.
type fencedOut struct{}

// fence stops an activation a newer one replaced (its persister or event
// writes found a newer epoch in the store): its requests are answered
// "retry", which reaches the newer one. An activation that removed its
// session itself is not fenced by its own writes still on their way.
func (a *SessionActor) fence(ctx actor.Context) {
	if a.removed.Load() {
		// Its own removal of the session moved the epoch on: the actor
		// ends as its session did (settled).
		return
	}
	if !a.to(lifeFenced) {
		return
	}
	a.logger.Warn("session moved to a newer activation; this one stops serving", "epoch", a.epoch)
	metrics.Fenced.Inc()
	a.keepEvents()
	a.stop(ctx)
}

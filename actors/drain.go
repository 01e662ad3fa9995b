package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Local is the set of actors live on this node, so that the node can drain
// them before it leaves the cluster.
type Local struct {
	// draining is set once the node drains: actors activated after that
	// drain at once.
	draining atomic.Bool

	mu      sync.Mutex
	pids    map[string]*actor.PID
	changed chan struct{} // closed and replaced when an actor leaves
}

// NewLocal returns an empty set.
func NewLocal() *Local {
	return &Local{pids: map[string]*actor.PID{}, changed: make(chan struct{})}
}

func (l *Local) add(pid *actor.PID) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.pids[pid.Id] = pid
	l.mu.Unlock()
}

func (l *Local) remove(pid *actor.PID) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.pids, pid.Id)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Len is how many actors are live.
func (l *Local) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pids)
}

// drainActor asks an actor to drain: take no new request, end its streams
// at once with a retry hint, let requests in flight finish until deadline,
// write its snapshot and stop. Its session goes on elsewhere.
type drainActor struct{ deadline time.Time }

// drainDeadline tells a draining actor that its requests ran out of time.
type drainDeadline struct{}

// drained tells a draining actor that its snapshot was flushed.
type drained struct{}

// Drain drains every live actor and waits until all stopped or ctx is done;
// it returns how many were still live then.
func (l *Local) Drain(ctx context.Context, system *actor.ActorSystem) int {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	l.draining.Store(true)
	l.mu.Lock()
	for _, pid := range l.pids {
		system.Root.Send(pid, &drainActor{deadline: deadline})
	}
	l.mu.Unlock()
	for {
		l.mu.Lock()
		n, changed := len(l.pids), l.changed
		l.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return n
		}
	}
}

// retryHint ends an SSE stream cut by a drain: the client reconnects after
// this long, by which time the session can be activated on another node.
const retryHint = "retry: 500\n\n"

func (a *SessionActor) drain(ctx actor.Context, m *drainActor) {
	if a.draining {
		return
	}
	a.draining = true
	a.logger.Info("draining actor", "in_flight", len(a.flights))
	for _, f := range a.flights {
		if f.get {
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
func (a *SessionActor) finishDrain(ctx actor.Context) {
	if a.drainFlushing {
		return
	}
	a.drainFlushing = true
	self, root := ctx.Self(), ctx.ActorSystem().Root
	p, ev := a.persist.Load(), a.events
	go func() {
		c, cancel := context.WithTimeout(context.Background(), saveTimeout)
		defer cancel()
		if p != nil {
			if err := p.flush(c); err != nil {
				a.logger.Warn("drained actor's snapshot not written", "err", err)
			}
		}
		if ev != nil {
			if err := ev.flush(c); err != nil {
				a.logger.Warn("drained actor's events not all written", "err", err)
			}
		}
		root.Send(self, drained{})
	}()
}

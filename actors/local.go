package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// Local is the set of actors live on this node, so that the node can drain
// them before it leaves the cluster, and say what it hosts.
type Local struct {
	// draining is set once the node drains: actors activated after that
	// drain at once.
	draining atomic.Bool

	mu       sync.Mutex
	pids     map[string]*liveActor // by PID id
	sessions map[string]*liveActor // session actors by session id
	changed  chan struct{}         // closed and replaced when an actor leaves
}

// liveActor is what the node knows of one of its actors without asking it:
// the actor keeps these up to date.
type liveActor struct {
	pid       *actor.PID
	principal bool // a principal actor
	epoch     atomic.Int64
	streams   atomic.Int32 // open GET streams
	inFlight  atomic.Int32 // other requests being served
	owner     atomic.Pointer[auth.Principal]
	// active is when a request last started or ended (Unix nanoseconds).
	active atomic.Int64
}

func (la *liveActor) setOwner(p *auth.Principal) {
	if la != nil {
		la.owner.Store(p)
	}
}

func (la *liveActor) setEpoch(e int64) {
	if la != nil {
		la.epoch.Store(e)
	}
}

// flight counts a request starting (delta 1) or ending (-1).
func (la *liveActor) flight(get bool, delta int32) {
	if la != nil {
		la.active.Store(time.Now().UnixNano())
	}
	switch {
	case la == nil:
	case get:
		la.streams.Add(delta)
	default:
		la.inFlight.Add(delta)
	}
}

// NewLocal returns an empty set.
func NewLocal() *Local {
	return &Local{pids: map[string]*liveActor{}, sessions: map[string]*liveActor{}, changed: make(chan struct{})}
}

// add records a live actor; nil on a nil set (then nothing is tracked).
func (l *Local) add(pid *actor.PID, principal bool, id string) *liveActor {
	if l == nil {
		return nil
	}
	la := &liveActor{pid: pid, principal: principal}
	la.active.Store(time.Now().UnixNano())
	l.mu.Lock()
	l.pids[pid.Id] = la
	if !principal {
		l.sessions[id] = la
	}
	l.mu.Unlock()
	return la
}

func (l *Local) remove(pid *actor.PID, id string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	if la := l.pids[pid.Id]; la != nil && !la.principal && l.sessions[id] == la {
		delete(l.sessions, id)
	}
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

// Counts is how many session and principal actors are live.
func (l *Local) Counts() (sessions, principals int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sessions), len(l.pids) - len(l.sessions)
}

// Live describes those of the sessions whose actors are live here.
func (l *Local) Live(ids []string) map[string]*envelope.SessionStatus {
	out := map[string]*envelope.SessionStatus{}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if la := l.sessions[id]; la != nil {
			out[id] = &envelope.SessionStatus{Epoch: la.epoch.Load(), Streams: la.streams.Load(), InFlight: la.inFlight.Load()}
		}
	}
	return out
}

// StopSubject stops every live actor, session or principal, of the user
// (issuer, subject), and returns how many it told to stop.
func (l *Local) StopSubject(system *actor.ActorSystem, issuer, subject, reason string) int {
	l.mu.Lock()
	var pids []*actor.PID
	for _, la := range l.pids {
		if o := la.owner.Load(); o != nil && o.Issuer == issuer && o.Subject == subject {
			pids = append(pids, la.pid)
		}
	}
	l.mu.Unlock()
	for _, pid := range pids {
		system.Root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Stop{Stop: &envelope.Stop{Reason: reason}}})
	}
	return len(pids)
}

// Drain drains every live actor and waits until all stopped or ctx is done;
// it returns how many were still live then.
func (l *Local) Drain(ctx context.Context, system *actor.ActorSystem) int {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	l.draining.Store(true)
	l.mu.Lock()
	for _, la := range l.pids {
		system.Root.Send(la.pid, &drainActor{deadline: deadline})
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

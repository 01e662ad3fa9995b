package cluster

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// replyRouter is where the actors serving this node's forwarded requests send
// their response parts, and what watches those actors. There is one per node,
// for its lifetime: a request costs no spawn, and no Watch or Unwatch of its
// own.
//
// It is a protoactor Process (as a future is), not an actor: local and
// remote senders address it by PID as usual, but it has no mailbox, and each
// message is handled on the goroutine that sends it, without ever blocking it
// (a part goes into its stream's channel, which the window keeps from
// filling). Two things follow.
//   - Messages take effect in the order they were sent. An actor sends its
//     last parts before it stops, so they are in the stream before the
//     Terminated that follows them; a mailbox would have handed the system
//     message Terminated over first.
//   - A part reaches the edge's reader with one goroutine hand-off, not two.
//
// An actor is watched from the first stream to it until it terminates; when
// it does, every stream still open to it ends with ErrActorGone. The router
// never sends Unwatch: Watch is idempotent at the actor, which drops its
// watchers when it stops; beyond maxWatched tracked actors, those with no open
// stream are forgotten (and watched again if needed), and a Terminated for an
// actor not tracked is ignored.
type replyRouter struct {
	system *actor.ActorSystem
	pid    *actor.PID
	logger *slog.Logger
	// terminated, if set, learns of each watched actor that terminated, so
	// that its PID is no longer used.
	terminated func(*watch)

	mu      sync.Mutex
	streams map[string]*Stream // open streams by request id
	targets map[pidKey]*watch  // watched actors
}

// watch is an actor the router watches, and the streams open to it.
type watch struct {
	pid            *actor.PID
	kind, identity string
	streams        map[*Stream]struct{}
}

type pidKey struct{ address, id string }

func keyOf(pid *actor.PID) pidKey { return pidKey{pid.Address, pid.Id} }

// maxWatched bounds how many actors the router tracks; entries with no open
// stream are dropped beyond it.
const maxWatched = 1 << 16

const replyRouterName = "pingmcp-replies"

var _ actor.Process = (*replyRouter)(nil)

// newReplyRouter registers the router of system. The system's address must
// be final (remoting started), since it is baked into the router's PID.
func newReplyRouter(system *actor.ActorSystem, logger *slog.Logger, terminated func(*watch)) (*replyRouter, error) {
	r := &replyRouter{system: system, logger: logger, terminated: terminated, streams: map[string]*Stream{}, targets: map[pidKey]*watch{}}
	pid, ok := system.ProcessRegistry.Add(r, replyRouterName)
	if !ok {
		return nil, fmt.Errorf("register reply router: name %q taken", replyRouterName)
	}
	r.pid = pid
	return r, nil
}

func (r *replyRouter) close() { r.system.ProcessRegistry.Remove(r.pid) }

// register makes s the stream of its request id and watches its target if
// no other stream has. It must come before the request is sent.
func (r *replyRouter) register(s *Stream, kind, identity string) error {
	key := keyOf(s.target)
	r.mu.Lock()
	if _, dup := r.streams[s.id]; dup {
		r.mu.Unlock()
		return fmt.Errorf("forward request %s: a request with that id is in flight", s.id)
	}
	r.streams[s.id] = s
	w := r.targets[key]
	fresh := w == nil
	if fresh {
		if len(r.targets) >= maxWatched {
			r.dropIdleLocked()
		}
		w = &watch{pid: s.target, kind: kind, identity: identity, streams: map[*Stream]struct{}{}}
		r.targets[key] = w
	}
	w.streams[s] = struct{}{}
	s.watch = w
	r.mu.Unlock()
	if fresh {
		// Outside the lock: a Watch of a local PID that is gone comes back as
		// Terminated at once, on this goroutine.
		proc, _ := r.system.ProcessRegistry.Get(s.target)
		proc.SendSystemMessage(s.target, &actor.Watch{Watcher: r.pid})
	}
	return nil
}

// unregister forgets s; parts still on their way to it are dropped.
func (r *replyRouter) unregister(s *Stream) {
	r.mu.Lock()
	if r.streams[s.id] == s {
		delete(r.streams, s.id)
	}
	if s.watch != nil {
		delete(s.watch.streams, s)
	}
	r.mu.Unlock()
}

func (r *replyRouter) dropIdleLocked() {
	for k, w := range r.targets {
		if len(w.streams) == 0 {
			delete(r.targets, k)
		}
	}
}

// SendUserMessage receives a response part (anything else is ignored: a
// request sent to a PID that is gone comes back as a DeadLetterResponse, which
// names no request; the Watch reports it).
func (r *replyRouter) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	env, ok := msg.(*envelope.Envelope)
	if !ok {
		return
	}
	p := env.GetPart()
	if p == nil {
		return
	}
	r.mu.Lock()
	s := r.streams[p.RequestId]
	r.mu.Unlock()
	if s != nil {
		s.deliver(p)
	}
}

// SendSystemMessage receives the Terminated of a watched actor, and ends
// the streams open to it.
func (r *replyRouter) SendSystemMessage(_ *actor.PID, message any) {
	t, ok := message.(*actor.Terminated)
	if !ok || t.Who == nil {
		return
	}
	key := keyOf(t.Who)
	r.mu.Lock()
	w := r.targets[key]
	if w != nil {
		delete(r.targets, key)
		for s := range w.streams {
			s.end(t.Why)
		}
	}
	r.mu.Unlock()
	if w != nil && r.terminated != nil {
		r.terminated(w)
	}
}

// Stop is a no-op: the router lives as long as its node.
func (r *replyRouter) Stop(*actor.PID) {}

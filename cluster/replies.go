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

	streamTable
}

// streamTable is what a route to actors (the reply router, a link of the
// data plane) keeps: the streams open through it by request id, and the
// actors it watches with the streams open to each.
type streamTable struct {
	mu      sync.Mutex
	streams map[string]*Stream // open streams by request id
	targets map[pidKey]*watch  // watched actors
}

func newStreamTable() streamTable {
	return streamTable{streams: map[string]*Stream{}, targets: map[pidKey]*watch{}}
}

// add makes s the stream of its request id, with its target watched; fresh
// reports that no stream had watched that target before, so that the caller
// watches it. It must come before the request is sent.
func (t *streamTable) add(s *Stream, kind, identity string) (fresh bool, err error) {
	key := keyOf(s.target)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.streams[s.id]; dup {
		return false, fmt.Errorf("forward request %s: a request with that id is in flight", s.id)
	}
	t.streams[s.id] = s
	w := t.targets[key]
	fresh = w == nil
	if fresh {
		if len(t.targets) >= maxWatched {
			// Those with no open stream are forgotten (and watched
			// again if needed).
			for k, w := range t.targets {
				if len(w.streams) == 0 {
					delete(t.targets, k)
				}
			}
		}
		w = &watch{pid: s.target, kind: kind, identity: identity, streams: map[*Stream]struct{}{}}
		t.targets[key] = w
	}
	w.streams[s] = struct{}{}
	s.watch = w
	return fresh, nil
}

// unregister forgets s; parts still on their way to it are dropped.
func (t *streamTable) unregister(s *Stream) {
	t.mu.Lock()
	if t.streams[s.id] == s {
		delete(t.streams, s.id)
	}
	if s.watch != nil {
		delete(s.watch.streams, s)
	}
	t.mu.Unlock()
}

// deliver hands p to the stream of its request, if one is open.
func (t *streamTable) deliver(p *envelope.ResponsePart) {
	t.mu.Lock()
	s := t.streams[p.RequestId]
	t.mu.Unlock()
	if s != nil {
		s.deliver(p)
	}
}

// ended ends the streams open to the actor key, which terminated for why,
// once first (if set) has been told of its watch, so that what first does
// (forget the actor's PID) is done before any of those streams' callers
// learns that the actor is gone and asks again.
func (t *streamTable) ended(key pidKey, why actor.TerminatedReason, first func(*watch)) {
	t.mu.Lock()
	w := t.targets[key]
	if w != nil {
		delete(t.targets, key)
	}
	t.mu.Unlock()
	if w == nil {
		return
	}
	if first != nil {
		first(w)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range w.streams {
		s.end(why)
	}
}

// endAll ends every stream, as if each watched actor terminated for why
// (the route itself is gone), and returns the watches.
func (t *streamTable) endAll(why actor.TerminatedReason) []*watch {
	t.mu.Lock()
	defer t.mu.Unlock()
	ws := make([]*watch, 0, len(t.targets))
	for k, w := range t.targets {
		delete(t.targets, k)
		for s := range w.streams {
			s.end(why)
		}
		ws = append(ws, w)
	}
	return ws
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
	r := &replyRouter{system: system, logger: logger, terminated: terminated, streamTable: newStreamTable()}
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
	fresh, err := r.add(s, kind, identity)
	if err != nil {
		return err
	}
	if fresh {
		// Outside the lock: a Watch of a local PID that is gone comes back as
		// Terminated at once, on this goroutine.
		proc, _ := r.system.ProcessRegistry.Get(s.target)
		proc.SendSystemMessage(s.target, &actor.Watch{Watcher: r.pid})
	}
	return nil
}

// send gives target an acknowledgement or a cancellation.
func (r *replyRouter) send(target *actor.PID, env *envelope.Envelope) {
	r.system.Root.Send(target, env)
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
	r.deliver(p)
}

// SendSystemMessage receives the Terminated of a watched actor, and ends
// the streams open to it.
func (r *replyRouter) SendSystemMessage(_ *actor.PID, message any) {
	t, ok := message.(*actor.Terminated)
	if !ok || t.Who == nil {
		return
	}
	r.ended(keyOf(t.Who), t.Why, r.terminated)
}

// Stop is a no-op: the router lives as long as its node.
func (r *replyRouter) Stop(*actor.PID) {}

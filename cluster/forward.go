package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// DefaultWindow is how many response parts an actor may send ahead of the
// edge's acknowledgements.
const DefaultWindow = 16

var (
	// ErrActorGone means the actor serving a request terminated before it
	// finished the response (its node died or it was moved).
	ErrActorGone = errors.New("actor terminated before the response was complete")
	// ErrOutOfOrder means a response part was lost or reordered in transit.
	ErrOutOfOrder = errors.New("response part out of order")
	errNoClients  = errors.New("pingmcp nodes join as members, never as clients")
)

// Stream is the response to a forwarded request, part by part, in order.
// The caller reads it with Next until a final part or an error, and must call
// Close when done.
type Stream struct {
	node     *Node
	kind     string
	identity string
	target   *actor.PID
	receiver *actor.PID
	id       string
	window   uint64
	events   chan any // *envelope.ResponsePart or *actor.Terminated
	next     uint64   // seq of the next part to hand out
	acked    uint64   // seq up to which the actor was told parts were written
	pending  map[uint64]*envelope.ResponsePart
	done     bool
	first    *envelope.ResponsePart // read by Forward, handed out by the first Next
}

// Forward sends req to the actor kind/identity, activating it if needed, and
// returns once the actor has begun to answer. If the actor it reached
// terminates before answering (it was passivated or moved while the request
// was on its way), Forward asks the cluster once more: the request was never
// served, so sending it again is safe.
func (n *Node) Forward(ctx context.Context, kind, identity string, req *envelope.Request) (*Stream, error) {
	if req.Window == 0 {
		req.Window = DefaultWindow
	}
	for attempt := 0; ; attempt++ {
		pid, err := n.activation(ctx, kind, identity)
		if err != nil {
			return nil, err
		}
		s := n.open(kind, identity, pid, req)
		first, err := s.await(ctx)
		if err == nil {
			s.first = first
			return s, nil
		}
		s.Close()
		if errors.Is(err, ErrActorGone) && attempt == 0 {
			n.forget(kind, identity, pid)
			continue
		}
		return nil, err
	}
}

// open spawns the per-request receiver: a local actor that watches the target
// and hands everything it receives to the stream's channel.
func (n *Node) open(kind, identity string, target *actor.PID, req *envelope.Request) *Stream {
	s := &Stream{
		node: n, kind: kind, identity: identity, target: target, id: req.Id,
		window:  uint64(req.Window),
		events:  make(chan any, req.Window+2),
		pending: map[uint64]*envelope.ResponsePart{},
	}
	env := &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}}
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(target)
			ctx.Request(target, env)
		case *envelope.Envelope:
			if p := m.GetPart(); p != nil {
				s.deliver(p)
			}
		case *actor.Terminated:
			// Terminated is a system message: it overtakes the user
			// messages already in this mailbox, among them the actor's
			// last parts. Queue it behind them before reporting it.
			if m.Who.Equal(target) {
				ctx.Send(ctx.Self(), targetGone{m})
			}
		case targetGone:
			s.deliver(m.Terminated)
		case *actor.Stopping:
			ctx.Unwatch(target)
		}
	})
	s.receiver = n.System.Root.Spawn(props)
	return s
}

// targetGone carries a Terminated through the mailbox's user queue.
type targetGone struct{ *actor.Terminated }

// deliver hands an event to the reader. The window bounds what the actor
// sends, so the channel has room unless the actor broke the protocol; then the
// event is dropped rather than block the receiver, and the reader sees a gap.
func (s *Stream) deliver(ev any) {
	select {
	case s.events <- ev:
	default:
		s.node.logger.Warn("response part dropped: actor exceeded its window", "request", s.id)
	}
}

// await returns the next event as a part, in sequence order.
func (s *Stream) await(ctx context.Context) (*envelope.ResponsePart, error) {
	for {
		if p, ok := s.pending[s.next]; ok {
			delete(s.pending, s.next)
			s.next++
			return p, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case ev := <-s.events:
			switch ev := ev.(type) {
			case *envelope.ResponsePart:
				if ev.Seq < s.next || uint64(len(s.pending)) > s.window {
					return nil, fmt.Errorf("%w: got %d, want %d", ErrOutOfOrder, ev.Seq, s.next)
				}
				s.pending[ev.Seq] = ev
			case *actor.Terminated:
				return nil, ErrActorGone
			}
		}
	}
}

// Next returns the next response part. After a part with Final set, or an
// error, the stream is over. A cancelled ctx tells the actor to cancel the
// request.
func (s *Stream) Next(ctx context.Context) (*envelope.ResponsePart, error) {
	if s.first != nil {
		p := s.first
		s.first = nil
		s.done = p.Final
		return p, nil
	}
	if s.done {
		return nil, errors.New("stream is over")
	}
	p, err := s.await(ctx)
	if err != nil {
		s.done = true
		if ctx.Err() != nil {
			s.cancel()
		}
		return nil, err
	}
	s.done = p.Final
	return p, nil
}

// Written tells the actor that parts up to seq reached the client, which lets
// it send more. Acknowledgements go out every half window, not per part.
func (s *Stream) Written(seq uint64) {
	if seq+1-s.acked < s.window/2 {
		return
	}
	s.acked = seq + 1
	s.node.System.Root.Send(s.target, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: s.id, Seq: seq}}})
}

func (s *Stream) cancel() {
	s.node.System.Root.Send(s.target, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: s.id}}})
}

// Close releases the receiver. If the response was not complete, the actor
// is told to cancel the request.
func (s *Stream) Close() {
	if !s.done {
		s.done = true
		s.cancel()
	}
	s.node.System.Root.Stop(s.receiver)
}

package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/telemetry"
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
	// ErrResuming, as the cause (or wrapped in it) of the context that
	// ends a Stream's Next (context.WithCancelCause), says that its reader
	// lets the response go to resume its event stream itself (a GET with
	// Last-Event-ID), its client still there: the actor is told so with
	// its cancellation (envelope.Cancel.Resume).
	ErrResuming  = errors.New("the response is let go for its event stream to be resumed")
	errNoClients = errors.New("pingmcp nodes join as members, never as clients")
)

// maxMergedBody bounds the body of a part Next merges from several that had
// already arrived.
const maxMergedBody = 64 << 10

// Stream is the response to a forwarded request, part by part, in order.
// The caller reads it with Next until a final part or an error, and must call
// Close when done.
type Stream struct {
	via    route // what carries the request's word to target
	logger *slog.Logger
	target *actor.PID
	watch  *watch // guarded by via's table
	id     string
	window uint64
	// events holds the parts the router delivered; gone is closed (after
	// the target's last parts were delivered) when the target terminated.
	events chan *envelope.ResponsePart
	gone   chan struct{}
	ended  bool // gone is closed; guarded by via's table
	// unreached is set, before gone is closed, when the target was already
	// gone before the request was sent (Terminated reason NotFound): the
	// request cannot have been served.
	unreached bool

	next    uint64                            // seq of the next part to hand out
	acked   uint64                            // seq up to which the actor was told parts were written
	pending map[uint64]*envelope.ResponsePart // parts that arrived early; nil until one does
	held    *envelope.ResponsePart            // the next part to hand out, already taken in order
	err     error                             // to report once the held part is out
	done    bool
}

// Forward sends req to the actor kind/identity, activating it if needed, and
// returns once the actor has begun to answer. If the PID it had was already
// gone (the actor passivated or moved since), the request cannot have been
// served, so Forward asks the cluster for a fresh activation and sends it
// once more. An actor that terminates after the request reached it may have
// served it: that is never retried (at most once), and the caller answers it
// as a lost session or a retryable error.
func (n *Node) Forward(ctx context.Context, kind, identity string, req *envelope.Request) (*Stream, error) {
	if req.Window == 0 {
		req.Window = DefaultWindow
	}
	var gone *actor.PID
	for attempt := 0; ; attempt++ {
		pid, err := n.activation(ctx, kind, identity, gone)
		if err != nil {
			return nil, err
		}
		req.From = ""
		if pid.Address != n.System.Address() && n.hostsHere(kind) {
			req.From = n.System.Address() // the session may move here (Request.From)
		}
		s, err := n.open(ctx, kind, identity, pid, req)
		if err != nil {
			return nil, err
		}
		first, err := s.await(ctx)
		// Not served: the actor refused it unserved (it was stopping:
		// passivated, drained, fenced), or the PID was gone before the
		// request could reach it (the cluster may hand out a stopping
		// actor's PID for a moment after it refused one). Either way the
		// cluster is asked again, backing off.
		refusal := ""
		if err == nil {
			refusal = notServed(first)
		}
		unserved := refusal != ""
		unreached := err != nil && errors.Is(err, ErrActorGone) && s.unreached
		if (unserved || unreached) && attempt < maxNotServedRetries {
			s.Close()
			n.forget(kind, identity, pid)
			moved := refusal == envelope.NotServedMoved
			if unreached || moved {
				// (The owner of the identity, on another member, may not
				// have heard that the activation was handed over.)
				gone = pid
			}
			if (unreached || moved) && attempt == 0 {
				continue // a PID cached from before, or handed over: at once
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(min(50*time.Millisecond<<attempt, 500*time.Millisecond)):
			}
			continue
		}
		if err == nil {
			stripNotServed(first)
			s.held = first
			return s, nil
		}
		s.Close()
		return nil, err
	}
}

// StopActor tells the actor kind/identity to stop (an operator ended its
// session). If it is not live, the cluster activates it to hear this, and it
// stops at once.
func (n *Node) StopActor(ctx context.Context, kind, identity, reason string) error {
	pid, err := n.activation(ctx, kind, identity, nil)
	if err != nil {
		return err
	}
	n.System.Root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Stop{Stop: &envelope.Stop{Reason: reason}}})
	n.forget(kind, identity, pid)
	return nil
}

// maxNotServedRetries bounds how often Forward sends again a request an
// actor refused unserved: backing off 50 ms, doubling to 500 ms, about 1.75 s
// in all, the time a stopping actor (passivated, drained, fenced) takes to
// write its state and leave its placement, even on a loaded node.
const maxNotServedRetries = 6

func notServed(p *envelope.ResponsePart) string {
	for _, h := range p.Headers {
		if h.Name == envelope.NotServedHeader {
			return cmp.Or(strings.Join(h.Values, ""), "1")
		}
	}
	return ""
}

// stripNotServed drops the internal header before the part reaches a client.
func stripNotServed(p *envelope.ResponsePart) {
	p.Headers = slices.DeleteFunc(p.Headers, func(h *envelope.Header) bool { return h.Name == envelope.NotServedHeader })
}

// The counters of metrics.Forwarded by route, taken once rather than
// looked up by label on each request.
var (
	forwardedLocal     = metrics.Forwarded.WithLabelValues(RouteLocal)
	forwardedDataPlane = metrics.Forwarded.WithLabelValues(RouteDataPlane)
	forwardedRemote    = metrics.Forwarded.WithLabelValues(RouteRemote)
)

// route is how a stream's request reaches its target and its answer comes
// back: the node's reply router (protoactor: a local actor, or a node the
// data plane cannot reach) or a link of the data plane (dataplane.go).
type route interface {
	// send gives target an acknowledgement or a cancellation.
	send(target *actor.PID, env *envelope.Envelope)
	// unregister forgets a stream that closed.
	unregister(s *Stream)
}

// open registers a stream for req and sends req to target: on the data
// plane when target is on another node that has one, else through the
// node's reply router, which is then the request's sender.
func (n *Node) open(ctx context.Context, kind, identity string, target *actor.PID, req *envelope.Request) (*Stream, error) {
	for range 2 {
		l, err := n.linkTo(ctx, target.Address)
		if err != nil {
			return nil, err
		}
		if l == nil {
			break
		}
		s, err := l.open(kind, identity, target, req)
		if !errors.Is(err, errLinkClosed) {
			if err == nil {
				forwardedDataPlane.Inc()
			}
			return s, err
		}
		// The link closed since it was handed out: a new one, once.
	}
	s := newStream(n.replies, n.logger, target, req)
	if err := n.replies.register(s, kind, identity); err != nil {
		return nil, err
	}
	n.System.Root.RequestWithCustomSender(target, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}}, n.replies.pid)
	counter := forwardedRemote
	if target.Address == n.System.Address() {
		counter = forwardedLocal
	}
	counter.Inc()
	return s, nil
}

func newStream(via route, logger *slog.Logger, target *actor.PID, req *envelope.Request) *Stream {
	return &Stream{
		via: via, logger: logger, target: target, id: req.Id,
		window: uint64(req.Window),
		events: make(chan *envelope.ResponsePart, req.Window+1),
		gone:   make(chan struct{}),
	}
}

// deliver hands a part to the reader. The window bounds what the actor
// sends, so the channel has room unless the actor broke the protocol; then the
// part is dropped rather than block the sender, and the reader sees a gap.
// Such parts are another node's doing, as many as it sends: they are
// logged a few a second (droppedParts).
func (s *Stream) deliver(p *envelope.ResponsePart) {
	select {
	case s.events <- p:
	default:
		droppedParts.Log(s.logger, slog.LevelWarn, "response part dropped: actor exceeded its window", "request", s.id)
	}
}

// droppedParts throttles the lines of the parts deliver drops.
var droppedParts telemetry.Throttle

// end tells the reader that the target terminated. The caller holds the
// lock of via's table.
func (s *Stream) end(reason actor.TerminatedReason) {
	if !s.ended {
		s.unreached = reason == actor.TerminatedReason_NotFound
		s.ended = true
		close(s.gone)
	}
}

// accept takes a part off the channel: it is returned if it is the next in
// sequence, else kept until its turn.
func (s *Stream) accept(p *envelope.ResponsePart) (*envelope.ResponsePart, error) {
	if p.Seq == s.next {
		s.next++
		return p, nil
	}
	if p.Seq < s.next || uint64(len(s.pending)) >= s.window {
		return nil, fmt.Errorf("%w: got %d, want %d", ErrOutOfOrder, p.Seq, s.next)
	}
	if s.pending == nil {
		s.pending = map[uint64]*envelope.ResponsePart{}
	}
	s.pending[p.Seq] = p
	return nil, nil
}

// early returns the next part if it arrived ahead of its turn.
func (s *Stream) early() *envelope.ResponsePart {
	p, ok := s.pending[s.next]
	if !ok {
		return nil
	}
	delete(s.pending, s.next)
	s.next++
	return p
}

// await returns the next part in sequence order, waiting for it.
func (s *Stream) await(ctx context.Context) (*envelope.ResponsePart, error) {
	for {
		if p := s.early(); p != nil {
			return p, nil
		}
		var p *envelope.ResponsePart
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case p = <-s.events:
		case <-s.gone:
			// Parts the actor sent before it terminated were delivered
			// before gone was closed: hand them out first.
			select {
			case p = <-s.events:
			default:
				return nil, ErrActorGone
			}
		}
		p, err := s.accept(p)
		if err != nil || p != nil {
			return p, err
		}
	}
}

// ready returns the next part if it has already arrived, without waiting.
// An error is kept for the caller to report after what it already has.
func (s *Stream) ready() *envelope.ResponsePart {
	for s.err == nil {
		if p := s.early(); p != nil {
			return p
		}
		select {
		case p := <-s.events:
			p, err := s.accept(p)
			if err != nil {
				s.err = err
			} else if p != nil {
				return p
			}
		default:
			return nil
		}
	}
	return nil
}

// Next returns the next response part. After a part with Final set, or an
// error, the stream is over. Parts that have already arrived are merged into
// one (the body of each after the first, up to maxMergedBody): the caller
// writes them at once, which delays none of them. A cancelled ctx tells the
// actor to cancel the request.
func (s *Stream) Next(ctx context.Context) (*envelope.ResponsePart, error) {
	if s.done {
		return nil, errors.New("stream is over")
	}
	p := s.held
	s.held = nil
	if p == nil && s.err == nil {
		var err error
		if p, err = s.await(ctx); err != nil {
			s.done = true
			if ctx.Err() != nil {
				s.cancelFor(errors.Is(context.Cause(ctx), ErrResuming))
			}
			return nil, err
		}
	}
	if p == nil {
		s.done = true
		return nil, s.err
	}
	for !p.Final {
		q := s.ready()
		if q == nil {
			break
		}
		if len(p.Body)+len(q.Body) > maxMergedBody {
			s.held = q
			break
		}
		p.Body = append(p.Body, q.Body...)
		p.Seq, p.Final, p.Error = q.Seq, q.Final, q.Error
	}
	s.done = p.Final
	if p.Final && p.Error != "" {
		// The response ended with an error of the route's (a part that
		// could not travel, say), which the actor may not know of: it is
		// told to cancel the request, or it could wait for acks for good.
		s.cancel()
	}
	return p, nil
}

// Written tells the actor that parts up to seq reached the client, which lets
// it send more. Acknowledgements go out every half window, not per part.
func (s *Stream) Written(seq uint64) {
	if seq+1-s.acked < s.window/2 {
		return
	}
	s.acked = seq + 1
	s.via.send(s.target, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: s.id, Seq: seq}}})
}

func (s *Stream) cancel() { s.cancelFor(false) }

// cancelFor tells the actor to cancel the request: to resume its event
// stream (ErrResuming), or because its client went away.
func (s *Stream) cancelFor(resume bool) {
	s.via.send(s.target, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: s.id, Resume: resume}}})
}

// Close releases the stream. If the response was not complete, the actor is
// told to cancel the request.
func (s *Stream) Close() {
	if !s.done {
		s.done = true
		s.cancel()
	}
	s.via.unregister(s)
}

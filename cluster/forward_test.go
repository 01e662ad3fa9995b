package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// stream returns a Stream fed by hand, without actors, for testing ordering.
func stream(window uint64) *Stream {
	return &Stream{id: "r", window: window, events: make(chan *envelope.ResponsePart, window+1), gone: make(chan struct{})}
}

func part(seq uint64, final bool) *envelope.ResponsePart {
	return &envelope.ResponsePart{RequestId: "r", Seq: seq, Final: final}
}

func bodyPart(id string, seq uint64, body string, final bool) *envelope.ResponsePart {
	return &envelope.ResponsePart{RequestId: id, Seq: seq, Body: []byte(body), Final: final}
}

func TestStreamReorders(t *testing.T) {
	s := stream(4)
	s.events <- part(1, false)
	s.events <- part(0, false)
	s.events <- part(2, true)
	for want := range uint64(3) {
		p, err := s.await(context.Background())
		if err != nil || p.Seq != want {
			t.Fatalf("part %d: got %v, %v", want, p, err)
		}
	}
}

func TestStreamRejectsReplayAndOverflow(t *testing.T) {
	s := stream(4)
	s.events <- part(0, false)
	if _, err := s.await(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.events <- part(0, false) // a duplicate
	if _, err := s.await(context.Background()); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("duplicate part: %v", err)
	}

	s = stream(2) // a gap never filled: more parts pending than the window allows
	for _, seq := range []uint64{1, 2, 3} {
		s.events <- part(seq, false)
	}
	if _, err := s.await(context.Background()); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("gap: %v", err)
	}
}

// The parts delivered before the target terminated come out first.
func TestStreamActorGone(t *testing.T) {
	s := stream(4)
	s.events <- part(0, false)
	close(s.gone)
	if p, err := s.await(context.Background()); err != nil || p.Seq != 0 {
		t.Fatalf("part before gone: %v, %v", p, err)
	}
	if _, err := s.await(context.Background()); !errors.Is(err, ErrActorGone) {
		t.Fatalf("got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := stream(4).await(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// Next merges the parts that have already arrived, never waiting for more.
func TestStreamMergesArrivedParts(t *testing.T) {
	s := stream(8)
	s.events <- bodyPart("r", 0, "a", false)
	s.events <- bodyPart("r", 2, "c", false) // out of order: merged once 1 is there
	s.events <- bodyPart("r", 1, "b", false)
	p, err := s.Next(context.Background())
	if err != nil || string(p.Body) != "abc" || p.Seq != 2 || p.Final {
		t.Fatalf("merged part = %+v, %v", p, err)
	}
	s.events <- bodyPart("r", 3, "d", true)
	if p, err = s.Next(context.Background()); err != nil || string(p.Body) != "d" || !p.Final {
		t.Fatalf("final part = %+v, %v", p, err)
	}
	if _, err := s.Next(context.Background()); err == nil {
		t.Fatal("Next after the final part")
	}

	// A merge stops short of maxMergedBody; the rest comes next.
	s = stream(8)
	big := strings.Repeat("x", maxMergedBody/2+1)
	s.events <- bodyPart("r", 0, big, false)
	s.events <- bodyPart("r", 1, big, false)
	s.events <- bodyPart("r", 2, "", true)
	if p, err = s.Next(context.Background()); err != nil || p.Seq != 0 || len(p.Body) != len(big) {
		t.Fatalf("first of two big parts: seq %d, %d bytes, %v", p.Seq, len(p.Body), err)
	}
	if p, err = s.Next(context.Background()); err != nil || p.Seq != 2 || !p.Final || len(p.Body) != len(big) {
		t.Fatalf("second big part and the final one: seq %d, %d bytes, final %v, %v", p.Seq, len(p.Body), p.Final, err)
	}

	// An error found while merging comes after what was merged.
	s = stream(2)
	s.events <- bodyPart("r", 0, "a", false)
	s.events <- bodyPart("r", 0, "again", false)
	if p, err = s.Next(context.Background()); err != nil || string(p.Body) != "a" {
		t.Fatalf("part before a replay = %+v, %v", p, err)
	}
	if _, err = s.Next(context.Background()); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("replay: %v", err)
	}
}

// newTestRouter returns a reply router on a plain actor system (no remote,
// no cluster) and what it reported as terminated.
func newTestRouter(t *testing.T) (*actor.ActorSystem, *replyRouter, <-chan *watch) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	t.Cleanup(system.Shutdown)
	terminated := make(chan *watch, 16)
	r, err := newReplyRouter(system, logger, func(w *watch) { terminated <- w })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return system, r, terminated
}

func open(t *testing.T, system *actor.ActorSystem, r *replyRouter, target *actor.PID, id string) *Stream {
	t.Helper()
	req := &envelope.Request{Id: id, Window: 4}
	s := newStream(r, r.logger, target, req)
	if err := r.register(s, "session", "s-"+id); err != nil {
		t.Fatal(err)
	}
	system.Root.RequestWithCustomSender(target, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}}, r.pid)
	return s
}

// readAll reads a stream to its final part and returns the body.
func readAll(t *testing.T, s *Stream) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body bytes.Buffer
	for {
		p, err := s.Next(ctx)
		if err != nil {
			return body.String(), err
		}
		body.Write(p.Body)
		if p.Final {
			return body.String(), nil
		}
	}
}

// answerThenStop answers each request with three parts and stops, as a
// session actor does after a DELETE.
func answerThenStop(ctx actor.Context) {
	if env, ok := ctx.Message().(*envelope.Envelope); ok && env.GetRequest() != nil {
		id := env.GetRequest().Id
		for i, b := range []string{"a", "b", "c"} {
			ctx.Send(ctx.Sender(), &envelope.Envelope{Body: &envelope.Envelope_Part{Part: bodyPart(id, uint64(i), b, i == 2)}})
		}
		ctx.Stop(ctx.Self())
	}
}

// An actor that answers and stops at once: its Terminated comes after its
// parts, and the request is answered, not failed (and so never retried).
// A request to its PID afterwards fails with ErrActorGone, marked unreached:
// the one case Forward retries.
func TestRouterPartsBeforeTerminated(t *testing.T) {
	system, r, terminated := newTestRouter(t)
	for i := range 50 {
		target := system.Root.Spawn(actor.PropsFromFunc(answerThenStop))
		s := open(t, system, r, target, "req")
		select {
		case <-s.gone:
		case <-time.After(10 * time.Second):
			t.Fatal("the target's Terminated never reached the stream")
		}
		if body, err := readAll(t, s); err != nil || body != "abc" {
			t.Fatalf("round %d: body %q, %v", i, body, err)
		}
		s.Close()
		if w := <-terminated; !w.pid.Equal(target) || w.kind != "session" || w.identity != "s-req" {
			t.Fatalf("terminated reported %v %s/%s", w.pid, w.kind, w.identity)
		}

		if s.unreached {
			t.Fatal("an answered request counts as unreached: it could be retried")
		}
		stale := open(t, system, r, target, "again")
		if _, err := readAll(t, stale); !errors.Is(err, ErrActorGone) {
			t.Fatalf("request to a stopped actor: %v", err)
		}
		if !stale.unreached {
			t.Fatal("a request to a PID already gone does not count as unreached: Forward would not retry it")
		}
		stale.Close()
		<-terminated
	}
	if len(r.streams) != 0 || len(r.targets) != 0 {
		t.Errorf("router keeps %d streams and %d targets", len(r.streams), len(r.targets))
	}
}

// fakeTarget is a Process that counts the Watches it receives and keeps the
// requests sent to it.
type fakeTarget struct {
	mu       sync.Mutex
	watches  int
	requests []string
	cancels  []string
}

func (f *fakeTarget) SendUserMessage(_ *actor.PID, m any) {
	_, msg, _ := actor.UnwrapEnvelope(m)
	env := msg.(*envelope.Envelope)
	f.mu.Lock()
	defer f.mu.Unlock()
	if req := env.GetRequest(); req != nil {
		f.requests = append(f.requests, req.Id)
	}
	if c := env.GetCancel(); c != nil {
		f.cancels = append(f.cancels, c.RequestId)
	}
}

func (f *fakeTarget) SendSystemMessage(_ *actor.PID, m any) {
	if _, ok := m.(*actor.Watch); ok {
		f.mu.Lock()
		f.watches++
		f.mu.Unlock()
	}
}

func (f *fakeTarget) Stop(*actor.PID) {}

func (f *fakeTarget) watched() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watches
}

func reply(system *actor.ActorSystem, r *replyRouter, p *envelope.ResponsePart) {
	system.Root.Send(r.pid, &envelope.Envelope{Body: &envelope.Envelope_Part{Part: p}})
}

func terminate(system *actor.ActorSystem, r *replyRouter, who *actor.PID) {
	proc, _ := system.ProcessRegistry.Get(r.pid)
	proc.SendSystemMessage(r.pid, &actor.Terminated{Who: who, Why: actor.TerminatedReason_Stopped})
}

// A target is watched once, whatever the streams to it; its Terminated ends
// the streams open to it and no others, and the next stream watches again.
func TestRouterWatchesOncePerTarget(t *testing.T) {
	system, r, terminated := newTestRouter(t)
	f, other := &fakeTarget{}, &fakeTarget{}
	target, _ := system.ProcessRegistry.Add(f, "target")
	otherPID, _ := system.ProcessRegistry.Add(other, "other")

	s1, s2 := open(t, system, r, target, "1"), open(t, system, r, target, "2")
	s3 := open(t, system, r, otherPID, "3")
	if f.watched() != 1 || other.watched() != 1 {
		t.Fatalf("watches: target %d, other %d; want 1 each", f.watched(), other.watched())
	}
	s1.Close() // a stream closed early
	reply(system, r, bodyPart("1", 0, "late", true))
	s4 := open(t, system, r, target, "4")
	if f.watched() != 1 {
		t.Fatalf("target watched %d times while watched already", f.watched())
	}

	reply(system, r, bodyPart("2", 0, "two", true))
	terminate(system, r, target)
	if w := <-terminated; !w.pid.Equal(target) {
		t.Fatalf("terminated reported %v", w.pid)
	}
	if body, err := readAll(t, s2); err != nil || body != "two" {
		t.Fatalf("stream answered before Terminated: %q, %v", body, err)
	}
	if _, err := readAll(t, s4); !errors.Is(err, ErrActorGone) {
		t.Fatalf("open stream to a terminated target: %v", err)
	}
	select {
	case <-s3.gone:
		t.Fatal("Terminated of one target ended a stream to another")
	default:
	}
	reply(system, r, bodyPart("3", 0, "three", true))
	if body, err := readAll(t, s3); err != nil || body != "three" {
		t.Fatalf("stream to the other target: %q, %v", body, err)
	}
	for _, s := range []*Stream{s2, s3, s4} {
		s.Close()
	}

	open(t, system, r, target, "5").Close()
	if f.watched() != 2 {
		t.Fatalf("target watched %d times, want 2 (again after its Terminated)", f.watched())
	}
	// The streams closed before their final part told the target to cancel.
	if got := strings.Join(f.requests, " ") + " / " + strings.Join(f.cancels, " "); got != "1 2 4 5 / 1 5" {
		t.Errorf("target got requests / cancels %s", got)
	}
}

// A request id is one stream at a time; once closed, it is free again.
func TestRouterRequestIDs(t *testing.T) {
	system, r, _ := newTestRouter(t)
	target, _ := system.ProcessRegistry.Add(&fakeTarget{}, "target")
	s := open(t, system, r, target, "x")
	if err := r.register(newStream(r, r.logger, target, &envelope.Request{Id: "x", Window: 4}), "session", "x"); err == nil {
		t.Fatal("a second stream registered under an id in flight")
	}
	s.Close()
	s = open(t, system, r, target, "x")
	reply(system, r, bodyPart("x", 0, "ok", true))
	if body, err := readAll(t, s); err != nil || body != "ok" {
		t.Fatalf("stream reusing a closed id: %q, %v", body, err)
	}
	s.Close()
	if len(r.streams) != 0 {
		t.Errorf("router keeps %d streams", len(r.streams))
	}
}

// sentTo records what a Stream tells its actor.
type sentTo struct {
	mu   sync.Mutex
	sent []*envelope.Envelope
}

func (r *sentTo) send(_ *actor.PID, env *envelope.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, env)
}
func (r *sentTo) unregister(*Stream) {}

// A reader that stops waiting for a response to resume its event stream
// itself (ErrResuming, the cause of its context's end) says so with its
// cancellation, which otherwise says that the client went away.
func TestStreamCancelledToResumeSaysSo(t *testing.T) {
	for _, tt := range []struct {
		cause  error
		resume bool
	}{
		{context.Canceled, false},
		{ErrResuming, true},
		{fmt.Errorf("silent: %w", ErrResuming), true},
		{errors.New("another cause"), false},
	} {
		r := &sentTo{}
		s := stream(4)
		s.via = r
		ctx, cut := context.WithCancelCause(context.Background())
		cut(tt.cause)
		if _, err := s.Next(ctx); err == nil {
			t.Fatalf("%v: Next returned a part", tt.cause)
		}
		if len(r.sent) != 1 || r.sent[0].GetCancel() == nil || r.sent[0].GetCancel().GetRequestId() != "r" || r.sent[0].GetCancel().GetResume() != tt.resume {
			t.Errorf("cut with %v: the actor was sent %v, want a Cancel with resume %v", tt.cause, r.sent, tt.resume)
		}
	}
}

// A member that sends a stream more parts than its window (buggy, or
// another node's on purpose) has them dropped: the edge says so in its log,
// a few lines a second however many parts come, not a line each.
func TestStreamDroppedPartsLogBounded(t *testing.T) {
	var logs bytes.Buffer
	s := stream(2)
	s.logger = slog.New(slog.NewTextHandler(&logs, nil))
	const parts = 1000
	for seq := range uint64(parts) {
		s.deliver(part(seq, false))
	}
	if got := len(s.events); got != 3 {
		t.Fatalf("%d parts kept, want the channel's 3", got)
	}
	// (At most 5 a second: the loop takes far less than 3 s.)
	if lines := strings.Count(logs.String(), "response part dropped"); lines == 0 || lines > 15 {
		t.Fatalf("%d lines logged for %d parts dropped, want a few:\n%.2000s", lines, parts-3, logs.String())
	}
}

package actors

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/state"
)

type sink struct{ parts chan *envelope.ResponsePart }

// newSink holds what a writer sends until the test reads it: room for the
// keep-alives of a stream the test reads late (a writer blocked on a full
// sink holds its lock, and the test's next write waits for it).
func newSink() *sink { return &sink{parts: make(chan *envelope.ResponsePart, 1<<12)} }

func (s *sink) send(p *envelope.ResponsePart) { s.parts <- p }

func (s *sink) next(t *testing.T) *envelope.ResponsePart {
	t.Helper()
	select {
	case p := <-s.parts:
		return p
	default:
		t.Fatal("no part was sent")
		return nil
	}
}

func TestRelayWriterJSONIsOnePart(t *testing.T) {
	s := newSink()
	w := newRelayWriter(context.Background(), "r1", newWindow(4), s.send)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`{"a":`))
	w.Write([]byte(`1}`))
	w.finish()
	p := s.next(t)
	if !p.Final || p.Seq != 0 || p.Status != 202 || string(p.Body) != `{"a":1}` || p.RequestId != "r1" {
		t.Fatalf("part = %+v", p)
	}
	h := http.Header{}
	envelope.ToHTTP(p.Headers, h)
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", h)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, errResponseClosed) {
		t.Errorf("write after finish: %v", err)
	}
}

// The first flush waits for the next one and travels with it; every later
// flush ships at once.
func TestRelayWriterStreamsInOrder(t *testing.T) {
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(8), s.send)
	w.hold = time.Hour // the merging, not the timer (a stall of firstPartDelay would ship the first part alone)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Flush() // headers alone, as the SDK does when it opens a stream
	for _, ev := range []string{"data: 1\n\n", "data: 2\n\n"} {
		w.Write([]byte(ev))
		w.Flush()
	}
	w.Flush() // nothing new: no part
	w.finish()
	want := []struct {
		body   string
		status int32
		final  bool
	}{{"data: 1\n\n", 200, false}, {"data: 2\n\n", 0, false}, {"", 0, true}}
	for i, wp := range want {
		p := s.next(t)
		if p.Seq != uint64(i) || string(p.Body) != wp.body || p.Status != wp.status || p.Final != wp.final {
			t.Errorf("part %d = seq %d body %q status %d final %v; want %+v", i, p.Seq, p.Body, p.Status, p.Final, wp)
		}
		if (i == 0) != (len(p.Headers) > 0) {
			t.Errorf("part %d: headers %v (only the first carries them)", i, p.Headers)
		}
	}
}

// A handler that flushes once and returns (a single response on an SSE
// stream) costs one part.
func TestRelayWriterFlushThenReturnIsOnePart(t *testing.T) {
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(8), s.send)
	w.hold = time.Hour // the merging, not the timer
	w.Header().Set("Content-Type", "text/event-stream")
	w.Write([]byte("event: prime\n\n"))
	w.Flush()
	w.Write([]byte("data: {}\n\n"))
	w.finish()
	p := s.next(t)
	if p.Seq != 0 || !p.Final || p.Status != 200 || string(p.Body) != "event: prime\n\ndata: {}\n\n" {
		t.Fatalf("part = %+v", p)
	}
	select {
	case p := <-s.parts:
		t.Fatalf("a second part: %+v", p)
	default:
	}
}

// A first flush the handler does not follow up goes out by itself after
// firstPartDelay, headers as they were when the status was set.
func TestRelayWriterShipsHeldFirstPart(t *testing.T) {
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(8), s.send)
	opened := make(chan struct{})
	w.onStream = func() { close(opened) }
	w.Header().Set("Content-Type", "text/event-stream")
	w.Write([]byte(": ok\n\n"))
	w.Header().Set("X-Late", "ignored")
	w.Flush()
	var p *envelope.ResponsePart
	select {
	case p = <-s.parts:
	case <-time.After(10 * time.Second):
		t.Fatal("the held first part never went out")
	}
	<-opened
	h := http.Header{}
	envelope.ToHTTP(p.Headers, h)
	if p.Seq != 0 || p.Final || p.Status != 200 || string(p.Body) != ": ok\n\n" || h.Get("Content-Type") != "text/event-stream" || h.Get("X-Late") != "" {
		t.Fatalf("part = %+v, headers %v", p, h)
	}
	w.Write([]byte("data: 1\n\n"))
	w.Flush()
	if p := s.next(t); p.Seq != 1 || string(p.Body) != "data: 1\n\n" {
		t.Fatalf("next part = %+v", p)
	}
}

// The writer may run a window ahead of the acknowledgements, no further.
func TestWindow(t *testing.T) {
	win := newWindow(2)
	blocked := func(seq uint64) bool {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // acquire returns at once if seq may go, else reports ctx's error
		return win.acquire(ctx, seq) != nil
	}
	if blocked(0) || blocked(1) || !blocked(2) {
		t.Fatal("window of 2 should pass parts 0 and 1 only")
	}
	win.ack(0)
	if blocked(2) || !blocked(3) {
		t.Fatal("ack of 0 should pass part 2 only")
	}
	win.ack(0) // stale acks change nothing
	if !blocked(3) {
		t.Fatal("a repeated ack moved the window")
	}
	// A writer blocked on the window resumes when the ack arrives.
	done := make(chan error, 1)
	go func() { done <- win.acquire(context.Background(), 3) }()
	win.ack(1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRelayWriterCancelUnblocks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := newRelayWriter(ctx, "r", newWindow(1), newSink().send)
	w.Write([]byte("a"))
	w.Flush()
	w.Flush() // takes the held first part along: the window is full now
	done := make(chan error, 1)
	go func() {
		w.Write([]byte("b"))
		done <- w.FlushError()
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("flush after cancel: %v", err)
	}
}

func TestRelayWriterFail(t *testing.T) {
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(4), s.send)
	w.Header().Set("X-Secret", "leaks?")
	w.fail("boom")
	p := s.next(t)
	if !p.Final || p.Status != 500 || p.Error != "boom" {
		t.Fatalf("part = %+v", p)
	}
	for _, h := range p.Headers {
		if h.Name == "X-Secret" {
			t.Error("a failed response kept the handler's headers")
		}
	}
	// After a stream began, fail just ends it.
	s2 := newSink()
	w2 := newRelayWriter(context.Background(), "r", newWindow(4), s2.send)
	w2.hold = time.Hour // x and y in one part, whatever the timer
	w2.Write([]byte("data: x\n\n"))
	w2.Flush()
	w2.Write([]byte("data: y\n\n"))
	w2.Flush()
	w2.fail("late")
	s2.next(t)
	if p := s2.next(t); !p.Final || p.Status != 0 || p.Error != "late" || len(p.Body) != 0 {
		t.Fatalf("late failure part = %+v", p)
	}
}

// A request never waits for a worker: one that hangs (an SSE stream) leaves
// the next to an idle worker or a new goroutine.
func TestWorkersNeverWait(t *testing.T) {
	ws := &workers{tasks: make(chan func())}
	hang, hanging := make(chan struct{}), make(chan struct{})
	ws.run(func() {
		close(hanging)
		<-hang
	})
	<-hanging
	for range 3 { // each after the last is done: an idle worker takes it
		done := make(chan struct{})
		ws.run(func() { close(done) })
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a request waited behind a hanging one")
		}
	}
	close(hang)
}

// A request cut while its actor stopped, which the SDK answered 404 (its
// session closed under it), goes to the edge as a retryable "not served"
// 503; an uncut 404, or a cut response already under way, is left alone.
func TestRelayWriterUnservedIfCut(t *testing.T) {
	answer404 := func(ctx context.Context) (*relayWriter, *sink) {
		s := newSink()
		w := newRelayWriter(ctx, "r", newWindow(4), s.send)
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("session not found\n"))
		return w, s
	}
	cut, cancel := context.WithCancel(context.Background())
	cancel()
	w, s := answer404(cut)
	if !w.unservedIfCut("r") {
		t.Fatal("a cut 404 was not replaced")
	}
	w.finish()
	p := s.next(t)
	h := http.Header{}
	envelope.ToHTTP(p.Headers, h)
	if p.Status != http.StatusServiceUnavailable || h.Get(envelope.NotServedHeader) == "" || h.Get("Retry-After") == "" || !p.Final {
		t.Errorf("cut 404 became %d %v", p.Status, h)
	}

	w, s = answer404(context.Background())
	if w.unservedIfCut("r") {
		t.Error("an uncut 404 was replaced")
	}
	w.finish()
	if p := s.next(t); p.Status != http.StatusNotFound {
		t.Errorf("uncut 404 became %d", p.Status)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s = newSink()
	w = newRelayWriter(ctx, "r", newWindow(4), s.send)
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("data: x\n\n"))
	w.FlushError()
	w.FlushError() // the second flush ships the held first part
	cancel()
	if w.unservedIfCut("r") {
		t.Error("a response under way was replaced")
	}
}

// The flush of a stream's last event (answered: the answer to the last of
// the request's requests) is held for the response's end: the answer and
// the final part travel as one. Here the tool is slow, so the first part
// (the priming event and a progress event) went out before it.
func TestRelayWriterLastEventTravelsWithEnd(t *testing.T) {
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(8), s.send)
	w.hold = time.Hour // the merging, not the timer
	var answered atomic.Bool
	w.answered = answered.Load
	w.Header().Set("Content-Type", "text/event-stream")
	w.Write([]byte("id: 0\ndata: \n\n"))
	w.Flush() // held: the first part
	w.Write([]byte("data: progress\n\n"))
	w.Flush()
	if p := s.next(t); p.Seq != 0 || p.Final || p.Status != 200 || string(p.Body) != "id: 0\ndata: \n\ndata: progress\n\n" {
		t.Fatalf("first part = %+v", p)
	}
	answered.Store(true)
	w.Write([]byte("data: answer\n\n"))
	w.Flush()
	select {
	case p := <-s.parts:
		t.Fatalf("the answer went out before the end: %+v", p)
	default:
	}
	w.finish()
	if p := s.next(t); p.Seq != 1 || !p.Final || string(p.Body) != "data: answer\n\n" {
		t.Fatalf("last part = %+v", p)
	}
	select {
	case p := <-s.parts:
		t.Fatalf("a third part: %+v", p)
	default:
	}
}

// A held last event goes out by itself if the handler does not return
// within the delay; the end follows as a part of its own.
func TestRelayWriterShipsHeldLastEvent(t *testing.T) {
	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(8), s.send)
	w.hold = time.Millisecond
	var answered atomic.Bool
	w.answered = answered.Load
	w.Header().Set("Content-Type", "text/event-stream")
	w.Write([]byte("id: 0\ndata: \n\n"))
	w.Flush()
	await(t, s.parts, "the held first part")
	answered.Store(true)
	w.Write([]byte("data: answer\n\n"))
	w.Flush()
	if p := await(t, s.parts, "the held answer"); p.Seq != 1 || p.Final || string(p.Body) != "data: answer\n\n" {
		t.Fatalf("held answer = %+v", p)
	}
	w.finish()
	if p := s.next(t); p.Seq != 2 || !p.Final || len(p.Body) != 0 {
		t.Fatalf("end = %+v", p)
	}
}

// A tools/call on a session with an event store costs the edge one part
// when the tool answers at once: the priming event, the answer and the end
// together (two parts before). The parts wait a minute here, not 1 ms, so
// that a slow machine (the race detector, a loaded CI) cannot split them;
// the held answer of a slower tool, and the delay running out:
// TestRelayWriterLastEventTravelsWithEnd, TestRelayWriterShipsHeldLastEvent.
func TestToolCallAnswerTravelsWithTheEnd(t *testing.T) {
	system, props := testSessions(t, Config{Stores: state.MemoryStores(time.Hour), Authenticated: true, Scopes: []string{"mcp:tools"},
		PartDelay: time.Minute})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	alice := &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: "c1", ExpiresUnix: time.Now().Add(time.Hour).Unix(),
		Token: "alice-token", Scopes: []string{"mcp:tools"}, ClaimsJson: []byte(`{"sub":"alice","client_id":"c1"}`)}
	root := system.Root
	if body := postInitialize(t, root, pid, alice, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, root, pid, alice, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	for i := range 3 {
		call := forwardOn(root, pid, alice, http.MethodPost, `{"jsonrpc":"2.0","id":`+strconv.Itoa(i+1)+`,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`)
		parts := await(t, call.parts, "test_simple_text's answer")
		if len(parts) != 1 || !parts[0].Final || parts[0].Status != http.StatusOK || !strings.Contains(string(parts[0].Body), "id: ") || !strings.Contains(string(parts[0].Body), `"result"`) {
			t.Fatalf("call %d: %d parts, the first %+v; want one, final, with the priming event and the answer", i, len(parts), parts[0])
		}
	}
}

// The go-sdk's plain-text errors reach the client as JSON-RPC errors of
// the same status: -32001 for 404, -32603 for a 5xx, -32600 otherwise,
// for the request's id when the body was one request, null otherwise, its
// other headers kept (a 405's Allow); an event stream, a JSON answer, and a
// response under way are left alone.
func TestRelayWriterPlainErrors(t *testing.T) {
	one, err := rpcbody.Read([]byte(`{"jsonrpc":"2.0","id":"a1","method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := rpcbody.Read([]byte(`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		status int
		rb     *rpcbody.Body
		want   string
	}{
		{http.StatusBadRequest, one, `{"jsonrpc":"2.0","id":"a1","error":{"code":-32600,"message":"failed to replay events: x"}}`},
		{http.StatusNotFound, nil, `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"failed to replay events: x"}}`},
		{http.StatusInternalServerError, batch, `{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"failed to replay events: x"}}`},
	} {
		s := newSink()
		w := newRelayWriter(context.Background(), "r", newWindow(4), s.send)
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "failed to replay events: x", c.status)
		if !w.plainErrors(c.rb) {
			t.Fatalf("%d: not replaced", c.status)
		}
		w.finish()
		p := s.next(t)
		h := http.Header{}
		envelope.ToHTTP(p.Headers, h)
		if int(p.Status) != c.status || h.Get("Content-Type") != "application/json" || h.Get("Allow") != "GET, POST" || strings.TrimSpace(string(p.Body)) != c.want {
			t.Errorf("%d became %d %s %s", c.status, p.Status, h.Get("Content-Type"), p.Body)
		}
	}
	for name, answer := range map[string]func(w http.ResponseWriter){
		"an event stream": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
		},
		"a JSON error": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"m"}}`))
		},
		"a plain 200": func(w http.ResponseWriter) { w.Write([]byte("ok")) },
		"an error under way": func(w http.ResponseWriter) {
			http.Error(w, "late", http.StatusBadRequest)
			w.(*relayWriter).FlushError()
			w.(*relayWriter).FlushError()
		},
	} {
		w := newRelayWriter(context.Background(), "r", newWindow(4), newSink().send)
		answer(w)
		if w.plainErrors(one) {
			t.Errorf("%s was replaced", name)
		}
	}
}

// An event answering a request its client cancelled is not sent; the
// stream's other events, the answers to its other requests and what the
// actor writes itself are.
func TestRelayWriterDropsCancelledAnswers(t *testing.T) {
	rb, err := rpcbody.ReadAtMost([]byte(`[{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"slow"}},`+
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"fast"}}]`), 10)
	if err != nil {
		t.Fatal(err)
	}
	f := &flight{rpc: rb}
	a := &core{flights: map[string]*flight{"r": f}, kind: &SessionActor{}}
	// A principal actor's requests are never marked: its stateless
	// requests are sessions of their own, whose ids clients reuse.
	principal := &core{flights: map[string]*flight{"r": f}, kind: &PrincipalActor{}}
	cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"call-7"}}`
	crb, err := rpcbody.ReadAtMost([]byte(cancel), 10)
	if err != nil {
		t.Fatal(err)
	}
	principal.notePeerCancels(&flight{rpc: crb}, []byte(cancel))
	if f.cancels.Load() {
		t.Error("a principal actor marked a request of its cancelled")
	}
	// Not the SDK's key (it reads keys case-sensitively), then its own.
	for _, cancel := range []string{
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestid":"call-7"}}`,
		`[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"call-7"}}]`,
	} {
		crb, err := rpcbody.ReadAtMost([]byte(cancel), 10)
		if err != nil {
			t.Fatal(err)
		}
		a.notePeerCancels(&flight{rpc: crb}, []byte(cancel))
		if marked := f.answersCancelled([]byte("event: message\nid: s_2\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"call-7\",\"result\":{}}\n\n")); marked != strings.HasPrefix(cancel, "[") {
			t.Errorf("%s: the call's answer marked cancelled: %v", cancel, marked)
		}
	}

	s := newSink()
	w := newRelayWriter(context.Background(), "r", newWindow(8), s.send)
	w.cancelled = f.answersCancelled
	w.Header().Set("Content-Type", "text/event-stream")
	events := []string{
		"event: prime\nid: s_0\ndata: \n\n",
		"event: message\nid: s_1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"call-7\",\"progress\":1}}\n\n",
		"event: message\nid: s_2\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"call-7\",\"result\":{\"content\":[],\"isError\":true}}\n\n",
		"event: message\nid: s_3\ndata: {\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{\"content\":[]}}\n\n",
		"retry: 500\n\n",
	}
	for _, ev := range events {
		w.Write([]byte(ev))
	}
	w.finish()
	var got strings.Builder
	for len(s.parts) > 0 {
		got.Write(s.next(t).Body)
	}
	want := events[0] + events[1] + events[3] + events[4]
	if got.String() != want {
		t.Errorf("sent %q, want %q", got.String(), want)
	}
}

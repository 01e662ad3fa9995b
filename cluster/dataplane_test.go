package cluster

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/certtest"
	"github.com/pingmcp/pingmcp/internal/logtest"
)

// dataNode starts a member with the cluster's mutual TLS (one node, in
// this process: its data plane reaches itself over loopback, as another
// node's would) and returns it, its CA and its logs.
func dataNode(t *testing.T) (*Node, *certtest.CA, *logtest.Buffer) {
	t.Helper()
	ca := certtest.NewCA(t, "cluster CA")
	logs := &logtest.Buffer{}
	n, err := Start(Config{
		Addr:     "127.0.0.1:0",
		Provider: ProviderAutomanaged,
		Role:     RoleMember,
		TLS:      loadTLS(t, ca.Node(t, "node")),
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(false) })
	if n.data == nil {
		t.Fatal("a node with TLS has no data plane")
	}
	return n, ca, logs
}

// selfLink returns a link from n's data plane to itself.
func selfLink(t *testing.T, n *Node) *link {
	t.Helper()
	l := n.data.newLink(n.Address())
	<-l.ready
	if l.err != nil {
		t.Fatal(l.err)
	}
	t.Cleanup(func() { l.close(net.ErrClosed) })
	return l
}

// answerer is an actor that serves requests as a session actor does on
// the envelope level: it watches the sender (its edge), answers each
// request with parts numbered from 0, and records what it was told.
type answerer struct {
	parts []string // bodies of the parts of each answer; the last is final
	mu    sync.Mutex
	acks  []uint64
	// cancels and gone receive the request id of a Cancel, and the PID of
	// an edge that terminated.
	cancels chan string
	gone    chan *actor.PID
}

func newAnswerer(parts ...string) *answerer {
	return &answerer{parts: parts, cancels: make(chan string, 16), gone: make(chan *actor.PID, 16)}
}

func (a *answerer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *envelope.Envelope:
		switch {
		case m.GetRequest() != nil:
			ctx.Watch(ctx.Sender())
			for i, b := range a.parts {
				p := &envelope.ResponsePart{RequestId: m.GetRequest().Id, Seq: uint64(i), Body: []byte(b), Final: i == len(a.parts)-1}
				if i == 0 {
					p.Status = 200
				}
				ctx.Send(ctx.Sender(), &envelope.Envelope{Body: &envelope.Envelope_Part{Part: p}})
			}
		case m.GetAck() != nil:
			a.mu.Lock()
			a.acks = append(a.acks, m.GetAck().Seq)
			a.mu.Unlock()
		case m.GetCancel() != nil:
			a.cancels <- m.GetCancel().RequestId
		}
	case *actor.Terminated:
		a.gone <- m.Who
	}
}

func spawn(t *testing.T, n *Node, a *answerer) *actor.PID {
	t.Helper()
	pid := n.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
	t.Cleanup(func() { n.System.Root.Stop(pid) })
	return pid
}

func request(id string) *envelope.Request { return &envelope.Request{Id: id, Window: 4} }

func TestDataPlaneAnswers(t *testing.T) {
	n, _, logs := dataNode(t)
	l := selfLink(t, n)
	a := newAnswerer("hello, ", "world")
	pid := spawn(t, n, a)
	s, err := l.open("session", "s1", pid, request("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if body, err := readAll(t, s); err != nil || body != "hello, world" {
		t.Fatalf("answer %q, %v", body, err)
	}
	s.Close()
	if !strings.Contains(logs.String(), "data plane: linked to a node") {
		t.Errorf("no link logged:\n%s", logs)
	}
	// The link keeps nothing of a closed stream but its watch of the
	// actor (until the actor terminates).
	l.mu.Lock()
	streams, targets := len(l.streams), len(l.targets)
	l.mu.Unlock()
	if streams != 0 || targets != 1 {
		t.Errorf("link keeps %d streams and %d targets, want 0 and 1", streams, targets)
	}
	// Many at once, on the one connection.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := l.open("session", "s1", pid, request("many-"+string(rune('A'+i%26))+string(rune('a'+i/26))))
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var body []byte
			for {
				p, err := s.Next(ctx)
				if err != nil {
					errs <- err
					return
				}
				body = append(body, p.Body...)
				if p.Final {
					break
				}
			}
			if string(body) != "hello, world" {
				errs <- errors.New("answer " + string(body))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A request to an actor that is gone comes back unreached (Forward asks the
// cluster again), and the link forgets its PID.
func TestDataPlaneTargetGone(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	gone := actor.NewPID(n.Address(), "no-such-actor")
	n.mu.Lock()
	n.pids.put("session/s-gone", gone)
	n.mu.Unlock()
	s, err := l.open("session", "s-gone", gone, request("r1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.await(ctx); !errors.Is(err, ErrActorGone) || !s.unreached {
		t.Fatalf("got %v (unreached %v), want ErrActorGone, unreached", err, s.unreached)
	}
	s.Close()
	n.mu.Lock()
	cached := n.pids.get("session/s-gone")
	n.mu.Unlock()
	if cached != nil {
		t.Error("the PID of an actor that is gone is still cached")
	}
}

// An actor that stops mid-answer ends the stream after the parts it sent.
func TestDataPlaneActorStops(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	a := newAnswerer("first part, never a final one")
	a.parts = append(a.parts, "") // two parts, the second final: drop it
	a.parts = a.parts[:1]
	pid := n.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &partial{a} }))
	s, err := l.open("session", "s1", pid, request("r1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := s.Next(ctx)
	if err != nil || string(p.Body) != "first part, never a final one" || p.Final {
		t.Fatalf("first part %v, %v", p, err)
	}
	n.System.Root.Stop(pid)
	if _, err := s.Next(ctx); !errors.Is(err, ErrActorGone) || s.unreached {
		t.Fatalf("after the actor stopped: %v (unreached %v), want ErrActorGone, reached", err, s.unreached)
	}
}

// partial answers with its parts, none of them final.
type partial struct{ *answerer }

func (p *partial) Receive(ctx actor.Context) {
	if env, ok := ctx.Message().(*envelope.Envelope); ok && env.GetRequest() != nil {
		ctx.Watch(ctx.Sender())
		for i, b := range p.parts {
			ctx.Send(ctx.Sender(), &envelope.Envelope{Body: &envelope.Envelope_Part{Part: &envelope.ResponsePart{
				RequestId: env.GetRequest().Id, Seq: uint64(i), Status: 200, Body: []byte(b)}}})
		}
		return
	}
	p.answerer.Receive(ctx)
}

// Acknowledgements and a cancellation reach the actor.
func TestDataPlaneAcksAndCancel(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	a := newAnswerer("0", "1", "2")
	pid := n.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &partial{a} }))
	s, err := l.open("session", "s1", pid, request("r1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got string
	for len(got) < 3 {
		p, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += string(p.Body)
		s.Written(p.Seq)
	}
	s.Close() // before a final part: the actor is told to cancel
	select {
	case id := <-a.cancels:
		if id != "r1" {
			t.Errorf("cancelled %q", id)
		}
	case <-ctx.Done():
		t.Fatal("no cancellation reached the actor")
	}
	a.mu.Lock()
	acks := a.acks
	a.mu.Unlock()
	if len(acks) == 0 || acks[len(acks)-1] != 2 {
		t.Errorf("acks %v, want the last for part 2", acks)
	}
}

// A connection that breaks ends its streams (the requests may have been
// served), and the actors that answered through it learn that their edge
// is gone, as when an edge node dies.
func TestDataPlaneConnectionLost(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	a := newAnswerer("open-ended")
	pid := n.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &partial{a} }))
	s, err := l.open("session", "s1", pid, request("r1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Next(ctx); err != nil {
		t.Fatal(err)
	}
	l.conn.Close()
	if _, err := s.Next(ctx); !errors.Is(err, ErrActorGone) || s.unreached {
		t.Fatalf("after the connection broke: %v (unreached %v)", err, s.unreached)
	}
	select {
	case who := <-a.gone:
		if !strings.HasPrefix(who.Id, "pingmcp-data-") {
			t.Errorf("terminated: %v, want the data plane's peer", who)
		}
	case <-ctx.Done():
		t.Fatal("the actor never learned that its edge was gone")
	}
	if _, err := l.open("session", "s1", pid, request("r2")); !errors.Is(err, errLinkClosed) {
		t.Errorf("open on a closed link: %v", err)
	}
	// The node's next request dials again.
	n.data.mu.Lock()
	_, kept := n.data.links[n.Address()]
	n.data.mu.Unlock()
	if kept {
		t.Error("a closed link is still the node's")
	}
}

// What a peer with the cluster's certificate sends that is not the data
// plane's protocol ends its connection, and nothing else; one without the
// certificate gets no connection.
func TestDataPlaneRefusesMalformed(t *testing.T) {
	n, ca, logs := dataNode(t)
	a := newAnswerer("ok")
	pid := spawn(t, n, a)
	good := loadTLS(t, ca.Node(t, "peer"))
	dial := func(t *testing.T, tl *TLS) *tls.Conn {
		t.Helper()
		cfg := tl.ClientConfig()
		cfg.NextProtos = []string{dataALPN}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.Address(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	frame := func(typ byte, target string, body []byte) []byte {
		b, err := appendFrame(nil, typ, target, func(b []byte) ([]byte, error) { return append(b, body...), nil })
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hello := frame(frameHello, "10.0.0.1:7000", nil)
	req, _ := appendFrame(nil, frameRequest, pid.Id, envelopeBody(&envelope.Envelope{Body: &envelope.Envelope_Request{Request: request("x")}}))
	stop, _ := appendFrame(nil, frameRequest, pid.Id, envelopeBody(&envelope.Envelope{Body: &envelope.Envelope_Stop{Stop: &envelope.Stop{Reason: "rogue"}}}))
	huge := binary.BigEndian.AppendUint32(nil, maxWireMessage+1)
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"no hello", req},
		{"a hello naming no one", frame(frameHello, "", nil)},
		{"a frame of a member's type", append(hello, frame(framePart, "", nil)...)},
		{"a frame of no known type", append(hello, frame(99, pid.Id, nil)...)},
		{"an envelope that does not decode", append(hello, frame(frameRequest, pid.Id, []byte{0xff, 0xff, 0xff})...)},
		{"a Stop, which the data plane does not carry", append(hello, stop...)},
		{"a target longer than its frame", append(hello, 0, 0, 0, 3, frameRequest, 0x7f, 'x')},
		{"a frame too large", append(hello, huge...)},
		{"an empty frame", append(hello, 0, 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, good)
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("the connection did not end cleanly: %v", err)
			}
		})
	}
	if len(a.cancels) != 0 || strings.Contains(logs.String(), "panic") {
		t.Errorf("the actor was reached, or the node panicked:\n%s", logs)
	}
	// The rest of the node's data plane still serves.
	l := selfLink(t, n)
	s, err := l.open("session", "s1", pid, request("after"))
	if err != nil {
		t.Fatal(err)
	}
	if body, err := readAll(t, s); err != nil || body != "ok" {
		t.Fatalf("after the malformed connections: %q, %v", body, err)
	}
	// A client of another CA asking for the data plane gets no connection.
	rogue := loadTLS(t, certtest.NewCA(t, "rogue CA").Node(t, "rogue"))
	cfg := rogue.ClientConfig()
	cfg.VerifyConnection = nil
	cfg.NextProtos = []string{dataALPN}
	if c, err := tls.Dial("tcp", n.Address(), cfg); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(append(hello, req...))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a client of another CA was answered")
		}
		c.Close()
	}
}

// A node whose peers do not offer the data plane (an older version) gets
// no link: its requests go through protoactor's remote, and the link is
// not tried again for a while.
func TestDataPlaneFallsBack(t *testing.T) {
	n, ca, logs := dataNode(t)
	// A TLS server of the cluster's CA that speaks only gRPC's h2.
	old := loadTLS(t, ca.Node(t, "old"))
	srv := old.ServerConfig()
	srv.NextProtos = []string{"h2"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := n.linkTo(ctx, ln.Addr().String())
	if err != nil || l != nil {
		t.Fatalf("linkTo a node without the data plane: %v, %v; want none", l, err)
	}
	if !strings.Contains(logs.String(), "data plane: no link to a node") {
		t.Errorf("the fallback was not logged:\n%s", logs)
	}
	n.data.mu.Lock()
	until := n.data.refused[ln.Addr().String()]
	n.data.mu.Unlock()
	if time.Until(until) <= 0 {
		t.Error("the data plane would be tried again at once")
	}
	// This node itself takes no link.
	if l, err := n.linkTo(ctx, n.Address()); l != nil || err != nil {
		t.Errorf("a link to the node itself: %v, %v", l, err)
	}
}

// A node that reads nothing is dropped: a write waits at most
// dataWriteTimeout, frames pile up to maxPendingFrames at most, and every
// later write fails at once; the connection's owner hears of it once.
func TestFrameWriterBounded(t *testing.T) {
	defer func(d time.Duration, m int) { dataWriteTimeout, maxPendingFrames = d, m }(dataWriteTimeout, maxPendingFrames)
	dataWriteTimeout, maxPendingFrames = time.Hour, 1<<10
	pipe, other := net.Pipe() // nobody reads other
	defer other.Close()
	conn := &enteredConn{Conn: pipe, entered: make(chan struct{}, 1)}
	failed := make(chan error, 4)
	w := &frameWriter{conn: conn, onError: func(err error) { failed <- err }}
	body := func(b []byte) ([]byte, error) { return append(b, make([]byte, 300)...), nil }
	first := make(chan error, 1)
	go func() { first <- w.write(framePart, "", body) }() // blocks: nobody reads
	<-conn.entered
	// The others pile up behind it until the bound.
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = w.write(framePart, "", body)
	}
	if !errors.Is(err, errTooMuchPending) {
		t.Fatalf("frames piled up without bound: %v", err)
	}
	if err := <-first; err == nil {
		t.Error("the write under way succeeded on a closed connection")
	}
	if err := w.write(framePart, "", body); err == nil {
		t.Error("a write after the failure succeeded")
	}
	if len(failed) != 1 {
		t.Errorf("the owner heard of the failure %d times, want once", len(failed))
	}

	// A write that waits past dataWriteTimeout fails the same way.
	dataWriteTimeout = 50 * time.Millisecond
	pipe, other = net.Pipe()
	defer other.Close()
	w = &frameWriter{conn: pipe, onError: func(err error) { failed <- err }}
	if err := w.write(framePart, "", body); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a write nobody read: %v, want a timeout", err)
	}
}

// enteredConn tells when a write to it began.
type enteredConn struct {
	net.Conn
	entered chan struct{}
}

func (c *enteredConn) Write(b []byte) (int, error) {
	select {
	case c.entered <- struct{}{}:
	default:
	}
	return c.Conn.Write(b)
}

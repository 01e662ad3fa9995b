package cluster

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	clusterpkg "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

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
	pid, s, ctx := openPartial(t, n, l, newAnswerer("first part, never a final one"))
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

// openPartial spawns a partial answerer of a's parts on n and opens a
// stream to it on l, request r1; ctx bounds the test's waits.
func openPartial(t *testing.T, n *Node, l *link, a *answerer) (*actor.PID, *Stream, context.Context) {
	t.Helper()
	pid := n.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &partial{a} }))
	s, err := l.open("session", "s1", pid, request("r1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return pid, s, ctx
}

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
	_, s, ctx := openPartial(t, n, l, a)
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
	// Every half window of parts written is acknowledged (parts that
	// arrived together are read, and acknowledged, as one).
	if len(acks) == 0 || acks[len(acks)-1] < 1 || acks[len(acks)-1] > 2 {
		t.Errorf("acks %v, want the last for part 1 or 2", acks)
	}
}

// A connection that breaks ends its streams (the requests may have been
// served), and the actors that answered through it learn that their edge
// is gone, as when an edge node dies.
func TestDataPlaneConnectionLost(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	a := newAnswerer("open-ended")
	pid, s, ctx := openPartial(t, n, l, a)
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
		{"a hello larger than an address", frame(frameHello, strings.Repeat("a", 1<<20), nil)},
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
			_, werr := c.Write(tc.send)
			_, rerr := io.ReadAll(c)
			// A frame larger than the socket's buffers may still be on its
			// way when the node, refusing its length, closes: a reset
			// then, not the timeout of a connection left open.
			if len(tc.send) > 64<<10 && !isTimeout(werr) && !isTimeout(rerr) {
				return
			}
			if werr != nil {
				t.Fatal(werr)
			}
			if rerr != nil {
				t.Fatalf("the connection did not end cleanly: %v", rerr)
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
	// A TLS server of the cluster's CA that speaks only gRPC's h2: it
	// completes the handshake (the link offers h2 too), as an older node
	// does without logging a refusal, and the link closes the connection.
	handshakes := make(chan error, 4)
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
			go func() {
				if err := c.(*tls.Conn).Handshake(); err != nil {
					handshakes <- err
				}
				c.Close()
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := n.linkTo(ctx, ln.Addr().String())
	if err != nil || l != nil {
		t.Fatalf("linkTo a node without the data plane: %v, %v; want none", l, err)
	}
	select {
	case err := <-handshakes:
		t.Errorf("the older node refused the handshake: %v", err)
	default:
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

// A node that reads slowly slows its senders: beyond maxPendingFrames
// waiting bytes, a writer waits for room rather than the connection being
// dropped, and nothing is lost. A node that reads nothing for
// dataWriteTimeout is dropped: the writers waiting fail (their frames not
// queued), and the connection's owner hears of it once.
func TestFrameWriterBounded(t *testing.T) {
	defer func(d time.Duration, m int) { dataWriteTimeout, maxPendingFrames = d, m }(dataWriteTimeout, maxPendingFrames)
	dataWriteTimeout, maxPendingFrames = time.Hour, 1<<10
	body := func(b []byte) ([]byte, error) { return append(b, make([]byte, 300)...), nil }
	const frameSize = 4 + 1 + 1 + 300
	synctest.Test(t, func(t *testing.T) {
		conn, other := net.Pipe() // nobody reads other, for now
		var failed []error
		w := newFrameWriter(conn, func(err error) { failed = append(failed, err) })
		var errs [20]error
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = w.write(framePart, "", body) })
		}
		synctest.Wait() // every writer written, queued or waiting for room
		w.mu.Lock()
		pending := len(w.buf)
		w.mu.Unlock()
		if pending > maxPendingFrames+frameSize {
			t.Errorf("%d bytes wait, beyond the bound of %d", pending, maxPendingFrames)
		}
		var read int64
		go func() { read, _ = io.Copy(io.Discard, other) }()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}
		synctest.Wait() // everything queued written
		w.fail(errLinkClosed)
		conn.Close()
		synctest.Wait()
		if read != int64(len(errs)*frameSize) || len(failed) != 0 {
			t.Errorf("read %d bytes, want %d; failures %v", read, len(errs)*frameSize, failed)
		}
		other.Close()
	})
	dataWriteTimeout = time.Minute
	synctest.Test(t, func(t *testing.T) {
		conn, other := net.Pipe()
		defer other.Close()
		var failed []error
		w := newFrameWriter(conn, func(err error) { failed = append(failed, err) })
		var errs [10]error
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = w.write(framePart, "", body) })
		}
		synctest.Wait()
		time.Sleep(dataWriteTimeout) // nothing read meanwhile
		wg.Wait()
		queued, refused := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				queued++
			case errors.Is(err, os.ErrDeadlineExceeded):
				refused++
			default:
				t.Errorf("a write: %v", err)
			}
		}
		if queued == 0 || refused == 0 || len(failed) != 1 || !errors.Is(failed[0], os.ErrDeadlineExceeded) {
			t.Errorf("%d queued, %d refused, failures %v; want some of each, and one timeout", queued, refused, failed)
		}
		if err := w.write(framePart, "", body); err == nil {
			t.Error("a write after the failure was queued")
		}
		w.fail(errLinkClosed)
	})
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

// The member's end keeps nothing of the actors that served through it once
// they stopped: neither its watch of them nor theirs of it.
func TestDataPlaneForgetsStoppedActors(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var streams []*Stream
	var pids []*actor.PID
	for i := range 20 {
		a := newAnswerer("open-ended")
		pid := n.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &partial{a} }))
		s, err := l.open("session", "s"+string(rune('a'+i)), pid, request("r"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Next(ctx); err != nil { // served: it watches the peer
			t.Fatal(err)
		}
		streams, pids = append(streams, s), append(pids, pid)
	}
	for _, pid := range pids {
		n.System.Root.Stop(pid)
	}
	for _, s := range streams {
		// The peer's word that the actor terminated, sent after it forgot it.
		if _, err := s.Next(ctx); !errors.Is(err, ErrActorGone) {
			t.Fatalf("a stream to a stopped actor: %v", err)
		}
		s.Close()
	}
	n.data.mu.Lock()
	defer n.data.mu.Unlock()
	if len(n.data.peers) != 1 {
		t.Fatalf("%d peers, want 1", len(n.data.peers))
	}
	for p := range n.data.peers {
		p.mu.Lock()
		watched, watchers := len(p.watched), len(p.watchers)
		p.mu.Unlock()
		if watched != 0 || watchers != 0 {
			t.Errorf("the peer keeps %d watched actors and %d watchers of 20 that stopped", watched, watchers)
		}
	}
}

// A node that is stopping answers no hello: the link is not made, and its
// requests go through protoactor's remote (which says whether their
// targets are gone, so that they are sent again) rather than being lost on
// a connection it closes.
func TestDataPlaneStoppingNodeMakesNoLink(t *testing.T) {
	n, _, _ := dataNode(t)
	n.data.mu.Lock()
	n.data.stopped = true
	n.data.mu.Unlock()
	l := n.data.newLink(n.Address())
	<-l.ready
	if l.err == nil {
		t.Fatal("a link was made to a node that is stopping")
	}
}

// A request that could not be sent (its connection had failed) is not left
// waiting: open says so, and nothing of it stays on the link, so that the
// node sends it again on a new link.
func TestDataPlaneUnsentRequest(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	pid := spawn(t, n, newAnswerer("ok"))
	l.w.fail(errors.New("the connection failed"))
	if s, err := l.open("session", "s1", pid, request("r1")); !errors.Is(err, errLinkClosed) || s != nil {
		t.Fatalf("open on a failed connection: %v, %v; want errLinkClosed", s, err)
	}
	l.mu.Lock()
	streams := len(l.streams)
	l.mu.Unlock()
	if streams != 0 {
		t.Errorf("the link keeps %d streams of requests it never sent", streams)
	}
}

// A response part too large for a frame ends its stream with an error
// rather than leave it waiting for the part.
func TestDataPlanePartTooLarge(t *testing.T) {
	defer func(m int) { maxFrame = m }(maxFrame)
	maxFrame = 64 << 10
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	a := newAnswerer("small, ", strings.Repeat("x", 100<<10))
	pid := spawn(t, n, a)
	s, err := l.open("session", "s1", pid, request("r1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last *envelope.ResponsePart
	for last == nil || !last.Final {
		if last, err = s.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(last.Error, "too large") {
		t.Errorf("the last part: %+v, want an error", last)
	}
	// The actor, which does not know its part never arrived, is told to
	// cancel the request (a stream would wait for acks for good).
	select {
	case id := <-a.cancels:
		if id != "r1" {
			t.Errorf("cancelled %q", id)
		}
	case <-ctx.Done():
		t.Error("the actor was not told to cancel")
	}
	// The link still serves.
	s2, err := l.open("session", "s1", spawn(t, n, newAnswerer("ok")), request("r2"))
	if err != nil {
		t.Fatal(err)
	}
	if body, err := readAll(t, s2); err != nil || body != "ok" {
		t.Fatalf("after the part too large: %q, %v", body, err)
	}
}

// A member that left the membership has its links closed, unless a node at
// its address is a member again (restarted, under a new id): that link is
// the new node's.
func TestDataPlaneLeftNodes(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	n.data.mu.Lock()
	n.data.links[n.Address()] = l // as linkTo keeps a link to another node
	n.data.mu.Unlock()
	host, port, _ := net.SplitHostPort(n.Address())
	p, _ := strconv.Atoi(port)
	old := &clusterpkg.Member{Id: "old", Host: host, Port: int32(p)}
	restarted := &clusterpkg.Member{Id: "new", Host: host, Port: int32(p)}
	n.forgetNodes([]*clusterpkg.Member{old}, []*clusterpkg.Member{restarted})
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		t.Fatal("the link to a node restarted at the address of one that left was closed")
	}
	n.forgetNodes([]*clusterpkg.Member{old}, nil)
	l.mu.Lock()
	closed = l.closed
	l.mu.Unlock()
	if !closed {
		t.Error("the link to a node that left is still open")
	}
}

// Closing a link that is still waiting for a node's hello (a node that
// completed the handshake and says nothing) does not wait for it: the
// membership's goroutine closes the links of nodes that left.
func TestDataPlaneCloseDuringHello(t *testing.T) {
	defer func(d time.Duration) { dataDialTimeout = d }(dataDialTimeout)
	dataDialTimeout = time.Hour
	n, ca, _ := dataNode(t)
	mute := loadTLS(t, ca.Node(t, "mute"))
	srv := mute.ServerConfig()
	srv.NextProtos = []string{dataALPN}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake()
		accepted <- c // and says nothing
	}()
	l := n.data.newLink(ln.Addr().String())
	c := <-accepted
	defer c.Close()
	l.close(errors.New("the node left the cluster")) // returns: the hello is not awaited
	<-l.ready
	if l.err == nil {
		t.Error("a link was made to a node that said no hello")
	}
}

// A request that reached an actor is never taken for one that did not
// (and sent again) when the actor stops as more requests come for it: the
// member's word that it terminated goes before the NotFound a later
// request gets.
func TestDataPlaneStoppedBeforeNotFound(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for round := range 50 {
		a := newAnswerer("open-ended")
		pid := n.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &partial{a} }))
		first, err := l.open("session", "s", pid, request(fmt.Sprintf("r%d-0", round)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.Next(ctx); err != nil { // it reached the actor
			t.Fatal(err)
		}
		var later []*Stream
		n.System.Root.Stop(pid)
		for i := range 20 { // as the actor stops
			s, err := l.open("session", "s", pid, request(fmt.Sprintf("r%d-%d", round, i+1)))
			if err != nil {
				t.Fatal(err)
			}
			later = append(later, s)
		}
		if _, err := first.Next(ctx); !errors.Is(err, ErrActorGone) || first.unreached {
			t.Fatalf("round %d: a request that reached the actor ended %v, unreached %v", round, err, first.unreached)
		}
		first.Close()
		for _, s := range later {
			if _, err := s.await(ctx); !errors.Is(err, ErrActorGone) {
				t.Fatalf("a later request: %v", err)
			}
			s.Close()
		}
	}
}

// readFrom reads one frame from the bytes sent (then the connection's
// end), and says how many bytes the read allocated.
func readFrom(sent ...[]byte) (typ byte, target string, body []byte, allocated uint64, err error) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		for _, s := range sent {
			b.Write(s)
		}
		b.Close()
	}()
	fr := newFrameReader(a)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	typ, target, body, err = fr.next()
	runtime.ReadMemStats(&after)
	return typ, target, body, after.TotalAlloc - before.TotalAlloc, err
}

// A frame's announced length costs memory only as its bytes come: a peer
// that announces the largest frame and sends a little of it makes the
// reader allocate about what it sent, not the announced size.
func TestFrameReaderAllocatesAsBytesCome(t *testing.T) {
	for _, size := range []int{maxKeptFrame + 1, maxFrame} {
		_, _, _, allocated, err := readFrom(binary.BigEndian.AppendUint32(nil, uint32(size)), make([]byte, 100<<10))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("a frame of %d bytes cut short: %v", size, err)
		}
		if allocated > 4<<20 {
			t.Errorf("a frame of %d bytes of which 100 KiB came: %d bytes allocated", size, allocated)
		}
	}
	// A whole large frame still reads, into about 1.5 times its size
	// allocated in all.
	body := strings.Repeat("x", 16<<20)
	f, _ := appendFrame(nil, framePart, "t", func(b []byte) ([]byte, error) { return append(b, body...), nil })
	typ, target, got, allocated, err := readFrom(f)
	if err != nil || typ != framePart || target != "t" || string(got) != body {
		t.Fatalf("a large frame: %d %q %d bytes, %v", typ, target, len(got), err)
	}
	if allocated > uint64(len(f))*8/5 {
		t.Errorf("a frame of %d bytes read with %d bytes allocated", len(f), allocated)
	}
}

// told wraps an answerer, and says when it answered a request.
type told struct {
	*answerer
	answered chan struct{}
}

func (a *told) Receive(ctx actor.Context) {
	a.answerer.Receive(ctx)
	if env, ok := ctx.Message().(*envelope.Envelope); ok && env.GetRequest() != nil {
		a.answered <- struct{}{}
	}
}

// A stopping member writes what its actors sent its edges before it
// closes their connections, then a goodbye; it waits for the edge to
// close, but not beyond dataFinishTimeout.
func TestDataPlaneStopWritesWhatWasSent(t *testing.T) {
	// edge dials n's data plane as an edge does, and asks each of many
	// actors for an answer of one part. It reads nothing meanwhile: the
	// first actor to answer blocks writing once the connection's buffers
	// are full, and the others' answers wait in the member's writer as
	// the data plane stops.
	const actors, size = 24, 512 << 10
	edge := func(t *testing.T) (*Node, *tls.Conn, *frameReader, chan struct{}) {
		n, ca, _ := dataNode(t)
		answered := make(chan struct{}, actors)
		cfg := loadTLS(t, ca.Node(t, "edge")).ClientConfig()
		cfg.NextProtos = []string{dataALPN}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.Address(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		frames, _ := appendFrame(nil, frameHello, "10.0.0.1:7000", noBody)
		for i := range actors {
			a := &told{newAnswerer(strings.Repeat(string(rune('a'+i)), size)), answered}
			pid := n.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
			t.Cleanup(func() { n.System.Root.Stop(pid) })
			frames, _ = appendFrame(frames, frameRequest, pid.Id, envelopeBody(&envelope.Envelope{Body: &envelope.Envelope_Request{Request: request(strconv.Itoa(i))}}))
		}
		if _, err := c.Write(frames); err != nil {
			t.Fatal(err)
		}
		for range actors - 1 {
			select {
			case <-answered:
			case <-time.After(10 * time.Second):
				t.Fatal("the requests were not answered")
			}
		}
		// The last answer may be the one blocked in its write, or (when
		// the system's buffers took the first write whole, and the
		// writer's goroutine blocks instead) one not sent yet: the member
		// drops what is sent after it began to stop. Every answer queued,
		// with the member's hello:
		var pending bool // a write under way (its bytes not all in the system's buffers), or frames queued
		queued := func() int {
			n.data.mu.Lock()
			defer n.data.mu.Unlock()
			q := 0
			pending = false
			for p := range n.data.peers {
				p.w.mu.Lock()
				q += p.w.queued
				pending = pending || p.w.flushing || len(p.w.buf) > 0
				p.w.mu.Unlock()
			}
			return q
		}
		for deadline := time.Now().Add(10 * time.Second); queued() < actors+1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d frames queued, want the hello and %d answers", queued(), actors)
			}
		}
		if !pending {
			t.Fatal("nothing waits in the member's writer: the test shows nothing")
		}
		return n, c, newFrameReader(c), make(chan struct{})
	}

	t.Run("all of it, then a goodbye", func(t *testing.T) {
		defer func(d time.Duration) { dataFinishTimeout = d }(dataFinishTimeout)
		dataFinishTimeout = time.Minute // the edge's close ends the wait, not this
		n, c, fr, stopped := edge(t)
		go func() { n.data.stop(); close(stopped) }()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		got := map[string]bool{}
		for goodbye := false; !goodbye; {
			typ, _, body, err := fr.next()
			if err != nil {
				t.Fatalf("after %d answers: %v", len(got), err)
			}
			switch typ {
			case frameHello:
			case framePart:
				var env envelope.Envelope
				if err := proto.Unmarshal(body, &env); err != nil {
					t.Fatal(err)
				}
				i, _ := strconv.Atoi(env.GetPart().RequestId)
				if string(env.GetPart().Body) != strings.Repeat(string(rune('a'+i)), size) || !env.GetPart().Final {
					t.Fatalf("answer %d differs", i)
				}
				got[env.GetPart().RequestId] = true
			case frameGoodbye:
				goodbye = true
			default:
				t.Fatalf("a frame of type %d", typ)
			}
		}
		if len(got) != actors {
			t.Fatalf("%d answers of %d before the goodbye", len(got), actors)
		}
		select {
		case <-stopped:
			t.Fatal("the member closed before the edge did")
		default:
		}
		c.Close()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatal("the member did not stop once the edge closed")
		}
	})

	t.Run("an edge that reads nothing holds the stop no longer than the bound", func(t *testing.T) {
		defer func(d, w time.Duration) { dataFinishTimeout, dataWriteTimeout = d, w }(dataFinishTimeout, dataWriteTimeout)
		dataFinishTimeout, dataWriteTimeout = 200*time.Millisecond, time.Hour
		n, _, _, stopped := edge(t)
		go func() { n.data.stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatal("the stop waited for an edge that reads nothing")
		}
	})
}

// An edge that reads a member's goodbye closes its link at once: its
// streams end after the parts they got, and the member's stop does not
// wait out dataFinishTimeout for it.
func TestDataPlaneGoodbyeClosesTheLink(t *testing.T) {
	defer func(d time.Duration) { dataFinishTimeout = d }(dataFinishTimeout)
	dataFinishTimeout = time.Minute
	n, _, logs := dataNode(t)
	l := selfLink(t, n)
	_, s, ctx := openPartial(t, n, l, newAnswerer("a part, never a final one"))
	if p, err := s.Next(ctx); err != nil || p.Final {
		t.Fatalf("first part %v, %v", p, err)
	}
	stopped := make(chan struct{})
	go func() { n.data.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the member's stop waited for the edge")
	}
	if _, err := s.Next(ctx); !errors.Is(err, ErrActorGone) {
		t.Fatalf("after the goodbye: %v, want ErrActorGone", err)
	}
	if !strings.Contains(logs.String(), "the node is stopping") {
		t.Errorf("the link did not close on the goodbye:\n%s", logs)
	}
}

// finish waits no longer than its deadline, even when no write was under
// way and its own frame's write blocks (a peer that reads nothing): the
// frames go out on the writer's goroutine, not the caller's.
func TestFrameWriterFinishBounded(t *testing.T) {
	defer func(d time.Duration) { dataWriteTimeout = d }(dataWriteTimeout)
	dataWriteTimeout = time.Hour
	a, b := net.Pipe() // b reads nothing: a write to a blocks
	defer b.Close()
	w := newFrameWriter(a, func(error) { a.Close() })
	returned := make(chan bool)
	go func() { returned <- w.finish(frameGoodbye, time.Now().Add(100*time.Millisecond)) }()
	select {
	case written := <-returned:
		if written {
			t.Error("finish says its frame was written to a peer that read nothing")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("finish waited for a write past its deadline")
	}
	if err := w.write(frameSend, "x", noBody); !errors.Is(err, errLinkClosed) {
		t.Errorf("a frame after the last: %v, want errLinkClosed", err)
	}
	a.Close() // ends the write under way
	w.fail(errLinkClosed)
}

// RouteTo says how requests to a node travel: itself, a link being made,
// a link up, a link that failed lately (protoactor's remote), none yet;
// and protoactor's remote always without TLS.
func TestRouteTo(t *testing.T) {
	n, _, _ := dataNode(t)
	if got := n.RouteTo(n.Address()); got != RouteLocal {
		t.Errorf("to itself: %q", got)
	}
	if got := n.RouteTo("127.0.0.1:1"); got != RouteNone {
		t.Errorf("to a node never asked: %q", got)
	}
	// Another name of the node's own address: a link that comes up.
	_, port, _ := net.SplitHostPort(n.Address())
	other := net.JoinHostPort("localhost", port)
	n.data.dialAhead(other)
	linkOf := func(addr string) *link {
		n.data.mu.Lock()
		l := n.data.links[addr]
		n.data.mu.Unlock()
		if l == nil {
			t.Fatalf("no link to %s after dialAhead", addr)
		}
		return l
	}
	<-linkOf(other).ready
	if got := n.RouteTo(other); got != RouteDataPlane {
		t.Errorf("to a node linked: %q", got)
	}
	// A listener that answers no handshake until told to hang up:
	// dialling, then protoactor's remote for a while.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	hangUp := make(chan struct{})
	go func() {
		if c, err := silent.Accept(); err == nil {
			<-hangUp
			c.Close()
		}
	}()
	n.data.dialAhead(silent.Addr().String())
	l := linkOf(silent.Addr().String())
	if got := n.RouteTo(silent.Addr().String()); got != RouteDialing {
		t.Errorf("to a node being dialled: %q", got)
	}
	close(hangUp)
	<-l.ready
	if got := n.RouteTo(silent.Addr().String()); got != RouteRemote {
		t.Errorf("to a node whose link failed: %q", got)
	}
	// Without TLS there is no data plane.
	plain := probeNode(t)
	if got := plain.RouteTo(n.Address()); got != RouteRemote {
		t.Errorf("from a node without TLS: %q", got)
	}
}

// isTimeout says err is a deadline's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

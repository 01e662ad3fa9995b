package cluster

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// The data plane carries forwarded requests and their answers between two
// nodes on one connection of their own per node pair, instead of
// protoactor's remote (BENCHMARKS.md, "The floor of a hop": a message through
// protoactor's endpoint writer, gRPC's stream and the endpoint reader costs
// several times a framed write on the TLS connection itself).
//
// protoactor keeps everything else: membership, placement, activation (a
// request's target is still the PID the cluster gave), fencing (the actor's
// own), an operator's Stop, node control. The data plane is only the
// request's way there and its answer's way back:
//
//   - The edge dials the member's cluster address (the PID's), with the
//     cluster's mutual TLS and the ALPN protocol dataALPN. The member's
//     cluster listener takes such a connection out of gRPC after the
//     handshake (refusals.ServerHandshake): same port, same certificates,
//     nothing more to open or configure. A member that does not offer the
//     protocol (an older version, in a rolling upgrade) fails the
//     handshake, and the edge uses protoactor's remote to it for a while.
//   - Frames are a 4-byte big-endian length, a type, a target (an actor's
//     PID id on the member, or nothing) and a body (an envelope in
//     protobuf, or a Terminated's reason). A frame is written by the
//     goroutine that has it when no write is under way, else with those
//     that came during it by the connection's writer goroutine; a node
//     that reads slowly makes its senders wait beyond a bound (frameWriter).
//     Each connection end reads with one goroutine.
//   - Both ends say hello first (their cluster addresses): a member that is
//     stopping answers none, so that no link is made to it.
//   - On the member, each connection is a protoactor Process (edgePeer): the
//     request is delivered to its target with the edgePeer as sender, so the
//     actor answers, watches its edge, and is watched, exactly as through
//     the reply router. What it sends the edgePeer goes out as frames at once:
//     parts in order, and a watched actor's Terminated after its last
//     parts.
//   - On the edge, a connection is a link: a route of streams (Stream) by
//     request id, as the reply router is. Ordering, the window, acks and
//     cancellation are the stream's, unchanged.
//   - A connection that breaks ends every stream on it as if its actors
//     terminated (the request may have been served: never retried); on the
//     member, the actors watching the edgePeer see it terminate and cancel its
//     requests, as when an edge node goes away. A member that leaves the
//     membership has its links closed, and an edge that leaves has its
//     peers closed.
//
// Without TLS (--cluster-insecure) there is no ALPN, and requests travel
// on protoactor's remote as before.
const dataALPN = "pingmcp-data/1"

// Frame types.
const (
	frameHello      byte = iota + 1 // edge → member, first: the edge's cluster address
	frameRequest                    // edge → member: target, Envelope{Request}
	frameSend                       // edge → member: target, Envelope{Ack|Cancel}
	framePart                       // member → edge: Envelope{Part}
	frameTerminated                 // member → edge: target, why (uvarint)
	frameGoodbye                    // member → edge, last: the node stops, and sent all it had
)

// dataWriteTimeout bounds one write to another node: a node that takes no
// bytes for that long is dropped, and its streams end.
var dataWriteTimeout = 10 * time.Second

// maxPendingFrames bounds the bytes of frames waiting for a write under way
// to a node: beyond it, those who have more wait for room (frameWriter).
var maxPendingFrames = 16 << 20

// maxFrame bounds a frame, as gRPC's limit bounds a batch of protoactor's.
var maxFrame = maxWireMessage

// dataDialTimeout bounds a link's dial and handshake.
var dataDialTimeout = 5 * time.Second

// dataFinishTimeout bounds how long a stopping member spends writing what
// its actors sent its edges, and waiting for them to close.
var dataFinishTimeout = 5 * time.Second

// dataRetryAfter is how long, after a link to a node could not be made,
// requests to it go through protoactor's remote before the data plane is
// tried again.
const dataRetryAfter = 10 * time.Second

var (
	errLinkClosed    = errors.New("data plane link closed")
	errFrameTooLarge = errors.New("data plane frame too large")
	errNodeStopping  = errors.New("the node is stopping")
)

// appendFrame appends a frame of typ for target, its body written by body.
func appendFrame(b []byte, typ byte, target string, body func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, typ)
	b = binary.AppendUvarint(b, uint64(len(target)))
	b = append(b, target...)
	b, err := body(b)
	if err != nil {
		return b[:start], err
	}
	n := len(b) - start - 4
	if n > maxFrame {
		return b[:start], errFrameTooLarge
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

// noBody is the body of a frame that has none (a hello).
func noBody(b []byte) ([]byte, error) { return b, nil }

func envelopeBody(env *envelope.Envelope) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) { return proto.MarshalOptions{}.MarshalAppend(b, env) }
}

// frameReader reads frames.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
	// max bounds the next frames when set (maxFrame when 0): a hello.
	max uint32
}

// maxHello bounds a hello frame: a cluster address, which a peer's link
// keeps and logs.
const maxHello = 1 << 10

// hello reads the peer's hello: the cluster address it names, at most
// maxHello bytes in all.
func (fr *frameReader) hello() (string, error) {
	fr.max = maxHello
	typ, addr, _, err := fr.next()
	fr.max = 0
	if err == nil && (typ != frameHello || addr == "") {
		err = fmt.Errorf("the first frame is of type %d, not a hello", typ)
	}
	return addr, err
}

func newFrameReader(conn net.Conn) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(conn, 64<<10)}
}

// maxKeptFrame bounds the buffer a reader or writer keeps between frames.
const maxKeptFrame = 256 << 10

// next returns the next frame. Its body is valid until the next call.
func (fr *frameReader) next() (typ byte, target string, body []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return 0, "", nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 2 || n > cmp.Or(fr.max, uint32(maxFrame)) {
		return 0, "", nil, fmt.Errorf("data plane frame of %d bytes", n)
	}
	var b []byte
	if n <= maxKeptFrame {
		if cap(fr.buf) < int(n) {
			fr.buf = make([]byte, n)
		}
		b = fr.buf[:n]
		if _, err := io.ReadFull(fr.r, b); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // cut short after its length
			}
			return 0, "", nil, err
		}
	} else {
		// A large frame's buffer grows as its bytes come, doubling, then
		// straight to the frame's size once that is less than four times
		// the next: the length a peer announces costs memory only as the
		// peer sends the bytes (a quarter of them, at the last step), and
		// about 1.5 times the frame in all, 1.25 at once.
		b = make([]byte, 0, maxKeptFrame)
		for len(b) < int(n) {
			if len(b) == cap(b) {
				c := min(int(n), 2*cap(b))
				if 4*c >= int(n) {
					c = int(n)
				}
				b = append(make([]byte, 0, c), b...)
			}
			k, err := io.ReadFull(fr.r, b[len(b):min(cap(b), int(n))])
			b = b[:len(b)+k]
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return 0, "", nil, err
			}
		}
	}
	typ, b = b[0], b[1:]
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) {
		return 0, "", nil, errors.New("data plane frame: bad target")
	}
	return typ, string(b[k : k+int(l)]), b[k+int(l):], nil
}

// frameWriter writes frames to a connection. Whoever writes when no write
// is under way writes what is waiting, its own frame included, at once: a
// frame waits for no goroutine of its own. Frames appended meanwhile go
// out together after it, written by the writer's own goroutine (run), so
// that no caller keeps writing others' frames for as long as they come.
// Beyond maxPendingFrames waiting bytes a caller waits for room: a node
// reading steadily but slowly slows its senders, it is not dropped. Each
// chunk of a write has dataWriteTimeout: a node that takes nothing for that
// long is dropped. The first error is kept: a frame written after it is
// not queued (write says so), and onError (which closes the connection)
// runs once.
type frameWriter struct {
	conn    net.Conn
	onError func(error)
	timeout time.Duration // dataWriteTimeout when made

	mu       sync.Mutex
	room     sync.Cond     // broadcast when waiting frames were taken, or on an error
	kick     chan struct{} // hands the waiting frames to run
	done     chan struct{} // closed by fail: run ends
	buf      []byte        // frames waiting
	spare    []byte
	flushing bool // a write is under way, or run has the frames
	last     bool // the last frame is queued (finish): no other is
	err      error
	queued   int // frames queued so far (tests)
}

func newFrameWriter(conn net.Conn, onError func(error)) *frameWriter {
	w := &frameWriter{conn: conn, onError: onError, timeout: dataWriteTimeout, kick: make(chan struct{}, 1), done: make(chan struct{})}
	w.room.L = &w.mu
	go w.run()
	return w
}

// maxWriteChunk bounds what one system write (and its deadline) carries.
const maxWriteChunk = 1 << 20

// write queues a frame of typ for target, its body written by body, and
// writes it unless a write is under way. An error means the frame was not
// queued: the connection had already failed (errLinkClosed or the
// failure), or the frame is too large.
func (w *frameWriter) write(typ byte, target string, body func([]byte) ([]byte, error)) error {
	w.mu.Lock()
	for w.err == nil && w.flushing && len(w.buf) > maxPendingFrames {
		w.room.Wait()
	}
	flush, err := w.queueLocked(typ, target, body)
	w.mu.Unlock()
	if flush {
		w.flush()
	}
	return err
}

// queue queues a frame at once, without waiting for room (for a small
// frame whose place among the others the caller fixes under a lock of its
// own), and reports whether the caller must then call flush: no write was
// under way. An error means the frame was not queued, as for write.
func (w *frameWriter) queue(typ byte, target string, body func([]byte) ([]byte, error)) (flush bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queueLocked(typ, target, body)
}

func (w *frameWriter) queueLocked(typ byte, target string, body func([]byte) ([]byte, error)) (flush bool, err error) {
	if w.err != nil {
		return false, w.err
	}
	if w.last {
		return false, errLinkClosed
	}
	if w.buf, err = appendFrame(w.buf, typ, target, body); err != nil {
		return false, err
	}
	w.queued++
	if w.flushing {
		return false, nil
	}
	w.flushing = true
	return true, nil
}

// flush writes the waiting frames, for the caller that queued one when no
// write was under way; what comes meanwhile goes to run.
func (w *frameWriter) flush() {
	w.mu.Lock()
	failed := w.flushLocked()
	if len(w.buf) > 0 && w.err == nil {
		w.kick <- struct{}{} // run takes what came meanwhile; flushing stays set
	} else {
		w.flushing = false
		w.room.Broadcast() // for finish
	}
	w.mu.Unlock()
	if failed != nil {
		w.onError(failed)
	}
}

// run writes the frames that came while a caller wrote, until the writer
// fails.
func (w *frameWriter) run() {
	for {
		select {
		case <-w.kick:
		case <-w.done:
			return
		}
		w.mu.Lock()
		var failed error
		for len(w.buf) > 0 && w.err == nil && failed == nil {
			failed = w.flushLocked()
		}
		w.flushing = false
		w.room.Broadcast() // for finish
		w.mu.Unlock()
		if failed != nil {
			w.onError(failed)
		}
	}
}

// flushLocked writes the waiting frames, unlocking w.mu meanwhile, and
// returns the error it failed with first (nil if the writer had already
// failed, or did not).
func (w *frameWriter) flushLocked() error {
	out := w.buf
	w.buf = w.spare[:0]
	w.room.Broadcast()
	w.mu.Unlock()
	var err error
	for rest := out; len(rest) > 0 && err == nil; {
		n := min(len(rest), maxWriteChunk)
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
		_, err = w.conn.Write(rest[:n])
		rest = rest[n:]
	}
	w.mu.Lock()
	w.spare = nil
	if cap(out) <= maxKeptFrame {
		w.spare = out[:0]
	}
	if err == nil || w.err != nil {
		return nil
	}
	w.err = err
	w.room.Broadcast()
	return err
}

// finish queues a last frame of typ, after which the writer takes no
// other, and waits until it and every frame before it are written, the
// writer fails, or deadline passes. It reports whether all was written.
// The frames are written by run, even when no write is under way: the
// caller waits no longer than deadline, however long a write blocks (the
// caller's close then ends it).
func (w *frameWriter) finish(typ byte, deadline time.Time) bool {
	expired := false
	t := time.AfterFunc(time.Until(deadline), func() {
		w.mu.Lock()
		expired = true
		w.room.Broadcast()
		w.mu.Unlock()
	})
	defer t.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	flush, err := w.queueLocked(typ, "", noBody)
	w.last = true
	if err != nil {
		return false
	}
	if flush {
		w.kick <- struct{}{} // empty: no write was under way, so run took the last kick
	}
	for w.err == nil && w.flushing && !expired {
		w.room.Wait()
	}
	return w.err == nil && !w.flushing
}

// fail makes every later write fail with err, and ends run.
func (w *frameWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
		w.room.Broadcast()
	}
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.mu.Unlock()
}

// dataPlane is a node's links (as an edge) and peers (as a member).
type dataPlane struct {
	node   *Node
	tls    *TLS
	logger *slog.Logger

	mu      sync.Mutex
	links   map[string]*link     // by the member's cluster address
	refused map[string]time.Time // addresses whose link failed, until when protoactor's remote is used
	peers   map[*edgePeer]struct{}
	stopped bool
	nextID  atomic.Uint64
}

func newDataPlane(n *Node, t *TLS, logger *slog.Logger) *dataPlane {
	return &dataPlane{node: n, tls: t, logger: logger, links: map[string]*link{}, refused: map[string]time.Time{}, peers: map[*edgePeer]struct{}{}}
}

// linkTo returns the link to the node at addr, dialling it if needed, or
// nil if requests to addr go through protoactor's remote (this node
// itself, no data plane, or a node that has none).
func (n *Node) linkTo(ctx context.Context, addr string) (*link, error) {
	d := n.data
	if d == nil || addr == n.System.Address() {
		return nil, nil
	}
	l := d.link(addr)
	if l == nil {
		return nil, nil
	}
	select {
	case <-l.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if l.err != nil {
		return nil, nil
	}
	return l, nil
}

// Routes of forwarded requests, as the pingmcp_forwarded_requests_total
// metric names them, and as RouteTo tells them for a node.
const (
	RouteLocal     = "local"      // this node itself
	RouteDataPlane = "data_plane" // a data plane link, up
	RouteRemote    = "remote"     // protoactor's remote: no data plane, or the node's link failed lately
	RouteDialing   = "dialing"    // a link being made; requests wait for it
	RouteNone      = "none"       // no link yet: the next request makes one
)

// RouteTo says how this node's requests to the node at addr travel now.
func (n *Node) RouteTo(addr string) string {
	d := n.data
	switch {
	case addr == n.System.Address():
		return RouteLocal
	case d == nil:
		return RouteRemote
	}
	d.mu.Lock()
	l := d.links[addr]
	refused := time.Now().Before(d.refused[addr])
	stopped := d.stopped
	d.mu.Unlock()
	switch {
	case stopped:
		return RouteNone
	case l != nil:
		select {
		case <-l.ready:
			if l.err == nil {
				return RouteDataPlane
			}
			return RouteRemote
		default:
			return RouteDialing
		}
	case refused:
		return RouteRemote
	}
	return RouteNone
}

// dialAhead starts dialling a link to addr, unless there is one, a
// recent one failed, or the node stops; it does not wait for it.
func (d *dataPlane) dialAhead(addr string) { d.link(addr) }

// link returns the link to addr, made or being made, starting one if
// there is none; nil if the node stops or a link to addr failed lately.
func (d *dataPlane) link(addr string) *link {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	if l := d.links[addr]; l != nil {
		return l
	}
	if time.Now().Before(d.refused[addr]) {
		return nil
	}
	delete(d.refused, addr)
	l := d.newLink(addr)
	d.links[addr] = l
	return l
}

// newLink starts dialling a link to addr.
func (d *dataPlane) newLink(addr string) *link {
	l := &link{data: d, addr: addr, ready: make(chan struct{}), streamTable: newStreamTable()}
	l.dialing, l.cancelDial = context.WithTimeout(context.Background(), dataDialTimeout)
	go l.dial()
	return l
}

// drop forgets l, if it is still the link to its address.
func (d *dataPlane) drop(l *link) {
	d.mu.Lock()
	if d.links[l.addr] == l {
		delete(d.links, l.addr)
	}
	d.mu.Unlock()
}

// left closes the links to and the peers of nodes that left the cluster.
func (d *dataPlane) left(gone map[string]bool) {
	d.mu.Lock()
	for addr := range d.refused {
		if gone[addr] {
			delete(d.refused, addr)
		}
	}
	d.mu.Unlock()
	d.closeWhere(func(addr string) bool { return gone[addr] }, errors.New("the node left the cluster"))
}

// stop closes every link and edgePeer, and makes no new one. Each edgePeer
// first writes what the node's actors sent it (finish).
func (d *dataPlane) stop() {
	d.mu.Lock()
	d.stopped = true
	peers := make([]*edgePeer, 0, len(d.peers))
	for p := range d.peers {
		peers = append(peers, p)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() { p.finish(time.Now().Add(dataFinishTimeout)) })
	}
	wg.Wait()
	d.closeWhere(func(string) bool { return true }, errNodeStopping)
}

// closeWhere closes the links to, and the peers of, the nodes whose
// cluster addresses match, for why.
func (d *dataPlane) closeWhere(match func(addr string) bool, why error) {
	d.mu.Lock()
	var links []*link
	for addr, l := range d.links {
		if match(addr) {
			links = append(links, l)
		}
	}
	var peers []*edgePeer
	for p := range d.peers {
		if match(p.edge.Load().(string)) {
			peers = append(peers, p)
		}
	}
	d.mu.Unlock()
	for _, l := range links {
		l.close(why)
	}
	for _, p := range peers {
		p.close(why)
	}
}

// link is an edge's connection to a member: a route of streams.
type link struct {
	data  *dataPlane
	addr  string
	ready chan struct{} // closed once dialled (conn, w set) or failed (err set)
	// dialing is the dial's context, cancelled by close.
	dialing    context.Context
	cancelDial context.CancelFunc
	err        error
	conn       net.Conn
	w          *frameWriter
	fr         *frameReader

	streamTable
	closed bool // guarded by streamTable.mu
}

func (l *link) dial() {
	defer close(l.ready)
	cfg := l.data.tls.ClientConfig()
	// gRPC's protocol too, second: a node without the data plane (an
	// older version) then completes the handshake as for any peer, rather
	// than refusing it as an unknown protocol, and the link closes it.
	cfg.NextProtos = []string{dataALPN, "h2"}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	defer l.cancelDial()
	conn, err := dialer.DialContext(l.dialing, "tcp", l.addr)
	if err == nil && conn.(*tls.Conn).ConnectionState().NegotiatedProtocol != dataALPN {
		conn.Close()
		err = errors.New("the node does not offer the data plane")
	}
	if err == nil {
		if lerr := keepLive(conn); lerr != nil {
			l.data.logger.Warn("data plane: a link's liveness not set; a vanished peer ends it only with its membership", "peer", l.addr, "err", lerr)
		}
		// Hellos both ways before the link is handed out: a node that is
		// stopping closes the connection instead of answering, and its
		// requests go through protoactor's remote, which says whether
		// their targets are gone. (A failed write of the frameWriter
		// closes the link, which waits for the dial: none is used here.)
		err = l.hello(conn)
		if err != nil {
			conn.Close()
		}
	}
	if err == nil {
		l.conn = conn
		l.w = newFrameWriter(conn, l.close)
	}
	if err != nil {
		l.err = err
		d := l.data
		d.mu.Lock()
		if d.links[l.addr] == l {
			delete(d.links, l.addr)
			if !errors.Is(l.dialing.Err(), context.Canceled) { // not closed meanwhile (left, stop)
				now := time.Now()
				for addr, until := range d.refused {
					if now.After(until) {
						delete(d.refused, addr)
					}
				}
				d.refused[l.addr] = now.Add(dataRetryAfter)
			}
		}
		d.mu.Unlock()
		if errors.Is(l.dialing.Err(), context.Canceled) {
			l.data.logger.Debug("data plane: a link closed while it was made", "peer", l.addr, "err", err)
			return
		}
		l.data.logger.Warn("data plane: no link to a node; its requests go through protoactor's remote for now",
			"peer", l.addr, "retry_in", dataRetryAfter, "err", err)
		d.node.suspect(l.addr) // is it there at all?
		return
	}
	l.data.logger.Info("data plane: linked to a node", "peer", l.addr)
	go l.read()
}

// hello sends this node's hello on conn and reads the member's.
func (l *link) hello(conn net.Conn) error {
	hello, _ := appendFrame(nil, frameHello, l.data.node.System.Address(), noBody)
	deadline, _ := l.dialing.Deadline() // dial and hellos, dataDialTimeout in all
	conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	// A link closed meanwhile (close cancels the dial) waits for no hello.
	stop := context.AfterFunc(l.dialing, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(hello); err != nil {
		return err
	}
	l.fr = newFrameReader(conn)
	if _, err := l.fr.hello(); err != nil {
		return fmt.Errorf("the node's hello: %w", err)
	}
	return nil
}

// open registers a stream for req and sends req to target.
func (l *link) open(kind, identity string, target *actor.PID, req *envelope.Request) (*Stream, error) {
	s := newStream(l, l.data.logger, target, req)
	if _, err := l.add(s, kind, identity); err != nil {
		return nil, err
	}
	// A link that closes from here on ends s (close); one that closed
	// before did not.
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.unregister(s)
		return nil, errLinkClosed
	}
	if err := l.w.write(frameRequest, target.Id, envelopeBody(&envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})); err != nil {
		// Not sent: the request was not served, and may go on another
		// link (a connection that failed), or not at all.
		l.unregister(s)
		if errors.Is(err, errFrameTooLarge) {
			return nil, err
		}
		return nil, errLinkClosed
	}
	return s, nil
}

func (l *link) send(target *actor.PID, env *envelope.Envelope) {
	l.w.write(frameSend, target.Id, envelopeBody(env))
}

// read delivers what the member sends until the connection ends.
func (l *link) read() {
	fr := l.fr
	for {
		typ, target, body, err := fr.next()
		if err != nil {
			l.close(err)
			return
		}
		switch typ {
		case framePart:
			var env envelope.Envelope
			if err := proto.Unmarshal(body, &env); err != nil || env.GetPart() == nil {
				l.close(fmt.Errorf("data plane: a part that is not one: %v", err))
				return
			}
			l.deliver(env.GetPart())
		case frameGoodbye:
			// The member stops, and sent all it had: the link's streams
			// that have not ended now end, and the next request asks
			// the cluster again.
			l.close(errNodeStopping)
			return
		case frameTerminated:
			why, k := binary.Uvarint(body)
			if k <= 0 {
				l.close(errors.New("data plane: a Terminated without its reason"))
				return
			}
			l.ended(pidKey{l.addr, target}, actor.TerminatedReason(why), func(w *watch) {
				l.data.node.forget(w.kind, w.identity, w.pid)
			})
		default:
			l.close(fmt.Errorf("data plane: frame of type %d from a member", typ))
			return
		}
	}
}

// close ends the link: every stream on it ends as if its actor terminated
// (it may have served the request), and the next request dials anew.
func (l *link) close(err error) {
	l.cancelDial()
	<-l.ready
	if l.err != nil {
		return // never made
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	if !errors.Is(err, net.ErrClosed) {
		l.data.logger.Info("data plane: link to a node closed", "peer", l.addr, "err", err)
	}
	l.w.fail(errLinkClosed)
	l.conn.Close()
	l.data.drop(l)
	if !errors.Is(err, errNodeStopping) && !errors.Is(err, net.ErrClosed) {
		l.data.node.suspect(l.addr) // ended without a goodbye: is it there at all?
	}
	n := l.data.node
	for _, w := range l.endAll(actor.TerminatedReason_AddressTerminated) {
		n.forget(w.kind, w.identity, w.pid)
	}
}

// edgePeer is a member's end of an edge's connection: a protoactor Process that
// is the sender of the requests it delivers, so that what the actors send
// it goes out as frames.
type edgePeer struct {
	data *dataPlane
	conn net.Conn
	fr   *frameReader
	w    *frameWriter
	pid  *actor.PID
	edge atomic.Value // string: the edge's cluster address, from its hello

	mu       sync.Mutex
	watched  map[string]struct{}   // local actors this edgePeer watches, by PID id
	watchers map[pidKey]*actor.PID // actors that watch this edgePeer
	closed   bool
	done     chan struct{} // closed by close
}

var _ actor.Process = (*edgePeer)(nil)

// serve takes a connection the cluster listener dispatched to the data
// plane, and reads it until it ends.
//
// It runs on the listener's goroutine of that connection, under the
// handshake's deadline: the edge's hello is read there, within
// dataDialTimeout, so that a peer that sends none holds nothing.
func (d *dataPlane) serve(conn net.Conn) {
	n := d.node
	if err := keepLive(conn); err != nil {
		d.logger.Warn("data plane: a link's liveness not set; a vanished edge ends it only with its membership", "err", err)
	}
	fr := newFrameReader(conn)
	conn.SetDeadline(time.Now().Add(dataDialTimeout))
	edge, err := fr.hello()
	if err != nil {
		err = fmt.Errorf("data plane: %w", err)
		conn.Close()
		if !errors.Is(err, io.EOF) {
			d.logger.Info("data plane: connection of a node closed", "err", err)
		}
		return
	}
	conn.SetDeadline(time.Time{})
	p := &edgePeer{data: d, conn: conn, fr: fr, done: make(chan struct{}), watched: map[string]struct{}{}, watchers: map[pidKey]*actor.PID{}}
	p.edge.Store(edge)
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		conn.Close()
		return
	}
	pid, ok := n.System.ProcessRegistry.Add(p, "pingmcp-data-"+strconv.FormatUint(d.nextID.Add(1), 10))
	if !ok {
		d.mu.Unlock()
		conn.Close()
		return
	}
	p.pid = pid
	p.w = newFrameWriter(conn, p.close)
	// The hello is queued before stop can see the peer: its goodbye, if
	// it comes at once, follows the hello.
	flush, _ := p.w.queue(frameHello, n.System.Address(), noBody)
	d.peers[p] = struct{}{}
	d.mu.Unlock()
	if flush {
		p.w.flush()
	}
	go p.read()
}

func (p *edgePeer) read() {
	n := p.data.node
	system := n.System
	for {
		typ, target, body, err := p.fr.next()
		if err != nil {
			p.close(err)
			return
		}
		var env envelope.Envelope
		if typ != frameRequest && typ != frameSend {
			p.close(fmt.Errorf("data plane: frame of type %d from an edge", typ))
			return
		}
		if err := proto.Unmarshal(body, &env); err != nil {
			p.close(fmt.Errorf("data plane: an envelope that does not decode: %w", err))
			return
		}
		to := actor.NewPID(system.Address(), target)
		switch {
		case typ == frameRequest && env.GetRequest() != nil:
			p.mu.Lock()
			_, seen := p.watched[target]
			if !seen {
				p.watched[target] = struct{}{}
			}
			p.mu.Unlock()
			if !seen {
				// A target that is gone comes back as Terminated
				// (NotFound) at once: the edge asks the cluster again.
				proc, _ := system.ProcessRegistry.Get(to)
				proc.SendSystemMessage(to, &actor.Watch{Watcher: p.pid})
			}
			system.Root.RequestWithCustomSender(to, &env, p.pid)
		case typ == frameSend && (env.GetAck() != nil || env.GetCancel() != nil):
			system.Root.Send(to, &env)
		default:
			p.close(errors.New("data plane: an envelope of a kind the data plane does not carry"))
			return
		}
	}
}

// SendUserMessage sends an actor's response part to the edge.
func (p *edgePeer) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	env, ok := msg.(*envelope.Envelope)
	if !ok || env.GetPart() == nil {
		return // a DeadLetterResponse: the Watch reports the target gone
	}
	err := p.w.write(framePart, "", envelopeBody(env))
	if errors.Is(err, errFrameTooLarge) {
		// Its stream must not wait for it: it ends with an error.
		part := env.GetPart()
		p.w.write(framePart, "", envelopeBody(&envelope.Envelope{Body: &envelope.Envelope_Part{Part: &envelope.ResponsePart{
			RequestId: part.RequestId, Seq: part.Seq, Final: true, Error: "a response part too large for the data plane"}}}))
	}
}

// SendSystemMessage tells the edge that a watched actor terminated, and
// keeps who watches the edgePeer.
func (p *edgePeer) SendSystemMessage(_ *actor.PID, message any) {
	switch m := message.(type) {
	case *actor.Terminated:
		if m.Who == nil {
			return
		}
		// Queued before the actor is forgotten, under the same lock: a
		// request for it read meanwhile watches it again only after, and
		// the NotFound that Watch gets is then queued behind this word.
		// Otherwise the NotFound could overtake it, and the edge would
		// take requests that reached the actor for ones that did not,
		// and send them again.
		p.mu.Lock()
		flush, _ := p.w.queue(frameTerminated, m.Who.Id, func(b []byte) ([]byte, error) { return binary.AppendUvarint(b, uint64(m.Why)), nil })
		delete(p.watched, m.Who.Id)
		delete(p.watchers, keyOf(m.Who)) // an actor that watched the peer needs no word of it now
		p.mu.Unlock()
		if flush {
			p.w.flush()
		}
	case *actor.Watch:
		if m.Watcher == nil {
			return
		}
		p.mu.Lock()
		closed := p.closed
		if !closed {
			p.watchers[keyOf(m.Watcher)] = m.Watcher
		}
		p.mu.Unlock()
		if closed {
			p.terminate(m.Watcher)
		}
	case *actor.Unwatch:
		if m.Watcher != nil {
			p.mu.Lock()
			delete(p.watchers, keyOf(m.Watcher))
			p.mu.Unlock()
		}
	}
}

// finish ends the peer as its node stops: what the actors sent it (their
// last parts, the Terminated of those that stopped) is written first, then
// a goodbye, and the edge, having read it all, closes the connection.
// Closing it here first could lose what the system had yet to send: a
// connection closed with bytes unread is reset, its unsent bytes dropped.
// Until deadline.
func (p *edgePeer) finish(deadline time.Time) {
	if p.w.finish(frameGoodbye, deadline) {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-p.done: // the edge closed the connection (read's end closes p)
		case <-t.C:
		}
		t.Stop()
	}
	p.close(errNodeStopping)
}

// Stop is a no-op: the edgePeer lives as long as its connection.
func (p *edgePeer) Stop(*actor.PID) {}

func (p *edgePeer) terminate(watcher *actor.PID) {
	system := p.data.node.System
	proc, _ := system.ProcessRegistry.Get(watcher)
	proc.SendSystemMessage(watcher, &actor.Terminated{Who: p.pid, Why: actor.TerminatedReason_AddressTerminated})
}

// close ends the peer: the actors that watch it learn that it terminated,
// and cancel what it forwarded.
func (p *edgePeer) close(err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	watchers := p.watchers
	p.watchers = nil
	close(p.done)
	p.mu.Unlock()
	p.w.fail(errLinkClosed)
	p.conn.Close()
	d := p.data
	d.node.System.ProcessRegistry.Remove(p.pid)
	d.mu.Lock()
	delete(d.peers, p)
	d.mu.Unlock()
	for _, w := range watchers {
		p.terminate(w)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errNodeStopping) {
		d.logger.Info("data plane: connection of a node closed", "peer", p.edge.Load(), "err", err)
	}
}

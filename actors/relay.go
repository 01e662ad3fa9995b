package actors

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/telemetry"
)

// firstPartDelay is how long a response's first flush may wait to travel
// with the next one. The first flush carries the status and headers and at
// most a preamble (the SDK's priming event, or a comment on a standalone
// stream); when the handler flushes again or returns within this time, as it
// does when a tool answers at once, the response costs one part instead of
// two or three (one message across nodes instead of several, one wake-up of
// the edge). When the handler takes longer, the client gets the headers this
// much later, never more; every flush after the first is sent at once.
const firstPartDelay = time.Millisecond

// keepAliveComment is what an idle event stream carries every keep-alive
// interval: an SSE comment, which clients ignore and which has no event id,
// so that it never moves the Last-Event-ID a client resumes from.
const keepAliveComment = ": keepalive\n\n"

// relayWriter is the http.ResponseWriter a forwarded request is served with.
// Every flush ships what was written since the last one to the edge as a
// ResponsePart (the first flush possibly up to firstPartDelay later, merged
// with the next); the first part carries status and headers, the last is
// final. A response that is never flushed (plain JSON) travels as one part.
// So does the flush of a POST stream's last event, the answer to the last
// of its requests (answered): the handler returns right after it, and the
// answer travels with the end of the response, up to firstPartDelay later
// (one message across nodes instead of two, one write to the client, which
// reads the answer and the stream's end at once).
//
// The handler may flush from another goroutine than the one that returns
// (the SDK writes responses from the session's goroutine); mu also orders
// those with the timer that ships a held first part.
type relayWriter struct {
	ctx       context.Context
	requestID string
	window    *window
	send      func(*envelope.ResponsePart)
	// onStream, if set, is called when the first part of a streamed (not
	// final) response goes out: the SDK has registered the stream by then.
	onStream func()
	// keepAlive, if not zero, is how long an event stream may stay silent
	// before a keepAliveComment goes out (the request's keepalive_ms).
	//
	// The comment is written here, by the actor, rather than by the edge,
	// so that it travels the whole way: a client, or the proxy or load
	// balancer in front of pingmcp, sees bytes at least this often, and the
	// edge sees parts arriving from the actor's node, which lets it tell a
	// quiet stream from a dead path (transport.Edge ends a stream silent
	// for several intervals). Here, too, it cannot split an event: the
	// handler's writes and this one are ordered by mu, and it is written
	// only when nothing of an event is buffered.
	keepAlive time.Duration
	// hold is how long the first flush, and the stream's last event, are
	// held (firstPartDelay when zero; Config.PartDelay): tests of the
	// merging set a longer one, which a stalled test cannot outlast.
	hold time.Duration

	header http.Header // the handler's
	// refused, if set and true, says the request was refused (a newer
	// activation owns the session): what the handler writes is dropped
	// until something replaces the response (replace).
	refused func() bool
	// answered, if set and true, says the answer to the last of the
	// request's requests was written: what is flushed from then on is
	// held for the final part (see FlushError).
	answered func() bool
	// cancelled, if set, says whether an event answers a request its
	// client cancelled: such an event is not sent (notePeerCancels).
	cancelled func(event []byte) bool
	// replaced, if set, gives what to send instead of an event (nil: the
	// event itself; empty: nothing): a stateless request's answer once a
	// drain cut its handler, a listen's end (flight.interruptedAnswer).
	replaced func(event []byte) []byte
	// wrote, if set, is told of each event written to an event stream.
	wrote func(event []byte)
	// accepted, if set, is called (once, with mu held: it must not wait)
	// when the handler's status is a success: the go-sdk accepted the
	// request. Not for a status set otherwise (replace: a refusal
	// rewritten, a "not served").
	accepted func()

	mu       sync.Mutex
	status   int
	head     []*envelope.Header // header as it was when the status was set
	stream   bool               // head says text/event-stream
	headSent bool
	buf      []byte
	seq      uint64
	closed   bool
	held     *time.Timer // ships the first flush unless something else does first
	idle     *time.Timer // writes a keep-alive comment on a silent event stream
}

var errResponseClosed = errors.New("response already finished")

func newRelayWriter(ctx context.Context, requestID string, w *window, send func(*envelope.ResponsePart)) *relayWriter {
	return &relayWriter{ctx: ctx, requestID: requestID, window: w, send: send, header: http.Header{}}
}

func (w *relayWriter) Header() http.Header { return w.header }

func (w *relayWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeaderLocked(code)
}

// writeHeaderLocked sets the status and takes the header as it is then, as
// net/http does: changes made later are not sent.
func (w *relayWriter) writeHeaderLocked(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		if code < 300 && w.accepted != nil {
			w.accepted()
		}
		w.head = envelope.FromHTTP(w.header.Clone())
		w.stream = strings.HasPrefix(w.header.Get("Content-Type"), "text/event-stream")
	}
}

func (w *relayWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errResponseClosed
	}
	if w.ctx.Err() != nil {
		return 0, w.ctx.Err()
	}
	w.writeHeaderLocked(http.StatusOK)
	if w.dropping() || w.cancelled != nil && w.stream && w.cancelled(p) {
		return len(p), nil
	}
	n := len(p)
	if w.replaced != nil && w.stream {
		if q := w.replaced(p); q != nil {
			p = q
		}
	}
	if w.wrote != nil && w.stream {
		w.wrote(p)
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// FlushError ships the buffered bytes, waiting while the edge is a full
// window behind. It fails once the request is cancelled. The first flush
// only starts the firstPartDelay timer, and so does the flush of the
// stream's last event (answered).
func (w *relayWriter) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errResponseClosed
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.dropping() {
		return nil
	}
	if !w.headSent && w.held == nil {
		w.writeHeaderLocked(http.StatusOK) // a flush before any write sends 200, as net/http does
		w.held = time.AfterFunc(w.delay(), w.shipHeld)
		return nil
	}
	if !w.headSent && w.answered != nil && w.answered() {
		// Held with the first part, which goes with finish: the delay
		// starts again, so that the tool's time does not count against it.
		w.held.Reset(w.delay())
		return nil
	}
	if w.headSent && len(w.buf) == 0 {
		return nil
	}
	if w.headSent && w.held != nil {
		return nil // the held last event takes this along
	}
	if err := w.window.acquire(w.ctx, w.seq); err != nil {
		return err
	}
	if w.answered != nil && w.answered() {
		// The stream's last event: it goes with finish, or by itself
		// if the handler has not returned within the delay.
		w.held = time.AfterFunc(w.delay(), w.shipHeld)
		return nil
	}
	w.emit(false, "")
	return nil
}

func (w *relayWriter) Flush() { _ = w.FlushError() }

// delay is how long a held flush waits: hold, or firstPartDelay.
func (w *relayWriter) delay() time.Duration { return cmp.Or(w.hold, firstPartDelay) }

// dropping says the handler's writes are dropped: the request was refused
// before anything of its response was sent. Requires w.mu.
func (w *relayWriter) dropping() bool {
	return !w.headSent && w.refused != nil && w.refused()
}

// shipHeld sends a held flush (the first, or the stream's last event) once
// firstPartDelay is over, unless a later flush or the end of the response
// has taken it along. Part 0 is always within the window; a later one was
// acquired when it was held.
func (w *relayWriter) shipHeld() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed && (!w.headSent || len(w.buf) > 0) {
		w.emit(false, "")
	}
}

// replace discards a response nothing of which was sent yet for another
// one; it reports whether it could.
func (w *relayWriter) replace(status int, header http.Header, body []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.headSent || w.closed {
		return false
	}
	if w.held != nil {
		w.held.Stop()
		w.held = nil
	}
	w.status, w.head, w.buf = status, envelope.FromHTTP(header), append(w.buf[:0], body...)
	w.stream = strings.HasPrefix(header.Get("Content-Type"), "text/event-stream")
	return true
}

// errorStatus says whether the handler answered with an error status
// (400 or more), which it sets before anything else of its response.
func (w *relayWriter) errorStatus() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status >= http.StatusBadRequest
}

// replayRefused reports, and forgets, the go-sdk's refusal of a GET whose
// replay the store could not give (400 "failed to replay events"), if
// nothing of it went out: the GET may be tried again.
func (w *relayWriter) replayRefused() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.headSent || w.closed || w.status != http.StatusBadRequest || !bytes.Contains(w.buf, []byte("failed to replay events")) {
		return false
	}
	if w.held != nil {
		w.held.Stop()
		w.held = nil
	}
	w.status, w.head, w.buf, w.stream, w.header = 0, nil, w.buf[:0], false, http.Header{}
	return true
}

// unservedIfCut replaces the response with a retryable "not served" 503
// when the request was cut (its actor stopping: passivated, fenced,
// drained, ended) and the SDK answered it 404 before anything was sent: the
// SDK found its session closed under it, so the request was never
// dispatched, and a 404 would tell the client its session is gone. It
// reports whether it replaced the response.
func (w *relayWriter) unservedIfCut(requestID string) bool {
	w.mu.Lock()
	cut := w.ctx.Err() != nil && !w.headSent && w.status == http.StatusNotFound
	w.mu.Unlock()
	return cut && w.unserved(requestID)
}

// unserved replaces the response with a retryable "not served" 503, which
// the edge sends again, if nothing of it went out yet. It reports whether
// it replaced the response.
func (w *relayWriter) unserved(requestID string) bool {
	u := unavailable(requestID)
	h := http.Header{}
	envelope.ToHTTP(u.Headers, h)
	return w.replace(int(u.Status), h, u.Body)
}

// sdkNotHandled starts the go-sdk's plain-text answer to a request for a
// method it does not have (jsonrpc2.ErrNotHandled, through http.Error).
var sdkNotHandled = []byte("JSON RPC not handled")

// methodNotFound replaces the go-sdk's answer to a request for a method
// its server does not have, on the session protocols (2025-11-25 and
// older): a plain-text 400, which clients read as a transport failure, not
// as "this server has no such method". The answer becomes the JSON-RPC
// error -32601 for the request's id, as for every other JSON-RPC error on
// these protocols (HTTP 200, application/json), so that a client probing
// an optional method learns it is not there. Only a single request is
// answered so (a batch, or a notification, keeps the SDK's 400: a
// notification gets no JSON-RPC response); the 2026-07-28 protocol's own
// answer (404 with -32601) is left as it is. It reports whether it
// replaced the response.
func (w *relayWriter) methodNotFound(rb *rpcbody.Body) bool {
	first := rb.First()
	if rb == nil || rb.Batch || first == nil || first.Kind != rpcbody.Request {
		return false
	}
	w.mu.Lock()
	notHandled := !w.headSent && w.status == http.StatusBadRequest && !w.stream && bytes.HasPrefix(w.buf, sdkNotHandled)
	w.mu.Unlock()
	if !notHandled {
		return false
	}
	h := http.Header{"Content-Type": {"application/json"}}
	return w.replace(http.StatusOK, h, rpcerr.UnknownMethod(first.Method).Body(first.ID))
}

// plainErrors replaces any other plain-text error the go-sdk answers a
// request with (its http.Error: a Last-Event-ID it cannot replay, a body
// it cannot read, a header it refuses, a session it no longer has) by the
// same status with a JSON-RPC error, as pingmcp's own refusals are
// answered (a client reads plain text as a transport failure): -32001 for
// 404 (no such session), -32603 for a 5xx, else -32600, the SDK's text
// (cut at 512 bytes) as the message, for the request's id when the body is
// one request (null otherwise). It reports whether it replaced the
// response.
func (w *relayWriter) plainErrors(rb *rpcbody.Body) bool {
	w.mu.Lock()
	plain := !w.headSent && w.status >= 400 && !w.stream && strings.HasPrefix(w.header.Get("Content-Type"), "text/plain")
	status, text, h := w.status, string(w.buf), w.header.Clone() // its other headers stay (a 405's Allow)
	w.mu.Unlock()
	if !plain {
		return false
	}
	code := rpcerr.InvalidRequest
	switch {
	case status == http.StatusNotFound:
		code = rpcerr.SessionNotFound
	case status >= 500:
		code = rpcerr.InternalError
	}
	var id json.RawMessage
	if first := rb.First(); first != nil && !rb.Batch && first.Kind == rpcbody.Request {
		id = first.ID
	}
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	return w.replace(status, h, rpcerr.New(code, telemetry.ClipTo(strings.TrimSpace(text), 512)).Body(id))
}

// finish ships the rest of the response as the final part.
func (w *relayWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.writeHeaderLocked(http.StatusOK)
	w.emit(true, "")
}

// fail ends the response with an error: a 500 if nothing was sent yet, else
// a final part that tells the edge to cut the stream short.
func (w *relayWriter) fail(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if !w.headSent {
		w.head = []*envelope.Header{{Name: "Content-Type", Values: []string{"text/plain; charset=utf-8"}}}
		w.status = http.StatusInternalServerError
		w.buf = []byte("internal error\n")
	}
	w.emit(true, msg)
}

// emit sends what is buffered as the next part. The caller holds mu.
func (w *relayWriter) emit(final bool, errMsg string) {
	if w.held != nil {
		w.held.Stop()
		w.held = nil
	}
	p := &envelope.ResponsePart{RequestId: w.requestID, Seq: w.seq, Body: w.buf, Final: final, Error: errMsg}
	if !w.headSent {
		p.Status = int32(w.status)
		p.Headers = w.head
		w.headSent = true
		if !final && w.onStream != nil {
			w.onStream()
		}
	}
	w.buf = nil // the part owns those bytes now
	w.seq++
	w.closed = final
	w.send(p)
	w.armKeepAlive()
}

// startKeepAlive sets the keep-alive interval of the response (0: none),
// once onStream is set and before the handler runs. A GET's interval
// starts at once, not at its first part: see sendKeepAlive.
func (w *relayWriter) startKeepAlive(interval time.Duration, get bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keepAlive = interval
	if get && interval > 0 {
		w.idle = time.AfterFunc(interval, w.sendKeepAlive)
	}
}

// eventStreamHead is the head of an event stream the go-sdk opens (the
// headers it sets on one, Connection aside, which is hop-by-hop).
func eventStreamHead() []*envelope.Header {
	return []*envelope.Header{
		{Name: "Content-Type", Values: []string{"text/event-stream"}},
		{Name: "Cache-Control", Values: []string{"no-cache, no-transform"}},
	}
}

// armKeepAlive (re)starts the keep-alive interval of an open event stream
// after a part went out, and stops it once the response is over. The
// caller holds mu.
func (w *relayWriter) armKeepAlive() {
	switch {
	case w.closed:
		if w.idle != nil {
			w.idle.Stop()
		}
	case w.keepAlive <= 0 || !w.stream:
	case w.idle == nil:
		w.idle = time.AfterFunc(w.keepAlive, w.sendKeepAlive)
	default:
		w.idle.Reset(w.keepAlive)
	}
}

// sendKeepAlive writes a keep-alive comment as a part of its own, unless
// the handler is in the middle of an event or its first part is on its
// way (it flushes soon, which re-arms the interval) or the edge is a whole
// window behind (it has parts to write, so the stream is not silent); then
// it tries again an interval later.
//
// A GET the handler has neither answered nor written to for a whole
// interval is an event stream it holds open with nothing to send yet: the
// go-sdk answers every refusal of a GET at once, but it resumes a stream
// (Last-Event-ID) without writing a byte when nothing is to be replayed,
// and its client would wait for the response's headers until the next
// event (Node's HTTP client gives up after 300 s). Its headers go out with
// the comment then: those the go-sdk gives an event stream, since the
// handler's own header map cannot be read while its goroutine may write
// it; what the handler sets later is ignored, as net/http ignores header
// changes after WriteHeader.
func (w *relayWriter) sendKeepAlive() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.ctx.Err() != nil || (w.status != 0 && !w.stream) {
		return
	}
	if len(w.buf) > 0 || w.held != nil || !w.window.open(w.seq) {
		w.idle.Reset(w.keepAlive)
		return
	}
	if w.status == 0 {
		w.status, w.head, w.stream = http.StatusOK, eventStreamHead(), true
	}
	w.buf = append(w.buf, keepAliveComment...)
	w.emit(false, "")
}

// window is the actor's side of the edge's flow control: part seq may be sent
// once the edge has acknowledged every part before seq-size.
type window struct {
	size uint64

	mu      sync.Mutex
	acked   uint64 // parts [0, acked) are written at the edge
	changed chan struct{}
}

func newWindow(size uint64) *window {
	if size == 0 {
		size = 16
	}
	return &window{size: size, changed: make(chan struct{})}
}

func (w *window) acquire(ctx context.Context, seq uint64) error {
	for {
		w.mu.Lock()
		if seq < w.acked+w.size {
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// open reports whether part seq may be sent now, without waiting.
func (w *window) open(seq uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return seq < w.acked+w.size
}

func (w *window) ack(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq+1 > w.acked {
		w.acked = seq + 1
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// eventAnswerID is the id of the answer an SSE event p carries, as the
// go-sdk writes one (writeEvent: the whole event in one write, its data on
// one line); nil for anything else (a comment, a notification, a request of
// the server's).
func eventAnswerID(p []byte) json.RawMessage {
	if !bytes.HasPrefix(p, []byte("event: message\n")) {
		return nil
	}
	_, data, ok := bytes.Cut(p, []byte("\ndata: "))
	if !ok {
		return nil
	}
	data, _, _ = bytes.Cut(data, []byte("\n"))
	return answerID(data)
}

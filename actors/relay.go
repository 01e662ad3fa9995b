package actors

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// relayWriter is the http.ResponseWriter a forwarded request is served with.
// Every flush ships what was written since the last one to the edge as a
// ResponsePart; the first carries status and headers, the last is final. A
// response that is never flushed (plain JSON) travels as one part.
type relayWriter struct {
	ctx       context.Context
	requestID string
	window    *window
	send      func(*envelope.ResponsePart)
	// onStream, if set, is called when the first part of a streamed (not
	// final) response goes out: the SDK has registered the stream by then.
	onStream func()

	header   http.Header
	status   int
	headSent bool
	buf      []byte
	seq      uint64
	closed   bool
}

var errResponseClosed = errors.New("response already finished")

func newRelayWriter(ctx context.Context, requestID string, w *window, send func(*envelope.ResponsePart)) *relayWriter {
	return &relayWriter{ctx: ctx, requestID: requestID, window: w, send: send, header: http.Header{}}
}

func (w *relayWriter) Header() http.Header { return w.header }

func (w *relayWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *relayWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errResponseClosed
	}
	if w.ctx.Err() != nil {
		return 0, w.ctx.Err()
	}
	w.WriteHeader(http.StatusOK)
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// FlushError ships the buffered bytes, waiting while the edge is a full
// window behind. It fails once the request is cancelled.
func (w *relayWriter) FlushError() error {
	if w.closed {
		return errResponseClosed
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.headSent && len(w.buf) == 0 {
		return nil
	}
	if err := w.window.acquire(w.ctx, w.seq); err != nil {
		return err
	}
	w.emit(false, "")
	return nil
}

func (w *relayWriter) Flush() { _ = w.FlushError() }

// finish ships the rest of the response as the final part.
func (w *relayWriter) finish() {
	if w.closed {
		return
	}
	w.WriteHeader(http.StatusOK)
	w.emit(true, "")
}

// fail ends the response with an error: a 500 if nothing was sent yet, else
// a final part that tells the edge to cut the stream short.
func (w *relayWriter) fail(msg string) {
	if w.closed {
		return
	}
	if !w.headSent {
		w.header = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
		w.status = http.StatusInternalServerError
		w.buf = []byte("internal error\n")
	}
	w.emit(true, msg)
}

func (w *relayWriter) emit(final bool, errMsg string) {
	w.WriteHeader(http.StatusOK) // a flush before any write sends 200, as net/http does
	p := &envelope.ResponsePart{RequestId: w.requestID, Seq: w.seq, Body: w.buf, Final: final, Error: errMsg}
	if !w.headSent {
		p.Status = int32(w.status)
		p.Headers = envelope.FromHTTP(w.header)
		w.headSent = true
		if !final && w.onStream != nil {
			w.onStream()
		}
	}
	w.buf = nil // the part owns those bytes now
	w.seq++
	w.closed = final
	w.send(p)
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

func (w *window) ack(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq+1 > w.acked {
		w.acked = seq + 1
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

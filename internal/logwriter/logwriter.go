// Package logwriter takes log lines off the request's path: a Writer keeps
// what it is given in order and writes it out, all that came meanwhile in
// one write (group commit), on a goroutine of its own, so that a request
// does not wait for a log line's system call, and many lines at once cost
// one. A line that must be out before its caller goes on (an audit record,
// before its tool call is answered) is waited for with Sync, which writes
// on the caller's goroutine when no write is under way.
//
// Nothing is dropped: a Writer holding its bound (MaxPending) makes the
// next Write wait until it has written some out, so that a log sink that
// stops reading slows the callers down as a synchronous writer would, and
// memory stays bounded. Lines go out as soon as the goroutine runs, with no
// lingering; what a crash can lose is the lines given and not yet written
// that no one waited for (Close writes everything out, and the process's
// main path closes its Writer before it exits).
package logwriter

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// MaxPending is how many bytes a Writer holds before a Write waits.
const MaxPending = 1 << 20

// Writer is an io.Writer that writes to another on a goroutine of its own.
// Each Write's bytes reach the other writer whole and in order, never split
// between two of its Writes.
type Writer struct {
	w    io.Writer
	mu   sync.Mutex
	cond sync.Cond // broadcast when pending was taken, a write ended, or the Writer closed
	// pending is what was given and not yet taken for writing; spare is
	// the buffer the last batch was written from, reused.
	pending, spare []byte
	writing        bool  // a batch is being written
	quiet          int   // HandleSyncs under way: a Write leaves its bytes to their Sync
	given, written int64 // bytes given (before Close), and written out of them
	closed         bool
	wake           chan struct{}
	done           chan struct{}
}

// New returns a Writer writing to w, and starts its goroutine; Close ends
// it.
func New(w io.Writer) *Writer {
	lw := &Writer{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	lw.cond.L = &lw.mu
	go lw.run()
	return lw
}

// Write keeps a copy of p to be written; it waits only while the Writer
// holds MaxPending bytes. After Close it writes p itself, so that nothing
// said late is lost.
func (lw *Writer) Write(p []byte) (int, error) {
	lw.mu.Lock()
	if lw.closed {
		lw.mu.Unlock()
		return lw.writeDirect(p)
	}
	for len(lw.pending) > 0 && len(lw.pending)+len(p) > MaxPending && !lw.closed {
		lw.cond.Wait()
	}
	if lw.closed {
		lw.mu.Unlock()
		return lw.writeDirect(p)
	}
	lw.pending = append(lw.pending, p...)
	lw.given += int64(len(p))
	quiet := lw.quiet > 0
	lw.mu.Unlock()
	if !quiet { // else the Sync that follows writes it, with no goroutine woken for nothing
		select {
		case lw.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// writeDirect writes p after Close, once the last batch was written, one
// such Write at a time.
func (lw *Writer) writeDirect(p []byte) (int, error) {
	<-lw.done
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(p)
}

func (lw *Writer) run() {
	defer close(lw.done)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for {
		for lw.writing || len(lw.pending) == 0 && !lw.closed {
			if lw.writing { // a Sync writes; its end wakes us
				lw.cond.Wait()
				continue
			}
			lw.mu.Unlock()
			<-lw.wake
			lw.mu.Lock()
		}
		if len(lw.pending) == 0 { // closed, all written
			lw.cond.Broadcast()
			return
		}
		lw.writeLocked()
	}
}

// writeLocked writes out what is pending, mu held (released while the
// bytes are written).
func (lw *Writer) writeLocked() {
	batch := lw.pending
	lw.pending, lw.spare = lw.spare[:0], nil
	lw.writing = true
	lw.cond.Broadcast()
	lw.mu.Unlock()
	// A write error (a closed pipe, a full disk) is the sink's: the
	// caller of a synchronous writer could not do more than go on either
	// (slog drops it).
	_, _ = lw.w.Write(batch)
	lw.mu.Lock()
	lw.writing = false
	lw.written += int64(len(batch))
	if cap(batch) <= MaxPending {
		lw.spare = batch[:0]
	}
	lw.cond.Broadcast()
}

// Sync returns once everything given before it was written out: it writes
// it itself when no write is under way, else waits for the one under way
// (and writes what came meanwhile, if still needed). Callers syncing at
// once share one write.
func (lw *Writer) Sync() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	target := lw.given
	for lw.written < target {
		if !lw.writing && len(lw.pending) > 0 {
			lw.writeLocked()
			continue
		}
		lw.cond.Wait()
	}
}

// Close writes out everything written before it and ends the goroutine;
// later Writes write at once. It does not close the underlying writer.
func (lw *Writer) Close() error {
	lw.mu.Lock()
	if lw.closed {
		lw.mu.Unlock()
		<-lw.done
		return nil
	}
	lw.closed = true
	lw.cond.Broadcast()
	lw.mu.Unlock()
	select {
	case lw.wake <- struct{}{}:
	default:
	}
	<-lw.done
	return nil
}

// Syncer is a slog.Handler whose records can be waited for: HandleSync is
// Handle, returning once the record was written out.
type Syncer interface {
	HandleSync(context.Context, slog.Record) error
}

// Handler returns h, which writes to lw, as a slog.Handler that is also a
// Syncer (and so are the handlers derived from it).
func Handler(h slog.Handler, lw *Writer) slog.Handler {
	return syncHandler{Handler: h, lw: lw}
}

type syncHandler struct {
	slog.Handler
	lw *Writer
}

func (s syncHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return syncHandler{Handler: s.Handler.WithAttrs(attrs), lw: s.lw}
}

func (s syncHandler) WithGroup(name string) slog.Handler {
	return syncHandler{Handler: s.Handler.WithGroup(name), lw: s.lw}
}

func (s syncHandler) HandleSync(ctx context.Context, r slog.Record) error {
	s.lw.mu.Lock()
	s.lw.quiet++
	s.lw.mu.Unlock()
	err := s.Handler.Handle(ctx, r)
	s.lw.mu.Lock()
	s.lw.quiet--
	s.lw.mu.Unlock()
	s.lw.Sync()
	return err
}

package actors

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/retry"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
)

// sessionEvents is the mcp.EventStore a session actor gives its SDK handler:
// the node's store, seen as this activation. It
//   - appends fenced by the activation's epoch;
//   - journals, when a request's stream opens, the requests it answers, so
//     that the next activation can answer those this one never did;
//   - stores nothing of the handshake replayed on rehydration;
//   - keeps the session's events when the actor only stops (passivation,
//     drain, fencing): SessionClosed deletes them only when the session
//     itself ends, and then its snapshot goes too;
//   - keeps serving when the store is down or slow: a write it refuses
//     waits in a queue, in order, and is retried until it lands, so that the
//     stream's events keep their numbers (see Append for the limits).
type sessionEvents struct {
	store  state.Events
	max    int // bound of the backlog (DefaultEventsBuffer when zero)
	logger *slog.Logger
	epoch  atomic.Int64
	// user is the session's owner's auth.Principal.UserKey ("" without
	// one), by which the store bounds a user's sessions together.
	user atomic.Pointer[string]
	// replaying is set while the handshake is replayed.
	replaying atomic.Bool
	// keep is set when the actor stops but the session goes on.
	keep atomic.Bool
	// ended is called once the session ended (DELETE, or the SDK closed it):
	// it removes the snapshot.
	ended func(context.Context) error
	// fenced is called when an append finds a newer activation.
	fenced func()
	// retryMin, retryMax pace the writer's retries of a failed write
	// (the package's retryMin and retryMax when zero).
	retryMin, retryMax time.Duration

	mu      sync.Mutex
	skipped map[string]bool // streams of the replayed handshake
	backlog []pendingWrite  // writes not stored yet, oldest first
	// writer is set while the writer goroutine runs; cancelling it cuts
	// the writer's wait between retries short (close).
	writer  context.CancelFunc
	failing bool // the store refused a write (its warning is logged once)
	closed  bool // the actor stopped: the writer gives up at its next failure
}

// pendingWrite is an open or an append the store could not take yet.
type pendingWrite struct {
	session, stream string
	open, finish    bool
	ids             []json.RawMessage
	data            []byte
}

var _ mcp.EventStore = (*sessionEvents)(nil)

// flightKey carries a request's *flight in its context, for Open.
type flightKey struct{}

func (e *sessionEvents) Open(ctx context.Context, session, stream string) error {
	if e.replaying.Load() {
		if stream == "" {
			return nil // opened by the activation (see activate)
		}
		e.mu.Lock()
		if e.skipped == nil {
			e.skipped = map[string]bool{}
		}
		e.skipped[stream] = true
		e.mu.Unlock()
		return nil
	}
	f, _ := ctx.Value(flightKey{}).(*flight)
	var ids []json.RawMessage
	if f != nil && stream != "" {
		ids = f.rpc.IDs()
	}
	w := pendingWrite{session: session, stream: stream, open: true, ids: ids}
	if len(ids) > 0 {
		f.setStream(stream)
	}
	// Always tried at once, even while the store is failing: the fencing
	// check and the journal entry must come before the request runs.
	err := e.store.OpenFor(ctx, session, stream, e.owner(), e.epoch.Load(), ids)
	if errors.Is(err, state.ErrFenced) {
		// Refused before anything ran: the request is answered as moved
		// (serveHTTP), and this activation stops.
		if f != nil {
			f.moved.Store(true)
		}
		e.fenced()
		return err
	}
	if err != nil {
		return e.enqueue(w, err)
	}
	return nil
}

// setOwner tells the store, from the next stream on, whose session this
// is: id is its owner (nil without one). Safe on a nil e (a principal actor has none).
func (e *sessionEvents) setOwner(id *auth.Principal) {
	if e == nil {
		return
	}
	user := ""
	if id != nil {
		user = id.UserKey()
	}
	e.user.Store(&user)
}

// owner is the session's owner's user key, "" when unknown.
func (e *sessionEvents) owner() string {
	if u := e.user.Load(); u != nil {
		return *u
	}
	return ""
}

// Append implements mcp.EventStore. The event is stored before the SDK
// delivers it, so that a stream's stored events always cover what its
// client has seen: an answer the next activation adds (the journal's) then
// comes after anything the client saw. While the store is failing, events
// wait in the write queue, in order, behind those already waiting.
func (e *sessionEvents) Append(ctx context.Context, session, stream string, data []byte) error {
	e.mu.Lock()
	skip := e.skipped[stream]
	e.mu.Unlock()
	if skip {
		return nil
	}
	w := pendingWrite{session: session, stream: stream, data: data}
	if waiting, err := e.queued(w); waiting {
		return err
	}
	err := e.store.AppendAt(ctx, session, stream, e.epoch.Load(), data)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, state.ErrFenced):
		e.fenced()
		return err
	case errors.Is(err, state.ErrStreamGone):
		// Expired (an idle stream outlived --events-ttl): the event is
		// delivered live, not kept; retrying cannot help.
		return err
	}
	return e.enqueue(w, err)
}

// queued puts w in the queue if writes are waiting there, so that writes
// land in order once the store is back; it reports whether writes were
// waiting, and the queue's refusal when it is full (w is then not written
// at all: written now, it would land ahead of those waiting).
func (e *sessionEvents) queued(w pendingWrite) (bool, error) {
	e.mu.Lock()
	waiting := len(e.backlog) > 0
	e.mu.Unlock()
	if !waiting {
		return false, nil
	}
	return true, e.enqueue(w, nil)
}

// enqueue adds w to the write queue and makes sure the writer runs; err is
// why it was not written at once, if it was tried. A full queue (the store
// has been away long) refuses: the event is then lost to resumption (the
// client still gets it live).
func (e *sessionEvents) enqueue(w pendingWrite, err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.backlog) >= e.limit() {
		if err == nil {
			err = errors.New("event write queue full: the store has been unreachable too long")
		}
		return err
	}
	if err != nil {
		metrics.StoreErrors.WithLabelValues("event").Inc()
	}
	if err != nil && !e.failing {
		e.failing = true
		e.logger.Warn("event store unreachable; serving from memory and retrying its writes", "err", err)
	}
	e.backlog = append(e.backlog, w)
	if e.writer == nil {
		ctx, cancel := context.WithCancel(context.Background())
		e.writer = cancel
		if e.closed {
			cancel()
		}
		go e.write(ctx)
	}
	return nil
}

// write stores the queue, oldest first, until it is empty, the actor
// stopped, or a newer activation fenced this one; a write that fails is
// retried, paced, and those behind it wait. ctx cancelled (close) ends a
// wait between retries at once.
func (e *sessionEvents) write(ctx context.Context) {
	pace := retry.Backoff{Min: cmp.Or(e.retryMin, retryMin), Max: cmp.Or(e.retryMax, retryMax)}
	for {
		e.mu.Lock()
		if len(e.backlog) == 0 {
			// nil, not an empty slice of the old array: that would keep
			// the last write's data for as long as the session lives.
			e.backlog, e.writer = nil, nil
			if e.failing && len(e.backlog) == 0 {
				e.failing = false
				e.logger.Info("event store reachable again; held events written")
			}
			e.mu.Unlock()
			return
		}
		w := e.backlog[0]
		e.mu.Unlock()
		// A write under way is not cut short by close: it finishes the
		// queue while the store takes it.
		c, cancel := context.WithTimeout(context.Background(), saveTimeout)
		var err error
		switch {
		case w.open:
			err = e.store.OpenFor(c, w.session, w.stream, e.owner(), e.epoch.Load(), w.ids)
		case w.finish:
			err = e.store.FinishRequests(c, w.session, w.stream)
		default:
			err = e.store.AppendAt(c, w.session, w.stream, e.epoch.Load(), w.data)
		}
		cancel()
		switch {
		case err == nil:
			e.mu.Lock()
			e.dropFirst()
			e.mu.Unlock()
			pace.Reset()
		case errors.Is(err, state.ErrFenced):
			e.mu.Lock()
			e.backlog, e.writer = nil, nil
			e.mu.Unlock()
			e.fenced()
			return
		case errors.Is(err, state.ErrStreamGone):
			// Final: the stream expired. Drop this write, go on.
			e.logger.Warn("event for an expired stream dropped", "stream", w.stream)
			e.mu.Lock()
			e.dropFirst()
			e.mu.Unlock()
		default:
			e.mu.Lock()
			if e.closed {
				// The actor is gone and the store is away: what is left
				// cannot be resumed.
				e.logger.Warn("actor stopped with event writes the store never took; those events cannot be resumed", "writes", len(e.backlog))
				e.backlog, e.writer = nil, nil
				e.mu.Unlock()
				return
			}
			if !e.failing {
				e.failing = true
				e.logger.Warn("event store unreachable; serving from memory and retrying its writes", "err", err)
			}
			e.mu.Unlock()
			// Paced retries of an unreachable store. Cut short by close,
			// the next attempt is the last if it fails.
			_ = pace.Wait(ctx)
		}
	}
}

// dropFirst removes the oldest write from the backlog, letting go of it.
// Requires e.mu.
func (e *sessionEvents) dropFirst() {
	if len(e.backlog) > 0 {
		e.backlog[0] = pendingWrite{}
		e.backlog = e.backlog[1:]
	}
}

// clean says no write is waiting for the store.
func (e *sessionEvents) clean() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.backlog) == 0
}

// flush waits, up to ctx, for the backlog to be written.
func (e *sessionEvents) flush(ctx context.Context) error {
	for !e.clean() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retryMin):
		}
	}
	return nil
}

// close tells the writer that the actor is gone: it finishes the queue
// while the store takes it, and gives up at the first failure.
func (e *sessionEvents) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if e.writer != nil {
		e.writer()
	}
}

func (e *sessionEvents) After(ctx context.Context, session, stream string, index int) iter.Seq2[[]byte, error] {
	return e.store.After(ctx, session, stream, index)
}

func (e *sessionEvents) SessionClosed(ctx context.Context, session string) error {
	if e.keep.Load() {
		return nil
	}
	// The snapshot goes first, fenced: a stale activation that is asked to
	// end the session deletes nothing of the current one's.
	if e.ended != nil {
		if err := e.ended(ctx); errors.Is(err, state.ErrFenced) {
			e.fenced()
			return err
		} else if err != nil {
			e.logger.Warn("session ended but its snapshot could not be removed; it expires by itself", "err", err)
		}
	}
	return e.store.SessionClosed(ctx, session)
}

// finish drops f's journal entry once its response is complete: queued
// behind the response's events, so that it never lands before them.
func (e *sessionEvents) finish(session string, f *flight) {
	if stream := f.journalled(); stream != "" {
		e.enqueue(pendingWrite{session: session, stream: stream, finish: true}, nil)
	}
}

// interruptedError is the answer the next activation gives a journalled
// request (an event): rpcerr.Interrupted, retryable,
// since the request may or may not have taken effect.
func interruptedError(id json.RawMessage) []byte {
	return rpcerr.Interruption().Response(id)
}

// answerJournal answers, in their streams, the requests an earlier
// activation journalled and never answered, and clears the journal. It
// returns how many it answered.
func answerJournal(ctx context.Context, store state.Events, session string, epoch int64) (int, error) {
	pending, err := store.PendingRequests(ctx, session)
	if err != nil {
		return 0, err
	}
	n := 0
	for stream, ids := range pending {
		answered := map[string]bool{}
		for data, err := range store.After(ctx, session, stream, -1) {
			if err != nil {
				break
			}
			var m struct {
				ID     any             `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  json.RawMessage `json:"error"`
			}
			if json.Unmarshal(data, &m) == nil && (m.Result != nil || m.Error != nil) {
				if id := canonicalID(m.ID); id != nil {
					answered[string(id)] = true
				}
			}
		}
		for _, id := range ids {
			if answered[string(id)] {
				continue
			}
			if err := store.AppendAt(ctx, session, stream, epoch, interruptedError(id)); err != nil {
				return n, fmt.Errorf("answer interrupted request: %w", err)
			}
			n++
		}
		if err := store.FinishRequests(ctx, session, stream); err != nil {
			return n, err
		}
	}
	return n, nil
}

// canonicalID writes an id the SDK wrote in a response (a string, or an
// integer, decoded as a float64) as the journal holds it (rpcbody's form).
func canonicalID(v any) json.RawMessage {
	switch id := v.(type) {
	case string:
		b, _ := json.Marshal(id)
		return b
	case float64:
		b, _ := json.Marshal(int64(id))
		return b
	}
	return nil
}

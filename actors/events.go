package actors

import (
	"bytes"
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
//     stream's events keep their numbers (see Append for the limits); each
//     event keeps its state.WriteID across tries, so a try of a write the
//     store made but answered with an error (a lost answer, an unconfirmed
//     replication) stores nothing more.
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
	// unended is set when the session's end (a DELETE) could not remove its
	// snapshot: the session stays as stored, and the DELETE is answered 503.
	unended atomic.Bool
	// ended is called once the session ended (DELETE, or the SDK closed it):
	// it removes the snapshot.
	ended func(context.Context) error
	// fenced is called when an append finds a newer activation.
	fenced func()
	// stale is set once a write found a newer activation: no request is
	// dispatched any more (ready).
	stale atomic.Bool
	// retryMin, retryMax pace the writer's retries of a failed write
	// (the package's retryMin and retryMax when zero); markPace paces the
	// standalone stream's marks (markEvery when zero).
	retryMin, retryMax, markPace time.Duration
	// behind writes a request stream's last answer behind its delivery
	// (see Append): set when a write is a round trip (Redis), not for the
	// memory store, whose writes cost nothing to wait for.
	behind bool

	mu      sync.Mutex
	skipped map[string]bool // streams of the replayed handshake
	// requests are the streams opened for requests (POSTs), from their
	// Open until their journal entry goes (finish).
	requests map[string]*requestStream
	backlog  []pendingWrite // writes not stored yet, oldest first
	// landed is closed, and replaced, whenever writes leave the backlog
	// (stored, or given up): waiters (flush, After) look again then.
	landed chan struct{}
	// writer is set while the writer goroutine runs; cancelling it cuts
	// the writer's wait between retries short (close).
	writer  context.CancelFunc
	failing bool // the store refused a write (its warning is logged once)
	closed  bool // the actor stopped: the writer gives up at its next failure

	// sent is one more than the index of the last event of the standalone
	// stream written to a GET of this activation (0: none; noteSent).
	sent atomic.Int64
	// marked is the sent the store last took as the stream's mark, and
	// marking is set while writeMarks runs (it runs once at a time);
	// reopened counts the times sent started again (lastOfStandalone), so
	// that a mark of the stream's earlier incarnation landing meanwhile
	// does not pass for one of the new. Require mu.
	marked   int64
	marking  bool
	reopened int
	// marker is set while writeMarks runs; cancelling it cuts its wait
	// between retries short (close), and its pace (markEvery). hurry, closed
	// by flush, cuts its pace alone.
	marker context.CancelFunc
	hurry  chan struct{}
}

// markEvery paces the standalone stream's marks (writeMarks): the events
// written to GETs meanwhile take the next write together, so that a GET
// carrying frequent notifications (a list_changed every few milliseconds)
// costs the store a few mark writes a second, not one per event. What the
// pace holds back is lost only if the node dies (a drain's flush and the
// actor's stop cut it short): the next activation's GET is then replayed
// the events of the last markEvery.
const markEvery = 250 * time.Millisecond

// pendingWrite is an open, an append, a journal entry's removal, or an
// append with the open before it or the removal after it, that the store
// could not take yet.
type pendingWrite struct {
	session, stream string
	open, finish    bool
	event           bool // data is an event to append
	// delivered is set on an answer written behind its delivery
	// (Append): alone in the queue, it may linger (lingering).
	delivered bool
	ids       []json.RawMessage
	data      []byte
	// write names the event's write, the same on every try: a try after
	// one whose answer was lost (the store made it but said it failed)
	// stores nothing, so that the event is stored once and the stream's
	// next events keep the numbers the SDK gave them.
	write state.WriteID
}

// requestStream is the stream a POST's requests are answered on.
//
// Its open (the fencing check and the journal entry) is stored with its
// first event, the SDK's priming event, which the SDK appends right after
// it, before it dispatches anything; or alone, if no event came first, just
// before the first request is dispatched (ready). Either way it is stored
// before any request runs and before the client sees any event id to resume
// from. The answer to its last request is stored with the removal of the
// journal entry, behind its delivery when the store is remote (Append). A
// tools/call answered with one event thus costs two round trips to Redis
// instead of four (open, priming event, answer, removal), and waits for
// one.
type requestStream struct {
	f *flight
	// mu is held by whoever stores the deferred open, until it is stored:
	// a request dispatched meanwhile waits for it.
	mu      sync.Mutex
	pending bool            // the open is not stored yet
	left    map[string]bool // the requests not answered yet (canonical ids)
	done    bool            // the journal entry went with the last answer
	ids     []json.RawMessage
}

// takeOpen reports whether rs's open is still to be stored; if so, the
// caller stores it and then calls rs.mu.Unlock. Otherwise it returns once
// whoever stores it is done.
func (rs *requestStream) takeOpen() bool {
	rs.mu.Lock()
	if rs.pending {
		rs.pending = false
		return true
	}
	rs.mu.Unlock()
	return false
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
		rs := &requestStream{f: f, ids: ids, left: make(map[string]bool, len(ids))}
		for _, id := range ids {
			rs.left[string(id)] = true
		}
		e.mu.Lock()
		if e.requests == nil {
			e.requests = map[string]*requestStream{}
		}
		e.requests[stream] = rs
		// While writes wait for the store, the open is tried at once, as
		// below (the fencing check cannot wait behind them).
		rs.pending = !e.blockedLocked(stream)
		e.mu.Unlock()
		if rs.pending {
			return nil // stored with the first event, or by ready
		}
	}
	// Always tried at once, even while the store is failing: the fencing
	// check and the journal entry must come before the request runs.
	return e.open(ctx, w, f)
}

// open stores w, an open (with an event if w.event), now: refused by a
// newer activation, it marks f moved (the request is answered as such by
// serveHTTP, and nothing of it runs: ready) and stops this activation; the
// store failing, w waits in the queue.
func (e *sessionEvents) open(ctx context.Context, w pendingWrite, f *flight) error {
	var err error
	if w.event {
		err = e.store.OpenAppend(ctx, w.session, w.stream, e.owner(), e.epoch.Load(), w.ids, w.write, w.data)
	} else {
		err = e.store.OpenFor(ctx, w.session, w.stream, e.owner(), e.epoch.Load(), w.ids)
	}
	if errors.Is(err, state.ErrFenced) {
		e.stale.Store(true)
		if f == nil {
			e.fenced()
			return err
		}
		// The activation stops once this request is answered (serveFrom):
		// stopped now, it would cut the request, whose answer the SDK
		// still has to give (it dispatches a request whose priming event
		// failed; ready refuses it).
		f.moved.Store(true)
		return err
	}
	if err != nil {
		return e.enqueue(w, err)
	}
	return nil
}

// ready stores, before one of f's requests is dispatched, the open of its
// stream if no event took it along yet; it fails if a newer activation owns
// the session (nothing of the request may run then).
func (e *sessionEvents) ready(ctx context.Context, session string, f *flight) error {
	if f == nil {
		// Not a request being served (its response already ended).
		if e.stale.Load() {
			return rpcerr.Replaced().SDK()
		}
		return nil
	}
	if stream := f.journalled(); stream != "" {
		e.mu.Lock()
		rs := e.requests[stream]
		e.mu.Unlock()
		if rs != nil && rs.takeOpen() {
			err := e.open(ctx, pendingWrite{session: session, stream: stream, open: true, ids: rs.ids}, f)
			rs.mu.Unlock()
			if err != nil && !errors.Is(err, state.ErrFenced) {
				return err
			}
		}
	}
	if f.moved.Load() || e.stale.Load() {
		return rpcerr.Replaced().SDK()
	}
	return nil
}

// fence tells the actor a newer activation exists (it stops), and refuses
// every request from now on (ready).
func (e *sessionEvents) fence() {
	e.stale.Store(true)
	e.fenced()
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

// Append implements mcp.EventStore. An event is stored before the SDK
// delivers it, so that a stream's stored events always cover what its
// client has seen: an answer the next activation adds (the journal's) then
// comes after anything the client saw, and a client resuming from any id
// it saw finds the rest.
//
// The answer to a request stream's last request is the exception when the
// store is remote (behind): it is written, with the journal entry's
// removal, behind its delivery, so that a request waits for one round trip
// (its stream's open) instead of two. Nothing a client can resume from is
// lost by it: a client resumes a request's stream only from an event before
// the answer (the answer ends the stream), and every such event was stored
// before it was delivered. Should the node die before the answer is
// stored, the next activation answers the request from the journal, with
// the id the lost answer had: a client that saw the answer is done with the
// stream, and one that did not gets the journal's. Until it is stored, a
// resumption of the stream on this activation waits for it (After).
//
// While the store is failing, events wait in the write queue, in order,
// behind those already waiting.
func (e *sessionEvents) Append(ctx context.Context, session, stream string, data []byte) error {
	e.mu.Lock()
	skip := e.skipped[stream]
	rs := e.requests[stream]
	e.mu.Unlock()
	if skip {
		return nil
	}
	w := pendingWrite{session: session, stream: stream, event: true, data: data, write: state.NewWriteID()}
	if rs != nil {
		if rs.f.moved.Load() {
			return state.ErrFenced // refused: nothing more is stored
		}
		if rs.takeOpen() {
			// The first event of a request stream (the priming event):
			// stored with the stream's open, in one round trip.
			w.open, w.ids = true, rs.ids
			err := e.open(ctx, w, rs.f)
			rs.mu.Unlock()
			return err
		}
		w.finish = rs.answers(data)
		if w.finish {
			rs.f.answered.Store(true)
		}
		if w.finish && e.behind {
			w.delivered = true
			return e.enqueue(w, nil)
		}
	}
	if waiting, err := e.queued(w); waiting {
		return err
	}
	var err error
	if w.finish {
		err = e.store.AppendFinish(ctx, session, stream, e.epoch.Load(), w.write, data)
	} else {
		err = e.store.AppendAt(ctx, session, stream, e.epoch.Load(), w.write, data)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, state.ErrFenced):
		e.fence()
		return err
	case errors.Is(err, state.ErrStreamGone):
		// Expired (an idle stream outlived --events-ttl): the event is
		// delivered live, not kept; retrying cannot help. The journal
		// entry it was to take along still goes.
		if w.finish {
			e.enqueue(pendingWrite{session: session, stream: stream, finish: true}, nil)
		}
		return err
	}
	return e.enqueue(w, err)
}

// answers says whether data answers the last of rs's requests not answered
// yet: its journal entry can then go with it. Appends to one stream come
// one at a time (the SDK holds the stream's lock).
func (rs *requestStream) answers(data []byte) bool {
	id := answerID(data)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if id == nil || !rs.left[string(id)] {
		return false
	}
	delete(rs.left, string(id))
	if len(rs.left) > 0 {
		return false
	}
	rs.done = true
	return true
}

// blockedLocked says whether a write to stream must wait in the queue:
// the store is failing, or a write waits that must land before it. The
// last write of another stream need not, a journal entry's removal or the
// answer that takes it along (Append): it follows its own stream's events,
// not the others'; were it to hold up the next request's events, they
// would be stored after the SDK delivered them. Requires e.mu.
func (e *sessionEvents) blockedLocked(stream string) bool {
	if e.failing {
		return true
	}
	for _, q := range e.backlog {
		if !q.finish || q.stream == stream {
			return true
		}
	}
	return false
}

// waitingLocked says whether a write of stream is in the queue. Requires
// e.mu.
func (e *sessionEvents) waitingLocked(stream string) bool {
	for _, q := range e.backlog {
		if q.stream == stream {
			return true
		}
	}
	return false
}

// await waits, up to ctx, until done (called with e.mu held) says yes,
// looking again each time writes leave the queue.
func (e *sessionEvents) await(ctx context.Context, done func() bool) error {
	for {
		e.mu.Lock()
		if done() {
			e.mu.Unlock()
			return nil
		}
		if e.landed == nil {
			e.landed = make(chan struct{})
		}
		landed := e.landed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-landed:
		}
	}
}

// landedLocked wakes those waiting for writes to leave the queue.
// Requires e.mu.
func (e *sessionEvents) landedLocked() {
	if e.landed != nil {
		close(e.landed)
		e.landed = nil
	}
}

// queued puts w in the queue if writes are waiting there, so that writes
// land in order once the store is back; it reports whether writes were
// waiting, and the queue's refusal when it is full (w is then not written
// at all: written now, it would land ahead of those waiting).
func (e *sessionEvents) queued(w pendingWrite) (bool, error) {
	e.mu.Lock()
	waiting := e.blockedLocked(w.stream)
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

// behindAnswers is the context of the queue's writes: no request waits for
// them (state.Behind). lingering is that of a delivered answer's write
// when nothing else waits in the queue: it may wait for the next request's
// open to go with (state.Linger), so that tools called in a row cost one
// round trip each; a queue being caught up goes without waiting.
var (
	behindAnswers = state.Behind(context.Background())
	lingering     = state.Linger(context.Background())
)

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
		base := behindAnswers
		if w.delivered && len(e.backlog) == 1 && !e.failing {
			base = lingering
		}
		e.mu.Unlock()
		// A write under way is not cut short by close: it finishes the
		// queue while the store takes it.
		c, cancel := context.WithTimeout(base, saveTimeout)
		var err error
		switch {
		case w.open && w.event:
			err = e.store.OpenAppend(c, w.session, w.stream, e.owner(), e.epoch.Load(), w.ids, w.write, w.data)
		case w.open:
			err = e.store.OpenFor(c, w.session, w.stream, e.owner(), e.epoch.Load(), w.ids)
		case w.event && w.finish:
			err = e.store.AppendFinish(c, w.session, w.stream, e.epoch.Load(), w.write, w.data)
		case w.event:
			err = e.store.AppendAt(c, w.session, w.stream, e.epoch.Load(), w.write, w.data)
		default:
			err = e.store.FinishRequests(c, w.session, w.stream, e.epoch.Load())
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
			e.landedLocked()
			e.mu.Unlock()
			e.fence()
			return
		case errors.Is(err, state.ErrStreamGone):
			// Final: the stream expired. Drop this write, go on.
			e.logger.Warn("event for an expired stream dropped", "stream", w.stream)
			e.mu.Lock()
			if len(e.backlog) > 0 && w.event && w.finish {
				// The journal entry it was to take along still goes.
				e.backlog[0] = pendingWrite{session: w.session, stream: w.stream, finish: true}
			} else {
				e.dropFirst()
			}
			e.mu.Unlock()
		default:
			e.mu.Lock()
			if e.closed {
				// The actor is gone and the store is away: what is left
				// cannot be resumed.
				e.logger.Warn("actor stopped with event writes the store never took; those events cannot be resumed", "writes", len(e.backlog))
				e.backlog, e.writer = nil, nil
				e.landedLocked()
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
		e.landedLocked()
	}
}

// clean says no write is waiting for the store.
// isFailing says whether the store refuses the session's events.
func (e *sessionEvents) isFailing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failing
}

// clean says whether everything is written: the events, and the
// standalone stream's mark (an idle actor stays for it: passivated, the
// next activation's GET would be replayed what it marks).
func (e *sessionEvents) clean() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.backlog) == 0 && !e.marking
}

// flush waits, up to ctx, for the backlog to be written, and the
// standalone stream's mark (writeMarks).
func (e *sessionEvents) flush(ctx context.Context) error {
	e.mu.Lock()
	if e.hurry != nil {
		close(e.hurry)
		e.hurry = nil
	}
	e.mu.Unlock()
	return e.await(ctx, func() bool { return len(e.backlog) == 0 && !e.marking })
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
	if e.marker != nil {
		e.marker()
	}
}

// After implements mcp.EventStore. A resumption first waits for the
// stream's writes still in the queue (an answer written behind its
// delivery, or events held while the store was failing), up to
// saveTimeout, so that it replays what the client may have missed of them;
// still waiting then (the store is away), it fails as the store would.
func (e *sessionEvents) After(ctx context.Context, session, stream string, index int) iter.Seq2[[]byte, error] {
	wait, cancel := context.WithTimeout(ctx, saveTimeout)
	err := e.await(wait, func() bool { return !e.waitingLocked(stream) })
	cancel()
	if err != nil {
		return func(yield func([]byte, error) bool) {
			yield(nil, fmt.Errorf("replay events of stream %q: its writes are not stored yet: %w", stream, err))
		}
	}
	return func(yield func([]byte, error) bool) {
		for data, err := range e.store.After(ctx, session, stream, index) {
			if errors.Is(err, state.ErrTooLarge) {
				// The SDK answers it as events it cannot replay (400),
				// and says nothing of why.
				e.logger.Error("events not replayed: the store holds more than pingmcp keeps", "err", err)
			}
			if !yield(data, err) {
				return
			}
		}
	}
}

// lastOfStandalone opens session's standalone stream in the store (again,
// if it expired), once what is queued for it is written, and returns the
// indexes of its first kept and last events (state.Events.OpenLast), and of
// the last event a GET was written (-1: none), of this activation (sent)
// or of any, as the store's mark says (writeMarks): one round trip, the
// mark read with the open.
func (e *sessionEvents) lastOfStandalone(ctx context.Context, session string) (first, last, sent int, err error) {
	wait, cancel := context.WithTimeout(ctx, saveTimeout)
	err = e.await(wait, func() bool { return !e.waitingLocked("") })
	cancel()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("standalone stream: its writes are not stored yet: %w", err)
	}
	c, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	first, last, marked, err := e.store.OpenLast(c, session, "", e.epoch.Load())
	if err != nil {
		return 0, 0, 0, err
	}
	if s := e.sent.Load(); s-1 > int64(last) && e.sent.CompareAndSwap(s, 0) {
		// The stream was opened anew (it expired): its numbers start
		// again, and what this activation sent counts no more; nor does
		// the store's mark, which started again with it.
		e.mu.Lock()
		e.marked = 0
		e.reopened++
		e.mu.Unlock()
	}
	return first, last, max(int(e.sent.Load())-1, marked), nil
}

// noteSent notes that the standalone stream's event index was written to a
// GET: here (sent), and in the store as the stream's mark, behind the GET
// (writeMarks), so that no GET without Last-Event-ID is replayed it, on
// this activation or a later one, on any node (lastOfStandalone). It is
// called on the GET's writes, and never waits for the store: a request's
// path takes no round trip more for it.
//
// Written is not received: an event written to a GET whose client went
// away before it arrived (the GET cut mid-write, or its part lost with the
// edge) is marked all the same, and a GET without Last-Event-ID does not
// replay it. A client that lost its stream resumes with Last-Event-ID,
// which replays from the id it names whatever the mark; one that opens a
// fresh GET instead misses it, as it would on a single activation.
func (e *sessionEvents) noteSent(session string, index int) {
	for {
		s := e.sent.Load()
		if int64(index)+1 <= s {
			return
		}
		if e.sent.CompareAndSwap(s, int64(index)+1) {
			break
		}
	}
	e.mu.Lock()
	start := !e.marking
	var ctx context.Context
	var hurry chan struct{}
	if start {
		e.marking = true
		ctx, e.marker = context.WithCancel(context.Background())
		if e.closed {
			e.marker()
		}
		hurry = make(chan struct{})
		e.hurry = hurry
	}
	e.mu.Unlock()
	if start {
		go e.writeMarks(ctx, session, hurry)
	}
}

// writeMarks stores sent as the standalone stream's mark until the store
// holds the latest (events written to GETs at once, or within markEvery of
// the last write, take one write between them; hurry closed, or ctx
// cancelled, ends that wait), fenced by the activation's epoch: a stale
// activation moves no mark (fenced, it stops). It goes behind answers
// (state.Behind): no request waits for it, and it takes a Redis pipeline
// only when none is in flight, going with the next batch otherwise. It waits first for the
// stream's writes in the queue, so that the events it marks are stored (a
// mark past the stream's last event marks nothing). A mark the store
// refuses is retried, paced; once the actor stopped, not: ctx cancelled
// (close) cuts the wait between retries short, and a failure then ends it.
// Not written, the mark is this activation's alone: a GET without
// Last-Event-ID of the next activation is replayed what it names.
func (e *sessionEvents) writeMarks(ctx context.Context, session string, hurry chan struct{}) {
	pace := retry.Backoff{Min: cmp.Or(e.retryMin, retryMin), Max: cmp.Or(e.retryMax, retryMax)}
	done := func() {
		e.marker()
		e.marking, e.marker, e.hurry = false, nil, nil
		e.landedLocked()
		e.mu.Unlock()
	}
	for {
		e.mu.Lock()
		want, reopened := e.sent.Load(), e.reopened
		if want == e.marked || e.stale.Load() {
			done()
			return
		}
		e.mu.Unlock()
		err := e.storeMark(session, int(want)-1)
		switch {
		case err == nil:
			pace.Reset()
			e.mu.Lock()
			if e.reopened == reopened {
				e.marked = want
			}
			e.mu.Unlock()
			every := time.NewTimer(cmp.Or(e.markPace, markEvery))
			select {
			case <-every.C:
			case <-hurry:
			case <-ctx.Done():
			}
			every.Stop()
		case errors.Is(err, state.ErrFenced):
			e.fence()
		default:
			e.logger.Debug("standalone stream's mark not stored yet", "err", err)
			e.mu.Lock()
			if e.closed {
				// The actor is gone and the store is away.
				done()
				return
			}
			e.mu.Unlock()
			// Cut short by close, the next try is the last if it fails.
			_ = pace.Wait(ctx)
		}
	}
}

// storeMark marks the standalone stream's events up to index sent, once
// its writes in the queue are stored.
func (e *sessionEvents) storeMark(session string, index int) error {
	wait, cancel := context.WithTimeout(context.Background(), saveTimeout)
	err := e.await(wait, func() bool { return !e.waitingLocked("") })
	cancel()
	if err != nil {
		return fmt.Errorf("standalone stream: its writes are not stored yet: %w", err)
	}
	c, cancel := context.WithTimeout(behindAnswers, saveTimeout)
	defer cancel()
	return e.store.MarkSent(c, session, "", e.epoch.Load(), index)
}

func (e *sessionEvents) SessionClosed(ctx context.Context, session string) error {
	if e.keep.Load() {
		return nil
	}
	// The go-sdk gives no deadline (context.TODO), and may call this on the
	// actor's goroutine (a refused handshake's close, settled): bounded.
	ctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	// The snapshot goes first, fenced: a stale activation that is asked to
	// end the session deletes nothing of the current one's.
	if e.ended != nil {
		if err := e.ended(ctx); errors.Is(err, state.ErrFenced) {
			e.fence()
			return err
		} else if err != nil {
			// The session goes on as stored, its events with it: its
			// client is told (503), and may send the DELETE again to the
			// activation the next request starts from the snapshot.
			e.unended.Store(true)
			e.logger.Warn("session not ended: its snapshot could not be removed; it stays as stored", "err", err)
			return err
		}
	}
	return e.store.SessionClosed(ctx, session)
}

// finish forgets f's stream once its request ended; if answered (the
// handler was not cut: a cut request stays journalled for the next
// activation), it drops the stream's journal entry: queued behind the
// response's events, so that it never lands before them. Not needed when
// the entry went with the last answer (Append), nor when the stream's open
// was never stored (no request of it was dispatched).
func (e *sessionEvents) finish(session string, f *flight, answered bool) {
	stream := f.journalled()
	if stream == "" {
		return
	}
	e.mu.Lock()
	rs := e.requests[stream]
	delete(e.requests, stream)
	e.mu.Unlock()
	if !answered {
		return
	}
	if rs != nil {
		rs.mu.Lock()
		skip := rs.done || rs.pending
		rs.mu.Unlock()
		if skip {
			return
		}
	}
	e.enqueue(pendingWrite{session: session, stream: stream, finish: true}, nil)
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
			if id := answerID(data); id != nil {
				answered[string(id)] = true
			}
		}
		for _, id := range ids {
			if answered[string(id)] {
				continue
			}
			err := store.AppendAt(ctx, session, stream, epoch, "", interruptedError(id))
			if errors.Is(err, state.ErrStreamGone) {
				// Its stream expired (the request outlived
				// --events-ttl) or was written in a layout this
				// store no longer reads (an upgrade): no client can
				// resume it, and answering it is impossible; its entry
				// goes, or every activation would try again.
				break
			}
			if err != nil {
				return n, fmt.Errorf("answer interrupted request: %w", err)
			}
			n++
		}
		if err := store.FinishRequests(ctx, session, stream, epoch); err != nil {
			return n, err
		}
	}
	return n, nil
}

// canonicalID writes an id the SDK wrote in a response (a string, or an
// integer, decoded as a float64) as the journal holds it (rpcbody's form).
// answerID is the id of the JSON-RPC response data holds, as canonicalID;
// nil when data is not one (a request, a notification, not an object). It
// reads the members in order and stops at the result or the error once it
// has the id, which the go-sdk writes before them: a tool's result of any
// size costs nothing more to recognise. The go-sdk's own layout
// (`{"jsonrpc":"2.0","id":ID,"result":` or `"error":`) is read without a
// decoder.
func answerID(data []byte) json.RawMessage {
	if rest, ok := bytes.CutPrefix(data, sdkMessageStart); ok {
		if n := idEnd(rest); n > 0 {
			switch after := rest[n:]; {
			case bytes.HasPrefix(after, []byte(`,"result":`)), bytes.HasPrefix(after, []byte(`,"error":`)):
				var id any
				if json.Unmarshal(rest[:n], &id) != nil {
					return nil
				}
				return canonicalID(id)
			case bytes.HasPrefix(after, []byte(`,"method":`)):
				return nil // a request of the server's
			}
		}
	}
	return decodeAnswerID(data)
}

// eventIsResult says whether the SSE event p, an answer (eventAnswerID),
// answers with a result rather than an error.
func eventIsResult(p []byte) bool {
	_, data, _ := bytes.Cut(p, []byte("\ndata: "))
	data, _, _ = bytes.Cut(data, []byte("\n"))
	if rest, ok := bytes.CutPrefix(data, sdkMessageStart); ok {
		if n := idEnd(rest); n > 0 {
			return bytes.HasPrefix(rest[n:], []byte(`,"result":`))
		}
	}
	var m struct {
		Result json.RawMessage `json:"result"`
	}
	return json.Unmarshal(data, &m) == nil && m.Result != nil
}

// sdkMessageStart is how the go-sdk begins a message with an id.
var sdkMessageStart = []byte(`{"jsonrpc":"2.0","id":`)

// idEnd is the length of the string or number data begins with, 0 for
// anything else.
func idEnd(data []byte) int {
	if len(data) == 0 {
		return 0
	}
	if data[0] == '"' {
		for i := 1; i < len(data); i++ {
			switch data[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return 0
	}
	i := 0
	for i < len(data) && bytes.IndexByte([]byte("-+.eE0123456789"), data[i]) >= 0 {
		i++
	}
	return i
}

// decodeAnswerID is answerID for any layout.
func decodeAnswerID(data []byte) json.RawMessage {
	if !bytes.HasPrefix(data, []byte("{")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // {
		return nil
	}
	var id any
	answer := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil
		}
		switch key {
		case "id":
			if dec.Decode(&id) != nil {
				return nil
			}
			if answer {
				return canonicalID(id)
			}
			continue
		case "result", "error":
			if id != nil {
				return canonicalID(id)
			}
			answer = true
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil
		}
	}
	return nil
}

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

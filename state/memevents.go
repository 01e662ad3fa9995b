package state

import (
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/metrics"
)

// Events is what a session actor needs of an event store: the go-sdk's
// EventStore, appends fenced by activation epoch, and a journal of the
// requests each stream was opened to answer, so that the next activation can
// answer those its predecessor never did.
type Events interface {
	mcp.EventStore
	// OpenFor opens stream as activation epoch (0: unfenced), journalling
	// ids as the requests it answers; ErrFenced if a newer activation exists.
	// user is the session's owner (auth.Principal.UserKey; "" when unknown
	// or without authentication), whom a store shared by all sessions
	// (MemoryEvents) bounds as a whole.
	OpenFor(ctx context.Context, session, stream, user string, epoch int64, ids []json.RawMessage) error
	// AppendAt appends as activation epoch (0: unfenced), failing with
	// ErrFenced when a newer activation exists. write names this write
	// (NewWriteID), the same on every try of it: a try of a write that
	// was already stored (its answer was lost to a network error, or its
	// replication not confirmed) stores nothing and succeeds, so that a
	// retried event is stored once and the events after it keep their
	// numbers. Retries of one stream's write must come before its next
	// write. "" names a write of its own, for a caller that never retries.
	AppendAt(ctx context.Context, session, stream string, epoch int64, write WriteID, data []byte) error
	// FinishRequests drops stream's journal entry as activation epoch (0:
	// unfenced): ErrFenced, and nothing dropped, when a newer activation
	// exists.
	FinishRequests(ctx context.Context, session, stream string, epoch int64) error
	// OpenAppend is OpenFor then AppendAt of data as the stream's first
	// event, at once (Redis: one round trip, one script): the SDK's priming
	// event travels with the fencing check and the journal entry.
	OpenAppend(ctx context.Context, session, stream, user string, epoch int64, ids []json.RawMessage, write WriteID, data []byte) error
	// AppendFinish is AppendAt then FinishRequests, at once (Redis: one
	// round trip, one script): data answers the stream's last journalled
	// request, and the journal entry goes only once the answer is stored.
	AppendFinish(ctx context.Context, session, stream string, epoch int64, write WriteID, data []byte) error
	// OpenLast is OpenFor without a journal entry, returning the indexes
	// of the stream's first kept event (last+1 when none is kept), of its
	// last event (-1 for none: opened anew, or only now, or none appended
	// yet), whatever of it was dropped since, and of its last event marked
	// sent (MarkSent; -1 for none, and never past last).
	OpenLast(ctx context.Context, session, stream string, epoch int64) (first, last, sent int, err error)
	// MarkSent raises stream's mark to index as activation epoch (0:
	// unfenced; ErrFenced, and nothing marked, when a newer activation
	// exists): the stream's events up to index were written to a client,
	// whatever activation reads the mark next (OpenLast). The mark is never
	// lowered. It lives as the stream's record does, and starts again when
	// the stream is opened anew after it expired (its numbers start again):
	// an index past the stream's last event (one of an earlier
	// incarnation's) marks nothing, nor does a stream unknown or expired.
	MarkSent(ctx context.Context, session, stream string, epoch int64, index int) error
	// PendingRequests lists the journal: stream → request ids. One larger
	// than a store reads (RedisEvents: EventOptions.JournalEntries)
	// is a *TooLarge, and stays until it expires.
	PendingRequests(ctx context.Context, session string) (map[string][]json.RawMessage, error)
	// Remote says whether a write waits for another process (a network
	// round trip), so that a caller may let it go behind other work:
	// RedisEvents true, MemoryEvents (a write costs nothing to wait for)
	// false.
	Remote() bool
}

var (
	_ Events = (*RedisEvents)(nil)
	_ Events = (*MemoryEvents)(nil)
)

// MemoryEvents keeps events in this process, for a single node without
// Redis, with the bounds RedisEvents has: MaxLen events per stream, MaxBytes
// per session, streams included (its oldest events go first, whichever
// stream they are in; a stream goes once its events went and its requests
// were answered), streams forgotten TTL after their last event. All sessions
// together keep at most MaxTotalBytes; beyond, the user keeping the most
// gives way (the oldest events of that user's largest session), never the
// others: one user's large results, in however many sessions, cannot push
// other users' resumable events out. Sessions opened without a user
// (OpenFor's user "") count as one user. Appends are fenced by Snapshots'
// epochs when it is set.
type MemoryEvents struct {
	Snapshots *MemorySnapshots
	// Now is the clock of stream expiry (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	opts     EventOptions
	sessions map[string]*memSession
	users    map[string]*memUser
	byUser   largest[*memUser]                       // the user keeping the most first
	total    int64                                   // bytes of all sessions
	round    int                                     // of making room: a stream moved to the newest place in it is not looked at again
	sweepAt  time.Time                               // when expired streams are next looked for
	journal  map[string]map[string][]json.RawMessage // session → stream → ids
}

// memUser is the sessions of one user, the largest on top.
type memUser struct {
	key      string
	sessions largest[*memSession]
	bytes    int64 // of its sessions
	index    int   // in MemoryEvents.byUser
}

// memSession is one session's streams, and what it keeps (its events and
// its streams' own places) oldest first.
//
// The store holds no object per event, for the garbage collector's sake: a
// full store keeps hundreds of thousands of events, and every collection
// of the node would trace an object or two for each (a single node at 32
// clients spent about an eighth of its CPU on it). A stream's events are
// bytes in one slice and their ends in another, neither holding pointers,
// and a session's order is one slice of places. A place dropped is left
// dead where it is (see live) until it reaches the front or the order is
// compacted, which keeps dropping an event O(1).
type memSession struct {
	id      string
	user    *memUser
	streams map[string]*memStream
	order   []place // oldest first; order[:head] is let go
	head    int
	dead    int   // dead places in order[head:]
	bytes   int64 // sizes of what is live in order
	index   int   // in user.sessions
}

// place is a kept event of stream (seq ≥ 0, its SDK index in the stream)
// or the stream's own place (seq -1), which counts StreamOverhead, in its
// session's order.
type place struct {
	stream *memStream
	seq    int
	moved  int // own places: the round of making room that moved it last
}

// memStream is one stream: its kept events from index first on, back to
// back in data[base:], each its length (a uvarint) then its bytes. Kept
// bytes are never written over (a replay hands out slices of data): appends
// go past them, and compacting or emptying data allocates anew.
type memStream struct {
	name  string
	first int // SDK index of the first kept event; events before it were dropped
	kept  int // events in data[base:]
	data  []byte
	base  int
	last  time.Time // of the last open or append
	sent  int       // one more than the index of the last event marked sent (MarkSent)
	self  int       // index of its own place in its session's order
	gone  bool      // dropped: its places are dead
}

// at returns the kept event that starts at data[i], capped so that nothing
// appended to it can reach the next, and where the next starts. A replay
// holding the event holds the whole array until it lets go (replays are
// short-lived: the SDK writes them out).
func (st *memStream) at(i int) (event []byte, next int) {
	n, k := binary.Uvarint(st.data[i:])
	start, end := i+k, i+k+int(n)
	return st.data[start:end:end], end
}

// eventSize is what the event at index of its stream counts against the
// bounds: its data and EventOverhead, as in Redis; a stream counts
// StreamOverhead. A stream's first event, when empty (the SDK's priming
// event), counts nothing, as in Redis, which keeps it in the stream's
// record.
func eventSize(index int, data []byte) int64 {
	if index == 0 && len(data) == 0 {
		return 0
	}
	return int64(len(data)) + EventOverhead
}

// live says whether the place at i in s's order is still kept.
func (s *memSession) live(i int) bool {
	p := s.order[i]
	switch {
	case p.stream.gone:
		return false
	case p.seq < 0:
		return p.stream.self == i
	default:
		return p.seq >= p.stream.first && p.seq < p.stream.first+p.stream.kept
	}
}

// front returns the index of the oldest live place, letting go of the dead
// ones before it; false if none is left.
func (s *memSession) front() (int, bool) {
	for s.head < len(s.order) {
		if s.live(s.head) {
			return s.head, true
		}
		s.order[s.head] = place{}
		s.head++
		s.dead--
	}
	return 0, false
}

// push appends p to s's order and returns its index, first compacting the
// order if most of it is dead.
func (s *memSession) push(p place) int {
	if n := len(s.order); n >= 32 && s.head+s.dead > n/2 {
		// In place (nothing outside holds the order), into a smaller
		// array only when most of this one would stay unused.
		out := s.order[:0]
		if live := n - s.head - s.dead; cap(s.order) > 4*live+64 {
			out = make([]place, 0, 2*live+32)
		}
		for i := s.head; i < n; i++ {
			if s.live(i) {
				if s.order[i].seq < 0 {
					s.order[i].stream.self = len(out)
				}
				out = append(out, s.order[i])
			}
		}
		clear(s.order[len(out):n]) // let go of the streams the dead places held
		s.order, s.head, s.dead = out, 0, 0
	}
	s.order = append(s.order, p)
	return len(s.order) - 1
}

// pushOwn puts st's own place at the newest end of s's order.
func (s *memSession) pushOwn(st *memStream, moved int) {
	st.self = s.push(place{stream: st, seq: -1, moved: moved})
}

func (s *memSession) weight() int64 { return s.bytes }
func (s *memSession) place(i int)   { s.index = i }
func (u *memUser) weight() int64    { return u.bytes }
func (u *memUser) place(i int)      { u.index = i }

// NewMemoryEvents returns an empty store fenced by snapshots (may be nil),
// with the default bounds (see SetOptions).
func NewMemoryEvents(snapshots *MemorySnapshots) *MemoryEvents {
	return &MemoryEvents{Snapshots: snapshots, opts: EventOptions{}.withDefaults(), sessions: map[string]*memSession{},
		users: map[string]*memUser{}, journal: map[string]map[string][]json.RawMessage{}}
}

// Remote implements Events: MemoryEvents keeps its events in this process.
func (*MemoryEvents) Remote() bool { return false }

// SetOptions changes the bounds (zero fields: the defaults); they apply
// from the next append on.
func (m *MemoryEvents) SetOptions(opts EventOptions) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts = opts.withDefaults()
}

func (m *MemoryEvents) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// fenced says a newer activation of session than epoch (0: unfenced)
// exists, when Snapshots is set.
func (m *MemoryEvents) fenced(session string, epoch int64) bool {
	return epoch != 0 && m.Snapshots != nil && m.Snapshots.epoch(session) != epoch
}

// Open implements mcp.EventStore.
func (m *MemoryEvents) Open(ctx context.Context, session, stream string) error {
	return m.OpenFor(ctx, session, stream, "", 0, nil)
}

func (m *MemoryEvents) OpenFor(_ context.Context, session, stream, user string, epoch int64, ids []json.RawMessage) error {
	_, _, _, err := m.open(session, stream, user, epoch, ids)
	return err
}

// OpenLast implements Events.
func (m *MemoryEvents) OpenLast(_ context.Context, session, stream string, epoch int64) (first, last, sent int, err error) {
	return m.open(session, stream, "", epoch, nil)
}

// MarkSent implements Events. A stream opened anew after it expired is a
// new memStream, whose mark starts again.
func (m *MemoryEvents) MarkSent(_ context.Context, session, stream string, epoch int64, index int) error {
	if m.fenced(session, epoch) {
		return fmt.Errorf("mark events sent: %w", ErrFenced)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[session]
	if s == nil {
		return nil
	}
	if st := s.streams[stream]; st != nil && index < st.first+st.kept && index >= st.sent {
		st.sent = index + 1
	}
	return nil
}

// open is OpenFor, returning the indexes of the stream's first kept and
// last events, and of its last event marked sent.
func (m *MemoryEvents) open(session, stream, user string, epoch int64, ids []json.RawMessage) (first, last, sent int, err error) {
	if m.fenced(session, epoch) {
		return 0, 0, 0, fmt.Errorf("open event stream: %w", ErrFenced)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	s := m.sessions[session]
	if s == nil {
		s = &memSession{id: session, streams: map[string]*memStream{}}
		m.sessions[session] = s
		m.join(s, user)
	} else if user != "" && s.user.key != user {
		// Opened first without its owner (an activation's standalone
		// stream): it joins its owner's.
		m.leave(s)
		m.join(s, user)
	}
	if len(ids) > 0 {
		if m.journal[session] == nil {
			m.journal[session] = map[string][]json.RawMessage{}
		}
		m.journal[session][stream] = ids
	}
	st := s.streams[stream]
	if st == nil {
		st = &memStream{name: stream, self: -1}
		s.streams[stream] = st
		m.room(s, st, StreamOverhead)
		s.pushOwn(st, 0)
		m.grow(s, StreamOverhead)
		m.fitTotal(s, place{stream: st, seq: -1})
	}
	st.last = now
	return st.first, st.first + st.kept - 1, st.sent - 1, nil
}

// join counts s, without bytes yet, as user's. Requires m.mu.
func (m *MemoryEvents) join(s *memSession, user string) {
	u := m.users[user]
	if u == nil {
		u = &memUser{key: user}
		m.users[user] = u
		heap.Push(&m.byUser, u)
	}
	s.user = u
	heap.Push(&u.sessions, s)
	u.bytes += s.bytes
	heap.Fix(&m.byUser, u.index)
}

// leave stops counting s as its user's. Requires m.mu.
func (m *MemoryEvents) leave(s *memSession) {
	u := s.user
	heap.Remove(&u.sessions, s.index)
	u.bytes -= s.bytes
	if len(u.sessions) == 0 {
		heap.Remove(&m.byUser, u.index)
		delete(m.users, u.key)
	} else {
		heap.Fix(&m.byUser, u.index)
	}
}

// Append implements mcp.EventStore.
func (m *MemoryEvents) Append(ctx context.Context, session, stream string, data []byte) error {
	return m.AppendAt(ctx, session, stream, 0, "", data)
}

// AppendAt implements Events. A write to memory is never tried twice: write
// is not needed.
func (m *MemoryEvents) AppendAt(_ context.Context, session, stream string, epoch int64, _ WriteID, data []byte) error {
	if m.fenced(session, epoch) {
		return fmt.Errorf("append event: %w", ErrFenced)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	s := m.sessions[session]
	var st *memStream
	if s != nil {
		st = s.streams[stream]
	}
	if st == nil {
		return fmt.Errorf("append event to stream %q: %w", stream, ErrStreamGone)
	}
	st.last = now
	size := eventSize(st.first+st.kept, data)
	if size > m.opts.MaxBytes {
		// Kept, it would take the whole budget and more: it goes live
		// only, and so does what came before it in its stream, so that a
		// replay never skips it.
		n, b := int64(1), size
		for st.kept > 0 {
			n, b = n+1, b+m.drop(s, st)
		}
		st.first++
		trimmed("bytes", n, b)
		return nil
	}
	m.room(s, st, size)
	e := place{stream: st, seq: st.first + st.kept}
	var length [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(length[:], uint64(len(data)))
	if st.base > 0 && len(st.data)+k+len(data) > cap(st.data) {
		// Growing past dropped events: what is kept moves to an array of
		// its own without them, a quarter larger than it needs.
		kept := len(st.data) - st.base
		grown := make([]byte, kept, (kept+k+len(data))*5/4)
		copy(grown, st.data[st.base:])
		st.data, st.base = grown, 0
	}
	st.data = append(append(st.data, length[:k]...), data...)
	st.kept++
	s.push(e)
	m.grow(s, size)
	if int64(st.kept) > m.opts.MaxLen {
		trimmed("count", 1, m.drop(s, st))
	}
	m.fitTotal(s, e)
	return nil
}

// room makes room for need more bytes in s, within MaxBytes, by dropping
// its oldest, but never stream keep. Requires m.mu.
func (m *MemoryEvents) room(s *memSession, keep *memStream, need int64) {
	m.round++
	var n, b int64
	for s.bytes+need > m.opts.MaxBytes {
		events, bytes, ok := m.dropOldest(s, keep)
		if !ok {
			break
		}
		n, b = n+events, b+bytes
	}
	trimmed("bytes", n, b)
}

// fitTotal keeps all sessions within MaxTotalBytes after s added last: the
// user keeping the most gives way, its largest session's oldest first.
// Requires m.mu.
func (m *MemoryEvents) fitTotal(s *memSession, last place) {
	m.round++
	var n, b int64
	for m.total > m.opts.MaxTotalBytes {
		big := m.byUser[0].sessions[0]
		if i, ok := big.front(); !ok || big.order[i].stream == last.stream && big.order[i].seq == last.seq {
			break // the adding session holds nothing else: it is within its own budget
		}
		events, bytes, ok := m.dropOldest(big, last.stream)
		if !ok {
			break
		}
		n, b = n+events, b+bytes
	}
	trimmed("total", n, b)
}

// dropOldest drops the oldest of what s keeps: an event, or a stream whose
// events went and whose requests were answered (never keep, nor the
// standalone stream ""); a stream still in use moves to the newest place.
// It reports the events and bytes dropped, and false once nothing more can
// go in this round (what is left is streams in use). Requires m.mu.
func (m *MemoryEvents) dropOldest(s *memSession, keep *memStream) (events, bytes int64, ok bool) {
	i, ok := s.front()
	if !ok {
		return 0, 0, false
	}
	e := s.order[i]
	st := e.stream
	if e.seq >= 0 {
		// The oldest of the session is the oldest of its stream.
		bytes = m.drop(s, st)
	}
	if st != keep && m.unused(s, st) {
		m.dropStream(s, st)
		metrics.EventStreamsTrimmed.Inc()
	}
	if e.seq >= 0 {
		return 1, bytes, true
	}
	if st.gone {
		return 0, 0, true
	}
	if e.moved == m.round {
		return 0, 0, false
	}
	st.self = -1 // its old place is dead before push may compact
	s.dead++
	s.pushOwn(st, m.round)
	return 0, 0, true
}

// unused says st may go: it has no events and answers no request in
// flight, and it is not the standalone stream. Requires m.mu.
func (m *MemoryEvents) unused(s *memSession, st *memStream) bool {
	return st.name != "" && st.kept == 0 && m.journal[s.id][st.name] == nil
}

// dropStream forgets st and its events. Requires m.mu.
func (m *MemoryEvents) dropStream(s *memSession, st *memStream) {
	for st.kept > 0 {
		m.drop(s, st)
	}
	st.gone = true
	s.dead++ // its own place
	m.grow(s, -StreamOverhead)
	delete(s.streams, st.name)
	st.name = "" // dead places may hold st a while: not its name
}

// drop forgets the oldest event of st and returns its size. Requires m.mu.
func (m *MemoryEvents) drop(s *memSession, st *memStream) int64 {
	event, next := st.at(st.base)
	size := eventSize(st.first, event)
	st.base = next
	st.kept--
	st.first++
	s.dead++
	m.grow(s, -size)
	switch {
	case st.kept == 0:
		st.data, st.base = nil, 0
	case st.base >= 4<<10 && st.base > len(st.data)/4:
		// A quarter of data is dropped events: what is kept moves to an
		// array of its own (replays may still hold slices of this one),
		// so that a stream holds at most about 5/3 of the bytes it keeps.
		st.data, st.base = slices.Clone(st.data[st.base:]), 0
	}
	return size
}

// grow counts n more bytes (fewer if negative) for s. Requires m.mu.
func (m *MemoryEvents) grow(s *memSession, n int64) {
	s.bytes += n
	s.user.bytes += n
	m.total += n
	heap.Fix(&s.user.sessions, s.index)
	heap.Fix(&m.byUser, s.user.index)
}

// sweep forgets, at most once every tenth of the TTL, the streams whose
// last event is older than the TTL, and sessions left without streams.
// Requires m.mu.
func (m *MemoryEvents) sweep(now time.Time) {
	if now.Before(m.sweepAt) {
		return
	}
	m.sweepAt = now.Add(max(m.opts.TTL/10, time.Second))
	for _, s := range m.sessions {
		for _, st := range s.streams {
			if now.Sub(st.last) > m.opts.TTL {
				m.dropStream(s, st)
			}
		}
		if len(s.streams) == 0 {
			m.forget(s)
		}
	}
}

// forget drops a session's streams. Requires m.mu.
func (m *MemoryEvents) forget(s *memSession) {
	m.total -= s.bytes
	m.leave(s)
	delete(m.sessions, s.id)
}

// After implements mcp.EventStore: the events after index, or
// mcp.ErrEventsPurged at once if any of them was dropped.
func (m *MemoryEvents) After(_ context.Context, session, stream string, index int) iter.Seq2[[]byte, error] {
	m.mu.Lock()
	var out [][]byte
	var err error
	var st *memStream
	if s := m.sessions[session]; s != nil {
		st = s.streams[stream]
	}
	switch {
	case st == nil:
		// Never opened, expired, or dropped to keep its session within its
		// bytes: either way, its events are gone.
		err = fmt.Errorf("replay events: stream %q of session %q is unknown or dropped: %w", stream, session, mcp.ErrEventsPurged)
	case index < st.first-1:
		err = fmt.Errorf("replay events after %d of stream %q: %w", index, stream, mcp.ErrEventsPurged)
	case index > st.first+st.kept:
		err = beyondEnd(index, stream, st.first+st.kept)
	default:
		next := st.base
		for i := range st.kept {
			var event []byte
			event, next = st.at(next)
			if st.first+i > index {
				out = append(out, event)
			}
		}
	}
	m.mu.Unlock()
	return func(yield func([]byte, error) bool) {
		if err != nil {
			yield(nil, err)
			return
		}
		for _, d := range out {
			if !yield(d, nil) {
				return
			}
		}
	}
}

// beyondEnd is the error of a replay after index of a stream of count
// events, index past the one after its last (count): no event the stream
// issued. (One after its last may be an answer a node sent, and died
// before it stored: the next activation stores what answers its request
// in its place.)
func beyondEnd(index int, stream string, count any) error {
	return fmt.Errorf("replay events after %d of stream %q: it has %v events", index, stream, count)
}

// OpenAppend implements Events.
func (m *MemoryEvents) OpenAppend(ctx context.Context, session, stream, user string, epoch int64, ids []json.RawMessage, write WriteID, data []byte) error {
	if err := m.OpenFor(ctx, session, stream, user, epoch, ids); err != nil {
		return err
	}
	return m.AppendAt(ctx, session, stream, epoch, write, data)
}

// AppendFinish implements Events.
func (m *MemoryEvents) AppendFinish(ctx context.Context, session, stream string, epoch int64, write WriteID, data []byte) error {
	if err := m.AppendAt(ctx, session, stream, epoch, write, data); err != nil {
		return err
	}
	return m.FinishRequests(ctx, session, stream, epoch)
}

// FinishRequests implements Events.
func (m *MemoryEvents) FinishRequests(_ context.Context, session, stream string, epoch int64) error {
	if m.fenced(session, epoch) {
		return fmt.Errorf("finish requests: %w", ErrFenced)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.journal[session], stream)
	if len(m.journal[session]) == 0 {
		delete(m.journal, session)
	}
	return nil
}

func (m *MemoryEvents) PendingRequests(_ context.Context, session string) (map[string][]json.RawMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.journal[session]), nil
}

// SessionClosed implements mcp.EventStore: the session's streams and journal go.
func (m *MemoryEvents) SessionClosed(_ context.Context, session string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.journal, session)
	if s := m.sessions[session]; s != nil {
		m.forget(s)
	}
	return nil
}

// Bytes is what the store counts for session (see eventSize), and for all
// sessions.
func (m *MemoryEvents) Bytes(session string) (sessionBytes, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.sessions[session]; s != nil {
		sessionBytes = s.bytes
	}
	return sessionBytes, m.total
}

// UserBytes is what the store keeps for the sessions of user (OpenFor's
// user).
func (m *MemoryEvents) UserBytes(user string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.users[user]; u != nil {
		return u.bytes
	}
	return 0
}

// largest is a heap of sessions or users, the one keeping the most bytes
// on top.
type largest[T interface {
	weight() int64
	place(int)
}] []T

func (h largest[T]) Len() int           { return len(h) }
func (h largest[T]) Less(i, j int) bool { return h[i].weight() > h[j].weight() }
func (h largest[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].place(i)
	h[j].place(j)
}
func (h *largest[T]) Push(x any) {
	t := x.(T)
	t.place(len(*h))
	*h = append(*h, t)
}
func (h *largest[T]) Pop() any {
	old := *h
	t := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	t.place(-1)
	return t
}

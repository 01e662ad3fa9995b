package state

import (
	"container/heap"
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Events is what a session actor needs of an event store: the go-sdk's
// EventStore, appends fenced by activation epoch, and a journal of the
// requests each stream was opened to answer, so that the next activation can
// answer those its predecessor never did.
type Events interface {
	mcp.EventStore
	// OpenFor opens stream as activation epoch (0: unfenced), journalling
	// ids as the requests it answers; ErrFenced if a newer activation exists.
	OpenFor(ctx context.Context, session, stream string, epoch int64, ids []json.RawMessage) error
	// AppendAt appends as activation epoch (0: unfenced), failing with
	// ErrFenced when a newer activation exists.
	AppendAt(ctx context.Context, session, stream string, epoch int64, data []byte) error
	// FinishRequests drops stream's journal entry.
	FinishRequests(ctx context.Context, session, stream string) error
	// PendingRequests lists the journal: stream → request ids.
	PendingRequests(ctx context.Context, session string) (map[string][]json.RawMessage, error)
}

var (
	_ Events = (*RedisEvents)(nil)
	_ Events = (*MemoryEvents)(nil)
)

// MemoryEvents keeps events in this process, for a single node without
// Redis, with the bounds RedisEvents has: MaxLen events per stream, MaxBytes
// per session (its oldest events go first, whichever stream they are in),
// streams forgotten TTL after their last event. All sessions together keep
// at most MaxTotalBytes; beyond, the session keeping the most gives way (its
// oldest events), never the others: one user's large results cannot push
// other users' resumable events out. Appends are fenced by Snapshots' epochs
// when it is set.
type MemoryEvents struct {
	Snapshots *MemorySnapshots
	// Now is the clock of stream expiry (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	opts     EventOptions
	sessions map[string]*memSession
	bySize   sessionsBySize                          // largest first
	total    int64                                   // bytes of all sessions
	sweepAt  time.Time                               // when expired streams are next looked for
	journal  map[string]map[string][]json.RawMessage // session → stream → ids
}

// memSession is one session's streams, and its kept events oldest first.
type memSession struct {
	id      string
	streams map[string]*memStream
	order   list.List // of *memEvent
	bytes   int64     // sizes of the events in order
	index   int       // in MemoryEvents.bySize
}

// memStream is one stream: its events from index first on.
type memStream struct {
	name   string
	first  int         // SDK index of events[0]; events before it were dropped
	events []*memEvent // oldest first
	last   time.Time   // of the last open or append
}

type memEvent struct {
	data   []byte
	stream *memStream
	elem   *list.Element // in its session's order
}

// size is what an event counts against the bounds: its data and
// EventOverhead, as in Redis.
func (e *memEvent) size() int64 { return int64(len(e.data)) + EventOverhead }

// NewMemoryEvents returns an empty store fenced by snapshots (may be nil),
// with the default bounds (see SetOptions).
func NewMemoryEvents(snapshots *MemorySnapshots) *MemoryEvents {
	return &MemoryEvents{Snapshots: snapshots, opts: EventOptions{}.withDefaults(), sessions: map[string]*memSession{},
		journal: map[string]map[string][]json.RawMessage{}}
}

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

// Open implements mcp.EventStore.
func (m *MemoryEvents) Open(_ context.Context, session, stream string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	s := m.sessions[session]
	if s == nil {
		s = &memSession{id: session, streams: map[string]*memStream{}}
		m.sessions[session] = s
		heap.Push(&m.bySize, s)
	}
	st := s.streams[stream]
	if st == nil {
		st = &memStream{name: stream}
		s.streams[stream] = st
	}
	st.last = now
	return nil
}

func (m *MemoryEvents) OpenFor(ctx context.Context, session, stream string, epoch int64, ids []json.RawMessage) error {
	if epoch != 0 && m.Snapshots != nil && m.Snapshots.epoch(session) != epoch {
		return fmt.Errorf("open event stream: %w", ErrFenced)
	}
	if err := m.Open(ctx, session, stream); err != nil {
		return err
	}
	if len(ids) > 0 {
		m.mu.Lock()
		if m.journal[session] == nil {
			m.journal[session] = map[string][]json.RawMessage{}
		}
		m.journal[session][stream] = ids
		m.mu.Unlock()
	}
	return nil
}

// Append implements mcp.EventStore.
func (m *MemoryEvents) Append(ctx context.Context, session, stream string, data []byte) error {
	return m.AppendAt(ctx, session, stream, 0, data)
}

func (m *MemoryEvents) AppendAt(_ context.Context, session, stream string, epoch int64, data []byte) error {
	if epoch != 0 && m.Snapshots != nil && m.Snapshots.epoch(session) != epoch {
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
	e := &memEvent{data: slices.Clone(data), stream: st}
	if e.size() > m.opts.MaxBytes {
		// Kept, it would take the whole budget and more: it goes live
		// only, and so does what came before it in its stream, so that a
		// replay never skips it.
		n, b := int64(1), e.size()
		for len(st.events) > 0 {
			n, b = n+1, b+m.drop(s, st.events[0])
		}
		st.first++
		trimmed("bytes", n, b)
		return nil
	}
	st.events = append(st.events, e)
	e.elem = s.order.PushBack(e)
	m.grow(s, e.size())
	if int64(len(st.events)) > m.opts.MaxLen {
		trimmed("count", 1, m.drop(s, st.events[0]))
	}
	var n, b int64
	for s.bytes > m.opts.MaxBytes {
		old := s.order.Front().Value.(*memEvent)
		n, b = n+1, b+m.drop(s, old)
	}
	trimmed("bytes", n, b)
	n, b = 0, 0
	for m.total > m.opts.MaxTotalBytes {
		big := m.bySize[0]
		front := big.order.Front()
		if front == nil || front.Value.(*memEvent) == e {
			break // the appending session holds nothing else: it is within its own budget
		}
		old := front.Value.(*memEvent)
		n, b = n+1, b+m.drop(big, old)
	}
	trimmed("total", n, b)
	return nil
}

// drop forgets e, the oldest event of its stream, and returns its size.
// Requires m.mu.
func (m *MemoryEvents) drop(s *memSession, e *memEvent) int64 {
	st := e.stream
	st.events[0] = nil
	st.events = st.events[1:]
	st.first++
	s.order.Remove(e.elem)
	m.grow(s, -e.size())
	return e.size()
}

// grow counts n more bytes (fewer if negative) for s. Requires m.mu.
func (m *MemoryEvents) grow(s *memSession, n int64) {
	s.bytes += n
	m.total += n
	heap.Fix(&m.bySize, s.index)
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
		for name, st := range s.streams {
			if now.Sub(st.last) > m.opts.TTL {
				for len(st.events) > 0 {
					m.drop(s, st.events[0])
				}
				delete(s.streams, name)
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
	heap.Remove(&m.bySize, s.index)
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
		err = fmt.Errorf("replay events: unknown stream %q of session %q", stream, session)
	case index+1 < st.first:
		err = fmt.Errorf("replay events after %d of stream %q: %w", index, stream, mcp.ErrEventsPurged)
	default:
		for _, e := range st.events[min(index+1-st.first, len(st.events)):] {
			out = append(out, e.data)
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

func (m *MemoryEvents) FinishRequests(_ context.Context, session, stream string) error {
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

// Bytes is what the store keeps for session (data and EventOverhead per
// event), and for all sessions.
func (m *MemoryEvents) Bytes(session string) (sessionBytes, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.sessions[session]; s != nil {
		sessionBytes = s.bytes
	}
	return sessionBytes, m.total
}

// sessionsBySize is a heap of sessions, the one keeping the most bytes on
// top.
type sessionsBySize []*memSession

func (h sessionsBySize) Len() int           { return len(h) }
func (h sessionsBySize) Less(i, j int) bool { return h[i].bytes > h[j].bytes }
func (h sessionsBySize) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *sessionsBySize) Push(x any) {
	s := x.(*memSession)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *sessionsBySize) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.index = -1
	return s
}

package state

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

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

// MemoryEvents keeps events in this process (the SDK's MemoryEventStore,
// bounded in bytes across all sessions), for a single node without Redis.
// Appends are fenced by Snapshots' epochs when it is set.
type MemoryEvents struct {
	*mcp.MemoryEventStore
	Snapshots *MemorySnapshots

	mu      sync.Mutex
	journal map[string]map[string][]json.RawMessage // session → stream → ids
}

// NewMemoryEvents returns an empty store fenced by snapshots (may be nil).
func NewMemoryEvents(snapshots *MemorySnapshots) *MemoryEvents {
	return &MemoryEvents{MemoryEventStore: mcp.NewMemoryEventStore(nil), Snapshots: snapshots, journal: map[string]map[string][]json.RawMessage{}}
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

func (m *MemoryEvents) AppendAt(ctx context.Context, session, stream string, epoch int64, data []byte) error {
	if epoch != 0 && m.Snapshots != nil && m.Snapshots.epoch(session) != epoch {
		return fmt.Errorf("append event: %w", ErrFenced)
	}
	return m.Append(ctx, session, stream, data)
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
func (m *MemoryEvents) SessionClosed(ctx context.Context, session string) error {
	m.mu.Lock()
	delete(m.journal, session)
	m.mu.Unlock()
	return m.MemoryEventStore.SessionClosed(ctx, session)
}

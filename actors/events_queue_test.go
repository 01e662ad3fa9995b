package actors

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/pingmcp/pingmcp/state"
)

// slowFinishes is an event store whose journal removals wait until
// released; it records the appends it took.
type slowFinishes struct {
	state.Events // nil: only AppendAt and FinishRequests are used here

	release chan struct{}
	mu      sync.Mutex
	taken   []string
}

func (s *slowFinishes) FinishRequests(ctx context.Context, _, _ string, _ int64) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowFinishes) AppendAt(_ context.Context, _, stream string, _ int64, _ state.WriteID, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken = append(s.taken, stream+":"+string(data))
	return nil
}

// A journal entry's removal still in the write queue does not hold up the
// next request's events: they are stored before Append returns (so before
// the SDK delivers them), not queued behind it. An event of the stream the
// removal is for still waits.
func TestQueuedFinishDoesNotQueueOtherStreams(t *testing.T) {
	store := &slowFinishes{release: make(chan struct{})}
	e := &sessionEvents{store: store, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), fenced: func() {}}
	defer close(store.release)
	f := &flight{}
	f.setStream("a")
	e.finish("s", f, true)
	ctx := context.Background()
	if err := e.Append(ctx, "s", "b", []byte("1")); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	taken := append([]string(nil), store.taken...)
	store.mu.Unlock()
	if len(taken) != 1 || taken[0] != "b:1" {
		t.Fatalf("the next stream's event waited behind a removal: stored %v right away, want [b:1]", taken)
	}
	if err := e.Append(ctx, "s", "a", []byte("late")); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	queued := len(e.backlog)
	e.mu.Unlock()
	if queued != 2 {
		t.Fatalf("an event of the removal's own stream went around it: %d writes queued, want 2", queued)
	}
}

// The go-sdk closes a session with no deadline (context.TODO), at times on
// the actor's goroutine: the snapshot's removal and the store's are bounded
// all the same.
func TestSessionClosedBounded(t *testing.T) {
	var deadlines []bool
	e := &sessionEvents{store: state.NewMemoryEvents(&state.MemorySnapshots{}), logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ended: func(ctx context.Context) error {
			_, ok := ctx.Deadline()
			deadlines = append(deadlines, ok)
			return nil
		}}
	if err := e.SessionClosed(context.TODO(), "s"); err != nil {
		t.Fatal(err)
	}
	if len(deadlines) != 1 || !deadlines[0] {
		t.Fatalf("the snapshot's removal ran with a deadline: %v, want [true]", deadlines)
	}
}

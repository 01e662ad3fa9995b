package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/state"
)

// markCounter is an event store that counts the standalone stream's marks
// it is asked to write (state.Events.MarkSent), and refuses them while
// down.
type markCounter struct {
	state.Events
	mu    sync.Mutex
	marks int
	down  bool
}

func (m *markCounter) MarkSent(ctx context.Context, session, stream string, epoch int64, index int) error {
	m.mu.Lock()
	m.marks++
	down := m.down
	m.mu.Unlock()
	if down {
		return errors.New("connection refused")
	}
	return m.Events.MarkSent(ctx, session, stream, epoch, index)
}

func (m *markCounter) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marks
}

func (m *markCounter) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// A stopped actor's mark writer does not sleep out its backoff: close cuts
// the wait short, and the writer tries once more (the store is back: the
// mark lands) before it ends. Before, the wait went on (here an hour; the
// flush of a drain that timed out, then the actor's stop, left it to end a
// backoff later) and the writer then gave up without trying again, the
// mark lost though the store was back.
func TestStandaloneMarkWriterCloseCutsWait(t *testing.T) {
	mem := state.NewMemoryEvents(nil)
	store := &markCounter{Events: mem, down: true}
	e := &sessionEvents{store: store, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), fenced: func() {},
		retryMin: time.Hour, retryMax: time.Hour}
	ctx := context.Background()
	if err := e.Open(ctx, "s", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.Append(ctx, "s", "", []byte("note")); err != nil {
		t.Fatal(err)
	}
	e.noteSent("s", 0)
	for deadline := time.Now().Add(30 * time.Second); store.count() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no mark tried in 30s")
		}
	}
	// Refused once: the writer now waits an hour. The store comes back,
	// the actor stops.
	store.setDown(false)
	e.close()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.flush(c); err != nil {
		t.Fatalf("mark writer still runs 10 s after close: %v", err)
	}
	if _, _, sent, err := mem.OpenLast(ctx, "s", "", 0); err != nil || sent != 0 {
		t.Errorf("mark once the store was back and the actor stopped: %d, %v; want 0", sent, err)
	}
}

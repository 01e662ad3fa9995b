package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

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

// A GET open while notifications come often (a list_changed every few
// milliseconds) does not cost the store a mark write per event: the marks
// written at a pace take the events written meanwhile together, and the
// last one lands all the same. Before, each event written to the GET alone
// (none came during the previous mark's write, which the memory store makes
// at once, and Redis in one round trip) took a write of its own: as many
// writes for the marks as for the events (memory and Redis: 60 of 60).
func TestStandaloneGETMarksAreNotOneWritePerEvent(t *testing.T) {
	for _, kind := range []string{"memory", "redis"} {
		t.Run(kind, func(t *testing.T) { testMarksNotOneWritePerEvent(t, kind) })
	}
}

func testMarksNotOneWritePerEvent(t *testing.T, kind string) {
	d := standaloneStores(t, kind)
	store := &markCounter{Events: d.Events}
	d.Events = store
	system, props := testSessions(t, Config{Stores: d})
	root := system.Root
	pid := root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	p := principal("tok-a")
	if body := postInitialize(t, root, pid, p, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	g := openGET(t, root, pid, p)
	if g.head.GetStatus() != http.StatusOK {
		t.Fatalf("GET: %d %s", g.head.GetStatus(), g.head.GetBody())
	}
	const events = 60
	var last int
	start := time.Now()
	for i := 1; i <= events; i++ {
		triggerPromptChange(t, root, pid, p, i)
		last = g.standaloneIDs(t, 1)[0]
	}
	took := time.Since(start)
	awaitMarked(t, d, last)
	// A write per event is 60; paced, one per markEvery and the first.
	if n, most := store.count(), 2+int(took/markEvery); n > most {
		t.Errorf("%d events written to the GET in %v took %d mark writes, want at most %d", events, took, n, most)
	}
	g.close(t, root, pid)
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

// A drain's flush does not wait out the marks' pace: it cuts it short, and
// the mark of the events written meanwhile lands at once.
func TestStandaloneMarkFlushCutsPace(t *testing.T) {
	mem := state.NewMemoryEvents(nil)
	store := &markCounter{Events: mem}
	e := &sessionEvents{store: store, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), fenced: func() {},
		markPace: time.Hour}
	ctx := context.Background()
	if err := e.Open(ctx, "s", ""); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.Append(ctx, "s", "", []byte("note")); err != nil {
			t.Fatal(err)
		}
	}
	e.noteSent("s", 0)
	for deadline := time.Now().Add(30 * time.Second); store.count() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no mark written in 30s")
		}
	}
	// Written during the pace (an hour).
	e.noteSent("s", 1)
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.flush(c); err != nil {
		t.Fatalf("flush waited out the marks' pace: %v", err)
	}
	if _, _, sent, err := mem.OpenLast(ctx, "s", "", 0); err != nil || sent != 1 {
		t.Errorf("mark once flushed: %d, %v; want 1", sent, err)
	}
}

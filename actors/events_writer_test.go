package actors

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// A stopped actor's writer does not sleep out its backoff: close cuts the
// wait short, the writer tries once more and, the store still away, gives
// up at once.
func TestEventsWriterCloseCutsWait(t *testing.T) {
	store := &flakyEvents{down: true}
	// The writer's first retry waits an hour: only close can end it.
	e := &sessionEvents{store: store, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), retryMin: time.Hour, retryMax: time.Hour}
	if err := e.Append(context.Background(), "s", "st", []byte("1")); err != nil {
		t.Fatalf("append while the store is down: %v", err)
	}
	// Two failed attempts: Append's own and the writer's first, which it
	// now retries in an hour.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		store.mu.Lock()
		n := len(store.tried)
		store.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer tried %d times in 30s", n)
		}
	}
	e.close()
	// Without close the wait is an hour: 10 s tells the two apart, and
	// leaves a loaded machine time to schedule the writer.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.flush(ctx); err != nil {
		t.Fatalf("writer still holds its queue 10 s after close: %v", err)
	}
}

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
	e := &sessionEvents{store: store, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := e.Append(context.Background(), "s", "st", []byte("1")); err != nil {
		t.Fatalf("append while the store is down: %v", err)
	}
	// Eight failed attempts (Append's own and seven of the writer's, from
	// retryMin doubling): the writer now waits retryMax (2s) for the next.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		store.mu.Lock()
		n := len(store.tried)
		store.mu.Unlock()
		if n >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer tried %d times in 30s", n)
		}
	}
	e.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.flush(ctx); err != nil {
		t.Fatalf("writer still holds its queue a second after close: %v", err)
	}
}

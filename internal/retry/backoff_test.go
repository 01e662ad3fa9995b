package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffNext(t *testing.T) {
	b := Backoff{Min: 50 * time.Millisecond, Max: 300 * time.Millisecond}
	steps := []time.Duration{50, 100, 200, 300, 300}
	for i, step := range steps {
		step *= time.Millisecond
		if got := b.Next(); got < step/2 || got > step {
			t.Fatalf("Next #%d = %v, want between %v and %v", i, got, step/2, step)
		}
	}
	b.Reset()
	if got := b.Next(); got < b.Min/2 || got > b.Min {
		t.Fatalf("Next after Reset = %v, want between %v and Min %v", got, b.Min/2, b.Min)
	}
}

// Callers that fail together come back spread over the step, not at one
// instant: 1,000 first waits of a 1 s step cover most of [0.5 s, 1 s].
func TestBackoffJitter(t *testing.T) {
	lo, hi := time.Hour, time.Duration(0)
	seen := map[time.Duration]bool{}
	for range 1000 {
		b := Backoff{Min: time.Second, Max: time.Second}
		d := b.Next()
		lo, hi = min(lo, d), max(hi, d)
		seen[d] = true
	}
	if lo < 500*time.Millisecond || hi > time.Second {
		t.Errorf("waits from %v to %v, want within [500ms, 1s]", lo, hi)
	}
	if hi-lo < 400*time.Millisecond || len(seen) < 900 {
		t.Errorf("1000 waits took %d values from %v to %v: not spread over the step", len(seen), lo, hi)
	}
}

func TestBackoffWait(t *testing.T) {
	b := Backoff{Min: time.Millisecond, Max: time.Millisecond}
	if err := b.Wait(context.Background()); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
}

func TestBackoffWaitCancelled(t *testing.T) {
	b := Backoff{Min: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled context did not interrupt Wait")
	}
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a done context = %v, want context.Canceled", err)
	}
}

func TestBackoffWaitPastDeadline(t *testing.T) {
	b := Backoff{Min: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := b.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("Wait slept %v for a wait that would outlast the deadline", waited)
	}
}

package logwriter

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// sink records each Write it gets; while gate is open (non-nil and not
// closed) a Write waits on it.
type sink struct {
	mu     sync.Mutex
	writes [][]byte
	gate   chan struct{}
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, bytes.Clone(p))
	return len(p), nil
}

// open lets the Writes through, the waiting one and those to come.
func (s *sink) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.gate)
	s.gate = nil
}

func (s *sink) all() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(bytes.Join(s.writes, nil)), len(s.writes)
}

// Lines written from many goroutines all arrive, each whole, each
// goroutine's in its order.
// blocked runs f on a goroutine of its own, inside a synctest bubble, and
// fails t (with msg) if f returned once every goroutine of the bubble is
// blocked; the channel it returns is closed when f returns.
func blocked(t *testing.T, msg string, f func()) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		f()
		close(done)
	}()
	synctest.Wait()
	select {
	case <-done:
		t.Fatal(msg)
	default:
	}
	return done
}

func TestWriterKeepsLinesWholeAndInOrder(t *testing.T) {
	s := &sink{}
	lw := New(s)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(lw, "g%d line %d %s\n", g, i, strings.Repeat("x", i%97))
			}
		})
	}
	wg.Wait()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := s.all()
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		f := strings.Split(l, " ")
		var g, i int
		if len(f) != 4 || f[1] != "line" {
			t.Fatalf("line %q is not whole", l)
		}
		if _, err := fmt.Sscanf(f[0]+" "+f[2], "g%d %d", &g, &i); err != nil || g < 0 || g >= writers {
			t.Fatalf("line %q: %v", l, err)
		}
		if i != next[g] || len(f[3]) != i%97 {
			t.Fatalf("line %q: want goroutine %d's line %d, whole", l, g, next[g])
		}
		next[g]++
	}
}

// A Write returns while the sink is still busy with earlier lines, and
// what comes meanwhile goes out in one write.
func TestWriterOffThePathAndGrouped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{gate: make(chan struct{})}
		lw := New(s)
		fmt.Fprintln(lw, "first")
		synctest.Wait() // the goroutine took it and waits in the sink
		for i := range 10 {
			fmt.Fprintln(lw, "later", i) // returns: the sink is not asked
		}
		s.open()
		lw.Sync()
		out, n := s.all()
		if n != 2 {
			t.Errorf("%d writes to the sink, want 2 (the first line, then the ten together)", n)
		}
		if want := "first\nlater 0\nlater 1\nlater 2\nlater 3\nlater 4\nlater 5\nlater 6\nlater 7\nlater 8\nlater 9\n"; out != want {
			t.Errorf("sink got %q, want %q", out, want)
		}
		lw.Close()
	})
}

// A Writer holding MaxPending bytes makes the next Write wait for the sink
// rather than drop it or grow without bound.
func TestWriterBoundsWhatItHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{gate: make(chan struct{})}
		lw := New(s)
		lw.Write([]byte("a"))
		synctest.Wait() // "a" is in the sink's Write
		lw.Write(bytes.Repeat([]byte("b"), MaxPending-1))
		var returned atomic.Bool
		go func() {
			lw.Write([]byte("cc"))
			returned.Store(true)
		}()
		synctest.Wait()
		if returned.Load() {
			t.Fatal("a Write beyond MaxPending returned while the sink was blocked")
		}
		s.open()
		synctest.Wait()
		if !returned.Load() {
			t.Fatal("the waiting Write did not return once the sink took the held bytes")
		}
		lw.Close()
		out, _ := s.all()
		if want := "a" + strings.Repeat("b", MaxPending-1) + "cc"; out != want {
			t.Errorf("sink got %d bytes, want %d in order", len(out), len(want))
		}
	})
}

// Close writes out everything; a Write after it goes to the sink at once.
func TestWriterCloseWritesAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{gate: make(chan struct{})}
		lw := New(s)
		fmt.Fprintln(lw, "one")
		synctest.Wait()
		fmt.Fprintln(lw, "two")
		closed := blocked(t, "Close returned before the sink took what was written", func() { lw.Close() })
		s.open()
		<-closed
		if out, _ := s.all(); out != "one\ntwo\n" {
			t.Fatalf("after Close the sink has %q", out)
		}
		fmt.Fprintln(lw, "three")
		if out, n := s.all(); out != "one\ntwo\nthree\n" || n != 3 {
			t.Fatalf("a Write after Close: sink has %q in %d writes", out, n)
		}
		if err := lw.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// Sync returns only once what was given before it is written out: while a
// write is under way it waits, then writes what is left itself; with none
// under way it writes on its caller's goroutine.
func TestWriterSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{gate: make(chan struct{})}
		lw := New(s)
		fmt.Fprintln(lw, "one")
		synctest.Wait() // the goroutine writes "one", held in the sink
		fmt.Fprintln(lw, "two")
		synced := blocked(t, "Sync returned while what was given before it was not written", lw.Sync)
		s.open()
		<-synced
		if out, _ := s.all(); out != "one\ntwo\n" {
			t.Fatalf("after Sync the sink has %q", out)
		}
		// Nothing under way: Sync writes at once, later lines are not
		// waited for.
		fmt.Fprintln(lw, "three")
		lw.Sync()
		if out, _ := s.all(); out != "one\ntwo\nthree\n" {
			t.Fatalf("after Sync the sink has %q", out)
		}
		lw.Close()
	})
}

// A handler made with Handler, and those derived from it, sync their
// Writer.
func TestHandlerSyncs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{gate: make(chan struct{})}
		lw := New(s)
		h := Handler(slog.NewJSONHandler(lw, nil), lw).WithAttrs([]slog.Attr{slog.String("log", "audit")}).WithGroup("g")
		syncer, ok := h.(Syncer)
		if !ok {
			t.Fatal("a derived handler is not a Syncer")
		}
		slog.New(h).Info("an ordinary line") // not waited for
		done := blocked(t, "Sync returned before the record was written", func() {
			syncer.HandleSync(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, "record", 0))
		})
		s.open()
		<-done
		if out, _ := s.all(); !strings.Contains(out, `"msg":"an ordinary line","log":"audit"`) || !strings.Contains(out, `"msg":"record","log":"audit"`) {
			t.Fatalf("sink has %q", out)
		}
		lw.Close()
	})
}

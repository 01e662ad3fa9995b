package state

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// A stream's mark of what was sent (MarkSent) is what OpenLast tells any
// activation: raised, never lowered, never past the stream's last event;
// fenced by the epoch, as appends are; kept while the stream's events are
// dropped and it is opened again, as its record is; gone when the stream
// expires and starts anew, and not raised again then by an index of the
// earlier incarnation; gone with the session.
func testMarkSent(t *testing.T, s Events, activate func() int64, expire func()) {
	ctx := context.Background()
	epoch := activate()
	sent := func(stream string) int {
		t.Helper()
		_, _, sent, err := s.OpenLast(ctx, "sess", stream, epoch)
		if err != nil {
			t.Fatal(err)
		}
		return sent
	}
	mark := func(index int) {
		t.Helper()
		if err := s.MarkSent(ctx, "sess", "", epoch, index); err != nil {
			t.Fatalf("MarkSent(%d): %v", index, err)
		}
	}
	appendN := func(n int) {
		t.Helper()
		for i := range n {
			if err := s.AppendAt(ctx, "sess", "", epoch, "", []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := sent(""); got != -1 {
		t.Fatalf("mark of a new stream: %d, want -1", got)
	}
	mark(0) // nothing appended yet: past the last event
	if got := sent(""); got != -1 {
		t.Fatalf("mark of a stream without events, marked 0: %d, want -1", got)
	}
	appendN(5)
	for _, c := range []struct{ index, want int }{{2, 2}, {1, 2}, {5, 2}, {4, 4}} {
		mark(c.index)
		if got := sent(""); got != c.want {
			t.Fatalf("marked %d: %d, want %d", c.index, got, c.want)
		}
	}
	if got := sent("other"); got != -1 {
		t.Errorf("another stream's mark: %d, want -1", got)
	}
	// The marked events are dropped (MaxLen 10): the mark stays.
	appendN(20)
	if first, last, got, err := s.OpenLast(ctx, "sess", "", epoch); err != nil || first != 15 || last != 24 || got != 4 {
		t.Fatalf("OpenLast after 20 more events: %d, %d, %d, %v; want 15, 24, 4", first, last, got, err)
	}
	// A newer activation fences the earlier one's marks.
	stale := epoch
	epoch = activate()
	if err := s.MarkSent(ctx, "sess", "", stale, 10); !errors.Is(err, ErrFenced) {
		t.Fatalf("MarkSent of a stale activation: %v, want ErrFenced", err)
	}
	if got := sent(""); got != 4 {
		t.Fatalf("mark after a stale activation's: %d, want 4", got)
	}
	mark(10)
	if got := sent(""); got != 10 {
		t.Fatalf("mark of the newer activation: %d, want 10", got)
	}
	// Expired, the stream starts anew, without a mark; the earlier
	// incarnation's numbers mark nothing of it.
	expire()
	if first, last, got, err := s.OpenLast(ctx, "sess", "", epoch); err != nil || first != 0 || last != -1 || got != -1 {
		t.Fatalf("OpenLast of the expired stream: %d, %d, %d, %v; want 0, -1, -1", first, last, got, err)
	}
	mark(10)
	appendN(3)
	if got := sent(""); got != -1 {
		t.Fatalf("mark of the stream opened anew after a mark of the earlier one: %d, want -1", got)
	}
	mark(1)
	if got := sent(""); got != 1 {
		t.Fatalf("mark of the stream opened anew: %d, want 1", got)
	}
	if err := s.SessionClosed(ctx, "sess"); err != nil {
		t.Fatal(err)
	}
	if got := sent(""); got != -1 {
		t.Errorf("mark after the session closed: %d, want -1", got)
	}
}

func TestMemoryEventsMarkSent(t *testing.T) {
	now := time.Now()
	snaps := &MemorySnapshots{}
	s := NewMemoryEvents(snaps)
	s.SetOptions(EventOptions{MaxLen: 10, TTL: time.Minute})
	s.Now = func() time.Time { return now }
	testMarkSent(t, s, func() int64 {
		epoch, _, err := snaps.Activate(context.Background(), "sess", true)
		if err != nil {
			t.Fatal(err)
		}
		return epoch
	}, func() { now = now.Add(2 * time.Minute) })
}

func TestRedisEventsMarkSent(t *testing.T) {
	client := redistest.Start(t)
	s := NewRedisEvents(client, "mark:", EventOptions{MaxLen: 10, TTL: time.Second})
	snaps := NewRedisSnapshots(client, "mark:")
	testMarkSent(t, s, func() int64 {
		epoch, _, err := snaps.Activate(context.Background(), "sess", true)
		if err != nil {
			t.Fatal(err)
		}
		return epoch
	}, func() {
		// The stream's record expires (1 s), not the session's hash: another
		// stream's events keep it.
		for range 6 {
			time.Sleep(200 * time.Millisecond)
			if err := s.Append(context.Background(), "sess", "other", []byte("k")); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A node that knew no marks drops the standalone stream's record (its
// expiry, by the budget) and leaves its mark: the stream opened anew does
// not take it for its own.
func TestRedisEventsMarkLeftWithoutRecord(t *testing.T) {
	client := redistest.Start(t)
	s := NewRedisEvents(client, "left:", EventOptions{})
	ctx := context.Background()
	if _, _, _, err := s.OpenLast(ctx, "sess", "", 0); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Append(ctx, "sess", "", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkSent(ctx, "sess", "", 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := client.HDel(ctx, s.keys("sess")[0], "s:").Err(); err != nil {
		t.Fatal(err)
	}
	if _, last, sent, err := s.OpenLast(ctx, "sess", "", 0); err != nil || last != -1 || sent != -1 {
		t.Fatalf("OpenLast of the stream opened anew: last %d, sent %d, %v; want -1, -1", last, sent, err)
	}
	for i := range 3 {
		if err := s.Append(ctx, "sess", "", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, last, sent, err := s.OpenLast(ctx, "sess", "", 0); err != nil || last != 2 || sent != -1 {
		t.Errorf("OpenLast once it has as many events as the mark named: last %d, sent %d, %v; want 2, -1", last, sent, err)
	}
}

package state

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// Found by a review. The standalone stream expires while the session's hash lives on (another
// stream keeps it): the old incarnation's events stay in the hash until the
// budget pops them. Opened anew, its first event is one larger than the
// session's budget (not stored, so e:1 is not overwritten), its second a
// small one. OpenLast's binary search takes the old incarnation's e:1 for
// the new stream's first kept event, and a resumption from first-1
// replays it.
func TestOpenLastStaleIncarnation(t *testing.T) {
	client := redistest.Start(t)
	s := NewRedisEvents(client, "stale:", EventOptions{MaxLen: 100, MaxBytes: 4000, TTL: time.Second})
	ctx := context.Background()
	if _, _, _, err := s.OpenLast(ctx, "sess", "", 0); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"old-1", "old-2"} {
		if err := s.Append(ctx, "sess", "", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.OpenFor(ctx, "sess", "x", "", 0, nil); err != nil {
		t.Fatal(err)
	}
	for range 8 { // keeps the session's hash alive while "" expires
		time.Sleep(200 * time.Millisecond)
		if err := s.Append(ctx, "sess", "x", []byte("k")); err != nil {
			t.Fatal(err)
		}
	}
	if first, last, _, err := s.OpenLast(ctx, "sess", "", 0); err != nil || first != 0 || last != -1 {
		t.Fatalf("reopened: %d %d %v", first, last, err)
	}
	if err := s.Append(ctx, "sess", "", []byte(strings.Repeat("b", 5000))); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "sess", "", []byte("new-2")); err != nil {
		t.Fatal(err)
	}
	first, last, _, err := s.OpenLast(ctx, "sess", "", 0)
	if err != nil || first != 1 || last != 1 {
		t.Errorf("OpenLast: first %d, last %d, %v; want 1, 1 (event 0 was not kept)", first, last, err)
	}
	got, err := collect(t, s, "sess", "", first-1)
	t.Logf("After(first-1): %q, %v", got, err)
	for _, g := range got {
		if strings.HasPrefix(g, "old") {
			t.Errorf("a replay from first-1 gives the old incarnation's event %q", g)
		}
	}
}

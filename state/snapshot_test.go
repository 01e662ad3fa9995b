package state

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redisscan"
	"github.com/pingmcp/pingmcp/internal/redistest"
)

// testSnapshots is the contract every Snapshots keeps.
func testSnapshots(t *testing.T, newStore func(t *testing.T) Snapshots) {
	ctx := context.Background()
	t.Run("first activation", func(t *testing.T) {
		s := newStore(t)
		epoch, snap, err := s.Activate(ctx, "s1", true)
		if err != nil || epoch != 1 || snap != nil {
			t.Fatalf("Activate = %d, %q, %v; want 1, nil, nil", epoch, snap, err)
		}
	})
	t.Run("save then rehydrate", func(t *testing.T) {
		s := newStore(t)
		e1, _, _ := s.Activate(ctx, "s1", true)
		if err := s.Save(ctx, "s1", e1, []byte("v1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		e2, snap, err := s.Activate(ctx, "s1", true)
		if err != nil || e2 <= e1 || string(snap) != "v1" {
			t.Fatalf("second activation = %d, %q, %v", e2, snap, err)
		}
	})
	t.Run("stale activation is fenced", func(t *testing.T) {
		s := newStore(t)
		old, _, _ := s.Activate(ctx, "s1", true)
		cur, _, _ := s.Activate(ctx, "s1", true)
		if err := s.Save(ctx, "s1", old, []byte("stale"), time.Minute); !errors.Is(err, ErrFenced) {
			t.Fatalf("stale save: %v", err)
		}
		if err := s.Delete(ctx, "s1", old); !errors.Is(err, ErrFenced) {
			t.Fatalf("stale delete: %v", err)
		}
		if err := s.Save(ctx, "s1", cur, []byte("fresh"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, snap, _ := s.Activate(ctx, "s1", true); string(snap) != "fresh" {
			t.Fatalf("snapshot = %q after a stale write attempt", snap)
		}
	})
	t.Run("delete keeps the fence", func(t *testing.T) {
		s := newStore(t)
		old, _, _ := s.Activate(ctx, "s1", true)
		cur, _, _ := s.Activate(ctx, "s1", true)
		s.Save(ctx, "s1", cur, []byte("v"), time.Minute)
		if err := s.Delete(ctx, "s1", cur); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, "s1", old, []byte("zombie"), time.Minute); !errors.Is(err, ErrFenced) {
			t.Fatalf("a stale activation wrote after the session ended: %v", err)
		}
		// A save of the deleting activation still on its way cannot bring
		// the snapshot back.
		if err := s.Save(ctx, "s1", cur, []byte("late"), time.Minute); !errors.Is(err, ErrFenced) {
			t.Fatalf("a late save after delete: %v", err)
		}
		next, snap, _ := s.Activate(ctx, "s1", true)
		if snap != nil || next <= cur {
			t.Fatalf("after delete: epoch %d snap %q", next, snap)
		}
	})
	t.Run("unknown session is not activated", func(t *testing.T) {
		s := newStore(t)
		if e, snap, err := s.Activate(ctx, "ghost", false); e != 0 || snap != nil || err != nil {
			t.Fatalf("Activate(ghost, no create) = %d, %q, %v; want 0, nil, nil", e, snap, err)
		}
		// Probing left nothing: the first real activation is epoch 1.
		if e, _, _ := s.Activate(ctx, "ghost", true); e != 1 {
			t.Fatalf("first activation after a probe = %d, want 1", e)
		}
		// Activated but never saved: still unknown to a later probe.
		if e, _, _ := s.Activate(ctx, "ghost", false); e != 0 {
			t.Fatalf("probe of a session never saved = %d, want 0", e)
		}
		cur, _, _ := s.Activate(ctx, "ghost", true)
		s.Save(ctx, "ghost", cur, []byte("v"), time.Minute)
		if e, snap, _ := s.Activate(ctx, "ghost", false); e <= cur || string(snap) != "v" {
			t.Fatalf("rehydrating activation = %d, %q", e, snap)
		}
	})
	t.Run("ttl zero never expires", func(t *testing.T) {
		s := newStore(t)
		e, _, _ := s.Activate(ctx, "s1", true)
		if err := s.Save(ctx, "s1", e, []byte("forever"), 0); err != nil {
			t.Fatal(err)
		}
		if _, snap, _ := s.Activate(ctx, "s1", false); string(snap) != "forever" {
			t.Fatalf("snapshot = %q", snap)
		}
	})
	t.Run("end fences the live activation", func(t *testing.T) {
		s := newStore(t)
		e, _, _ := s.Activate(ctx, "s1", true)
		s.Save(ctx, "s1", e, []byte("v"), time.Minute)
		if snap, err := s.Get(ctx, "s1"); err != nil || string(snap) != "v" {
			t.Fatalf("Get = %q, %v", snap, err)
		}
		if err := s.End(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, "s1", e, []byte("again"), time.Minute); !errors.Is(err, ErrFenced) {
			t.Fatalf("the live activation wrote after its session was ended: %v", err)
		}
		if e, snap, _ := s.Activate(ctx, "s1", false); e != 0 || snap != nil {
			t.Fatalf("an ended session activates: %d %q", e, snap)
		}
		if snap, err := s.Get(ctx, "s1"); err != nil || snap != nil {
			t.Fatalf("Get after End = %q, %v", snap, err)
		}
	})
	t.Run("list pages through every session", func(t *testing.T) {
		s := newStore(t)
		want := map[string]string{}
		for i := range 25 {
			id := "s" + strconv.Itoa(i)
			e, _, _ := s.Activate(ctx, id, true)
			s.Save(ctx, id, e, []byte("v"+id), time.Minute)
			want[id] = "v" + id
		}
		s.Activate(ctx, "never-saved", true)
		got := map[string]string{}
		cursor, pages := "", 0
		for {
			page, next, err := s.List(ctx, cursor, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range page {
				got[st.Session] = string(st.Snapshot)
			}
			pages++
			if next == "" || pages > 50 {
				break
			}
			cursor = next
		}
		if len(got) != len(want) {
			t.Fatalf("listed %d sessions, want %d: %v", len(got), len(want), got)
		}
		for id, v := range want {
			if got[id] != v {
				t.Errorf("%s listed as %q, want %q", id, got[id], v)
			}
		}
	})
	t.Run("a cursor no page gave is refused", func(t *testing.T) {
		s := newStore(t)
		if _, _, err := s.List(ctx, "not a cursor!", 10); !errors.Is(err, redisscan.ErrBadCursor) {
			t.Fatalf("a made-up cursor: %v, want ErrBadCursor", err)
		}
	})
	t.Run("sessions are apart", func(t *testing.T) {
		s := newStore(t)
		a, _, _ := s.Activate(ctx, "a", true)
		s.Save(ctx, "a", a, []byte("A"), time.Minute)
		if e, snap, _ := s.Activate(ctx, "b", true); e != 1 || snap != nil {
			t.Fatalf("b sees %d %q", e, snap)
		}
	})
	t.Run("concurrent activations: one writer", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		epochs := make(chan int64, 20)
		for range 20 {
			wg.Go(func() {
				e, _, err := s.Activate(ctx, "s1", true)
				if err != nil {
					t.Error(err)
				}
				epochs <- e
			})
		}
		wg.Wait()
		close(epochs)
		var all []int64
		for e := range epochs {
			all = append(all, e)
		}
		slices.Sort(all)
		if len(slices.Compact(slices.Clone(all))) != 20 {
			t.Fatalf("epochs not distinct: %v", all)
		}
		writers := 0
		for _, e := range all {
			if s.Save(ctx, "s1", e, []byte(strconv.FormatInt(e, 10)), time.Minute) == nil {
				writers++
			}
		}
		if writers != 1 {
			t.Fatalf("%d activations could write, want 1", writers)
		}
	})
}

func TestMemorySnapshots(t *testing.T) {
	testSnapshots(t, func(*testing.T) Snapshots { return &MemorySnapshots{} })
}

func TestRedisSnapshots(t *testing.T) {
	client := redistest.Start(t)
	n := 0
	testSnapshots(t, func(*testing.T) Snapshots {
		n++
		return NewRedisSnapshots(client, "t"+strconv.Itoa(n)+":")
	})
	// The snapshot expires with the idle timeout, the fence does not.
	ctx := context.Background()
	s := NewRedisSnapshots(client, "ttl:")
	e, _, _ := s.Activate(ctx, "s1", true)
	if err := s.Save(ctx, "s1", e, []byte("v"), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	keys := s.keys("s1")
	snapTTL, _ := client.PTTL(ctx, keys[1]).Result()
	fenceTTLLeft, _ := client.PTTL(ctx, keys[0]).Result()
	if snapTTL <= 0 || snapTTL > 30*time.Second || fenceTTLLeft < time.Hour {
		t.Errorf("snapshot expires in %v (want ≤ 30 s), fence in %v (want ≥ 1 h)", snapTTL, fenceTTLLeft)
	}
	// With no idle timeout, neither expires.
	if err := s.Save(ctx, "s1", e, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if a, b := client.PTTL(ctx, keys[1]).Val(), client.PTTL(ctx, keys[0]).Val(); a != -1 || b != -1 {
		t.Errorf("with ttl 0: snapshot ttl %v, fence ttl %v; want both -1 (none)", a, b)
	}
}

// What a session without a snapshot leaves is short-lived: one deleted or
// ended keeps its epoch counter endedFenceTTL, one created and not saved
// yet unsavedFenceTTL, not fenceTTL; and a stale write stays fenced after
// that.
func TestRedisBareFenceExpires(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedisSnapshots(client, "bare:")
	fence := func(id string) time.Duration { return client.PTTL(ctx, s.keys(id)[0]).Val() }
	check := func(what, id string, within time.Duration) {
		t.Helper()
		if d := fence(id); d <= within-time.Minute || d > within {
			t.Errorf("%s: the epoch expires in %v, want within %v", what, d, within)
		}
	}
	unsaved, _, _ := s.Activate(ctx, "unsaved", true)
	check("created, not saved", "unsaved", unsavedFenceTTL)
	e, _, _ := s.Activate(ctx, "deleted", true)
	s.Save(ctx, "deleted", e, []byte("v"), 0) // a session that never expires
	if d := fence("deleted"); d != -1 {
		t.Fatalf("a saved session with no idle timeout: epoch expires in %v, want never", d)
	}
	if err := s.Delete(ctx, "deleted", e); err != nil {
		t.Fatal(err)
	}
	check("deleted", "deleted", endedFenceTTL)
	e, _, _ = s.Activate(ctx, "ended", true)
	s.Save(ctx, "ended", e, []byte("v"), time.Hour)
	if d := fence("ended"); d < time.Hour {
		t.Fatalf("a saved session: epoch expires in %v, want ≥ 1 h", d)
	}
	s.End(ctx, "ended")
	check("ended", "ended", endedFenceTTL)
	// Gone, the counter still fences what it fenced.
	client.Del(ctx, s.keys("unsaved")[0], s.keys("deleted")[0])
	if err := s.Save(ctx, "unsaved", unsaved, []byte("late"), time.Minute); !errors.Is(err, ErrFenced) {
		t.Errorf("a write after the counter expired: %v", err)
	}
	if err := s.Delete(ctx, "deleted", e); !errors.Is(err, ErrFenced) {
		t.Errorf("a delete after the counter expired: %v", err)
	}
}

// In memory the same, and what expired is forgotten even if nothing looks
// it up again: a user looping initialize and DELETE leaves a bounded map.
func TestMemoryBareFenceForgotten(t *testing.T) {
	now := time.Unix(1000, 0)
	m := &MemorySnapshots{Now: func() time.Time { return now }}
	ctx := context.Background()
	kept, _, _ := m.Activate(ctx, "kept", true)
	m.Save(ctx, "kept", kept, []byte("v"), 0)
	for i := range 1000 {
		id := "s" + strconv.Itoa(i)
		e, _, _ := m.Activate(ctx, id, true)
		switch i % 3 {
		case 0: // initialize, then DELETE
			m.Save(ctx, id, e, []byte("v"), time.Hour)
			m.Delete(ctx, id, e)
		case 1: // an operator's kill
			m.Save(ctx, id, e, []byte("v"), time.Hour)
			m.End(ctx, id)
		} // 2: created, never saved
	}
	stale, _, _ := m.Activate(ctx, "s0", true) // fenced below once forgotten
	count := func() int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.sessions)
	}
	// All of them go after endedFenceTTL (in memory, where a save cannot
	// fail, one created and not saved as well), s0's second activation
	// among them.
	now = now.Add(endedFenceTTL)
	m.Activate(ctx, "next", true)
	if n := count(); n != 2 {
		t.Fatalf("%d entries once the fences of the sessions without snapshots expired, want 2 (kept, next)", n)
	}
	if snap, _ := m.Get(ctx, "kept"); string(snap) != "v" {
		t.Fatalf("a saved session was forgotten: %q", snap)
	}
	if err := m.Save(ctx, "s0", stale, []byte("late"), time.Minute); !errors.Is(err, ErrFenced) {
		t.Fatalf("a write after the entry was forgotten: %v", err)
	}
}

// In memory, expiry follows the clock.
func TestMemorySnapshotsExpire(t *testing.T) {
	now := time.Unix(1000, 0)
	m := &MemorySnapshots{Now: func() time.Time { return now }}
	ctx := context.Background()
	e, _, _ := m.Activate(ctx, "s1", true)
	m.Save(ctx, "s1", e, []byte("v"), time.Minute)
	now = now.Add(2 * time.Minute)
	e2, snap, _ := m.Activate(ctx, "s1", true)
	if snap != nil || e2 != e+1 {
		t.Fatalf("after the idle timeout: epoch %d snap %q; want %d, nil", e2, snap, e+1)
	}
	if err := m.Save(ctx, "s1", e, []byte("stale"), time.Minute); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale write after expiry: %v", err)
	}
}

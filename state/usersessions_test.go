package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// testUserSessions is the contract every UserSessions keeps.
func testUserSessions(t *testing.T, s UserSessions, idle func(time.Duration)) {
	ctx := context.Background()
	claim := func(user, session string, max int, ttl time.Duration) (bool, time.Duration) {
		t.Helper()
		ok, retry, err := s.Claim(ctx, user, session, max, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok, retry
	}
	const ttl = time.Hour
	for i := range 3 {
		if ok, _ := claim("alice", fmt.Sprint("a", i), 3, ttl); !ok {
			t.Fatalf("session %d of 3 refused", i)
		}
	}
	ok, retry := claim("alice", "a3", 3, ttl)
	if ok || retry <= 0 || retry > ttl {
		t.Fatalf("fourth of 3: ok %v, retry %v; want refused, retry within the idle timeout", ok, retry)
	}
	if ok, _ := claim("alice", "a1", 3, ttl); !ok {
		t.Error("a session already counted was refused")
	}
	if ok, _ := claim("bob", "b0", 3, ttl); !ok {
		t.Error("another user was refused")
	}
	if err := s.Release(ctx, "alice", "a0"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := claim("alice", "a3", 3, ttl); !ok {
		t.Error("a released slot was not free")
	}
	// A released session is not counted again by a late touch.
	s.Touch(ctx, "alice", "a0", ttl)
	if ok, _ := claim("alice", "a4", 4, ttl); !ok {
		t.Error("a released session came back with a touch")
	}

	// Sessions idle for the timeout no longer count; touched ones do.
	if ok, _ := claim("carol", "c0", 2, 2*time.Second); !ok {
		t.Fatal("carol refused")
	}
	claim("carol", "c1", 2, 2*time.Second)
	idle(1200 * time.Millisecond)
	s.Touch(ctx, "carol", "c1", 2*time.Second)
	idle(1200 * time.Millisecond)
	if ok, _ := claim("carol", "c2", 2, 2*time.Second); !ok {
		t.Error("an expired session still counted")
	}
	if ok, _ := claim("carol", "c3", 2, 2*time.Second); ok {
		t.Error("a touched session no longer counted")
	}

	// Claims racing at max-1: exactly one passes.
	claim("dave", "d0", 2, ttl)
	var wg sync.WaitGroup
	var passed atomic.Int32
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _, err := s.Claim(ctx, "dave", fmt.Sprint("r", i), 2, ttl); err == nil && ok {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 1 {
		t.Errorf("%d racing claims passed at max-1, want 1", passed.Load())
	}

	// Sessions names the sessions counted under a user; Forget stops
	// counting a session whichever user's it is.
	claim("erin", "e0", 3, ttl)
	claim("erin", "e1", 3, ttl)
	claim("frank", "f0", 3, ttl)
	sessions := func(user string) []string {
		t.Helper()
		ids, err := s.Sessions(ctx, user, 3)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}
	if got := sessions("erin"); !slices.Equal(got, []string{"e0", "e1"}) {
		t.Errorf("erin's sessions: %q", got)
	}
	if got := sessions("nobody"); len(got) != 0 {
		t.Errorf("the sessions of a user with none: %q", got)
	}
	if err := s.Forget(ctx, "e0"); err != nil {
		t.Fatal(err)
	}
	if got, others := sessions("erin"), sessions("frank"); !slices.Equal(got, []string{"e1"}) || !slices.Equal(others, []string{"f0"}) {
		t.Errorf("after Forget(e0): erin's %q, frank's %q", got, others)
	}
	if err := s.Forget(ctx, "never-counted"); err != nil {
		t.Errorf("Forget of a session counted nowhere: %v", err)
	}
}

func TestMemoryUserSessions(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	m := &MemoryUserSessions{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	testUserSessions(t, m, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() })
}

// Redis counts by its own clock: the test waits for real.
func TestRedisUserSessions(t *testing.T) {
	client := redistest.Start(t)
	s := NewRedisUserSessions(client, "u:")
	testUserSessions(t, s, time.Sleep)
	ctx := context.Background()
	if ttl := client.PTTL(ctx, "u:user:{alice}:sessions").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("set expires in %v, want within the idle timeout", ttl)
	}
	// A user's set of more than twice the cap, and more than
	// minSessionsRead, was not written by pingmcp: refused unread. Forget
	// finds a session in the sets of every user, past a page of the scan,
	// and in no other key.
	zed := make([]redis.Z, minSessionsRead+1)
	for i := range zed {
		zed[i] = redis.Z{Score: 1, Member: fmt.Sprint("z", i)}
	}
	client.ZAdd(ctx, "u:user:{zed}:sessions", zed...)
	if _, err := s.Sessions(ctx, "zed", 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a set of %d read with a cap of 3: %v, want a *TooLarge", len(zed), err)
	}
	if ids, err := s.Sessions(ctx, "zed", minSessionsRead/2+1); err != nil || len(ids) != len(zed) {
		t.Errorf("a set of %d read with a cap of %d: %d, %v", len(zed), minSessionsRead/2+1, len(ids), err)
	}
	pipe := client.Pipeline()
	for i := range forgetPage + 10 {
		pipe.ZAdd(ctx, fmt.Sprintf("u:user:{many%d}:sessions", i), redis.Z{Score: 1, Member: "shared"}, redis.Z{Score: 1, Member: "kept"})
	}
	pipe.ZAdd(ctx, "u:user:{many0}:tasks", redis.Z{Score: 1, Member: "shared"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Forget(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	for i := range forgetPage + 10 {
		if ids, _ := s.Sessions(ctx, fmt.Sprintf("many%d", i), 1); !slices.Equal(ids, []string{"kept"}) {
			t.Fatalf("after Forget(shared), many%d's sessions: %q", i, ids)
		}
	}
	if client.ZScore(ctx, "u:user:{many0}:tasks", "shared").Err() != nil {
		t.Error("Forget of a session took a task of the same id from a user's tasks")
	}
}

// A user's live tasks are counted by the same contract, under a set of
// their own in the user's hash tag, apart from the user's sessions.
func TestRedisUserTasks(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	tasks, sessions := NewRedisUserTasks(client, "u:"), NewRedisUserSessions(client, "u:")
	if ok, _, err := tasks.Claim(ctx, "alice", "t0", 1, time.Hour); err != nil || !ok {
		t.Fatalf("first task: ok %v, err %v", ok, err)
	}
	if ok, _, _ := tasks.Claim(ctx, "alice", "t1", 1, time.Hour); ok {
		t.Fatal("a second task passed a cap of 1")
	}
	if ok, _, _ := sessions.Claim(ctx, "alice", "s0", 1, time.Hour); !ok {
		t.Fatal("a task took a session's place")
	}
	if n := client.ZCard(ctx, "u:user:{alice}:tasks").Val(); n != 1 {
		t.Fatalf("u:user:{alice}:tasks holds %d, want 1", n)
	}
	testUserSessions(t, NewRedisUserTasks(client, "v:"), time.Sleep)
}

// Users who never come back are forgotten once their sessions are idle for
// the ttl, whatever the others do: the table does not grow with every user
// ever seen.
func TestMemoryUserSessionsForgetsIdleUsers(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	m := &MemoryUserSessions{Now: func() time.Time { return now }}
	ctx := context.Background()
	for i := range 100 {
		if ok, _, err := m.Claim(ctx, fmt.Sprint("user", i), "s", 5, time.Minute); !ok || err != nil {
			t.Fatalf("claim: %v %v", ok, err)
		}
	}
	now = now.Add(2 * time.Minute)
	m.Touch(ctx, "alice", "s", time.Minute) // another user carries on
	m.mu.Lock()
	n := len(m.users)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d users idle for twice the ttl still kept, want 0", n)
	}
	// An active session is kept by the sweep.
	m.Claim(ctx, "bob", "s", 5, time.Minute)
	now = now.Add(50 * time.Second)
	m.Touch(ctx, "bob", "s", time.Minute)
	now = now.Add(50 * time.Second) // a sweep is due
	m.Release(ctx, "carol", "s")
	if ok, _, _ := m.Claim(ctx, "bob", "t", 1, time.Minute); ok {
		t.Error("bob's active session was forgotten")
	}
}

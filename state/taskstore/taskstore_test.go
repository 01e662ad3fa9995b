package taskstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func testStore(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	task := &Task{ID: "t1", Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now,
		TTL: time.Hour, PollInterval: time.Second, Request: json.RawMessage(`{"name":"slow"}`), Runner: "node/a", LeaseUntil: now.Add(time.Minute)}
	if err := s.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, task); !errors.Is(err, ErrExists) {
		t.Fatalf("second create of t1: %v, want ErrExists", err)
	}
	got, err := s.Get(ctx, "alice", "t1")
	if err != nil || got == nil {
		t.Fatalf("get: %v, %v", got, err)
	}
	if got.Status != "working" || got.TTL != time.Hour || got.PollInterval != time.Second || !got.CreatedAt.Equal(now) || string(got.Request) != `{"name":"slow"}` || got.Runner != "node/a" {
		t.Fatalf("stored task reads back as %+v", got)
	}
	// Another owner's view of the same id: nothing.
	if other, err := s.Get(ctx, "mallory", "t1"); err != nil || other != nil {
		t.Fatalf("another owner's get: %+v, %v; want nothing", other, err)
	}
	if u, err := s.Update(ctx, "mallory", "t1", func(*Task) error { return nil }); err != nil || u != nil {
		t.Fatalf("another owner's update: %+v, %v; want nothing", u, err)
	}

	// Concurrent updates all land (compare and set).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Update(ctx, "alice", "t1", func(t *Task) error {
				if t.Responses == nil {
					t.Responses = map[string]json.RawMessage{}
				}
				t.Responses[time.Now().String()+string(rune('a'+len(t.Responses)))] = json.RawMessage(`1`)
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ = s.Get(ctx, "alice", "t1")
	if len(got.Responses) != 8 {
		t.Fatalf("8 concurrent updates left %d responses", len(got.Responses))
	}
	// A change that refuses leaves the task as it was.
	refused := errors.New("no")
	if _, err := s.Update(ctx, "alice", "t1", func(t *Task) error { t.Status = "failed"; return refused }); !errors.Is(err, refused) {
		t.Fatalf("refused update: %v", err)
	}
	if got, _ = s.Get(ctx, "alice", "t1"); got.Status != "working" {
		t.Fatalf("refused update changed the status to %q", got.Status)
	}

	// A task expires its TTL after its last change.
	short := &Task{ID: "t2", Owner: "alice", Status: "completed", CreatedAt: now, UpdatedAt: now, TTL: 300 * time.Millisecond}
	if err := s.Create(ctx, short); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := s.Get(ctx, "alice", "t2")
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a task with a 300ms TTL is still there after 5s")
		}
		time.Sleep(50 * time.Millisecond) // polling an expiry: no event to await
	}
}

func TestMemory(t *testing.T) { testStore(t, &Memory{}) }

func TestRedis(t *testing.T) { testStore(t, NewRedis(redistest.Start(t), "test:")) }

func TestTerminal(t *testing.T) {
	for status, want := range map[string]bool{"working": false, "input_required": false, "completed": true, "failed": true, "cancelled": true} {
		if got := (&Task{Status: status}).Terminal(); got != want {
			t.Errorf("%s: terminal %v, want %v", status, got, want)
		}
	}
}

// With replication asked for, a write is confirmed once a replica holds
// it (a Redis Cluster of one master and its replica), and refused
// (ErrNotReplicated) where no replica can acknowledge it.
func TestRedisReplication(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	task := func(id string) *Task {
		return &Task{ID: id, Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}
	}
	touch := func(t *Task) error { t.StatusMessage = "touched"; return nil }

	lone := NewRedis(redistest.Start(t), "r:")
	lone.SetReplication(1, 100*time.Millisecond)
	if err := lone.Create(ctx, task("t1")); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("create without a replica: %v, want ErrNotReplicated", err)
	}
	if _, err := lone.Update(ctx, "alice", "t1", touch); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("update without a replica: %v, want ErrNotReplicated", err)
	}

	c := redistest.StartCluster(t, 1, 1)
	replicated := NewRedis(c.Client(), "r:")
	replicated.SetReplication(1, 5*time.Second)
	if err := replicated.Create(ctx, task("t2")); err != nil {
		t.Fatalf("create with a replica: %v", err)
	}
	if err := replicated.Create(ctx, task("t2")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create with a replica: %v, want ErrExists", err)
	}
	if u, err := replicated.Update(ctx, "alice", "t2", touch); err != nil || u.StatusMessage != "touched" {
		t.Fatalf("update with a replica: %+v, %v", u, err)
	}
}

// Leases indexes an owner's leased tasks: written with each task, another
// owner's not among them, a task that ends (or expires) out of them.
func testLeases(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	lease := now.Add(time.Minute)
	for _, task := range []*Task{
		{ID: "l1", Owner: "carol", Status: "working", Runner: "n/a", LeaseUntil: lease},
		{ID: "l2", Owner: "carol", Status: "input_required"},
		{ID: "l3", Owner: "dave", Status: "working", Runner: "n/a", LeaseUntil: lease},
		{ID: "l4", Owner: "carol", Status: "working", Runner: "n/a", LeaseUntil: lease, TTL: 200 * time.Millisecond},
	} {
		if task.TTL == 0 {
			task.TTL = time.Hour
		}
		task.CreatedAt, task.UpdatedAt = now, now
		if err := s.Create(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Leases(ctx, "carol")
	if err != nil || len(got) != 2 || !got["l1"].Equal(lease) || !got["l4"].Equal(lease) {
		t.Fatalf("carol's leases: %v, %v; want l1 and l4 until %v", got, err, lease)
	}
	if _, err := s.Update(ctx, "carol", "l1", func(t *Task) error { t.Status, t.Runner = "completed", ""; return nil }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if g, _ := s.Get(ctx, "carol", "l4"); g == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("l4 did not expire")
		}
		time.Sleep(50 * time.Millisecond) // polling an expiry: no event to await
	}
	// What a sweep does with an expired task in the index: an update.
	if u, err := s.Update(ctx, "carol", "l4", func(*Task) error { return nil }); err != nil || u != nil {
		t.Fatalf("update of an expired task: %v, %v", u, err)
	}
	if got, err := s.Leases(ctx, "carol"); err != nil || len(got) != 0 {
		t.Fatalf("carol's leases once l1 completed and l4 expired: %v, %v; want none", got, err)
	}
}

func TestMemoryLeases(t *testing.T) { testLeases(t, &Memory{}) }

func TestRedisLeases(t *testing.T) { testLeases(t, NewRedis(redistest.Start(t), "lease:")) }

// List pages through every owner's tasks, or one owner's, each once when
// nothing changes meanwhile; a cursor it did not return is ErrBadCursor.
func testList(t *testing.T, s Store) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	want := map[string]string{} // owner/id → subject
	for i := range 60 {
		owner := []string{"erin", "frank", "grace"}[i%3]
		id := fmt.Sprintf("t%02d", i)
		task := &Task{ID: id, Owner: owner, Subject: owner + "-sub", Issuer: "https://idp", ClientID: "c", Status: "working",
			CreatedAt: now, UpdatedAt: now, TTL: time.Hour}
		if err := s.Create(ctx, task); err != nil {
			t.Fatal(err)
		}
		want[owner+"/"+id] = owner + "-sub"
	}
	all := func(owner string) map[string]string {
		got, cursor, pages := map[string]string{}, "", 0
		for {
			page, next, err := s.List(ctx, owner, cursor, 7)
			if err != nil {
				t.Fatalf("list %q from %q: %v", owner, cursor, err)
			}
			for _, task := range page {
				if _, dup := got[task.Owner+"/"+task.ID]; dup {
					t.Errorf("%s/%s listed twice", task.Owner, task.ID)
				}
				got[task.Owner+"/"+task.ID] = task.Subject
			}
			pages++
			if next == "" {
				break
			}
			if pages > 100 {
				t.Fatal("List never ends")
			}
			cursor = next
		}
		return got
	}
	if got := all(""); !maps.Equal(got, want) {
		t.Fatalf("every owner's tasks: %v\nwant %v", got, want)
	}
	got := all("frank")
	if len(got) != 20 {
		t.Fatalf("frank's tasks: %d of them, want 20: %v", len(got), got)
	}
	for k, sub := range got {
		if !strings.HasPrefix(k, "frank/") || sub != "frank-sub" {
			t.Errorf("frank's list has %s (%s)", k, sub)
		}
	}
	if got := all("nobody"); len(got) != 0 {
		t.Fatalf("an owner without tasks lists %v", got)
	}
	if _, _, err := s.List(ctx, "", "not a cursor!", 10); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("a made-up cursor: %v, want ErrBadCursor", err)
	}
	if _, err := s.Update(ctx, "erin", "t00", func(t *Task) error { t.Status = "completed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := CountByStatus(ctx, s); err != nil || len(n) != 2 || n["working"] != 59 || n["completed"] != 1 {
		t.Fatalf("CountByStatus: %v, %v; want 59 working, 1 completed", n, err)
	}
}

func TestMemoryList(t *testing.T) { testList(t, &Memory{}) }

func TestRedisList(t *testing.T) { testList(t, NewRedis(redistest.Start(t), "list:")) }

// On a Redis Cluster, List visits every master.
func TestRedisClusterList(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client := c.Client()
	testList(t, NewRedis(client, "list:"))
	// The owners' tasks are spread: the list did visit several masters.
	var mu sync.Mutex
	holding := 0
	if err := client.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		if keys, _ := m.Keys(ctx, "list:task:*").Result(); len(keys) > 0 {
			mu.Lock()
			holding++
			mu.Unlock()
		}
		return nil
	}); err != nil || holding < 2 {
		t.Fatalf("the tasks are held by %d masters (%v); the test needs them spread", holding, err)
	}
}

// An owner keeps at most MaxKeptPerOwner tasks: beyond, Create takes away
// its oldest tasks that ended, never a live one, nor another owner's.
func testKept(t *testing.T, s Store) {
	defer func(n int) { MaxKeptPerOwner = n }(MaxKeptPerOwner)
	MaxKeptPerOwner = 5
	ctx := context.Background()
	start := time.Now().Truncate(time.Millisecond)
	create := func(owner, id string, i int) {
		t.Helper()
		at := start.Add(time.Duration(i) * time.Millisecond)
		if err := s.Create(ctx, &Task{ID: id, Owner: owner, Status: "working", CreatedAt: at, UpdatedAt: at, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	create("other", "o1", 0)
	for i := range 5 {
		create("alice", fmt.Sprintf("t%d", i), i)
		if i > 0 { // t0 stays live
			if _, err := s.Update(ctx, "alice", fmt.Sprintf("t%d", i), func(t *Task) error { t.Status = "completed"; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 5; i < 8; i++ {
		create("alice", fmt.Sprintf("t%d", i), i)
	}
	page, _, err := s.List(ctx, "alice", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, task := range page {
		got = append(got, task.ID)
	}
	slices.Sort(got)
	if want := []string{"t0", "t4", "t5", "t6", "t7"}; !slices.Equal(got, want) {
		t.Errorf("alice keeps %v, want %v (the live t0, then the newest)", got, want)
	}
	if o, err := s.Get(ctx, "other", "o1"); err != nil || o == nil {
		t.Errorf("another owner's task went: %v", err)
	}
}

func TestMemoryKept(t *testing.T) { testKept(t, &Memory{}) }

func TestRedisKept(t *testing.T) { testKept(t, NewRedis(redistest.Start(t), "kept:")) }

// The memory store forgets what it kept of owners whose tasks all expired:
// its index of kept ids does not grow with the owners it ever saw.
func TestMemoryKeptForgetsExpiredOwners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Memory{}
		ctx := context.Background()
		for i := range 1000 {
			now := time.Now()
			if err := m.Create(ctx, &Task{ID: "t", Owner: fmt.Sprintf("o%d", i), Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second) // the bubble's clock: every task expired
		now := time.Now()
		if err := m.Create(ctx, &Task{ID: "t", Owner: "last", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if len(m.m) != 1 || len(m.kept) != 1 || len(m.ended) != 0 {
			t.Errorf("%d tasks, %d owners kept, %d ended, want 1, 1, 0", len(m.m), len(m.kept), len(m.ended))
		}
	})
}

// Ids of tasks that expired do not count against the bound in Redis: an
// owner at the bound with one of them keeps MaxKeptPerOwner tasks, not
// fewer.
func TestRedisKeptIgnoresExpired(t *testing.T) {
	defer func(n int) { MaxKeptPerOwner = n }(MaxKeptPerOwner)
	MaxKeptPerOwner = 5
	client := redistest.Start(t)
	s := NewRedis(client, "kx:")
	ctx := context.Background()
	start := time.Now().Truncate(time.Millisecond)
	for i := range 6 {
		at := start.Add(time.Duration(i) * time.Millisecond)
		id := fmt.Sprintf("t%d", i)
		if err := s.Create(ctx, &Task{ID: id, Owner: "alice", Status: "working", CreatedAt: at, UpdatedAt: at, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			// An id whose task expired (its score is when it did).
			if err := client.ZAdd(ctx, s.keptKey("alice"), redis.Z{Score: 1, Member: "gone"}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if i > 0 && i < 5 {
			if _, err := s.Update(ctx, "alice", id, func(t *Task) error { t.Status = "completed"; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	page, _, err := s.List(ctx, "alice", "", 100)
	if err != nil || len(page) != MaxKeptPerOwner {
		t.Fatalf("alice keeps %d tasks (%v), want %d", len(page), err, MaxKeptPerOwner)
	}
}

// Between its walks over every task (at most one a second), the memory
// store still gives no expired task: Get, Leases and List check each
// one's expiry, and find an owner's through its kept ids, not through
// every task of the node.
func TestMemoryExpiredBetweenSweeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Memory{}
		ctx := context.Background()
		now := time.Now()
		for i, ttl := range []time.Duration{time.Millisecond, time.Hour} {
			task := &Task{ID: fmt.Sprintf("t%d", i), Owner: "alice", Status: "working", Runner: "n/a", LeaseUntil: now.Add(time.Hour),
				CreatedAt: now, UpdatedAt: now, TTL: ttl}
			if err := m.Create(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Create(ctx, &Task{ID: "b", Owner: "bob", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // t0 expired; no sweep is due yet
		leases, err := m.Leases(ctx, "alice")
		if err != nil || len(leases) != 1 || leases["t1"].IsZero() {
			t.Errorf("leases %v, %v; want t1's only", leases, err)
		}
		tasks, _, err := m.List(ctx, "alice", "", 10)
		if err != nil || len(tasks) != 1 || tasks[0].ID != "t1" {
			t.Errorf("alice's tasks %v, %v; want t1 only", tasks, err)
		}
		all, _, err := m.List(ctx, "", "", 10)
		if err != nil || len(all) != 2 {
			t.Errorf("all tasks: %d, %v; want t1 and b", len(all), err)
		}
		if got, err := m.Get(ctx, "alice", "t0"); got != nil || err != nil {
			t.Errorf("an expired task: %v, %v", got, err)
		}
	})
}

// Owners whose expired tasks were dropped as they were read (Get, Leases,
// List), between walks, are forgotten too; and a task created again under
// the id of one that expired unseen is kept, and listed, once.
func TestMemoryForgetsOwnersReadExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Memory{}
		ctx := context.Background()
		now := time.Now()
		for i := range 100 {
			if err := m.Create(ctx, &Task{ID: "t", Owner: fmt.Sprintf("o%d", i), Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Create(ctx, &Task{ID: "t", Owner: "unseen", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // all expired; no walk due for a second
		for i := range 100 {
			if leases, err := m.Leases(ctx, fmt.Sprintf("o%d", i)); err != nil || len(leases) != 0 {
				t.Fatalf("leases of an owner whose task expired: %v, %v", leases, err)
			}
		}
		now = time.Now()
		if err := m.Create(ctx, &Task{ID: "t", Owner: "o0", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		_, o1 := m.kept["o1"]
		ids := len(m.kept["o0"])
		m.mu.Unlock()
		if o1 || ids != 1 {
			t.Errorf("o1 kept: %v, o0 with %d ids; want o1 forgotten, o0 with 1", o1, ids)
		}
		// unseen's task expired unread; created again under its id.
		if err := m.Create(ctx, &Task{ID: "t", Owner: "unseen", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if tasks, _, err := m.List(ctx, "unseen", "", 10); err != nil || len(tasks) != 1 {
			t.Errorf("unseen's tasks: %d, %v; want 1", len(tasks), err)
		}
	})
}

// A user keeps at most MaxKeptPerUser tasks, all their clients' (owners')
// together: beyond, Create takes away the user's oldest tasks that ended,
// whichever client's, never a live one, nor another user's.
func testKeptPerUser(t *testing.T, s Store) {
	defer func(n int) { MaxKeptPerUser = n }(MaxKeptPerUser)
	MaxKeptPerUser = 4
	ctx := context.Background()
	start := time.Now().Truncate(time.Millisecond)
	n := 0
	create := func(owner, subject, id string, done bool) {
		t.Helper()
		n++
		at := start.Add(time.Duration(n) * time.Millisecond)
		if err := s.Create(ctx, &Task{ID: id, Owner: owner, Issuer: "https://idp", Subject: subject, Status: "working", CreatedAt: at, UpdatedAt: at, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if done {
			if _, err := s.Update(ctx, owner, id, func(t *Task) error { t.Status = "completed"; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	create("bob-c1", "bob", "b1", true)
	create("alice-c1", "alice", "live", false)
	// Each client of alice's keeps far fewer than MaxKeptPerOwner. (Redis
	// orders them by when they expire, to the millisecond, then by owner
	// and id: these sort in the order they are made.)
	for i := range 6 {
		create(fmt.Sprintf("alice-c%d", i/2+1), "alice", fmt.Sprintf("a%d", i), true)
	}
	var kept []string
	for _, owner := range []string{"alice-c1", "alice-c2", "alice-c3"} {
		page, _, err := s.List(ctx, owner, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range page {
			kept = append(kept, task.ID)
		}
	}
	slices.Sort(kept)
	if want := []string{"a3", "a4", "a5", "live"}; !slices.Equal(kept, want) {
		t.Errorf("alice's clients keep %v, want %v (the live one, then the newest)", kept, want)
	}
	if b, err := s.Get(ctx, "bob-c1", "b1"); err != nil || b == nil {
		t.Errorf("another user's task went: %v", err)
	}
}

// A user of one client, whose two bounds are the same: each task beyond
// them takes one ended task away, not one for each bound.
func testKeptBothBounds(t *testing.T, s Store) {
	defer func(o, u int) { MaxKeptPerOwner, MaxKeptPerUser = o, u }(MaxKeptPerOwner, MaxKeptPerUser)
	MaxKeptPerOwner, MaxKeptPerUser = 3, 3
	ctx := context.Background()
	start := time.Now().Truncate(time.Millisecond)
	for i := range 6 {
		at := start.Add(time.Duration(i) * time.Millisecond)
		id := fmt.Sprintf("a%d", i)
		if err := s.Create(ctx, &Task{ID: id, Owner: "alice-c1", Issuer: "https://idp", Subject: "alice", Status: "working", CreatedAt: at, UpdatedAt: at, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "alice-c1", id, func(t *Task) error { t.Status = "completed"; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	page, _, err := s.List(ctx, "alice-c1", "", 100)
	if err != nil || len(page) != 3 {
		t.Errorf("alice keeps %d tasks (%v), want 3", len(page), err)
	}
}

func TestMemoryKeptBothBounds(t *testing.T) { testKeptBothBounds(t, &Memory{}) }

func TestRedisKeptBothBounds(t *testing.T) {
	testKeptBothBounds(t, NewRedis(redistest.Start(t), "kbb:"))
}

func TestMemoryKeptPerUser(t *testing.T) { testKeptPerUser(t, &Memory{}) }

func TestRedisKeptPerUser(t *testing.T) { testKeptPerUser(t, NewRedis(redistest.Start(t), "kpu:")) }

// On a Redis Cluster the user's sets sit in another slot than their
// clients' tasks: the bound holds there too.
func TestRedisClusterKeptPerUser(t *testing.T) {
	testKeptPerUser(t, NewRedis(redistest.StartCluster(t, 3, 0).Client(), "kpu:"))
}

// Nor does it grow with the users it ever saw.
func TestMemoryKeptForgetsExpiredUsers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Memory{}
		ctx := context.Background()
		for i := range 1000 {
			now := time.Now()
			if err := m.Create(ctx, &Task{ID: "t", Owner: fmt.Sprintf("o%d", i), Issuer: "https://idp", Subject: fmt.Sprintf("u%d", i), Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second) // the bubble's clock: every task expired
		now := time.Now()
		if err := m.Create(ctx, &Task{ID: "t", Owner: "last", Issuer: "https://idp", Subject: "last", Status: "working", CreatedAt: now, UpdatedAt: now, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if len(m.users) != 1 || len(m.userOf) != 1 {
			t.Errorf("%d users kept, %d keys' users, want 1, 1", len(m.users), len(m.userOf))
		}
	})
}

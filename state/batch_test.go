package state

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// heldTrips is a go-redis hook that counts round trips (a command alone,
// or a pipeline) and holds the first hold of them until released.
type heldTrips struct {
	mu      sync.Mutex
	trips   []int // commands in each round trip
	hold    int
	release chan struct{}
}

func (h *heldTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *heldTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "hello" || n == "client" {
			return next(ctx, cmd) // a new connection's handshake
		}
		h.took(1)
		return next(ctx, cmd)
	}
}

func (h *heldTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if n := cmds[0].Name(); n == "hello" || n == "client" {
			return next(ctx, cmds)
		}
		h.took(len(cmds))
		return next(ctx, cmds)
	}
}

func (h *heldTrips) took(cmds int) {
	h.mu.Lock()
	h.trips = append(h.trips, cmds)
	held := len(h.trips) <= h.hold
	h.mu.Unlock()
	if held {
		<-h.release
	}
}

// heldWrites makes n writes (write(i)) at once while h holds the first
// round trips: it waits until the others wait in events' batcher, then
// releases h, and returns the round trips made (commands in each) once
// every write succeeded.
func heldWrites(t *testing.T, events *RedisEvents, h *heldTrips, n int, write func(i int) error) []int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- write(i) })
	}
	// maxBatches writes are in flight (held), the others wait.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		events.w.batch.mu.Lock()
		queued := len(events.w.batch.queue)
		events.w.batch.mu.Unlock()
		if queued == n-maxBatches {
			break
		}
		if time.Now().After(deadline) {
			close(h.release)
			t.Fatalf("%d writes wait, want %d", queued, n-maxBatches)
		}
	}
	close(h.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.trips)
}

// Writes made while the batcher's pipelines are all in flight wait and go
// together, in one round trip (with one WAIT for them all when writes wait
// for a replica); each gets its own answer, and what they wrote is stored,
// also when Redis no longer knows the scripts (NOSCRIPT, as after a
// restart: they are sent again whole).
func TestBatchedWrites(t *testing.T) {
	for _, c := range []struct {
		flush    bool
		replicas int
	}{{false, 0}, {true, 0}, {false, 1}} {
		t.Run(fmt.Sprintf("script-flush=%v/replicas=%d", c.flush, c.replicas), func(t *testing.T) {
			flush := c.flush
			client := redistest.Start(t)
			ctx := context.Background()
			events := NewRedisEvents(client, "", EventOptions{})
			if c.replicas > 0 {
				redistest.StartReplica(t, client.Options().Addr)
				events.SetReplication(Replication{Replicas: c.replicas, Timeout: 5 * time.Second})
			}
			if events.w.batch == nil {
				t.Fatal("a store of one Redis server does not batch its writes")
			}
			const streams = 40
			for i := range streams {
				if err := events.OpenFor(ctx, "s", fmt.Sprint(i), "", 0, nil); err != nil {
					t.Fatal(err)
				}
			}
			// Redis knows the append script (unless flushed below).
			if err := events.OpenFor(ctx, "other", "x", "", 0, nil); err != nil {
				t.Fatal(err)
			}
			if err := events.AppendAt(ctx, "other", "x", 0, "", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if flush {
				if err := client.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
			h := &heldTrips{hold: maxBatches, release: make(chan struct{})}
			client.AddHook(h)
			trips := heldWrites(t, events, h, streams, func(i int) error {
				return events.AppendAt(ctx, "s", fmt.Sprint(i), 0, "", []byte(fmt.Sprint("event ", i)))
			})
			t.Logf("round trips, commands in each: %v", trips)
			if !slices.Contains(trips, streams-maxBatches+c.replicas) {
				t.Errorf("the %d writes that waited did not go in one round trip: %v", streams-maxBatches, trips)
			}
			if !flush && len(trips) != maxBatches+1 {
				t.Errorf("%d round trips for %d writes, want %d: %v", len(trips), streams, maxBatches+1, trips)
			}
			for i := range streams {
				var got []string
				for d, err := range events.After(ctx, "s", fmt.Sprint(i), -1) {
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, string(d))
				}
				if want := fmt.Sprint("event ", i); strings.Join(got, ",") != want {
					t.Fatalf("stream %d holds %q, want %q", i, got, want)
				}
			}
		})
	}
}

// A write behind an answer (Behind) takes a pipeline only when none is in
// flight: with one in flight it waits for the next batch, even past its
// context's end, while a write a request waits for still goes at once on
// the second, taking it along.
func TestBehindWritesWait(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	events := NewRedisEvents(client, "", EventOptions{})
	for _, s := range []string{"a", "b", "c"} {
		if err := events.OpenFor(ctx, "s", s, "", 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Alone, a write behind goes at once (one that may linger:
	// TestBehindWritesLinger).
	if err := events.AppendAt(Behind(ctx), "s", "b", 0, "", []byte("b0")); err != nil {
		t.Fatal(err)
	}
	h := &heldTrips{hold: 2, release: make(chan struct{})}
	client.AddHook(h)
	b := events.w.batch
	await := func(what string, busy, queued int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			b.mu.Lock()
			gb, gq := b.busy, len(b.queue)
			b.mu.Unlock()
			if gb == busy && gq == queued {
				return
			}
			if time.Now().After(deadline) {
				close(h.release)
				t.Fatalf("%s: %d pipelines in flight and %d writes waiting, want %d and %d", what, gb, gq, busy, queued)
			}
		}
	}
	errs := make(chan error, 3)
	write := func(ctx context.Context, stream string) {
		go func() { errs <- events.AppendAt(ctx, "s", stream, 0, "", []byte(stream+"1")) }()
	}
	write(ctx, "a")
	await("a request's write", 1, 0)
	behind, cancel := context.WithCancel(Behind(ctx))
	write(behind, "b")
	await("then a write behind an answer", 1, 1)
	cancel() // its caller's deadline passing while it waits changes nothing: it is not given up
	await("its context done", 1, 1)
	write(ctx, "c")
	await("then another request's write", 2, 0)
	close(h.release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if h.mu.Lock(); !slices.Equal(h.trips, []int{1, 2}) {
		t.Errorf("round trips, commands in each: %v, want [1 2]", h.trips)
	}
	h.mu.Unlock()
	for _, s := range []string{"a", "b", "c"} {
		var got []string
		for d, err := range events.After(ctx, "s", s, -1) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(d))
		}
		want := s + "1"
		if s == "b" {
			want = "b0,b1"
		}
		if strings.Join(got, ",") != want {
			t.Errorf("stream %s holds %q, want %q", s, got, want)
		}
	}
}

// A write behind an answer that may linger (Linger) and finds no pipeline
// in flight waits for a write to go with: a request's write made meanwhile
// takes it along, in one round trip; with none, it goes alone once the
// linger is over; the next such write, with no request's write between,
// goes at once; and a write behind that may not linger goes at once.
func TestBehindWritesLinger(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	events := NewRedisEvents(client, "", EventOptions{})
	b := events.w.batch
	if b.linger != behindLinger {
		t.Fatalf("linger %v, want %v", b.linger, behindLinger)
	}
	b.linger = time.Hour // what takes it along is the request's write, not the timer
	for _, s := range []string{"a", "b", "x"} {
		if err := events.OpenFor(ctx, "s", s, "", 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Redis knows the append script (a pipeline would send it again).
	if err := events.AppendAt(ctx, "s", "x", 0, "", []byte("x")); err != nil {
		t.Fatal(err)
	}
	h := &heldTrips{}
	client.AddHook(h)
	lingering := make(chan error, 1)
	go func() { lingering <- events.AppendAt(Linger(ctx), "s", "a", 0, "", []byte("a1")) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		busy, queued, armed := b.busy, len(b.queue), b.timer != nil
		b.mu.Unlock()
		if busy == 0 && queued == 1 && armed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write behind with no pipeline in flight: %d in flight, %d waiting, timer armed %v; want 0, 1, true", busy, queued, armed)
		}
	}
	if err := events.AppendAt(ctx, "s", "b", 0, "", []byte("b1")); err != nil {
		t.Fatal(err)
	}
	if err := <-lingering; err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	if b.timer != nil || b.busy != 0 || len(b.queue) != 0 {
		t.Errorf("after the batch: timer armed %v, %d in flight, %d waiting", b.timer != nil, b.busy, len(b.queue))
	}
	b.mu.Unlock()
	if h.mu.Lock(); !slices.Equal(h.trips, []int{2}) {
		t.Errorf("round trips, commands in each: %v, want [2]", h.trips)
	}
	h.trips = nil
	h.mu.Unlock()

	// A write behind that may not linger (a queue being caught up) goes
	// at once, as a request's write does.
	if err := events.AppendAt(Behind(ctx), "s", "b", 0, "", []byte("b2")); err != nil {
		t.Fatal(err)
	}
	if h.mu.Lock(); !slices.Equal(h.trips, []int{1}) {
		t.Errorf("round trips, commands in each: %v, want [1]", h.trips)
	}
	h.trips = nil
	h.mu.Unlock()

	// Alone, it goes once the linger is over.
	b.linger = 20 * time.Millisecond
	if err := events.AppendAt(Linger(ctx), "s", "a", 0, "", []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if h.mu.Lock(); !slices.Equal(h.trips, []int{1}) {
		t.Errorf("round trips, commands in each: %v, want [1]", h.trips)
	}
	h.mu.Unlock()
	// The next, with no request's write since, goes at once: writes
	// behind linger once per write a request waited for, not each (a
	// session's answers to a burst of requests, written in a row).
	b.linger = time.Hour
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		// The lone write's pipeline is over (its caller is told first).
		b.mu.Lock()
		busy, armed := b.busy, b.timer != nil
		b.mu.Unlock()
		if busy == 0 && !armed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the lone write: %d in flight, timer armed %v", busy, armed)
		}
	}
	again := make(chan error, 1)
	go func() { again <- events.AppendAt(Linger(ctx), "s", "a", 0, "", []byte("a3")) }()
	select {
	case err := <-again:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second write behind in a row lingered")
	}
	for s, want := range map[string]string{"a": "a1,a2,a3", "b": "b1,b2"} {
		var got []string
		for d, err := range events.After(ctx, "s", s, -1) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(d))
		}
		if strings.Join(got, ",") != want {
			t.Errorf("stream %s holds %q, want %q", s, got, want)
		}
	}
}

// On a Redis Cluster, with writes waiting for a replica, the writes that
// waited go in one pipeline per master (each with its WAIT), at the same
// time; each is stored and confirmed. Without replication, a batch is the
// cluster client's pipeline (it sends each write to its master): writes
// made at once are all stored.
func TestBatchedWritesCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	client := openCluster(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Run("replicas=0", func(t *testing.T) {
		events := NewRedisEvents(client, "unreplicated:", EventOptions{})
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				s := fmt.Sprint("session-", i)
				if err := events.OpenAppend(ctx, s, "st", "", 0, nil, "", []byte("first")); err != nil {
					t.Error(err)
				}
				if err := events.AppendAt(ctx, s, "st", 0, "", []byte("second")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for i := range 200 {
			var got []string
			for d, err := range events.After(ctx, fmt.Sprint("session-", i), "st", -1) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(d))
			}
			if want := []string{"first", "second"}; !slices.Equal(got, want) {
				t.Fatalf("session %d holds %q, want %q", i, got, want)
			}
		}
	})
	events := NewRedisEvents(client, "", EventOptions{})
	events.SetReplication(Replication{Replicas: 1, Timeout: 5 * time.Second})
	const sessions = 40
	for i := range sessions {
		// Every master knows both scripts.
		s := fmt.Sprint("session-", i)
		if err := events.OpenFor(ctx, s, "st", "", 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := events.AppendAt(ctx, s, "st", 0, "", []byte("first")); err != nil {
			t.Fatal(err)
		}
	}
	h := &heldTrips{hold: maxBatches, release: make(chan struct{})}
	if err := client.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		m.AddHook(h)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	trips := heldWrites(t, events, h, sessions, func(i int) error {
		return events.AppendAt(ctx, fmt.Sprint("session-", i), "st", 0, "", []byte(fmt.Sprint("second ", i)))
	})
	t.Logf("round trips, commands in each: %v", trips)
	// Two held writes alone, then the others in one pipeline per master
	// (three), each with its WAIT.
	if len(trips) > maxBatches+3 {
		t.Errorf("%d round trips for %d writes, want at most %d: %v", len(trips), sessions, maxBatches+3, trips)
	}
	commands := 0
	for _, n := range trips {
		commands += n
	}
	if commands != sessions+len(trips) {
		t.Errorf("%d commands in %d round trips, want %d writes and a WAIT each: %v", commands, len(trips), sessions, trips)
	}
	for i := range sessions {
		var got []string
		for d, err := range events.After(ctx, fmt.Sprint("session-", i), "st", -1) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(d))
		}
		if want := []string{"first", fmt.Sprint("second ", i)}; !slices.Equal(got, want) {
			t.Fatalf("session %d holds %q, want %q", i, got, want)
		}
	}
}

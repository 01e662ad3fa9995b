package actors_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

// roundTrips is a go-redis hook that counts the round trips a client makes:
// each command sent alone is one, each pipeline (a script and its WAIT,
// say) one, whatever it holds.
type roundTrips struct {
	mu    sync.Mutex
	trips int
	names map[string]int // what each round trip carried, by command names
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.count(cmd.Name())
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		r.count(strings.Join(names, "+"))
		return next(ctx, cmds)
	}
}

func (r *roundTrips) count(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trips++
	if r.names == nil {
		r.names = map[string]int{}
	}
	r.names[name]++
}

// take returns the round trips counted since the last take, and what they
// carried.
func (r *roundTrips) take() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var what []string
	for n, c := range r.names {
		what = append(what, fmt.Sprintf("%s×%d", n, c))
	}
	slices.Sort(what)
	n := r.trips
	r.trips, r.names = 0, nil
	return n, strings.Join(what, " ")
}

// redisStoresCounted are Redis stores whose client counts its round trips;
// watch is a second client of the same server, not counted.
func redisStoresCounted(t *testing.T, replicas int) (*state.Stores, *roundTrips, *redis.Client) {
	watch := redistest.Start(t)
	addr := watch.Options().Addr
	if replicas > 0 {
		redistest.StartReplica(t, addr)
	}
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	rt := &roundTrips{}
	client.AddHook(rt)
	key := make([]byte, 32)
	rand.Read(key)
	sealer, err := state.ParseKeys("k1:" + base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	events := state.NewRedisEvents(client, "", state.EventOptions{})
	snaps := state.NewRedisSnapshots(client, "")
	if replicas > 0 {
		rep := state.Replication{Replicas: replicas, Timeout: 2 * time.Second}
		events.SetReplication(rep)
		snaps.SetReplication(rep)
	}
	return &state.Stores{Snapshots: snaps, Events: events, Sealer: sealer, SessionTTL: time.Hour}, rt, watch
}

// A tools/call answered with one event costs the session two Redis round
// trips, whether writes wait for a replica or not: opening its stream with
// the journal entry, the fencing check and the priming event in one script,
// then the answer with the fencing check and the journal entry's removal in
// another (see sessionEvents). Nothing is left in the journal.
func TestRedisRoundTripsPerToolCall(t *testing.T) {
	for _, replicas := range []int{0, 1} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			d, rt, watch := redisStoresCounted(t, replicas)
			n := newSessionNode(t, d)
			id, pid := n.open(t)
			journal := "pingmcp:events:{" + id + "}:inflight"
			toolCall := func(i int) {
				body := call(t, n, pid, id, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_simple_text"}}`, 100+i))
				if !strings.Contains(body, "simple text response") || !strings.Contains(body, "event: prime") {
					t.Fatalf("call %d: no priming event and answer in\n%s", i, body)
				}
			}
			// The first call after initialize may meet the snapshot's
			// writes of the handshake: they are not the call's.
			toolCall(-1)
			awaitJournalEmpty(t, watch, journal)
			rt.take()
			const calls = 20
			for i := range calls {
				toolCall(i)
			}
			awaitJournalEmpty(t, watch, journal)
			trips, what := rt.take()
			t.Logf("%d tools/call: %d round trips (%s)", calls, trips, what)
			if trips > 2*calls {
				t.Fatalf("%d tools/call cost %d Redis round trips, want at most %d: %s", calls, trips, 2*calls, what)
			}
		})
	}
}

// awaitJournalEmpty waits until the session's journal of requests in flight
// is empty: every answered request's entry is removed.
func awaitJournalEmpty(t *testing.T, watch *redis.Client, journal string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := watch.HLen(context.Background(), journal).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			all, _ := watch.HGetAll(context.Background(), journal).Result()
			t.Fatalf("the journal %s still holds %d entries: %v", journal, n, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package actors_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/internal/logtest"
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
	if name == "hello" || strings.HasPrefix(name, "client") {
		return // a new connection's handshake, not a request's
	}
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
func redisStoresCounted(t testing.TB, replicas int, linger time.Duration) (*state.Stores, *roundTrips, *redis.Client) {
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
	events := state.NewRedisEvents(client, "", state.EventOptions{Linger: linger}) // 0: the default
	snaps := state.NewRedisSnapshots(client, "")
	if replicas > 0 {
		rep := state.Replication{Replicas: replicas, Timeout: 2 * time.Second}
		events.SetReplication(rep)
		snaps.SetReplication(rep)
	}
	return &state.Stores{Snapshots: snaps, Events: events, Sealer: sealer, SessionTTL: time.Hour}, rt, watch
}

// A tools/call answered with one event costs the session two Redis round
// trips, whether writes wait for a replica or not, with a priming event
// (2025-11-25) or without (2025-06-18): opening its stream with the journal
// entry, the fencing check and the priming event in one script (without a
// priming event, just before the dispatch), then the answer with the fencing
// check and the journal entry's removal in another, behind the answer's
// delivery (see requestStream and TestAnswerWrittenBehindDelivery), which
// the next call's open takes along when it comes within the linger
// (state's TestBehindWritesLinger): fewer round trips then. Nothing is
// left in the journal.
func TestRedisRoundTripsPerToolCall(t *testing.T) {
	for _, c := range []struct {
		replicas int
		version  string
	}{{0, "2025-11-25"}, {1, "2025-11-25"}, {0, "2025-06-18"}} {
		t.Run(fmt.Sprintf("replicas=%d/%s", c.replicas, c.version), func(t *testing.T) {
			// A linger long enough that a next call, made at once,
			// meets it however loaded the machine (with CI and other
			// tests at once, 2 ms was missed by all of 20 calls once).
			d, rt, watch := redisStoresCounted(t, c.replicas, 50*time.Millisecond)
			n := newSessionNode(t, d)
			id, pid := n.open(t)
			watched := state.NewRedisEvents(watch, "", state.EventOptions{}) // not counted
			toolCall := func(i int) {
				t.Helper()
				status, body, err := exchangeVersion(n.system.Root, pid, id, c.version,
					fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_simple_text"}}`, 100+i))
				if err != nil || status != 200 || !strings.Contains(body, "simple text response") {
					t.Fatalf("call %d: %d %s %v", i, status, body, err)
				}
				if primed := strings.Contains(body, "event: prime"); primed != (c.version >= "2025-11-25") {
					t.Fatalf("call %d: priming event %v in\n%s", i, primed, body)
				}
			}
			// The first call after initialize may meet the snapshot's
			// writes of the handshake: they are not the call's.
			toolCall(-1)
			awaitJournalEmpty(t, watched, id)
			rt.take()
			const calls = 20
			for i := range calls {
				toolCall(i)
			}
			awaitJournalEmpty(t, watched, id)
			trips, what := rt.take()
			t.Logf("%d tools/call: %d round trips (%s)", calls, trips, what)
			if trips > 2*calls {
				t.Fatalf("%d tools/call cost %d Redis round trips, want at most %d: %s", calls, trips, 2*calls, what)
			}
			// Calls made in a row, each answer's write waits for the next
			// call's open: some at least went with it.
			if trips >= 2*calls {
				t.Errorf("%d tools/call in a row cost %d Redis round trips: no answer's write went with the next call's open (%s)", calls, trips, what)
			}
		})
	}
}

// processCPU is the CPU time this process has used (user and system): the
// node's, and the benchmark client's, the same in every mode.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// awaitJournalEmpty waits until the session's journal of requests in flight
// is empty: every answered request's entry is removed (with Redis, behind
// its answer's delivery).
func awaitJournalEmpty(t *testing.T, events state.Events, session string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, err := events.PendingRequests(context.Background(), session)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal of session %s still holds %v", session, pending)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A live activation a newer one fenced runs nothing: a tools/call to it is
// answered 503 "not served" (the edge sends it again, and the cluster
// finds it the current activation), its tool never runs (no audit
// record), and nothing of it is stored (no journal entry, no event), whether
// its stream's open travels with the priming event (2025-11-25) or, with no
// priming event, goes just before the dispatch (2025-06-18).
func TestStaleActivationRunsNothing(t *testing.T) {
	for name, newStore := range stores(t) {
		for _, version := range []string{"2025-11-25", "2025-06-18"} {
			t.Run(name+"/"+version, func(t *testing.T) {
				var auditLog logtest.Buffer
				d := newStore()
				system, props := actors.SessionsForTest(t, actors.Config{Stores: d, Audit: audit.New(&auditLog, false)})
				n := &sessionNode{system: system, props: props}
				id, stale := n.open(t)
				// setLevel answers once its snapshot is written, and the
				// handshake's before it; its answer is stored (with Redis,
				// behind its delivery) once its journal entry is gone: the
				// stale activation then has no write of its own left that
				// would tell it first.
				n.post(t, stale, id, `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}`, 200)
				awaitJournalEmpty(t, d.Events, id)
				// A second activation of the session takes a newer epoch.
				current := n.spawn(id)
				n.post(t, current, id, `{"jsonrpc":"2.0","id":11,"method":"ping"}`, 200)
				// Its answer, with Redis, is stored behind its delivery:
				// once it is, what is journalled can only be the stale
				// activation's.
				awaitJournalEmpty(t, d.Events, id)

				status, body, err := exchangeVersion(system.Root, stale, id, version,
					`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text"}}`)
				if err != nil || status != 503 || body != "actor is stopping; retry\n" {
					t.Fatalf("tools/call on the stale activation: %d %s %v; want 503 not served", status, body, err)
				}
				if strings.Contains(auditLog.String(), "test_simple_text") {
					t.Fatalf("the stale activation ran the tool:\n%s", auditLog.String())
				}
				pending, err := d.Events.PendingRequests(context.Background(), id)
				if err != nil || len(pending) != 0 {
					t.Fatalf("the stale activation journalled %v (%v)", pending, err)
				}
				// The current activation serves the same call.
				body = call(t, n, current, id, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_simple_text"}}`)
				if !strings.Contains(body, "simple text response") {
					t.Fatalf("the current activation answered %s", body)
				}
			})
		}
	}
}

// BenchmarkToolCallStores times tools/call of test_simple_text on live
// session actors in this process (no edge, no cluster hop), with sessions
// in memory and in Redis, at 1 and 32 sessions calling at once: what the
// store costs the request path, without the rest of the path's noise.
//
// With Redis it reports the round trips per call (redis-trips/call): two
// writes a call, fewer round trips when writes made at once go together;
// and redis-server's CPU time per call (redis-cpu-µs/call), of which its
// scripts ran redis-script-µs/call (the rest: reading requests, writing
// answers, its event loop).
func BenchmarkToolCallStores(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			d, rt, watch := stores(b)["memory"](), (*roundTrips)(nil), (*redis.Client)(nil)
			if name == "redis" {
				d, rt, watch = redisStoresCounted(b, 0, 0)
			}
			n := newSessionNode(b, d)
			type session struct {
				id   string
				pid  *actor.PID
				next int
			}
			sessions := make([]*session, 32)
			for i := range sessions {
				id, pid := n.open(b)
				sessions[i] = &session{id: id, pid: pid}
			}
			for _, c := range []int{1, 32} {
				b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
					work := make(chan struct{}, b.N)
					for range b.N {
						work <- struct{}{}
					}
					close(work)
					var mu sync.Mutex
					var lat []time.Duration
					var wg sync.WaitGroup
					var cpu0, scripts0 time.Duration
					self0 := processCPU(b)
					if rt != nil {
						rt.take()
						cpu0, scripts0 = redistest.CPU(b, watch), redistest.ScriptTime(redistest.Commands(b, watch))
					}
					b.ResetTimer()
					for _, s := range sessions[:c] {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for range work {
								s.next++
								start := time.Now()
								body, err := forwardBody(n.system.Root, s.pid, s.id,
									fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_simple_text"}}`, s.next))
								d := time.Since(start)
								if err != nil || !strings.Contains(body, "simple text response") {
									b.Errorf("tools/call: %s %v", body, err)
									return
								}
								mu.Lock()
								lat = append(lat, d)
								mu.Unlock()
							}
						}()
					}
					wg.Wait()
					b.StopTimer()
					slices.Sort(lat)
					if len(lat) > 0 {
						b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
						b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
						b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
					b.ReportMetric(float64((processCPU(b)-self0).Microseconds())/float64(b.N), "node-cpu-µs/call")
					if rt != nil {
						// The last answers' writes may still be under way.
						trips, _ := rt.take()
						b.ReportMetric(float64(trips)/float64(b.N), "redis-trips/call")
						b.ReportMetric(float64((redistest.CPU(b, watch)-cpu0).Microseconds())/float64(b.N), "redis-cpu-µs/call")
						b.ReportMetric(float64((redistest.ScriptTime(redistest.Commands(b, watch))-scripts0).Microseconds())/float64(b.N), "redis-script-µs/call")
					}
				})
			}
		})
	}
}

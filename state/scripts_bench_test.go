package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// BenchmarkRedisRequestStream measures what Redis spends on one request's
// stream as a tools/call writes it: the open with its journal entry and the
// priming event (OpenAppend), then the answer with the journal entry's
// removal (AppendFinish), fenced, one after the other. "fresh": sessions
// far below their byte budget (a new one every 100 streams); "at-budget": every new stream first drops
// the session's oldest (a long-lived session's steady state); "idle": as
// "fresh", each op after 5 ms with nothing sent (the clock stopped), as a
// client that calls a tool now and then: redis-server has gone to sleep
// between ops, and what its scripts take then is not what they take back
// to back. Beside them, "noop": a script that does nothing, the round trip
// alone. Reported: redis-server's CPU per op (INFO cpu), its scripts' time
// per op (INFO commandstats), and the time of each op, sequential.
func BenchmarkRedisRequestStream(b *testing.B) {
	client := redistest.Start(b)
	ctx := context.Background()
	b.Run("noop", func(b *testing.B) {
		noop := redis.NewScript(`return 1`)
		measureRedis(b, client, func(int) {
			if err := noop.Run(ctx, client, nil).Err(); err != nil {
				b.Fatal(err)
			}
		})
	})
	for _, c := range []struct {
		name   string
		budget int64
		idle   time.Duration
	}{{"fresh", 0, 0}, {"at-budget", 64 << 10, 0}, {"idle", 0, 5 * time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			ev := NewRedisEvents(client, c.name+":", EventOptions{MaxBytes: c.budget})
			snaps := NewRedisSnapshots(client, c.name+":")
			var session string
			var epoch int64
			activate := func(i int) {
				session = fmt.Sprintf("s-%d-%d", b.N, i)
				var err error
				if epoch, _, err = snaps.Activate(ctx, session, true); err != nil {
					b.Fatal(err)
				}
			}
			activate(0)
			var priming []byte // the SDK's priming event is empty
			answer := []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"This is a simple text response for testing."}]}}`)
			measureRedis(b, client, func(i int) {
				if c.idle > 0 {
					b.StopTimer()
					time.Sleep(c.idle) // the idle being measured, not a wait for an event
					b.StartTimer()
				}
				if c.budget == 0 && i%100 == 99 {
					activate(i) // a new session, its budget far away
				}
				stream := fmt.Sprintf("r%d", i)
				ids := []json.RawMessage{json.RawMessage(fmt.Sprint(i))}
				if err := ev.OpenAppend(ctx, session, stream, "", epoch, ids, NewWriteID(), priming); err != nil {
					b.Fatal(err)
				}
				if err := ev.AppendFinish(ctx, session, stream, epoch, NewWriteID(), answer); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// measureRedis runs op b.N times and reports redis-server's CPU per op and
// the commands its scripts ran per op (INFO commandstats: every command but
// the scripts themselves).
func measureRedis(b *testing.B, client *redis.Client, op func(i int)) {
	ctx := context.Background()
	if err := client.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	cpu0 := redistest.CPU(b, client)
	b.ResetTimer()
	for i := range b.N {
		op(i)
	}
	b.StopTimer()
	b.ReportMetric(float64((redistest.CPU(b, client)-cpu0).Microseconds())/float64(b.N), "redis-cpu-µs/op")
	stats := redistest.Commands(b, client)
	var calls int64
	for name, st := range stats {
		if !strings.HasPrefix(name, "eval") && !strings.HasPrefix(name, "config") && name != "info" {
			calls += st.Calls
		}
	}
	scripts := redistest.ScriptTime(stats)
	b.ReportMetric(float64(calls)/float64(b.N), "redis-calls/op")
	b.ReportMetric(float64(scripts.Microseconds())/float64(b.N), "redis-script-µs/op")
}

// BenchmarkRedisReplay measures a replay (After) of a stream's 1,000 kept
// events of 200 bytes: what a client's resumption from the stream's start
// costs, its events measured in Redis (HSTRLEN) before they are read;
// reported as BenchmarkRedisRequestStream's are.
func BenchmarkRedisReplay(b *testing.B) {
	client := redistest.Start(b)
	ctx := context.Background()
	e := NewRedisEvents(client, "", EventOptions{})
	if err := e.Open(ctx, "s", "x"); err != nil {
		b.Fatal(err)
	}
	for range DefaultEventsMaxLen {
		if err := e.Append(ctx, "s", "x", []byte(strings.Repeat("d", 200))); err != nil {
			b.Fatal(err)
		}
	}
	measureRedis(b, client, func(int) {
		n := 0
		for _, err := range e.After(ctx, "s", "x", -1) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != DefaultEventsMaxLen {
			b.Fatalf("%d events replayed", n)
		}
	})
}

package actors

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/state"
)

// A stopped actor's writer does not sleep out its backoff: close cuts the
// wait short, the writer tries once more and, the store still away, gives
// up at once.
func TestEventsWriterCloseCutsWait(t *testing.T) {
	store := &flakyEvents{down: true}
	// The writer's first retry waits an hour: only close can end it.
	e := &sessionEvents{store: store, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), retryMin: time.Hour, retryMax: time.Hour}
	if err := e.Append(context.Background(), "s", "st", []byte("1")); err != nil {
		t.Fatalf("append while the store is down: %v", err)
	}
	// Two failed attempts: Append's own and the writer's first, which it
	// now retries in an hour.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		store.mu.Lock()
		n := len(store.tried)
		store.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer tried %d times in 30s", n)
		}
	}
	e.close()
	// Without close the wait is an hour: 10 s tells the two apart, and
	// leaves a loaded machine time to schedule the writer.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.flush(ctx); err != nil {
		t.Fatalf("writer still holds its queue 10 s after close: %v", err)
	}
}

// The writer's retry of a write that Redis made, but whose answer the
// client lost (a network error after the script ran; no go-redis retry
// here, so the session's queue gets the error), stores nothing more: the
// write keeps its WriteID in the queue. A request's stream (its open with
// the priming event, its answer with the journal entry's removal) and the
// standalone stream hold what was sent, each event once, and resume from
// any id with exactly the rest.
func TestEventsWriterRetryStoresOnce(t *testing.T) {
	addr := redistest.Start(t).Options().Addr
	cut := &redistest.Cut{}
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	client.AddHook(cut)
	ctx := context.Background()
	store := state.NewRedisEvents(client, "", state.EventOptions{})
	epoch, _, err := state.NewRedisSnapshots(client, "").Activate(ctx, "s", true)
	if err != nil {
		t.Fatal(err)
	}
	e := &sessionEvents{store: store, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), fenced: func() {},
		retryMin: time.Millisecond, retryMax: 10 * time.Millisecond}
	e.epoch.Store(epoch)

	body, err := rpcbody.Read([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	f := &flight{rpc: body}
	if err := e.Open(context.WithValue(ctx, flightKey{}, f), "s", "post-1"); err != nil {
		t.Fatal(err)
	}
	answer := `{"jsonrpc":"2.0","id":7,"result":{}}`
	// The priming event's first try (Append's own) takes "post-1" along,
	// before the answer is armed.
	for _, data := range []string{"", answer} {
		cut.Lose(1, []byte(cmp.Or(data, "post-1")))
		if err := e.Append(ctx, "s", "post-1", []byte(data)); err != nil {
			t.Fatalf("append %q whose answer was lost: %v (want it queued)", data, err)
		}
	}
	if err := e.Open(ctx, "s", ""); err != nil {
		t.Fatal(err)
	}
	var sent []string
	for i := range 6 {
		data := "note " + strconv.Itoa(i)
		if i%2 == 0 {
			cut.Lose(1, []byte(data))
		}
		if err := e.Append(ctx, "s", "", []byte(data)); err != nil {
			t.Fatalf("append %q: %v", data, err)
		}
		sent = append(sent, data)
	}
	flushCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.flush(flushCtx); err != nil {
		t.Fatalf("queue not written: %v", err)
	}
	if cut.Lost() != 5 {
		t.Fatalf("%d answers lost, want 5: the test did not test", cut.Lost())
	}
	for stream, want := range map[string][]string{"post-1": {"", answer}, "": sent} {
		for i := -1; i < len(want); i++ {
			var got []string
			for d, err := range store.After(ctx, "s", stream, i) {
				if err != nil {
					t.Fatalf("resume %q after %d: %v", stream, i, err)
				}
				got = append(got, string(d))
			}
			if !slices.Equal(got, want[i+1:]) && len(got)+len(want)-i-1 > 0 {
				t.Fatalf("resume %q after %d: %q, want %q", stream, i, got, want[i+1:])
			}
		}
		// Each kept event is a field "e:<n>:<stream>" of the session's hash,
		// but an empty first one (the priming event), which the stream's
		// record implies (" i").
		fields, err := client.HGetAll(ctx, "pingmcp:events:{s}:bytes").Result()
		n := 0
		for f, v := range fields {
			if strings.HasPrefix(f, "e:") && strings.HasSuffix(f, ":"+stream) && strings.Count(f, ":") == 2+strings.Count(stream, ":") {
				n++
			}
			if f == "s:"+stream && strings.HasSuffix(v, " i") {
				n++
			}
		}
		if err != nil || n != len(want) {
			t.Fatalf("stream %q holds %d events (%v), want %d", stream, n, err, len(want))
		}
	}
	if p, err := store.PendingRequests(ctx, "s"); err != nil || len(p) != 0 {
		t.Fatalf("journal: %v, %v; want empty", p, err)
	}
}

// The next activation answers the journal's unanswered requests in their
// streams and clears the journal; a stale activation doing the same
// (fenced) stores nothing and removes nothing.
func TestAnswerJournalFenced(t *testing.T) {
	client := redistest.Start(t)
	memSnaps := &state.MemorySnapshots{}
	for name, stores := range map[string]struct {
		snaps  state.Snapshots
		events state.Events
	}{
		"memory": {memSnaps, state.NewMemoryEvents(memSnaps)},
		"redis":  {state.NewRedisSnapshots(client, ""), state.NewRedisEvents(client, "", state.EventOptions{})},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ev := stores.events
			old, _, err := stores.snaps.Activate(ctx, "s", true)
			if err != nil {
				t.Fatal(err)
			}
			if err := ev.OpenFor(ctx, "s", "p", "", old, []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`2`)}); err != nil {
				t.Fatal(err)
			}
			if err := ev.AppendAt(ctx, "s", "p", old, state.NewWriteID(), []byte(`{"jsonrpc":"2.0","id":1,"result":{}}`)); err != nil {
				t.Fatal(err)
			}
			cur, _, err := stores.snaps.Activate(ctx, "s", true)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := answerJournal(ctx, ev, "s", cur); err != nil || n != 1 {
				t.Fatalf("answerJournal: %d, %v; want 1 answered", n, err)
			}
			var got []string
			for d, err := range ev.After(ctx, "s", "p", -1) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(d))
			}
			if len(got) != 2 || got[1] != string(interruptedError(json.RawMessage(`2`))) {
				t.Fatalf("stream p: %q, want the answer to 1 and the interruption of 2", got)
			}
			if err := ev.OpenFor(ctx, "s", "q", "", cur, []json.RawMessage{json.RawMessage(`3`)}); err != nil {
				t.Fatal(err)
			}
			if n, err := answerJournal(ctx, ev, "s", old); !errors.Is(err, state.ErrFenced) || n != 0 {
				t.Fatalf("a stale answerJournal: %d, %v; want ErrFenced", n, err)
			}
			if err := ev.FinishRequests(ctx, "s", "q", old); !errors.Is(err, state.ErrFenced) {
				t.Fatalf("a stale FinishRequests: %v, want ErrFenced", err)
			}
			if p, err := ev.PendingRequests(ctx, "s"); err != nil || len(p) != 1 || len(p["q"]) != 1 {
				t.Fatalf("journal after the stale activation: %v, %v; want q's entry", p, err)
			}
		})
	}
}

// A journalled request whose stream is gone (it outlived --events-ttl, or
// a store of another layout wrote it) cannot be answered in its stream: the
// next activation drops its entry instead of failing on it, and answers
// the others.
func TestAnswerJournalStreamGone(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	const ttl = time.Second
	snaps, ev := state.NewRedisSnapshots(client, ""), state.NewRedisEvents(client, "", state.EventOptions{TTL: ttl})
	old, _, err := snaps.Activate(ctx, "s", true)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	if err := ev.OpenFor(ctx, "s", "gone", "", old, []json.RawMessage{json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	// Half a TTL later "live" opens (the journal's TTL set again); half a
	// TTL later still, "gone" has expired and "live" has not.
	time.Sleep(ttl / 2)
	if err := ev.OpenFor(ctx, "s", "live", "", old, []json.RawMessage{json.RawMessage(`2`)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(opened.Add(ttl + ttl/20)))
	cur, _, err := snaps.Activate(ctx, "s", true)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ev.PendingRequests(ctx, "s"); err != nil || len(p) != 2 {
		t.Fatalf("journal before: %v, %v; want both streams", p, err)
	}
	if n, err := answerJournal(ctx, ev, "s", cur); err != nil || n != 1 {
		t.Fatalf("answerJournal: %d, %v; want the live stream's request answered", n, err)
	}
	if p, err := ev.PendingRequests(ctx, "s"); err != nil || len(p) != 0 {
		t.Fatalf("journal after: %v, %v; want empty", p, err)
	}
}

// answerID finds a response's id whatever the order of its members, stops
// at the result once it has the id (what follows is not read: a result
// that is not even JSON after that point costs nothing), and finds none in
// a request, a notification or what is not a JSON-RPC object.
func TestAnswerID(t *testing.T) {
	for _, c := range []struct {
		data, want string
	}{
		{`{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`, `7`},
		{`{"jsonrpc":"2.0","id":"a\"b","error":{"code":-32603,"message":"x"}}`, `"a\"b"`},
		{`{"jsonrpc":"2.0","result":{"big":[1,2,3]},"id":3}`, `3`},
		{`{"id":12,"result":` + strings.Repeat("[", 1<<16), `12`},
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}`, ``},
		{`{"jsonrpc":"2.0","id":4,"method":"elicitation/create","params":{"message":"m"}}`, ``},
		{`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}`, ``},
		{`{"jsonrpc":"2.0","result":{}}`, ``},
		{`[{"jsonrpc":"2.0","id":1,"result":{}}]`, ``},
		{`: keep-alive`, ``},
		{`{"jsonrpc":"2.0","id":true,"result":{}}`, ``},
		{`{"jsonrpc":"2.0","id":"x\\","result":{}}`, `"x\\"`},
		{`{"jsonrpc":"2.0","id":"\u0061b","result":{}}`, `"ab"`},
		{`{"jsonrpc":"2.0","id":1e3,"result":{}}`, `1000`},
		{`{"jsonrpc":"2.0","id":"unterminated,"result":{}}`, ``},
		{`{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage","params":{}}`, ``},
		{`{"jsonrpc":"2.0","id":5 ,"result":{}}`, `5`},
	} {
		if got := string(answerID([]byte(c.data))); got != c.want {
			t.Errorf("answerID(%.60q) = %q, want %q", c.data, got, c.want)
		}
	}
}

// eventIsResult tells a result from an error, in the go-sdk's layout and
// in any other.
func TestEventIsResult(t *testing.T) {
	for data, want := range map[string]bool{
		`{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete"}}`:                        true,
		`{"jsonrpc":"2.0","id":"a\"b","result":{}}`:                                          true,
		`{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"x","data":{"result":1}}}`: false,
		`{"jsonrpc":"2.0","error":{"code":-32602,"message":"\"result\":"},"id":7}`:           false,
		`{"result":{},"jsonrpc":"2.0","id":7}`:                                               true,
		`{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"m"},"x":{"result":{}}}`:        false,
	} {
		if got := eventIsResult([]byte("event: message\ndata: " + data + "\n\n")); got != want {
			t.Errorf("eventIsResult(%s) = %v, want %v", data, got, want)
		}
	}
}

// What recognising an answer costs, for a small result and a 1 MiB one
// (the event that ends a request's journal entry is read once per answer).
func BenchmarkAnswerID(b *testing.B) {
	for _, c := range []struct {
		name string
		text string
	}{{"small", "This is a simple text response for testing."}, {"1MiB", strings.Repeat("x", 1<<20)}} {
		data := []byte(`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"` + c.text + `"}]}}`)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if id := answerID(data); string(id) != "7" {
					b.Fatalf("answerID = %s", id)
				}
			}
		})
	}
}

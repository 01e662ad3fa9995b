package state

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// A write whose answer is lost after Redis made it (go-redis then retries
// it on a new connection), or that the caller tries again with its
// WriteID (the actor's write queue, after an error), is stored once: the
// stream holds what was sent, its ids have no gap, and a resume from any id
// replays exactly the rest, as the memory store would.
func TestRedisEventsRetriedWrites(t *testing.T) {
	base := redistest.Start(t)
	cut := &redistest.Cut{}
	client := redis.NewClient(&redis.Options{Addr: base.Options().Addr})
	t.Cleanup(func() { client.Close() })
	client.AddHook(cut)
	testRetriedWrites(t, client, cut)
}

// testRetriedWrites makes every write of a stream lose its answer once,
// through cut, a hook of client.
func testRetriedWrites(t *testing.T, client redis.UniversalClient, cut *redistest.Cut) {
	ctx := context.Background()
	snaps := NewRedisSnapshots(client, "retry:")
	ev := NewRedisEvents(client, "retry:", EventOptions{})
	epoch, _, err := snaps.Activate(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	lose := func(data string) {
		t.Helper()
		cut.Lose(1, []byte(data))
		sent = append(sent, data)
	}
	armed := 0
	// The priming event, with the open and the journal entry.
	lose("prime")
	armed++
	if err := ev.OpenAppend(ctx, "r", "p", "", epoch, []json.RawMessage{json.RawMessage(`1`)}, NewWriteID(), []byte("prime")); err != nil {
		t.Fatalf("OpenAppend whose answer was lost: %v", err)
	}
	for i := range 12 {
		data := "event " + strconv.Itoa(i)
		lose(data)
		armed++
		var w WriteID // go-redis's retry alone: the same arguments
		if i%2 == 1 {
			w = NewWriteID()
		}
		if err := ev.AppendAt(ctx, "r", "p", epoch, w, []byte(data)); err != nil {
			t.Fatalf("append %d whose answer was lost: %v", i, err)
		}
		if w != "" {
			// The caller tries it again (it saw an error): nothing more
			// is stored.
			if err := ev.AppendAt(ctx, "r", "p", epoch, w, []byte(data)); err != nil {
				t.Fatalf("append %d tried again: %v", i, err)
			}
		}
	}
	w := NewWriteID()
	lose("answer")
	armed++
	for range 2 {
		if err := ev.AppendFinish(ctx, "r", "p", epoch, w, []byte("answer")); err != nil {
			t.Fatalf("AppendFinish whose answer was lost: %v", err)
		}
	}
	if cut.Lost() != armed {
		t.Fatalf("%d answers lost, want %d: the test did not test", cut.Lost(), armed)
	}
	checkStream(t, ev, client, "r", "p", sent)
	if p, err := ev.PendingRequests(ctx, "r"); err != nil || len(p) != 0 {
		t.Fatalf("journal after the retried AppendFinish: %v, %v; want empty", p, err)
	}
	// A new write after all that takes the next id.
	if err := ev.AppendAt(ctx, "r", "p", epoch, NewWriteID(), []byte("late")); err != nil {
		t.Fatal(err)
	}
	checkStream(t, ev, client, "r", "p", append(sent, "late"))
}

// checkStream checks that stream holds want, with ids 0-1 … 0-len(want),
// and that a resume after each id replays exactly the rest.
func checkStream(t *testing.T, ev *RedisEvents, client redis.UniversalClient, session, stream string, want []string) {
	t.Helper()
	ctx := context.Background()
	hash, err := client.HGetAll(ctx, ev.keys(session)[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids, wantIDs []int
	for f := range hash {
		if n, ok := strings.CutSuffix(f, ":"+stream); ok && strings.HasPrefix(n, "e:") {
			id, err := strconv.Atoi(strings.TrimPrefix(n, "e:"))
			if err != nil {
				t.Fatalf("field %q", f)
			}
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for i := range want {
		wantIDs = append(wantIDs, i+1)
	}
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("stream events numbered %v, want %v", ids, wantIDs)
	}
	record := hash["s:"+stream]
	if n, _, _ := strings.Cut(record, " "); n != strconv.Itoa(len(want)) {
		t.Fatalf("stream record %q; want its count %d", record, len(want))
	}
	for i := -1; i < len(want); i++ {
		got, err := collect(t, ev, session, stream, i)
		if err != nil || !slices.Equal(got, want[i+1:]) && len(got)+len(want)-i-1 > 0 {
			t.Fatalf("resume after %d: %q, %v; want %q", i, got, err, want[i+1:])
		}
	}
}

// A write that Redis made but no replica confirmed (ErrNotReplicated) is
// tried again by its writer with its WriteID: once a replica is there, the
// try is confirmed, and the event is in the stream once. So is a write
// whose pipeline (the script and its WAIT) go-redis retried.
func TestRedisEventsUnreplicatedWriteRetried(t *testing.T) {
	base := redistest.Start(t)
	cut := &redistest.Cut{}
	client := redis.NewClient(&redis.Options{Addr: base.Options().Addr})
	t.Cleanup(func() { client.Close() })
	client.AddHook(cut)
	ctx := context.Background()
	snaps := NewRedisSnapshots(client, "rep:")
	ev := NewRedisEvents(client, "rep:", EventOptions{})
	ev.SetReplication(Replication{Replicas: 1, Timeout: 50 * time.Millisecond})
	epoch, _, err := snaps.Activate(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriteID()
	for range 2 {
		if err := ev.OpenAppend(ctx, "r", "p", "", epoch, nil, w, []byte("prime")); !errors.Is(err, ErrNotReplicated) {
			t.Fatalf("OpenAppend without a replica: %v, want ErrNotReplicated", err)
		}
	}
	redistest.StartReplica(t, client.Options().Addr)
	// In sync, but a loaded machine may take more than 50 ms to ack.
	ev.SetReplication(Replication{Replicas: 1, Timeout: 5 * time.Second})
	if err := ev.OpenAppend(ctx, "r", "p", "", epoch, nil, w, []byte("prime")); err != nil {
		t.Fatalf("OpenAppend with a replica: %v", err)
	}
	// Confirmed, but the writer had given up waiting: its try again is
	// confirmed too, and stores nothing.
	w2 := NewWriteID()
	for range 2 {
		if err := ev.AppendFinish(ctx, "r", "p", epoch, w2, []byte("answer")); err != nil {
			t.Fatalf("AppendFinish with a replica: %v", err)
		}
	}
	// The script and its WAIT are one pipeline: go-redis retries both
	// when the answer is lost, and the script stores nothing the second
	// time.
	cut.Lose(1, []byte("late"))
	if err := ev.AppendAt(ctx, "r", "p", epoch, NewWriteID(), []byte("late")); err != nil || cut.Lost() != 1 {
		t.Fatalf("append whose answer was lost, with its WAIT: %v (%d answers lost, want 1)", err, cut.Lost())
	}
	checkStream(t, ev, client, "r", "p", []string{"prime", "answer", "late"})
}

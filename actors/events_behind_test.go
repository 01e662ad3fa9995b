package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/state"
)

// heldAnswers is a Redis event store whose answers with a journal removal
// (AppendFinish) wait until released.
type heldAnswers struct {
	*state.RedisEvents
	release chan struct{}
}

func (h *heldAnswers) AppendFinish(ctx context.Context, session, stream string, epoch int64, write state.WriteID, data []byte) error {
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.RedisEvents.AppendFinish(ctx, session, stream, epoch, write, data)
}

// behindSession is a session "s" of a real Redis, activated, whose events
// write answers behind their delivery, the answers held until released;
// stream "post-1" is open for request 7, its priming event stored.
func behindSession(t *testing.T) (*sessionEvents, *heldAnswers, *state.RedisSnapshots, chan struct{}) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Options().Addr})
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	snaps := state.NewRedisSnapshots(client, "")
	epoch, _, err := snaps.Activate(ctx, "s", true)
	if err != nil {
		t.Fatal(err)
	}
	store := &heldAnswers{RedisEvents: state.NewRedisEvents(client, "", state.EventOptions{}), release: make(chan struct{})}
	fenced := make(chan struct{}, 1)
	e := &sessionEvents{store: store, behind: true, logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		fenced: func() { fenced <- struct{}{} }}
	e.epoch.Store(epoch)
	body, err := rpcbody.Read([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	f := &flight{rpc: body}
	if err := e.Open(context.WithValue(ctx, flightKey{}, f), "s", "post-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.Append(ctx, "s", "post-1", nil); err != nil {
		t.Fatal(err)
	}
	return e, store, snaps, fenced
}

// replay is what store holds of stream after index.
func replay(t *testing.T, store state.Events, stream string, index int) []string {
	t.Helper()
	var got []string
	for d, err := range store.After(context.Background(), "s", stream, index) {
		if err != nil {
			t.Fatalf("replay %q after %d: %v", stream, index, err)
		}
		got = append(got, string(d))
	}
	return got
}

const behindAnswer = `{"jsonrpc":"2.0","id":7,"result":{}}`

// With a remote store, a request stream's answer is written behind its
// delivery: Append returns (the SDK delivers it) before the store has it,
// so a request waits for one round trip, its stream's open. A resumption
// of the stream meanwhile waits for the answer to be stored and replays
// it; then the journal is empty.
func TestAnswerWrittenBehindDelivery(t *testing.T) {
	e, store, _, _ := behindSession(t)
	ctx := context.Background()
	appended := make(chan error, 1)
	go func() { appended <- e.Append(ctx, "s", "post-1", []byte(behindAnswer)) }()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatalf("answer: %v", err)
		}
	case <-time.After(10 * time.Second):
		close(store.release)
		t.Fatal("Append waited for the store to take the answer: not written behind its delivery")
	}
	// Append returned with the store's write held: it did not wait for it.
	if got := replay(t, store.RedisEvents, "post-1", 0); len(got) != 0 {
		t.Fatalf("the answer was stored before Append returned (%q): not written behind", got)
	}
	resumed := make(chan []string)
	go func() {
		var got []string
		for d, err := range e.After(ctx, "s", "post-1", 0) {
			if err != nil {
				t.Errorf("resume: %v", err)
			}
			got = append(got, string(d))
		}
		resumed <- got
	}()
	// The resumption waits for the held write (it is waiting once it asked
	// to be woken when writes land) ...
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		e.mu.Lock()
		waiting := e.landed != nil
		e.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the resumption did not wait for the answer's write")
		}
	}
	select {
	case got := <-resumed:
		t.Fatalf("the resumption answered %q before the answer was stored", got)
	default:
	}
	// ... and replays the answer once it is stored.
	close(store.release)
	if got := <-resumed; !slices.Equal(got, []string{behindAnswer}) {
		t.Fatalf("resumed after the priming event: %q, want the answer", got)
	}
	if err := e.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := store.PendingRequests(ctx, "s"); err != nil || len(p) != 0 {
		t.Fatalf("journal: %v, %v; want empty", p, err)
	}
}

// The node dies (a newer activation fences this one) after the answer was
// delivered and before it was stored: the next activation answers the
// request from the journal, with the id the lost answer had (the stream's
// second event), so a client resuming from the priming event gets an
// answer; the late write of the fenced activation stores nothing.
func TestAnswerWrittenBehindLostToFailover(t *testing.T) {
	e, store, snaps, fenced := behindSession(t)
	ctx := context.Background()
	if err := e.Append(ctx, "s", "post-1", []byte(behindAnswer)); err != nil {
		t.Fatalf("answer: %v", err)
	}
	next, _, err := snaps.Activate(ctx, "s", true)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := answerJournal(ctx, store.RedisEvents, "s", next); err != nil || n != 1 {
		t.Fatalf("the next activation answered %d journalled requests (%v), want 1", n, err)
	}
	want := []string{string(interruptedError([]byte("7")))}
	if got := replay(t, store.RedisEvents, "post-1", 0); !slices.Equal(got, want) {
		t.Fatalf("resumed after the priming event: %q, want %q", got, want)
	}
	close(store.release)
	select {
	case <-fenced:
	case <-time.After(10 * time.Second):
		t.Fatal("the late answer's write did not find the activation fenced")
	}
	if got := replay(t, store.RedisEvents, "post-1", 0); !slices.Equal(got, want) {
		t.Fatalf("after the fenced activation's late write: %q, want %q", got, want)
	}
	if err := e.flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

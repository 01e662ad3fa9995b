package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/tools/conformance"
)

func collect(t *testing.T, s mcp.EventStore, session, stream string, index int) ([]string, error) {
	t.Helper()
	var out []string
	for d, err := range s.After(context.Background(), session, stream, index) {
		if err != nil {
			return out, err
		}
		out = append(out, string(d))
	}
	return out, nil
}

// testEvents is the EventStore contract, run against the SDK's own memory
// store too, so that ours means what the SDK means.
func testEvents(t *testing.T, newStore func() mcp.EventStore) {
	ctx := context.Background()
	s := newStore()
	if err := s.Open(ctx, "sess", "st"); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, s, "sess", "st", -1); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %v %v", got, err)
	}
	for i := range 5 {
		if err := s.Append(ctx, "sess", "st", []byte("e"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		index int
		want  []string
	}{
		{-1, []string{"e0", "e1", "e2", "e3", "e4"}},
		{0, []string{"e1", "e2", "e3", "e4"}},
		{3, []string{"e4"}},
		{4, nil},
		{10, nil},
	} {
		got, err := collect(t, s, "sess", "st", tt.index)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("After(%d) = %v, %v; want %v", tt.index, got, err, tt.want)
		}
	}
	// Streams and sessions are apart.
	s.Open(ctx, "sess", "other")
	s.Append(ctx, "sess", "other", []byte("x"))
	if got, _ := collect(t, s, "sess", "other", -1); !slices.Equal(got, []string{"x"}) {
		t.Errorf("other stream: %v", got)
	}
	if _, err := collect(t, s, "nosuch", "st", -1); err == nil {
		t.Error("After on an unknown session did not fail")
	}
	// A closed session's streams are gone.
	if err := s.SessionClosed(ctx, "sess"); err != nil {
		t.Fatal(err)
	}
	if _, err := collect(t, s, "sess", "st", -1); err == nil {
		t.Error("After on a closed session did not fail")
	}
}

func TestMemoryEventsContract(t *testing.T) {
	testEvents(t, func() mcp.EventStore { return mcp.NewMemoryEventStore(nil) })
}

func TestRedisEvents(t *testing.T) {
	client := redistest.Start(t)
	n := 0
	testEvents(t, func() mcp.EventStore {
		n++
		return NewRedisEvents(client, fmt.Sprintf("t%d:", n), EventOptions{})
	})

	// Bounded: replaying from before what was kept fails at once, with the
	// SDK's error; from what was kept, it works.
	ctx := context.Background()
	s := NewRedisEvents(client, "bounded:", EventOptions{MaxLen: 10, TTL: 30 * time.Second})
	s.Open(ctx, "sess", "st")
	for i := range 500 {
		if err := s.Append(ctx, "sess", "st", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := collect(t, s, "sess", "st", -1); !errors.Is(err, mcp.ErrEventsPurged) || len(got) != 0 {
		t.Fatalf("replay from the start of a trimmed stream: %d events, %v", len(got), err)
	}
	got, err := collect(t, s, "sess", "st", 495)
	if err != nil || !slices.Equal(got, []string{"496", "497", "498", "499"}) {
		t.Fatalf("replay of the tail: %v %v", got, err)
	}
	// Appending to a stream never opened is refused; keys expire.
	if err := s.Append(ctx, "sess", "never", []byte("x")); err == nil {
		t.Error("append to an unopened stream")
	}
	for _, k := range s.keys("sess", "st")[:3] {
		if ttl, _ := client.PTTL(ctx, k).Result(); ttl <= 0 || ttl > 30*time.Second {
			t.Errorf("%s expires in %v, want within 30 s", k, ttl)
		}
	}
}

// The SDK resumes a stream from Redis: test_reconnection closes its SSE
// stream mid-call, and the result arrives only by replay after the client
// reconnects with Last-Event-ID.
func TestRedisEventsResumeWithSDK(t *testing.T) {
	client := redistest.Start(t)
	events := NewRedisEvents(client, "sdk:", EventOptions{})
	ts := conformance.New()
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server {
		opts := &mcp.ServerOptions{}
		ts.Configure(opts)
		s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "0"}, opts)
		ts.Install(s, nil)
		return s
	}, &mcp.StreamableHTTPOptions{EventStore: events})
	srv := httptest.NewServer(handler)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_reconnection"})
	if err != nil || res.IsError {
		t.Fatalf("test_reconnection: %v %+v", err, res)
	}
	keys, _ := client.Keys(ctx, "sdk:events:{"+cs.ID()+"}:*").Result()
	if len(keys) == 0 {
		t.Error("no events were stored in Redis for the session")
	}
}

// testJournal is the rest of the Events contract: fenced appends and the
// journal of requests in flight.
func testJournal(t *testing.T, snaps Snapshots, ev Events) {
	ctx := context.Background()
	old, _, _ := snaps.Activate(ctx, "j", true)
	if err := ev.OpenFor(ctx, "j", "post1", old, []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"a"`)}); err != nil {
		t.Fatal(err)
	}
	if err := ev.OpenFor(ctx, "j", "post2", old, []json.RawMessage{json.RawMessage(`2`)}); err != nil {
		t.Fatal(err)
	}
	if err := ev.AppendAt(ctx, "j", "post1", old, []byte("e0")); err != nil {
		t.Fatal(err)
	}
	if err := ev.FinishRequests(ctx, "j", "post2"); err != nil {
		t.Fatal(err)
	}
	pending, err := ev.PendingRequests(ctx, "j")
	if err != nil || len(pending) != 1 || len(pending["post1"]) != 2 || string(pending["post1"][1]) != `"a"` {
		t.Fatalf("pending = %v, %v; want post1: [1 \"a\"]", pending, err)
	}
	// A newer activation fences the old one's appends, not its own.
	cur, _, _ := snaps.Activate(ctx, "j", true)
	if err := ev.AppendAt(ctx, "j", "post1", old, []byte("stale")); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale append: %v", err)
	}
	if err := ev.OpenFor(ctx, "j", "post3", old, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale open: %v", err)
	}
	if err := ev.AppendAt(ctx, "j", "post1", cur, []byte("e1")); err != nil {
		t.Fatal(err)
	}
	if got, _ := collect(t, ev, "j", "post1", -1); !slices.Equal(got, []string{"e0", "e1"}) {
		t.Fatalf("stream = %v", got)
	}
	if err := ev.SessionClosed(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if pending, _ := ev.PendingRequests(ctx, "j"); len(pending) != 0 {
		t.Fatalf("journal outlived its session: %v", pending)
	}
}

func TestMemoryEventsJournal(t *testing.T) {
	snaps := &MemorySnapshots{}
	ev := NewMemoryEvents(snaps)
	testEvents(t, func() mcp.EventStore { return NewMemoryEvents(nil) })
	testJournal(t, snaps, ev)
}

func TestRedisEventsJournal(t *testing.T) {
	client := redistest.Start(t)
	testJournal(t, NewRedisSnapshots(client, "j:"), NewRedisEvents(client, "j:", EventOptions{}))
}

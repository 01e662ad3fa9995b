package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/metrics"
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
		{5, nil}, // (one after the last: an answer a node sent and died before it stored)
	} {
		got, err := collect(t, s, "sess", "st", tt.index)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("After(%d) = %v, %v; want %v", tt.index, got, err, tt.want)
		}
	}
	// Past that, no event the stream issued: the SDK's store replays
	// nothing, and the SDK numbers the stream's next events from the index
	// the client sent; ours refuse it (400 to the client), so that a
	// forged Last-Event-ID cannot set them apart from the store's.
	got, err := collect(t, s, "sess", "st", 10)
	if _, sdk := s.(*mcp.MemoryEventStore); (sdk && (err != nil || got != nil)) || (!sdk && err == nil) {
		t.Errorf("After(10) of a stream of 5 events = %v, %v", got, err)
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
	for _, i := range []int{0, 3} { // hash, order
		k := s.keys("sess")[i]
		if ttl, _ := client.PTTL(ctx, k).Result(); ttl < 29*time.Second || ttl > 30*time.Second*9/8 {
			t.Errorf("%s expires in %v, want 30 s to an eighth more", k, ttl)
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
	if err := ev.OpenFor(ctx, "j", "post1", "", old, []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"a"`)}); err != nil {
		t.Fatal(err)
	}
	if err := ev.OpenFor(ctx, "j", "post2", "", old, []json.RawMessage{json.RawMessage(`2`)}); err != nil {
		t.Fatal(err)
	}
	if err := ev.AppendAt(ctx, "j", "post1", old, "", []byte("e0")); err != nil {
		t.Fatal(err)
	}
	if err := ev.FinishRequests(ctx, "j", "post2", old); err != nil {
		t.Fatal(err)
	}
	pending, err := ev.PendingRequests(ctx, "j")
	if err != nil || len(pending) != 1 || len(pending["post1"]) != 2 || string(pending["post1"][1]) != `"a"` {
		t.Fatalf("pending = %v, %v; want post1: [1 \"a\"]", pending, err)
	}
	// A newer activation fences the old one's appends, not its own.
	cur, _, _ := snaps.Activate(ctx, "j", true)
	if err := ev.AppendAt(ctx, "j", "post1", old, "", []byte("stale")); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale append: %v", err)
	}
	if err := ev.OpenFor(ctx, "j", "post3", "", old, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale open: %v", err)
	}
	if err := ev.AppendAt(ctx, "j", "post1", cur, "", []byte("e1")); err != nil {
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
	testJournalAtOnce(t, snaps, ev)
}

// testJournalAtOnce is the contract of the writes that do two things at
// once: OpenAppend (open, journal, priming event) and AppendFinish (the last
// answer, the journal entry's removal). Each is fenced as a whole: a stale
// activation's stores nothing.
func testJournalAtOnce(t *testing.T, snaps Snapshots, ev Events) {
	ctx := context.Background()
	pending := func(stream string) []json.RawMessage {
		t.Helper()
		p, err := ev.PendingRequests(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		return p[stream]
	}
	ids := []json.RawMessage{json.RawMessage(`7`)}
	old, _, _ := snaps.Activate(ctx, "k", true)
	if err := ev.OpenAppend(ctx, "k", "p", "", old, ids, "", nil); err != nil {
		t.Fatal(err)
	}
	if got := pending("p"); len(got) != 1 || string(got[0]) != "7" {
		t.Fatalf("journal of p after OpenAppend: %s, want [7]", got)
	}
	// The priming event is event 0: a client that saw it and resumes finds
	// the stream, with nothing after it yet.
	if got, err := collect(t, ev, "k", "p", -1); err != nil || !slices.Equal(got, []string{""}) {
		t.Fatalf("replay of p from the start: %q, %v; want the priming event", got, err)
	}
	if got, err := collect(t, ev, "k", "p", 0); err != nil || len(got) != 0 {
		t.Fatalf("replay of p after the priming event: %q, %v; want nothing yet", got, err)
	}
	if err := ev.AppendFinish(ctx, "k", "p", old, "", []byte("answer")); err != nil {
		t.Fatal(err)
	}
	if got := pending("p"); got != nil {
		t.Fatalf("journal of p after AppendFinish: %s, want none", got)
	}
	if got, err := collect(t, ev, "k", "p", 0); err != nil || !slices.Equal(got, []string{"answer"}) {
		t.Fatalf("replay of p after the priming event: %q, %v; want the answer", got, err)
	}

	// A newer activation: the old one's open stores nothing, neither the
	// journal entry nor the event; its last answer neither lands nor drops
	// the journal entry of the stream the new one opened.
	cur, _, _ := snaps.Activate(ctx, "k", true)
	if err := ev.OpenAppend(ctx, "k", "q", "", old, ids, "", nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale OpenAppend: %v, want ErrFenced", err)
	}
	if got := pending("q"); got != nil {
		t.Fatalf("a stale OpenAppend journalled %s", got)
	}
	if got, err := collect(t, ev, "k", "q", -1); len(got) != 0 || !errors.Is(err, mcp.ErrEventsPurged) {
		t.Fatalf("a stale OpenAppend's stream replays %q, %v; want an unknown stream", got, err)
	}
	if err := ev.OpenAppend(ctx, "k", "r", "", cur, ids, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := ev.AppendFinish(ctx, "k", "r", old, "", []byte("stale")); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale AppendFinish: %v, want ErrFenced", err)
	}
	if got := pending("r"); len(got) != 1 {
		t.Fatalf("a stale AppendFinish dropped the journal entry: %s", got)
	}
	// Nor does its removal of a journal entry alone (a request answered
	// without its answer taking the entry along).
	if err := ev.FinishRequests(ctx, "k", "r", old); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale FinishRequests: %v, want ErrFenced", err)
	}
	if got := pending("r"); len(got) != 1 {
		t.Fatalf("a stale FinishRequests dropped the journal entry: %s", got)
	}
	if err := ev.AppendFinish(ctx, "k", "r", cur, "", []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, ev, "k", "r", -1); err != nil || !slices.Equal(got, []string{"", "fresh"}) {
		t.Fatalf("replay of r: %q, %v; want the priming event and the current answer", got, err)
	}
	if got := pending("r"); got != nil {
		t.Fatalf("journal of r after AppendFinish: %s, want none", got)
	}
	// A stream never opened takes no answer, and its journal entry stays.
	if err := ev.OpenFor(ctx, "k", "s", "", cur, ids); err != nil {
		t.Fatal(err)
	}
	if err := ev.AppendFinish(ctx, "k", "never", cur, "", []byte("x")); err == nil {
		t.Fatal("AppendFinish to a stream never opened succeeded")
	}
	if got := pending("s"); len(got) != 1 {
		t.Fatalf("journal of s: %s, want [7]", got)
	}
	if err := ev.SessionClosed(ctx, "k"); err != nil {
		t.Fatal(err)
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

// testBudget is the session budget of testEventBytes: four streams of one
// 2000-byte event fit, five do not.
const testBudget = 4*(2000+EventOverhead+StreamOverhead) + 1000

// testEventBytes is the byte bound of a store: a session's events, all its
// streams together, stay within MaxBytes, the oldest going first whichever
// stream they are in; replaying from before what was dropped fails with
// the SDK's ErrEventsPurged; an event larger than the whole budget is not
// kept; other sessions keep theirs.
func testEventBytes(t *testing.T, s Events) {
	ctx := context.Background()
	const event = 2000
	data := func(i int) []byte { return []byte(fmt.Sprintf("%04d%s", i, strings.Repeat("x", event-4))) }
	s.Open(ctx, "other", "st")
	s.Append(ctx, "other", "st", []byte("kept"))
	for i := range 20 {
		stream := "post" + strconv.Itoa(i)
		if err := s.Open(ctx, "flood", stream); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "flood", stream, data(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		got, err := collect(t, s, "flood", "post"+strconv.Itoa(i), -1)
		if i < 16 && (!errors.Is(err, mcp.ErrEventsPurged) || len(got) != 0) {
			t.Errorf("stream %d of 20, over the session's budget: %d events, %v; want ErrEventsPurged", i, len(got), err)
		}
		if i >= 16 && (err != nil || len(got) != 1 || got[0] != string(data(i))) {
			t.Errorf("stream %d of 20, within the budget: %d events, %v", i, len(got), err)
		}
	}
	if got, err := collect(t, s, "other", "st", -1); err != nil || !slices.Equal(got, []string{"kept"}) {
		t.Errorf("another session's events: %v, %v", got, err)
	}
	// One long stream: its oldest events go, its tail replays.
	s.Open(ctx, "flood", "long")
	for i := range 50 {
		if err := s.Append(ctx, "flood", "long", data(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := collect(t, s, "flood", "long", 30); !errors.Is(err, mcp.ErrEventsPurged) {
		t.Errorf("replay of a long stream from before its kept tail: %v", err)
	}
	if got, err := collect(t, s, "flood", "long", 45); err != nil || len(got) != 4 || got[3] != string(data(49)) {
		t.Errorf("replay of a long stream's tail: %d events, %v", len(got), err)
	}
	// An event larger than the budget is delivered live, never kept, and
	// nothing before it in its stream is replayed partially.
	s.Open(ctx, "flood", "huge")
	s.Append(ctx, "flood", "huge", []byte("small"))
	if err := s.Append(ctx, "flood", "huge", []byte(strings.Repeat("h", testBudget))); err != nil {
		t.Fatal(err)
	}
	s.Append(ctx, "flood", "huge", []byte("after"))
	if _, err := collect(t, s, "flood", "huge", -1); !errors.Is(err, mcp.ErrEventsPurged) {
		t.Errorf("replay from before an event over the budget: %v", err)
	}
	if got, err := collect(t, s, "flood", "huge", 1); err != nil || !slices.Equal(got, []string{"after"}) {
		t.Errorf("replay after an event over the budget: %v, %v", got, err)
	}
}

func TestRedisEventsByteBound(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedisEvents(client, "bytes:", EventOptions{MaxBytes: testBudget, TTL: time.Minute})
	trimmed := counterValue(t, metrics.EventsTrimmed.WithLabelValues("bytes"))
	testEventBytes(t, s)
	if n := counterValue(t, metrics.EventsTrimmed.WithLabelValues("bytes")) - trimmed; n < 16+40 {
		t.Errorf("events trimmed for the byte bound: %v counted", n)
	}
	// What Redis holds for the session is about the budget, whatever was
	// appended (about 150 KB here).
	keys, _ := client.Keys(ctx, "bytes:events:{flood}:*").Result()
	var used int64
	for _, k := range keys {
		n, _ := client.MemoryUsage(ctx, k, 0).Result() // every field, not an estimate from 5
		used += n
	}
	t.Logf("Redis holds %d bytes in %d keys for a budget of %d", used, len(keys), testBudget)
	if used == 0 || used > testBudget+2<<10 { // the budget, and the keys' own structures
		t.Errorf("Redis holds %d bytes for the session's events (%d keys); want about the budget of %d", used, len(keys), testBudget)
	}
	// The session's count agrees with what it keeps.
	b, _ := client.HGet(ctx, "bytes:events:{flood}:bytes", "b").Int64()
	if b > testBudget || b < testBudget/2 {
		t.Errorf("the session counts %d bytes kept", b)
	}
	// Its keys expire with its streams, and go when it is closed.
	if ttl, _ := client.PTTL(ctx, "bytes:events:{flood}:order").Result(); ttl <= 0 || ttl > time.Minute*9/8 {
		t.Errorf("the session's event order expires in %v", ttl)
	}
	s.SessionClosed(ctx, "flood")
	if keys, _ := client.Keys(ctx, "bytes:events:{flood}:*").Result(); len(keys) != 0 {
		t.Errorf("keys left after the session closed: %v", keys)
	}
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMemoryEventsByteBound(t *testing.T) {
	s := NewMemoryEvents(nil)
	s.SetOptions(EventOptions{MaxBytes: testBudget})
	testEventBytes(t, s)
	if b, _ := s.Bytes("flood"); b > testBudget || b < testBudget/2 {
		t.Errorf("the session counts %d bytes kept", b)
	}
	s.SessionClosed(context.Background(), "flood")
	if b, total := s.Bytes("flood"); b != 0 || total != int64(len("kept")+EventOverhead+StreamOverhead) {
		t.Errorf("after the session closed: %d bytes for it, %d in all", b, total)
	}
}

// In memory, all sessions together are bounded too, and the sessions
// keeping the most give way: one user's flood of large results never
// drops another's resumable events (the SDK's store drops the oldest event
// of every stream alike).
func TestMemoryEventsFairness(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryEvents(nil)
	s.SetOptions(EventOptions{MaxBytes: 40000, MaxTotalBytes: 100000})
	var quiet []string
	for i := range 5 {
		session := "quiet" + strconv.Itoa(i)
		s.Open(ctx, session, "st")
		for j := range 5 {
			s.Append(ctx, session, "st", []byte(fmt.Sprintf("%s-%d-%s", session, j, strings.Repeat("q", 1000))))
		}
		quiet = append(quiet, session)
	}
	total := counterValue(t, metrics.EventsTrimmed.WithLabelValues("total"))
	big := []byte(strings.Repeat("f", 2000))
	for i := range 300 {
		for _, flood := range []string{"flood1", "flood2"} {
			stream := "post" + strconv.Itoa(i)
			s.Open(ctx, flood, stream)
			if err := s.Append(ctx, flood, stream, big); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, session := range quiet {
		if got, err := collect(t, s, session, "st", -1); err != nil || len(got) != 5 {
			t.Errorf("%s lost events to the floods: %d of 5 replayed, %v", session, len(got), err)
		}
	}
	f1, all := s.Bytes("flood1")
	f2, _ := s.Bytes("flood2")
	if all > 100000 || f1 > 40000 || f2 > 40000 {
		t.Errorf("kept %d bytes in all (flood1 %d, flood2 %d); bounds 100000 and 40000 per session", all, f1, f2)
	}
	if got, err := collect(t, s, "flood1", "post299", -1); err != nil || len(got) != 1 {
		t.Errorf("a flood's newest event is not kept: %d, %v", len(got), err)
	}
	if counterValue(t, metrics.EventsTrimmed.WithLabelValues("total")) == total {
		t.Error("no event trimmed for the total bound was counted")
	}
}

// The memory store keeps --events-max events per stream, and forgets a
// stream --events-ttl after its last event, as Redis does.
func TestMemoryEventsCountAndTTL(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s := NewMemoryEvents(nil)
	s.SetOptions(EventOptions{MaxLen: 10, TTL: time.Minute})
	s.Now = func() time.Time { return now }
	s.Open(ctx, "sess", "st")
	for i := range 500 {
		if err := s.Append(ctx, "sess", "st", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := collect(t, s, "sess", "st", -1); !errors.Is(err, mcp.ErrEventsPurged) || len(got) != 0 {
		t.Fatalf("replay from the start of a trimmed stream: %d events, %v", len(got), err)
	}
	if got, err := collect(t, s, "sess", "st", 495); err != nil || !slices.Equal(got, []string{"496", "497", "498", "499"}) {
		t.Fatalf("replay of the tail: %v %v", got, err)
	}
	if err := s.Append(ctx, "sess", "never", []byte("x")); !errors.Is(err, ErrStreamGone) {
		t.Errorf("append to an unopened stream: %v", err)
	}
	now = now.Add(2 * time.Minute)
	s.Open(ctx, "other", "st") // any call may sweep
	if _, err := collect(t, s, "sess", "st", 495); err == nil {
		t.Error("a stream outlived its TTL")
	}
	if b, total := s.Bytes("sess"); b != 0 || total != StreamOverhead { // the other session's stream
		t.Errorf("an expired session still counts %d bytes (%d in all)", b, total)
	}
}

// With the default bounds, a session flooding its streams with large
// results (60 of 200 KB, a stream each, as a POST per tool call makes)
// keeps about --events-max-bytes' 4 MiB, its oldest stream unresumable, and
// another session keeps every event: in Redis, where nothing bounded a
// session's bytes before, and in memory, where the go-sdk's store dropped
// every session's oldest events alike once its 10 MiB were full.
func TestEventsFloodWithDefaultBounds(t *testing.T) {
	client := redistest.Start(t)
	for name, s := range map[string]Events{
		"memory": NewMemoryEvents(nil),
		"redis":  NewRedisEvents(client, "flood:", EventOptions{}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var quiet []string
			s.Open(ctx, "quiet", "st")
			for i := range 5 {
				quiet = append(quiet, fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/message","params":{"n":%d}}`, i))
				s.Append(ctx, "quiet", "st", []byte(quiet[i]))
			}
			big := []byte(strings.Repeat("x", 200<<10))
			for i := range 60 {
				stream := "post" + strconv.Itoa(i)
				s.Open(ctx, "flood", stream)
				if err := s.Append(ctx, "flood", stream, big); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := collect(t, s, "quiet", "st", -1); err != nil || !slices.Equal(got, quiet) {
				t.Errorf("the quiet session's events after the flood: %d of 5, %v", len(got), err)
			}
			if _, err := collect(t, s, "flood", "post0", -1); !errors.Is(err, mcp.ErrEventsPurged) {
				t.Errorf("the flood's oldest stream: %v, want ErrEventsPurged", err)
			}
			if got, err := collect(t, s, "flood", "post59", -1); err != nil || len(got) != 1 {
				t.Errorf("the flood's newest stream: %d events, %v", len(got), err)
			}
			if name != "redis" {
				return
			}
			keys, _ := client.Keys(ctx, "flood:events:{flood}:*").Result()
			var used int64
			for _, k := range keys {
				n, _ := client.MemoryUsage(ctx, k, 0).Result()
				used += n
			}
			if used > 5<<20 {
				t.Errorf("Redis keeps %d bytes of the flooding session's events (12 MB appended); want about the default 4 MiB", used)
			}
		})
	}
}

// A POST carrying calls opens a stream of its own, which Redis keeps as
// keys of their own (its entries, its count, its place in the session's
// set of streams) whether or not its events are still kept: each stream
// counts StreamOverhead, and goes once its events went and its requests
// were answered. However many POSTs a session makes, what Redis holds for
// it stays within its budget and a constant, in bytes and in keys; its
// newest streams replay, its oldest fail with ErrEventsPurged.
func TestEventsManyStreamsBounded(t *testing.T) {
	const budget, posts = 64 << 10, 20000
	client := redistest.Start(t)
	for name, s := range map[string]Events{
		"memory": func() Events { m := NewMemoryEvents(nil); m.SetOptions(EventOptions{MaxBytes: budget}); return m }(),
		"redis":  NewRedisEvents(client, "posts:", EventOptions{MaxBytes: budget}),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s.OpenFor(ctx, "sess", "", "", 0, nil)
			s.Append(ctx, "sess", "", []byte(`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`))
			// A slow call's stream, its request in flight and no event yet,
			// outlives the flood.
			s.OpenFor(ctx, "sess", "slow", "", 0, []json.RawMessage{json.RawMessage(`"slow"`)})
			for i := range posts {
				stream := fmt.Sprintf("post%05d", i)
				if err := s.OpenFor(ctx, "sess", stream, "", 0, []json.RawMessage{json.RawMessage(strconv.Itoa(i))}); err != nil {
					t.Fatal(err)
				}
				if err := s.Append(ctx, "sess", stream, []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":{}}`, i))); err != nil {
					t.Fatal(err)
				}
				if err := s.FinishRequests(ctx, "sess", stream, 0); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := collect(t, s, "sess", fmt.Sprintf("post%05d", posts-1), -1); err != nil || len(got) != 1 {
				t.Errorf("the newest stream: %d events, %v", len(got), err)
			}
			if _, err := collect(t, s, "sess", "post00000", -1); !errors.Is(err, mcp.ErrEventsPurged) {
				t.Errorf("the oldest stream: %v, want ErrEventsPurged", err)
			}
			if err := s.Append(ctx, "sess", "slow", []byte("answer")); err != nil {
				t.Errorf("the slow call's stream after the flood: %v", err)
			}
			if got, err := collect(t, s, "sess", "slow", -1); err != nil || !slices.Equal(got, []string{"answer"}) {
				t.Errorf("the slow call's stream replays %v, %v", got, err)
			}
			// The standalone stream stays, its event dropped as the oldest.
			if _, err := collect(t, s, "sess", "", -1); !errors.Is(err, mcp.ErrEventsPurged) {
				t.Errorf("the standalone stream from its start: %v, want ErrEventsPurged", err)
			}
			if got, err := collect(t, s, "sess", "", 0); err != nil || len(got) != 0 {
				t.Errorf("the standalone stream after its event: %d events, %v; want it kept, empty", len(got), err)
			}
			if m, ok := s.(*MemoryEvents); ok {
				if b, _ := m.Bytes("sess"); b > budget {
					t.Errorf("the session counts %d bytes, budget %d", b, budget)
				}
				if n := len(m.sessions["sess"].streams); n > budget/StreamOverhead+1 {
					t.Errorf("the session keeps %d streams after %d POSTs", n, posts)
				}
				return
			}
			keys, _ := client.Keys(ctx, "posts:events:{sess}:*").Result()
			var used int64
			for _, k := range keys {
				n, _ := client.MemoryUsage(ctx, k, 0).Result()
				used += n
			}
			t.Logf("after %d POSTs: %d keys, %d bytes (MEMORY USAGE), budget %d", posts, len(keys), used, budget)
			if used > budget+8<<10 || len(keys) > 2*(budget/StreamOverhead)+8 {
				t.Errorf("Redis keeps %d bytes in %d keys for a session with a budget of %d bytes", used, len(keys), budget)
			}
			if b, _ := client.HGet(ctx, "posts:events:{sess}:bytes", "b").Int64(); b > budget {
				t.Errorf("the session counts %d bytes, budget %d", b, budget)
			}
		})
	}
}

// In memory, beyond MaxTotalBytes the user keeping the most gives way, not
// the largest session: one user's many sessions (up to
// --max-sessions-per-user) cannot push out another user's session that is
// larger than each of theirs.
func TestMemoryEventsFairnessPerUser(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryEvents(nil)
	s.SetOptions(EventOptions{MaxBytes: 40000, MaxTotalBytes: 100000})
	var kept []string
	s.OpenFor(ctx, "b1", "st", "userB", 0, nil)
	for i := range 10 {
		kept = append(kept, fmt.Sprintf("%d%s", i, strings.Repeat("b", 3000)))
		s.Append(ctx, "b1", "st", []byte(kept[i]))
	}
	small := []byte(strings.Repeat("a", 2000))
	for i := range 100 {
		session := "a" + strconv.Itoa(i)
		for j := range 2 {
			stream := "post" + strconv.Itoa(j)
			s.OpenFor(ctx, session, stream, "userA", 0, nil)
			if err := s.Append(ctx, session, stream, small); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, err := collect(t, s, "b1", "st", -1); err != nil || !slices.Equal(got, kept) {
		t.Errorf("user B's session lost events to user A's sessions: %d of 10 replayed, %v", len(got), err)
	}
	a, b := s.UserBytes("userA"), s.UserBytes("userB")
	if _, all := s.Bytes("b1"); all > 100000 || a+b != all || b < 10*3000 {
		t.Errorf("kept %d bytes in all: user A %d, user B %d; bound 100000", all, a, b)
	}
	if got, err := collect(t, s, "a99", "post1", -1); err != nil || len(got) != 1 {
		t.Errorf("user A's newest event is not kept: %d, %v", len(got), err)
	}
	// Sessions without an owner count as one user.
	s.OpenFor(ctx, "anon", "st", "", 0, nil)
	s.Append(ctx, "anon", "st", []byte("x"))
	if got := s.UserBytes(""); got != StreamOverhead+1+EventOverhead {
		t.Errorf("sessions without an owner count %d bytes", got)
	}
}

// In Redis, as in memory, a stream expires TTL after its open or its last
// event while its session goes on: appends and replays no longer know it,
// and opened again it starts from its first event, whatever the budget
// later drops of what it kept before. The session's keys outlive each
// write by the TTL at least (by an eighth more at most), though a write
// sets their TTL only when it was set a sixteenth of the TTL ago or more.
func TestRedisEventsStreamTTL(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	const ttl = 800 * time.Millisecond
	s := NewRedisEvents(client, "ttl:", EventOptions{TTL: ttl})
	hash, order := s.keys("sess")[0], s.keys("sess")[3]
	if err := s.Open(ctx, "sess", "old"); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "sess", "old", []byte("a")); err != nil {
		t.Fatal(err)
	}
	expired := time.Now().Add(ttl) // "old"'s last event was before now
	s.Open(ctx, "sess", "live")
	// Each write's expiry of the session's hash, as a deadline: a write
	// that sets the TTL moves it on.
	deadline := func() time.Time { return time.Now().Add(client.PTTL(ctx, hash).Val()) }
	writes, refreshed, prev := 0, 0, deadline()
	start := time.Now()
	for time.Now().Before(expired.Add(ttl / 4)) {
		before := time.Now()
		if err := s.Append(ctx, "sess", "live", []byte("x")); err != nil {
			t.Fatal(err)
		}
		writes++
		for _, k := range []string{hash, order} {
			// The keys outlive the write by the TTL at least, however
			// long the write and this look took (a loaded machine), and
			// by an eighth more at most.
			d := client.PTTL(ctx, k).Val()
			if time.Now().Add(d).Before(before.Add(ttl)) || d > ttl*9/8 {
				t.Fatalf("after a write, %s expires in %v (%v after the write began); want %v to an eighth more", k, d, time.Since(before), ttl)
			}
		}
		if d := deadline(); d.Sub(prev) > 10*time.Millisecond {
			refreshed++
			prev = d
		}
		time.Sleep(ttl / 40) // the session's pace
	}
	// At most one refresh per sixteenth of the TTL, whatever the pace.
	if most := int(time.Since(start)/(ttl/16)) + 1; refreshed == 0 || refreshed > most || refreshed >= writes {
		t.Errorf("%d of %d writes set the keys' TTL; want at least one, at most %d", refreshed, writes, most)
	}
	if _, err := collect(t, s, "sess", "old", -1); !errors.Is(err, mcp.ErrEventsPurged) {
		t.Errorf("replay of an expired stream: %v, want ErrEventsPurged", err)
	}
	if err := s.Append(ctx, "sess", "old", []byte("late")); !errors.Is(err, ErrStreamGone) {
		t.Errorf("append to an expired stream: %v, want ErrStreamGone", err)
	}
	if got, err := collect(t, s, "sess", "live", writes-3); err != nil || len(got) != 2 {
		t.Errorf("the live stream's last events: %q, %v", got, err)
	}
	// Opened again, "old" numbers from 1; its new event takes the field of
	// its old first one.
	if err := s.Open(ctx, "sess", "old"); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "sess", "old", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, s, "sess", "old", -1); err != nil || !slices.Equal(got, []string{"b"}) {
		t.Fatalf("the reopened stream replays %q, %v; want [b]", got, err)
	}
	// A write needing room for one event drops the session's oldest: the
	// old stream's member (moved: the stream is alive, with an event) and
	// its old event "a", whose field now holds "b": "b" must stay.
	b, err := client.HGet(ctx, hash, "b").Int64()
	if err != nil {
		t.Fatal(err)
	}
	tight := NewRedisEvents(client, "ttl:", EventOptions{TTL: ttl, MaxBytes: b})
	if err := tight.Append(ctx, "sess", "live", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, s, "sess", "old", -1); err != nil || !slices.Equal(got, []string{"b"}) {
		t.Errorf("after the old incarnation's event was dropped, the stream replays %q, %v; want [b]", got, err)
	}
	if after, _ := client.HGet(ctx, hash, "b").Int64(); after != b {
		t.Errorf("the session counts %d bytes, want %d (one event dropped, one added, the same size)", after, b)
	}
}

// A session written by a node of the layout before this one (a Redis
// stream and a counter per stream, the stream's last write in the hash's
// "w:" field) goes on: what the old layout kept counts in the same byte
// count and order, and the budget drops it as the oldest, its "w:" field
// along, so that the count stays the order's sum and nothing old is left
// in the hash.
func TestRedisEventsAfterOldLayout(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedisEvents(client, "old:", EventOptions{})
	hash, order := s.keys("sess")[0], s.keys("sess")[3]
	// What the old layout left: a stream "p" with one event (its member
	// and the stream's), its byte count and sequence, its last write.
	client.ZAdd(ctx, order, redis.Z{Score: 1, Member: "0|5120|0|p"}, redis.Z{Score: 2, Member: "2|300|1|p"})
	client.HSet(ctx, hash, "b", 5120+300, "q", 2, "w:p", "0123 1")
	client.XAdd(ctx, &redis.XAddArgs{Stream: "old:events:{sess}:s:p", ID: "0-1", Values: []any{"d", "x", "q", 2}})
	if got, err := collect(t, s, "sess", "p", -1); !errors.Is(err, mcp.ErrEventsPurged) {
		t.Errorf("an old stream replays %q, %v; want ErrEventsPurged (not read by this layout)", got, err)
	}
	// The new layout writes on, on a budget that needs all the old bytes.
	tight := NewRedisEvents(client, "old:", EventOptions{MaxBytes: StreamOverhead + 3 + EventOverhead})
	if err := tight.Open(ctx, "sess", "n"); err != nil {
		t.Fatal(err)
	}
	if err := tight.Append(ctx, "sess", "n", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, tight, "sess", "n", -1); err != nil || !slices.Equal(got, []string{"new"}) {
		t.Fatalf("the new stream replays %q, %v", got, err)
	}
	fields := client.HGetAll(ctx, hash).Val()
	if _, ok := fields["w:p"]; ok {
		t.Error(`the old stream's "w:" field was left in the hash`)
	}
	var sum int64
	for _, m := range client.ZRange(ctx, order, 0, -1).Val() {
		if strings.HasSuffix(m, "|p") {
			t.Errorf("an old member is left: %q", m)
		}
		size, _ := strconv.ParseInt(strings.SplitN(m, "|", 3)[1], 10, 64)
		sum += size
	}
	if b, _ := strconv.ParseInt(fields["b"], 10, 64); b != sum || b != StreamOverhead+3+EventOverhead {
		t.Errorf("the session counts %d bytes, its members %d; want the new stream's %d", b, sum, StreamOverhead+3+EventOverhead)
	}
}

// TestRedisEventsPrimingInRecord: a stream's first event, when empty (the
// SDK's priming event), is kept in the stream's record, not as a field of
// the session's hash with a member in the order: a request stream then
// costs Redis its record and its answer. Replays are as if it were stored;
// the count bound drops it as any other.
func TestRedisEventsPrimingInRecord(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	s := NewRedisEvents(client, "prime:", EventOptions{MaxLen: 2})
	hash, order := s.keys("sess")[0], s.keys("sess")[3]
	ids := []json.RawMessage{json.RawMessage(`1`)}
	if err := s.OpenAppend(ctx, "sess", "p", "", 0, ids, "", nil); err != nil {
		t.Fatal(err)
	}
	fields := client.HGetAll(ctx, hash).Val()
	if _, ok := fields["e:1:p"]; ok {
		t.Error("the priming event is a field of the session's hash")
	}
	if rec := fields["s:p"]; !strings.HasPrefix(rec, "1 ") || !strings.HasSuffix(rec, " i") {
		t.Errorf("the stream's record is %q, want its first event numbered and implied", rec)
	}
	if got := client.ZRange(ctx, order, 0, -1).Val(); len(got) != 1 || fields["b"] != strconv.Itoa(StreamOverhead) {
		t.Errorf("the order holds %q and the session counts %s bytes; want the stream's member and %d", got, fields["b"], StreamOverhead)
	}
	if got, err := collect(t, s, "sess", "p", -1); err != nil || !slices.Equal(got, []string{""}) {
		t.Fatalf("replay of p from the start: %q, %v; want the priming event", got, err)
	}
	// A retry of the open stores nothing more.
	w := NewWriteID()
	if err := s.OpenAppend(ctx, "sess", "q", "", 0, ids, w, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.OpenAppend(ctx, "sess", "q", "", 0, ids, w, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendFinish(ctx, "sess", "q", 0, "", []byte("answer")); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, s, "sess", "q", -1); err != nil || !slices.Equal(got, []string{"", "answer"}) {
		t.Fatalf("replay of q: %q, %v; want the priming event and the answer", got, err)
	}
	// Past the count bound (2), the priming event goes first.
	if err := s.Append(ctx, "sess", "q", []byte("late")); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, s, "sess", "q", -1); !errors.Is(err, mcp.ErrEventsPurged) {
		t.Fatalf("replay of q from the start past its bound: %q, %v; want ErrEventsPurged", got, err)
	}
	if got, err := collect(t, s, "sess", "q", 0); err != nil || !slices.Equal(got, []string{"answer", "late"}) {
		t.Fatalf("replay of q after the priming event: %q, %v", got, err)
	}
	// An empty event that is not a stream's first is stored as any other.
	if err := s.Append(ctx, "sess", "p", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := client.HGetAll(ctx, hash).Val()["e:2:p"]; !ok {
		t.Error("an empty second event is not stored")
	}
	if got, err := collect(t, s, "sess", "p", -1); err != nil || !slices.Equal(got, []string{"", ""}) {
		t.Fatalf("replay of p: %q, %v", got, err)
	}
}

// OpenLast opens a stream and says where it starts and ends, whatever of
// it was dropped: the indexes of its first kept and last events (-1 for
// none); opened again after it expired, it starts anew (the actor resumes
// a GET without Last-Event-ID from there: actors.standaloneFrom).
func testOpenLast(t *testing.T, s Events, expire func()) {
	ctx := context.Background()
	if first, last, _, err := s.OpenLast(ctx, "sess", "", 0); err != nil || first != 0 || last != -1 {
		t.Fatalf("OpenLast of a new stream: %d, %d, %v; want 0, -1", first, last, err)
	}
	for i := range 30 {
		if err := s.Append(ctx, "sess", "", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			if first, last, _, err := s.OpenLast(ctx, "sess", "", 0); err != nil || first != 0 || last != 4 {
				t.Fatalf("OpenLast of a stream of 5 events: %d, %d, %v; want 0, 4", first, last, err)
			}
		}
	}
	if _, err := collect(t, s, "sess", "", -1); !errors.Is(err, mcp.ErrEventsPurged) {
		t.Fatalf("the stream's first events were not dropped (MaxLen 10): %v", err)
	}
	first, last, _, err := s.OpenLast(ctx, "sess", "", 0)
	if err != nil || first != 20 || last != 29 {
		t.Fatalf("OpenLast of a stream of 30 events, 20 dropped: %d, %d, %v; want 20, 29", first, last, err)
	}
	if got, err := collect(t, s, "sess", "", first-1); err != nil || len(got) != 10 || got[0] != "20" {
		t.Fatalf("After(first-1): %v, %v; want the 10 kept", got, err)
	}
	if got, err := collect(t, s, "sess", "", last); err != nil || len(got) != 0 {
		t.Fatalf("After(last): %v, %v; want nothing", got, err)
	}
	expire()
	if first, last, _, err := s.OpenLast(ctx, "sess", "", 0); err != nil || first != 0 || last != -1 {
		t.Fatalf("OpenLast of an expired stream: %d, %d, %v; want 0, -1 (opened anew)", first, last, err)
	}
	if err := s.Append(ctx, "sess", "", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, s, "sess", "", -1); err != nil || !slices.Equal(got, []string{"new"}) {
		t.Fatalf("the stream opened anew: %v, %v", got, err)
	}
	// Fenced like OpenFor.
	if _, _, _, err := s.OpenLast(ctx, "sess", "", 99); !errors.Is(err, ErrFenced) {
		t.Errorf("OpenLast as an activation that does not own the session: %v, want ErrFenced", err)
	}
}

func TestMemoryEventsOpenLast(t *testing.T) {
	now := time.Now()
	snaps := &MemorySnapshots{}
	s := NewMemoryEvents(snaps)
	s.SetOptions(EventOptions{MaxLen: 10, TTL: time.Minute})
	s.Now = func() time.Time { return now }
	if _, _, err := snaps.Activate(context.Background(), "sess", true); err != nil { // epoch 1
		t.Fatal(err)
	}
	testOpenLast(t, s, func() { now = now.Add(2 * time.Minute) })
}

func TestRedisEventsOpenLast(t *testing.T) {
	client := redistest.Start(t)
	s := NewRedisEvents(client, "openlast:", EventOptions{MaxLen: 10, TTL: time.Second})
	snaps := NewRedisSnapshots(client, "openlast:")
	if _, _, err := snaps.Activate(context.Background(), "sess", true); err != nil { // epoch 1
		t.Fatal(err)
	}
	// Redis's own clock decides a stream's expiry (1 s here).
	testOpenLast(t, s, func() { time.Sleep(1100 * time.Millisecond) })
}

// What an open drops to make room for its stream (StreamOverhead) is
// counted as an append's drops are.
func TestRedisEventsOpenCountsWhatItDrops(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	const event = 100
	s := NewRedisEvents(client, "", EventOptions{MaxBytes: 2 * (StreamOverhead + EventOverhead + event), TTL: time.Minute})
	for _, stream := range []string{"a", "b"} {
		if err := s.Open(ctx, "full", stream); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "full", stream, bytes.Repeat([]byte("x"), event)); err != nil {
			t.Fatal(err)
		}
	}
	events := counterValue(t, metrics.EventsTrimmed.WithLabelValues("bytes"))
	if err := s.Open(ctx, "full", "c"); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, s, "full", "a", -1); !errors.Is(err, mcp.ErrEventsPurged) {
		t.Fatalf("the first stream's event, the session over its budget with a third stream: %v, %v; want it dropped", got, err)
	}
	if n := counterValue(t, metrics.EventsTrimmed.WithLabelValues("bytes")) - events; n < 1 {
		t.Errorf("events the open dropped: %v counted, want 1 at least", n)
	}
}

// With a sealer, Redis holds no event's data in the clear, and replays only
// what the store sealed for that session's stream: an event written in
// Redis by someone else, copied from another session, or sealed under a key
// no longer in --state-keys fails the replay rather than reach a client.
func TestRedisEventsSealed(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	k1, k2 := key(), key()
	sealer, _ := ParseKeys("k1:" + k1)
	n := 0
	testEvents(t, func() mcp.EventStore {
		n++
		s := NewRedisEvents(client, fmt.Sprintf("sealed%d:", n), EventOptions{})
		s.SetSealer(sealer)
		return s
	})

	s := NewRedisEvents(client, "sealed:", EventOptions{})
	s.SetSealer(sealer)
	events := []string{`{"jsonrpc":"2.0","method":"notifications/progress","params":{"message":"user data one"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"user data two"}]}}`}
	for _, session := range []string{"a", "b"} {
		if err := s.Open(ctx, session, "st"); err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if err := s.Append(ctx, session, "st", []byte(e+session)); err != nil {
				t.Fatal(err)
			}
		}
	}
	hash := func(session string) map[string]string {
		all, err := client.HGetAll(ctx, s.keys(session)[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		return all
	}
	a, b := hash("a"), hash("b")
	fields := 0
	for f, v := range a {
		if strings.Contains(v, "user data") {
			t.Errorf("Redis holds field %s in the clear: %q", f, v)
		}
		if strings.HasPrefix(f, "e:") {
			fields++
		}
	}
	if fields != len(events) {
		t.Fatalf("session a keeps %d event fields, want %d: %v", fields, len(events), a)
	}
	if got, err := collect(t, s, "a", "st", -1); err != nil || !slices.Equal(got, []string{events[0] + "a", events[1] + "a"}) {
		t.Fatalf("replay of sealed events: %q %v", got, err)
	}
	// After a rotation, events sealed under the old key still open; with
	// the old key dropped, they do not.
	rotated, _ := ParseKeys("k2:" + k2 + ",k1:" + k1)
	s.SetSealer(rotated)
	if got, err := collect(t, s, "a", "st", -1); err != nil || len(got) != 2 {
		t.Errorf("replay after a rotation: %q %v", got, err)
	}
	only2, _ := ParseKeys("k2:" + k2)
	s.SetSealer(only2)
	if got, err := collect(t, s, "a", "st", -1); !errors.Is(err, ErrUnsealable) || len(got) != 0 {
		t.Errorf("replay of events sealed under a dropped key: %q %v", got, err)
	}
	s.SetSealer(sealer)
	// One of b's events replaced by a's (the same field, the same stream's
	// name), or by JSON written in the clear: b's replay fails there.
	for name, value := range map[string]func(f string) string{
		"copied from session a": func(f string) string { return a[f] },
		"written in the clear": func(f string) string {
			q, _, _ := strings.Cut(b[f], " ")
			return q + " " + `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"injected"}]}}`
		},
	} {
		for f := range b {
			if strings.HasPrefix(f, "e:2:") {
				client.HSet(ctx, s.keys("b")[0], f, value(f))
			}
		}
		got, err := collect(t, s, "b", "st", -1)
		if !errors.Is(err, ErrUnsealable) || !slices.Equal(got, []string{events[0] + "b"}) {
			t.Errorf("%s: replay gave %q, %v; want the first event, then the refusal", name, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "injected") {
			t.Errorf("%s: the refusal quotes the event: %v", name, err)
		}
	}
}

// With a sealer, an event's data that is empty replays only as a stream's
// first event (the SDK's priming event, which carries nothing and is
// stored so): an empty value written into Redis in place of a later event
// (the answer to a call, say) fails the replay, as any event that does not
// open does. Before, it was replayed empty, and the SDK left it out of the
// resumed stream without a word: the event it replaced was lost to the
// client, which waited for it.
func TestRedisEventsSealedEmptyOnlyFirst(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	sealer, _ := ParseKeys("k1:" + key())
	s := NewRedisEvents(client, "blank:", EventOptions{})
	s.SetSealer(sealer)
	if err := s.Open(ctx, "a", "st"); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"", `{"jsonrpc":"2.0","method":"notifications/progress"}`, `{"jsonrpc":"2.0","id":1,"result":{}}`} {
		if err := s.Append(ctx, "a", "st", []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := collect(t, s, "a", "st", -1); err != nil || len(got) != 3 || got[0] != "" {
		t.Fatalf("replay with the priming event: %q %v", got, err)
	}
	hash := s.keys("a")[0]
	v, err := client.HGet(ctx, hash, "e:3:st").Result()
	if err != nil {
		t.Fatal(err)
	}
	q, _, _ := strings.Cut(v, " ")
	client.HSet(ctx, hash, "e:3:st", q+" ")
	got, err := collect(t, s, "a", "st", 0)
	if !errors.Is(err, ErrUnsealable) || len(got) != 1 {
		t.Fatalf("replay of an answer blanked in Redis: %q, %v; want the first event, then the refusal", got, err)
	}
}

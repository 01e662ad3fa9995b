package tasks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/state/taskstore"
)

// stream is an open subscriptions/listen: its messages as they arrive.
type stream struct {
	status int
	msgs   chan map[string]any // closed when the stream ends
	cancel context.CancelFunc
	got    map[string]map[string]any // notifications/tasks read, by "taskId status"
	// granted is what the acknowledgement granted; others are the
	// messages read that were not notifications/tasks.
	granted map[string]any
	others  []map[string]any
}

// listenTo opens a subscriptions/listen (request id 7) asking for
// notifications/tasks of ids (and whatever else extra asks for), with
// headers (name, value, ...) besides the protocol's.
func listenTo(t *testing.T, srv *httptest.Server, ids []string, withExt bool, extra map[string]any, headers ...string) *stream {
	t.Helper()
	caps := map[string]any{}
	if withExt {
		caps["extensions"] = map[string]any{Extension: map[string]any{}}
	}
	filter := map[string]any{"taskIds": ids}
	for k, v := range extra {
		filter[k] = v
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen", "params": map[string]any{
		"_meta": map[string]any{metaProtocol: "2026-07-28", metaCapabilities: caps,
			"io.modelcontextprotocol/clientInfo": map[string]any{"name": "test", "version": "1"}},
		"notifications": filter}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "subscriptions/listen")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{status: resp.StatusCode, msgs: make(chan map[string]any, 64), cancel: cancel, got: map[string]map[string]any{}}
	go func() {
		defer close(s.msgs)
		defer resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			s.msgs <- m
			return
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				if err := json.Unmarshal([]byte(data), &m); err != nil {
					m = map[string]any{"unparsable": data}
				}
				s.msgs <- m
			}
		}
	}()
	return s
}

// next is the stream's next message (nil once it ended).
func (s *stream) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no message on the listen stream for 15s")
		return nil
	}
}

// subscription checks that m carries the listen's id (7) as its
// subscription id, and returns its params.
func subscription(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	p, _ := m["params"].(map[string]any)
	if p == nil {
		p, _ = m["result"].(map[string]any)
	}
	meta, _ := p["_meta"].(map[string]any)
	if meta[mcp.MetaKeySubscriptionID] != float64(7) {
		t.Fatalf("message without the listen's subscription id: %v", m)
	}
	return p
}

// acked reads the acknowledgement, first on the stream, and returns the
// task ids it grants.
func (s *stream) acked(t *testing.T) []string {
	t.Helper()
	m := s.next(t)
	if m["method"] != "notifications/subscriptions/acknowledged" {
		t.Fatalf("first message %v, want the acknowledgement", m)
	}
	n, _ := subscription(t, m)["notifications"].(map[string]any)
	s.granted = n
	var ids []string
	for _, id := range asSlice(n["taskIds"]) {
		ids = append(ids, id.(string))
	}
	return ids
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// until reads notifications/tasks until task id has status want (or
// returns the one read already), and returns that one; each read is checked
// (subscription id, no resultType, one of the granted tasks: never
// another's).
func (s *stream) until(t *testing.T, granted []string, id, want string) map[string]any {
	t.Helper()
	for {
		if p := s.got[id+" "+want]; p != nil {
			return p
		}
		m := s.next(t)
		if m == nil {
			t.Fatalf("the listen ended before task %s was %s", id, want)
		}
		p := subscription(t, m)
		if m["method"] != "notifications/tasks" {
			s.others = append(s.others, m)
			continue
		}
		if !slices.Contains(granted, p["taskId"].(string)) {
			t.Fatalf("notification for task %v, not one granted %v", p["taskId"], granted)
		}
		if _, ok := p["resultType"]; ok {
			t.Errorf("notifications/tasks carries resultType: %v", p)
		}
		for _, k := range []string{"createdAt", "lastUpdatedAt", "ttlMs", "status"} {
			if _, ok := p[k]; !ok {
				t.Errorf("notifications/tasks without %s: %v", k, p)
			}
		}
		k := p["taskId"].(string) + " " + p["status"].(string)
		if s.got[k] != nil && p["status"] != "input_required" {
			t.Errorf("notified twice: %s", k)
		}
		s.got[k] = p
	}
}

// A listen that asks for tasks gets each one's state at once, then every
// change of status, each with the task's whole state as tasks/get answers
// it; the tasks of another owner (and unknown ids) are not granted and
// never notified. Once they all ended, the listen is answered.
func TestListenNotifiesStatusChanges(t *testing.T) {
	store := &taskstore.Memory{}
	// A lease longer than the test: what the listener gets comes from the
	// changes it is told of, not from its own reading each lease.
	srv, l := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1", Lease: time.Minute})
	m, _ := node(t, store, "mallory", "n1")
	done := start(t, srv, "test_slow", map[string]any{"ms": 400})
	long := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	asks := start(t, srv, "test_two_questions", nil)
	huge := start(t, srv, "test_huge", nil)
	others := start(t, m, "test_slow", map[string]any{"ms": 300})

	s := listenTo(t, srv, []string{done, long, asks, huge, others, "nope", done}, true, nil)
	if s.status != http.StatusOK {
		t.Fatalf("listen: HTTP %d", s.status)
	}
	granted := s.acked(t)
	want := []string{done, long, asks, huge}
	slices.Sort(want)
	if !slices.Equal(granted, want) || len(s.granted) != 1 {
		t.Fatalf("granted %v, want alice's own tasks %v", s.granted, want)
	}
	waitFor(t, "the listener's registration", func() bool { return l.Listening() == 1 })
	await(t, m, others, "completed") // mallory's completes while alice listens

	p := s.until(t, granted, done, "completed")
	if c := asSlice(p["result"].(map[string]any)["content"]); len(c) != 1 {
		t.Errorf("completed notification's result: %v", p)
	}
	p = s.until(t, granted, huge, "failed")
	if e, _ := p["error"].(map[string]any); e["code"] != float64(-32603) {
		t.Errorf("failed notification's error: %v", p)
	}
	p = s.until(t, granted, asks, "input_required")
	if ir, _ := p["inputRequests"].(map[string]any); len(ir) != 2 {
		t.Errorf("input_required notification's inputRequests: %v", p)
	}
	answer := map[string]any{"action": "accept", "content": map[string]any{}}
	rpc(t, srv, "tasks/update", map[string]any{"taskId": asks, "inputResponses": map[string]any{"a": answer, "b": answer}}, true)
	s.until(t, granted, asks, "completed")
	rpc(t, srv, "tasks/cancel", map[string]any{"taskId": long}, true)
	if p := s.until(t, granted, long, "cancelled"); p["result"] != nil || p["error"] != nil {
		t.Errorf("cancelled notification: %v", p)
	}
	if len(s.others) > 0 {
		t.Errorf("messages other than notifications/tasks: %v", s.others)
	}
	// Every task it listens to ended: the listen is answered, and ends.
	if m := s.next(t); m["id"] != float64(7) || subscription(t, m)["resultType"] != "complete" {
		t.Errorf("after the last task ended: %v, want the listen's answer", m)
	}
	if m := s.next(t); m != nil {
		t.Errorf("after the listen's answer: %v", m)
	}
	waitFor(t, "the listener to go", func() bool { return l.Listening() == 0 })
}

// What a task shows on a listen is what tasks/get shows (its result, its
// input requests): a listen whose token lacks the tool's scopes of a task
// it names is refused as that tasks/get is (403 insufficient_scope), and
// grants nothing; one holding them is granted the task.
func TestListenChecksTheToolsScopes(t *testing.T) {
	srv, l := nodeWith(t, Options{Store: &taskstore.Memory{}, Owner: "alice", Runner: "n1", Authorize: scoped})
	id := start(t, srv, "test_two_questions", nil)
	await(t, srv, id, "input_required")
	s := listenTo(t, srv, []string{id}, true, nil, "X-Scopes", "read")
	m := s.next(t)
	if e, _ := m["error"].(map[string]any); s.status != http.StatusForbidden || e == nil || m["method"] != nil {
		t.Fatalf("listen with a token lacking the tool's scope: HTTP %d %v, want 403 and no acknowledgement", s.status, m)
	}
	if m := s.next(t); m != nil {
		t.Fatalf("after the refusal: %v", m)
	}
	if n := l.Listening(); n != 0 {
		t.Errorf("%d listeners after a refused listen", n)
	}
	s = listenTo(t, srv, []string{id}, true, nil, "X-Scopes", "write")
	granted := s.acked(t)
	if p := s.until(t, granted, id, "input_required"); len(p["inputRequests"].(map[string]any)) != 2 {
		t.Errorf("input_required notification: %v", p)
	}
}

// A client that leaves takes its listener with it.
func TestListenEndsWithItsClient(t *testing.T) {
	srv, l := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	s := listenTo(t, srv, []string{id}, true, nil)
	s.until(t, s.acked(t), id, "working")
	s.cancel()
	waitFor(t, "the listener to go", func() bool { return l.Listening() == 0 })
}

// A listen that asks for tasks and for list changes gets both on one
// stream: the SDK's part (tools/list_changed) and the layer's, one
// acknowledgement granting both, one answer when the listen ends.
func TestListenWithOtherTypes(t *testing.T) {
	srv, l, s := nodeServer(t, Options{Store: &taskstore.Memory{}, Owner: "alice", Runner: "n1"})
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	st := listenTo(t, srv, []string{id}, true, map[string]any{"toolsListChanged": true, "promptsListChanged": true})
	granted := st.acked(t)
	if !slices.Equal(granted, []string{id}) || st.granted["toolsListChanged"] != true || len(st.granted) != 2 {
		t.Fatalf("acknowledged %v, want the task and toolsListChanged (no prompts here)", st.granted)
	}
	st.until(t, granted, id, "working")
	s.AddTool(&mcp.Tool{Name: "test_new", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{}, nil
	})
	for !slices.ContainsFunc(st.others, func(m map[string]any) bool { return m["method"] == "notifications/tools/list_changed" }) {
		m := st.next(t)
		if m == nil {
			t.Fatal("the listen ended before the tools' list change")
		}
		subscription(t, m)
		st.others = append(st.others, m)
	}
	rpc(t, srv, "tasks/cancel", map[string]any{"taskId": id}, true)
	st.until(t, granted, id, "cancelled")
	l.Close()
	var answers int
	for m := st.next(t); m != nil; m = st.next(t) {
		if m["id"] == float64(7) {
			answers++
			if subscription(t, m)["resultType"] != "complete" {
				t.Errorf("closing answer: %v", m)
			}
		}
	}
	if answers != 1 {
		t.Fatalf("the listen was answered %d times, want once", answers)
	}
}

// The SDK's refusal of the other types asked for answers the listen.
func TestListenWithABadOtherType(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	st := listenTo(t, srv, []string{id}, true, map[string]any{"resourceSubscriptions": "not a list"})
	m := st.next(t)
	if e, _ := m["error"].(map[string]any); st.status != http.StatusBadRequest || e["code"] != float64(-32602) || m["id"] != float64(7) {
		t.Fatalf("a listen with a malformed filter: HTTP %d %v, want the SDK's 400 -32602", st.status, m)
	}
}

// A change made through another activation reaches the listener where it
// listens: a cancel of a round running there (its renewal sees it), and
// of a task no round runs (the listener's own reading, each lease).
func TestListenHearsAChangeElsewhere(t *testing.T) {
	store := &taskstore.Memory{}
	a, _ := node(t, store, "alice", "n1")
	b, _ := node(t, store, "alice", "n2")
	running := start(t, a, "test_slow", map[string]any{"ms": 60000})
	waiting := start(t, a, "test_two_questions", nil)
	await(t, a, waiting, "input_required")
	s := listenTo(t, a, []string{running, waiting}, true, nil)
	granted := s.acked(t)
	s.until(t, granted, waiting, "input_required")
	for _, id := range []string{running, waiting} {
		if r := rpc(t, b, "tasks/cancel", map[string]any{"taskId": id}, true); r.Result["resultType"] != "complete" {
			t.Fatalf("cancel through n2: %+v", r)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		m := s.next(t)
		if m == nil {
			t.Fatal("the listen ended")
		}
		if p := subscription(t, m); p["status"] == "cancelled" {
			seen[p["taskId"].(string)] = true
		}
	}
}

// Asking for task notifications needs the extension (-32021); the filter
// must be an array of ids (-32602), of bounded length (-32600 naming the
// limit, counted as a listen's resources are). A listen granted no task
// ends at once, answered.
func TestListenRefusals(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	s := listenTo(t, srv, []string{"x"}, false, nil)
	if m := s.next(t); s.status != 400 || m["error"].(map[string]any)["code"] != float64(-32021) {
		t.Errorf("listen for tasks without the extension: HTTP %d %v, want 400 -32021", s.status, m)
	}
	ids := make([]string, MaxListenTasks+1)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	before := limitedTotal("listen_tasks")
	s = listenTo(t, srv, ids, true, nil)
	if m := s.next(t); s.status != 400 || m["error"].(map[string]any)["code"] != float64(-32600) ||
		!reflect.DeepEqual(m["error"].(map[string]any)["data"], map[string]any{"limit": "listen_tasks", "max": float64(MaxListenTasks), "retryable": false}) {
		t.Errorf("listen for %d tasks: HTTP %d %v, want 400 -32600, limit listen_tasks", len(ids), s.status, m)
	}
	if n := limitedTotal("listen_tasks") - before; n != 1 {
		t.Errorf("pingmcp_limited_requests_total{limit=\"listen_tasks\"} rose by %v, want 1", n)
	}
	r := rpc(t, srv, "subscriptions/listen", map[string]any{"notifications": map[string]any{"taskIds": "x"}}, true)
	if r.Error == nil || r.Error.Code != -32602 {
		t.Errorf("taskIds not an array: %+v", r)
	}
	// Nothing granted (an unknown task, a type the server does not
	// have).
	s = listenTo(t, srv, []string{"nope"}, true, map[string]any{"promptsListChanged": true})
	if granted := s.acked(t); len(granted) != 0 {
		t.Errorf("granted %v of an unknown task", granted)
	}
	if m := s.next(t); m["id"] != float64(7) || subscription(t, m)["resultType"] != "complete" {
		t.Errorf("a listen granted nothing: %v, want its closing answer", m)
	}
	if m := s.next(t); m != nil {
		t.Errorf("after the closing answer: %v", m)
	}
}

// A listen waiting when the activation stops is answered (a graceful end:
// the client listens again elsewhere).
func TestListenEndsWithTheLayer(t *testing.T) {
	srv, l := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	s := listenTo(t, srv, []string{id}, true, nil)
	granted := s.acked(t)
	s.until(t, granted, id, "working")
	l.Close()
	for {
		m := s.next(t)
		if m == nil {
			t.Fatal("the stream ended without the listen's answer")
		}
		if m["id"] == float64(7) {
			if subscription(t, m)["resultType"] != "complete" {
				t.Fatalf("closing answer: %v", m)
			}
			break
		}
	}
	waitFor(t, "the listener to go", func() bool { return l.Listening() == 0 })
}

// A listener's pending changes are a set: however many changes arrive
// while it writes (a slow client), it keeps one mark per task.
func TestListenerCoalesces(t *testing.T) {
	ln := &listener{ids: []string{"a", "b"}, wake: make(chan struct{}, 1), dirty: map[string]struct{}{}}
	for range 10000 {
		ln.mark("a")
		ln.mark("b")
	}
	if got := ln.take(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("pending after 20000 changes: %v", got)
	}
	if got := ln.take(); len(got) != 0 {
		t.Fatalf("pending after take: %v", got)
	}
	if len(ln.wake) != 1 {
		t.Fatalf("wake-ups pending: %d, want 1", len(ln.wake))
	}
}

// A task whose runner was lost (its node died: its lease lapsed) is taken
// over by the owner's sweep on another activation; a listener there hears
// of the outcome: the retryable failure of a task that cannot resume, the
// result of one resumed.
func TestListenHearsATakeover(t *testing.T) {
	ctx := context.Background()
	store := &taskstore.Memory{}
	srv, l := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n2", Lease: time.Minute})
	now := time.Now()
	for id, call := range map[string]json.RawMessage{
		"lost":    json.RawMessage(`{"name":"test_slow","arguments":{"ms":50}}`),
		"resumed": resumableCall,
	} {
		store.Create(ctx, &taskstore.Task{ID: id, Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now,
			TTL: time.Hour, Request: call, Runner: "dead-node/x", LeaseUntil: now.Add(-time.Second)})
	}
	st := listenTo(t, srv, []string{"lost", "resumed"}, true, nil)
	granted := st.acked(t)
	st.until(t, granted, "lost", "working")
	from, _ := http.NewRequest(http.MethodPost, "http://pingmcp/mcp", nil)
	if _, err := l.Sweep(from); err != nil {
		t.Fatal(err)
	}
	if e, _ := st.until(t, granted, "lost", "failed")["error"].(map[string]any); e["code"] != float64(-32003) {
		t.Errorf("the lost task's notification: %v, want the retryable -32003", st.got["lost failed"])
	}
	st.until(t, granted, "resumed", "completed")
}

// Progress (the statusMessage of a working task) is not a change of
// status: a listener reading its task every lease sends working once.
func TestListenIgnoresProgress(t *testing.T) {
	srv, _, s := nodeServer(t, Options{Store: &taskstore.Memory{}, Owner: "alice", Runner: "n1", Lease: 300 * time.Millisecond})
	Add(s, &mcp.Tool{Name: "test_ticking", InputSchema: json.RawMessage(`{"type":"object"}`)}, Optional, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		for i := range 15 {
			Progress(ctx, fmt.Sprintf("step %d", i))
			time.Sleep(100 * time.Millisecond)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
	})
	id := start(t, srv, "test_ticking", nil)
	st := listenTo(t, srv, []string{id}, true, nil)
	granted := st.acked(t)
	st.until(t, granted, id, "completed") // fails on a second working
	if st.got[id+" working"] == nil {
		t.Errorf("working never notified: %v", st.got)
	}
}

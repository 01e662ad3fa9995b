package actors_test

import (
	"bufio"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/tools"
)

// slowTools is a toolset of one tool, "slow", that counts how many of its
// calls run at once and waits until release is closed.
type slowTools struct {
	running, peak atomic.Int32
	started       chan struct{}
	release       chan struct{}
}

func (*slowTools) Name() string                 { return "slow" }
func (*slowTools) Configure(*mcp.ServerOptions) {}
func (*slowTools) Scopes() map[string][]string  { return nil }
func (s *slowTools) Install(srv *mcp.Server, _ tools.Caller) {
	srv.AddTool(&mcp.Tool{Name: "slow", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			n := s.running.Add(1)
			defer s.running.Add(-1)
			for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
			}
			s.started <- struct{}{}
			select {
			case <-s.release:
			case <-ctx.Done():
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		})
}

// initializeLegacy opens session id on pid at protocol version 2025-03-26,
// the last to take JSON-RPC batches.
func initializeLegacy(t *testing.T, root *actor.RootContext, pid *actor.PID, id string) {
	t.Helper()
	for _, step := range []struct{ session, body string }{
		{"", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`},
		{id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`},
	} {
		if status, body, err := exchangeVersion(root, pid, step.session, "2025-03-26", step.body); err != nil || status >= 300 {
			t.Fatalf("%s: %d %s %v", step.body, status, body, err)
		}
	}
}

// A 2025-03-26 batch of tool calls runs through a real StreamableHTTPHandler
// in the actor: each call's audit record carries that call's own JSON-RPC id
// (the batch calls one tool with the same arguments under distinct ids), and
// no more than MaxBatchConcurrency of its calls run at once.
func TestBatchToolCalls(t *testing.T) {
	var auditLog logtest.Buffer
	slow := &slowTools{started: make(chan struct{}, 100), release: make(chan struct{})}
	system, props := actors.SessionsForTest(t, actors.Config{
		Toolsets:            []tools.Toolset{slow},
		Audit:               audit.New(&auditLog, false),
		MaxBatchConcurrency: 2,
	})
	id := "AAAAAAAAAAAAAAAAAAAAAA"
	pid := (&sessionNode{system: system, props: props}).spawn(id)
	initializeLegacy(t, system.Root, pid, id)

	ids := []string{`"a"`, "7", `"c"`, "-3", `"e"`}
	var msgs []string
	for _, id := range ids {
		msgs = append(msgs, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	}
	type result struct {
		status int32
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, body, err := exchangeVersion(system.Root, pid, id, "2025-03-26", "["+strings.Join(msgs, ",")+"]")
		done <- result{status, body, err}
	}()
	// Two calls start; the others wait for one of them to end. (The SDK
	// alone starts all five at once, within microseconds.)
	<-slow.started
	<-slow.started
	select {
	case <-slow.started:
		t.Errorf("a third call of the batch started while two ran")
	case <-time.After(300 * time.Millisecond):
	}
	close(slow.release)
	r := <-done
	if r.err != nil || r.status != 200 {
		t.Fatalf("batch: %d %s %v", r.status, r.body, r.err)
	}
	if p := slow.peak.Load(); p != 2 {
		t.Errorf("%d calls of one batch ran at once, want at most (and here exactly) 2", p)
	}
	for _, id := range ids {
		if !strings.Contains(r.body, `"id":`+id+`,`) && !strings.Contains(r.body, `"id":`+id+`}`) {
			t.Errorf("no response with id %s in %s", id, r.body)
		}
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(auditLog.String()))
	for sc.Scan() {
		var rec struct {
			Event, Tool string
			RequestID   string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Event == "tool_call" && rec.Tool == "slow" {
			got = append(got, rec.RequestID)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		t.Errorf("audit records' request ids = %v, want each call's own: %v", got, want)
	}
}

// A 2025-03-26 batch that cancels one of its own calls
// (notifications/cancelled naming a request that comes before it in the
// batch) gets no answer to that call, as a cancel of a call in flight from
// an earlier request gets none; the batch's other call is answered (the
// go-sdk answers the cancelled call, with its result or a context's error).
// A cancel before the call it names leaves the call answered.
func TestBatchCancelsItsOwnCall(t *testing.T) {
	slow := &slowTools{started: make(chan struct{}, 100), release: make(chan struct{})}
	close(slow.release) // the calls finish at once: only the cancel keeps an answer back
	system, props := actors.SessionsForTest(t, actors.Config{Toolsets: []tools.Toolset{slow}})
	id := "AAAAAAAAAAAAAAAAAAAAAB"
	pid := (&sessionNode{system: system, props: props}).spawn(id)
	initializeLegacy(t, system.Root, pid, id)
	batch := `[{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"slow","arguments":{}}},` +
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a","reason":"changed my mind"}},` +
		`{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"slow","arguments":{}}}]`
	status, body, err := exchangeVersion(system.Root, pid, id, "2025-03-26", batch)
	if err != nil || status != 200 {
		t.Fatalf("batch: %d %s %v", status, body, err)
	}
	if strings.Contains(body, `"id":"a"`) {
		t.Errorf("the call the batch cancelled was answered: %s", body)
	}
	if !strings.Contains(body, `"id":"b","result"`) {
		t.Errorf("the batch's other call was not answered: %s", body)
	}

	// A cancel names a request already sent: one that comes before the
	// call it names is not the actor's to act on, and the call is answered
	// (the go-sdk, reading both at once, may still stop it: then with a
	// context's error).
	batch = `[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c"}},` +
		`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"slow","arguments":{}}}]`
	status, body, err = exchangeVersion(system.Root, pid, id, "2025-03-26", batch)
	if err != nil || status != 200 {
		t.Fatalf("batch: %d %s %v", status, body, err)
	}
	if !strings.Contains(body, `"id":"c",`) {
		t.Errorf("a call after a cancel naming it was not answered: %s", body)
	}
}

// subscriptions/listen is the 2026-07-28 protocol's; on a session (which
// the go-sdk would serve it on, as a POST held open that no stream rule
// counts or ends) it is answered -32601 at once, alone or in a batch.
func TestSessionRefusesListen(t *testing.T) {
	system, props := actors.SessionsForTest(t, actors.Config{})
	node := &sessionNode{system: system, props: props}
	const listen = `{"jsonrpc":"2.0","id":"L","method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true}}}`
	refused := func(body string) bool {
		return strings.Contains(body, `"id":"L"`) && strings.Contains(body, `"code":-32601`)
	}

	id := "BBBBBBBBBBBBBBBBBBBBBB"
	pid := node.spawn(id)
	for _, step := range []struct{ session, body string }{
		{"", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`},
		{id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`},
	} {
		if status, body, err := exchange(system.Root, pid, step.session, step.body); err != nil || status >= 300 {
			t.Fatalf("%s: %d %s %v", step.body, status, body, err)
		}
	}
	status, body, err := exchange(system.Root, pid, id, listen)
	if err != nil || status != 200 || !refused(body) {
		t.Fatalf("listen on a 2025-11-25 session: %d %s %v", status, body, err)
	}

	legacy := "CCCCCCCCCCCCCCCCCCCCCC"
	pid = node.spawn(legacy)
	initializeLegacy(t, system.Root, pid, legacy)
	status, body, err = exchangeVersion(system.Root, pid, legacy, "2025-03-26",
		`[`+listen+`,{"jsonrpc":"2.0","id":2,"method":"ping"}]`)
	if err != nil || status != 200 || !refused(body) || !strings.Contains(body, `"id":2,"result":{}`) {
		t.Fatalf("a batch with a listen on a 2025-03-26 session: %d %s %v", status, body, err)
	}
}

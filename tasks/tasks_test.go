package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	dto "github.com/prometheus/client_model/go"

	"github.com/pingmcp/pingmcp/internal/capture"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state/taskstore"
)

// cancelled counts the rounds of test_slow whose context ended before they
// finished: what a cancel must reach.
var cancelled atomic.Int32

var slowArgs = json.RawMessage(`{"type":"object","properties":{"ms":{"type":"number"}}}`)

func slow(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args struct{ Ms int }
	json.Unmarshal(req.Params.Arguments, &args)
	select {
	case <-time.After(time.Duration(args.Ms) * time.Millisecond):
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
	case <-ctx.Done():
		cancelled.Add(1)
		return nil, ctx.Err()
	}
}

func twoQuestions(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	in := req.Params.InputResponses
	_, a := in["a"].(*mcp.ElicitResult)
	_, b := in["b"].(*mcp.ElicitResult)
	if a && b {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "both"}}}, nil
	}
	ask := &mcp.ElicitParams{Message: "?", RequestedSchema: json.RawMessage(`{"type":"object","properties":{}}`)}
	return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"a": ask, "b": ask}}, nil
}

// caller asks one question, then answers with the caller its round acts
// for (the header Bind set).
func caller(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if _, ok := req.Params.InputResponses["q"]; !ok {
		return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"q": &mcp.ElicitParams{Message: "?", RequestedSchema: json.RawMessage(`{"type":"object","properties":{}}`)}}}, nil
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: req.GetExtra().Header.Get("X-Round-Caller")}}}, nil
}

// node is one activation serving owner's tasks from store: an MCP server
// with the test tools behind a Layer.
func node(t *testing.T, store taskstore.Store, owner, runner string) (*httptest.Server, *Layer) {
	return nodeWith(t, Options{Store: store, Owner: owner, Runner: runner})
}

func nodeWith(t *testing.T, o Options) (*httptest.Server, *Layer) {
	srv, l, _ := nodeServer(t, o)
	return srv, l
}

// nodeServer is nodeWith, and the MCP server behind its layer.
func nodeServer(t *testing.T, o Options) (*httptest.Server, *Layer, *mcp.Server) {
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	Add(s, &mcp.Tool{Name: "test_slow", InputSchema: slowArgs}, Optional, slow)
	Add(s, &mcp.Tool{Name: "test_required", InputSchema: slowArgs}, Required, slow)
	Add(s, &mcp.Tool{Name: "test_resumable", InputSchema: slowArgs}, Optional, slow, Resumable())
	Add(s, &mcp.Tool{Name: "test_two_questions", InputSchema: json.RawMessage(`{"type":"object"}`)}, Optional, twoQuestions)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true, DisableLocalhostProtection: true})
	Add(s, &mcp.Tool{Name: "test_huge", InputSchema: json.RawMessage(`{"type":"object"}`)}, Optional, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", MaxResultBytes)}}}, nil
	})
	Add(s, &mcp.Tool{Name: "test_progress", InputSchema: slowArgs}, Optional, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		Progress(ctx, "halfway")
		if _, err := slow(ctx, req); err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: ID(ctx)}}}, nil
	})
	Add(s, &mcp.Tool{Name: "test_caller", InputSchema: json.RawMessage(`{"type":"object"}`)}, Optional, caller)
	// Short enough for a cancel elsewhere to arrive soon (a third of it),
	// long enough for renewals on a loaded machine under the race detector.
	if o.Lease == 0 {
		o.Lease = 2 * time.Second
	}
	l := New(h, o)
	srv := httptest.NewServer(l)
	t.Cleanup(func() {
		l.Close()
		srv.Close()
		// Close interrupts rounds without waiting for them to record it:
		// a round still ending would count in the next test's metrics.
		waitFor(t, "the closed layer's rounds to end", func() bool { return l.Running() == 0 })
	})
	return srv, l, s
}

// reply is a JSON-RPC response as the tests read it.
type reply struct {
	status int
	header http.Header
	Result map[string]any `json:"result"`
	Error  *struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

// rpc sends one 2026-07-28 request; withExt declares the extension.
// withMeta is params with the 2026-07-28 _meta of a client (declaring the
// extension if withExt), as JSON.
func withMeta(params map[string]any, withExt bool) json.RawMessage {
	caps := map[string]any{}
	if withExt {
		caps["extensions"] = map[string]any{Extension: map[string]any{}}
	}
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{metaProtocol: "2026-07-28", metaCapabilities: caps,
		"io.modelcontextprotocol/clientInfo": map[string]any{"name": "test", "version": "1"}}
	b, _ := json.Marshal(params)
	return b
}

// rpcRequest is the HTTP request of a 2026-07-28 call of method with
// params, named name (Mcp-Name) unless it is empty.
func rpcRequest(ctx context.Context, srv *httptest.Server, method, name string, params json.RawMessage) *http.Request {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	if name != "" {
		req.Header.Set("Mcp-Name", name)
	}
	return req
}

func rpc(t *testing.T, srv *httptest.Server, method string, params map[string]any, withExt bool, headers ...string) reply {
	t.Helper()
	name, _ := params["name"].(string)
	if id, ok := params["taskId"].(string); ok && name == "" {
		name = id
	}
	req := rpcRequest(context.Background(), srv, method, name, withMeta(params, withExt))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rec := capture.New()
	maps.Copy(rec.Header(), resp.Header)
	io.Copy(rec, resp.Body)
	result, rpcErr, ok := rec.Outcome()
	if !ok {
		t.Fatalf("%s: HTTP %d, no JSON-RPC response: %s", method, resp.StatusCode, rec.Body())
	}
	r := reply{status: resp.StatusCode, header: resp.Header}
	raw, _ := json.Marshal(map[string]json.RawMessage{"result": result, "error": rpcErr})
	if len(result) == 0 {
		raw, _ = json.Marshal(map[string]json.RawMessage{"error": rpcErr})
	} else if len(rpcErr) == 0 {
		raw, _ = json.Marshal(map[string]json.RawMessage{"result": result})
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func start(t *testing.T, srv *httptest.Server, tool string, args map[string]any) string {
	t.Helper()
	r := rpc(t, srv, "tools/call", map[string]any{"name": tool, "arguments": args}, true)
	if r.Result["resultType"] != "task" {
		t.Fatalf("tools/call %s: %+v, want a CreateTaskResult", tool, r)
	}
	for _, k := range []string{"result", "error", "inputRequests", "requestState", "ttl", "pollInterval", "task"} {
		if _, ok := r.Result[k]; ok {
			t.Errorf("CreateTaskResult carries %q: %v", k, r.Result)
		}
	}
	id, _ := r.Result["taskId"].(string)
	return id
}

// await polls tasks/get until the task's status is want (a task's status
// changes with no event a client can await: clients poll).
func await(t *testing.T, srv *httptest.Server, id, want string) reply {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := rpc(t, srv, "tasks/get", map[string]any{"taskId": id}, true, "X-Scopes", "read write")
		if r.Result["status"] == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: %+v, want status %s", id, r, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTaskRunsToItsResult(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	createdBefore := tasksTotal("created")
	completedBefore := tasksTotal("completed")
	defer func() {
		if d := tasksTotal("created") - createdBefore; d != 1 {
			t.Errorf("pingmcp_tasks_total{status=created} grew by %v, want 1", d)
		}
		if d := tasksTotal("completed") - completedBefore; d != 1 {
			t.Errorf("pingmcp_tasks_total{status=completed} grew by %v, want 1", d)
		}
	}()
	id := start(t, srv, "test_slow", map[string]any{"ms": 200})
	// Durable before the answer: an immediate tasks/get finds it.
	if r := rpc(t, srv, "tasks/get", map[string]any{"taskId": id}, true); r.Result["taskId"] != id || r.Result["resultType"] != "complete" {
		t.Fatalf("immediate tasks/get: %+v", r)
	}
	r := await(t, srv, id, "completed")
	res, _ := r.Result["result"].(map[string]any)
	if content, _ := res["content"].([]any); len(content) != 1 {
		t.Fatalf("completed task's result: %+v", r.Result)
	}
	if _, ok := r.Result["error"]; ok {
		t.Errorf("completed task carries an error: %+v", r.Result)
	}
}

func TestCancelReachesTheRound(t *testing.T) {
	srv, l := node(t, &taskstore.Memory{}, "alice", "n1")
	before := cancelled.Load()
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	r := rpc(t, srv, "tasks/cancel", map[string]any{"taskId": id}, true)
	if len(r.Result) != 1 || r.Result["resultType"] != "complete" {
		t.Fatalf("cancel ack: %+v, want only resultType complete", r)
	}
	await(t, srv, id, "cancelled")
	waitFor(t, "the round's context to end", func() bool { return cancelled.Load() > before && l.Running() == 0 })
	// Idempotent on a terminal task.
	if r := rpc(t, srv, "tasks/cancel", map[string]any{"taskId": id}, true); r.Result["resultType"] != "complete" {
		t.Fatalf("second cancel: %+v", r)
	}
}

// A cancel taken by another activation (another node) reaches the round
// through the store, at the round's next lease renewal.
func TestCancelReachesARoundElsewhere(t *testing.T) {
	store := &taskstore.Memory{}
	a, la := node(t, store, "alice", "n1")
	b, _ := node(t, store, "alice", "n2")
	id := start(t, a, "test_slow", map[string]any{"ms": 60000})
	if r := rpc(t, b, "tasks/cancel", map[string]any{"taskId": id}, true); r.Result["resultType"] != "complete" {
		t.Fatalf("cancel through n2: %+v", r)
	}
	waitFor(t, "n1's round to end", func() bool { return la.Running() == 0 })
	await(t, a, id, "cancelled")
}

func TestAnotherOwnerFindsNothing(t *testing.T) {
	store := &taskstore.Memory{}
	a, _ := node(t, store, "alice", "n1")
	m, _ := node(t, store, "mallory", "n1")
	id := start(t, a, "test_slow", map[string]any{"ms": 60000})
	for _, method := range []string{"tasks/get", "tasks/cancel"} {
		if r := rpc(t, m, method, map[string]any{"taskId": id}, true); r.Error == nil || r.Error.Code != -32602 || r.status != 400 {
			t.Errorf("%s of alice's task by mallory: %+v, want -32602", method, r)
		}
	}
	if r := rpc(t, a, "tasks/get", map[string]any{"taskId": id}, true); r.Result["status"] != "working" {
		t.Errorf("alice's task after mallory's cancel: %+v", r)
	}
}

// A working task whose runner stopped renewing its lease (its node died)
// is failed, retryably, by the next read: never working forever.
func TestLapsedLeaseFailsRetryably(t *testing.T) {
	store := &taskstore.Memory{}
	srv, _ := node(t, store, "alice", "n2")
	now := time.Now()
	store.Create(context.Background(), &taskstore.Task{ID: "orphan", Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now,
		TTL: time.Hour, Runner: "dead-node/x", LeaseUntil: now.Add(-time.Second)})
	r := rpc(t, srv, "tasks/get", map[string]any{"taskId": "orphan"}, true)
	e, _ := r.Result["error"].(map[string]any)
	data, _ := e["data"].(map[string]any)
	if r.Result["status"] != "failed" || e["code"] != float64(-32003) || data["retryable"] != true {
		t.Fatalf("orphaned task: %+v, want failed with retryable -32003", r.Result)
	}
}

// A working task of a resumable tool whose runner was lost runs again, from
// its start, on the activation that reads it; at most maxResumes times.
func TestLapsedLeaseResumesAResumableTool(t *testing.T) {
	store := &taskstore.Memory{}
	srv, _ := node(t, store, "alice", "n2")
	now := time.Now()
	call := json.RawMessage(`{"name":"test_resumable","arguments":{"ms":50},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}`)
	orphan := func(id string, resumes int) {
		store.Create(context.Background(), &taskstore.Task{ID: id, Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now,
			TTL: time.Hour, Request: call, Runner: "dead-node/x", LeaseUntil: now.Add(-time.Second), Resumes: resumes})
	}
	orphan("lost", 0)
	if r := rpc(t, srv, "tasks/get", map[string]any{"taskId": "lost"}, true); r.Result["status"] != "working" {
		t.Fatalf("orphaned resumable task: %+v, want working again", r.Result)
	}
	r := await(t, srv, "lost", "completed")
	if res, _ := r.Result["result"].(map[string]any); res["content"] == nil {
		t.Fatalf("resumed task's result: %+v", r.Result)
	}
	if got, _ := store.Get(context.Background(), "alice", "lost"); got.Resumes != 1 {
		t.Errorf("resumes recorded: %d, want 1", got.Resumes)
	}
	orphan("lost-too-often", maxResumes)
	r = rpc(t, srv, "tasks/get", map[string]any{"taskId": "lost-too-often"}, true)
	if e, _ := r.Result["error"].(map[string]any); r.Result["status"] != "failed" || e["code"] != float64(-32003) {
		t.Fatalf("a task resumed %d times already: %+v, want failed with -32003", maxResumes, r.Result)
	}
}

// An activation that stops fails its running tasks retryably.
func TestCloseInterruptsRetryably(t *testing.T) {
	store := &taskstore.Memory{}
	a, la := node(t, store, "alice", "n1")
	b, _ := node(t, store, "alice", "n2")
	id := start(t, a, "test_slow", map[string]any{"ms": 60000})
	la.Close()
	r := await(t, b, id, "failed")
	if e, _ := r.Result["error"].(map[string]any); e["code"] != float64(-32003) {
		t.Fatalf("interrupted task: %+v", r.Result)
	}
	if r := rpc(t, a, "tools/call", map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": 1}}, true); r.Error == nil || r.Error.Code != -32003 {
		t.Fatalf("a task started on a closed layer: %+v, want -32003", r)
	}
}

// An activation that stops hands a resumable tool's task on at once: the
// next activation to read it runs it again.
func TestCloseHandsOnAResumableTask(t *testing.T) {
	store := &taskstore.Memory{}
	a, la := node(t, store, "alice", "n1")
	b, _ := node(t, store, "alice", "n2")
	id := start(t, a, "test_resumable", map[string]any{"ms": 1500})
	la.Close()
	waitFor(t, "n1's round to end", func() bool { return la.Running() == 0 })
	r := rpc(t, b, "tasks/get", map[string]any{"taskId": id}, true)
	if r.Result["status"] != "working" {
		t.Fatalf("a resumable task after its activation closed: %+v, want working (resumed)", r.Result)
	}
	await(t, b, id, "completed")
	if got, _ := store.Get(context.Background(), "alice", id); got.Resumes != 1 || got.Runner != "" {
		t.Errorf("resumes %d, runner %q; want 1 resume, no runner once completed", got.Resumes, got.Runner)
	}
}

func TestInputRounds(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_two_questions", nil)
	r := await(t, srv, id, "input_required")
	if asks, _ := r.Result["inputRequests"].(map[string]any); len(asks) != 2 {
		t.Fatalf("input_required task: %+v", r.Result)
	}
	answer := map[string]any{"action": "accept", "content": map[string]any{}}
	if r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"a": answer, "zz": answer}}, true); len(r.Result) != 1 || r.Result["resultType"] != "complete" {
		t.Fatalf("update ack: %+v", r)
	}
	r = rpc(t, srv, "tasks/get", map[string]any{"taskId": id}, true)
	asks, _ := r.Result["inputRequests"].(map[string]any)
	if _, ok := asks["b"]; r.Result["status"] != "input_required" || len(asks) != 1 || !ok {
		t.Fatalf("after answering a: %+v, want input_required with b alone", r.Result)
	}
	rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"b": answer}}, true)
	await(t, srv, id, "completed")
}

// A tool reports progress in its task's statusMessage, and knows its
// task's id; a synchronous call has none.
func TestProgressAndID(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_progress", map[string]any{"ms": 1000})
	waitFor(t, "the progress message", func() bool {
		return rpc(t, srv, "tasks/get", map[string]any{"taskId": id}, true).Result["statusMessage"] == "halfway"
	})
	r := await(t, srv, id, "completed")
	res, _ := r.Result["result"].(map[string]any)
	content, _ := res["content"].([]any)
	if len(content) != 1 || content[0].(map[string]any)["text"] != id {
		t.Fatalf("the tool's view of its task id: %+v, want %s", r.Result, id)
	}
	if _, ok := r.Result["statusMessage"]; ok {
		t.Errorf("a completed task keeps its progress message: %+v", r.Result)
	}
	r = rpc(t, srv, "tools/call", map[string]any{"name": "test_progress", "arguments": map[string]any{"ms": 1}}, false)
	if content, _ := r.Result["content"].([]any); len(content) != 1 || content[0].(map[string]any)["text"] != "" {
		t.Fatalf("a synchronous call's task id: %+v, want none", r.Result)
	}
}

// A tool's answer beyond MaxResultBytes fails its task: the store keeps
// bounded tasks.
func TestHugeResultFailsTheTask(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_huge", nil)
	r := await(t, srv, id, "failed")
	if e, _ := r.Result["error"].(map[string]any); e["code"] != float64(-32603) || !strings.Contains(e["message"].(string), "at most") {
		t.Fatalf("huge result: %+v", r.Result)
	}
}

// Each round acts for the caller of the request that started it (Bind),
// and what Bind prepared is released when the round ends.
func TestRoundsActForTheirCaller(t *testing.T) {
	var bound, released atomic.Int32
	srv, _ := nodeWith(t, Options{Store: &taskstore.Memory{}, Owner: "alice", Runner: "n1",
		Bind: func(from, round *http.Request) func() {
			bound.Add(1)
			round.Header.Set("X-Round-Caller", from.Header.Get("X-Caller"))
			return func() { released.Add(1) }
		}})
	r := rpc(t, srv, "tools/call", map[string]any{"name": "test_caller", "arguments": map[string]any{}}, true, "X-Caller", "first")
	id, _ := r.Result["taskId"].(string)
	await(t, srv, id, "input_required")
	rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"q": map[string]any{"action": "accept", "content": map[string]any{}}}}, true, "X-Caller", "second")
	r = await(t, srv, id, "completed")
	res, _ := r.Result["result"].(map[string]any)
	content, _ := res["content"].([]any)
	if len(content) != 1 || content[0].(map[string]any)["text"] != "second" {
		t.Fatalf("second round's caller: %+v, want the tasks/update's", r.Result)
	}
	waitFor(t, "both rounds released", func() bool { return bound.Load() == 2 && released.Load() == 2 })
}

func TestRefusals(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	defer rpc(t, srv, "tasks/cancel", map[string]any{"taskId": id}, true)
	for _, tc := range []struct {
		name    string
		method  string
		params  map[string]any
		ext     bool
		headers []string
		code    int
		status  int
	}{
		{"get without the extension", "tasks/get", map[string]any{"taskId": id}, false, nil, -32021, 400},
		{"update without the extension", "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{}}, false, nil, -32021, 400},
		{"cancel without the extension", "tasks/cancel", map[string]any{"taskId": id}, false, nil, -32021, 400},
		{"required tool without the extension", "tools/call", map[string]any{"name": "test_required", "arguments": map[string]any{}}, false, nil, -32021, 400},
		{"unknown task", "tasks/get", map[string]any{"taskId": "nope"}, true, nil, -32602, 400},
		{"no taskId", "tasks/get", map[string]any{}, true, nil, -32602, 400},
		{"mismatched Mcp-Name", "tasks/get", map[string]any{"taskId": id}, true, []string{"Mcp-Name", "other"}, -32020, 400},
		{"tasks/list", "tasks/list", nil, true, nil, -32601, 404},
		{"tasks/result", "tasks/result", map[string]any{"taskId": id}, true, nil, -32601, 404},
	} {
		r := rpc(t, srv, tc.method, tc.params, tc.ext, tc.headers...)
		if r.Error == nil || r.Error.Code != tc.code || r.status != tc.status {
			t.Errorf("%s: %+v, want %d (HTTP %d)", tc.name, r, tc.code, tc.status)
			continue
		}
		if tc.code == -32021 {
			rc, _ := r.Error.Data["requiredCapabilities"].(map[string]any)
			if ext, _ := rc["extensions"].(map[string]any); ext[Extension] == nil {
				t.Errorf("%s: data %v does not name the extension", tc.name, r.Error.Data)
			}
		}
	}
	// Without the extension, an optional tool runs synchronously.
	r := rpc(t, srv, "tools/call", map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": 1}}, false)
	if r.Result["resultType"] == "task" || r.Result["content"] == nil {
		t.Fatalf("optional tool without the extension: %+v, want a synchronous result", r)
	}
}

// A client cannot name a round of the layer's.
func TestRunHeaderIsTheLayers(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	r := rpc(t, srv, "tools/call", map[string]any{"name": "test_required", "arguments": map[string]any{}}, false, runHeader, "forged")
	if r.Error == nil || r.Error.Code != -32021 {
		t.Fatalf("forged run header: %+v", r)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tasksTotal is pingmcp_tasks_total{status}.
func tasksTotal(status string) float64 {
	var m dto.Metric
	metrics.Tasks.WithLabelValues(status).Write(&m)
	return m.GetCounter().GetValue()
}

// unreadable is a store whose records do not open (moved from another
// owner's key, sealed under a retired key).
type unreadable struct{ taskstore.Store }

func (unreadable) Get(context.Context, string, string) (*taskstore.Task, error) {
	return nil, fmt.Errorf("%w: test", taskstore.ErrUnreadable)
}

func (unreadable) Update(context.Context, string, string, func(*taskstore.Task) error) (*taskstore.Task, error) {
	return nil, fmt.Errorf("%w: test", taskstore.ErrUnreadable)
}

// A record that does not open is answered as an unknown task, by every
// method, not as the store's (retryable) failure.
func TestUnreadableRecordIsUnknown(t *testing.T) {
	srv, _ := node(t, unreadable{&taskstore.Memory{}}, "alice", "n1")
	for _, method := range []string{"tasks/get", "tasks/update", "tasks/cancel"} {
		r := rpc(t, srv, method, map[string]any{"taskId": "moved", "inputResponses": map[string]any{}}, true)
		if r.Error == nil || r.Error.Code != -32602 || r.Error.Message != "unknown taskId" {
			t.Errorf("%s of an unreadable record: %+v, want -32602 unknown taskId", method, r)
		}
	}
}

// recording keeps every task record written, as the store would encode it.
type recording struct {
	taskstore.Store
	mu      sync.Mutex
	written [][]byte
}

func (s *recording) keep(t *taskstore.Task) {
	b, _ := json.Marshal(t)
	s.mu.Lock()
	s.written = append(s.written, b)
	s.mu.Unlock()
}

func (s *recording) Create(ctx context.Context, t *taskstore.Task) error {
	s.keep(t)
	return s.Store.Create(ctx, t)
}

func (s *recording) Update(ctx context.Context, owner, id string, change func(*taskstore.Task) error) (*taskstore.Task, error) {
	return s.Store.Update(ctx, owner, id, func(t *taskstore.Task) error {
		if err := change(t); err != nil {
			return err
		}
		s.keep(t)
		return nil
	})
}

// The token a round acts with reaches it in memory (Bind), never a task
// record: not from the tools/call, the tasks/update or a resuming tasks/get.
func TestNoTokenInTaskRecords(t *testing.T) {
	const first, second = "tok-first-SECRET-1", "tok-second-SECRET-2"
	store := &recording{Store: &taskstore.Memory{}}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1",
		Bind: func(from, round *http.Request) func() {
			// As the actor does: the round gets its caller's token, in memory.
			tok := strings.TrimPrefix(from.Header.Get("Authorization"), "Bearer ")
			round.Header.Set("Authorization", "Bearer "+tok)
			round.Header.Set("X-Round-Caller", map[string]string{first: "first", second: "second"}[tok])
			return func() {}
		}})
	r := rpc(t, srv, "tools/call", map[string]any{"name": "test_caller", "arguments": map[string]any{}}, true, "Authorization", "Bearer "+first)
	id, _ := r.Result["taskId"].(string)
	await(t, srv, id, "input_required")
	rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"q": map[string]any{"action": "accept", "content": map[string]any{}}}}, true, "Authorization", "Bearer "+second)
	r = await(t, srv, id, "completed")
	if res, _ := json.Marshal(r.Result["result"]); !strings.Contains(string(res), `"second"`) {
		t.Fatalf("the round did not act with the update's token: %s", res)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.written) < 3 {
		t.Fatalf("%d records written, want the task's rounds", len(store.written))
	}
	for _, b := range store.written {
		if bytes.Contains(b, []byte("SECRET")) {
			t.Fatalf("a task record holds a token: %s", b)
		}
	}
}

// scoped refuses a round to a caller whose X-Scopes lack "write", as the
// actor's Authorize does for a token without a tool's scopes.
func scoped(from *http.Request, tool string) *Refusal {
	if strings.Contains(from.Header.Get("X-Scopes"), "write") {
		return nil
	}
	return &Refusal{Status: http.StatusForbidden,
		Header: http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", scope="write"`}},
		Error:  &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: tool + " needs scope write"}}
}

// The answers to a task's input start a round of its tool: a tasks/update
// whose token lacks the tool's scopes is refused (403 insufficient_scope)
// and records nothing; one whose token holds them runs the round.
func TestUpdateChecksTheToolsScopes(t *testing.T) {
	store := &taskstore.Memory{}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1", Authorize: scoped})
	id := start(t, srv, "test_two_questions", nil)
	await(t, srv, id, "input_required")
	answer := map[string]any{"action": "accept", "content": map[string]any{}}
	r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"a": answer, "b": answer}}, true, "X-Scopes", "read")
	if r.status != http.StatusForbidden || r.Error == nil || !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Fatalf("update with a token lacking the tool's scope: HTTP %d %+v %v, want 403 insufficient_scope", r.status, r.Error, r.header)
	}
	if got, _ := store.Get(context.Background(), "alice", id); got.Status != "input_required" || len(got.InputRequests) != 2 || len(got.Responses) != 0 {
		t.Fatalf("a refused update changed the task: %+v", got)
	}
	r = rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"a": answer, "b": answer}}, true, "X-Scopes", "read write")
	if r.Error != nil {
		t.Fatalf("update with the scopes: %+v", r)
	}
	await(t, srv, id, "completed")
}

// stale reads a task as it was before its round recorded its input
// requests (still working), while on: what a tasks/update reads just
// before the round ends input_required.
type stale struct {
	taskstore.Store
	on atomic.Bool
}

func (s *stale) Get(ctx context.Context, owner, id string) (*taskstore.Task, error) {
	t, err := s.Store.Get(ctx, owner, id)
	if t != nil && s.on.Load() {
		t.Status, t.InputRequests = "working", nil
	}
	return t, err
}

// The scopes are checked on the record the answers are recorded in: a
// tasks/update that read the task still working, and found it
// input_required when it recorded its answers, starts no round for a token
// lacking the tool's scopes.
func TestUpdateChecksTheToolsScopesOnTheRecordItChanges(t *testing.T) {
	store := &stale{Store: &taskstore.Memory{}}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1", Authorize: scoped})
	id := start(t, srv, "test_two_questions", nil)
	await(t, srv, id, "input_required")
	store.on.Store(true)
	answer := map[string]any{"action": "accept", "content": map[string]any{}}
	r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"a": answer, "b": answer}}, true, "X-Scopes", "read")
	store.on.Store(false)
	if r.status != http.StatusForbidden || r.Error == nil || !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Fatalf("update with a token lacking the tool's scope: HTTP %d %+v %v, want 403 insufficient_scope", r.status, r.Error, r.header)
	}
	if got, _ := store.Get(context.Background(), "alice", id); got.Status != "input_required" || len(got.InputRequests) != 2 || len(got.Responses) != 0 {
		t.Fatalf("a refused update changed the task: %+v", got)
	}
}

// A tasks/get that would resume a task whose runner was lost runs its
// tool: refused to a token lacking the tool's scopes, leaving the task as
// it is; a token holding them resumes it.
func TestResumeChecksTheToolsScopes(t *testing.T) {
	store := &taskstore.Memory{}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n2", Authorize: scoped})
	now := time.Now()
	store.Create(context.Background(), &taskstore.Task{ID: "lost", Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now,
		TTL: time.Hour, Request: resumableCall, Runner: "dead-node/x", LeaseUntil: now.Add(-time.Second)})
	r := rpc(t, srv, "tasks/get", map[string]any{"taskId": "lost"}, true, "X-Scopes", "read")
	if r.status != http.StatusForbidden || r.Error == nil || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("resuming read with a token lacking the tool's scope: HTTP %d %+v, want 403", r.status, r.Error)
	}
	if got, _ := store.Get(context.Background(), "alice", "lost"); got.Runner != "dead-node/x" || got.Resumes != 0 {
		t.Fatalf("a refused read changed the task: %+v", got)
	}
	if r := rpc(t, srv, "tasks/get", map[string]any{"taskId": "lost"}, true, "X-Scopes", "write"); r.Result["status"] != "working" {
		t.Fatalf("resuming read with the scopes: %+v", r)
	}
	await(t, srv, "lost", "completed")
}

// A task's result is its tool's: a tasks/get whose token lacks the tool's
// scopes is refused (403 insufficient_scope) and shows nothing of it; one
// holding them reads it.
func TestGetChecksTheToolsScopes(t *testing.T) {
	store := &taskstore.Memory{}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1", Authorize: scoped})
	id := start(t, srv, "test_two_questions", nil)
	await(t, srv, id, "input_required")
	r := rpc(t, srv, "tasks/get", map[string]any{"taskId": id}, true, "X-Scopes", "read")
	if r.status != http.StatusForbidden || r.Error == nil || !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_scope") || r.Result != nil {
		t.Fatalf("tasks/get with a token lacking the tool's scope: HTTP %d %+v %v, want 403 insufficient_scope and no task", r.status, r.Error, r.Result)
	}
}

// resumableCall is a task's stored tools/call of test_resumable.
var resumableCall = json.RawMessage(`{"name":"test_resumable","arguments":{"ms":50},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}`)

// A sweep takes over the owner's lapsed tasks without anyone reading them:
// a resumable one runs again here, another fails retryably; it names when
// the next lease of a task not run here ends, and a sweep then takes that
// one over too. Another owner's tasks are not its business.
func TestSweepTakesOverLapsedTasks(t *testing.T) {
	ctx := context.Background()
	store := &taskstore.Memory{}
	_, l := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n2", Authorize: scoped})
	now := time.Now()
	orphan := func(owner, id string, call json.RawMessage, lease time.Time) {
		store.Create(ctx, &taskstore.Task{ID: id, Owner: owner, Status: "working", CreatedAt: now, UpdatedAt: now,
			TTL: time.Hour, Request: call, Runner: "dead-node/x", LeaseUntil: lease})
	}
	orphan("alice", "resumable", resumableCall, now.Add(-time.Second))
	orphan("alice", "other", json.RawMessage(`{"name":"test_slow","arguments":{"ms":50}}`), now.Add(-time.Second))
	soon := now.Add(300 * time.Millisecond)
	orphan("alice", "later", resumableCall, soon)
	orphan("bob", "bobs", resumableCall, now.Add(-time.Second))
	from, _ := http.NewRequest(http.MethodPost, "http://pingmcp/mcp", nil)
	from.Header.Set("X-Scopes", "write")
	next, err := l.Sweep(from)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Equal(soon) {
		t.Errorf("next sweep at %v, want %v (the lease of 'later')", next, soon)
	}
	if got, _ := store.Get(ctx, "alice", "other"); got.Status != "failed" {
		t.Errorf("swept non-resumable task: %+v, want failed", got)
	}
	waitFor(t, "the resumed task to complete", func() bool {
		got, _ := store.Get(ctx, "alice", "resumable")
		return got.Status == "completed" && got.Resumes == 1
	})
	if got, _ := store.Get(ctx, "alice", "later"); got.Runner != "dead-node/x" {
		t.Errorf("a task still leased was taken over: %+v", got)
	}
	if got, _ := store.Get(ctx, "bob", "bobs"); got.Runner != "dead-node/x" {
		t.Errorf("another owner's task was swept: %+v", got)
	}
	time.Sleep(time.Until(next)) // the sweep's own schedule: it sleeps until then too
	if _, err := l.Sweep(from); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the later task to complete", func() bool {
		got, _ := store.Get(ctx, "alice", "later")
		return got.Status == "completed"
	})
	// A sweep for a caller without the tool's scopes leaves a resumable task.
	orphan("alice", "unallowed", resumableCall, time.Now().Add(-time.Second))
	from.Header.Set("X-Scopes", "read")
	if _, err := l.Sweep(from); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.Get(ctx, "alice", "unallowed"); got.Runner != "dead-node/x" {
		t.Errorf("a sweep without the scopes took the task over: %+v", got)
	}
}

// liveTasks counts live tasks by user in memory, as state.UserSessions
// does: Claim atomic, Release frees a place.
type liveTasks struct {
	mu sync.Mutex
	m  map[string]map[string]bool
}

func (c *liveTasks) Claim(_ context.Context, user, id string, max int, _ time.Duration) (bool, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]map[string]bool{}
	}
	if c.m[user] == nil {
		c.m[user] = map[string]bool{}
	}
	if !c.m[user][id] && len(c.m[user]) >= max {
		return false, time.Minute, nil
	}
	c.m[user][id] = true
	return true, 0, nil
}

func (c *liveTasks) Touch(context.Context, string, string, time.Duration) error { return nil }

func (c *liveTasks) Release(_ context.Context, user, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m[user], id)
	return nil
}

func (c *liveTasks) count(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m[user])
}

// cutLive is liveTasks whose Claim waits until gate closes or its context
// ends, and whose calls fail, as a store's over the network do, on a
// context that ended.
type cutLive struct {
	liveTasks
	gate, claimed, ended chan struct{}
}

func (c *cutLive) Claim(ctx context.Context, user, id string, max int, ttl time.Duration) (bool, time.Duration, error) {
	close(c.claimed)
	select {
	case <-c.gate:
	case <-ctx.Done():
		close(c.ended)
	}
	ok, retry, _ := c.liveTasks.Claim(ctx, user, id, max, ttl) // made in the store...
	return ok, retry, ctx.Err()                                // ...its answer lost if ctx ended
}

func (c *cutLive) Release(ctx context.Context, user, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.liveTasks.Release(ctx, user, id)
}

// A client that leaves while its call is being made a task does not leave
// a place of its user's counted with no task behind it: the claim, the
// task's creation and their undoing are not cut by the client leaving.
func TestLeavingClientLeavesNoPlaceCounted(t *testing.T) {
	store := &taskstore.Memory{}
	live := &cutLive{gate: make(chan struct{}), claimed: make(chan struct{}), ended: make(chan struct{})}
	srv, l := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1", Live: live, MaxPerUser: 5, User: func(*http.Request) string { return "alice" }})
	ctx, leave := context.WithCancel(context.Background())
	req := rpcRequest(ctx, srv, "tools/call", "test_slow", withMeta(map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": 1}}, true))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-live.claimed
	leave()
	<-done
	// The claim's context ends with the client's request where it is the
	// round's (the bug): give the server a moment to see the client gone.
	// Where it is not, nothing ends it, and the gate lets the claim go on.
	select {
	case <-live.ended:
	case <-time.After(200 * time.Millisecond):
	}
	close(live.gate)
	waitFor(t, "the round to end", func() bool { return l.Running() == 0 })
	tasks, _, err := store.List(context.Background(), "alice", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	working := 0
	for _, tk := range tasks {
		if tk.Status == "working" || tk.Status == "input_required" {
			working++
		}
	}
	if n := live.count("alice"); n != working {
		t.Fatalf("%d places counted for %d live tasks (of %d)", n, working, len(tasks))
	}
}

func limitedTotal(limit string) float64 {
	var m dto.Metric
	metrics.Limited.WithLabelValues(limit).Write(&m)
	return m.GetCounter().GetValue()
}

// leased counts owner's stored tasks that are working.
func leased(t *testing.T, store taskstore.Store, owner string) int {
	t.Helper()
	ls, err := store.Leases(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	return len(ls)
}

// A user's live tasks are capped all clients together: the user's two
// clients (two owners) share the cap; a call beyond is refused as the
// other limits refuse (429, Retry-After, -32005 naming the limit) and
// stores nothing; a task that ends frees its place.
func TestTasksPerUserCap(t *testing.T) {
	store, live := &taskstore.Memory{}, &liveTasks{}
	alice := func(*http.Request) string { return "alice" }
	c1, _ := nodeWith(t, Options{Store: store, Owner: "alice/c1", Runner: "n1", Live: live, MaxPerUser: 2, User: alice})
	c2, _ := nodeWith(t, Options{Store: store, Owner: "alice/c2", Runner: "n1", Live: live, MaxPerUser: 2, User: alice})
	first := start(t, c1, "test_slow", map[string]any{"ms": 60000})
	second := start(t, c2, "test_slow", map[string]any{"ms": 60000})
	defer rpc(t, c2, "tasks/cancel", map[string]any{"taskId": second}, true)
	before := limitedTotal("tasks_per_user")
	for _, srv := range []*httptest.Server{c1, c2} {
		r := rpc(t, srv, "tools/call", map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": 60000}}, true)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" || r.Error == nil || r.Error.Code != -32005 ||
			r.Error.Data["limit"] != "tasks_per_user" || r.Error.Data["retryable"] != true || r.Error.Data["retryAfter"] != float64(1) || r.Error.Data["max"] != float64(2) {
			t.Fatalf("a third live task: HTTP %d %v %+v, want 429 Retry-After 1, -32005 tasks_per_user", r.status, r.header, r.Error)
		}
	}
	if d := limitedTotal("tasks_per_user") - before; d != 2 {
		t.Errorf("pingmcp_limited_requests_total{limit=tasks_per_user} grew by %v, want 2", d)
	}
	if n := leased(t, store, "alice/c1") + leased(t, store, "alice/c2"); n != 2 {
		t.Errorf("%d tasks stored, want the 2 admitted", n)
	}
	// Another user is not concerned.
	bob, _ := nodeWith(t, Options{Store: store, Owner: "bob/c1", Runner: "n1", Live: live, MaxPerUser: 2, User: func(*http.Request) string { return "bob" }})
	rpc(t, bob, "tasks/cancel", map[string]any{"taskId": start(t, bob, "test_slow", map[string]any{"ms": 60000})}, true)
	// A task that ends (here cancelled) frees its place.
	rpc(t, c1, "tasks/cancel", map[string]any{"taskId": first}, true)
	third := start(t, c1, "test_slow", map[string]any{"ms": 1})
	await(t, c1, third, "completed")
	if n := live.count("alice"); n != 1 {
		t.Errorf("alice counts %d live tasks, want 1 (the second; the others ended)", n)
	}
}

// A call whose params a task would keep is bounded: beyond MaxRequestBytes
// it is refused (413, -32005 task_request_bytes, not retryable) before
// anything is stored or counted.
func TestOversizedTaskRequestIsRefused(t *testing.T) {
	store, live := &taskstore.Memory{}, &liveTasks{}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1", Live: live, MaxPerUser: 5, User: func(*http.Request) string { return "alice" }})
	r := rpc(t, srv, "tools/call", map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": 1, "pad": strings.Repeat("x", MaxRequestBytes)}}, true)
	if r.status != http.StatusRequestEntityTooLarge || r.Error == nil || r.Error.Code != -32005 ||
		r.Error.Data["limit"] != "task_request_bytes" || r.Error.Data["retryable"] != false || r.Error.Data["max"] != float64(MaxRequestBytes) {
		t.Fatalf("an oversized task call: HTTP %d %+v, want 413 -32005 task_request_bytes", r.status, r.Error)
	}
	if n := leased(t, store, "alice"); n != 0 || live.count("alice") != 0 {
		t.Fatalf("an oversized call left %d tasks, %d counted", n, live.count("alice"))
	}
	// Under the bound it is a task.
	await(t, srv, start(t, srv, "test_slow", map[string]any{"ms": 1, "pad": strings.Repeat("x", MaxRequestBytes/2)}), "completed")
}

// Arguments the tool's input schema refuses never make a task: the call
// gets the tool error a synchronous call gets, and nothing is stored.
func TestInvalidArgumentsMakeNoTask(t *testing.T) {
	store, live := &taskstore.Memory{}, &liveTasks{}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1", Live: live, MaxPerUser: 5, User: func(*http.Request) string { return "alice" }})
	bad := map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": "soon"}}
	asTask := rpc(t, srv, "tools/call", bad, true)
	plain := rpc(t, srv, "tools/call", bad, false)
	if asTask.Result["resultType"] == "task" || asTask.Result["isError"] != true {
		t.Fatalf("invalid arguments with the extension: %+v, want a tool error", asTask)
	}
	a, _ := json.Marshal(asTask.Result["content"])
	b, _ := json.Marshal(plain.Result["content"])
	if string(a) != string(b) || !strings.Contains(string(a), "validating") {
		t.Errorf("as a task: %s; synchronously: %s; want the same validation error", a, b)
	}
	if n := leased(t, store, "alice"); n != 0 || live.count("alice") != 0 {
		t.Fatalf("invalid arguments left %d tasks, %d counted", n, live.count("alice"))
	}
}

// A round acts for its caller only while the caller's token is valid
// (Options.Valid, checked at each renewal): once it expired, a resumable
// round is handed on (its lease lapses, for a request with a fresh token
// to resume it), another task fails with the retryable -32003.
func TestExpiredCallerEndsItsRounds(t *testing.T) {
	store := &taskstore.Memory{}
	var valid atomic.Bool
	valid.Store(true)
	srv, l := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1", Valid: func(*http.Request) bool { return valid.Load() }})
	plain := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	resumable := start(t, srv, "test_resumable", map[string]any{"ms": 60000})
	valid.Store(false)
	r := await(t, srv, plain, "failed")
	e, _ := r.Result["error"].(map[string]any)
	if data, _ := e["data"].(map[string]any); e["code"] != float64(-32003) || data["retryable"] != true {
		t.Fatalf("a task whose caller's token expired: %v, want -32003 retryable", r.Result)
	}
	waitFor(t, "the resumable round to end", func() bool { return l.Running() == 0 })
	got, _ := store.Get(context.Background(), "alice", resumable)
	if got.Status != "working" || got.Resumes != 0 || !time.Now().After(got.LeaseUntil) {
		t.Fatalf("the resumable task: %+v, want working with its lease lapsed", got)
	}
	// A read with a valid token resumes it.
	valid.Store(true)
	if r := rpc(t, srv, "tasks/get", map[string]any{"taskId": resumable}, true); r.Result["status"] != "working" {
		t.Fatalf("the resuming read: %+v", r)
	}
	if got, _ := store.Get(context.Background(), "alice", resumable); got.Resumes != 1 {
		t.Fatalf("not resumed: %+v", got)
	}
	rpc(t, srv, "tasks/cancel", map[string]any{"taskId": resumable}, true)
}

// down is a store that cannot be reached.
type down struct{ taskstore.Store }

var errDown = fmt.Errorf("dial tcp: connection refused")

func (down) Create(context.Context, *taskstore.Task) error { return errDown }
func (down) Get(context.Context, string, string) (*taskstore.Task, error) {
	return nil, errDown
}

// A store outage is answered as other store outages are: 503 with
// Retry-After and a JSON-RPC error, not as a limit (-32005).
func TestStoreOutageIsUnavailable(t *testing.T) {
	srv, _ := node(t, down{&taskstore.Memory{}}, "alice", "n1")
	for _, tc := range []struct {
		method string
		params map[string]any
	}{
		{"tasks/get", map[string]any{"taskId": "x"}},
		{"tools/call", map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": 1}}},
	} {
		r := rpc(t, srv, tc.method, tc.params, true)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.Error == nil || r.Error.Code == -32005 {
			t.Errorf("%s with the store down: HTTP %d %v %+v, want 503 with Retry-After", tc.method, r.status, r.header, r.Error)
		}
	}
}

// The layer reads at most MaxBody of a body, and refuses a larger one
// (413) rather than pass on a cut one.
func TestBodyBeyondMaxBodyIsRefused(t *testing.T) {
	srv, _ := nodeWith(t, Options{Store: &taskstore.Memory{}, Owner: "alice", Runner: "n1", MaxBody: 4 << 10})
	r := rpc(t, srv, "tools/call", map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": 1, "pad": strings.Repeat("x", 8<<10)}}, true)
	if r.status != http.StatusRequestEntityTooLarge || r.Error == nil || !strings.Contains(r.Error.Message, "exceeds 4096 bytes") {
		t.Fatalf("a body beyond MaxBody: HTTP %d %+v, want 413", r.status, r.Error)
	}
	if r := rpc(t, srv, "tools/call", map[string]any{"name": "test_slow", "arguments": map[string]any{"ms": 1}}, true); r.Result["resultType"] != "task" {
		t.Fatalf("a small call: %+v", r)
	}
}

// A toolset installs its tools in every session's server: a task-capable
// tool's definition and resolved schema are prepared once and shared, and
// a different definition (or task support) gets its own.
func TestDefinitionsPreparedOnce(t *testing.T) {
	mk := func(desc string) *mcp.Tool {
		return &mcp.Tool{Name: "shared_tool", Description: desc, InputSchema: json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}}}`)}
	}
	a, b := prepare(mk("one"), Optional), prepare(mk("one"), Optional)
	if a != b || a.def == nil || a.schema == nil {
		t.Fatalf("the same definition prepared twice: %p %p, want one", a, b)
	}
	if got := a.def.Meta[Extension]; !reflect.DeepEqual(got, map[string]any{"taskSupport": "optional"}) {
		t.Errorf("_meta: %v", got)
	}
	if c := prepare(mk("two"), Optional); c == a || c.def.Description != "two" {
		t.Errorf("another description shares the first's definition")
	}
	if c := prepare(mk("one"), Required); c == a || !reflect.DeepEqual(c.def.Meta[Extension], map[string]any{"taskSupport": "required"}) {
		t.Errorf("another task support shares the first's definition")
	}
	if res := validate(a.schema, json.RawMessage(`{"n":"x"}`)); res == nil || !res.IsError {
		t.Errorf("the shared schema takes an invalid argument")
	}
}

// An operator's Cancel (no layer of the owner's involved) records the task
// cancelled with the operator's message, frees its user's place, counts the
// metric, and reaches the round through the store at its next renewal;
// a terminal task is returned unchanged, an unknown one as nil. The task
// names the principal it acts for (Options.Principal).
func TestOperatorCancel(t *testing.T) {
	store, live := &taskstore.Memory{}, &liveTasks{}
	srv, l := nodeWith(t, Options{Store: store, Owner: "alice/c1", Runner: "n1", Live: live, MaxPerUser: 5,
		User:      func(*http.Request) string { return "alice" },
		Principal: func(*http.Request) (string, string, string) { return "https://idp", "alice", "c1" }})
	before, beforeCancelled := cancelled.Load(), tasksTotal("cancelled")
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	stored, err := store.Get(context.Background(), "alice/c1", id)
	if err != nil || stored.Issuer != "https://idp" || stored.Subject != "alice" || stored.ClientID != "c1" {
		t.Fatalf("the stored task: %+v, %v; want the principal (https://idp, alice, c1)", stored, err)
	}
	op := Options{Store: store, Owner: "alice/c1", Live: live}
	got, done, err := Cancel(context.Background(), op, id, "cancelled by an operator")
	if err != nil || !done || got.Status != "cancelled" || got.StatusMessage != "cancelled by an operator" || got.Runner != "" {
		t.Fatalf("operator's cancel: %+v, %v, %v", got, done, err)
	}
	if n := live.count("alice"); n != 0 {
		t.Errorf("alice counts %d live tasks after the cancel, want 0", n)
	}
	if d := tasksTotal("cancelled") - beforeCancelled; d != 1 {
		t.Errorf("pingmcp_tasks_total{status=cancelled} grew by %v, want 1", d)
	}
	waitFor(t, "the round's context to end", func() bool { return cancelled.Load() > before && l.Running() == 0 })
	r := await(t, srv, id, "cancelled")
	if r.Result["statusMessage"] != "cancelled by an operator" {
		t.Errorf("the client reads %+v, want statusMessage \"cancelled by an operator\"", r.Result)
	}
	again, done, err := Cancel(context.Background(), op, id, "cancelled by an operator")
	if err != nil || done || again == nil || again.Status != "cancelled" {
		t.Fatalf("cancel of a terminal task: %+v, %v, %v; want it unchanged", again, done, err)
	}
	if none, done, err := Cancel(context.Background(), op, "no-such-task", "x"); none != nil || done || err != nil {
		t.Fatalf("cancel of an unknown task: %+v, %v, %v; want nil", none, done, err)
	}
}

// tasks/get, tasks/update and tasks/cancel with params that are not theirs
// (a taskId that is not a string, params null) are refused as invalid
// params (-32602), not "unsupported method".
func TestTaskMethodsWithForeignParams(t *testing.T) {
	srv, _ := nodeWith(t, Options{Store: &taskstore.Memory{}, Owner: "alice", Runner: "n1"})
	resp, err := http.DefaultClient.Do(rpcRequest(context.Background(), srv, "tasks/get", "", json.RawMessage("null")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"code":-32602`) {
		t.Errorf("tasks/get with params null: HTTP %d %s, want -32602", resp.StatusCode, body)
	}
	for _, method := range []string{"tasks/get", "tasks/update", "tasks/cancel"} {
		for _, id := range []any{123, map[string]any{"a": 1}, []any{"x"}} {
			r := rpc(t, srv, method, map[string]any{"taskId": id}, true)
			if r.Error == nil || r.Error.Code != -32602 || !strings.Contains(r.Error.Message, "taskId is a string") {
				t.Errorf("%s with taskId %v: HTTP %d %+v, want -32602", method, id, r.status, r.Error)
			}
		}
	}
}

// What a task keeps of the answers to its input requests is bounded as
// its call is: answers that would make it exceed MaxRequestBytes, in one
// update or over several, are refused (413, -32005 task_request_bytes) and
// recorded nowhere; the task still waits for them.
func TestInputResponsesBounded(t *testing.T) {
	store := &taskstore.Memory{}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1"})
	id := start(t, srv, "test_two_questions", nil)
	await(t, srv, id, "input_required")
	big := func(n int) map[string]any {
		return map[string]any{"action": "accept", "content": map[string]any{"x": strings.Repeat("x", n)}}
	}
	r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"a": big(MaxRequestBytes)}}, true)
	if r.status != http.StatusRequestEntityTooLarge || r.Error == nil || r.Error.Code != -32005 || r.Error.Data["limit"] != "task_request_bytes" {
		t.Fatalf("an oversized answer: HTTP %d %+v", r.status, r.Error)
	}
	// Two answers under the bound each, over it together.
	if r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"a": big(MaxRequestBytes / 2)}}, true); r.Error != nil {
		t.Fatalf("an answer under the bound: %+v", r.Error)
	}
	r = rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"b": big(MaxRequestBytes / 2)}}, true)
	if r.status != http.StatusRequestEntityTooLarge || r.Error == nil || r.Error.Code != -32005 || r.Error.Data["size"].(float64) <= MaxRequestBytes {
		t.Fatalf("answers over the bound together: HTTP %d %+v", r.status, r.Error)
	}
	if got, _ := store.Get(context.Background(), "alice", id); got.Status != "input_required" || len(got.InputRequests) != 1 || len(got.Responses) != 1 {
		t.Fatalf("a refused update changed the task: %s, %d pending, %d answered", got.Status, len(got.InputRequests), len(got.Responses))
	}
	if r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"b": big(1)}}, true); r.Error != nil {
		t.Fatalf("a small answer: %+v", r.Error)
	}
	await(t, srv, id, "completed")
}

// TestMethodHeaderRequired: the layer's own methods (tasks/get, a task
// listen) refuse a 2026-07-28 request without its Mcp-Method header, or
// with another method's, as the go-sdk refuses one of its own methods:
// -32020, HTTP 400, and nothing answered.
func TestMethodHeaderRequired(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	for _, header := range []string{"", "tools/list"} {
		r := rpc(t, srv, "tasks/get", map[string]any{"taskId": id}, true, "Mcp-Method", header)
		if r.status != http.StatusBadRequest || r.Error == nil || r.Error.Code != -32020 || r.Result != nil {
			t.Errorf("tasks/get with Mcp-Method %q: %d %+v", header, r.status, r)
		}
		params := withMeta(map[string]any{"notifications": map[string]any{"taskIds": []string{id}}}, true)
		req := rpcRequest(context.Background(), srv, "subscriptions/listen", "", params)
		req.Header.Set("Mcp-Method", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code":-32020`) {
			t.Errorf("a task listen with Mcp-Method %q: %d %s", header, resp.StatusCode, body)
		}
	}
	if r := rpc(t, srv, "tasks/get", map[string]any{"taskId": id}, true); r.status != http.StatusOK || r.Result["taskId"] != id {
		t.Errorf("tasks/get with its header: %d %+v", r.status, r)
	}
}

// TestMcpNameRequired: tasks/get, tasks/update and tasks/cancel refuse a
// request without its Mcp-Name header (SEP-2243 as SEP-2663 extends it: a
// missing required header is rejected as a mismatched one is), -32020,
// HTTP 400, and the refused request changes nothing: a cancel without it
// leaves the task working.
func TestMcpNameRequired(t *testing.T) {
	srv, _ := node(t, &taskstore.Memory{}, "alice", "n1")
	id := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	defer rpc(t, srv, "tasks/cancel", map[string]any{"taskId": id}, true)
	for _, method := range []string{"tasks/get", "tasks/update", "tasks/cancel"} {
		params := map[string]any{"taskId": id}
		if method == "tasks/update" {
			params["inputResponses"] = map[string]any{}
		}
		resp, err := http.DefaultClient.Do(rpcRequest(context.Background(), srv, method, "", withMeta(params, true)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code":-32020`) || strings.Contains(string(body), `"result"`) {
			t.Errorf("%s without Mcp-Name: %d %s, want -32020 (HTTP 400)", method, resp.StatusCode, body)
		}
	}
	if r := rpc(t, srv, "tasks/get", map[string]any{"taskId": id}, true); r.Result["status"] != "working" {
		t.Fatalf("after a cancel without Mcp-Name: %+v, want the task still working", r.Result)
	}
}

// TestUpdateAnsweringNothingChangesNothing: a tasks/update that answers
// none of the task's pending input requests (unknown keys alone, or none)
// is acknowledged, as SEP-2663 asks, and leaves the record as it was: its
// lastUpdatedAt (and the TTL that runs from it) does not move, so that
// listeners elsewhere are not sent the same input_required again.
func TestUpdateAnsweringNothingChangesNothing(t *testing.T) {
	store := &taskstore.Memory{}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1"})
	id := start(t, srv, "test_two_questions", nil)
	await(t, srv, id, "input_required")
	before, _ := store.Get(context.Background(), "alice", id)
	answer := map[string]any{"action": "accept", "content": map[string]any{}}
	for _, responses := range []map[string]any{{"zz": answer}, {}} {
		if r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": responses}, true); r.Error != nil || r.Result["resultType"] != "complete" {
			t.Fatalf("update answering nothing (%v): %+v, want the ack", responses, r)
		}
		if got, _ := store.Get(context.Background(), "alice", id); !got.UpdatedAt.Equal(before.UpdatedAt) || got.Status != "input_required" || len(got.InputRequests) != 2 {
			t.Errorf("update answering nothing (%v): %s, %d pending, updated %v (was %v); want the task as it was",
				responses, got.Status, len(got.InputRequests), got.UpdatedAt, before.UpdatedAt)
		}
	}
}

// TestMalformedAnswerIsRefused: an answer to a pending input request that
// is no input response (SEP-2322: an elicitation's, a sampling's or a
// roots' result) is refused at the tasks/update, -32602 (HTTP 400), and
// recorded nowhere: the task still waits for it, and a good answer then
// completes it. Recorded, it made the task's next round a call the MCP
// handler refuses, so the task failed for good.
func TestMalformedAnswerIsRefused(t *testing.T) {
	store := &taskstore.Memory{}
	srv, _ := nodeWith(t, Options{Store: store, Owner: "alice", Runner: "n1"})
	id := start(t, srv, "test_two_questions", nil)
	await(t, srv, id, "input_required")
	answer := map[string]any{"action": "accept", "content": map[string]any{}}
	for _, bad := range []any{5, "yes", map[string]any{"x": 1}, map[string]any{"action": 5}} {
		r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"a": bad, "b": answer}}, true)
		if r.status != http.StatusBadRequest || r.Error == nil || r.Error.Code != -32602 {
			t.Errorf("answer %v: HTTP %d %+v, want -32602 (HTTP 400)", bad, r.status, r)
		}
		if got, _ := store.Get(context.Background(), "alice", id); got.Status != "input_required" || len(got.InputRequests) != 2 || len(got.Responses) != 0 {
			t.Fatalf("answer %v changed the task: %s, %d pending, %d answered", bad, got.Status, len(got.InputRequests), len(got.Responses))
		}
	}
	// An unknown key's value is ignored, whatever it is.
	if r := rpc(t, srv, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"zz": 5, "a": answer, "b": answer}}, true); r.Error != nil {
		t.Fatalf("good answers beside an unknown key: %+v", r)
	}
	await(t, srv, id, "completed")
}

// cutUpdates is a store whose next Update, once armed, is made and then
// has its answer lost as the client leaves: leave ends the client's
// request, and the store answers its context's error, as a store over the
// network does when the context ends while its answer is on the way.
type cutUpdates struct {
	taskstore.Store
	leave atomic.Pointer[context.CancelFunc]
}

func (s *cutUpdates) Update(ctx context.Context, owner, id string, change func(*taskstore.Task) error) (*taskstore.Task, error) {
	t, err := s.Store.Update(ctx, owner, id, change)
	if leave := s.leave.Swap(nil); leave != nil && err == nil && t != nil {
		(*leave)()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return t, err
}

// serveLeaving serves method on l for a client that leaves as soon as the
// store made the change it asked for, and returns the answer it was given.
func serveLeaving(t *testing.T, srv *httptest.Server, l *Layer, store *cutUpdates, method string, params map[string]any) *httptest.ResponseRecorder {
	t.Helper()
	ctx, leave := context.WithCancel(context.Background())
	defer leave()
	store.leave.Store(&leave)
	w := httptest.NewRecorder()
	l.ServeHTTP(w, rpcRequest(ctx, srv, method, params["taskId"].(string), withMeta(params, true)))
	if store.leave.Load() != nil {
		t.Fatalf("%s changed nothing in the store", method)
	}
	return w
}

// A change a client's request makes in the store is not cut by the client
// leaving: the answers of a tasks/update that were recorded run the task's
// next round, a tasks/get that took a lapsed task over runs it, and a
// cancel recorded is answered so. (The round was left unstarted, its task
// recorded working under a lease nobody held: after the lease, a task not
// resumable failed with -32003, a resumable one was taken over again and
// its resumes spent.)
func TestChangesNotCutByTheClientLeaving(t *testing.T) {
	store := &cutUpdates{Store: &taskstore.Memory{}}
	srv, l := node(t, store, "alice", "n1")
	id := start(t, srv, "test_two_questions", nil)
	await(t, srv, id, "input_required")
	answer := map[string]any{"action": "accept", "content": map[string]any{}}
	w := serveLeaving(t, srv, l, store, "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{"a": answer, "b": answer}})
	if w.Code != http.StatusOK {
		t.Errorf("a recorded update: HTTP %d %s, want its acknowledgement", w.Code, w.Body)
	}
	if got, _ := store.Get(context.Background(), "alice", id); got.Status == "working" && !l.runsHere(id) {
		t.Fatalf("the update's answers were recorded and no round runs them: %s, runner %s", got.Status, got.Runner)
	}
	await(t, srv, id, "completed")

	now := time.Now()
	store.Create(context.Background(), &taskstore.Task{ID: "lost", Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now,
		TTL: time.Hour, Request: resumableCall, Runner: "dead-node/x", LeaseUntil: now.Add(-time.Second)})
	serveLeaving(t, srv, l, store, "tasks/get", map[string]any{"taskId": "lost"})
	if got, _ := store.Get(context.Background(), "alice", "lost"); got.Status == "working" && !l.runsHere("lost") {
		t.Fatalf("the task was taken over and no round runs it: %s, runner %s", got.Status, got.Runner)
	}
	if r := await(t, srv, "lost", "completed"); r.Result["status"] != "completed" {
		t.Fatal(r)
	}
	if got, _ := store.Get(context.Background(), "alice", "lost"); got.Resumes != 1 {
		t.Errorf("resumed %d times, want once", got.Resumes)
	}

	long := start(t, srv, "test_slow", map[string]any{"ms": 60000})
	if w := serveLeaving(t, srv, l, store, "tasks/cancel", map[string]any{"taskId": long}); w.Code != http.StatusOK {
		t.Errorf("a recorded cancel: HTTP %d %s, want its acknowledgement", w.Code, w.Body)
	}
	await(t, srv, long, "cancelled")
}

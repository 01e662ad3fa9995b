package todo

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/tasks"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools/toolstest"
)

const taskMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}`

// post sends one 2026-07-28 request with the tasks extension and returns
// its result.
func post(t *testing.T, url, method, name, params string) map[string]any {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":{` + params + `,` + taskMeta + `}}`
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	req.Header.Set("Mcp-Name", name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Result map[string]any `json:"result"`
		Error  any            `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Result == nil {
		t.Fatalf("%s: HTTP %d %v %v", method, resp.StatusCode, out.Error, err)
	}
	return out.Result
}

// awaitTask polls tasks/get until the task is terminal.
func awaitTask(t *testing.T, url, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := post(t, url, "tasks/get", id, `"taskId":"`+id+`"`)
		switch r["status"] {
		case "completed", "failed", "cancelled":
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: %v", id, r)
		}
		time.Sleep(20 * time.Millisecond) // clients poll tasks
	}
}

// import_todos runs as a task, and a round run again after its node died
// adds each todo once: the creates carry idempotency keys of the task's.
func TestImportTodosAsAResumedTask(t *testing.T) {
	is := authtest.NewIssuer(t)
	apiURL := toolstest.TodoAPI(t, is)
	caller := &toolstest.Caller{T: t, Issuer: is, Subject: "alice", Scopes: []string{todoapi.ScopeRead, todoapi.ScopeWrite}}
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	New(Options{APIURL: apiURL}).Install(s, caller)
	store := &taskstore.Memory{}
	l := tasks.New(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true}),
		tasks.Options{Store: store, Owner: "alice", Runner: "n1"})
	srv := httptest.NewServer(l)
	defer srv.Close()
	defer l.Close()
	count := func(r map[string]any) int {
		res, _ := r["result"].(map[string]any)
		content, _ := res["content"].([]any)
		if len(content) != 1 {
			t.Fatalf("import result: %v", r)
		}
		var list todoapi.List
		json.Unmarshal([]byte(content[0].(map[string]any)["text"].(string)), &list)
		return len(list.Todos)
	}

	created := post(t, srv.URL, "tools/call", "import_todos", `"name":"import_todos","arguments":{"items":["a","b","c"]}`)
	id, _ := created["taskId"].(string)
	if created["resultType"] != "task" || id == "" {
		t.Fatalf("import_todos: %v, want a task", created)
	}
	if r := awaitTask(t, srv.URL, id); r["status"] != "completed" || count(r) != 3 {
		t.Fatalf("import of 3: %v", r)
	}

	// A task whose node died after it added its first two todos: its
	// lease lapsed, and the first tasks/get resumes it here.
	now := time.Now()
	lost := "lost-import"
	call := json.RawMessage(`{"name":"import_todos","arguments":{"items":["d","e","f","g"]},` + taskMeta + `}`)
	store.Create(context.Background(), &taskstore.Task{ID: lost, Owner: "alice", Status: "working", CreatedAt: now, UpdatedAt: now,
		TTL: time.Hour, Request: call, Runner: "dead/x", LeaseUntil: now.Add(-time.Second)})
	c := &calls{opts: New(Options{APIURL: apiURL}).(*toolset).opts, caller: caller}
	for i, text := range []string{"d", "e"} {
		res, _ := c.api(context.Background(), http.MethodPost, "/api/todos", map[string]any{"todoText": text},
			http.Header{"Idempotency-Key": {lost + "/" + string(rune('0'+i))}})
		if res.IsError {
			t.Fatalf("the dead node's create %d: %+v", i, res)
		}
	}
	if r := awaitTask(t, srv.URL, lost); r["status"] != "completed" || count(r) != 3+4 {
		t.Fatalf("resumed import of 4, 2 of them added before: %v, want 7 todos in all", r)
	}
}

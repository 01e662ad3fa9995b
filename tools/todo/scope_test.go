package todo

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools/toolstest"
)

// A write returns what it wrote, nothing more: with todo_api:write only,
// create_new_todo, toggle_todo_status and delete_todo show the todo they
// touched and none of the others, which get_my_todo_list would refuse to
// show (it needs todo_api:read). With both scopes the list comes back.
func TestWriteScopeDoesNotReadTheList(t *testing.T) {
	is := authtest.NewIssuer(t)
	apiURL := toolstest.TodoAPI(t, is)

	opts := New(Options{APIURL: apiURL}).(*toolset).opts
	rw := &calls{opts: opts, caller: &toolstest.Caller{T: t, Issuer: is, Subject: "alice", Scopes: []string{todoapi.ScopeRead, todoapi.ScopeWrite}}}
	w := &calls{opts: opts, caller: &toolstest.Caller{T: t, Issuer: is, Subject: "alice", Scopes: []string{todoapi.ScopeWrite}}}
	ctx := context.Background()
	call := func(c *calls, h func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error), args string) todoapi.List {
		t.Helper()
		res, err := h(ctx, &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Arguments: json.RawMessage(args)}})
		if err != nil || res.IsError {
			t.Fatalf("tool call %s: %v %+v", args, err, res)
		}
		var l todoapi.List
		if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	call(rw, rw.create, `{"text":"secret plan"}`)
	call(rw, rw.create, `{"text":"other secret"}`)

	got := call(w, w.create, `{"text":"buy milk"}`)
	if len(got.Todos) != 1 || got.Todos[0].Text != "buy milk" {
		t.Fatalf("create_new_todo with todo_api:write only answered %+v, want only the created todo", got.Todos)
	}
	id := got.Todos[0].ID
	got = call(w, w.toggle, `{"todoId":"`+id+`","completed":true}`)
	if len(got.Todos) != 1 || got.Todos[0].ID != id || !got.Todos[0].Completed {
		t.Errorf("toggle_todo_status with todo_api:write only answered %+v, want only the toggled todo", got.Todos)
	}
	if got = call(w, w.delete, `{"todoId":"`+id+`"}`); len(got.Todos) != 0 {
		t.Errorf("delete_todo with todo_api:write only answered %+v, want nothing", got.Todos)
	}
	if res, _ := w.list(ctx, nil); !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "403") {
		t.Errorf("get_my_todo_list with todo_api:write only: %+v", res)
	}
	if got = call(rw, rw.create, `{"text":"third"}`); len(got.Todos) != 3 {
		t.Errorf("create_new_todo with todo_api:read too answered %d todos, want the whole list of 3", len(got.Todos))
	}
}

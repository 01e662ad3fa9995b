package todo

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools"
)

// scopedCaller delegates a token of the issuer for alice with scopes only.
type scopedCaller struct {
	t      *testing.T
	is     *authtest.Issuer
	api    string
	scopes string
}

func (c scopedCaller) Claims(context.Context) map[string]any { return nil }
func (c scopedCaller) Delegate(context.Context, string, []string) (*tools.Delegation, error) {
	claims := c.is.Claims("alice", c.api, c.scopes)
	claims["act"] = map[string]any{"sub": "pingmcp"}
	return &tools.Delegation{Token: c.is.Token(c.t, claims), Scopes: strings.Fields(c.scopes), Expiry: time.Now().Add(time.Minute)}, nil
}

// A write returns what it wrote, nothing more: with todo_api:write only,
// create_new_todo, toggle_todo_status and delete_todo show the todo they
// touched and none of the others, which get_my_todo_list would refuse to
// show (it needs todo_api:read). With both scopes the list comes back.
func TestWriteScopeDoesNotReadTheList(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := httptest.NewUnstartedServer(nil)
	apiURL := "http://" + srv.Listener.Addr().String()
	api, err := todoapi.New(todoapi.Options{Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{apiURL}})})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = api
	srv.Start()
	t.Cleanup(srv.Close)

	opts := New(Options{APIURL: apiURL}).(*toolset).opts
	rw := &calls{opts: opts, caller: scopedCaller{t, is, apiURL, "todo_api:read todo_api:write"}}
	w := &calls{opts: opts, caller: scopedCaller{t, is, apiURL, "todo_api:write"}}
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

package openapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools/toolstest"
)

// todoTools are the Todo API's tools from the document it serves itself,
// all four operations selected.
func todoTools(t *testing.T, apiURL string) *Toolset {
	t.Helper()
	ts, err := New(t.Context(), []API{{
		Name: "todo", BaseURL: apiURL, Document: apiURL + todoapi.DocumentPath,
		Include: Selector{Methods: []string{"GET", "POST", "PATCH", "DELETE"}},
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// The Todo API's own document, fetched from it, gives tools that do what
// the built-in Todo tools do, against the real API: list, create (once per
// Idempotency-Key), toggle, delete, each user's list apart, each call with a
// token for the API's resource and its operation's scopes.
func TestTodoAPIThroughItsDocument(t *testing.T) {
	is := authtest.NewIssuer(t)
	apiURL := toolstest.TodoAPI(t, is)
	ts := todoTools(t, apiURL)

	wantScopes := map[string][]string{
		"todo_listTodos":  {todoapi.ScopeRead},
		"todo_createTodo": {todoapi.ScopeWrite},
		"todo_updateTodo": {todoapi.ScopeWrite},
		"todo_deleteTodo": {todoapi.ScopeWrite},
	}
	if got := ts.Scopes(); !equalScopes(got, wantScopes) {
		t.Errorf("Scopes() = %v, want %v", got, wantScopes)
	}

	alice := &toolstest.Caller{T: t, Issuer: is, Subject: "alice", Scopes: []string{todoapi.ScopeRead, todoapi.ScopeWrite}}
	cs := connect(t, ts, alice)
	lt, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	annotations := map[string]mcp.ToolAnnotations{}
	for _, tool := range lt.Tools {
		annotations[tool.Name] = *tool.Annotations
	}
	if a := annotations["todo_listTodos"]; !a.ReadOnlyHint {
		t.Errorf("listTodos annotations %+v: want read-only", a)
	}
	if a := annotations["todo_deleteTodo"]; a.ReadOnlyHint || a.DestructiveHint == nil || !*a.DestructiveHint || !a.IdempotentHint {
		t.Errorf("deleteTodo annotations %+v: want destructive and idempotent", a)
	}
	if a := annotations["todo_createTodo"]; a.ReadOnlyHint || a.DestructiveHint == nil || *a.DestructiveHint || a.IdempotentHint {
		t.Errorf("createTodo annotations %+v: want neither destructive nor idempotent", a)
	}

	list := func(cs *mcp.ClientSession, name, args string) todoapi.List {
		t.Helper()
		res := callTool(t, cs, name, args)
		if res.IsError {
			t.Fatalf("%s %s: %s", name, args, text(res))
		}
		var l todoapi.List
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, &l); err != nil || res.StructuredContent == nil {
			t.Fatalf("%s: structured content %v: %v", name, res.StructuredContent, err)
		}
		return l
	}
	if l := list(cs, "todo_listTodos", `{}`); len(l.Todos) != 0 {
		t.Fatalf("a new list holds %v", l.Todos)
	}

	// Each call's token has its operation's scopes alone: a write, with
	// todo_api:write only, answers what it wrote (the Todo API's rule).
	l := list(cs, "todo_createTodo", `{"body":{"todoText":"buy milk"}}`)
	if len(l.Todos) != 1 || l.Todos[0].Text != "buy milk" {
		t.Fatalf("create answered %+v", l.Todos)
	}
	id := l.Todos[0].ID
	for range 2 { // a retried create lands once
		list(cs, "todo_createTodo", `{"body":{"todoText":"call mum"},"Idempotency-Key":"k-1"}`)
	}
	if l = list(cs, "todo_listTodos", `{}`); len(l.Todos) != 2 {
		t.Fatalf("two creates with one Idempotency-Key: the list holds %+v, want 2 todos in all", l.Todos)
	}
	if l = list(cs, "todo_updateTodo", `{"todoId":"`+id+`","body":{"completed":true}}`); len(l.Todos) != 1 || l.Todos[0].ID != id || !l.Todos[0].Completed {
		t.Fatalf("toggle answered %+v", l.Todos)
	}
	if l = list(cs, "todo_deleteTodo", `{"todoId":"`+id+`"}`); len(l.Todos) != 0 {
		t.Fatalf("delete answered %+v", l.Todos)
	}
	if l = list(cs, "todo_listTodos", `{}`); len(l.Todos) != 1 || l.Todos[0].Text != "call mum" {
		t.Fatalf("after the delete the list holds %+v", l.Todos)
	}
	asked := alice.Asked()
	for _, d := range asked {
		if d.Audience != apiURL {
			t.Errorf("a token was asked for audience %q, want the API's resource %q", d.Audience, apiURL)
		}
	}
	if got := asked[0].Scopes; !slices.Equal(got, []string{todoapi.ScopeRead}) {
		t.Errorf("listTodos asked for scopes %v, want its operation's", got)
	}
	if got := asked[1].Scopes; !slices.Equal(got, []string{todoapi.ScopeWrite}) {
		t.Errorf("createTodo asked for scopes %v, want its operation's", got)
	}

	// Another user sees none of alice's todos, and cannot touch them. No
	// arguments at all (null, as the Go SDK sends for none) are none.
	bob := connect(t, ts, &toolstest.Caller{T: t, Issuer: is, Subject: "bob", Scopes: []string{todoapi.ScopeRead, todoapi.ScopeWrite}})
	if l := list(bob, "todo_listTodos", `null`); len(l.Todos) != 0 {
		t.Errorf("bob sees %+v", l.Todos)
	}
	other := list(cs, "todo_listTodos", `{}`).Todos[0].ID
	if res := callTool(t, bob, "todo_deleteTodo", `{"todoId":"`+other+`"}`); !res.IsError || !strings.Contains(text(res), "404") {
		t.Errorf("bob deleting alice's todo: %s", text(res))
	}

	// Write alone does not read the list, as with the built-in tools.
	writer := connect(t, ts, &toolstest.Caller{T: t, Issuer: is, Subject: "alice", Scopes: []string{todoapi.ScopeWrite}})
	if l := list(writer, "todo_createTodo", `{"body":{"todoText":"third"}}`); len(l.Todos) != 1 || l.Todos[0].Text != "third" {
		t.Errorf("create with write alone answered %+v, want only the created todo", l.Todos)
	}
	if res := callTool(t, writer, "todo_listTodos", `{}`); !res.IsError || !strings.Contains(text(res), "403") {
		t.Errorf("list with write alone: %s", text(res))
	}
}

// The API serves its document without a token, and it loads.
func TestTodoAPIServesItsDocument(t *testing.T) {
	apiURL := toolstest.TodoAPI(t, authtest.NewIssuer(t))
	resp, err := http.Get(apiURL + todoapi.DocumentPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET %s: %s %s", todoapi.DocumentPath, resp.Status, resp.Header.Get("Content-Type"))
	}
	// Read-only by default: only listTodos.
	ts, err := New(t.Context(), []API{{Name: "todo", BaseURL: apiURL, Document: apiURL + todoapi.DocumentPath}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(ts); !slices.Equal(got, []string{"todo_listTodos"}) {
		t.Errorf("default selection: %v, want the read-only operation alone", got)
	}
}

func toolNames(ts *Toolset) []string {
	var out []string
	for _, tool := range ts.Tools() {
		out = append(out, tool.Name)
	}
	return out
}

func equalScopes(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// pingmcp dev with --apis naming its own Todo API through the OpenAPI
// document the API serves: alice and bob, logged in through the dev IdP,
// use the generated tools, each call with a token exchanged for the API's
// resource and that operation's scope alone (the audit records say so,
// and which API and operation each call reached); bob, through a client
// holding only the read scope, is refused a write with a challenge naming both scopes, steps
// up on the same session, and writes; hostile path arguments reach
// nothing.
func TestGeneratedToolsDelegated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	todoAddr := freeAddr(t)
	dir := t.TempDir()
	apis := filepath.Join(dir, "apis.yaml")
	auditPath := filepath.Join(dir, "audit.jsonl")
	file := fmt.Sprintf(`apis:
  - name: todo
    base_url: http://%[1]s
    document: http://%[1]s/openapi.yaml
    include: {methods: [GET, POST, PATCH, DELETE]}
`, todoAddr)
	if err := os.WriteFile(apis, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	d := runDev(t, "--todo-api-addr", todoAddr, "--apis", apis, "--audit-log", auditPath)
	const all = "openid offline_access todo_api:read todo_api:write"
	aliceToken := login(t, ctx, d.Issuer, d.MCP, "alice", all)
	alice := connectAs(t, ctx, d.MCP, aliceToken)
	bob := connectAs(t, ctx, d.MCP, login(t, ctx, d.Issuer, d.MCP, "bob", all))

	tools, err := alice.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"todo_listTodos", "todo_createTodo", "todo_updateTodo", "todo_deleteTodo", "get_my_todo_list"} {
		if !slices.Contains(names, want) {
			t.Errorf("tool %s missing from %v", want, names)
		}
	}

	out, isErr := call(t, ctx, alice, "todo_createTodo", map[string]any{"body": map[string]any{"todoText": "generated milk"}})
	var created todoList
	if isErr || json.Unmarshal([]byte(out), &created) != nil || len(created.Todos) != 1 || created.Todos[0].Text != "generated milk" {
		t.Fatalf("todo_createTodo: %v %s", isErr, out)
	}
	id := created.Todos[0].ID
	if out, isErr := call(t, ctx, alice, "todo_updateTodo", map[string]any{"todoId": id, "body": map[string]any{"completed": true}}); isErr || !strings.Contains(out, `"completed":true`) {
		t.Errorf("todo_updateTodo: %v %s", isErr, out)
	}
	// The built-in tools see the same list: one API, two ways in.
	if out, _ := call(t, ctx, alice, "get_my_todo_list", nil); !strings.Contains(out, "generated milk") {
		t.Errorf("get_my_todo_list after todo_createTodo: %s", out)
	}
	if out, _ := call(t, ctx, bob, "todo_listTodos", nil); strings.Contains(out, id) {
		t.Errorf("bob lists alice's todo: %s", out)
	}
	if out, isErr := call(t, ctx, bob, "todo_deleteTodo", map[string]any{"todoId": id}); !isErr || !strings.Contains(out, "404") {
		t.Errorf("bob deleting alice's todo: %v %s", isErr, out)
	}
	for _, hostile := range []string{"../admin", "a/b", "%2e%2e", "..%2Fopenapi.yaml"} {
		if out, isErr := call(t, ctx, alice, "todo_deleteTodo", map[string]any{"todoId": hostile}); !isErr {
			t.Errorf("todo_deleteTodo %q was not refused: %s", hostile, out)
		}
	}
	if out, _ := call(t, ctx, alice, "todo_listTodos", nil); !strings.Contains(out, id) {
		t.Errorf("alice's todo gone after the hostile deletes: %s", out)
	}

	// A call the client sends again (the same JSON-RPC id in the same
	// session: its answer was lost) lands once: pingmcp gives createTodo,
	// which declares Idempotency-Key, a key derived from the call.
	retried := `{"jsonrpc":"2.0","id":"retried-1","method":"tools/call","params":{"name":"todo_createTodo","arguments":{"body":{"todoText":"exactly once"}}}}`
	for range 2 {
		if a := askHTTP(t, ctx, http.MethodPost, d.MCP, retried, map[string]string{"Authorization": "Bearer " + aliceToken,
			"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
			"Mcp-Session-Id": alice.ID(), "Mcp-Protocol-Version": "2025-11-25"}); a.status != http.StatusOK || !strings.Contains(a.body, "exactly once") {
			t.Fatalf("the retried create: %d %s", a.status, a.body)
		}
	}
	if out, _ := call(t, ctx, alice, "todo_listTodos", nil); strings.Count(out, "exactly once") != 1 {
		t.Errorf("a create sent twice as one call is in the list %d times, want once: %s", strings.Count(out, "exactly once"), out)
	}

	// Each call's token: the API's resource, the operation's scope alone.
	recs := auditRecords(t, ctx, auditPath, "todo_createTodo", "todo_updateTodo", "todo_listTodos")
	for _, c := range []struct{ tool, scope, op string }{
		{"todo_createTodo", "todo_api:write", "createTodo"},
		{"todo_updateTodo", "todo_api:write", "updateTodo"},
		{"todo_listTodos", "todo_api:read", "listTodos"},
	} {
		rec := recs[c.tool]
		if rec == nil {
			t.Errorf("no audit record for %s", c.tool)
			continue
		}
		ds, _ := rec["delegations"].([]any)
		calls, _ := rec["calls"].([]any)
		dl, _ := firstOf(ds).(map[string]any)
		cl, _ := firstOf(calls).(map[string]any)
		if dl["audience"] != "http://"+todoAddr || fmt.Sprint(dl["scopes"]) != "["+c.scope+"]" {
			t.Errorf("%s: exchanged token %v, want audience http://%s and scopes [%s] alone", c.tool, dl, todoAddr, c.scope)
		}
		if cl["api"] != "todo" || cl["operation"] != c.op {
			t.Errorf("%s: audit calls %v, want api todo, operation %s", c.tool, calls, c.op)
		}
	}

	// Step-up: a read-only token is refused the write, 403 naming the
	// scope it holds and the one needed; the same session, given a token
	// with both, writes.
	carol := &swappableToken{token: login(t, ctx, d.Issuer, d.MCP, "bob", "openid offline_access todo_api:read")}
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.MCP, HTTPClient: &http.Client{Transport: carol}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "todo_createTodo", Arguments: map[string]any{"body": map[string]any{"todoText": "carol's"}}})
	if chal := carol.challenge(); err == nil || !strings.Contains(chal, "insufficient_scope") || !strings.Contains(chal, "todo_api:write") || !strings.Contains(chal, "todo_api:read") {
		t.Fatalf("a read-only token's write: %v, challenge %q", err, chal)
	}
	carol.set(login(t, ctx, d.Issuer, d.MCP, "bob", all))
	if out, isErr := call(t, ctx, cs, "todo_createTodo", map[string]any{"body": map[string]any{"todoText": "carol's"}}); isErr || !strings.Contains(out, "carol's") {
		t.Errorf("the write after step-up: %v %s", isErr, out)
	}
}

func firstOf(xs []any) any {
	if len(xs) == 0 {
		return nil
	}
	return xs[0]
}

// auditRecords awaits a tool-call record of each of tools in the audit log
// and returns the last of each tool's.
func auditRecords(t *testing.T, ctx context.Context, path string, tools ...string) map[string]map[string]any {
	t.Helper()
	var b []byte
	var recs map[string]map[string]any
	if !poll(ctx, func() bool {
		b, _ = os.ReadFile(path)
		recs = map[string]map[string]any{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["tool"] != nil {
				recs[m["tool"].(string)] = m
			}
		}
		return !slices.ContainsFunc(tools, func(tool string) bool { return recs[tool] == nil })
	}) {
		t.Fatalf("audit records of %v awaited: %q", tools, b)
	}
	return recs
}

// swappableToken is a bearer token a test can replace mid-session (a
// client that re-authorized), remembering the last challenge it was given.
type swappableToken struct {
	mu       sync.Mutex
	token    string
	lastChal string
}

func (s *swappableToken) set(token string) {
	s.mu.Lock()
	s.token = token
	s.mu.Unlock()
}

func (s *swappableToken) challenge() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastChal
}

func (s *swappableToken) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	token := s.token
	s.mu.Unlock()
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusForbidden {
		s.mu.Lock()
		s.lastChal = resp.Header.Get("WWW-Authenticate")
		s.mu.Unlock()
	}
	return resp, err
}

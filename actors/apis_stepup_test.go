package actors

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/openapi"
)

// The tools --apis makes from an OpenAPI document need the scopes of their
// operation's security, and the actor steps a read-only token up for a
// write as it does for the built-in Todo tools.
func TestAPIsToolsStepUp(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(doc, todoapi.Document, 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := openapi.New(t.Context(), []openapi.API{{Name: "todo", BaseURL: "https://todo.example", Document: doc,
		Include: openapi.Selector{Methods: []string{"GET", "POST"}}}}, openapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := &core{scopes: Config{Toolsets: []tools.Toolset{ts}}.toolScopes()}
	call := func(tool string, scopes ...string) *envelope.ResponsePart {
		req := &envelope.Request{Id: "r", Method: http.MethodPost, Resource: "https://mcp.example/mcp",
			Body:      []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`),
			Principal: &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: "c1", Scopes: scopes}}
		rb, err := reading(req)
		if err != nil {
			t.Fatal(err)
		}
		return a.checkScopes(req, rb)
	}
	if got := call("todo_listTodos", todoapi.ScopeRead); got != nil {
		t.Errorf("a read with the read scope refused: %d", got.Status)
	}
	got := call("todo_createTodo", todoapi.ScopeRead)
	if got == nil || got.Status != http.StatusForbidden {
		t.Fatalf("a write with the read scope alone: %+v", got)
	}
	h := http.Header{}
	envelope.ToHTTP(got.Headers, h)
	if chal := h.Get("WWW-Authenticate"); !strings.Contains(chal, `error="insufficient_scope"`) || !strings.Contains(chal, `scope="todo_api:read todo_api:write"`) {
		t.Errorf("challenge %q: want insufficient_scope naming the scope held and the one needed", chal)
	}
}

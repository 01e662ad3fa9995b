package todo

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools/toolstest"
)

// A delegated token the Todo API refuses (401: revoked at the
// authorization server before its expiry) is told refused, and the call is
// made once more with a token exchanged anew, which the API takes: the
// tool answers, and what it wrote was written once. An API that refuses
// every token is asked twice, not more, and the tool says it refused.
func TestRefusedTokenExchangedAnew(t *testing.T) {
	is := authtest.NewIssuer(t)
	api := httptest.NewUnstartedServer(nil)
	apiURL := "http://" + api.Listener.Addr().String()
	todos, err := todoapi.New(todoapi.Options{Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{apiURL}})})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	revoked := map[string]bool{}
	revokeAll := false
	seen := 0
	api.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		tok := r.Header.Get("Authorization")
		refuse := revokeAll || revoked[tok] || len(revoked) == 0
		if len(revoked) == 0 {
			revoked[tok] = true // the first token seen is revoked
		}
		mu.Unlock()
		if refuse {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		todos.ServeHTTP(w, r)
	})
	api.Start()
	defer api.Close()
	caller := &toolstest.Caller{T: t, Issuer: is, Subject: "alice", Scopes: []string{todoapi.ScopeRead, todoapi.ScopeWrite}}
	c := &calls{opts: New(Options{APIURL: apiURL}).(*toolset).opts, caller: caller}
	res, err := c.create(context.Background(), &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Arguments: json.RawMessage(`{"text":"once"}`)}})
	if err != nil || res.IsError {
		t.Fatalf("create_new_todo whose first token was revoked: %v %+v", err, res.Content[0])
	}
	var l todoapi.List
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &l); err != nil || len(l.Todos) != 1 {
		t.Errorf("the list after the create: %v %+v, want the one todo, written once", err, l.Todos)
	}
	if n, asked := caller.RefusedCount(), len(caller.Asked()); n != 1 || asked != 2 {
		t.Errorf("%d tokens told refused, %d delegations asked: want 1 and 2", n, asked)
	}

	mu.Lock()
	revokeAll, seen = true, 0
	mu.Unlock()
	res, err = c.list(context.Background(), nil)
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "401") {
		t.Errorf("get_my_todo_list where every token is refused: %v %+v, want a tool error naming 401", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen != 2 || caller.RefusedCount() != 3 {
		t.Errorf("the API was asked %d times and %d tokens told refused, want 2 and 3", seen, caller.RefusedCount())
	}
}

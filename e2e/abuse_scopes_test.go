package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth/authtest"
)

// Issue 11 item 8: scopes are not sidestepped.

// TestAbuseScopesWriteOnly: alice creates two todos with a read+write
// token, then logs in through the code flow asking for todo_api:write only
// and calls create_new_todo through /mcp of `pingmcp dev`. The whole tool
// result (text and structured content alike: the Todo tools answer text
// only, JSON of {"todos":[...]}) holds the todo just created and neither of
// the earlier ones; get_my_todo_list with that token is refused 403
// insufficient_scope naming todo_api:read, with the read+write token it
// shows all three (the control: the earlier todos do exist).
//
// At 03bb1f8 the create answered alice's whole list of three, so the
// assertions on the result fail there; the 403 of get_my_todo_list held
// already (the actor checks each tool's scopes) and stays a control here.
func TestAbuseScopesWriteOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := runDev(t)
	rw := connectAs(t, ctx, d.MCP, login(t, ctx, d.Issuer, d.MCP, "alice", "openid todo_api:read todo_api:write"))
	secrets := []string{"secret plan", "other secret"}
	for _, s := range secrets {
		if out, isErr := call(t, ctx, rw, "create_new_todo", map[string]any{"text": s}); isErr {
			t.Fatalf("create_new_todo with read and write: %s", out)
		}
	}

	writer := login(t, ctx, d.Issuer, d.MCP, "alice", "openid todo_api:write")
	ws := connectAs(t, ctx, d.MCP, writer)
	res, err := ws.CallTool(ctx, &mcp.CallToolParams{Name: "create_new_todo", Arguments: map[string]any{"text": "buy milk"}})
	if err != nil {
		t.Fatalf("create_new_todo with write only: %v", err)
	}
	whole, _ := json.Marshal(res)
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("create_new_todo with write only: %s", whole)
	}
	for _, s := range secrets {
		if strings.Contains(string(whole), s) {
			t.Errorf("create_new_todo with todo_api:write only shows %q, an earlier todo: %s", s, whole)
		}
	}
	onlyCreated := func(what string, raw []byte) {
		t.Helper()
		var l todoList
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Errorf("%s of create_new_todo is not a todo list: %v: %s", what, err, raw)
			return
		}
		if len(l.Todos) != 1 || l.Todos[0].Text != "buy milk" {
			t.Errorf("%s of create_new_todo with todo_api:write only holds %d todos %+v, want only the one created", what, len(l.Todos), l.Todos)
		}
	}
	text, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("create_new_todo answered %T, want text", res.Content[0])
	}
	onlyCreated("the text", []byte(text.Text))
	// The Todo tools give no structured content today; should they ever,
	// it must not show more than the text.
	if res.StructuredContent != nil {
		sc, _ := json.Marshal(res.StructuredContent)
		onlyCreated("the structured content", sc)
	}

	status, chal := rawToolCall(t, ctx, d.MCP, writer, ws.ID(), "get_my_todo_list", `{}`)
	if status != http.StatusForbidden || !strings.Contains(chal, `error="insufficient_scope"`) || !strings.Contains(chal, `scope="openid todo_api:read todo_api:write"`) {
		t.Errorf("get_my_todo_list with todo_api:write only: %d %q, want 403 insufficient_scope naming todo_api:read and the scope held", status, chal)
	}
	out, _ := call(t, ctx, rw, "get_my_todo_list", nil)
	var all todoList
	if json.Unmarshal([]byte(out), &all) != nil || len(all.Todos) != 3 {
		t.Errorf("get_my_todo_list with read and write: %s, want all three todos", out)
	}
	if d.logged(writer) || d.logged(writer[len(writer)-20:]) {
		t.Error("the write-only token appears in pingmcp's logs")
	}
}

// TestAbuseScopesMalformedClaim: `pingmcp serve` verifies JWTs of an issuer
// the test serves (discovery and JWKS over loopback). A token signed by
// that issuer's key whose exp is a string, or whose sub is an object, is
// refused 401 with error="invalid_token", and both the challenge and the
// process log name the malformed claim, not "signature does not verify"
// (which a token signed by another key does get: the control that the
// naming tells the two apart), and the log never holds a token. A
// well-formed token of the same issuer is accepted (the control that the
// issuer is reachable and its keys verify).
//
// At 03bb1f8 the naming fails: the verifier called a claim it could not
// decode a bad signature (in the challenge's error_description), and the
// edge logged no refused token at all. The 401 invalid_token held already
// and stays a control.
func TestAbuseScopesMalformedClaim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	is := authtest.NewIssuer(t)
	const resource = "https://pingmcp.example.test/mcp"
	n := startNode(t, "node", "--auth", "jwt", "--issuer", is.URL, "--resource", resource)

	if a := abuseInit(t, ctx, n.URL(), is.Token(t, is.Claims("alice", resource, "todo_api:read")), nil); a.status != http.StatusOK {
		t.Fatalf("a well-formed token of the issuer: %d %s", a.status, a.body)
	}
	// The last case is the control of the naming: a token signed by
	// another key is called badly signed, in the challenge and the log.
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		claim string
		value any
		want  string // the reason, in the challenge and the log
	}{
		{"exp", "4102444800", `malformed claim "exp": a string`},
		{"sub", map[string]any{"id": "alice"}, `malformed claim "sub": an object`},
		{"", nil, "signature does not verify"},
	}
	var tokens []string
	for _, tc := range cases {
		c := is.Claims("alice", resource, "todo_api:read")
		tok := ""
		if tc.claim == "" {
			tok = authtest.SignWith(t, jose.RS256, forger, "k1", c)
		} else {
			c[tc.claim] = tc.value
			tok = is.Token(t, c)
		}
		tokens = append(tokens, tok)
		a := abuseInit(t, ctx, n.URL(), tok, nil)
		chal := a.header.Get("WWW-Authenticate")
		if a.status != http.StatusUnauthorized || !strings.Contains(chal, `error="invalid_token"`) {
			t.Errorf("%q: %d %q, want 401 invalid_token", tc.want, a.status, chal)
		}
		// RFC 6750's attribute values take no '"' nor escape: the claim's
		// quotes come as '.
		if !strings.Contains(chal, strings.ReplaceAll(tc.want, `"`, `'`)) {
			t.Errorf("the challenge %q does not say %q", chal, tc.want)
		}
	}
	// Log lines travel through a pipe: await them, for a while only, so
	// that a process that logs none still reaches the assertions below.
	logs, stop := context.WithTimeout(ctx, 10*time.Second)
	n.awaitCount(logs, `"msg":"bearer token refused"`, len(cases))
	stop()
	var reasons []string // in the order of the requests, which were sequential
	n.mu.Lock()
	for _, l := range n.lines {
		var rec struct{ Msg, Error, Reason string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "bearer token refused" {
			reasons = append(reasons, rec.Error+": "+rec.Reason)
		}
	}
	n.mu.Unlock()
	if len(reasons) != len(cases) {
		t.Fatalf("the log holds %d refusals %q, want %d", len(reasons), reasons, len(cases))
	}
	for i, tc := range cases {
		if !strings.Contains(reasons[i], "invalid_token: "+tc.want) {
			t.Errorf("refusal %d logged as %q, want %q", i+1, reasons[i], tc.want)
		}
	}
	for i, tok := range tokens {
		if n.logged(tok) || n.logged(tok[len(tok)-20:]) {
			t.Errorf("the token of %q appears in the log", cases[i].want)
		}
	}
}

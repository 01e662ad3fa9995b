package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// devProcess is a running `pingmcp dev`: MCP node, development authorization
// server and Todo API in one process.
type devProcess struct {
	*node
	Issuer, TodoAPI, MCP string
}

// runDev starts `pingmcp dev` on free loopback ports and reads its URLs from
// the banner it prints, and its addresses from its start line.
func runDev(t *testing.T, args ...string) *devProcess {
	t.Helper()
	// No state file unless args name one: a test never writes to the
	// user's cache directory.
	all := append([]string{"dev", "--addr", "127.0.0.1:0", "--idp-addr", "127.0.0.1:0", "--todo-api-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--admin-token-file", adminTokenFile, "--dev-state", "off", "--log-format", "json", "--log-level", "debug"}, args...)
	n := &node{t: t, name: "dev", cmd: exec.Command(binary, all...)}
	stderr, _ := n.cmd.StderrPipe()
	stdout, _ := n.cmd.StdoutPipe()
	n.start()
	go n.read(stderr)
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			n.dump(80)
		}
	})
	d := &devProcess{node: n}
	banner := regexp.MustCompile(`^\s+(MCP URL|Log in|Todo API):\s+(\S+)`)
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			m := banner.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			switch m[1] {
			case "MCP URL":
				d.MCP = m[2]
			case "Log in":
				d.Issuer = m[2]
			case "Todo API":
				d.TodoAPI = m[2]
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case <-n.done:
		t.Fatalf("pingmcp dev exited: %v", n.cmd.ProcessState)
	case <-time.After(30 * time.Second):
		t.Fatal("pingmcp dev printed no banner")
	}
	// The banner (stdout) can come before the start line (stderr), which
	// follows the admin API's, is read.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.awaitCount(ctx, `"msg":"node started"`, 1)
	var rec struct{ HTTP, Cluster string }
	if err := json.Unmarshal([]byte(n.line(`"msg":"node started"`)), &rec); err != nil {
		t.Fatalf("pingmcp dev: no start line: %v", err)
	}
	n.HTTP, n.Cluster = rec.HTTP, rec.Cluster
	n.noteAdmin(all)
	return d
}

// exchanged counts the token exchanges of a node's actors.
const exchanged = `pingmcp_token_exchanges_total{result="exchanged"}`

// login runs the authorization code flow with PKCE as a browser and a public
// client would: dynamic registration, the login form, the code exchange. It
// returns the access token.
func login(t testing.TB, ctx context.Context, issuer, resource, user, scope string) string {
	t.Helper()
	tok, _ := loginGrant(t, ctx, issuer, resource, user, scope)
	return tok["access_token"].(string)
}

// loginGrant is login returning the token response (access and refresh
// token) and the client it registered, for a client that refreshes.
func loginGrant(t testing.TB, ctx context.Context, issuer, resource, user, scope string) (tokens map[string]any, clientID string) {
	t.Helper()
	const redirect = "http://127.0.0.1:9/callback"
	var reg struct {
		ClientID string `json:"client_id"`
	}
	postJSON(t, ctx, issuer+"/as/clients.oauth2", map[string]any{
		"client_name": "e2e", "redirect_uris": []string{redirect}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	}, &reg)
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "scope": {scope},
		"state": {"s1"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {resource},
	}
	callback := browserLogin(t, issuer+"/as/authorization.oauth2?"+q.Encode(), redirect, user)
	tok := map[string]any{}
	postForm(t, ctx, issuer+"/as/token.oauth2", url.Values{
		"grant_type": {"authorization_code"}, "code": {callback.Query().Get("code")}, "redirect_uri": {redirect},
		"client_id": {reg.ClientID}, "code_verifier": {verifier}, "resource": {resource},
	}, &tok)
	if access, _ := tok["access_token"].(string); access == "" {
		t.Fatalf("no access token for %s", user)
	}
	return tok, reg.ClientID
}

// browserLogin goes where a client sends the user (authURL, at the
// development authorization server), logs in as user (the password is the
// name) as a browser would, and returns the redirect URI with the code.
func browserLogin(t testing.TB, authURL, redirect, user string) *url.URL {
	t.Helper()
	// A browser follows redirects until it lands on the callback.
	var callback *url.URL
	browser := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			callback = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := regexp.MustCompile(`<form method="post" action="([^"]+)">\s*<input type="hidden" name="id" value="([^"]+)">`).FindSubmatch(page)
	if form == nil {
		t.Fatalf("no login form (status %d): %s", resp.StatusCode, page)
	}
	action, _ := url.Parse(strings.ReplaceAll(string(form[1]), "&amp;", "&"))
	resp, err = browser.PostForm(resp.Request.URL.ResolveReference(action).String(),
		url.Values{"id": {string(form[2])}, "username": {user}, "password": {user}, "action": {"login"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if callback == nil || callback.Query().Get("code") == "" {
		t.Fatalf("login as %s did not come back with a code (status %d)", user, resp.StatusCode)
	}
	return callback
}

func postJSON(t testing.TB, ctx context.Context, u string, body, out any) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	do(t, req, out)
}

func postForm(t testing.TB, ctx context.Context, u string, form url.Values, out any) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	do(t, req, out)
}

func do(t testing.TB, req *http.Request, out any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", req.URL, err)
	}
}

// bearerTransport adds a bearer token to every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func connectAs(t testing.TB, ctx context.Context, url, token string) *mcp.ClientSession {
	return connectVersion(t, ctx, url, token, "2025-11-25")
}

// connectVersion connects speaking protocol version (2026-07-28: stateless).
func connectVersion(t testing.TB, ctx context.Context, url, token, version string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearerTransport{token}}, MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// connectQuiet connects without a standalone SSE stream: a client whose
// node goes away then has nothing to give its session up over (the go-sdk
// client deletes its session when a stream cannot be resumed).
func connectQuiet(t testing.TB, ctx context.Context, url, token string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearerTransport{token}}, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call runs a tool and returns its text, failing the test on a protocol
// error; tool errors come back with isError set.
func call(t testing.TB, ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	return strings.Join(text, "\n"), res.IsError
}

type todoList struct {
	Todos []struct {
		ID        string
		Text      string
		Completed bool
	}
}

// TestTodoToolsDelegated logs two users in through the development
// authorization server and drives the six tools: each call reaches the Todo
// API with an exchanged token (act names pingmcp), users see only their own
// todos, no tool shows a token, and a token without write scope is told to
// step up.
func TestTodoToolsDelegated(t *testing.T) {
	for _, mode := range []string{"jwt", "introspection"} {
		t.Run(mode, func(t *testing.T) { testTodoTools(t, mode) })
	}
}

func testTodoTools(t *testing.T, authMode string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := runDev(t, "--auth", authMode)
	const all = "openid offline_access todo_api:read todo_api:write"
	alice := login(t, ctx, d.Issuer, d.MCP, "alice", all)
	bob := login(t, ctx, d.Issuer, d.MCP, "bob", all)
	as := connectAs(t, ctx, d.MCP, alice)
	bs := connectAs(t, ctx, d.MCP, bob)

	tools, err := as.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"who_am_I", "peek_api_token", "get_my_todo_list", "create_new_todo", "toggle_todo_status", "delete_todo"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("tool %s missing from %v", want, names)
		}
	}

	who, isErr := call(t, ctx, as, "who_am_I", nil)
	if isErr || !strings.Contains(who, `"sub": "alice"`) {
		t.Errorf("who_am_I: %s", who)
	}
	peek, isErr := call(t, ctx, as, "peek_api_token", nil)
	if isErr || !strings.Contains(peek, `"act"`) || !strings.Contains(peek, `"sub": "pingmcp"`) || !strings.Contains(peek, d.TodoAPI) {
		t.Errorf("peek_api_token: %s", peek)
	}

	out, isErr := call(t, ctx, as, "create_new_todo", map[string]any{"text": "buy milk"})
	var list todoList
	if isErr || json.Unmarshal([]byte(out), &list) != nil || len(list.Todos) != 1 || list.Todos[0].Text != "buy milk" {
		t.Fatalf("create_new_todo: %s", out)
	}
	id := list.Todos[0].ID
	out, _ = call(t, ctx, as, "toggle_todo_status", map[string]any{"todoId": id, "completed": true})
	if json.Unmarshal([]byte(out), &list) != nil || !list.Todos[0].Completed {
		t.Fatalf("toggle_todo_status: %s", out)
	}
	out, _ = call(t, ctx, bs, "get_my_todo_list", nil)
	if strings.Contains(out, id) || strings.Contains(out, "buy milk") {
		t.Errorf("bob sees alice's todo: %s", out)
	}
	if out, isErr := call(t, ctx, bs, "delete_todo", map[string]any{"todoId": id}); !isErr || !strings.Contains(out, "404") {
		t.Errorf("bob deleting alice's todo: %v %s", isErr, out)
	}
	if out, isErr := call(t, ctx, as, "delete_todo", map[string]any{"todoId": "../../admin"}); !isErr || !strings.Contains(out, "not a todo id") {
		t.Errorf("path injection: %v %s", isErr, out)
	}
	// A create retried with the same requestKey adds the todo once.
	for range 2 {
		out, isErr = call(t, ctx, as, "create_new_todo", map[string]any{"text": "once", "requestKey": "e2e-once-1"})
		if isErr || json.Unmarshal([]byte(out), &list) != nil || len(list.Todos) != 2 {
			t.Fatalf("create_new_todo with a requestKey: %s", out)
		}
	}
	call(t, ctx, as, "delete_todo", map[string]any{"todoId": list.Todos[0].ID})
	out, _ = call(t, ctx, as, "delete_todo", map[string]any{"todoId": id})
	if json.Unmarshal([]byte(out), &list) != nil || len(list.Todos) != 0 {
		t.Errorf("delete_todo: %s", out)
	}

	// The stateless protocol reaches the same list through alice's principal
	// actor, with her token, and bob's through his.
	stateless := connectVersion(t, ctx, d.MCP, alice, "2026-07-28")
	if stateless.ID() != "" {
		t.Errorf("stateless session has an id %q", stateless.ID())
	}
	if out, isErr := call(t, ctx, stateless, "create_new_todo", map[string]any{"text": "stateless"}); isErr || !strings.Contains(out, "stateless") {
		t.Errorf("stateless create: %s", out)
	}
	if out, _ := call(t, ctx, as, "get_my_todo_list", nil); !strings.Contains(out, "stateless") {
		t.Errorf("alice's session does not see her stateless todo: %s", out)
	}
	if out, _ := call(t, ctx, connectVersion(t, ctx, d.MCP, bob, "2026-07-28"), "get_my_todo_list", nil); strings.Contains(out, "stateless") {
		t.Errorf("bob's stateless view shows alice's todo: %s", out)
	}

	// One exchange per session (and per principal actor) served every call
	// above: the cache works.
	if got := d.awaitMetric(ctx, exchanged, 4); got != 4 {
		t.Errorf("%v token exchanges for two sessions and two principals, want 4", got)
	}

	// A token without todo_api:write gets 403 insufficient_scope on a write
	// tool, naming the scopes it holds plus the one to step up to; reads
	// still work.
	reader := login(t, ctx, d.Issuer, d.MCP, "alice", "openid todo_api:read")
	rs := connectAs(t, ctx, d.MCP, reader)
	if _, isErr := call(t, ctx, rs, "get_my_todo_list", nil); isErr {
		t.Error("read-only token cannot read")
	}
	// A principal's first stateless request may be a tool call: its actor
	// holds the caller's token from that request on.
	fresh := login(t, ctx, d.Issuer, d.MCP, "alice", "openid todo_api:read")
	if code, body := rawStatelessCall(t, ctx, d.MCP, fresh, "get_my_todo_list"); code != http.StatusOK || !strings.Contains(body, "todos") || strings.Contains(body, `"isError":true`) {
		t.Errorf("first stateless request a tool call: %d %s", code, body)
	}
	status, chal := rawToolCall(t, ctx, d.MCP, reader, rs.ID(), "create_new_todo", `{"text":"x"}`)
	if status != http.StatusForbidden || !strings.Contains(chal, `error="insufficient_scope"`) || !strings.Contains(chal, `scope="openid todo_api:read todo_api:write"`) {
		t.Errorf("write with a read-only token: %d %q, want the scopes held and todo_api:write", status, chal)
	}

	// No token value anywhere in pingmcp's output.
	for name, tok := range map[string]string{"alice": alice, "bob": bob, "reader": reader} {
		if d.logged(tok) || d.logged(tok[len(tok)-20:]) {
			t.Errorf("%s's token appears in pingmcp's logs", name)
		}
	}
	if strings.Contains(who+peek, alice[len(alice)-20:]) {
		t.Error("a tool result contains the token")
	}
}

// statelessCallRequest is a 2026-07-28 tools/call of tool (no arguments)
// with token, as a client sends it.
func statelessCallRequest(ctx context.Context, u, token, tool string) *http.Request {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":%q,"arguments":{},`+
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`, tool)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", tool)
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

func rawStatelessCall(t testing.TB, ctx context.Context, u, token, tool string) (int, string) {
	resp, err := http.DefaultClient.Do(statelessCallRequest(ctx, u, token, tool))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func rawToolCall(t *testing.T, ctx context.Context, u, token, session, tool, args string) (int, string) {
	resp := postWithToken(t, ctx, u, token, session, fmt.Sprintf(`{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, tool, args))
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// postWithToken sends body on session with token (sessionPost) and returns
// the response, its body closed.
func postWithToken(t testing.TB, ctx context.Context, u, token, session, body string) *http.Response {
	resp, err := http.DefaultClient.Do(sessionPost(ctx, u, session, token, body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/logtest"
)

// TestOfficialSDKClientOAuth drives pingmcp dev with a real OAuth MCP client
// that no one here wrote: the official TypeScript SDK (e2e/oauthclient, under
// Node.js 22). It discovers the authorization server from the 401, registers
// itself (RFC 7591), logs in through the login form with PKCE, initializes
// and lists the tools, as alice and then as bob. With the Todo toolset (the
// default) it then drives the six tools: alice's todo is created, listed,
// toggled and deleted through them, bob never sees it, who_am_I and
// peek_api_token describe the caller and the delegated token without showing
// either. No token value may appear in any output, the client's or pingmcp's.
//
// PINGMCP_OAUTH_E2E_TOOLS=conformance runs the OAuth part only, against the
// conformance toolset (test_simple_text as the tool call): for a build
// without the Todo toolset.
func TestOfficialSDKClientOAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	toolset := cmp.Or(os.Getenv("PINGMCP_OAUTH_E2E_TOOLS"), "todo")
	if toolset != "todo" && toolset != "conformance" {
		t.Fatalf("PINGMCP_OAUTH_E2E_TOOLS=%q: want todo (the default) or conformance", toolset)
	}
	nodeBin := installSDKClient(t, ctx)

	d := runDev(t, "--tools", toolset)
	mcpURL, err := url.Parse(d.MCP)
	if err != nil {
		t.Fatalf("MCP URL %q: %v", d.MCP, err)
	}
	d.HTTP = mcpURL.Host
	d.awaitMembers(ctx, 1)
	as := fetchASMetadata(t, ctx, d.Issuer)

	alice := startSDKClient(t, ctx, nodeBin, d.MCP, "alice")
	alice.checkOAuth(d.MCP, d.Issuer, as)
	bob := startSDKClient(t, ctx, nodeBin, d.MCP, "bob")
	bob.checkOAuth(d.MCP, d.Issuer, as)
	if alice.clientID == bob.clientID {
		t.Errorf("alice and bob share the client id %s: each client run registers its own", alice.clientID)
	}

	switch toolset {
	case "conformance":
		for _, c := range []*sdkClient{alice, bob} {
			c.wantTools("test_simple_text")
			const want = "This is a simple text response for testing."
			if got := c.call(ctx, "test_simple_text", nil).text(); got != want {
				t.Errorf("%s: test_simple_text = %q, want %q", c.user, got, want)
			}
		}
	case "todo":
		checkTodoTools(t, ctx, d.MCP, d.TodoAPI, alice, bob)
	}

	// The refresh token works (rotation), and the session goes on with the
	// new access token.
	for _, c := range []*sdkClient{alice, bob} {
		c.refresh(ctx)
		if toolset == "todo" {
			c.call(ctx, "who_am_I", nil)
		} else {
			c.call(ctx, "test_simple_text", nil)
		}
	}

	// The MCP token is for /mcp only: the Todo API refuses it, so whatever
	// the tools did there was done with an exchanged token.
	if status := getWithToken(t, ctx, d.TodoAPI+"/api/todos", alice.tokens()[0]); status != http.StatusUnauthorized {
		t.Errorf("the Todo API answered %d to alice's MCP access token, want 401", status)
	}

	alice.finish(ctx)
	bob.finish(ctx)

	// No token, whole or in part, in anything printed: the clients' output,
	// pingmcp's logs, tool results included. A finding names the line, not
	// what it holds.
	type output struct{ where, text string }
	var outputs []output
	for _, c := range []*sdkClient{alice, bob} {
		for i, l := range c.stdout() {
			outputs = append(outputs, output{fmt.Sprintf("%s's client, stdout line %d", c.user, i+1), l})
		}
		outputs = append(outputs, output{c.user + "'s client, stderr", c.stderr.String()})
	}
	d.mu.Lock()
	for i, l := range d.lines {
		outputs = append(outputs, output{fmt.Sprintf("pingmcp's log, line %d", i+1), l})
	}
	d.mu.Unlock()
	for _, c := range []*sdkClient{alice, bob} {
		toks := c.tokens()
		if len(toks) < 4 {
			t.Errorf("%s's client saved %d tokens, want an access and a refresh token before and after the refresh", c.user, len(toks))
		}
		for i, tok := range toks {
			for _, out := range outputs {
				if strings.Contains(out.text, tok) || strings.Contains(out.text, tok[len(tok)-16:]) {
					t.Errorf("%s's token #%d appears in %s", c.user, i, out.where)
				}
			}
		}
	}
	for _, out := range outputs {
		if jwtShape.MatchString(out.text) {
			t.Errorf("a JWT appears in %s", out.where)
		}
	}
}

// jwtShape matches a JWT: a base64url JSON header and payload.
var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)

// checkTodoTools drives the six Todo tools as alice and bob.
func checkTodoTools(t *testing.T, ctx context.Context, mcpURL, todoAPI string, alice, bob *sdkClient) {
	six := []string{"who_am_I", "peek_api_token", "get_my_todo_list", "create_new_todo", "toggle_todo_status", "delete_todo"}
	alice.wantTools(six...)
	bob.wantTools(six...)

	// who_am_I describes the caller's own token (for /mcp); peek_api_token
	// the one the tools use downstream: the Todo API's, delegated (act).
	for _, c := range []*sdkClient{alice, bob} {
		who := c.call(ctx, "who_am_I", nil).text()
		var claims map[string]any
		if json.Unmarshal([]byte(who), &claims) != nil || claims["sub"] != c.user || !audienceIs(claims["aud"], mcpURL) {
			t.Errorf("%s: who_am_I does not describe %s's token for %s: %s", c.user, c.user, mcpURL, who)
		}
	}
	peek := alice.call(ctx, "peek_api_token", nil).text()
	var api map[string]any
	if json.Unmarshal([]byte(peek), &api) != nil {
		t.Errorf("peek_api_token is not a JSON claim set: %s", peek)
	}
	act, _ := api["act"].(map[string]any)
	if api["sub"] != "alice" || !audienceIs(api["aud"], todoAPI) || act == nil || act["sub"] == nil || act["sub"] == "alice" {
		t.Errorf("peek_api_token does not show a token for %s delegated to pingmcp (act) for alice: %s", todoAPI, peek)
	}

	text := "e2e: bought milk through the official SDK client"
	created := alice.call(ctx, "create_new_todo", map[string]any{"text": text}).text()
	todo, ok := findTodo(created, text)
	if !ok || todo.ID == "" {
		t.Fatalf("create_new_todo answered no todo %q: %s", text, created)
	}
	if todo, ok := findTodo(alice.call(ctx, "get_my_todo_list", nil).text(), text); !ok || todo.Completed {
		t.Errorf("alice's list: todo %q present %v, completed %v; want present, not completed", text, ok, todo.Completed)
	}
	alice.call(ctx, "toggle_todo_status", map[string]any{"todoId": todo.ID, "completed": true})
	if todo, ok := findTodo(alice.call(ctx, "get_my_todo_list", nil).text(), text); !ok || !todo.Completed {
		t.Errorf("alice's list after toggling: todo %q present %v, completed %v; want completed", text, ok, todo.Completed)
	}

	if list := bob.call(ctx, "get_my_todo_list", nil).text(); strings.Contains(list, todo.ID) || strings.Contains(list, text) {
		t.Errorf("bob sees alice's todo: %s", list)
	}
	if res := bob.callAllowingError(ctx, "toggle_todo_status", map[string]any{"todoId": todo.ID, "completed": false}); !res.IsError {
		t.Errorf("bob toggled alice's todo: %s", res.text())
	}
	if res := bob.callAllowingError(ctx, "delete_todo", map[string]any{"todoId": todo.ID}); !res.IsError {
		t.Errorf("bob deleted alice's todo: %s", res.text())
	}

	alice.call(ctx, "delete_todo", map[string]any{"todoId": todo.ID})
	if _, ok := findTodo(alice.call(ctx, "get_my_todo_list", nil).text(), text); ok {
		t.Errorf("alice's todo %q is still listed after delete_todo", text)
	}
}

type todoItem struct {
	ID        string `json:"id"`
	Text      string `json:"text"`
	Completed bool   `json:"completed"`
}

// findTodo looks for the todo with text in a tool's JSON answer, whatever
// its shape (a todo, a list, an object holding a list).
func findTodo(answer, text string) (todoItem, bool) {
	var v any
	if json.Unmarshal([]byte(answer), &v) != nil {
		return todoItem{}, false
	}
	var found *todoItem
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["text"] == text {
				var it todoItem
				b, _ := json.Marshal(v)
				if json.Unmarshal(b, &it) == nil && found == nil {
					found = &it
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	if found == nil {
		return todoItem{}, false
	}
	return *found, true
}

// installSDKClient runs e2e/oauthclient/install.sh (Node.js 22 and the SDK
// into the cache) and returns the node binary. No Node.js is a failure, not
// a skip: this test is the acceptance test.
func installSDKClient(t *testing.T, ctx context.Context) string {
	t.Helper()
	ictx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ictx, "bash", filepath.Join("oauthclient", "install.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("install the SDK client (e2e/oauthclient/install.sh): %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// fetchASMetadata reads the issuer's RFC 8414 metadata, to know the
// endpoints the client must have used.
func fetchASMetadata(t *testing.T, ctx context.Context, issuer string) asMetadata {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/.well-known/oauth-authorization-server", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md asMetadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("authorization server metadata: %d %v", resp.StatusCode, err)
	}
	return md
}

type asMetadata struct {
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	RegistrationEndpoint  string `json:"registration_endpoint"`
	// ClientIDMetadataDocumentSupported: CIMD (e2e/cimd_test.go).
	ClientIDMetadataDocumentSupported bool `json:"client_id_metadata_document_supported"`
}

func getWithToken(t *testing.T, ctx context.Context, u, token string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// sdkClient is one run of e2e/oauthclient/client.mjs as one user: it reads
// steps from stdin and answers each with JSON lines on stdout.
type sdkClient struct {
	t        *testing.T
	user     string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	events   chan sdkEvent
	stderr   *logtest.Buffer
	tokFile  string
	clientID string

	mu    sync.Mutex
	lines []string
	seen  []sdkEvent // up to the tools list after initialize
}

// sdkEvent is one line the client printed; which fields are set depends
// on Event (see client.mjs).
type sdkEvent struct {
	Event string `json:"event"`
	// http
	Method          string `json:"method"`
	URL             string `json:"url"`
	Status          int    `json:"status"`
	WWWAuthenticate string `json:"wwwAuthenticate"`
	ContentType     string `json:"contentType"` // with --post-accept
	// oauth
	Stage                   string         `json:"stage"`
	ClientID                string         `json:"clientId"`
	HasClientSecret         bool           `json:"hasClientSecret"`
	TokenEndpointAuthMethod string         `json:"tokenEndpointAuthMethod"`
	GrantTypes              []string       `json:"grantTypes"`
	Endpoint                string         `json:"endpoint"`
	ResponseType            string         `json:"responseType"`
	CodeChallengeMethod     string         `json:"codeChallengeMethod"`
	HasCodeChallenge        bool           `json:"hasCodeChallenge"`
	CodeVerifierLength      int            `json:"codeVerifierLength"`
	HasState                bool           `json:"hasState"`
	StateMatches            bool           `json:"stateMatches"`
	Resource                string         `json:"resource"`
	Action                  string         `json:"action"`
	User                    string         `json:"user"`
	HasAccessToken          bool           `json:"hasAccessToken"`
	HasRefreshToken         bool           `json:"hasRefreshToken"`
	AccessTokenClaims       map[string]any `json:"accessTokenClaims"`
	// initialized, tools, result, error
	ProtocolVersion string `json:"protocolVersion"`
	ServerInfo      struct {
		Name string `json:"name"`
	} `json:"serverInfo"`
	Names   []string `json:"names"`
	Tool    string   `json:"tool"`
	IsError bool     `json:"isError"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Message string `json:"message"`

	// result: the Mcp-Session-Id the call was made on, and how many
	// connections the client had opened to the MCP server by its end
	SessionID   string `json:"sessionId"`
	Connections int    `json:"connections"`
}

// text joins a tool result's text contents.
func (e sdkEvent) text() string {
	var parts []string
	for _, c := range e.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// startSDKClient starts the client as user and returns once it has
// initialized and listed the tools (the OAuth flow done on the way). extra
// are more options of client.mjs.
func startSDKClient(t *testing.T, ctx context.Context, nodeBin, mcpURL, user string, extra ...string) *sdkClient {
	t.Helper()
	c := &sdkClient{
		t:       t,
		user:    user,
		events:  make(chan sdkEvent, 1024),
		stderr:  &logtest.Buffer{},
		tokFile: filepath.Join(t.TempDir(), "tokens.json"),
	}
	c.cmd = exec.CommandContext(ctx, nodeBin, append([]string{filepath.Join("oauthclient", "client.mjs"),
		"--url", mcpURL, "--user", user, "--tokens-file", c.tokFile}, extra...)...)
	c.cmd.Env = append(os.Environ(), "OAUTHCLIENT_PASSWORD="+user) // the development users' passwords are their names
	c.cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start the SDK client: %v", err)
	}
	go c.read(stdout)
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- SDK client as %s: stdout", user)
			for _, l := range c.stdout() {
				t.Log(l)
			}
			t.Logf("--- SDK client as %s: stderr\n%s", user, c.stderr.String())
		}
	})
	c.seen = c.until(ctx, "tools")
	return c
}

func (c *sdkClient) read(r io.Reader) {
	defer close(c.events)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		c.mu.Lock()
		c.lines = append(c.lines, line)
		c.mu.Unlock()
		var e sdkEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			e = sdkEvent{Event: "error", Message: fmt.Sprintf("unparsable line %q: %v", line, err)}
		}
		c.events <- e
	}
}

func (c *sdkClient) stdout() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// until returns the events up to and including the next of kind event. An
// error event, the client's exit or ctx's end fails the test.
func (c *sdkClient) until(ctx context.Context, event string) []sdkEvent {
	c.t.Helper()
	var got []sdkEvent
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				c.t.Fatalf("SDK client as %s ended before %q: %v\n%s", c.user, event, c.cmd.Wait(), c.stderr.String())
			}
			if e.Event == "error" {
				c.t.Fatalf("SDK client as %s: %s", c.user, e.Message)
			}
			got = append(got, e)
			if e.Event == event {
				return got
			}
		case <-ctx.Done():
			c.t.Fatalf("SDK client as %s: no %q: %v", c.user, event, ctx.Err())
		}
	}
}

func (c *sdkClient) send(step map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(step)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("SDK client as %s: send step: %v", c.user, err)
	}
}

// call runs a tool; a tool error fails the test.
func (c *sdkClient) call(ctx context.Context, tool string, args map[string]any) sdkEvent {
	c.t.Helper()
	c.send(map[string]any{"call": tool, "arguments": args})
	evs := c.until(ctx, "result")
	return evs[len(evs)-1]
}

// callAllowingError runs a tool that may answer with a tool error.
func (c *sdkClient) callAllowingError(ctx context.Context, tool string, args map[string]any) sdkEvent {
	c.t.Helper()
	c.send(map[string]any{"call": tool, "arguments": args, "allowError": true})
	evs := c.until(ctx, "result")
	return evs[len(evs)-1]
}

// refresh has the SDK refresh the tokens with its refresh token.
func (c *sdkClient) refresh(ctx context.Context) {
	c.t.Helper()
	c.send(map[string]any{"refresh": true})
	evs := c.until(ctx, "refreshed")
	var posted, saved bool
	for _, e := range evs {
		posted = posted || (e.Event == "http" && e.Method == http.MethodPost && strings.HasSuffix(e.URL, "/as/token.oauth2") && e.Status == http.StatusOK)
		saved = saved || (e.Event == "oauth" && e.Stage == "tokens" && e.HasAccessToken && e.HasRefreshToken)
	}
	if !posted || !saved {
		c.t.Errorf("%s: refresh posted to the token endpoint %v, got new tokens %v", c.user, posted, saved)
	}
}

// finish closes the client's stdin: it ends the session and must exit 0.
func (c *sdkClient) finish(ctx context.Context) {
	c.t.Helper()
	c.stdin.Close()
	c.until(ctx, "done")
	for range c.events { // to EOF, so that Wait does not race the reader
	}
	if err := c.cmd.Wait(); err != nil {
		c.t.Errorf("SDK client as %s exited: %v\n%s", c.user, err, c.stderr.String())
	}
}

// tokens are the tokens the client obtained (access, refresh; in order).
func (c *sdkClient) tokens() []string {
	c.t.Helper()
	b, err := os.ReadFile(c.tokFile)
	if err != nil {
		c.t.Fatalf("%s: tokens file: %v", c.user, err)
	}
	var f struct {
		Tokens []struct{ Kind, Value string }
	}
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("%s: tokens file: %v", c.user, err)
	}
	var out []string
	for _, tk := range f.Tokens {
		if len(tk.Value) < 16 {
			c.t.Fatalf("%s: a %s of %d characters", c.user, tk.Kind, len(tk.Value))
		}
		out = append(out, tk.Value)
	}
	return out
}

// wantTools checks that the tools listed after initialize include names.
func (c *sdkClient) wantTools(names ...string) {
	c.t.Helper()
	listed := c.seen[len(c.seen)-1].Names
	for _, n := range names {
		if !slices.Contains(listed, n) {
			c.t.Errorf("%s: tool %s not listed: %v", c.user, n, listed)
		}
	}
}

// checkOAuth checks, in the events up to the tools list, that the SDK
// went through the whole flow in order: 401 with a challenge naming the
// resource metadata, RFC 9728 then RFC 8414 discovery, registration at the
// registration endpoint the metadata names, an authorization request with
// PKCE S256 and state for the MCP resource, the login form, the code
// exchange, then initialize with the token.
func (c *sdkClient) checkOAuth(mcpURL, issuer string, as asMetadata) {
	t := c.t
	t.Helper()
	u, _ := url.Parse(mcpURL)
	prm := u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + u.Path
	next := 0
	// expect finds the first event from where the last one was found that
	// matches, and fails with what when there is none.
	expect := func(what string, match func(sdkEvent) bool) sdkEvent {
		t.Helper()
		for i := next; i < len(c.seen); i++ {
			if match(c.seen[i]) {
				next = i + 1
				return c.seen[i]
			}
		}
		t.Fatalf("%s: the SDK client did not %s (in order)", c.user, what)
		return sdkEvent{}
	}
	http401 := expect("get 401 from its first POST to /mcp", func(e sdkEvent) bool {
		return e.Event == "http" && e.Method == http.MethodPost && e.URL == mcpURL
	})
	if http401.Status != http.StatusUnauthorized || !strings.Contains(http401.WWWAuthenticate, `resource_metadata="`+prm+`"`) ||
		!strings.Contains(http401.WWWAuthenticate, `scope="`) {
		t.Errorf("%s: first answer from /mcp: %d, WWW-Authenticate %q", c.user, http401.Status, http401.WWWAuthenticate)
	}
	expect("fetch the protected-resource metadata "+prm, func(e sdkEvent) bool {
		return e.Event == "http" && e.Method == http.MethodGet && e.URL == prm && e.Status == http.StatusOK
	})
	expect("fetch the authorization server's metadata", func(e sdkEvent) bool {
		return e.Event == "http" && e.Method == http.MethodGet && e.Status == http.StatusOK &&
			(e.URL == issuer+"/.well-known/oauth-authorization-server" || e.URL == issuer+"/.well-known/openid-configuration")
	})
	expect("register at "+as.RegistrationEndpoint, func(e sdkEvent) bool {
		return e.Event == "http" && e.Method == http.MethodPost && e.URL == as.RegistrationEndpoint && e.Status == http.StatusCreated
	})
	reg := expect("record its registration", func(e sdkEvent) bool { return e.Event == "oauth" && e.Stage == "registered" })
	if reg.ClientID == "" || reg.HasClientSecret || reg.TokenEndpointAuthMethod != "none" ||
		!slices.Contains(reg.GrantTypes, "authorization_code") || !slices.Contains(reg.GrantTypes, "refresh_token") {
		t.Errorf("%s: registered as %+v; want a public client for authorization_code and refresh_token", c.user, reg)
	}
	c.clientID = reg.ClientID
	pkce := expect("make a PKCE verifier", func(e sdkEvent) bool { return e.Event == "oauth" && e.Stage == "pkce" })
	if pkce.CodeVerifierLength < 43 {
		t.Errorf("%s: PKCE verifier of %d characters", c.user, pkce.CodeVerifierLength)
	}
	authz := expect("send the user to the authorization endpoint", func(e sdkEvent) bool { return e.Event == "oauth" && e.Stage == "authorize" })
	if authz.Endpoint != as.AuthorizationEndpoint || authz.ResponseType != "code" || authz.ClientID != reg.ClientID ||
		authz.CodeChallengeMethod != "S256" || !authz.HasCodeChallenge || !authz.HasState || authz.Resource != mcpURL {
		t.Errorf("%s: authorization request %+v", c.user, authz)
	}
	form := expect("fill in the login form", func(e sdkEvent) bool { return e.Event == "oauth" && e.Stage == "login form" })
	if !strings.HasPrefix(form.Action, issuer+"/") || form.User != c.user {
		t.Errorf("%s: login form %+v", c.user, form)
	}
	expect("come back to its redirect URI with a code and its state", func(e sdkEvent) bool {
		return e.Event == "oauth" && e.Stage == "code" && e.StateMatches
	})
	expect("redeem the code at "+as.TokenEndpoint, func(e sdkEvent) bool {
		return e.Event == "http" && e.Method == http.MethodPost && e.URL == as.TokenEndpoint && e.Status == http.StatusOK
	})
	tok := expect("get tokens", func(e sdkEvent) bool { return e.Event == "oauth" && e.Stage == "tokens" })
	claims := tok.AccessTokenClaims
	if !tok.HasAccessToken || !tok.HasRefreshToken || claims["sub"] != c.user || claims["client_id"] != reg.ClientID ||
		claims["iss"] != issuer || !audienceIs(claims["aud"], mcpURL) {
		t.Errorf("%s: tokens %+v", c.user, tok)
	}
	initialize := expect("initialize with the token", func(e sdkEvent) bool {
		return e.Event == "http" && e.Method == http.MethodPost && e.URL == mcpURL
	})
	if initialize.Status != http.StatusOK {
		t.Errorf("%s: initialize with the token answered %d", c.user, initialize.Status)
	}
	ready := expect("finish initializing", func(e sdkEvent) bool { return e.Event == "initialized" })
	if ready.ProtocolVersion == "" || ready.ServerInfo.Name != "pingmcp" {
		t.Errorf("%s: initialized %+v", c.user, ready)
	}
	for _, e := range c.seen[next:] {
		if e.Event == "http" && e.Status == http.StatusUnauthorized {
			t.Errorf("%s: %s %s answered 401 after the login", c.user, e.Method, e.URL)
		}
	}
}

func audienceIs(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return len(a) == 1 && a[0] == want
	}
	return false
}

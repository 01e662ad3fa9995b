package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Step-up (issue 12 item 3). pingmcp dev runs with --scopes todo_api:read:
// clients are asked for read first, and step up to write when a tool needs
// it (least privilege, as the MCP authorization spec's scope challenges
// intend).

// TestStepUpTypeScriptSDK: the official TypeScript SDK client logs in
// read-only, reads, then calls a write tool: the 403 insufficient_scope
// names read and write, the SDK re-authorizes once with exactly that (the
// same registered client: the development authorization server lets it
// add write), the write succeeds, and a read after it needs no new login.
// One session throughout.
func TestStepUpTypeScriptSDK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	d := runDev(t, "--scopes", "todo_api:read")

	// Registered without the refresh_token grant: with a refresh token,
	// the SDK (1.32) answers a 403 insufficient_scope by refreshing, which
	// cannot widen the scope (RFC 6749 §6), and gives up (upstream
	// typescript-sdk issue 2255); without one it re-authorizes.
	alice := startSDKClient(t, ctx, nodeBin, d.MCP, "alice", "--grant-types", "authorization_code")
	first := lastTokens(alice.seen)
	if first == nil || first.AccessTokenClaims["scope"] != "todo_api:read" {
		t.Fatalf("first login: tokens %+v, want the scope todo_api:read", first)
	}

	alice.send(map[string]any{"call": "get_my_todo_list"})
	read := alice.until(ctx, "result")
	session := read[len(read)-1].SessionID
	if session == "" || read[len(read)-1].IsError {
		t.Fatalf("read-only read: %+v", read[len(read)-1])
	}

	alice.send(map[string]any{"call": "create_new_todo", "arguments": map[string]any{"text": "stepped up"}})
	wrote := alice.until(ctx, "result")
	var challenges []string
	var logins, registrations int
	for _, e := range wrote {
		switch {
		case e.Event == "http" && e.Status == http.StatusForbidden:
			challenges = append(challenges, e.WWWAuthenticate)
		case e.Event == "oauth" && e.Stage == "authorize":
			logins++
		case e.Event == "oauth" && e.Stage == "registered":
			registrations++
		}
	}
	if len(challenges) != 1 || !strings.Contains(challenges[0], `error="insufficient_scope"`) || !strings.Contains(challenges[0], `scope="todo_api:read todo_api:write"`) {
		t.Errorf("write with a read-only token: challenges %q, want one insufficient_scope naming todo_api:read todo_api:write", challenges)
	}
	stepped := lastTokens(wrote)
	if logins != 1 || registrations != 0 || stepped == nil || stepped.AccessTokenClaims["scope"] != "todo_api:read todo_api:write" ||
		stepped.AccessTokenClaims["client_id"] != first.AccessTokenClaims["client_id"] {
		t.Errorf("step-up: %d logins, %d registrations, tokens %+v; want one login of the same client for read and write", logins, registrations, stepped)
	}
	if r := wrote[len(wrote)-1]; r.IsError || r.SessionID != session {
		t.Errorf("write after the step-up: error %v, session changed %v", r.IsError, r.SessionID != session)
	}

	// Reading again: no challenge, no login, the todo written is there.
	alice.send(map[string]any{"call": "get_my_todo_list"})
	again := alice.until(ctx, "result")
	for _, e := range again {
		if (e.Event == "http" && e.Status == http.StatusForbidden) || (e.Event == "oauth" && e.Stage == "authorize") {
			t.Errorf("reading after the step-up bounced: %+v", e)
		}
	}
	if r := again[len(again)-1]; r.IsError || r.SessionID != session || !strings.Contains(r.text(), "stepped up") {
		t.Errorf("read after the step-up: error %v, session changed %v, %q", r.IsError, r.SessionID != session, r.text())
	}
	alice.finish(ctx)
}

// lastTokens is the last tokens the client saved among evs.
func lastTokens(evs []sdkEvent) *sdkEvent {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Event == "oauth" && evs[i].Stage == "tokens" {
			return &evs[i]
		}
	}
	return nil
}

// TestStepUpGoSDK: the Go SDK's OAuth handler (v1.8) registers a new client
// every time it authorizes, the step-up included: its token after the
// step-up has another client_id. The session goes on (same id), the write
// is done with the new token, reads work after it, and the operator's view
// of the session names the client now using it.
func TestStepUpGoSDK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, adminAddr, adminToken := runDevAdmin(t, "--scopes", "todo_api:read")
	var browser goSDKBrowser
	const redirect = "http://127.0.0.1:9/callback"
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName: "pingmcp e2e: Go SDK client", RedirectURIs: []string{redirect},
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none",
		}},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			return browser.login(ctx, args.URL, redirect, "alice")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "pingmcp-e2e-gosdk", Version: "1"}, nil)
	// Retries as the SDK does by default: the step-up's switch to the new
	// client ends the GET stream opened with the first client's token, and
	// the SDK opens it again with the new one (README, "Step-up and
	// sessions").
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.MCP, OAuthHandler: h},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"}) // a session (2026-07-28 has none)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	session := cs.ID()
	if session == "" {
		t.Fatal("no session")
	}
	tokenClaims := func() (c struct {
		Iss, Sub, Scope string
		ClientID        string `json:"client_id"`
	}) {
		ts, err := h.TokenSource(ctx)
		if err != nil || ts == nil {
			t.Fatalf("token source: %v", err)
		}
		tok, err := ts.Token()
		if err != nil {
			t.Fatal(err)
		}
		return jwtClaims(t, tok.AccessToken)
	}
	first := tokenClaims()
	if first.Scope != "todo_api:read" {
		t.Fatalf("first token's scope %v, want todo_api:read", first.Scope)
	}
	if _, isErr := call(t, ctx, cs, "get_my_todo_list", nil); isErr {
		t.Fatal("read-only read failed")
	}

	if out, isErr := call(t, ctx, cs, "create_new_todo", map[string]any{"text": "go stepped up"}); isErr {
		t.Fatalf("write after the step-up: %s", out)
	}
	stepped := tokenClaims()
	// A scope is a set (RFC 6749 §3.3): the Go SDK asks for it in an order
	// of its own.
	if got := slices.Sorted(slices.Values(strings.Fields(stepped.Scope))); stepped.ClientID == first.ClientID ||
		!slices.Equal(got, []string{"todo_api:read", "todo_api:write"}) {
		t.Fatalf("after the step-up: client %v (was %v), scope %v; want a new client (the SDK registers again) with read and write",
			stepped.ClientID, first.ClientID, stepped.Scope)
	}
	if browser.count() != 2 {
		t.Errorf("%d logins, want 2 (the first, the step-up)", browser.count())
	}
	out, isErr := call(t, ctx, cs, "get_my_todo_list", nil)
	if isErr || !strings.Contains(out, "go stepped up") || cs.ID() != session {
		t.Errorf("read after the step-up: error %v, session changed %v: %s", isErr, cs.ID() != session, out)
	}
	if got := d.awaitCount(ctx, `"msg":"session now used through another client of its user"`, 1); got != 1 {
		t.Errorf("the client change was logged %d times, want once", got)
	}
	if got := d.awaitCount(ctx, `"msg":"stream of the client the session was used through ended"`, 1); got != 1 {
		t.Errorf("the first client's GET stream was ended %d times, want once", got)
	}
	status, body, _ := adminCall(t, ctx, http.MethodGet, "http://"+adminAddr+"/admin/v1/sessions/"+session, adminToken)
	var described struct {
		ClientID string `json:"client_id"`
	}
	if json.Unmarshal([]byte(body), &described); status != http.StatusOK || described.ClientID != stepped.ClientID {
		t.Errorf("the admin view of the session: %d client %q, want the client now using it %q", status, described.ClientID, stepped.ClientID)
	}
}

// TestStepUpSessionRefusesOthers tries, as an attacker would, to use alice's
// session with what the binding to her user (not her client) might let
// through: bob's token (through a client of his own), and a token for
// alice from another authorization server. Both are refused exactly as
// before the binding changed (404, the session unchanged; 401 at the edge),
// while alice through a second client goes on with her session.
func TestStepUpSessionRefusesOthers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := runDev(t)
	other := runDev(t)

	alice := login(t, ctx, d.Issuer, d.MCP, "alice", "openid todo_api:read")
	// Without a standalone stream: the second client's request ends the
	// first client's (the session is used through one client at a time),
	// and a go-sdk client without retries then deletes its session, which
	// raced the second client's request (seen once in CI: 503).
	as := connectQuiet(t, ctx, d.MCP, alice)
	if _, isErr := call(t, ctx, as, "get_my_todo_list", nil); isErr {
		t.Fatal("alice's read failed")
	}
	bob := login(t, ctx, d.Issuer, d.MCP, "bob", "openid todo_api:read todo_api:write")
	if status, _ := rawToolCall(t, ctx, d.MCP, bob, as.ID(), "get_my_todo_list", `{}`); status != http.StatusNotFound {
		t.Errorf("bob's token on alice's session: %d, want 404", status)
	}
	// alice at another authorization server (another pingmcp dev, whose
	// issuer this one does not trust), with the same subject.
	foreign := login(t, ctx, other.Issuer, other.MCP, "alice", "openid todo_api:read todo_api:write")
	status, chal := rawToolCall(t, ctx, d.MCP, foreign, as.ID(), "get_my_todo_list", `{}`)
	if status != http.StatusUnauthorized || !strings.Contains(chal, `error="invalid_token"`) {
		t.Errorf("alice's token of another issuer on her session: %d %q, want 401 invalid_token", status, chal)
	}
	// alice through another client with a sign-in token only (openid): it
	// does not take her session over.
	signin, signinClient := loginGrant(t, ctx, d.Issuer, d.MCP, "alice", "openid")
	status, chal = rawToolCall(t, ctx, d.MCP, signin["access_token"].(string), as.ID(), "get_my_todo_list", `{}`)
	if status != http.StatusForbidden || !strings.Contains(chal, `error="insufficient_scope"`) || !strings.Contains(chal, "todo_api:read") {
		t.Errorf("alice's openid-only token through another client (%s) on her session: %d %q, want 403 insufficient_scope naming todo_api:read", signinClient, status, chal)
	}
	// Alice's session is untouched: her own token still works, and her
	// token through a second client, with write, works on it too.
	if _, isErr := call(t, ctx, as, "get_my_todo_list", nil); isErr {
		t.Error("alice's read after the refusals failed")
	}
	second, secondClient := loginGrant(t, ctx, d.Issuer, d.MCP, "alice", "openid todo_api:read todo_api:write")
	if status, _ := rawToolCall(t, ctx, d.MCP, second["access_token"].(string), as.ID(), "create_new_todo", `{"text":"from a second client"}`); status != http.StatusOK {
		t.Errorf("alice through a second client (%s) on her session: %d, want 200", secondClient, status)
	}
}

// goSDKBrowser plays the user's browser for the Go SDK's OAuth handler: it
// opens the authorization URL, fills in the development login form and
// takes the code from the redirect to the loopback redirect URI.
type goSDKBrowser struct {
	mu     sync.Mutex
	logins int
}

func (b *goSDKBrowser) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logins
}

var loginFormRE = regexp.MustCompile(`<form method="post" action="([^"]+)">\s*<input type="hidden" name="id" value="([^"]+)">`)

func (b *goSDKBrowser) login(ctx context.Context, authURL, redirect, user string) (*auth.AuthorizationResult, error) {
	b.mu.Lock()
	b.logins++
	b.mu.Unlock()
	var callback *url.URL
	client := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			callback = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := loginFormRE.FindSubmatch(page)
	if form == nil {
		return nil, fmt.Errorf("no login form (status %d): %.300s", resp.StatusCode, page)
	}
	action, _ := url.Parse(strings.ReplaceAll(string(form[1]), "&amp;", "&"))
	post := url.Values{"id": {string(form[2])}, "username": {user}, "password": {user}, "action": {"login"}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, resp.Request.URL.ResolveReference(action).String(), strings.NewReader(post.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = client.Do(req); err != nil {
		return nil, err
	}
	resp.Body.Close()
	if callback == nil {
		return nil, fmt.Errorf("login as %s: no redirect back (status %d)", user, resp.StatusCode)
	}
	q := callback.Query()
	if q.Get("error") != "" {
		return nil, errors.New("authorization refused: " + q.Get("error") + ": " + q.Get("error_description"))
	}
	return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
}

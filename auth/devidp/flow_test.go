package devidp

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth"
)

func TestCodeFlowWithPKCE(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	tokens := f.login(clientID, nil)

	if tokens["token_type"] != "Bearer" || tokens["refresh_token"] == nil || tokens["id_token"] == nil {
		t.Errorf("token response %v", tokens)
	}
	if tokens["scope"] != "openid profile offline_access mcp:tools todo_api:read" {
		t.Errorf("scope = %#v, want a space-separated string", tokens["scope"])
	}
	if ei, _ := tokens["expires_in"].(float64); ei < 590 || ei > 600 {
		t.Errorf("expires_in = %v", tokens["expires_in"])
	}
	access := tokens["access_token"].(string)

	// The access token is what auth's verifier expects of PingFederate.
	v := auth.NewJWTVerifier(auth.JWTOptions{Issuer: f.issuer, Audiences: []string{mcpResource}, Now: f.clock.Now})
	tok, err := v.Verify(context.Background(), access)
	if err != nil {
		t.Fatalf("auth.JWTVerifier refuses the access token: %v", err)
	}
	if tok.Subject != "alice" || tok.ClientID != clientID || tok.Issuer != f.issuer || tok.ID == "" ||
		!tok.HasScopes("mcp:tools", "todo_api:read") || !slices.Equal(tok.Audience, []string{mcpResource}) {
		t.Errorf("verified token %+v", tok)
	}
	c := claims(t, access)
	if _, isString := c["scope"].(string); !isString {
		t.Errorf("scope claim is a %T", c["scope"])
	}
	if c["aud"] != mcpResource {
		t.Errorf("aud = %#v, want the single resource", c["aud"])
	}
	for _, k := range []string{"iss", "sub", "aud", "client_id", "scope", "exp", "iat", "nbf", "jti"} {
		if c[k] == nil {
			t.Errorf("claim %s missing: %v", k, c)
		}
	}
	// Another resource's verifier refuses it.
	if _, err := auth.NewJWTVerifier(auth.JWTOptions{Issuer: f.issuer, Audiences: []string{todoResource}}).Verify(context.Background(), access); !auth.IsInvalidToken(err) {
		t.Errorf("todo verifier: err = %v", err)
	}

	id := claims(t, tokens["id_token"].(string))
	if id["aud"] != clientID || id["sub"] != "alice" || id["nonce"] != "n-456" || id["at_hash"] == nil || id["preferred_username"] != "alice" {
		t.Errorf("id token claims %v", id)
	}

	// userinfo takes the access token.
	req, _ := http.NewRequest(http.MethodGet, f.issuer+PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, info := f.do(req)
	if resp.StatusCode != http.StatusOK || info["sub"] != "alice" {
		t.Errorf("userinfo: %d %v", resp.StatusCode, info)
	}
}

func TestLoopbackRedirectAnyPort(t *testing.T) {
	// RFC 8252 §7.3: a native client's loopback port is chosen at run time.
	f := newFixture(t, nil)
	clientID := f.registerClient("http://127.0.0.1/callback")
	resp, _ := f.authorize(clientID, url.Values{"redirect_uri": {callback}})
	f.loginForm(resp)
}

func TestLoopbackRedirectDiffersOnlyInPort(t *testing.T) {
	// RFC 8252 §7.3 and RFC 9700 §4.1.3: a loopback redirect URI may differ
	// from the registered one in its port alone. op's native-client rule
	// compared only paths and queries, so a code could be sent to another
	// host, scheme or fragment than the client registered.
	f := newFixture(t, nil)
	clientID := f.registerClient()
	for _, ru := range []string{
		"http://localhost:9999/callback",
		"http://[::1]:9999/callback",
		"http://127.0.0.2:9999/callback",
		"http://[::ffff:127.0.0.1]:9999/callback",
		"https://127.0.0.1:9999/callback",
		"http://127.0.0.1:9999/callback#frag",
		"http://evil@127.0.0.1:9999/callback",
		"http://127.0.0.1:9999/%63allback",
		"http://127.0.0.1:9999/callback?",
		"http://127.0.0.1:9999/callback?x=1",
		"http://127.0.0.1/callback/",
	} {
		resp, _ := f.authorize(clientID, url.Values{"redirect_uri": {ru}})
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("redirect_uri %s: %d Location %q, want 400 and no redirect", ru, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, ru := range []string{callback, "http://127.0.0.1:1234/callback", "http://127.0.0.1/callback"} {
		resp, _ := f.authorize(clientID, url.Values{"redirect_uri": {ru}})
		f.loginForm(resp)
	}
}

func TestCodeRedemption(t *testing.T) {
	tests := []struct {
		name     string
		change   func(form url.Values)
		advance  time.Duration
		wantCode string
	}{
		{"wrong verifier", func(v url.Values) { v.Set("code_verifier", strings.Repeat("a", 43)) }, 0, "invalid_grant"},
		{"no verifier", func(v url.Values) { v.Del("code_verifier") }, 0, "invalid_request"},
		{"wrong redirect_uri", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9999/other") }, 0, "invalid_grant"},
		{"expired code", nil, 2 * time.Minute, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			clientID := f.registerClient()
			resp, verifier := f.authorize(clientID, nil)
			id, _ := f.loginForm(resp)
			code := f.redirected(f.submitLogin(id, "alice", "alice")).Get("code")
			f.clock.Advance(tt.advance)
			form := url.Values{
				"grant_type":    {"authorization_code"},
				"code":          {code},
				"redirect_uri":  {callback},
				"client_id":     {clientID},
				"code_verifier": {verifier},
			}
			if tt.change != nil {
				tt.change(form)
			}
			resp, body := f.post(PathToken, form, "", "")
			wantError(t, resp, body, http.StatusBadRequest, tt.wantCode)

			// The code was spent by the failed attempt.
			form.Set("code_verifier", verifier)
			form.Set("redirect_uri", callback)
			resp, body = f.post(PathToken, form, "", "")
			wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
		})
	}
}

func TestCodeIsGoodOnce(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	resp, verifier := f.authorize(clientID, nil)
	id, _ := f.loginForm(resp)
	code := f.redirected(f.submitLogin(id, "alice", "alice")).Get("code")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "client_id": {clientID}, "code_verifier": {verifier}}
	if resp, body := f.post(PathToken, form, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("first redemption: %d %v", resp.StatusCode, body)
	}
	resp, body := f.post(PathToken, form, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	// The login form is finished too.
	if resp := f.submitLogin(id, "alice", "alice"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second login on a finished request: %d", resp.StatusCode)
	}
}

// TestCodeReuseRevokesItsTokens: a code presented again is refused, and
// revokes what was issued from it (RFC 6749 §4.1.2): its access and
// refresh tokens, those refreshed from them and those exchanged for them,
// whoever holds them. The edge, verifying by introspection, refuses its
// access token; its refresh and exchange are refused. Another login of the
// same user and client is not affected; the log does not hold the code.
func TestCodeReuseRevokesItsTokens(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	other := f.login(clientID, nil)
	resp, verifier := f.authorize(clientID, nil)
	id, _ := f.loginForm(resp)
	code := f.redirected(f.submitLogin(id, "alice", "alice")).Get("code")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "client_id": {clientID}, "code_verifier": {verifier}}
	resp, first := f.post(PathToken, form, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first redemption: %d %v", resp.StatusCode, first)
	}
	access := first["access_token"].(string)
	resp, refreshed := f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}, "client_id": {clientID}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, refreshed)
	}
	resp, exchanged := f.post(PathToken, exchangeForm(access, todoResource, "todo_api:read"), exchanger, exchangerPW)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %v", resp.StatusCode, exchanged)
	}
	issued := map[string]string{
		"access token":           access,
		"refreshed access token": refreshed["access_token"].(string),
		"exchanged token":        exchanged["access_token"].(string),
	}
	for name, tok := range issued {
		if !f.active(tok) {
			t.Fatalf("the %s is not active before the code's reuse", name)
		}
	}

	resp, body := f.post(PathToken, form, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	for name, tok := range issued {
		if f.active(tok) {
			t.Errorf("the %s is still active after the code's reuse", name)
		}
	}
	edge := auth.NewIntrospectionVerifier(auth.IntrospectionOptions{Issuer: f.issuer, ClientID: exchanger, ClientSecret: exchangerPW, Audiences: []string{mcpResource}, Now: f.clock.Now})
	if _, err := edge.Verify(context.Background(), access); !auth.IsInvalidToken(err) {
		t.Errorf("the edge (introspection) verifying the access token of a reused code: %v, want invalid_token", err)
	}
	resp, body = f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed["refresh_token"].(string)}, "client_id": {clientID}}, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = f.post(PathToken, exchangeForm(access, todoResource, "todo_api:read"), exchanger, exchangerPW)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	if !f.active(other["access_token"].(string)) {
		t.Error("another login's access token was revoked with the reused code's")
	}
	if _, err := edge.Verify(context.Background(), other["access_token"].(string)); err != nil {
		t.Errorf("the edge refuses another login's access token: %v", err)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "presented again") || strings.Contains(logs, code) {
		t.Errorf("the reuse is not logged, or the log holds the code:\n%s", logs)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	tests := []struct {
		name  string
		extra url.Values
		want  string
	}{
		{"no PKCE", url.Values{"code_challenge": {""}, "code_challenge_method": {""}}, "invalid_request"},
		{"plain PKCE", url.Values{"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"plain"}}, "invalid_request"},
		{"PKCE without method", url.Values{"code_challenge_method": {""}}, "invalid_request"},
		{"malformed challenge", url.Values{"code_challenge": {"short"}}, "invalid_request"},
		{"unknown resource", url.Values{"resource": {"http://127.0.0.1:7777/unknown"}}, "invalid_target"},
		{"two resources", url.Values{"resource": {mcpResource, todoResource}}, "invalid_target"},
		{"resource and aud differ", url.Values{"aud": {todoResource}}, "invalid_target"},
		{"no allowed scope", url.Values{"scope": {"admin"}}, "invalid_scope"},
		{"prompt none", url.Values{"prompt": {"none"}}, "login_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			clientID := f.registerClient()
			resp, _ := f.authorize(clientID, tt.extra)
			q := f.redirected(resp)
			if q.Get("error") != tt.want || q.Get("state") != "st-123" || q.Get("code") != "" {
				t.Errorf("callback query %v, want error %s with the state", q, tt.want)
			}
		})
	}
}

func TestAuthorizeUnknownClientOrRedirect(t *testing.T) {
	f := newFixture(t, nil)
	// Neither is redirected: the redirect URI cannot be trusted.
	resp, _ := f.authorize("no-such-client", nil)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("unknown client: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	clientID := f.registerClient()
	resp, _ = f.authorize(clientID, url.Values{"redirect_uri": {"https://attacker.example/cb"}})
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("unregistered redirect: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestAudienceSelection(t *testing.T) {
	tests := []struct {
		name      string
		extra     url.Values
		wantAud   string
		wantScope string
	}{
		{"resource", nil, mcpResource, "openid profile offline_access mcp:tools todo_api:read"},
		{"PingFederate aud", url.Values{"resource": {""}, "aud": {todoResource}}, todoResource, "todo_api:read"},
		{"RFC 8707 resource", url.Values{"resource": {todoResource}}, todoResource, "todo_api:read"},
		{"default resource", url.Values{"resource": {""}}, mcpResource, "openid profile offline_access mcp:tools todo_api:read"},
		{"no scope asks for all", url.Values{"scope": {""}}, mcpResource, "openid profile offline_access mcp:tools todo_api:read todo_api:write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tokens := f.login(f.registerClient(), tt.extra)
			c := claims(t, tokens["access_token"].(string))
			if c["aud"] != tt.wantAud || c["scope"] != tt.wantScope || tokens["scope"] != tt.wantScope {
				t.Errorf("aud %v scope %q (response %q), want %s %q", c["aud"], c["scope"], tokens["scope"], tt.wantAud, tt.wantScope)
			}
			v := auth.NewJWTVerifier(auth.JWTOptions{Issuer: f.issuer, Audiences: []string{tt.wantAud}})
			if _, err := v.Verify(context.Background(), tokens["access_token"].(string)); err != nil {
				t.Errorf("verify for %s: %v", tt.wantAud, err)
			}
		})
	}
}

func TestLoginForm(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := f.postJSON(PathRegister, map[string]any{
		"redirect_uris": []string{callback},
		"client_name":   `<script>alert("x")</script>`,
	})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %v", resp.StatusCode, body)
	}
	clientID := body["client_id"].(string)

	resp, _ = f.authorize(clientID, nil)
	id, page := f.loginForm(resp)
	if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("client name not escaped: %s", page)
	}
	for _, want := range []string{`method="post"`, `name="username"`, `name="password"`, "not for production"} {
		if !strings.Contains(page, want) {
			t.Errorf("login page lacks %s", want)
		}
	}

	// A wrong password shows the form again, echoing the name escaped.
	resp = f.submitLogin(id, `bob"><b>`, "wrong")
	page2, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(page2), "Wrong user name or password") ||
		strings.Contains(string(page2), `"><b>`) {
		t.Errorf("wrong password: %d %s", resp.StatusCode, page2)
	}
	if resp := f.submitLogin(id, "alice", "bob"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("another user's password: %d", resp.StatusCode)
	}
	// The right one still works.
	if q := f.redirected(f.submitLogin(id, "bob", "bob")); q.Get("code") == "" {
		t.Errorf("callback query %v", q)
	}
	// An unknown request id gets no form.
	if resp := f.submitLogin("forged", "alice", "alice"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged id: %d", resp.StatusCode)
	}
}

func TestLoginGivesUp(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	resp, _ := f.authorize(clientID, nil)
	id, _ := f.loginForm(resp)
	for range maxLoginFailures - 1 {
		if resp := f.submitLogin(id, "alice", "nope"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed login: %d", resp.StatusCode)
		}
	}
	q := f.redirected(f.submitLogin(id, "alice", "nope"))
	if q.Get("error") != "access_denied" || q.Get("state") != "st-123" {
		t.Errorf("callback query %v", q)
	}
	if resp := f.submitLogin(id, "alice", "alice"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("login after giving up: %d", resp.StatusCode)
	}
}

func TestLoginCancel(t *testing.T) {
	f := newFixture(t, nil)
	resp, _ := f.authorize(f.registerClient(), nil)
	id, _ := f.loginForm(resp)
	resp, _ = f.post(PathLogin, url.Values{"id": {id}, "action": {"cancel"}}, "", "")
	if q := f.redirected(resp); q.Get("error") != "access_denied" || q.Get("state") != "st-123" {
		t.Errorf("callback query %v", q)
	}
}

func TestRefreshRotation(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	tokens := f.login(clientID, nil)
	refresh := func(token string, extra url.Values) (*http.Response, map[string]any) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {clientID}}
		for k, v := range extra {
			form[k] = v
		}
		return f.post(PathToken, form, "", "")
	}
	first := tokens["refresh_token"].(string)
	resp, next := refresh(first, nil)
	if resp.StatusCode != http.StatusOK || next["refresh_token"] == nil || next["refresh_token"] == first {
		t.Fatalf("refresh: %d %v", resp.StatusCode, next)
	}
	if next["scope"] != tokens["scope"] {
		t.Errorf("refreshed scope %v, want %v", next["scope"], tokens["scope"])
	}
	// A narrower scope is allowed, a wider one is not.
	second := next["refresh_token"].(string)
	resp, body := refresh(second, url.Values{"scope": {"todo_api:write"}})
	wantError(t, resp, body, http.StatusBadRequest, "invalid_scope")
	resp, body = refresh(second, url.Values{"resource": {todoResource}})
	wantError(t, resp, body, http.StatusBadRequest, "invalid_target")
	resp, narrow := refresh(second, url.Values{"scope": {"mcp:tools"}, "resource": {mcpResource}})
	if resp.StatusCode != http.StatusOK || narrow["scope"] != "mcp:tools" {
		t.Fatalf("narrow refresh: %d %v", resp.StatusCode, narrow)
	}
	if c := claims(t, narrow["access_token"].(string)); c["scope"] != "mcp:tools" {
		t.Errorf("narrow access token scope %v", c["scope"])
	}
	// The rotated token keeps the full grant.
	resp, full := refresh(narrow["refresh_token"].(string), nil)
	if resp.StatusCode != http.StatusOK || full["scope"] != tokens["scope"] {
		t.Errorf("refresh after narrowing: %d %v", resp.StatusCode, full)
	}

	// Another client cannot use it; an expired one is refused.
	other := f.registerClient()
	resp, body = f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {full["refresh_token"].(string)}, "client_id": {other}}, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	f.clock.Advance(8*time.Hour + time.Second)
	resp, body = refresh(full["refresh_token"].(string), nil)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

// TestRefreshTokenReuse: a spent refresh token presented again is refused,
// and revokes its grant (RFC 9700 §4.14.2): the token it was rotated into,
// and the access token that came with it, no longer work, whoever holds
// them (the thief who refreshed first, or the client). Within
// refreshReuseGrace of its spending it is only refused (two refreshes of
// one client at once). A new login works.
func TestRefreshTokenReuse(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	refresh := func(token string) (*http.Response, map[string]any) {
		return f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {clientID}}, "", "")
	}
	tokens := f.login(clientID, nil)
	stolen := tokens["refresh_token"].(string)
	resp, thief := refresh(stolen)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the thief's refresh: %d %v", resp.StatusCode, thief)
	}
	if !f.active(thief["access_token"].(string)) {
		t.Fatal("the thief's access token is not live before the reuse")
	}
	resp, body := refresh(stolen) // at once: a second refresh of the client's
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if !f.active(thief["access_token"].(string)) {
		t.Fatal("a reuse within the grace revoked the grant")
	}
	f.clock.Advance(refreshReuseGrace)
	resp, body = refresh(stolen) // the client, with the token it was given
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = refresh(thief["refresh_token"].(string))
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if f.active(thief["access_token"].(string)) {
		t.Error("the thief's access token is still live after the reuse")
	}
	again := f.login(clientID, nil)
	if resp, body := refresh(again["refresh_token"].(string)); resp.StatusCode != http.StatusOK {
		t.Errorf("a new login's refresh: %d %v", resp.StatusCode, body)
	}
}

func TestNoRefreshTokenWithoutTheGrant(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := f.postJSON(PathRegister, map[string]any{"redirect_uris": []string{callback}, "grant_types": []string{"authorization_code"}})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %v", resp.StatusCode, body)
	}
	tokens := f.login(body["client_id"].(string), nil)
	if tokens["refresh_token"] != nil {
		t.Errorf("refresh token issued to a client without the refresh_token grant")
	}
}

// MCP clients send the resource on the token request too (RFC 8707 §2.2).
func TestCodeRedemptionWithResource(t *testing.T) {
	for _, tt := range []struct {
		resource string
		status   int
	}{
		{mcpResource, http.StatusOK},
		{todoResource, http.StatusBadRequest},
	} {
		f := newFixture(t, nil)
		clientID := f.registerClient()
		resp, verifier := f.authorize(clientID, nil)
		id, _ := f.loginForm(resp)
		code := f.redirected(f.submitLogin(id, "alice", "alice")).Get("code")
		resp, body := f.post(PathToken, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback},
			"client_id": {clientID}, "code_verifier": {verifier}, "resource": {tt.resource},
		}, "", "")
		if resp.StatusCode != tt.status || (tt.status != http.StatusOK && body["error"] != "invalid_target") {
			t.Errorf("resource %s: %d %v", tt.resource, resp.StatusCode, body)
		}
	}
}

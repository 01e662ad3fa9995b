package devidp

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/logtest"
)

const accessTokenType = "urn:ietf:params:oauth:token-type:access_token"

// exchangeForm is a token exchange request as PingFederate takes it.
func exchangeForm(subject, resource, scope string) url.Values {
	v := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {subject},
		"subject_token_type":   {accessTokenType},
		"requested_token_type": {accessTokenType},
	}
	if resource != "" {
		v.Set("resource", resource)
	}
	if scope != "" {
		v.Set("scope", scope)
	}
	return v
}

func TestTokenExchange(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	subject := f.login(clientID, nil)["access_token"].(string) // openid profile offline_access mcp:tools todo_api:read

	tests := []struct {
		name      string
		scope     string
		wantScope string
	}{
		{"requested within held and allowed", "todo_api:read", "todo_api:read"},
		{"not held is dropped", "todo_api:read todo_api:write", "todo_api:read"},
		{"not allowed for the resource is dropped", "todo_api:read mcp:tools openid", "todo_api:read"},
		{"no scope asks for what is held", "", "todo_api:read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.post(PathToken, exchangeForm(subject, todoResource, tt.scope), exchanger, exchangerPW)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("exchange: %d %v", resp.StatusCode, body)
			}
			if body["issued_token_type"] != accessTokenType || body["token_type"] != "Bearer" || body["scope"] != tt.wantScope || body["refresh_token"] != nil {
				t.Errorf("response %v", body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
			token := body["access_token"].(string)
			v := auth.NewJWTVerifier(auth.JWTOptions{Issuer: f.issuer, Audiences: []string{todoResource}, Now: f.clock.Now})
			tok, err := v.Verify(context.Background(), token)
			if err != nil {
				t.Fatalf("auth.JWTVerifier refuses the exchanged token: %v", err)
			}
			if tok.Subject != "alice" || tok.ClientID != clientID || strings.Join(tok.Scopes, " ") != tt.wantScope {
				t.Errorf("verified token %+v", tok)
			}
			if !reflect.DeepEqual(tok.Actor, map[string]any{"sub": exchanger}) {
				t.Errorf("act = %v", tok.Actor)
			}
			if c := claims(t, token); c["scope"] != tt.wantScope || c["aud"] != todoResource {
				t.Errorf("claims %v", c)
			}
		})
	}
}

func TestTokenExchangeNestsActors(t *testing.T) {
	f := newFixture(t, nil)
	subject, err := f.srv.AccessToken("alice", "mcp-client", mcpResource, "todo_api:read", "todo_api:write")
	if err != nil {
		t.Fatal(err)
	}
	_, first := f.post(PathToken, exchangeForm(subject, todoResource, "todo_api:read todo_api:write"), exchanger, exchangerPW)
	resp, second := f.post(PathToken, exchangeForm(first["access_token"].(string), todoResource, "todo_api:read"), exchanger, exchangerPW)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second exchange: %d %v", resp.StatusCode, second)
	}
	c := claims(t, second["access_token"].(string))
	want := map[string]any{"sub": exchanger, "act": map[string]any{"sub": exchanger}}
	if !reflect.DeepEqual(c["act"], want) || c["sub"] != "alice" || c["client_id"] != "mcp-client" || c["scope"] != "todo_api:read" {
		t.Errorf("claims %v", c)
	}
}

func TestTokenExchangeActorToken(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Clients = append(o.Clients, Client{ID: "other", Secret: "other-secret"})
	})
	subject, _ := f.srv.AccessToken("alice", "mcp-client", mcpResource, "todo_api:read")
	actorToken := func(id, secret string) string {
		resp, body := f.post(PathToken, url.Values{"grant_type": {"client_credentials"}, "resource": {todoResource}}, id, secret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("client_credentials: %d %v", resp.StatusCode, body)
		}
		return body["access_token"].(string)
	}

	form := exchangeForm(subject, todoResource, "todo_api:read")
	form.Set("actor_token", actorToken(exchanger, exchangerPW))
	form.Set("actor_token_type", accessTokenType)
	resp, body := f.post(PathToken, form, exchanger, exchangerPW)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %v", resp.StatusCode, body)
	}
	if act := claims(t, body["access_token"].(string))["act"]; !reflect.DeepEqual(act, map[string]any{"sub": exchanger}) {
		t.Errorf("act = %v", act)
	}

	// Another client's token does not make it the actor.
	form.Set("actor_token", actorToken("other", "other-secret"))
	resp, body = f.post(PathToken, form, exchanger, exchangerPW)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	form.Del("actor_token_type")
	resp, body = f.post(PathToken, form, exchanger, exchangerPW)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_request")
}

func TestTokenExchangeRefusals(t *testing.T) {
	other := newFixture(t, nil)
	foreign, _ := other.srv.AccessToken("alice", "mcp-client", mcpResource, "todo_api:read")

	tests := []struct {
		name       string
		form       func(subject string) url.Values
		user, pw   string
		prepare    func(f *fixture, subject, clientID string)
		wantStatus int
		wantCode   string
	}{
		{
			name:       "no client authentication",
			form:       func(s string) url.Values { return exchangeForm(s, todoResource, "todo_api:read") },
			wantStatus: http.StatusUnauthorized,
			wantCode:   "invalid_client",
		},
		{
			name: "secret in the form, not HTTP Basic",
			form: func(s string) url.Values {
				v := exchangeForm(s, todoResource, "todo_api:read")
				v.Set("client_id", exchanger)
				v.Set("client_secret", exchangerPW)
				return v
			},
			wantStatus: http.StatusUnauthorized,
			wantCode:   "invalid_client",
		},
		{
			name:       "wrong secret",
			form:       func(s string) url.Values { return exchangeForm(s, todoResource, "todo_api:read") },
			user:       exchanger,
			pw:         "wrong",
			wantStatus: http.StatusUnauthorized,
			wantCode:   "invalid_client",
		},
		{
			name:       "garbage subject token",
			form:       func(string) url.Values { return exchangeForm("not.a.jwt", todoResource, "todo_api:read") },
			user:       exchanger,
			pw:         exchangerPW,
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_grant",
		},
		{
			name:       "subject token of another server",
			form:       func(string) url.Values { return exchangeForm(foreign, todoResource, "todo_api:read") },
			user:       exchanger,
			pw:         exchangerPW,
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_grant",
		},
		{
			name:       "expired subject token",
			form:       func(s string) url.Values { return exchangeForm(s, todoResource, "todo_api:read") },
			user:       exchanger,
			pw:         exchangerPW,
			prepare:    func(f *fixture, _, _ string) { f.clock.Advance(11 * time.Minute) },
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_grant",
		},
		{
			name: "revoked subject token",
			form: func(s string) url.Values { return exchangeForm(s, todoResource, "todo_api:read") },
			user: exchanger,
			pw:   exchangerPW,
			prepare: func(f *fixture, s, clientID string) {
				if resp, _ := f.post(PathRevoke, url.Values{"token": {s}, "client_id": {clientID}}, "", ""); resp.StatusCode != http.StatusOK {
					t.Fatalf("revoke: %d", resp.StatusCode)
				}
			},
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_grant",
		},
		{
			name:       "unknown resource",
			form:       func(s string) url.Values { return exchangeForm(s, "http://127.0.0.1:7777/unknown", "todo_api:read") },
			user:       exchanger,
			pw:         exchangerPW,
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_target",
		},
		{
			name:       "no resource",
			form:       func(s string) url.Values { return exchangeForm(s, "", "todo_api:read") },
			user:       exchanger,
			pw:         exchangerPW,
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_target",
		},
		{
			name:       "no scope in common",
			form:       func(s string) url.Values { return exchangeForm(s, todoResource, "mcp:tools") },
			user:       exchanger,
			pw:         exchangerPW,
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_scope",
		},
		{
			name: "subject token type id_token",
			form: func(s string) url.Values {
				v := exchangeForm(s, todoResource, "todo_api:read")
				v.Set("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")
				return v
			},
			user:       exchanger,
			pw:         exchangerPW,
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_request",
		},
		{
			name: "requested token type refresh_token",
			form: func(s string) url.Values {
				v := exchangeForm(s, todoResource, "todo_api:read")
				v.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")
				return v
			},
			user:       exchanger,
			pw:         exchangerPW,
			wantStatus: http.StatusBadRequest,
			wantCode:   "invalid_request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			clientID := f.registerClient()
			subject, err := f.srv.AccessToken("alice", clientID, mcpResource, "mcp:tools", "todo_api:read")
			if err != nil {
				t.Fatal(err)
			}
			if tt.prepare != nil {
				tt.prepare(f, subject, clientID)
			}
			resp, body := f.post(PathToken, tt.form(subject), tt.user, tt.pw)
			wantError(t, resp, body, tt.wantStatus, tt.wantCode)
			if tt.wantStatus == http.StatusUnauthorized && tt.user == "" && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestTokenExchangePublicClientRefused(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	subject, _ := f.srv.AccessToken("alice", clientID, mcpResource, "todo_api:read")
	form := exchangeForm(subject, todoResource, "todo_api:read")
	form.Set("client_id", clientID)
	resp, body := f.post(PathToken, form, "", "")
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	// With HTTP Basic and no secret it is authenticated, but may not exchange.
	resp, body = f.post(PathToken, exchangeForm(subject, todoResource, "todo_api:read"), clientID, "")
	wantError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
}

func TestExchangedTokenDoesNotOutliveSubject(t *testing.T) {
	f := newFixture(t, nil)
	subject, _ := f.srv.AccessToken("alice", "mcp-client", mcpResource, "todo_api:read")
	f.clock.Advance(8 * time.Minute)
	resp, body := f.post(PathToken, exchangeForm(subject, todoResource, ""), exchanger, exchangerPW)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %v", resp.StatusCode, body)
	}
	if ei := body["expires_in"].(float64); ei > 120 {
		t.Errorf("expires_in %v, want at most the subject token's remaining 2 minutes", ei)
	}
	if s, e := claims(t, subject)["exp"], claims(t, body["access_token"].(string))["exp"]; s != e {
		t.Errorf("exchanged exp %v, subject exp %v", e, s)
	}
}

func TestClientCredentials(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := f.post(PathToken, url.Values{"grant_type": {"client_credentials"}}, exchanger, exchangerPW)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("client_credentials: %d %v", resp.StatusCode, body)
	}
	c := claims(t, body["access_token"].(string))
	// The default resource, without the scopes only a user can hold.
	if c["sub"] != exchanger || c["client_id"] != exchanger || c["aud"] != mcpResource || c["scope"] != "mcp:tools todo_api:read todo_api:write" {
		t.Errorf("claims %v", c)
	}
	resp, body = f.post(PathToken, url.Values{"grant_type": {"client_credentials"}, "client_id": {exchanger}, "client_secret": {exchangerPW}}, "", "")
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
}

func TestIntrospectionAndRevocation(t *testing.T) {
	f := newFixture(t, nil)
	clientID := f.registerClient()
	tokens := f.login(clientID, nil)
	access := tokens["access_token"].(string)
	introspect := func(token string) map[string]any {
		t.Helper()
		resp, body := f.post(PathIntrospect, url.Values{"token": {token}}, exchanger, exchangerPW)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("introspect: %d %v", resp.StatusCode, body)
		}
		return body
	}
	revoke := func(token, client string) (*http.Response, map[string]any) {
		return f.post(PathRevoke, url.Values{"token": {token}, "client_id": {client}}, "", "")
	}

	got := introspect(access)
	if got["active"] != true || got["sub"] != "alice" || got["username"] != "alice" || got["client_id"] != clientID ||
		got["aud"] != mcpResource || got["scope"] != "openid profile offline_access mcp:tools todo_api:read" ||
		got["iss"] != f.issuer || got["token_type"] != "Bearer" || got["exp"] == nil || got["jti"] == nil {
		t.Errorf("introspection %v", got)
	}
	for name, token := range map[string]string{"garbage": "abc", "refresh token": tokens["refresh_token"].(string), "id token": tokens["id_token"].(string)} {
		if got := introspect(token); len(got) != 1 || got["active"] != false {
			t.Errorf("%s: %v", name, got)
		}
	}
	resp, body := f.post(PathIntrospect, url.Values{"token": {access}}, "", "")
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	resp, body = f.post(PathIntrospect, url.Values{"token": {access}}, exchanger, "wrong")
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")

	// An exchanged token, to see the grant's revocation reach it.
	_, exchanged := f.post(PathToken, exchangeForm(access, todoResource, "todo_api:read"), exchanger, exchangerPW)
	down := exchanged["access_token"].(string)
	if introspect(down)["active"] != true {
		t.Fatal("exchanged token inactive")
	}

	// Another client may not revoke it; the owner may; unknown tokens are fine.
	other := f.registerClient()
	resp, body = revoke(access, other)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if resp, _ := revoke(access, clientID); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if got := introspect(access); got["active"] != false {
		t.Errorf("revoked token: %v", got)
	}
	if resp, _ := revoke("unknown", clientID); resp.StatusCode != http.StatusOK {
		t.Errorf("revoke unknown: %d", resp.StatusCode)
	}
	if introspect(down)["active"] != true {
		t.Error("revoking an access token revoked the token exchanged from it")
	}

	// Revoking the refresh token revokes the grant: the exchanged token too.
	refresh := tokens["refresh_token"].(string)
	if resp, _ := revoke(refresh, clientID); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke refresh: %d", resp.StatusCode)
	}
	if introspect(down)["active"] != false {
		t.Error("the exchanged token outlived its grant")
	}
	resp, body = f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}}, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

func TestUserinfoNeedsOpenID(t *testing.T) {
	f := newFixture(t, nil)
	token, _ := f.srv.AccessToken("alice", "c1", mcpResource, "mcp:tools")
	req, _ := http.NewRequest(http.MethodGet, f.issuer+PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, body := f.do(req)
	wantError(t, resp, body, http.StatusForbidden, "insufficient_scope")
	req.Header.Set("Authorization", "Bearer garbage")
	resp, body = f.do(req)
	wantError(t, resp, body, http.StatusUnauthorized, "invalid_token")
}

func TestTokenEndpointIsPostOnly(t *testing.T) {
	f := newFixture(t, nil)
	resp, _ := f.get(PathToken + "?grant_type=client_credentials")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET token endpoint: %d", resp.StatusCode)
	}
}

// TestNoSecretsLogged runs every flow with debug logging and looks for the
// values that must never be logged.
func TestNoSecretsLogged(t *testing.T) {
	// op logs to the default logger: watch it too.
	var opLogs logtest.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&opLogs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	f := newFixture(t, func(o *Options) { o.Users = map[string]string{"carol": "carol-password-1"} })
	clientID := f.registerClient()
	resp, verifier := f.authorize(clientID, nil)
	id, _ := f.loginForm(resp)
	f.submitLogin(id, "carol", "wrong-password-2")
	code := f.redirected(f.submitLogin(id, "carol", "carol-password-1")).Get("code")
	_, tokens := f.post(PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "client_id": {clientID}, "code_verifier": {verifier}}, "", "")
	_, refreshed := f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tokens["refresh_token"].(string)}, "client_id": {clientID}}, "", "")
	_, exchanged := f.post(PathToken, exchangeForm(refreshed["access_token"].(string), todoResource, ""), exchanger, exchangerPW)
	f.post(PathToken, exchangeForm("forged-token", todoResource, ""), exchanger, exchangerPW)
	f.post(PathToken, exchangeForm(exchanged["access_token"].(string), todoResource, ""), exchanger, "wrong-secret-3")
	f.post(PathIntrospect, url.Values{"token": {exchanged["access_token"].(string)}}, exchanger, exchangerPW)
	f.post(PathRevoke, url.Values{"token": {refreshed["refresh_token"].(string)}, "client_id": {clientID}}, "", "")

	logs := f.logs.String() + opLogs.String()
	if !strings.Contains(logs, "user logged in") || !strings.Contains(opLogs.String(), "invalid_grant") {
		t.Fatalf("expected logs missing: %s", logs)
	}
	secrets := map[string]string{
		"password": "carol-password-1", "wrong password": "wrong-password-2", "client secret": exchangerPW,
		"wrong secret": "wrong-secret-3", "code": code, "verifier": verifier, "login id": id,
		"access token": tokens["access_token"].(string), "refresh token": tokens["refresh_token"].(string),
		"id token": tokens["id_token"].(string), "rotated refresh token": refreshed["refresh_token"].(string),
		"exchanged token": exchanged["access_token"].(string), "forged token": "forged-token",
	}
	for name, v := range secrets {
		if strings.Contains(logs, v) {
			t.Errorf("the %s was logged", name)
		}
	}
}

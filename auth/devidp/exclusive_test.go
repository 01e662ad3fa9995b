package devidp

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/internal/cimdtest"
)

const adminScope = "pingmcp:admin"

// newAdminFixture is a server whose MCP resource allows adminScope, which
// only user admin may have, with a configured client that logs users in
// (authorization code) and, given h, CIMD.
func newAdminFixture(t *testing.T, h *cimdtest.Host) *fixture {
	return newFixture(t, func(o *Options) {
		o.Users = map[string]string{"alice": "alice", "admin": "admin"}
		o.ScopeUsers = map[string][]string{adminScope: {"admin"}}
		o.Resources[0].Scopes = append(o.Resources[0].Scopes, adminScope)
		o.Clients = append(o.Clients, Client{ID: "operators", Secret: "operators-secret",
			GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{callback}})
		if h != nil {
			o.ClientIDMetadata = &ClientIDMetadata{AllowLoopback: true, CAFile: h.CAFile}
		}
	})
}

// adminLogin has user admin log in through clientID asking for scope ("":
// none named), and returns the access token's scopes.
func (f *fixture) adminLogin(clientID, secret, scope string) []string {
	f.t.Helper()
	resp, verifier := f.authorize(clientID, url.Values{"scope": {scope}})
	id, _ := f.loginForm(resp)
	q := f.redirected(f.submitLogin(id, "admin", "admin"))
	user := ""
	if secret != "" {
		user = clientID
	}
	resp, body := f.post(PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {callback},
		"client_id": {clientID}, "code_verifier": {verifier},
	}, user, secret)
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("code exchange: %d %v", resp.StatusCode, body)
	}
	scopes, _ := claims(f.t, body["access_token"].(string))["scope"].(string)
	return strings.Fields(scopes)
}

// TestExclusiveScope: a scope restricted to some users (the admin scope) is
// never a default, and only a configured client obtains it, even for user
// admin: any web page can register a client or publish a metadata
// document and send an administrator to log in through it.
func TestExclusiveScope(t *testing.T) {
	h := cimdtest.New(t)
	documentClient := h.Publish("/client.json", nil, goodDocument())
	f := newAdminFixture(t, h)
	registered := f.registerClient(callback)
	for _, tc := range []struct {
		name, client, secret, scope string
		admin                       bool
	}{
		{"registered client, no scope named", registered, "", "", false},
		{"registered client asking for it", registered, "", "openid " + adminScope, false},
		{"metadata document client, no scope named", documentClient, "", "", false},
		{"metadata document client asking for it", documentClient, "", "openid " + adminScope, false},
		{"configured client, no scope named", "operators", "operators-secret", "", false},
		{"configured client asking for it", "operators", "operators-secret", "openid " + adminScope, true},
	} {
		scopes := f.adminLogin(tc.client, tc.secret, tc.scope)
		if slices.Contains(scopes, adminScope) != tc.admin {
			t.Errorf("%s: user admin's token has scopes %q; want %s: %v", tc.name, scopes, adminScope, tc.admin)
		}
		if tc.scope == "" && !slices.Contains(scopes, "mcp:tools") {
			t.Errorf("%s: the default scopes %q lack the resource's others", tc.name, scopes)
		}
	}
	// Asking for the admin scope alone through a registered client leaves
	// nothing to grant: invalid_scope, redirected.
	resp, _ := f.authorize(registered, url.Values{"scope": {adminScope}})
	if q := f.redirected(resp); q.Get("error") != "invalid_scope" {
		t.Errorf("a registered client asking for the admin scope alone: %v, want invalid_scope", q)
	}
}

// TestClientCredentialsWithoutExclusiveScope: a client's own token (client
// credentials: the token exchange's secret) never carries a scope kept for
// some users, asked for by name or by asking for nothing (the resource's
// scopes): that secret is not an administrator's login.
func TestClientCredentialsWithoutExclusiveScope(t *testing.T) {
	f := newAdminFixture(t, nil)
	for _, scope := range []string{"", "mcp:tools " + adminScope} {
		form := url.Values{"grant_type": {"client_credentials"}}
		if scope != "" {
			form.Set("scope", scope)
		}
		resp, body := f.post(PathToken, form, exchanger, exchangerPW)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("client_credentials %q: %d %v", scope, resp.StatusCode, body)
		}
		granted := strings.Fields(claims(t, body["access_token"].(string))["scope"].(string))
		if slices.Contains(granted, adminScope) || !slices.Contains(granted, "mcp:tools") {
			t.Errorf("client_credentials asking %q granted %v", scope, granted)
		}
	}
	resp, body := f.post(PathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {adminScope}}, exchanger, exchangerPW)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_scope")
}

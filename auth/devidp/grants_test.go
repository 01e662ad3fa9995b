package devidp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/auth"
)

const (
	grantsUser = "grants-admin"
	grantsPW   = "grants-secret"
)

// The grant management service admits only a grant manager's HTTP Basic
// credentials with X-XSRF-HEADER, as PingFederate's does; deleting alice's
// grants makes her refresh tokens invalid_grant and her access tokens,
// exchanged ones included, inactive, while bob's stay good and a new login
// of hers works.
func TestRevokeUserGrants(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.GrantManagers = map[string]string{grantsUser: grantsPW} })
	clientID := f.registerClient()
	alice := f.login(clientID, nil)
	exchanged := func(subject string) string {
		resp, body := f.post(PathToken, exchangeForm(subject, todoResource, "todo_api:read"), exchanger, exchangerPW)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("exchange: %d %v", resp.StatusCode, body)
		}
		return body["access_token"].(string)
	}
	aliceAPI := exchanged(alice["access_token"].(string))
	bobToken, err := f.srv.AccessToken("bob", clientID, mcpResource, "todo_api:read")
	if err != nil {
		t.Fatal(err)
	}

	del := func(userKey, user, password string, xsrf bool) *http.Response {
		req, _ := http.NewRequest(http.MethodDelete, f.issuer+"/pf-ws/rest/oauth/users/"+url.PathEscape(userKey)+"/grants", nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		if xsrf {
			req.Header.Set("X-XSRF-HEADER", "pingmcp")
		}
		resp, _ := f.do(req)
		return resp
	}
	for name, resp := range map[string]*http.Response{
		"no credentials":        del("alice", "", "", true),
		"wrong password":        del("alice", grantsUser, "wrong", true),
		"a user's password":     del("alice", "alice", "alice", true),
		"a client's secret":     del("alice", exchanger, exchangerPW, true),
		"empty password":        del("alice", grantsUser, "", true),
		"wrong user, same pass": del("alice", grantsUser+"x", grantsPW, true),
	} {
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: %d %q, want 401 with a Basic challenge", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if resp := del("alice", grantsUser, grantsPW, false); resp.StatusCode != http.StatusForbidden {
		t.Errorf("without X-XSRF-HEADER: %d, want 403", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, f.issuer+"/pf-ws/rest/oauth/users/alice/grants", nil)
	req.SetBasicAuth(grantsUser, grantsPW)
	req.Header.Set("X-XSRF-HEADER", "x")
	if resp, _ := f.do(req); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	// Nothing refused above revoked anything.
	active := func(token string) bool {
		_, body := f.post(PathIntrospect, url.Values{"token": {token}}, exchanger, exchangerPW)
		return body["active"] == true
	}
	if !active(alice["access_token"].(string)) || !active(aliceAPI) {
		t.Fatal("a refused request revoked alice's tokens")
	}

	if resp := del("alice", grantsUser, grantsPW, true); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE alice's grants: %d, want 204", resp.StatusCode)
	}
	resp, body := f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {alice["refresh_token"].(string)}, "client_id": {clientID}}, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if active(alice["access_token"].(string)) || active(aliceAPI) {
		t.Error("alice's access tokens are still active after her grants were revoked")
	}
	if !active(bobToken) {
		t.Error("bob's token was revoked with alice's grants")
	}
	// A second DELETE finds nothing and still answers 204; a new login works.
	if resp := del("alice", grantsUser, grantsPW, true); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE again: %d, want 204", resp.StatusCode)
	}
	again := f.login(clientID, nil)
	resp, body = f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {again["refresh_token"].(string)}, "client_id": {clientID}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("refresh after a new login: %d %v", resp.StatusCode, body)
	}
	if strings.Contains(f.logs.String(), grantsPW) {
		t.Error("the grant manager's password is in the log")
	}
}

// Without grant managers configured, the service admits nobody.
func TestUserGrantsWithoutManagers(t *testing.T) {
	f := newFixture(t, nil)
	req, _ := http.NewRequest(http.MethodDelete, f.issuer+"/pf-ws/rest/oauth/users/alice/grants", nil)
	req.SetBasicAuth("", "")
	req.Header.Set("X-XSRF-HEADER", "x")
	if resp, _ := f.do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("%d, want 401", resp.StatusCode)
	}
}

// auth.GrantRevoker, pingmcp's client of the service, against this one:
// revoked with the right credentials; refused ones give an error saying so,
// without the password.
func TestGrantRevokerAgainstDevIdP(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.GrantManagers = map[string]string{grantsUser: grantsPW} })
	clientID := f.registerClient()
	alice := f.login(clientID, nil)
	ctx := t.Context()

	wrong := auth.NewGrantRevoker(auth.GrantsOptions{URL: f.issuer + auth.GrantsPath, User: grantsUser, Password: "not-" + grantsPW})
	err := wrong.RevokeUser(ctx, "alice")
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), grantsPW) {
		t.Errorf("wrong password: %v", err)
	}
	good := auth.NewGrantRevoker(auth.GrantsOptions{URL: f.issuer + auth.GrantsPath + "/", User: grantsUser, Password: grantsPW})
	if err := good.RevokeUser(ctx, "alice"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	resp, body := f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {alice["refresh_token"].(string)}, "client_id": {clientID}}, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if err := auth.NewGrantRevoker(auth.GrantsOptions{URL: f.issuer + "/nowhere", User: grantsUser, Password: grantsPW}).RevokeUser(ctx, "alice"); err == nil {
		t.Error("a wrong URL revoked nothing and said nothing")
	}
}

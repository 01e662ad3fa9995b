package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/cimdtest"
)

// TestCIMDHardening: pingmcp dev's authorization server, CIMD on, is no
// probe of what it reaches and no way to an admin token. Whatever went
// wrong with a document (its URL answered 404, served HTML, or its https
// redirect URI is at another origin), a client is told the same words, and
// the authorization endpoint lets no other origin's page read the answer;
// why is logged. A metadata document client that names no scope, or asks
// for the admin scope, gets no admin scope when user admin logs in.
func TestCIMDHardening(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host := cimdtest.New(t)
	good := host.Publish("/oauth/client.json", cached, sdkClientDocument())
	host.Serve("/missing.json", http.StatusNotFound, nil, "secret intranet page")
	host.Serve("/html.json", http.StatusOK, http.Header{"Content-Type": {"text/html"}}, "<p>secret intranet page</p>")
	crossOrigin := sdkClientDocument()
	crossOrigin["redirect_uris"] = []string{clientRedirect, "https://attacker.example/callback"}
	crossOrigin["client_id"] = host.URL + "/cross.json"
	host.Publish("/cross.json", cached, crossOrigin)

	d := runDev(t, "--dev-cimd-allow-loopback", "--dev-cimd-ca", host.CAFile)
	as := fetchASMetadata(t, ctx, d.Issuer)

	const generic = "the client metadata document could not be fetched or is invalid"
	for path, reason := range map[string]string{
		"/missing.json": "answered 404",
		"/html.json":    "not served as application/json",
		"/cross.json":   "not at the client_id's origin",
	} {
		q := url.Values{"response_type": {"code"}, "client_id": {host.URL + path}, "redirect_uri": {clientRedirect},
			"state": {"s"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}, "resource": {d.MCP}}
		a := askHTTP(t, ctx, http.MethodGet, as.AuthorizationEndpoint+"?"+q.Encode(), "", map[string]string{"Origin": "https://evil.example"})
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		json.Unmarshal([]byte(a.body), &body)
		if a.status != http.StatusBadRequest || body.Error != "invalid_client" || body.Description != generic {
			t.Errorf("%s: %d %s, want 400 invalid_client %q", path, a.status, a.body, generic)
		}
		if origin := a.header.Get("Access-Control-Allow-Origin"); origin != "" {
			t.Errorf("%s: the authorization endpoint's answer may be read by %q", path, origin)
		}
		if host.Fetches(path) != 1 {
			t.Errorf("%s fetched %d times, want once", path, host.Fetches(path))
		}
		logCtx, stop := context.WithTimeout(ctx, 10*time.Second)
		d.awaitCount(logCtx, reason, 1)
		stop()
		if !d.logged(`client metadata document refused`, reason) {
			t.Errorf("%s: the log does not say why (%s)", path, reason)
		}
	}

	for _, scope := range []string{"", "openid pingmcp:admin todo_api:read"} {
		scopes := strings.Fields(cimdLogin(t, ctx, d, as, good, scope))
		if slices.Contains(scopes, "pingmcp:admin") || len(scopes) == 0 {
			t.Errorf("user admin through a metadata document client asking for %q got scopes %q, want some, never pingmcp:admin", scope, scopes)
		}
	}
}

// cimdLogin logs user admin in through the metadata document client id
// asking for scope (none named when ""), and returns the access token's
// scope.
func cimdLogin(t *testing.T, ctx context.Context, d *devProcess, as asMetadata, id, scope string) string {
	t.Helper()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {clientRedirect}, "state": {"s"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {d.MCP}}
	if scope != "" {
		q.Set("scope", scope)
	}
	callback := browserLogin(t, as.AuthorizationEndpoint+"?"+q.Encode(), clientRedirect, "admin")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	postForm(t, ctx, as.TokenEndpoint, url.Values{
		"grant_type": {"authorization_code"}, "code": {callback.Query().Get("code")}, "redirect_uri": {clientRedirect},
		"client_id": {id}, "code_verifier": {verifier}, "resource": {d.MCP},
	}, &tok)
	return jwtClaims(t, tok.AccessToken).Scope
}

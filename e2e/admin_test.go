package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// adminCall sends one admin request with token and returns status and body.
func adminCall(t testing.TB, ctx context.Context, method, url, token string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// runDevAdmin runs `pingmcp dev` (with its admin API on a free port and
// the static admin token of adminTokenFile, as runDev does) and returns the
// process, the admin API's address and the token.
func runDevAdmin(t *testing.T, args ...string) (*devProcess, string, string) {
	t.Helper()
	d := runDev(t, args...)
	return d, d.Admin, d.adminToken
}

// operatorLogin logs user in through pingmcp's configured client at the dev
// IdP (secret: its --client-secret), the only kind of client granted the
// admin scope, and returns the access token.
func operatorLogin(t *testing.T, ctx context.Context, issuer, resource, secret, user, scope string) string {
	t.Helper()
	const redirect = "http://127.0.0.1/callback"
	q := url.Values{"response_type": {"code"}, "client_id": {"pingmcp"}, "redirect_uri": {redirect}, "scope": {scope}, "state": {"s1"}, "resource": {resource}}
	callback := browserLogin(t, issuer+"/as/authorization.oauth2?"+q.Encode(), redirect, user)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/as/token.oauth2", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {callback.Query().Get("code")}, "redirect_uri": {redirect}, "resource": {resource},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("pingmcp", secret)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	do(t, req, &tok)
	if tok.AccessToken == "" {
		t.Fatalf("no access token for %s", user)
	}
	return tok.AccessToken
}

// TestAdminSessions drives the admin API of pingmcp dev with two logged-in
// users: it is refused without the token or with a wrong one, is not on the
// /mcp listener, lists sessions by user, describes one with its exchanged
// token (audience, scopes, act, expiry) but never a token value, and ends
// it: its client is then told the session is gone.
func TestAdminSessions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const clientSecret = "e2e-operators-client-secret"
	d, adminAddr, token := runDevAdmin(t, "--client-secret", clientSecret)
	base := "http://" + adminAddr + "/admin/v1"

	// Never unauthenticated, never on /mcp's listener.
	if status, _, h := adminCall(t, ctx, http.MethodGet, base+"/sessions", ""); status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %q", status, h.Get("WWW-Authenticate"))
	}
	if status, _, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions", token+"x"); status != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", status)
	}
	mcpBase := strings.TrimSuffix(d.MCP, "/mcp")
	if status, _, _ := adminCall(t, ctx, http.MethodGet, mcpBase+"/admin/v1/sessions", token); status != http.StatusNotFound {
		t.Errorf("the admin API answers on the /mcp listener: %d", status)
	}

	const all = "openid offline_access todo_api:read todo_api:write"
	alice := login(t, ctx, d.Issuer, d.MCP, "alice", all)
	bob := login(t, ctx, d.Issuer, d.MCP, "bob", all)
	as := connectAs(t, ctx, d.MCP, alice)
	bs := connectAs(t, ctx, d.MCP, bob)
	if _, isErr := call(t, ctx, as, "get_my_todo_list", nil); isErr {
		t.Fatal("alice's call failed")
	}
	call(t, ctx, bs, "get_my_todo_list", nil)

	status, body, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions?user=alice", token)
	var raw struct {
		Sessions []map[string]any
	}
	json.Unmarshal([]byte(body), &raw)
	if status != http.StatusOK || len(raw.Sessions) != 1 || raw.Sessions[0]["id"] != as.ID() || raw.Sessions[0]["subject"] != "alice" || raw.Sessions[0]["client_name"] != "e2e" {
		t.Fatalf("sessions of alice: %d %s", status, body)
	}
	if status, body, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions", token); status != http.StatusOK || !strings.Contains(body, bs.ID()) || !strings.Contains(body, as.ID()) {
		t.Errorf("all sessions: %d %s", status, body)
	}

	status, body, _ = adminCall(t, ctx, http.MethodGet, base+"/sessions/"+as.ID(), token)
	if status != http.StatusOK || !strings.Contains(body, `"audience"`) || !strings.Contains(body, `"act"`) || !strings.Contains(body, `"expiry"`) {
		t.Fatalf("alice's session: %d %s", status, body)
	}
	var described struct {
		Node  string
		Epoch int64
		Live  bool
	}
	json.Unmarshal([]byte(body), &described)
	if !described.Live || described.Node == "" || described.Epoch < 1 {
		t.Errorf("alice's session is not described as live on a node: %s", body)
	}
	for _, secret := range []string{alice, bob, `"token"`, "eyJ"} {
		if strings.Contains(body, secret) {
			t.Errorf("the session's description shows a token (%.12s…): %s", secret, body)
		}
	}
	if status, _, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions/nosuchsession", token); status != http.StatusNotFound {
		t.Errorf("unknown session: %d", status)
	}
	if status, body, _ := adminCall(t, ctx, http.MethodGet, base+"/nodes", token); status != http.StatusOK || !strings.Contains(body, `"self":true`) ||
		!strings.Contains(body, `"role":"both"`) || !strings.Contains(body, `"sessions":2`) || !strings.Contains(body, `"address":"`+described.Node+`"`) {
		t.Errorf("nodes: %d %s", status, body)
	}
	if status, body, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions?node="+described.Node, token); status != http.StatusOK ||
		!strings.Contains(body, as.ID()) || !strings.Contains(body, bs.ID()) {
		t.Errorf("sessions of this node: %d %s", status, body)
	}
	if status, body, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions?node=127.0.0.1:1", token); status != http.StatusOK || strings.Contains(body, as.ID()) {
		t.Errorf("sessions of another node: %d %s", status, body)
	}
	if status, body, _ := adminCall(t, ctx, http.MethodPost, base+"/nodes/127.0.0.1:1/drain", token); status != http.StatusNotFound {
		t.Errorf("draining a node that is not a member: %d %s", status, body)
	}

	// Access tokens of the authorization server are admin tokens when they
	// carry the admin scope, which the dev IdP grants to user admin only,
	// through a configured client only (an exclusive scope): alice asking
	// for it gets a token without it, refused 403, and so does admin
	// through a registered client (any web page can register one).
	opsToken := operatorLogin(t, ctx, d.Issuer, d.MCP, clientSecret, "admin", "openid pingmcp:admin")
	if status, body, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions/"+as.ID(), opsToken); status != http.StatusOK {
		t.Errorf("the admin user's access token: %d %s", status, body)
	}
	viaRegistered := login(t, ctx, d.Issuer, d.MCP, "admin", "openid pingmcp:admin")
	if status, _, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions", viaRegistered); status != http.StatusForbidden {
		t.Errorf("the admin user's token through a registered client: %d, want 403 (no admin scope)", status)
	}
	aliceAsAdmin := operatorLogin(t, ctx, d.Issuer, d.MCP, clientSecret, "alice", "openid pingmcp:admin")
	if status, _, h := adminCall(t, ctx, http.MethodGet, base+"/sessions", aliceAsAdmin); status != http.StatusForbidden ||
		!strings.Contains(h.Get("WWW-Authenticate"), `error="insufficient_scope"`) || !strings.Contains(h.Get("WWW-Authenticate"), `scope="pingmcp:admin"`) {
		t.Errorf("alice's token without the admin scope: %d %q", status, h.Get("WWW-Authenticate"))
	}
	if status, _, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions", alice); status != http.StatusForbidden {
		t.Errorf("alice's MCP token: %d", status)
	}

	// The same through the CLI.
	adminURL := "--admin-url=http://" + adminAddr
	env := []string{"PINGMCP_ADMIN_TOKEN=" + token}
	if out, _, code := runCLI(t, env, "sessions", "ls", adminURL, "-o", "json"); code != 0 || !strings.Contains(out, as.ID()) || !strings.Contains(out, bs.ID()) {
		t.Errorf("sessions ls -o json: %d %s", code, out)
	}
	if out, _, code := runCLI(t, env, "sessions", "ls", adminURL, "--user", "bob"); code != 0 || !strings.Contains(out, bs.ID()) || strings.Contains(out, as.ID()) || !strings.HasPrefix(out, "ID ") {
		t.Errorf("sessions ls --user bob: %d\n%s", code, out)
	}
	if out, _, code := runCLI(t, env, "sessions", "show", as.ID(), adminURL); code != 0 || !strings.Contains(out, "user:") || !strings.Contains(out, "cached token:") || strings.Contains(out, "eyJ") {
		t.Errorf("sessions show: %d\n%s", code, out)
	}
	if out, _, code := runCLI(t, []string{"PINGMCP_ADMIN_TOKEN=" + opsToken}, "sessions", "ls", adminURL, "--node", described.Node); code != 0 || !strings.Contains(out, as.ID()) || !strings.Contains(out, "live") {
		t.Errorf("sessions ls --node with the admin user's token: %d\n%s", code, out)
	}
	if out, _, code := runCLI(t, env, "nodes", "ls", adminURL); code != 0 || !strings.Contains(out, "yes") || !strings.Contains(out, "both") || !strings.Contains(out, "ROUTE FROM IT") || !strings.Contains(out, "local") {
		t.Errorf("nodes ls: %d\n%s", code, out)
	}
	if _, errOut, code := runCLI(t, nil, "sessions", "ls", adminURL); code != 2 || !strings.Contains(errOut, "no admin token") {
		t.Errorf("sessions ls without a token: %d %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, []string{"PINGMCP_ADMIN_TOKEN=wrong-token-of-length"}, "sessions", "ls", adminURL); code != 1 || !strings.Contains(errOut, "invalid admin token") {
		t.Errorf("sessions ls with a wrong token: %d %s", code, errOut)
	}

	// Metrics, behind the same token, move when what they count happens.
	metricsURL := "http://" + adminAddr + "/metrics"
	if status, _, _ := adminCall(t, ctx, http.MethodGet, metricsURL, ""); status != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d", status)
	}
	metric := func(name string) float64 { return scrape(t, ctx, metricsURL, token, name) }
	calls := `pingmcp_request_duration_seconds_count{method="tools/call",status="200"}`
	before := metric(calls)
	exchangesBefore := metric(`pingmcp_token_exchanges_total{result="cached"}`)
	call(t, ctx, bs, "get_my_todo_list", nil)
	// The edge counts a request once its last byte is out: the client may
	// read the answer first.
	after := metric(calls)
	for i := 0; after == before && i < 100; i++ {
		time.Sleep(20 * time.Millisecond) // polling the effect of the call
		after = metric(calls)
	}
	if after != before+1 {
		t.Errorf("%s went from %v to %v after one call", calls, before, after)
	}
	if after := metric(`pingmcp_token_exchanges_total{result="cached"}`); after <= exchangesBefore {
		t.Errorf("the cached-token count did not move (%v → %v)", exchangesBefore, after)
	}
	if n := metric(`pingmcp_activations_total{outcome="new"}`); n < 2 {
		t.Errorf("new activations: %v, want at least 2", n)
	}
	if n := metric(liveSessions); n != 2 {
		t.Errorf("live session actors: %v, want 2", n)
	}
	if n := metric("pingmcp_sessions_stored"); n != 2 {
		t.Errorf("stored sessions: %v, want 2", n)
	}

	// Ending alice's session: her actor stops at once (its open standalone
	// stream ends, so her client's connection ends), her client is told the
	// session is gone; bob's goes on.
	aliceGone := make(chan error, 1)
	go func() { aliceGone <- as.Wait() }()
	if out, errOut, code := runCLI(t, env, "sessions", "kill", as.ID(), adminURL); code != 0 || !strings.Contains(out, "ended") {
		t.Fatalf("sessions kill: %d %s %s", code, out, errOut)
	}
	select {
	case <-aliceGone:
	case <-time.After(30 * time.Second):
		t.Fatal("alice's standalone stream stayed open after her session was ended")
	}
	var live float64
	if !poll(ctx, func() bool { live = metric(liveSessions); return live == 1 }) {
		t.Errorf("live session actors after alice's session was ended: %v, want 1 (bob's)", live)
	}
	// The token exchanged for alice's session is revoked at the
	// authorization server.
	if d.awaitCount(ctx, `"msg":"access token revoked","component":"idp","client_id":"pingmcp","sub":"alice"`, 1) < 1 {
		t.Error("the token exchanged for alice's session was not revoked at the authorization server")
	}
	if !d.logged(`"msg":"admin: session ended"`, `"tokens_revoked":1`) {
		t.Error("the kill does not say it revoked the session's exchanged token")
	}
	// The audit log has the kill: who, what, the outcome.
	if rec := d.line(`"action":"sessions.kill"`); !containsAll(rec, `"log":"audit"`, `"operator":"static-admin-token"`, `"target":"`+as.ID()+`"`, `"outcome":"ok"`) {
		t.Errorf("the kill's audit record: %s", rec)
	}
	if _, errOut, code := runCLI(t, env, "sessions", "kill", as.ID(), adminURL); code != 1 || !strings.Contains(errOut, "no such session") {
		t.Errorf("killing it again: %d %s", code, errOut)
	}
	if _, err := as.CallTool(ctx, &mcp.CallToolParams{Name: "get_my_todo_list"}); err == nil {
		t.Error("alice's session still works after an operator ended it")
	}
	if _, isErr := call(t, ctx, bs, "get_my_todo_list", nil); isErr {
		t.Error("bob's session was hurt")
	}
	if status, _, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions/"+as.ID(), token); status != http.StatusNotFound {
		t.Errorf("alice's ended session is still listed: %d", status)
	}
	// Revoking bob: his sessions end, his current token is refused on
	// every request from then on (this node reloads revocations every
	// 500 ms), and a token he gets by signing in again works.
	// Bob also has a principal actor (stateless calls), holding a token
	// exchanged for him: the revocation stops it too.
	if status, body := rawStatelessCall(t, ctx, d.MCP, bob, "get_my_todo_list"); status != http.StatusOK {
		t.Fatalf("bob's stateless call: %d %s", status, body)
	}
	revoked := time.Now()
	out, errOut, code := runCLI(t, env, "users", "revoke", "bob", "--for", "10m", adminURL)
	if code != 0 || !strings.Contains(out, "1 sessions ended, 2 live actors stopped") {
		t.Fatalf("users revoke bob: %d %s %s", code, out, errOut)
	}
	for {
		status, _ := rawStatelessCall(t, ctx, d.MCP, bob, "get_my_todo_list")
		if status == http.StatusUnauthorized {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("bob's revoked token is still accepted (%d)", status)
		}
		time.Sleep(20 * time.Millisecond) // polling the effect of a revocation
	}
	t.Logf("revocation took effect after %v", time.Since(revoked).Round(time.Millisecond))
	if _, err := bs.CallTool(ctx, &mcp.CallToolParams{Name: "get_my_todo_list"}); err == nil {
		t.Error("bob's session still works after he was revoked")
	}
	// iat has a precision of one second: a token issued within the second
	// of the revocation counts as issued before it. Sign in again until
	// the token is from a later second. (The bound is generous: a sign-in
	// and a call, on a loaded machine under the race detector, can take
	// seconds after the token's issue.)
	for {
		bob2 := login(t, ctx, d.Issuer, d.MCP, "bob", all)
		status, body := rawStatelessCall(t, ctx, d.MCP, bob2, "get_my_todo_list")
		if status == http.StatusOK {
			break
		}
		if status != http.StatusUnauthorized || time.Since(revoked) > 15*time.Second {
			t.Fatalf("bob's new token after the revocation: %d %s", status, body)
		}
	}
	if d.logged(token) {
		t.Error("the admin token appears in the logs")
	}
}

// runCLI runs the pingmcp binary with args and extra environment, and
// returns its output and exit code.
func runCLI(t testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// adminCall sends one admin request with token and returns status and body.
func adminCall(t *testing.T, ctx context.Context, method, url, token string) (int, string, http.Header) {
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

// TestAdminSessions drives the admin API of pingmcp dev with two logged-in
// users: it is refused without the token or with a wrong one, is not on the
// /mcp listener, lists sessions by user, describes one with its exchanged
// token (audience, scopes, act, expiry) but never a token value, and ends
// it: its client is then told the session is gone.
func TestAdminSessions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	token := "admin-" + strings.Repeat("x", 8) + newStateKey(t)[3:19]
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := runDev(t, "--admin-addr", "127.0.0.1:0", "--admin-token-file", tokenFile)
	d.awaitCount(ctx, `"msg":"admin API started"`, 1)
	var rec struct{ Admin string }
	if err := json.Unmarshal([]byte(d.line(`"msg":"admin API started"`)), &rec); err != nil || rec.Admin == "" {
		t.Fatalf("the admin API did not start: %v", err)
	}
	base := "http://" + rec.Admin + "/admin/v1"

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
	for _, secret := range []string{alice, bob, `"token"`, "eyJ"} {
		if strings.Contains(body, secret) {
			t.Errorf("the session's description shows a token (%.12s…): %s", secret, body)
		}
	}
	if status, _, _ := adminCall(t, ctx, http.MethodGet, base+"/sessions/nosuchsession", token); status != http.StatusNotFound {
		t.Errorf("unknown session: %d", status)
	}
	if status, body, _ := adminCall(t, ctx, http.MethodGet, base+"/nodes", token); status != http.StatusOK || !strings.Contains(body, `"self":true`) {
		t.Errorf("nodes: %d %s", status, body)
	}

	// Ending alice's session: her client is told it is gone; bob's goes on.
	if status, body, _ := adminCall(t, ctx, http.MethodDelete, base+"/sessions/"+as.ID(), token); status != http.StatusNoContent {
		t.Fatalf("end alice's session: %d %s", status, body)
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
	if d.logged(token) {
		t.Error("the admin token appears in the logs")
	}
}

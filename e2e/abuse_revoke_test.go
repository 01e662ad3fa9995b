package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// refreshAs refreshes as mcp-remote does when its access token is refused:
// a public client's refresh_token grant at the token endpoint. It returns
// the status and the answer (new tokens, or an OAuth error).
func refreshAs(t *testing.T, ctx context.Context, issuer, clientID, refreshToken string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {clientID}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/as/token.oauth2", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// oauthError is what a token answer says of an error: never its tokens.
func oauthError(answer map[string]any) string {
	return fmt.Sprintf("error=%v description=%v", answer["error"], answer["error_description"])
}

// TestAbuseRevokeSticks (issue 11, item 7): revoking a user through the
// admin API of `pingmcp dev` revokes her grants at the authorization server,
// so the refresh token her client holds (rotated once before, as clients
// do) fails with invalid_grant and her current access token is refused at
// the edge; only a new interactive login gives her tokens that work, and it
// does at once (for= refuses the tokens issued up to the revocation, not new
// logins). Another user's refresh keeps working.
func TestAbuseRevokeSticks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, adminAddr, adminToken := runDevAdmin(t)
	const all = "openid offline_access todo_api:read todo_api:write"

	alice, aliceClient := loginGrant(t, ctx, d.Issuer, d.MCP, "alice", all)
	bob, bobClient := loginGrant(t, ctx, d.Issuer, d.MCP, "bob", all)
	status, fresh := refreshAs(t, ctx, d.Issuer, aliceClient, alice["refresh_token"].(string))
	if status != http.StatusOK || fresh["refresh_token"] == nil {
		t.Fatalf("refresh before the revocation: %d %s", status, oauthError(fresh))
	}
	access, refresh := fresh["access_token"].(string), fresh["refresh_token"].(string)
	as := connectAs(t, ctx, d.MCP, access)
	if out, isErr := call(t, ctx, as, "get_my_todo_list", nil); isErr {
		t.Fatalf("alice's call before the revocation: %s", out)
	}

	status, body, _ := adminCall(t, ctx, http.MethodPost, "http://"+adminAddr+"/admin/v1/users/alice/revoke?for=1h", adminToken)
	var rev struct {
		RevokedAt     time.Time `json:"revoked_at"`
		GrantsRevoked bool      `json:"grants_revoked"`
		GrantsError   string    `json:"grants_error"`
		SessionsEnded int       `json:"sessions_ended"`
	}
	if err := json.Unmarshal([]byte(body), &rev); err != nil || status != http.StatusOK || rev.SessionsEnded != 1 {
		t.Fatalf("revoke alice: %d %s", status, body)
	}
	if !rev.GrantsRevoked || rev.GrantsError != "" {
		t.Errorf("revoke alice: her grants were not revoked: %s", body)
	}

	// What mcp-remote does next: its refresh token no longer works, and the
	// access token it has is refused.
	status, out := refreshAs(t, ctx, d.Issuer, aliceClient, refresh)
	if status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Errorf("alice's refresh after the revocation: %d %s, want 400 invalid_grant", status, oauthError(out))
	}
	// Every edge reloads the revocations every 500 ms: the refusal comes
	// within that (README), polled for here.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		status, body := rawStatelessCall(t, ctx, d.MCP, access, "get_my_todo_list")
		if status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's access token 5 s after the revocation: %d %s, want 401", status, body)
		}
	}
	// The original refresh token was spent by the rotation; it stays so.
	if status, _ := refreshAs(t, ctx, d.Issuer, aliceClient, alice["refresh_token"].(string)); status != http.StatusBadRequest {
		t.Errorf("alice's first refresh token after the revocation: %d, want 400", status)
	}
	// Bob's grant is his own.
	if status, out := refreshAs(t, ctx, d.Issuer, bobClient, bob["refresh_token"].(string)); status != http.StatusOK {
		t.Errorf("bob's refresh after alice's revocation: %d %s", status, oauthError(out))
	}

	// A new interactive login works. The edges compare a token's iat, which
	// has whole seconds, with the revocation's time: a token of the very
	// second of the revocation is refused too (README), so the login waits
	// for the clock to leave that second.
	time.Sleep(time.Until(rev.RevokedAt.Truncate(time.Second).Add(time.Second)))
	again, againClient := loginGrant(t, ctx, d.Issuer, d.MCP, "alice", all)
	as = connectAs(t, ctx, d.MCP, again["access_token"].(string))
	if out, isErr := call(t, ctx, as, "get_my_todo_list", nil); isErr {
		t.Errorf("alice's call after a new login: %s", out)
	}
	if status, out := refreshAs(t, ctx, d.Issuer, againClient, again["refresh_token"].(string)); status != http.StatusOK {
		t.Errorf("alice's refresh after a new login: %d %s", status, oauthError(out))
	}
}

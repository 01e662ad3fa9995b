package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// restartDev kills d (SIGKILL: nothing is written on the way out) and
// starts pingmcp dev again on the same addresses with args.
func restartDev(t *testing.T, d *devProcess, args ...string) *devProcess {
	t.Helper()
	mcp, _ := url.Parse(d.MCP)
	idp, _ := url.Parse(d.Issuer)
	api, _ := url.Parse(d.TodoAPI)
	d.kill()
	return runDev(t, append([]string{"--addr", mcp.Host, "--idp-addr", idp.Host, "--todo-api-addr", api.Host}, args...)...)
}

// stages lists the oauth stages among events.
func stages(events []sdkEvent) []string {
	var out []string
	for _, e := range events {
		if e.Event == "oauth" {
			out = append(out, e.Stage)
		}
	}
	return out
}

// printed is every event the client printed so far.
func printed(c *sdkClient) []sdkEvent {
	var out []sdkEvent
	for _, l := range c.stdout() {
		var e sdkEvent
		if json.Unmarshal([]byte(l), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// TestDevRestartKeepsLogins (issue 12, item 5): the official TypeScript SDK
// client logs in against `pingmcp dev` and keeps its registration and
// tokens in a file, as a desktop client does; dev is killed and started
// again on its state file and ports; a second run of the client then
// connects, refreshes its tokens and calls a tool without registering or
// logging in again. Control: with --dev-state off, the restarted dev knows
// neither the client nor its refresh token, and the second run has to
// register and log in again.
func TestDevRestartKeepsLogins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	for _, keep := range []bool{true, false} {
		name := map[bool]string{true: "state file", false: "dev-state off"}[keep]
		t.Run(name, func(t *testing.T) {
			state := "off"
			if keep {
				state = filepath.Join(t.TempDir(), "pingmcp", "dev-state.json")
			}
			clientFile := filepath.Join(t.TempDir(), "client.json")
			d := runDev(t, "--dev-state", state)

			first := startSDKClient(t, ctx, nodeBin, d.MCP, "alice", "--client-file", clientFile)
			if got := stages(first.seen); !slices.Contains(got, "registered") || !slices.Contains(got, "login form") {
				t.Fatalf("first run: oauth stages %v, want a registration and a login", got)
			}
			first.call(ctx, "get_my_todo_list", nil)
			first.finish(ctx)
			var saved struct {
				Client struct {
					ClientID string `json:"client_id"`
				}
				Tokens struct {
					RefreshToken string `json:"refresh_token"`
				}
			}
			if b, err := os.ReadFile(clientFile); err != nil || json.Unmarshal(b, &saved) != nil || saved.Client.ClientID == "" || saved.Tokens.RefreshToken == "" {
				t.Fatalf("the client kept no registration or refresh token: %v", err)
			}
			if keep {
				fi, err := os.Stat(state)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("state file %s: %v %v, want mode 0600", state, fi, err)
				}
				b, _ := os.ReadFile(state)
				for _, tok := range first.tokens() {
					if strings.Contains(string(b), tok) {
						t.Errorf("the state file holds a token the client was issued (%.8s…)", tok)
					}
				}
			}

			d = restartDev(t, d, "--dev-state", state)
			second := startSDKClient(t, ctx, nodeBin, d.MCP, "alice", "--client-file", clientFile)
			got := stages(second.seen)
			if !slices.Contains(got, "loaded") {
				t.Fatalf("second run: oauth stages %v: the client did not load its registration", got)
			}
			relogin := slices.Contains(got, "registered") || slices.Contains(got, "authorize") || slices.Contains(got, "login form")
			if !keep {
				// The control: the restarted dev forgot the client and its
				// grant, so the client was made to register and log in.
				if !relogin {
					t.Errorf("with --dev-state off, the second run did not register and log in again: %v", got)
				}
				status, out := refreshAs(t, ctx, d.Issuer, saved.Client.ClientID, saved.Tokens.RefreshToken)
				if status == http.StatusOK {
					t.Errorf("with --dev-state off, the refresh token of before the restart works: %s", oauthError(out))
				}
				second.finish(ctx)
				return
			}
			if relogin {
				t.Fatalf("second run after the restart: oauth stages %v, want neither a registration nor a login", got)
			}
			second.refresh(ctx)
			if r := second.call(ctx, "get_my_todo_list", nil); r.IsError {
				t.Errorf("a tool call after the refresh: %s", r.text())
			}
			if got := stages(printed(second)); slices.Contains(got, "registered") || slices.Contains(got, "login form") {
				t.Errorf("second run: oauth stages %v, want no registration or login", got)
			}
			second.finish(ctx)
		})
	}
}

// TestDevRestartKeepsRevocations (issue 12, item 5): a grant revoked before
// `pingmcp dev` restarts stays revoked after it, whether its refresh token
// was revoked by its client (RFC 7009) or its user's grants by an
// administrator (pingmcp's admin API, through the grant management
// service); a grant nobody revoked keeps working (the control: without the
// state file, it would not either). dev's --access-token-ttl sets the
// access tokens' lifetime.
func TestDevRestartKeepsRevocations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	state := filepath.Join(t.TempDir(), "dev-state.json")
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	adminToken := "admin-" + newStateKey(t)[3:27]
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := runDev(t, "--dev-state", state, "--admin-token-file", tokenFile, "--access-token-ttl", "90s")
	const all = "openid offline_access todo_api:read todo_api:write"
	alice, aliceClient := loginGrant(t, ctx, d.Issuer, d.MCP, "alice", all)
	bobRevoked, bobClient := loginGrant(t, ctx, d.Issuer, d.MCP, "bob", all)
	bobKept, bobKeptClient := loginGrant(t, ctx, d.Issuer, d.MCP, "bob", all)
	if in, _ := alice["expires_in"].(float64); in < 80 || in > 90 {
		t.Errorf("--access-token-ttl 90s: the access token expires in %vs", alice["expires_in"])
	}

	if status, body, _ := adminCall(t, ctx, http.MethodPost, "http://"+d.Admin+"/admin/v1/users/alice/revoke?for=1h", adminToken); status != http.StatusOK || !strings.Contains(body, `"grants_revoked":true`) {
		t.Fatalf("revoke alice: %d %s", status, body)
	}
	form := url.Values{"token": {bobRevoked["refresh_token"].(string)}, "client_id": {bobClient}}
	resp, err := http.PostForm(d.Issuer+"/as/revoke_token.oauth2", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("RFC 7009 revocation of bob's first refresh token: %d", resp.StatusCode)
	}

	d = restartDev(t, d, "--dev-state", state, "--admin-token-file", tokenFile)
	for name, g := range map[string]struct {
		client, refresh string
	}{
		"alice's grant, revoked by an administrator": {aliceClient, alice["refresh_token"].(string)},
		"bob's grant, revoked by its client":         {bobClient, bobRevoked["refresh_token"].(string)},
	} {
		if status, out := refreshAs(t, ctx, d.Issuer, g.client, g.refresh); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Errorf("%s, after the restart: %d %s, want 400 invalid_grant", name, status, oauthError(out))
		}
	}
	if status, out := refreshAs(t, ctx, d.Issuer, bobKeptClient, bobKept["refresh_token"].(string)); status != http.StatusOK {
		t.Errorf("bob's other grant after the restart: %d %s", status, oauthError(out))
	}
}

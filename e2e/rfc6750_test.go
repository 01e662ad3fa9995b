package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The edge and the Todo API refuse credentials the same way, as RFC 6750
// §3.1 says (issue 12 item 7): no bearer credential (another scheme) 401
// without an error code, a malformed one 400 invalid_request, a token that
// is not valid for the resource (the Todo API: not delegated) 401
// invalid_token. At 03bb1f8 the edge answered the malformed credential and
// the Basic one 401 invalid_token, and the Todo API the Basic one 400 and
// the undelegated token 403.
func TestRFC6750StatusCodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := runDev(t)
	ask := func(method, url, authorization string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", authorization)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	undelegated := login(t, ctx, d.Issuer, d.TodoAPI, "alice", "openid todo_api:read")
	for _, target := range []struct{ name, method, url string }{
		{"edge", http.MethodPost, d.MCP},
		{"Todo API", http.MethodGet, d.TodoAPI + "/api/todos"},
	} {
		for _, c := range []struct {
			name, authorization string
			status              int
			errorCode           string // "" for none
		}{
			{"another scheme", "Basic YWxpY2U6YWxpY2U=", http.StatusUnauthorized, ""},
			{"malformed bearer", "Bearer a b", http.StatusBadRequest, "invalid_request"},
			{"not a token", "Bearer not-a-token", http.StatusUnauthorized, "invalid_token"},
		} {
			status, chal := ask(target.method, target.url, c.authorization)
			if status != c.status || !strings.HasPrefix(chal, "Bearer") ||
				(c.errorCode == "") == strings.Contains(chal, "error=") ||
				(c.errorCode != "" && !strings.Contains(chal, `error="`+c.errorCode+`"`)) {
				t.Errorf("%s, %s: %d %q, want %d with error %q", target.name, c.name, status, chal, c.status, c.errorCode)
			}
		}
	}
	// A genuine token for the Todo API that is not delegated (no act): not
	// valid there, so 401 invalid_token.
	status, chal := ask(http.MethodGet, d.TodoAPI+"/api/todos", "Bearer "+undelegated)
	if status != http.StatusUnauthorized || !strings.Contains(chal, `error="invalid_token"`) || !strings.Contains(chal, "delegated") {
		t.Errorf("Todo API, undelegated token: %d %q, want 401 invalid_token", status, chal)
	}
}

// The official TypeScript SDK client acts on these answers as RFC 6750
// means them (issue 12 item 7): a stored access token that no longer
// verifies (here its signature altered, as after a key rotation) gets 401
// invalid_token with the resource's challenge, and the client refreshes
// and goes on, without a login or a new registration.
func TestRFC6750OfficialSDKClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	d := runDev(t)
	clientFile := filepath.Join(t.TempDir(), "client.json")
	first := startSDKClient(t, ctx, nodeBin, d.MCP, "alice", "--client-file", clientFile)
	first.call(ctx, "who_am_I", nil)
	first.finish(ctx)

	// Alter the kept access token's signature: still a well-formed bearer
	// credential, no longer a valid token.
	var saved map[string]map[string]any
	b, err := os.ReadFile(clientFile)
	if err != nil || json.Unmarshal(b, &saved) != nil {
		t.Fatalf("read the client file: %v", err)
	}
	access, _ := saved["tokens"]["access_token"].(string)
	if strings.Count(access, ".") != 2 {
		t.Fatal("the client kept no JWT access token")
	}
	last := access[len(access)-2]
	altered := access[:len(access)-2] + map[bool]string{true: "B", false: "A"}[last == 'A'] + access[len(access)-1:]
	saved["tokens"]["access_token"] = altered
	if b, err = json.Marshal(saved); err != nil || os.WriteFile(clientFile, b, 0o600) != nil {
		t.Fatalf("write the client file: %v", err)
	}

	second := startSDKClient(t, ctx, nodeBin, d.MCP, "alice", "--client-file", clientFile)
	refused := false
	for _, e := range second.seen {
		if e.Event == "http" && e.Status == http.StatusUnauthorized && strings.Contains(e.URL, "/mcp") {
			if !strings.Contains(e.WWWAuthenticate, `error="invalid_token"`) ||
				!strings.Contains(e.WWWAuthenticate, `resource_metadata="`+d.MCP[:strings.LastIndex(d.MCP, "/mcp")]+"/.well-known/oauth-protected-resource/mcp") {
				t.Errorf("the altered token's refusal: %q, want invalid_token naming the resource's metadata", e.WWWAuthenticate)
			}
			refused = true
		}
	}
	if !refused {
		t.Fatal("the altered token was not refused with 401")
	}
	if got := stages(second.seen); !slices.Contains(got, "loaded") || slices.Contains(got, "registered") || slices.Contains(got, "login form") {
		t.Errorf("oauth stages %v: want the kept registration, no new one and no login", got)
	}
	if r := second.call(ctx, "who_am_I", nil); r.IsError {
		t.Errorf("a call after the refresh: %s", r.text())
	}
	second.finish(ctx)
}

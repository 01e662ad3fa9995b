package e2e

import (
	"context"
	"net/http"
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

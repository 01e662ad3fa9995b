package devidp

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRegister(t *testing.T) {
	tests := []struct {
		name     string
		body     map[string]any
		wantCode string // "" for success
	}{
		{"https", map[string]any{"redirect_uris": []string{"https://app.example/cb"}}, ""},
		{"loopback IPv4 any port", map[string]any{"redirect_uris": []string{"http://127.0.0.1:33418/callback"}, "token_endpoint_auth_method": "none"}, ""},
		{"localhost", map[string]any{"redirect_uris": []string{"http://localhost:6274/oauth/callback"}}, ""},
		{"loopback IPv6", map[string]any{"redirect_uris": []string{"http://[::1]:8000/cb"}}, ""},
		{"no redirect_uris", map[string]any{"client_name": "x"}, "invalid_redirect_uri"},
		{"http on a public host", map[string]any{"redirect_uris": []string{"http://app.example/cb"}}, "invalid_redirect_uri"},
		{"custom scheme", map[string]any{"redirect_uris": []string{"cursor://anysphere.cursor-retrieval/oauth/callback"}}, "invalid_redirect_uri"},
		{"javascript", map[string]any{"redirect_uris": []string{"javascript:alert(1)"}}, "invalid_redirect_uri"},
		{"fragment", map[string]any{"redirect_uris": []string{"https://app.example/cb#x"}}, "invalid_redirect_uri"},
		{"relative", map[string]any{"redirect_uris": []string{"/cb"}}, "invalid_redirect_uri"},
		{"one bad among good", map[string]any{"redirect_uris": []string{"https://app.example/cb", "http://10.0.0.1/cb"}}, "invalid_redirect_uri"},
		{"secret wanted", map[string]any{"redirect_uris": []string{callback}, "token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"},
		{"client_credentials", map[string]any{"redirect_uris": []string{callback}, "grant_types": []string{"client_credentials"}}, "invalid_client_metadata"},
		{"implicit", map[string]any{"redirect_uris": []string{callback}, "response_types": []string{"token"}}, "invalid_client_metadata"},
		{"wrong types", map[string]any{"redirect_uris": callback}, "invalid_client_metadata"},
		{"name too long", map[string]any{"redirect_uris": []string{callback}, "client_name": strings.Repeat("n", 201)}, "invalid_client_metadata"},
	}
	f := newFixture(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.postJSON(PathRegister, tt.body)
			if tt.wantCode != "" {
				wantError(t, resp, body, http.StatusBadRequest, tt.wantCode)
				return
			}
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("got %d %v", resp.StatusCode, body)
			}
			if id, _ := body["client_id"].(string); len(id) < 16 {
				t.Errorf("client_id %v", body["client_id"])
			}
			if at, _ := body["client_id_issued_at"].(float64); int64(at) != f.clock.Now().Unix() {
				t.Errorf("client_id_issued_at %v", body["client_id_issued_at"])
			}
			if body["token_endpoint_auth_method"] != "none" || body["client_secret"] != nil {
				t.Errorf("auth method %v, secret %v", body["token_endpoint_auth_method"], body["client_secret"])
			}
			if gt := body["grant_types"].([]any); len(gt) != 2 || gt[0] != "authorization_code" || gt[1] != "refresh_token" {
				t.Errorf("grant_types %v", gt)
			}
			if rt := body["response_types"].([]any); len(rt) != 1 || rt[0] != "code" {
				t.Errorf("response_types %v", rt)
			}
			if ru := body["redirect_uris"].([]any); len(ru) != len(tt.body["redirect_uris"].([]string)) {
				t.Errorf("redirect_uris %v", ru)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
}

func TestRegisterNotJSON(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := f.post(PathRegister, url.Values{"redirect_uris": {callback}}, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_client_metadata")
	req, _ := http.NewRequest(http.MethodPost, f.issuer+PathRegister, strings.NewReader("{"))
	req.Header.Set("Content-Type", "application/json")
	resp, body = f.do(req)
	wantError(t, resp, body, http.StatusBadRequest, "invalid_client_metadata")
	req, _ = http.NewRequest(http.MethodOptions, f.issuer+PathRegister, nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if resp, _ := f.do(req); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// The scope a client registers with is echoed, and does not limit what it
// may ask for later: a client registered at its first, read-only login can
// step up to write (MCP authorization's step-up) without registering again.
func TestRegisteredScopeAllowsStepUp(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := f.postJSON(PathRegister, map[string]any{"redirect_uris": []string{callback}, "scope": "openid  todo_api:read"})
	if resp.StatusCode != http.StatusCreated || body["scope"] != "openid todo_api:read" {
		t.Fatalf("register: %d %v", resp.StatusCode, body)
	}
	id := body["client_id"].(string)
	if tokens := f.login(id, url.Values{"scope": {"openid todo_api:read"}}); tokens["scope"] != "openid todo_api:read" {
		t.Errorf("first login: scope %v", tokens["scope"])
	}
	stepped := f.login(id, url.Values{"scope": {"openid todo_api:read todo_api:write"}})
	if stepped["scope"] != "openid todo_api:read todo_api:write" || claims(t, stepped["access_token"].(string))["scope"] != "openid todo_api:read todo_api:write" {
		t.Errorf("step-up: scope %v, want openid todo_api:read todo_api:write", stepped["scope"])
	}
}

func TestRegisteredClientsBounded(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxClients = 2 })
	first := f.registerClient()
	f.clock.Advance(time.Second)
	second := f.registerClient()
	f.clock.Advance(time.Second)
	// Using the first makes the second the least recently used.
	resp, _ := f.authorize(first, nil)
	f.loginForm(resp)
	f.clock.Advance(time.Second)
	third := f.registerClient()

	if resp, _ := f.authorize(second, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forgotten client: %d", resp.StatusCode)
	}
	for _, id := range []string{first, third} {
		resp, _ := f.authorize(id, nil)
		f.loginForm(resp)
	}
	// Configured clients are never forgotten.
	if resp, body := f.post(PathToken, url.Values{"grant_type": {"client_credentials"}}, exchanger, exchangerPW); resp.StatusCode != http.StatusOK {
		t.Errorf("confidential client: %d %v", resp.StatusCode, body)
	}
}

// A flood of registrations (anyone may register) never makes the server
// forget a client in use: one holding unexpired tokens, or whose login is
// under way. It forgets only clients not in use, least recently used
// first; with every client in use, registration is refused, 503
// temporarily_unavailable in RFC 7591's error form with Retry-After, and
// changes nothing. Once a client's use is over, it may be forgotten.
func TestRegistrationFloodKeepsClientsInUse(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxClients = 3 })
	loggedIn := f.registerClient()
	tokens := f.login(loggedIn, nil)
	f.clock.Advance(time.Second)
	midLogin := f.registerClient()
	resp, verifier := f.authorize(midLogin, nil)
	loginID, _ := f.loginForm(resp)
	f.clock.Advance(time.Second)

	var flood []string
	for range 10 {
		flood = append(flood, f.registerClient()) // each forgets the one before
		f.clock.Advance(time.Millisecond)
	}
	resp, refreshed := f.refresh(loggedIn, tokens["refresh_token"].(string))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the logged-in client's refresh after the flood: %d %v", resp.StatusCode, refreshed)
	}
	q := f.redirected(f.submitLogin(loginID, "alice", "alice"))
	resp, body := f.post(PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {callback},
		"client_id": {midLogin}, "code_verifier": {verifier}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the client whose login was under way, after the flood: %d %v", resp.StatusCode, body)
	}
	if resp, _ := f.authorize(flood[0], nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the flood's first client, not in use, was kept: %d", resp.StatusCode)
	}

	// The last of the flood begins a login: every client is in use. (A
	// second on: the lines about the flood's evictions were throttled.)
	f.clock.Advance(time.Second)
	last := flood[len(flood)-1]
	resp, _ = f.authorize(last, nil)
	f.loginForm(resp)
	resp, body = f.postJSON(PathRegister, map[string]any{"redirect_uris": []string{callback}})
	wantError(t, resp, body, http.StatusServiceUnavailable, "temporarily_unavailable")
	if got, want := resp.Header.Get("Retry-After"), strconv.Itoa(int((authRequestTTL + codeTTL).Seconds())); got != want {
		t.Errorf("Retry-After %q, want %s (when the login under way expires)", got, want)
	}
	for _, id := range []string{loggedIn, midLogin, last} {
		resp, _ := f.authorize(id, nil)
		f.loginForm(resp) // still known
	}
	if !strings.Contains(f.logs.String(), "registration refused") {
		t.Errorf("the refusal is not logged:\n%s", f.logs.String())
	}

	// Its login given up and expired, the last of the flood is forgotten;
	// the others hold tokens yet.
	f.clock.Advance(authRequestTTL + codeTTL)
	f.registerClient()
	if resp, _ := f.authorize(last, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a client whose login expired was kept over a new registration: %d", resp.StatusCode)
	}
	resp, body = f.refresh(loggedIn, refreshed["refresh_token"].(string))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the logged-in client's refresh: %d %v", resp.StatusCode, body)
	}
}

// After a restart, a registered client holding unexpired tokens is still
// in use: registrations past the bound do not make the server forget it.
func TestClientInUseAfterRestart(t *testing.T) {
	r := newRestarts(t, filepath.Join(t.TempDir(), "state.json"))
	bound := func(o *Options) { o.MaxClients = 1 }
	f := r.start(bound)
	clientID := f.registerClient()
	tokens := f.login(clientID, nil)

	f = r.start(bound)
	resp, body := f.postJSON(PathRegister, map[string]any{"redirect_uris": []string{callback}})
	wantError(t, resp, body, http.StatusServiceUnavailable, "temporarily_unavailable")
	if resp, body := f.refresh(clientID, tokens["refresh_token"].(string)); resp.StatusCode != http.StatusOK {
		t.Errorf("the client's refresh after the restart and a registration: %d %v", resp.StatusCode, body)
	}
}

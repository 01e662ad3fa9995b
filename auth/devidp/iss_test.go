package devidp

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAuthorizationResponseNamesIssuer: every authorization response, code
// or error, whatever answers it (op's checks, Authorize, the login form),
// carries iss (RFC 9207 §2), and the metadata says so: a client talking to
// several authorization servers (an MCP client) tells by it which one
// answered, and is not fooled into sending a code to another (mix-up).
func TestAuthorizationResponseNamesIssuer(t *testing.T) {
	f := newFixture(t, nil)
	_, meta := f.get(PathASMetadata)
	if meta["authorization_response_iss_parameter_supported"] != true {
		t.Errorf("metadata: authorization_response_iss_parameter_supported = %v", meta["authorization_response_iss_parameter_supported"])
	}
	clientID := f.registerClient()
	wantIss := func(name string, q url.Values) {
		t.Helper()
		if q.Get("iss") != f.issuer || len(q["iss"]) != 1 {
			t.Errorf("%s: iss = %q, want %s once (%v)", name, q["iss"], f.issuer, q)
		}
	}

	// A code.
	resp, _ := f.authorize(clientID, nil)
	id, _ := f.loginForm(resp)
	q := f.redirected(f.submitLogin(id, "alice", "alice"))
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	wantIss("code", q)

	// A login cancelled.
	resp, _ = f.authorize(clientID, nil)
	id, _ = f.loginForm(resp)
	resp, _ = f.post(PathLogin, url.Values{"id": {id}, "action": {"cancel"}}, "", "")
	wantIss("cancelled", f.redirected(resp))

	// Refused by Authorize, and by op's own checks.
	resp, _ = f.authorize(clientID, url.Values{"prompt": {"none"}})
	wantIss("prompt none", f.redirected(resp))
	resp, _ = f.authorize(clientID, url.Values{"response_type": {"token"}})
	if q := f.redirected(resp); q.Get("error") == "" {
		t.Errorf("response_type token: %v", q)
	} else {
		wantIss("response_type token", q)
	}

	// In the fragment when asked for.
	resp, _ = f.authorize(clientID, url.Values{"response_mode": {"fragment"}, "prompt": {"none"}})
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("fragment: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	frag, _ := url.ParseQuery(loc.Fragment)
	wantIss("fragment", frag)

	// In the form posted.
	resp, _ = f.authorize(clientID, url.Values{"response_mode": {"form_post"}})
	id, _ = f.loginForm(resp)
	resp = f.submitLogin(id, "alice", "alice")
	page, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(page), `name="iss" value="`+f.issuer+`"`) || !strings.Contains(string(page), `name="code"`) {
		t.Errorf("form_post: no iss or code field: %s", page)
	}
	// An error posted says what it is (op's form named only code and state).
	resp, _ = f.authorize(clientID, url.Values{"response_mode": {"form_post"}})
	id, _ = f.loginForm(resp)
	resp, _ = f.post(PathLogin, url.Values{"id": {id}, "action": {"cancel"}}, "", "")
	page, _ = io.ReadAll(resp.Body)
	for _, want := range []string{`name="error" value="access_denied"`, `name="iss" value="` + f.issuer + `"`, `name="state" value="st-123"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("form_post error lacks %s: %s", want, page)
		}
	}
}

package transport

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
)

const mcpResource = "http://mcp.test/mcp"

func authEdge(t *testing.T, is *authtest.Issuer) string {
	srv := resourceEdge(t, mcpResource, Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}}),
		Scopes:   []string{"mcp:tools"},
	})
	return srv.URL
}

func bearer(tok string, h map[string]string) map[string]string {
	out := map[string]string{"Authorization": "Bearer " + tok}
	for k, v := range h {
		out[k] = v
	}
	return out
}

func TestEdgeAuthRefusals(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := authEdge(t, is)
	good := is.Claims("alice", mcpResource, "mcp:tools")
	mod := func(k string, v any) map[string]any {
		c := is.Claims("alice", mcpResource, "mcp:tools")
		c[k] = v
		return c
	}
	tokens := map[string]string{}
	activity := records.count("request started")
	tests := []struct {
		name      string
		auth      string
		challenge string // must be in WWW-Authenticate
		noError   bool   // no error= attribute
	}{
		{"no token", "", `resource_metadata="http://mcp.test/.well-known/oauth-protected-resource/mcp"`, true},
		{"basic scheme", "Basic YWxpY2U6YWxpY2U=", `resource_metadata="http://mcp.test/.well-known/oauth-protected-resource/mcp"`, true},
		{"garbage", "Bearer not-a-jwt", `error="invalid_token"`, false},
		{"expired", "Bearer " + is.Token(t, mod("exp", time.Now().Add(-time.Hour).Unix())), `error="invalid_token"`, false},
		{"not yet valid", "Bearer " + is.Token(t, mod("nbf", time.Now().Add(time.Hour).Unix())), `error="invalid_token"`, false},
		{"wrong issuer", "Bearer " + is.Token(t, mod("iss", "http://evil.test")), `error="invalid_token"`, false},
		{"API audience replayed", "Bearer " + is.Token(t, mod("aud", "http://127.0.0.1:8081")), `error="invalid_token"`, false},
		{"wrongly signed", "Bearer " + authtest.NewIssuer(t).Token(t, good), `error="invalid_token"`, false},
		{"unknown kid", "Bearer " + authtest.SignWith(t, jose.RS256, authtest.NewIssuer(t).Key, "nope", good), `error="invalid_token"`, false},
		{"alg none", "Bearer " + authtest.AlgNone(is.Token(t, good)), `error="invalid_token"`, false},
		{"HMAC keyed with the public key", "Bearer " + authtest.SignWith(t, jose.HS256, is.PublicDER(t), "k1", good), `error="invalid_token"`, false},
		{"tampered payload", "Bearer " + authtest.Tamper(t, is.Token(t, good), `"alice"`, `"bob"`), `error="invalid_token"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.auth != "" {
				h["Authorization"] = tt.auth
				tokens[tt.name] = strings.TrimPrefix(tt.auth, "Bearer ")
			}
			for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
				resp, body := call{method, h, initBody}.do(t, url)
				chal := resp.Header.Get("WWW-Authenticate")
				if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(chal, "Bearer ") || !strings.Contains(chal, tt.challenge) {
					t.Fatalf("%s: %d, WWW-Authenticate %q, body %s", method, resp.StatusCode, chal, body)
				}
				if tt.noError == strings.Contains(chal, "error=") {
					t.Errorf("%s: challenge %q (error attribute expected: %v)", method, chal, !tt.noError)
				}
				if !strings.Contains(chal, `scope="mcp:tools"`) {
					t.Errorf("challenge %q names no scope", chal)
				}
				if tt.auth != "" && len(tokens[tt.name]) > 8 && strings.Contains(body+chal, tokens[tt.name]) {
					t.Error("the refusal echoes the token")
				}
			}
		})
	}
	// Refused before the cluster: no actor saw any of those requests.
	if got := records.count("request started"); got != activity {
		t.Errorf("%d requests reached an actor despite their bad tokens", got-activity)
	}
	for name, tok := range tokens {
		if len(tok) > 8 && records.logged(tok) {
			t.Errorf("the %s token was logged", name)
		}
	}
}

// Sessions are bound to the user that opened them, whatever client: another
// user is refused as if the session did not exist, even through the same
// client, while the same user through another client (one that re-registered
// to step up) goes on with the session.
func TestEdgeSessionBinding(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := authEdge(t, is)
	alice := is.Token(t, is.Claims("alice", mcpResource, "mcp:tools"))
	bob := is.Token(t, is.Claims("bob", mcpResource, "mcp:tools"))
	withClient := func(sub, client string) string {
		c := is.Claims(sub, mcpResource, "mcp:tools")
		c["client_id"] = client
		return is.Token(t, c)
	}
	aliceClient, _ := is.Claims("alice", mcpResource, "mcp:tools")["client_id"].(string)
	bobViaAlicesClient := withClient("bob", aliceClient)

	resp, body := call{http.MethodPost, bearer(alice, nil), initBody}.do(t, url)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	h := func(tok string) map[string]string {
		return bearer(tok, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"})
	}
	if resp, body := (call{http.MethodPost, h(alice), `{"jsonrpc":"2.0","method":"notifications/initialized"}`}).do(t, url); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", resp.StatusCode, body)
	}
	for name, tok := range map[string]string{"bob": bob, "bob via alice's client": bobViaAlicesClient} {
		for _, c := range []call{
			{http.MethodPost, h(tok), `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`},
			{http.MethodGet, h(tok), ""},
			{http.MethodDelete, h(tok), ""},
		} {
			resp, body := c.do(t, url)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s on alice's session: %d %s, want 404", name, c.method, resp.StatusCode, body)
			}
		}
	}
	// Alice's session is untouched: her refreshed token is accepted, and
	// so is her token through another client, then hers again.
	newer := is.Claims("alice", mcpResource, "mcp:tools")
	newer["exp"] = time.Now().Add(time.Hour).Unix()
	for i, tok := range []string{alice, is.Token(t, newer), withClient("alice", "another-client"), alice} {
		resp, body := call{http.MethodPost, h(tok), fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, 3+i)}.do(t, url)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"id":%d`, 3+i)) {
			t.Fatalf("alice's token #%d after the refusals: %d %s", i, resp.StatusCode, body)
		}
	}
}

// A verifier that cannot reach the issuer answers 503, not 401: the token is
// not known to be bad.
func TestEdgeIssuerDown(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := authEdge(t, is)
	tok := is.Token(t, is.Claims("alice", mcpResource, "mcp:tools"))
	is.Close()
	resp, body := call{http.MethodPost, bearer(tok, nil), initBody}.do(t, url)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("issuer down: %d %s", resp.StatusCode, body)
	}
}

// While the issuer cannot be reached, every request with a token, anyone's
// (no valid one needed), is answered 503 and spends nothing of its address's
// budget: the line saying so is throttled as a refused token's is, so that
// a flood during an outage cannot fill the log (it was one line a request).
func TestEdgeIssuerDownLogThrottled(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := authEdge(t, is)
	tok := is.Token(t, is.Claims("alice", mcpResource, "mcp:tools"))
	is.Close()
	const line, requests = "could not verify a bearer token", 60
	before := records.count(line)
	start := time.Now()
	for range requests {
		if resp, body := (call{http.MethodPost, bearer(tok, nil), initBody}).do(t, url); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("issuer down: %d %s, want 503", resp.StatusCode, body)
		}
	}
	// At most 5 a second (telemetry.Throttle's default), whatever the
	// machine's pace: the requests' time may span two more of its
	// one-second windows than whole seconds.
	seconds := int(time.Since(start)/time.Second) + 2
	if n := records.count(line) - before; n == 0 || n > 5*seconds {
		t.Errorf("%d requests while the issuer is down logged %d lines in under %d s, want 1 to %d", requests, n, seconds, 5*seconds)
	}
}

// A refused token is logged with the reason it was refused for: a
// well-signed token with a malformed claim names the claim, a token signed
// by another key is called badly signed, and neither line holds the token.
func TestEdgeLogsRefusalReason(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := authEdge(t, is)
	mod := func(k string, v any) string {
		c := is.Claims("alice", mcpResource, "mcp:tools")
		c[k] = v
		return is.Token(t, c)
	}
	for _, tt := range []struct{ token, reason string }{
		{mod("exp", "4102444800"), `error=invalid_token reason=malformed claim "exp": a string`},
		{mod("sub", map[string]any{"id": "alice"}), `error=invalid_token reason=malformed claim "sub": an object`},
		{authtest.NewIssuer(t).Token(t, is.Claims("alice", mcpResource, "mcp:tools")), `error=invalid_token reason=signature does not verify`},
	} {
		before := records.count("bearer token refused " + tt.reason)
		if resp, body := (call{http.MethodPost, bearer(tt.token, nil), initBody}).do(t, url); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d %s, want 401", resp.StatusCode, body)
		}
		// The line is written before the answer.
		if got := records.count("bearer token refused " + tt.reason); got != before+1 {
			t.Errorf("%d new log lines with %s, want 1", got-before, tt.reason)
		}
		if records.logged(tt.token[len(tt.token)-20:]) {
			t.Error("the refused token was logged")
		}
	}
}

// A token that names no client (neither client_id nor azp) is served, but
// the operator is warned, once a process: the clients of one user cannot
// be told apart then (their stateless actors and tasks are shared). A token
// naming its client is not warned of.
func TestTokenWithoutClientWarned(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := authEdge(t, is)
	const warning = "a token names no client"
	before := records.count(warning)
	if resp, body := (call{http.MethodPost, bearer(is.Token(t, is.Claims("alice", mcpResource, "mcp:tools")), nil), initBody}).do(t, url); resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize with a client: %d %s", resp.StatusCode, body)
	}
	if n := records.count(warning) - before; n != 0 {
		t.Errorf("a token naming its client warned of %d times", n)
	}
	for range 3 {
		c := is.Claims("alice", mcpResource, "mcp:tools")
		delete(c, "client_id")
		if resp, body := (call{http.MethodPost, bearer(is.Token(t, c), nil), initBody}).do(t, url); resp.StatusCode != http.StatusOK {
			t.Fatalf("initialize without a client: %d %s", resp.StatusCode, body)
		}
	}
	if n := records.count(warning) - before; n != 1 {
		t.Errorf("tokens naming no client warned of %d times, want once", n)
	}
}

package todoapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
)

// route is one of the four operations, sent with the given Authorization.
type route struct {
	name  string
	scope string
	send  func(t *testing.T, a *testAPI, header map[string]string, id string) response
}

var routes = []route{
	{"GET", ScopeRead, func(t *testing.T, a *testAPI, h map[string]string, id string) response {
		return call(t, http.MethodGet, a.URL+"/api/todos", h, "")
	}},
	{"POST", ScopeWrite, func(t *testing.T, a *testAPI, h map[string]string, id string) response {
		return call(t, http.MethodPost, a.URL+"/api/todos", h, `{"todoText":"must not be stored"}`)
	}},
	{"PATCH", ScopeWrite, func(t *testing.T, a *testAPI, h map[string]string, id string) response {
		return call(t, http.MethodPatch, a.URL+"/api/todos/"+id, h, `{"completed":true}`)
	}},
	{"DELETE", ScopeWrite, func(t *testing.T, a *testAPI, h map[string]string, id string) response {
		return call(t, http.MethodDelete, a.URL+"/api/todos/"+id, h, "")
	}},
}

var challengeAttr = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)

// parseChallenge checks the Bearer scheme and returns the attributes.
func parseChallenge(t *testing.T, h string) map[string]string {
	t.Helper()
	if h != "Bearer" && !strings.HasPrefix(h, "Bearer ") {
		t.Fatalf("WWW-Authenticate %q is not a Bearer challenge", h)
	}
	attrs := map[string]string{}
	for _, m := range challengeAttr.FindAllStringSubmatch(h, -1) {
		attrs[m[1]] = m[2]
	}
	return attrs
}

func TestTokenRefusals(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{})
	aliceToken := is.token(t, "alice")
	seeded := api.mustCreate(t, aliceToken, "seeded")

	// Keys the issuer never published.
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER := is.PublicDER(t)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	with := func(change func(c map[string]any)) string {
		c := is.claims("alice")
		change(c)
		return is.sign(t, c)
	}
	tampered := authtest.Tamper(t, aliceToken, `"alice"`, `"mallory"`)
	algNone := authtest.AlgNone(aliceToken)

	const badRequest, unauthorized, forbidden = http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden
	cases := []struct {
		name          string
		authorization string // "" sends none
		routes        []string
		status        int
		code          string // the challenge's error attribute; "" for none
		wantScope     bool   // the challenge names the route's scope
		descContains  string
	}{
		{name: "no token", status: unauthorized, wantScope: true},
		{name: "basic scheme", authorization: "Basic YWxpY2U6c2VjcmV0", status: unauthorized, wantScope: true}, // no bearer credential
		{name: "bearer without token", authorization: "Bearer", status: badRequest, code: "invalid_request"},
		{name: "bearer with two words", authorization: "Bearer " + aliceToken + " extra", status: badRequest, code: "invalid_request"},
		{name: "token without scheme", authorization: aliceToken, status: unauthorized, wantScope: true}, // a scheme of that name
		{name: "not a JWT", authorization: "Bearer opaque-reference-token", status: unauthorized, code: "invalid_token"},
		{name: "expired", authorization: "Bearer " + with(func(c map[string]any) {
			c["exp"] = time.Now().Add(-10 * time.Minute).Unix()
			c["iat"] = time.Now().Add(-20 * time.Minute).Unix()
		}), status: unauthorized, code: "invalid_token", descContains: "expired"},
		{name: "not yet valid", authorization: "Bearer " + with(func(c map[string]any) {
			c["nbf"] = time.Now().Add(10 * time.Minute).Unix()
		}), status: unauthorized, code: "invalid_token"},
		{name: "no expiry", authorization: "Bearer " + with(func(c map[string]any) { delete(c, "exp") }),
			status: unauthorized, code: "invalid_token"},
		{name: "wrong audience", authorization: "Bearer " + with(func(c map[string]any) {
			c["aud"] = "https://mcp.example.test/mcp"
		}), status: unauthorized, code: "invalid_token"},
		{name: "wrong issuer", authorization: "Bearer " + with(func(c map[string]any) {
			c["iss"] = "https://evil.example.test"
		}), status: unauthorized, code: "invalid_token"},
		{name: "unknown kid", authorization: "Bearer " + authtest.SignWith(t, jose.ES256, otherKey, "key-2", is.claims("alice")),
			status: unauthorized, code: "invalid_token"},
		{name: "known kid, other key", authorization: "Bearer " + authtest.SignWith(t, jose.ES256, otherKey, is.kid, is.claims("alice")),
			status: unauthorized, code: "invalid_token"},
		{name: "alg none", authorization: "Bearer " + algNone, status: unauthorized, code: "invalid_token"},
		{name: "HS256 keyed with the public key", authorization: "Bearer " + authtest.SignWith(t, jose.HS256, pubPEM, is.kid, is.claims("alice")),
			status: unauthorized, code: "invalid_token"},
		{name: "HS256 keyed with the public key DER", authorization: "Bearer " + authtest.SignWith(t, jose.HS256, pubDER, is.kid, is.claims("alice")),
			status: unauthorized, code: "invalid_token"},
		{name: "tampered payload", authorization: "Bearer " + tampered, status: unauthorized, code: "invalid_token"},
		{name: "missing act", authorization: "Bearer " + with(func(c map[string]any) { delete(c, "act") }),
			status: unauthorized, code: "invalid_token", descContains: "act claim"},
		{name: "empty act", authorization: "Bearer " + with(func(c map[string]any) { c["act"] = map[string]any{} }),
			status: unauthorized, code: "invalid_token", descContains: "act claim"},
		{name: "no scope", authorization: "Bearer " + with(func(c map[string]any) { delete(c, "scope") }),
			status: forbidden, code: "insufficient_scope", wantScope: true},
		{name: "read scope only", authorization: "Bearer " + with(func(c map[string]any) { c["scope"] = ScopeRead }),
			routes: []string{"POST", "PATCH", "DELETE"}, status: forbidden, code: "insufficient_scope", wantScope: true},
		{name: "write scope only, as an array", authorization: "Bearer " + with(func(c map[string]any) {
			c["scope"] = []string{"openid", ScopeWrite}
		}), routes: []string{"GET"}, status: forbidden, code: "insufficient_scope", wantScope: true},
	}
	var tokens []string
	for _, tc := range cases {
		if tok, ok := strings.CutPrefix(tc.authorization, "Bearer "); ok {
			tokens = append(tokens, tok)
		}
		for _, rt := range routes {
			if tc.routes != nil && !slices.Contains(tc.routes, rt.name) {
				continue
			}
			t.Run(tc.name+"/"+rt.name, func(t *testing.T) {
				resp := rt.send(t, api, map[string]string{"Authorization": tc.authorization}, seeded.ID)
				if resp.status != tc.status {
					t.Fatalf("status %d, want %d; body %s", resp.status, tc.status, resp.body)
				}
				attrs := parseChallenge(t, resp.header.Get("WWW-Authenticate"))
				if attrs["error"] != tc.code {
					t.Errorf("challenge error %q, want %q (header %q)", attrs["error"], tc.code, resp.header.Get("WWW-Authenticate"))
				}
				if tc.code == "" && attrs["error_description"] != "" {
					t.Errorf("challenge without error has a description: %q", resp.header.Get("WWW-Authenticate"))
				}
				if tc.code != "" && attrs["error_description"] == "" {
					t.Errorf("challenge has no error_description: %q", resp.header.Get("WWW-Authenticate"))
				}
				if want := rt.scope; tc.wantScope && attrs["scope"] != want {
					t.Errorf("challenge scope %q, want %q", attrs["scope"], want)
				}
				if !strings.Contains(attrs["error_description"], tc.descContains) {
					t.Errorf("description %q does not mention %q", attrs["error_description"], tc.descContains)
				}
				e := resp.errorBody(t)
				if tc.code != "" && e.Error != tc.code {
					t.Errorf("body error %q, want %q", e.Error, tc.code)
				}
				if tok, ok := strings.CutPrefix(tc.authorization, "Bearer "); ok && len(tok) > 8 {
					if strings.Contains(string(resp.body), tok) || strings.Contains(resp.header.Get("WWW-Authenticate"), tok) {
						t.Error("the answer echoes the token")
					}
				}
			})
		}
	}

	t.Run("two Authorization headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodDelete, api.URL+"/api/todos/"+seeded.ID, nil)
		req.Header.Add("Authorization", "Bearer "+aliceToken)
		req.Header.Add("Authorization", "Bearer "+aliceToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != badRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
		if attrs := parseChallenge(t, resp.Header.Get("WWW-Authenticate")); attrs["error"] != "invalid_request" {
			t.Errorf("challenge %q", resp.Header.Get("WWW-Authenticate"))
		}
	})

	// Nothing changed: alice still has exactly the seeded todo, incomplete.
	got := api.list(t, aliceToken).list(t)
	if len(got) != 1 || got[0] != seeded {
		t.Errorf("after refused requests the list is %+v, want only %+v", got, seeded)
	}
	logs := api.logs.String()
	for _, tok := range append(tokens, aliceToken) {
		if len(tok) > 8 && strings.Contains(logs, tok) {
			t.Errorf("a token value is in the log")
		}
	}
}

type verifierFunc func(ctx context.Context, token string) (*auth.Token, error)

func (f verifierFunc) Verify(ctx context.Context, token string) (*auth.Token, error) {
	return f(ctx, token)
}

func TestVerifierUnavailable(t *testing.T) {
	is := newTestIssuer(t)
	down := newTestIssuer(t)
	token := down.token(t, "alice")
	down.Close() // its discovery and keys can no longer be fetched

	cases := []struct {
		name     string
		verifier auth.Verifier
	}{
		{"issuer unreachable", down.verifier()},
		{"verifier error", verifierFunc(func(ctx context.Context, token string) (*auth.Token, error) {
			return nil, errors.New("introspection endpoint timed out")
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := NewMemoryStore()
			api := newTestAPI(t, is, Options{Verifier: tc.verifier, Store: store})
			for _, rt := range routes {
				resp := rt.send(t, api, bearer(token), newID())
				if resp.status != http.StatusServiceUnavailable {
					t.Fatalf("%s: status %d, want 503; body %s", rt.name, resp.status, resp.body)
				}
				if h := resp.header.Get("WWW-Authenticate"); h != "" {
					t.Errorf("%s: a 503 carries WWW-Authenticate %q", rt.name, h)
				}
				if e := resp.errorBody(t); e.Error != "temporarily_unavailable" {
					t.Errorf("%s: body error %q", rt.name, e.Error)
				}
			}
			if n := store.users(); n != 0 {
				t.Errorf("the store changed: %d users have lists", n)
			}
		})
	}
}

func TestActors(t *testing.T) {
	is := newTestIssuer(t)
	withAct := func(act any) string {
		c := is.claims("alice")
		if act == nil {
			delete(c, "act")
		} else {
			c["act"] = act
		}
		return is.sign(t, c)
	}
	cases := []struct {
		name   string
		opts   Options
		token  string
		status int
	}{
		{"delegated, any actor", Options{}, withAct(map[string]any{"sub": "some-agent"}), http.StatusOK},
		{"delegated, allowed actor", Options{AllowedActors: []string{"x", testActor}}, withAct(map[string]any{"sub": testActor}), http.StatusOK},
		{"delegated, actor not allowed", Options{AllowedActors: []string{testActor}}, withAct(map[string]any{"sub": "some-agent"}), http.StatusUnauthorized},
		{"delegated, actor without sub", Options{AllowedActors: []string{testActor}}, withAct(map[string]any{"client_id": testActor}), http.StatusUnauthorized},
		// RFC 8693 §4.1: the outermost act is the current actor; nested ones
		// are prior actors and do not count.
		{"allowed actor only in the chain", Options{AllowedActors: []string{testActor}},
			withAct(map[string]any{"sub": "some-agent", "act": map[string]any{"sub": testActor}}), http.StatusUnauthorized},
		{"undelegated refused by default", Options{}, withAct(nil), http.StatusUnauthorized},
		{"undelegated allowed", Options{AllowUndelegated: true}, withAct(nil), http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newTestAPI(t, is, tc.opts)
			resp := api.create(t, tc.token, "hello")
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if tc.status == http.StatusUnauthorized {
				attrs := parseChallenge(t, resp.header.Get("WWW-Authenticate"))
				if attrs["error"] != "invalid_token" || attrs["error_description"] == "" {
					t.Errorf("challenge %q", resp.header.Get("WWW-Authenticate"))
				}
				if n := api.store.(*MemoryStore).users(); n != 0 {
					t.Errorf("a refused create changed the store")
				}
			}
		})
	}
}

// A well-signed token whose exp is a string is refused 401 invalid_token,
// and the log names the claim, not the signature.
func TestMalformedClaimLogged(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{})
	c := is.claims("alice")
	c["exp"] = "4102444800"
	resp := api.list(t, is.sign(t, c))
	if resp.status != http.StatusUnauthorized || resp.errorBody(t).Error != "invalid_token" {
		t.Fatalf("status %d, body %s; want 401 invalid_token", resp.status, resp.body)
	}
	if logs := api.logs.String(); !strings.Contains(logs, `malformed claim`) || !strings.Contains(logs, `exp`) || strings.Contains(logs, "signature") {
		t.Errorf("log does not name the malformed claim:\n%s", logs)
	}
}

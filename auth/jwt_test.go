package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// issuer is a real HTTP authorization server for tests: discovery and JWKS.
type issuer struct {
	srv        *httptest.Server
	key        *rsa.PrivateKey
	kid        string
	jwksHits   atomic.Int32
	mu         sync.Mutex
	extraKeys  []jose.JSONWebKey
	discovered atomic.Int32
}

func newIssuer(t testing.TB) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key, kid: "k1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.discovered.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/pf/JWKS"})
	})
	mux.HandleFunc("/pf/JWKS", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		is.mu.Lock()
		keys := append([]jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "RS256", Use: "sig"}}, is.extraKeys...)
		is.mu.Unlock()
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.srv.URL, "sub": "alice", "aud": "https://mcp.example/mcp", "client_id": "claude",
		"scope": "mcp:tools todo_api:read", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "jti": "t1",
	}
}

func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (is *issuer) verifier() *JWTVerifier {
	return NewJWTVerifier(JWTOptions{Issuer: is.srv.URL, Audiences: []string{"https://mcp.example/mcp"}})
}

func TestJWTVerifierAccepts(t *testing.T) {
	is := newIssuer(t)
	v := is.verifier()
	for name, mutate := range map[string]func(map[string]any){
		"scope string":    func(map[string]any) {},
		"scope array":     func(c map[string]any) { c["scope"] = []string{"mcp:tools", "todo_api:read"} },
		"audience array":  func(c map[string]any) { c["aud"] = []string{"other", "https://mcp.example/mcp"} },
		"skew within 30s": func(c map[string]any) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() },
	} {
		t.Run(name, func(t *testing.T) {
			c := is.claims()
			mutate(c)
			tok, err := v.Verify(context.Background(), sign(t, jose.RS256, is.key, is.kid, c))
			if err != nil {
				t.Fatal(err)
			}
			want := Principal{Issuer: is.srv.URL, Subject: "alice", ClientID: "claude"}
			if tok.Principal != want || !tok.HasScopes("mcp:tools", "todo_api:read") || tok.HasScopes("todo_api:write") {
				t.Errorf("token = %+v", tok)
			}
			// Accepted until its expiry plus the skew allowed: the edge
			// ends the token's streams then.
			if exp := time.Unix(c["exp"].(int64), 0); !tok.Expiry.Equal(exp) || !tok.ValidUntil.Equal(exp.Add(30*time.Second)) {
				t.Errorf("expiry %s, valid until %s; want %s and 30s later", tok.Expiry, tok.ValidUntil, exp)
			}
		})
	}
}

func TestJWTVerifierRefuses(t *testing.T) {
	is := newIssuer(t)
	v := is.verifier()
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&is.key.PublicKey)
	good := sign(t, jose.RS256, is.key, is.kid, is.claims())
	parts := strings.Split(good, ".")

	with := func(k string, val any) map[string]any {
		c := is.claims()
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	tampered := func() string {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"alice"`, `"bob"`, 1))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}
	algNone := func() string {
		header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`))
		return header + "." + parts[1] + "."
	}
	tests := map[string]string{
		"expired":           sign(t, jose.RS256, is.key, is.kid, with("exp", time.Now().Add(-time.Minute).Unix())),
		"not yet valid":     sign(t, jose.RS256, is.key, is.kid, with("nbf", time.Now().Add(time.Minute).Unix())),
		"issued in future":  sign(t, jose.RS256, is.key, is.kid, with("iat", time.Now().Add(time.Hour).Unix())),
		"no expiry":         sign(t, jose.RS256, is.key, is.kid, with("exp", nil)),
		"no subject":        sign(t, jose.RS256, is.key, is.kid, with("sub", nil)),
		"wrong issuer":      sign(t, jose.RS256, is.key, is.kid, with("iss", "https://evil.example")),
		"wrong audience":    sign(t, jose.RS256, is.key, is.kid, with("aud", "http://127.0.0.1:8081")),
		"no audience":       sign(t, jose.RS256, is.key, is.kid, with("aud", nil)),
		"bad scope type":    sign(t, jose.RS256, is.key, is.kid, with("scope", 42)),
		"other key":         sign(t, jose.RS256, other, is.kid, is.claims()),
		"unknown kid":       sign(t, jose.RS256, other, "nope", is.claims()),
		"wrong key type":    sign(t, jose.ES256, ec, is.kid, is.claims()),
		"HMAC with pub key": sign(t, jose.HS256, pubDER, is.kid, is.claims()),
		"alg none":          algNone(),
		"tampered payload":  tampered(),
		"not a JWT":         "abc.def",
		"empty":             "",
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tok)
			if !IsInvalidToken(err) {
				t.Fatalf("Verify = %+v, %v; want invalid_token", got, err)
			}
			if tok != "" && strings.Contains(err.Error(), tok) {
				t.Error("error text contains the token")
			}
		})
	}
}

// An unknown kid refetches the JWKS once (key rotation), shared by
// concurrent callers, and not again within the refetch interval.
func TestJWTVerifierKeyRotation(t *testing.T) {
	is := newIssuer(t)
	v := is.verifier()
	if _, err := v.Verify(context.Background(), sign(t, jose.RS256, is.key, is.kid, is.claims())); err != nil {
		t.Fatal(err)
	}
	if got := is.jwksHits.Load(); got != 1 {
		t.Fatalf("first verify fetched JWKS %d times", got)
	}
	rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.mu.Lock()
	is.extraKeys = append(is.extraKeys, jose.JSONWebKey{Key: &rotated.PublicKey, KeyID: "k2", Algorithm: "RS256", Use: "sig"})
	is.mu.Unlock()

	tok := sign(t, jose.RS256, rotated, "k2", is.claims())
	// Force the cache to look old enough to refetch.
	v.mu.Lock()
	v.fetchedAt = time.Now().Add(-time.Hour)
	v.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := is.jwksHits.Load(); got != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (one refetch shared by 20 callers)", got)
	}
	// Random kids right after a fetch cost nothing.
	for range 5 {
		if _, err := v.Verify(context.Background(), sign(t, jose.RS256, rotated, "random", is.claims())); !IsInvalidToken(err) {
			t.Fatalf("random kid: %v", err)
		}
	}
	if got := is.jwksHits.Load(); got != 2 {
		t.Errorf("unknown kids within the refetch interval fetched JWKS (%d fetches)", got)
	}
	if is.discovered.Load() != 1 {
		t.Errorf("discovery fetched %d times, want 1", is.discovered.Load())
	}
}

// An unreachable issuer is not the token's fault: not invalid_token.
func TestJWTVerifierIssuerDown(t *testing.T) {
	is := newIssuer(t)
	tok := sign(t, jose.RS256, is.key, is.kid, is.claims())
	v := is.verifier()
	is.srv.Close()
	_, err := v.Verify(context.Background(), tok)
	if err == nil || IsInvalidToken(err) {
		t.Fatalf("issuer down: %v, want a non-token error", err)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header []string
		token  string
		ok     bool
		bad    bool
	}{
		{nil, "", false, false},
		{[]string{"Bearer abc.def-ghi_jkl~"}, "abc.def-ghi_jkl~", true, false},
		{[]string{"bearer  abc=="}, "abc==", true, false},
		{[]string{"Basic dXNlcjpwYXNz"}, "", false, false}, // no bearer credential
		{[]string{"Bearer"}, "", true, true},
		{[]string{"Bearer "}, "", true, true},
		{[]string{"Bearer a b"}, "", true, true},
		{[]string{"Bearer ==="}, "", true, true},
		{[]string{"Bearer a", "Bearer b"}, "", true, true},
		{[]string{"abc"}, "", false, false}, // a scheme "abc"
		{[]string{"Bearer-abc"}, "", false, false},
	}
	for _, tt := range tests {
		tok, ok, err := BearerToken(tt.header)
		if tok != tt.token || ok != tt.ok || (err != nil) != tt.bad {
			t.Errorf("BearerToken(%q) = %q, %v, %v", tt.header, tok, ok, err)
		}
	}
}

func TestPrincipalKey(t *testing.T) {
	a := Principal{"https://idp", "alice", "c"}
	b := Principal{"https://idp", "alic", "ec"}
	if a.Key() == b.Key() || a.Key() != (Principal{"https://idp", "alice", "c"}).Key() {
		t.Error("keys must be stable and not collide on field boundaries")
	}
	if strings.Contains(a.Key(), "alice") {
		t.Error("key reveals the subject")
	}
}

// A correctly signed token with a malformed claim is refused as invalid (a
// 401), with an error naming the claim and its JSON type, not its value,
// and not "signature does not verify".
func TestJWTMalformedClaimNamed(t *testing.T) {
	is := newIssuer(t)
	v := is.verifier()
	for _, tc := range []struct {
		claim string
		value any
		want  string
	}{
		{"exp", "4102444800", `malformed claim "exp": a string`},
		{"sub", map[string]any{"id": "alice"}, `malformed claim "sub": an object`},
		{"aud", 7, `malformed claim "aud": a number`},
		{"iat", []any{1}, `malformed claim "iat": an array`},
		{"client_id", true, `malformed claim "client_id": a boolean`},
	} {
		c := is.claims()
		c[tc.claim] = tc.value
		_, err := v.Verify(context.Background(), sign(t, jose.RS256, is.key, is.kid, c))
		if !IsInvalidToken(err) {
			t.Errorf("%s = %v: got %v, want invalid_token", tc.claim, tc.value, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "signature") || strings.Contains(msg, "4102444800") {
			t.Errorf("%s = %v: error %q, want it to contain %q and no value", tc.claim, tc.value, msg, tc.want)
		}
	}
	// A bad signature is still called so.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := v.Verify(context.Background(), sign(t, jose.RS256, other, is.kid, is.claims())); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Errorf("forged signature: %v", err)
	}
}

// A correctly signed token whose claims name a key twice is refused, at
// the top level and inside a claim: two readers could see different claims.
func TestJWTDuplicateClaimRefused(t *testing.T) {
	is := newIssuer(t)
	v := is.verifier()
	base, _ := json.Marshal(is.claims())
	for name, payload := range map[string]string{
		"sub twice":     strings.Replace(string(base), `"sub":"alice"`, `"sub":"alice","sub":"admin"`, 1),
		"act.sub twice": strings.Replace(string(base), `"sub":"alice"`, `"sub":"alice","act":{"sub":"a","sub":"b"}`, 1),
	} {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: is.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", is.kid))
		if err != nil {
			t.Fatal(err)
		}
		obj, err := s.Sign([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := obj.CompactSerialize()
		if _, err := v.Verify(context.Background(), tok); !IsInvalidToken(err) || !strings.Contains(err.Error(), "each key once") {
			t.Errorf("%s: %v, want invalid_token", name, err)
		}
	}
}

// Whatever a JWT holds, checking it stays local (key fetches are paced);
// what is not a compact JWS cannot verify at all.
func TestJWTVerifierCost(t *testing.T) {
	is := newIssuer(t)
	v := is.verifier()
	good := sign(t, jose.RS256, is.key, is.kid, is.claims())
	for tok, want := range map[string]Cost{
		good:                     CostLocal,
		good[:len(good)-1] + "~": CostNone,
		"not-a-token":            CostNone,
		"a.b":                    CostNone,
		"":                       CostNone,
	} {
		if got := v.Cost(tok); got != want {
			t.Errorf("Cost(%.20q…) = %v, want %v", tok, got, want)
		}
	}
}

// A user's key is the same through every client, differs between users,
// and is not a principal's key.
func TestUserKey(t *testing.T) {
	a1 := Principal{Issuer: "https://idp", Subject: "alice", ClientID: "c1"}
	a2 := Principal{Issuer: "https://idp", Subject: "alice", ClientID: "c2"}
	b := Principal{Issuer: "https://idp", Subject: "bob", ClientID: "c1"}
	if a1.UserKey() != a2.UserKey() || a1.UserKey() == b.UserKey() || a1.UserKey() == a1.Key() ||
		(Principal{Issuer: "https://idp\x00alice"}).UserKey() == a1.UserKey() {
		t.Errorf("user keys: %s %s %s", a1.UserKey(), a2.UserKey(), b.UserKey())
	}
}

// A verified token is kept: accepted again until its expiry plus the
// leeway, not past it, and verified anew once the keys were fetched again
// (a key the issuer dropped no longer vouches for it). Refusals are not
// kept; the cache is bounded.
func TestJWTVerifierCache(t *testing.T) {
	is := newIssuer(t)
	clock := time.Now()
	var clockMu sync.Mutex
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	advance := func(d time.Duration) { clockMu.Lock(); clock = clock.Add(d); clockMu.Unlock() }
	v := NewJWTVerifier(JWTOptions{Issuer: is.srv.URL, Audiences: []string{"https://mcp.example/mcp"}, Now: now, MaxCacheEntries: 10})
	ctx := context.Background()
	cached := func() int { v.mu.Lock(); defer v.mu.Unlock(); return len(v.verified.m) }

	good := sign(t, jose.RS256, is.key, is.kid, is.claims())
	first, err := v.Verify(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Verify(ctx, good)
	if err != nil || again != first || cached() != 1 {
		t.Fatalf("second verify: %p (first %p), %v, %d cached; want the kept token", again, first, err, cached())
	}
	// A refusal is not kept.
	c := is.claims()
	c["aud"] = "https://elsewhere.example"
	for range 2 {
		if _, err := v.Verify(ctx, sign(t, jose.RS256, is.key, is.kid, c)); !IsInvalidToken(err) {
			t.Fatalf("wrong audience: %v", err)
		}
	}
	if cached() != 1 {
		t.Fatalf("%d kept after two refusals, want 1", cached())
	}

	// Within the leeway after its expiry, still accepted; past it, refused.
	advance(5*time.Minute + 20*time.Second)
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	advance(15 * time.Second)
	if _, err := v.Verify(ctx, good); !IsInvalidToken(err) {
		t.Fatalf("past expiry and leeway: %v, want invalid_token", err)
	}

	// The issuer replaces its key: a token of the new key makes the verifier
	// fetch the keys again, after which a kept token of the old one is
	// verified again, and refused.
	clockMu.Lock()
	clock = time.Now()
	clockMu.Unlock()
	old := sign(t, jose.RS256, is.key, is.kid, is.claims())
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.mu.Lock()
	is.key, is.kid = rotated, "k2"
	is.mu.Unlock()
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatalf("kept token before the keys were fetched again: %v", err)
	}
	advance(time.Minute) // past RefetchInterval
	if _, err := v.Verify(ctx, sign(t, jose.RS256, rotated, "k2", is.claims())); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, err := v.Verify(ctx, old); !IsInvalidToken(err) {
		t.Fatalf("token of a dropped key after the keys were fetched again: %v, want invalid_token", err)
	}

	// Bounded: 50 tokens, at most 10 kept, every one accepted.
	for i := range 50 {
		c := is.claims()
		c["jti"] = fmt.Sprint("t", i)
		if _, err := v.Verify(ctx, sign(t, jose.RS256, rotated, "k2", c)); err != nil {
			t.Fatal(err)
		}
		if n := cached(); n > 10 {
			t.Fatalf("%d kept, bound 10", n)
		}
	}
}

// go test ./auth -run '^$' -bench JWTVerify
func BenchmarkJWTVerify(b *testing.B) {
	is := newIssuer(b)
	v := is.verifier()
	tok := sign(b, jose.RS256, is.key, is.kid, is.claims())
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.Run("kept", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verified", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := v.verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A key the issuer withdrew stops verifying tokens even when no token names
// an unknown key id: keys older than KeysMaxAge are fetched again, and the
// tokens kept are verified anew by the keys fetched. The issuer published
// its next key (k2) ahead of its use, as PingFederate does, so nothing else
// would make the verifier fetch its keys again.
func TestJWTVerifierDropsAWithdrawnKey(t *testing.T) {
	is := newIssuer(t)
	next, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.extraKeys = []jose.JSONWebKey{{Key: &next.PublicKey, KeyID: "k2", Algorithm: "RS256", Use: "sig"}}
	v, now, advance, fetched := clockedVerifier(is)
	ctx := context.Background()

	claims := func() map[string]any {
		c := is.claims()
		c["exp"] = now().Add(2 * time.Hour).Unix()
		return c
	}
	withdrawn := sign(t, jose.RS256, is.key, "k1", claims())
	if _, err := v.Verify(ctx, withdrawn); err != nil {
		t.Fatal(err)
	}
	// The issuer rotates to k2 and withdraws k1 (retired, or compromised).
	is.mu.Lock()
	is.key, is.kid, is.extraKeys = next, "k2", nil
	is.mu.Unlock()
	if _, err := v.Verify(ctx, sign(t, jose.RS256, next, "k2", claims())); err != nil {
		t.Fatalf("token of the next key, published ahead: %v", err)
	}
	if got := is.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", got)
	}

	advance(time.Hour)
	v.Verify(ctx, withdrawn) // may still pass: the keys are fetched behind it
	fetched()
	if _, err := v.Verify(ctx, withdrawn); !IsInvalidToken(err) {
		t.Fatalf("token of a key the issuer withdrew an hour ago: %v, want invalid_token", err)
	}
	if _, err := v.Verify(ctx, sign(t, jose.RS256, next, "k2", claims())); err != nil {
		t.Fatalf("token of the current key: %v", err)
	}
	if got := is.jwksHits.Load(); got != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (once more when the keys were old)", got)
	}
}

// Keys fetched again that still hold every key held, as it was (nothing
// changed, or the issuer published its next key ahead), keep the tokens
// verified by them: they are not verified again. One whose key changed
// under the same id is.
func TestJWTVerifierKeepsVerifiedTokensWhileTheirKeysStay(t *testing.T) {
	is := newIssuer(t)
	v, now, advance, fetched := clockedVerifier(is)
	ctx := context.Background()
	claims := func() map[string]any {
		c := is.claims()
		c["exp"] = now().Add(3 * time.Hour).Unix()
		return c
	}
	good := sign(t, jose.RS256, is.key, is.kid, claims())
	first, err := v.Verify(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	refetch := func() {
		t.Helper()
		hits := is.jwksHits.Load()
		advance(time.Hour)
		v.Verify(ctx, good) // starts the fetch, behind it
		fetched()
		if is.jwksHits.Load() != hits+1 {
			t.Fatalf("the keys were not fetched again")
		}
	}
	refetch() // the same keys
	if again, err := v.Verify(ctx, good); err != nil || again != first {
		t.Errorf("after the same keys were fetched again: %p (first %p), %v; want the kept token", again, first, err)
	}
	next, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.mu.Lock()
	is.extraKeys = []jose.JSONWebKey{{Key: &next.PublicKey, KeyID: "k2", Algorithm: "RS256", Use: "sig"}}
	is.mu.Unlock()
	refetch() // the next key published ahead
	if again, err := v.Verify(ctx, good); err != nil || again != first {
		t.Errorf("after the next key was published: %p (first %p), %v; want the kept token", again, first, err)
	}
	// k1's id now names another key: verified again, and refused.
	is.mu.Lock()
	is.key = next
	is.extraKeys = nil
	is.mu.Unlock()
	refetch()
	if _, err := v.Verify(ctx, good); !IsInvalidToken(err) {
		t.Errorf("a token of a key replaced under its id: %v, want invalid_token", err)
	}
}

// clockedVerifier is a verifier of is's tokens on a clock of the test's:
// now reads it, advance moves it on, and fetched waits for the keys' fetch
// a Verify started, if any, to end.
func clockedVerifier(is *issuer) (v *JWTVerifier, now func() time.Time, advance func(time.Duration), fetched func()) {
	clock := time.Now()
	var mu sync.Mutex
	now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance = func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	v = NewJWTVerifier(JWTOptions{Issuer: is.srv.URL, Audiences: []string{"https://mcp.example/mcp"}, Now: now})
	fetched = func() {
		v.mu.Lock()
		done := v.inflight
		v.mu.Unlock()
		if done != nil {
			<-done
		}
	}
	return v, now, advance, fetched
}

// Package authtest is a real, minimal OAuth issuer for tests: it serves
// discovery and a JWKS over HTTP and signs access tokens, so that code under
// test verifies tokens exactly as it would against PingFederate.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer signs RS256 tokens with key id "k1" and publishes the key.
type Issuer struct {
	URL string
	Key *rsa.PrivateKey
	srv *httptest.Server
}

// NewIssuer starts an issuer, closed when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &Issuer{Key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/pf/JWKS"})
	})
	mux.HandleFunc("GET /pf/JWKS", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

// Claims are a valid token's claims for subject and audience, valid for five
// minutes; callers change what they need.
func (is *Issuer) Claims(subject, audience string, scopes string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.URL, "sub": subject, "aud": audience, "client_id": "test-client", "scope": scopes,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": rand.Text(),
	}
}

// Token signs claims.
func (is *Issuer) Token(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: is.Key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(maps.Clone(claims)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Close stops serving discovery and keys, as an issuer that went down.
func (is *Issuer) Close() { is.srv.Close() }

// Forged tokens, as an attacker would make them.

// SignWith signs claims with any key and algorithm under key id kid.
func SignWith(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(maps.Clone(claims)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// PublicDER is the issuer's public key, DER-encoded: the "secret" of an
// HMAC key-confusion attack.
func (is *Issuer) PublicDER(t testing.TB) []byte {
	der, err := x509.MarshalPKIXPublicKey(&is.Key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// AlgNone re-heads tok as unsigned ("alg": "none"), keeping its payload.
func AlgNone(tok string) string {
	parts := strings.SplitN(tok, ".", 3)
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + parts[1] + "."
}

// Tamper replaces old by new in tok's payload without signing it again.
func Tamper(t testing.TB, tok, old, new string) string {
	t.Helper()
	parts := strings.SplitN(tok, ".", 3)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !strings.Contains(string(payload), old) {
		t.Fatalf("cannot tamper with %q in the payload", old)
	}
	payload = []byte(strings.Replace(string(payload), old, new, 1))
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

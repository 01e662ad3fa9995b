// Package authtest is a real, minimal OAuth issuer for tests: it serves
// discovery and a JWKS over HTTP and signs access tokens, so that code under
// test verifies tokens exactly as it would against PingFederate.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
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

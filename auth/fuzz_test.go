package auth

// Fuzz targets of the bearer-token parser and the JWT verifier. Seed corpora
// are under testdata/fuzz/<target>/; scripts/test.sh fuzzes each target for
// a bounded time.

import (
	"context"
	"crypto"
	"crypto/rsa"
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pingmcp/pingmcp/auth/authtest"
)

// FuzzBearerToken: BearerToken never panics; a token it returns is a
// non-empty b64token (RFC 6750 §2.1) that is the tail of the one header
// given, after "Bearer" (any case) and blanks; ok is false exactly when no
// header was given, and a refusal is an *Error.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{
		"Bearer abc.def.ghi", "bearer abc", "BEARER   abc==", "Bearer", "Bearer ", "Bearer  ", "Bearer =",
		"Bearer a=b", "Bearer a b", "Bearer\tabc", "Basic YWxpY2U6YWxpY2U=", "Bearer abc\x00", "Bearer caf\xe9",
		"Bearer abc\nBearer def", "\n", "Bearer " + strings.Repeat("A", 8192), "Bearer-abc", " Bearer abc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		// "\n" separates header lines: the header repeated.
		var values []string
		if header != "" {
			values = strings.Split(header, "\n")
		}
		tok, ok, err := BearerToken(values)
		// No bearer credential: no header, or one header of another scheme.
		first, _, _ := strings.Cut(header, " ")
		if want := len(values) > 1 || len(values) == 1 && strings.EqualFold(first, "Bearer"); ok != want {
			t.Fatalf("ok = %v for %q", ok, values)
		}
		if err != nil {
			var aerr *Error
			if !errors.As(err, &aerr) || tok != "" {
				t.Fatalf("refusal %v (%T) with token %q", err, err, tok)
			}
			return
		}
		if !ok {
			return
		}
		if len(values) != 1 || tok == "" || !isToken68(tok) || !strings.HasSuffix(values[0], tok) {
			t.Fatalf("token %q from %q", tok, values)
		}
		scheme := strings.TrimRight(strings.TrimSuffix(values[0], tok), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			t.Fatalf("token %q taken from a %q credential", tok, scheme)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f {
				t.Fatalf("token %q holds %q", tok, c)
			}
		}
	})
}

// The fuzzed verifier's issuer: a fixed key (testdata, made for these tests
// only) and a fixed clock, so that the signed tokens of the committed
// corpus verify on every run.
const fuzzIssuer = "https://issuer.fuzz.test"

var (
	fuzzNow      = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fuzzAudience = "https://mcp.fuzz.test/mcp"
)

func fuzzKey(tb testing.TB) *rsa.PrivateKey {
	b, err := os.ReadFile("testdata/fuzz-issuer-key.pem")
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		tb.Fatal("testdata/fuzz-issuer-key.pem holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// fuzzClaims are a valid token's claims at fuzzNow.
func fuzzClaims(subject string) map[string]any {
	return map[string]any{
		"iss": fuzzIssuer, "sub": subject, "aud": fuzzAudience, "client_id": "fuzz-client", "scope": "mcp:tools todo_api:read",
		"iat": fuzzNow.Unix(), "nbf": fuzzNow.Unix(), "exp": fuzzNow.Add(time.Hour).Unix(), "jti": "jti-" + subject,
	}
}

// roundTripFunc serves the issuer's discovery and JWKS in process.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func fuzzVerifier(key *rsa.PrivateKey, fetches *atomic.Int32) *JWTVerifier {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": fuzzIssuer, "jwks_uri": fuzzIssuer + "/pf/JWKS"})
	})
	mux.HandleFunc("GET /pf/JWKS", func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Result(), nil
	})}
	return NewJWTVerifier(JWTOptions{Issuer: fuzzIssuer, Audiences: []string{fuzzAudience}, HTTPClient: client,
		Now: func() time.Time { return fuzzNow }})
}

// signedByIssuer is a reference check, independent of go-jose: tok is
// byte for byte what a signer holding key wrote (three segments of canonical
// base64url, as RFC 7515 writes them), and its signature over the first two
// verifies under its header's RSA algorithm. It returns the payload.
func signedByIssuer(key *rsa.PublicKey, tok string) (map[string]any, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	var raw [3][]byte
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != p {
			return nil, false
		}
		raw[i] = b
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims map[string]any
	if json.Unmarshal(raw[0], &header) != nil || json.Unmarshal(raw[1], &claims) != nil {
		return nil, false
	}
	hashes := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}
	if len(header.Alg) != 5 || hashes[header.Alg[2:]] == 0 {
		return nil, false
	}
	hash := hashes[header.Alg[2:]]
	h := hash.New()
	h.Write([]byte(parts[0] + "." + parts[1]))
	var err error
	switch header.Alg[:2] {
	case "RS":
		err = rsa.VerifyPKCS1v15(key, hash, h.Sum(nil), raw[2])
	case "PS":
		err = rsa.VerifyPSS(key, hash, h.Sum(nil), raw[2], nil)
	default:
		return nil, false
	}
	return claims, err == nil
}

// verifyTimeout bounds one verification: the keys are in process, so
// anything near it is a hang.
const verifyTimeout = 5 * time.Second

// FuzzJWTVerify feeds the JWT verifier (keys discovered from a real, in
// process issuer) mutations of real tokens: flipped bytes, truncations,
// swapped segments, other algorithms and kids. A token it accepts is byte
// for byte one the issuer's key signed (signedByIssuer), verified with its
// own claims, and the valid seed tokens (RS256 is deterministic: the same
// bytes every run) are accepted; anything else is refused with an
// invalid_token *Error, never a panic, never a hang, and never more than
// one JWKS fetch (the verifier's clock stands still, so unknown kids cause
// no refetch).
func FuzzJWTVerify(f *testing.F) {
	key := fuzzKey(f)
	var fetches atomic.Int32
	v := fuzzVerifier(key, &fetches)

	sign := func(claims map[string]any) string { return authtest.SignWith(f, jose.RS256, key, "k1", claims) }
	valid := map[string]string{} // token → subject
	for _, sub := range []string{"alice", "bob"} {
		valid[sign(fuzzClaims(sub))] = sub
	}
	arrayScope := fuzzClaims("carol")
	arrayScope["scope"] = []string{"mcp:tools"}
	arrayScope["act"] = map[string]any{"sub": "agent"}
	valid[sign(arrayScope)] = "carol"
	for tok, sub := range valid {
		if got, err := v.Verify(context.Background(), tok); err != nil || got.Subject != sub {
			f.Fatalf("valid token of %s: %v", sub, err)
		}
		f.Add(tok)
	}

	alice := sign(fuzzClaims("alice"))
	parts := strings.Split(alice, ".")
	bob := strings.Split(sign(fuzzClaims("bob")), ".")
	mod := func(k string, val any) map[string]any {
		c := fuzzClaims("alice")
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	lastFlipped := func(seg string) string { // same bytes, other spelling
		last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", seg[len(seg)-1])
		return seg[:len(seg)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1])
	}
	for _, s := range []string{
		"", ".", "..", "...", "a.b.c", alice + ".", alice[:len(alice)-1], alice[:len(alice)/2],
		parts[0] + "." + parts[1], parts[0] + "." + bob[1] + "." + parts[2], bob[0] + "." + parts[1] + "." + bob[2],
		parts[1] + "." + parts[0] + "." + parts[2], parts[0] + ".." + parts[2],
		parts[0] + "." + parts[1] + "." + lastFlipped(parts[2]), // a signature spelled another way
		lastFlipped(parts[0]) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "==",
		parts[0] + "." + parts[1] + "\n." + parts[2],
		authtest.AlgNone(alice),
		authtest.SignWith(f, jose.HS256, x509.MarshalPKCS1PublicKey(&key.PublicKey), "k1", fuzzClaims("alice")),
		authtest.SignWith(f, jose.RS256, key, "nope", fuzzClaims("alice")),
		authtest.SignWith(f, jose.RS256, key, "", fuzzClaims("alice")),
		authtest.SignWith(f, jose.PS256, key, "k1", fuzzClaims("alice")), // a valid signature, of another alg than the key's
		sign(mod("exp", fuzzNow.Add(-time.Hour).Unix())),
		sign(mod("exp", nil)),
		sign(mod("sub", "")),
		sign(mod("iss", "https://evil.test")),
		sign(mod("aud", []any{"https://other.test", 7})),
		sign(mod("scope", map[string]any{"a": 1})),
		sign(mod("exp", 1e300)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k1","crit":["b64"],"b64":false}`)) + "." + parts[1] + "." + parts[2],
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k1","kid":"k2"}`)) + "." + parts[1] + "." + parts[2],
		`{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, tok string) {
		ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
		defer cancel()
		type result struct {
			tok *Token
			err error
		}
		done := make(chan result, 1)
		go func() {
			got, err := v.Verify(ctx, tok)
			done <- result{got, err}
		}()
		var res result
		select {
		case res = <-done:
		case <-time.After(verifyTimeout + time.Second):
			t.Fatalf("Verify did not return within %v", verifyTimeout)
		}
		if n := fetches.Load(); n > 1 {
			t.Fatalf("%d JWKS fetches", n)
		}
		sub, ok := valid[tok]
		if res.err == nil {
			claims, signed := signedByIssuer(&key.PublicKey, tok)
			if !signed {
				t.Fatalf("accepted a token the issuer did not sign as such: %q (subject %q)", tok, res.tok.Subject)
			}
			if res.tok.Subject != claims["sub"] || res.tok.Issuer != fuzzIssuer || (ok && res.tok.Subject != sub) {
				t.Fatalf("token of %v verified as %+v", claims["sub"], res.tok.Principal)
			}
			return
		}
		if ok {
			t.Fatalf("valid token of %s refused: %v", sub, res.err)
		}
		var aerr *Error
		if !errors.As(res.err, &aerr) || aerr.Code != CodeInvalidToken {
			t.Fatalf("refusal is %T %v, want an invalid_token *Error", res.err, res.err)
		}
		if len(tok) > 16 && strings.Contains(res.err.Error(), tok) {
			t.Fatal("the error names the token")
		}
	})
}

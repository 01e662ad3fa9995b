package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// A token is reused no longer than the earlier of its expires_in and, for a
// JWT, its exp: a server that gives expires_in in milliseconds (3600000 for
// an hour), or one beyond what a time.Duration holds, had the token handed
// out long after its resource server refuses it (every call of the session
// 401 until it ended), or, for the actor token, every exchange of every
// user refused.
func TestExchangedExpiryIsTheEarlier(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	jwtToken := sign(t, jose.RS256, key, "k1", map[string]any{"sub": "alice", "aud": "http://api.test", "exp": exp.Unix(), "scope": "read"})
	for _, tc := range []struct {
		name, token, expiresIn string
		max                    time.Duration // from now; 0: none known
	}{
		{"expires_in in milliseconds", jwtToken, "3600000", time.Hour},
		{"expires_in beyond a Duration", jwtToken, "18446744073709551615", time.Hour},
		{"expires_in earlier than exp", jwtToken, "60", time.Minute},
		{"no expires_in", jwtToken, "0", time.Hour},
		{"opaque, expires_in beyond a Duration", "opaque-token", "18446744073709551615", 0},
		{"opaque", "opaque-token", "600", 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer := func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"access_token":%q,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":%s}`, tc.token, tc.expiresIn)
			}
			start := time.Now()
			x := NewExchanger(ExchangeOptions{Issuer: tokenEndpoint(t, answer), ClientID: "pingmcp", ClientSecret: "s"})
			got, err := x.Exchange(context.Background(), "USER-TOKEN", "http://api.test", []string{"read"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.max == 0 {
				if !got.Expiry.IsZero() {
					t.Errorf("expiry %v, want none known", got.Expiry)
				}
				return
			}
			if left := got.Expiry.Sub(start); left > tc.max+time.Second || left < tc.max-5*time.Second {
				t.Errorf("expires in %v, want %v", left, tc.max)
			}
		})
	}
	// The actor token likewise: one whose server says 3600000 is not sent
	// once its exp has passed.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600000}`, jwtToken)
	}))
	defer srv.Close()
	x := NewExchanger(ExchangeOptions{ClientID: "c", ClientSecret: "s"})
	x.endpoint = srv.URL
	if _, err := x.actorToken(context.Background()); err != nil {
		t.Fatal(err)
	}
	if x.actorExp.After(exp) {
		t.Errorf("the actor token is reused until %v, past its exp %v", x.actorExp, exp)
	}
}

// The issued token is used as a bearer access token only when the server
// says it is one: RFC 8693's token_type N_A (not usable as an access
// token), a DPoP-bound one, or another issued_token_type than the access
// token asked for was sent to the API as a bearer token, where it failed
// (or, at an API that does not check, a sender-constrained token was used
// unbound). An answer that names neither is taken as before.
func TestExchangedTokenMustBeABearerAccessToken(t *testing.T) {
	const issued = "ISSUED-TOKEN-abcdef0123456789"
	for _, tc := range []struct {
		fields string
		ok     bool
	}{
		{`"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer"`, true},
		{`"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"bearer"`, true},
		{`"token_type":"Bearer"`, true},
		{`"issued_token_type":"urn:ietf:params:oauth:token-type:jwt","token_type":"Bearer"`, true},
		{`"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"N_A"`, false},
		{`"issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"DPoP"`, false},
		{`"issued_token_type":"urn:ietf:params:oauth:token-type:id_token","token_type":"Bearer"`, false},
		{`"issued_token_type":"urn:ietf:params:oauth:token-type:refresh_token","token_type":"N_A"`, false},
	} {
		answer := func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":%q,%s,"expires_in":600}`, issued, tc.fields)
		}
		x := NewExchanger(ExchangeOptions{Issuer: tokenEndpoint(t, answer), ClientID: "pingmcp", ClientSecret: "s"})
		got, err := x.Exchange(context.Background(), "USER-TOKEN", "http://api.test", []string{"read"})
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.fields, err)
		case !tc.ok && err == nil:
			t.Errorf("%s: taken as a bearer access token (%v)", tc.fields, got.Expiry)
		case !tc.ok && strings.Contains(err.Error(), issued):
			t.Errorf("%s: the error quotes the token: %v", tc.fields, err)
		}
	}
}

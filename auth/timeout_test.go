package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/hangtest"
)

// hungIssuer publishes its metadata, then never answers on any endpoint it
// names (token, introspection, keys); reached is signalled when one was
// asked.
func hungIssuer(t *testing.T) (*hangtest.Server, <-chan struct{}) {
	t.Helper()
	var srv *hangtest.Server
	srv = hangtest.New(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/.well-known/openid-configuration" {
			return false
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": srv.URL, "token_endpoint": srv.URL + "/as/token.oauth2",
			"introspection_endpoint": srv.URL + "/as/introspect.oauth2", "jwks_uri": srv.URL + "/pf/JWKS",
		})
		return true
	})
	return srv, srv.Reached
}

const upstreamTimeout = 200 * time.Millisecond

// bounded runs f, which must fail, and checks that it did so within a
// small multiple of the client's timeout, having reached the hung endpoint,
// with an error that says it timed out (and is not a token refusal: the
// edge answers that 503, not 401).
func bounded(t *testing.T, what string, reached <-chan struct{}, f func(context.Context) error) {
	t.Helper()
	start := time.Now()
	err := f(context.Background()) // no deadline of the caller's: the client's timeout must do
	took := time.Since(start)
	if err == nil {
		t.Fatalf("%s: succeeded against a hung server", what)
	}
	if took > 10*upstreamTimeout {
		t.Errorf("%s: failed after %v, want about %v", what, took, upstreamTimeout)
	}
	// The client may give up before the server's goroutine has read the
	// request it sent: that one comes, if late.
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: the hung endpoint was never asked (%v)", what, err)
	}
	var aerr *Error
	if errors.As(err, &aerr) {
		t.Errorf("%s: a hung server is reported as a token refusal: %v", what, err)
	}
	if !strings.Contains(err.Error(), "Timeout") && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("%s: error %q does not say it timed out", what, err)
	}
}

// Every call to the authorization server is bounded by the HTTP client's
// timeout (--upstream-timeout): token exchange, introspection, key fetch.
func TestUpstreamTimeouts(t *testing.T) {
	client := &http.Client{Timeout: upstreamTimeout}
	t.Run("exchange", func(t *testing.T) {
		srv, reached := hungIssuer(t)
		x := NewExchanger(ExchangeOptions{Issuer: srv.URL, ClientID: "pingmcp", ClientSecret: "s", HTTPClient: client})
		bounded(t, "token exchange", reached, func(ctx context.Context) error {
			_, err := x.Exchange(ctx, "subject-token", "http://api.test", []string{"read"})
			return err
		})
	})
	t.Run("introspection", func(t *testing.T) {
		srv, reached := hungIssuer(t)
		v := NewIntrospectionVerifier(IntrospectionOptions{Issuer: srv.URL, ClientID: "pingmcp", ClientSecret: "s",
			Audiences: []string{"http://mcp.test/mcp"}, HTTPClient: client})
		bounded(t, "introspection", reached, func(ctx context.Context) error {
			_, err := v.Verify(ctx, "reference-token")
			return err
		})
	})
	t.Run("jwks", func(t *testing.T) {
		srv, reached := hungIssuer(t)
		v := NewJWTVerifier(JWTOptions{Issuer: srv.URL, Audiences: []string{"http://mcp.test/mcp"}, HTTPClient: client})
		bounded(t, "key fetch", reached, func(ctx context.Context) error {
			_, err := v.Verify(ctx, "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.e30.c2ln")
			return err
		})
	})
}

// Package toolstest helps test toolsets against real servers: a
// tools.Caller whose delegated tokens a test issuer signs, and the Todo API
// served over HTTP, trusting that issuer.
package toolstest

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools"
)

// Caller is a user of Issuer. Delegate signs a delegated token (act:
// pingmcp) for the audience asked, with the scopes asked that the user
// holds, as the session actor's exchange would, and records what was asked.
type Caller struct {
	T       testing.TB
	Issuer  *authtest.Issuer
	Subject string
	Scopes  []string // the user's

	mu      sync.Mutex
	asked   []Asked
	refused int
}

// Asked is what one Delegate call asked for.
type Asked struct {
	Audience string
	Scopes   []string
}

// Claims are none: the tools under test act through Delegate.
func (c *Caller) Claims(context.Context) map[string]any { return nil }

func (c *Caller) Delegate(_ context.Context, audience string, scopes []string) (*tools.Delegation, error) {
	c.mu.Lock()
	c.asked = append(c.asked, Asked{audience, slices.Clone(scopes)})
	c.mu.Unlock()
	held := slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return !slices.Contains(c.Scopes, s) })
	claims := c.Issuer.Claims(c.Subject, audience, strings.Join(held, " "))
	claims["act"] = map[string]any{"sub": "pingmcp"}
	return &tools.Delegation{Token: c.Issuer.Token(c.T, claims), Scopes: held, Expiry: time.Now().Add(time.Minute)}, nil
}

// Refused counts the tokens the tools told refused.
func (c *Caller) Refused(context.Context, *tools.Delegation) {
	c.mu.Lock()
	c.refused++
	c.mu.Unlock()
}

// RefusedCount is how many tokens the tools told refused so far.
func (c *Caller) RefusedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// Asked are the Delegate calls so far, in order.
func (c *Caller) Asked() []Asked {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.asked)
}

// TodoAPI serves the Todo API (in memory) until the test ends, accepting
// is's tokens for its own URL, and returns that URL: its resource too.
func TodoAPI(t testing.TB, is *authtest.Issuer) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	apiURL := "http://" + srv.Listener.Addr().String()
	api, err := todoapi.New(todoapi.Options{Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{apiURL}})})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = api
	srv.Start()
	t.Cleanup(srv.Close)
	return apiURL
}

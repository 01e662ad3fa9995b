// Package outbound makes the HTTP clients by which pingmcp calls other
// services with credentials: the authorization server (token exchange,
// introspection, revocation, grants), the Todo API and the APIs of --apis.
package outbound

import (
	"net/http"
	"time"

	"github.com/pingmcp/pingmcp/telemetry"
)

// DefaultTimeout bounds a call of a client made from nil.
const DefaultTimeout = 10 * time.Second

// Client is a copy of c (of a client with DefaultTimeout when nil) for
// calls to peer that carry credentials: it follows no redirect, and each
// call is a client span carrying its context (telemetry.Client).
//
// A redirect is the caller's answer, never followed: Go's client sends the
// request's Authorization header on to the same host name on any port or
// scheme and to its subdomains, re-sends a 307's or 308's body (a token
// exchange's subject_token, an introspected token) to any host, and turns
// a DELETE into a GET on a 301–303.
func Client(c *http.Client, peer string) *http.Client {
	out := http.Client{Timeout: DefaultTimeout}
	if c != nil {
		out = *c
	}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return telemetry.Client(&out, peer)
}

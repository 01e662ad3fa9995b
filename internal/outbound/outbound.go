// Package outbound makes the HTTP clients by which pingmcp calls other
// services with credentials: the authorization server (token exchange,
// introspection, revocation, grants), the Todo API and the APIs of --apis.
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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

// ErrNotHTTP stands for an answer Go's transport could not read as HTTP.
var ErrNotHTTP = errors.New("the server's answer was not HTTP")

// ErrClosed is a call whose connection the server closed before its
// answer.
var ErrClosed = errors.New("the server closed the connection without an answer")

// ErrNoAnswerInTime is a call that ran out of time (its context's, or its
// client's Timeout).
var ErrNoAnswerInTime = fmt.Errorf("no answer in time: %w", context.DeadlineExceeded)

// Failed is err, from a call that carried credentials or a token, as it
// may be said: what kept the answer from coming (a refused or reset
// connection, a name not found, a certificate not trusted, no answer in
// time, a cancelled call), or ErrNotHTTP. Go's transport quotes an answer
// that is not HTTP (its status or a header line, in its error, also when
// the client's Timeout then passed), and a server or proxy that reflects
// its request would put the call's Basic credentials, token or signed URL
// there: such an error is never passed on, to a log, an audit record or a
// tool's result. What is passed on is the cause alone, never err, and
// without the addresses Go's errors name (the node's own address and port,
// the address a name resolved to, the resolver's): a tool's result shows
// it to the user, to whom the network behind the node is none of its
// business (the host name a call was for, the operator's, stays).
func Failed(err error) error {
	var (
		op *net.OpError
		dn *net.DNSError
		ne net.Error
		cv *tls.CertificateVerificationError
		rh tls.RecordHeaderError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ErrNoAnswerInTime
	case errors.As(err, &dn):
		d := *dn
		d.Server = ""
		return &d
	case errors.As(err, &cv):
		return cv
	case errors.As(err, &ua):
		return ua
	case errors.As(err, &he):
		return he
	case errors.As(err, &ci):
		return ci
	case errors.As(err, &rh):
		return rh
	case errors.As(err, &op) && op.Op != "proxyconnect": // a proxy's CONNECT answer is its to word
		return &net.OpError{Op: op.Op, Net: op.Net, Err: op.Err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrClosed
	}
	return ErrNotHTTP
}

// Answered is Status, saying of a redirect that it was not followed
// (Client follows none): what an error says of an answer it did not take.
func Answered(code int) string {
	if code >= 300 && code < 400 {
		return Status(code) + " (redirects are not followed)"
	}
	return Status(code)
}

// Status is an answer's status as it may be said: its code and standard
// text, never the server's reason phrase (its to choose: as long as its
// headers may be, and it may echo the request).
func Status(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// SameOrigin reports whether two absolute URLs have the same scheme, host
// and port (a port left out being its scheme's default): whether a
// credential meant for one's server reaches the other's.
func SameOrigin(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		return map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

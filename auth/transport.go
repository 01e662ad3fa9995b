package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
)

// errNotHTTP stands for an answer Go's transport could not read as HTTP.
var errNotHTTP = errors.New("the server's answer was not HTTP")

// transportFailed is err, from a call to the authorization server that
// carried credentials or a token, as it may be said: what kept the answer
// from coming (a refused or reset connection, a name not found, a timeout,
// a certificate not trusted, a cancelled request), or errNotHTTP. Go's
// transport quotes an answer that is not HTTP (its status or a header
// line), and a server or proxy that reflects its request would put the
// client's Basic credentials or the user's token there: such an error is
// never passed on, to a log, an audit record or a tool's result.
func transportFailed(err error) error {
	var (
		op  *net.OpError
		dns *net.DNSError
		ne  net.Error
		cv  *tls.CertificateVerificationError
		rh  tls.RecordHeaderError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &op), errors.As(err, &dns), errors.As(err, &cv), errors.As(err, &rh),
		errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci),
		errors.As(err, &ne) && ne.Timeout():
		return err
	}
	return errNotHTTP
}

// statusOf is an answer's status as it may be said: its code and standard
// text, never the server's reason phrase (its to choose: it may echo the
// request).
func statusOf(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

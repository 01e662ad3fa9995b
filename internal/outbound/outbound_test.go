package outbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

// A redirect, to another port of the same host here, is answered as it is:
// its target is sent nothing, the Authorization header least of all.
func TestNoRedirectFollowed(t *testing.T) {
	reached := make(chan string, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.Header.Get("Authorization")
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	c := Client(nil, "test")
	if c.Timeout != DefaultTimeout {
		t.Errorf("timeout %v, want %v", c.Timeout, DefaultTimeout)
	}
	req, _ := http.NewRequest(http.MethodPost, api.URL, strings.NewReader("subject_token=secret"))
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status %d, want the redirect itself (307)", resp.StatusCode)
	}
	select {
	case a := <-reached:
		t.Errorf("the redirect was followed, with Authorization %q", a)
	default:
	}
	// The caller's client is copied, not changed.
	mine := &http.Client{}
	Client(mine, "test")
	if mine.CheckRedirect != nil {
		t.Error("the caller's client was changed")
	}
}

// timeoutQuoting is an error as Go's client makes it when its Timeout
// passed while the transport had already failed on a malformed answer:
// a timeout whose text quotes the server.
type timeoutQuoting struct{}

func (timeoutQuoting) Error() string {
	return `net/http: HTTP/1.x transport connection broken: malformed MIME header: missing colon: "Basic c2VjcmV0" (Client.Timeout exceeded while awaiting headers)`
}
func (timeoutQuoting) Timeout() bool   { return true }
func (timeoutQuoting) Temporary() bool { return true }

// Failed passes on a cause alone, never the error that carried it, and
// nothing of what a server sent.
func TestFailedSaysNoServerWords(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&url.Error{Op: "Post", URL: "http://idp/token", Err: timeoutQuoting{}}, ErrNoAnswerInTime.Error()},
		{&url.Error{Op: "Post", URL: "http://idp/token", Err: errors.New(`malformed HTTP status code "Basic c2VjcmV0"`)}, ErrNotHTTP.Error()},
		{&url.Error{Op: "Post", URL: "http://idp/token", Err: &net.OpError{Op: "proxyconnect", Net: "tcp", Err: errors.New("Basic c2VjcmV0")}}, ErrNotHTTP.Error()},
		{&url.Error{Op: "Post", URL: "http://idp/token", Err: dial}, dial.Error()},
		{&url.Error{Op: "Post", URL: "http://idp/token", Err: io.EOF}, ErrClosed.Error()},
		{fmt.Errorf("x: %w", context.Canceled), context.Canceled.Error()},
	} {
		got := Failed(tc.err)
		if got.Error() != tc.want || strings.Contains(got.Error(), "c2VjcmV0") {
			t.Errorf("Failed(%v) = %v, want %q", tc.err, got, tc.want)
		}
	}
	// Nor the addresses behind the node: its own, the one a name resolved
	// to, the resolver's.
	for _, err := range []error{
		&url.Error{Op: "Get", URL: "http://api/x", Err: &net.OpError{Op: "read", Net: "tcp",
			Source: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 51234}, Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 443}, Err: syscall.ECONNRESET}},
		&url.Error{Op: "Get", URL: "http://api/x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "api.internal", Server: "10.1.2.3:53", IsNotFound: true}}},
	} {
		got := Failed(err).Error()
		if strings.Contains(got, "10.") || !strings.Contains(got, "connection reset by peer") && got != "lookup api.internal: no such host" {
			t.Errorf("Failed(%v) = %q: names an address, or not the cause", err, got)
		}
	}
	if !errors.Is(Failed(timeoutQuoting{}), context.DeadlineExceeded) {
		t.Error("a timeout is not context.DeadlineExceeded")
	}
}

// SameOrigin compares scheme, host and port, a port left out being its
// scheme's default, without regard to case.
func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"https://api.example.com/v1", "HTTPS://API.example.com:443/v2", true},
		{"http://api.example.com", "http://api.example.com:80", true},
		{"https://api.example.com", "http://api.example.com", false},
		{"https://api.example.com", "https://api.example.com:8443", false},
		{"https://api.example.com", "https://upload.example.com", false},
	} {
		a, _ := url.Parse(c.a)
		b, _ := url.Parse(c.b)
		if got := SameOrigin(a, b); got != c.want {
			t.Errorf("SameOrigin(%s, %s) = %t, want %t", c.a, c.b, got, c.want)
		}
	}
}

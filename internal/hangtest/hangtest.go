// Package hangtest serves HTTP that never answers, for tests of timeouts.
package hangtest

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Server is an HTTP server that never answers (until the test ends), but
// for the requests answer serves. Reached receives, once, when a request
// that hangs came in.
type Server struct {
	*httptest.Server
	Reached chan struct{}
}

// New starts a Server, closed when the test ends. answer, if set, serves a
// request and returns true, or returns false to let it hang.
func New(t testing.TB, answer func(w http.ResponseWriter, r *http.Request) bool) *Server {
	t.Helper()
	s := &Server{Reached: make(chan struct{}, 1)}
	release := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answer != nil && answer(w, r) {
			return
		}
		select {
		case s.Reached <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() {
		close(release)
		s.Close()
	})
	return s
}

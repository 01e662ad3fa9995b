// Package cimdtest is a client's web site for tests of an authorization
// server that fetches Client ID Metadata Documents: it serves documents over
// HTTPS on loopback, with a certificate the server must be told to trust
// (CAFile), and counts the fetches of each path.
package cimdtest

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Host serves documents until the test ends.
type Host struct {
	// URL is https://127.0.0.1:<port>.
	URL string
	// CAFile is a PEM file of the host's certificate: the CA to trust.
	CAFile string

	mu      sync.Mutex
	routes  map[string]http.HandlerFunc
	fetches map[string]int
	ended   chan struct{} // closed as the test ends, before the server closes
}

// New starts a host, closed when t ends.
func New(t testing.TB) *Host {
	t.Helper()
	h := &Host{routes: map[string]http.HandlerFunc{}, fetches: map[string]int{}}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.fetches[r.URL.Path]++
		route := h.routes[r.URL.Path]
		h.mu.Unlock()
		if route == nil {
			http.NotFound(w, r)
			return
		}
		route(w, r)
	}))
	t.Cleanup(ts.Close)
	h.ended = make(chan struct{})
	t.Cleanup(func() { close(h.ended) }) // first: Close waits for hung requests
	h.URL = ts.URL
	h.CAFile = filepath.Join(t.TempDir(), "cimd-ca.pem")
	if err := os.WriteFile(h.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// Hang answers path with nothing until the test ends, even once its client
// gave up: a handler that returns then answers 200, empty, which can race
// the client's own timeout.
func (h *Host) Hang(path string) {
	h.Handle(path, func(http.ResponseWriter, *http.Request) { <-h.ended })
}

// Handle answers path with f.
func (h *Host) Handle(path string, f http.HandlerFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes[path] = f
}

// Serve answers path with status, header (Content-Type application/json
// unless it sets one) and body.
func (h *Host) Serve(path string, status int, header http.Header, body string) {
	h.Handle(path, func(w http.ResponseWriter, _ *http.Request) {
		for k, vs := range header {
			w.Header()[k] = vs
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

// Publish serves doc at path, with header, and returns path's URL, which is
// doc's client_id unless doc has one.
func (h *Host) Publish(path string, header http.Header, doc map[string]any) string {
	id := h.URL + path
	if _, ok := doc["client_id"]; !ok {
		doc["client_id"] = id
	}
	b, _ := json.Marshal(doc)
	h.Serve(path, http.StatusOK, header, string(b))
	return id
}

// Fetches counts the requests for path.
func (h *Host) Fetches(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fetches[path]
}

// Document is the metadata of a public client for the authorization code
// grant with refresh, as MCP clients publish it (client_id left to Publish).
func Document(name string, redirectURIs ...string) map[string]any {
	return map[string]any{
		"client_name":                name,
		"redirect_uris":              redirectURIs,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	}
}

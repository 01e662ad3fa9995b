package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/internal/logtest"
)

// A web page whose own name its DNS server rebinds to 127.0.0.1 reaches
// dev's loopback listeners with that name as Host, and reads their answers
// as its own origin's: the authorization server's (log in as a development
// user, whose password is known, and read the code), then the Todo API's
// with the token. Every one of them refuses such a Host, 403 with an OAuth
// error, as the MCP edge does, and still answers loopback names.
func TestDevListenersRefuseRebinding(t *testing.T) {
	cfg := parseDev(t, "--addr", "127.0.0.1:0", "--idp-addr", "127.0.0.1:0", "--todo-api-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--dev-state", "off")
	ctx, cancel := context.WithCancel(t.Context())
	// The banner ends once every listener serves and cfg holds their addresses.
	banner := logtest.NewAwaiting("Stop with Ctrl-C.")
	done := make(chan error, 1)
	go func() { done <- dev(ctx, cfg, banner, io.Discard) }()
	defer func() { cancel(); <-done }()
	select {
	case <-banner.Seen():
	case err := <-done:
		t.Fatalf("dev stopped before serving: %v", err)
	}
	for _, tc := range []struct{ name, url string }{
		{"authorization server", cfg.Issuer + "/.well-known/openid-configuration"},
		{"authorization server's login form", cfg.Issuer + "/as/login?id=x"},
		{"Todo API", cfg.TodoAPIURL + "/api/todos"},
		{"admin API", "http://" + cfg.AdminAddr + "/admin/v1/sessions"},
		{"MCP edge", cfg.Resource},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		port := u.Port()
		for _, host := range []string{"rebound.example:" + port, "127.0.0.1.rebound.example:" + port, "rebound.example"} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.url, nil)
			req.Host = host
			req.Header.Set("Origin", "http://"+host)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s, Host %s: %v", tc.name, host, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "not allowed") {
				t.Errorf("%s with Host %s: %d %.200s, want 403 refusing the Host", tc.name, host, resp.StatusCode, body)
			}
		}
		for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.url, nil)
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s, Host %s: %v", tc.name, host, err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusForbidden {
				t.Errorf("%s with Host %s: 403, want it answered", tc.name, host)
			}
		}
	}
}

// A server alone on loopback (pingmcp idp, todo-api) behind a proxy on
// this host answers the name of the URL its clients are told, as well as
// loopback names; off loopback, the guard is not there. The refusal is an
// OAuth error (RFC 6749 §5.2's form).
func TestLoopbackHostsOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	ln := func(addr string) net.Listener {
		return fakeListener{&net.TCPAddr{IP: net.ParseIP(addr), Port: 9031}}
	}
	h := loopbackHostsOnly(ln("127.0.0.1"), ok, "https://IdP.example")
	for host, want := range map[string]int{
		"127.0.0.1:9031": http.StatusTeapot, "[::1]:9031": http.StatusTeapot, "localhost:1234": http.StatusTeapot,
		"LOCALHOST.": http.StatusTeapot, "idp.example": http.StatusTeapot, "IDP.EXAMPLE": http.StatusTeapot,
		"idp.example:8443": http.StatusForbidden, "evil.example:9031": http.StatusForbidden, "": http.StatusForbidden,
		"localhost.evil.example": http.StatusForbidden, "0.0.0.0:9031": http.StatusForbidden,
	} {
		r := httptest.NewRequest(http.MethodPost, "/as/token.oauth2", strings.NewReader("grant_type=x"))
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
			continue
		}
		if want == http.StatusForbidden {
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			json.Unmarshal(w.Body.Bytes(), &e)
			if e.Error != "invalid_request" || e.Description == "" || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("Host %q refused with %s %q, want an OAuth error", host, w.Header().Get("Content-Type"), w.Body)
			}
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Host = "evil.example"
	w := httptest.NewRecorder()
	loopbackHostsOnly(ln("10.0.0.1"), ok).ServeHTTP(w, r)
	if w.Code != http.StatusTeapot {
		t.Errorf("off loopback: %d, want the handler's answer", w.Code)
	}
}

type fakeListener struct{ addr net.Addr }

func (fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr          { return l.addr }

package transport

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
)

var loopbackResources = []string{"http://127.0.0.1:8080/mcp", "http://localhost:8080/mcp", "http://[::1]:8080/mcp"}

func TestResourcesFor(t *testing.T) {
	rs := NewResources(append(slices.Clone(loopbackResources), "https://mcp.example.com/mcp"))
	for host, want := range map[string]string{
		"127.0.0.1:8080":      "http://127.0.0.1:8080/mcp",
		"LOCALHOST:8080":      "http://localhost:8080/mcp",
		"[::1]:8080":          "http://[::1]:8080/mcp",
		"mcp.example.com":     "https://mcp.example.com/mcp",
		"mcp.example.com:443": "https://mcp.example.com/mcp",
		"localhost:8081":      "",
		"localhost":           "",
		"127.0.0.2:8080":      "",
		"evil.example:8080":   "",
		"mcp.example.com:80":  "",
		"":                    "",
	} {
		got, ok := rs.For(host)
		if got != want || ok != (want != "") {
			t.Errorf("For(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
	// A resource spelt with an upper-case scheme (--public-url
	// HTTPS://mcp.example.org): a client pointed at it sends its Host
	// without the default port, as browsers and Node always do.
	upper := NewResources([]string{"HTTPS://MCP.example.org/mcp", "HTTP://127.0.0.1/mcp"})
	for host, want := range map[string]string{
		"mcp.example.org":     "HTTPS://MCP.example.org/mcp",
		"MCP.example.org:443": "HTTPS://MCP.example.org/mcp",
		"127.0.0.1":           "HTTP://127.0.0.1/mcp",
		"mcp.example.org:80":  "",
	} {
		if got, ok := upper.For(host); got != want || ok != (want != "") {
			t.Errorf("For(%q) of an upper-case scheme = %q, %v; want %q", host, got, ok, want)
		}
	}
	if r, ok := (*Resources)(nil).For("anything"); r != "" || !ok {
		t.Errorf("nil Resources refused a host")
	}
	if r, ok := FixedResource("https://mcp.example.com/mcp").For("10.0.0.7:8080"); r != "https://mcp.example.com/mcp" || !ok {
		t.Errorf("FixedResource: %q %v", r, ok)
	}
}

// Each Host gets the metadata of its own resource; a Host that names none
// is refused with 421; a preflight carrying MCP-Protocol-Version is
// answered.
func TestProtectedResourceMetadata(t *testing.T) {
	srv := httptest.NewServer(ProtectedResourceMetadata(NewResources(loopbackResources), "https://pf.example.com", []string{"todo_api:read", "todo_api:write"}))
	defer srv.Close()
	get := func(method, host string, h map[string]string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+auth.MetadataPath(loopbackResources[0]), nil)
		req.Host = host
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, want := range loopbackResources {
		host := strings.TrimSuffix(strings.TrimPrefix(want, "http://"), "/mcp")
		resp := get(http.MethodGet, host, map[string]string{"Mcp-Protocol-Version": "2025-11-25"})
		var md struct {
			Resource               string   `json:"resource"`
			AuthorizationServers   []string `json:"authorization_servers"`
			ScopesSupported        []string `json:"scopes_supported"`
			BearerMethodsSupported []string `json:"bearer_methods_supported"`
		}
		err := json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("Host %s: %d %v", host, resp.StatusCode, err)
		}
		if md.Resource != want || !slices.Equal(md.AuthorizationServers, []string{"https://pf.example.com"}) ||
			len(md.ScopesSupported) != 2 || !slices.Equal(md.BearerMethodsSupported, []string{"header"}) {
			t.Errorf("Host %s: metadata = %+v", host, md)
		}
	}

	resp := get(http.MethodGet, "evil.example", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d", resp.StatusCode)
	}

	resp = get(http.MethodOptions, "localhost:8080", map[string]string{
		"Origin": "http://localhost:6274", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "mcp-protocol-version",
	})
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "mcp-protocol-version") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// The edge names, in its challenges, the metadata of the resource the
// request's Host names; it refuses a token for another of its resources
// (aud is per URL), and a Host that names none with 421.
func TestEdgeResourcePerHost(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := newEdge(t, Options{
		Verifier:  auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: loopbackResources}),
		Resources: NewResources(loopbackResources),
		Scopes:    []string{"mcp:tools"},
	})
	do := func(host, tok string) (*http.Response, string) {
		h := map[string]string{"Host": host}
		if tok != "" {
			h["Authorization"] = "Bearer " + tok
		}
		return call{http.MethodPost, h, initBody}.do(t, srv.URL)
	}
	for _, resource := range loopbackResources {
		host := strings.TrimSuffix(strings.TrimPrefix(resource, "http://"), "/mcp")
		resp, body := do(host, "")
		if want := `resource_metadata="` + auth.MetadataURL(resource) + `"`; resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), want) {
			t.Errorf("Host %s without a token: %d %q %s", host, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if resp, body := do(host, is.Token(t, is.Claims("alice", resource, "mcp:tools"))); resp.StatusCode != http.StatusOK {
			t.Errorf("Host %s with a token for %s: %d %s", host, resource, resp.StatusCode, body)
		}
	}
	other := is.Token(t, is.Claims("alice", "http://localhost:8080/mcp", "mcp:tools"))
	resp, body := do("127.0.0.1:8080", other)
	if chal := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(chal, `error="invalid_token"`) ||
		!strings.Contains(chal, `resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"`) {
		t.Errorf("a localhost token at 127.0.0.1: %d %q %s", resp.StatusCode, chal, body)
	}
	resp, body = do("localhost:9999", other)
	if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(body, `"error"`) || !strings.Contains(body, "http://localhost:8080/mcp") {
		t.Errorf("a Host of no resource: %d %s", resp.StatusCode, body)
	}
}

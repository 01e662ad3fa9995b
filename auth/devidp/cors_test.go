package devidp

import (
	"net/http"
	"strings"
	"testing"
)

// A browser-based client (the MCP Inspector) calls discovery, the keys,
// registration and the token endpoint from its own origin, with the
// MCP-Protocol-Version header the TypeScript SDK adds: each preflight is
// answered, allowing that header.
func TestCORSPreflights(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ path, method, headers string }{
		{PathOpenIDConfiguration, http.MethodGet, "mcp-protocol-version"},
		{PathASMetadata, http.MethodGet, "mcp-protocol-version"},
		{PathJWKS, http.MethodGet, "mcp-protocol-version"},
		{PathRegister, http.MethodPost, "content-type,mcp-protocol-version"},
		{PathToken, http.MethodPost, "authorization,content-type,mcp-protocol-version"},
		{PathRevoke, http.MethodPost, "content-type,mcp-protocol-version"},
	} {
		req, _ := http.NewRequest(http.MethodOptions, f.issuer+tc.path, nil)
		req.Header.Set("Origin", "http://localhost:6274")
		req.Header.Set("Access-Control-Request-Method", tc.method)
		req.Header.Set("Access-Control-Request-Headers", tc.headers)
		resp, _ := f.do(req)
		allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") == "" || !strings.Contains(allowed, "mcp-protocol-version") {
			t.Errorf("%s preflight: %d, allow-origin %q, allow-headers %q", tc.path, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), allowed)
		}
	}
	// And the response itself names the origin it may be read from.
	req, _ := http.NewRequest(http.MethodGet, f.issuer+PathASMetadata, nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if resp, body := f.do(req); resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") == "" || body["issuer"] != f.issuer {
		t.Errorf("metadata from another origin: %d %v %v", resp.StatusCode, resp.Header, body)
	}
}

package transport

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/auth"
)

// A client pointed at /mcp/ is redirected to /mcp (308), as is the path
// form of its metadata. A browser-based client (the Inspector) preflights
// each request it sends with Content-Type or Mcp-Protocol-Version, and a
// preflight must be answered with an ok status (Fetch, CORS-preflight
// fetch: a 2xx, never a redirect), and the redirect itself must pass the
// CORS check (Access-Control-Allow-Origin) for the browser to follow it;
// else the browser sees a network error and never reaches /mcp. The
// redirect names the resource of the request's Host, so that a client
// behind a proxy that serves pingmcp at a path prefix stays under it.
func TestBrowserClientPointedAtTrailingSlash(t *testing.T) {
	const origin = "http://localhost:6274"
	metadata := auth.MetadataPath(loopbackResources[0])
	serve := func(e *Edge, method, target, host string, h map[string]string) *httptest.ResponseRecorder {
		mux := http.NewServeMux()
		mux.Handle("/mcp/{$}", e.TrailingSlash("/mcp"))
		mux.Handle(metadata+"/{$}", Canonical(metadata))
		r := httptest.NewRequest(method, target, nil)
		r.Host = host
		for k, v := range h {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		return rec
	}
	e := stageEdge(Options{Loopback: true, Resources: NewResources(loopbackResources)})
	preflight := map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "content-type,mcp-protocol-version"}

	rec := serve(e, http.MethodOptions, "/mcp/", "localhost:8080", preflight)
	allowed := strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers"))
	if rec.Code/100 != 2 || rec.Header().Get("Access-Control-Allow-Origin") != origin ||
		!strings.Contains(allowed, "content-type") || !strings.Contains(allowed, "mcp-protocol-version") ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight of /mcp/: %d %v, want 2xx allowing POST from %s with its headers", rec.Code, rec.Header(), origin)
	}
	rec = serve(e, http.MethodPost, "/mcp/?x=1", "localhost:8080", map[string]string{"Origin": origin})
	if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Access-Control-Allow-Origin") != origin ||
		rec.Header().Get("Location") != "http://localhost:8080/mcp?x=1" {
		t.Errorf("POST /mcp/?x=1 from %s: %d %v, want 308 to http://localhost:8080/mcp?x=1 with its CORS headers", origin, rec.Code, rec.Header())
	}
	if rec := serve(e, http.MethodPost, "/mcp/", "localhost:8080", map[string]string{"Origin": "https://evil.example"}); rec.Code != http.StatusForbidden {
		t.Errorf("POST /mcp/ from a foreign origin: %d, want 403 as at /mcp", rec.Code)
	}
	if rec := serve(e, http.MethodPost, "/mcp/", "localhost:9999", nil); rec.Code != http.StatusMisdirectedRequest {
		t.Errorf("POST /mcp/ for a Host of no resource: %d, want 421 as at /mcp", rec.Code)
	}

	// The metadata is public: any origin reads it.
	rec = serve(e, http.MethodOptions, metadata+"/", "localhost:8080", map[string]string{"Origin": origin,
		"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "mcp-protocol-version"})
	if rec.Code/100 != 2 || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight of %s/: %d %v, want 2xx from any origin", metadata, rec.Code, rec.Header())
	}
	rec = serve(e, http.MethodGet, metadata+"/", "localhost:8080", map[string]string{"Origin": origin})
	if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("Location") != metadata {
		t.Errorf("GET %s/: %d %v, want 308 to %s readable by any origin", metadata, rec.Code, rec.Header(), metadata)
	}

	// Behind a proxy that serves pingmcp at /prefix (--public-url
	// https://mcp.example.com/prefix): /prefix/mcp/ reaches the edge as
	// /mcp/, and goes back to /prefix/mcp.
	prefixed := stageEdge(Options{Resources: NewResources([]string{"https://mcp.example.com/prefix/mcp"})})
	if rec := serve(prefixed, http.MethodPost, "/mcp/", "mcp.example.com", nil); rec.Code != http.StatusPermanentRedirect ||
		rec.Header().Get("Location") != "https://mcp.example.com/prefix/mcp" {
		t.Errorf("POST /mcp/ of https://mcp.example.com/prefix/mcp: %d %v, want 308 to the resource", rec.Code, rec.Header())
	}
	// A proxy that may rewrite Host (--resource alone), or no resource
	// (--auth none): relative to the URL the client used.
	for _, opts := range []Options{{Resources: FixedResource("https://mcp.example.com/prefix/mcp")}, {Loopback: true}} {
		if rec := serve(stageEdge(opts), http.MethodPost, "/mcp/", "localhost:8080", nil); rec.Code != http.StatusPermanentRedirect ||
			rec.Header().Get("Location") != "../mcp" {
			t.Errorf("POST /mcp/ with %+v: %d %v, want 308 to ../mcp", opts.Resources, rec.Code, rec.Header())
		}
	}
}

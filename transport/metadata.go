package transport

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	pathpkg "path"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Resources are the URIs of the MCP resource (RFC 8707) the edge serves,
// one per Host it answers to (config.Config.Resources): a request names the
// resource whose host is its Host header. Discovery is exact for the URL the
// client used: the metadata, the challenges and the token's audience are
// that resource's. A nil *Resources names no resource and refuses no Host
// (--auth none).
type Resources struct {
	uris   []string
	byHost map[string]string // host:port, lower case, port explicit
	fixed  string            // FixedResource's
}

// FixedResource is one resource named by every Host, for an edge that does
// not know how clients reach it (a proxy in front may rewrite Host).
func FixedResource(uri string) *Resources {
	return &Resources{uris: []string{uri}, fixed: uri}
}

// NewResources indexes uris (absolute http(s) URIs) by host.
func NewResources(uris []string) *Resources {
	rs := &Resources{uris: uris, byHost: map[string]string{}}
	for _, uri := range uris {
		if u, err := url.Parse(uri); err == nil && u.Host != "" {
			rs.byHost[hostKey(u.Host, defaultPort(u.Scheme))] = uri
		}
	}
	return rs
}

// For returns the resource a request whose Host header is host names.
func (rs *Resources) For(host string) (string, bool) {
	if rs == nil || rs.fixed != "" {
		return rs.fixedURI(), true
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		r, ok := rs.byHost[hostKey(host, "")]
		return r, ok
	}
	// No port: the default of the resource's scheme, which the edge cannot
	// tell behind a proxy that ends TLS.
	for _, port := range []string{"443", "80"} {
		if r, ok := rs.byHost[hostKey(host, port)]; ok && defaultPort(scheme(r)) == port {
			return r, true
		}
	}
	return "", false
}

// misdirected answers a request whose Host names none of the resources: 421
// Misdirected Request (RFC 9110 §15.5.20), the status of a request "directed
// at a server that is unable or unwilling to produce an authoritative
// response for the target URI"; the Host is well formed (so not 400) and
// the client may well retry at the URL named.
func (rs *Resources) misdirected(host string) string {
	return fmt.Sprintf("this server does not serve Host %q: use %s", host, strings.Join(rs.uris, " or "))
}

func (rs *Resources) fixedURI() string {
	if rs == nil {
		return ""
	}
	return rs.fixed
}

func hostKey(hostport, port string) string {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		h, p = strings.Trim(hostport, "[]"), port
	}
	return strings.ToLower(net.JoinHostPort(h, p))
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// scheme is uri's scheme, in lower case: schemes are case-insensitive (RFC
// 3986 §3.1), and a resource spelt "HTTPS://…" is https's.
func scheme(uri string) string {
	s, _, _ := strings.Cut(uri, "://")
	return strings.ToLower(s)
}

// ProtectedResourceMetadata serves RFC 9728 metadata of the resource the
// request's Host names (PingFederate has none of its own, so pingmcp names
// the issuer for its clients). Mount it at auth.MetadataPath of the
// resources (they share their path). Only the path-suffixed form is
// served: the root /.well-known/oauth-protected-resource would be the
// metadata of the origin (§3.1), which is no resource of pingmcp, and a
// client that took it would ask for tokens pingmcp refuses; the TypeScript
// SDK and mcp-remote read the challenge's resource_metadata, then the
// path-suffixed form, and the root only when that fails.
//
// It answers CORS preflights from any origin (the metadata is public and
// holds no credentials), allowing the MCP-Protocol-Version header the
// TypeScript SDK sends with its discovery requests.
func ProtectedResourceMetadata(rs *Resources, issuer string, scopes []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if publicCORS(w, r, "GET, HEAD") {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		resource, ok := rs.For(r.Host)
		if !ok {
			http.Error(w, rs.misdirected(r.Host), http.StatusMisdirectedRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		json.NewEncoder(w).Encode(&oauthex.ProtectedResourceMetadata{
			Resource:               resource,
			AuthorizationServers:   []string{issuer},
			ScopesSupported:        scopes,
			BearerMethodsSupported: []string{"header"},
			ResourceName:           "pingmcp",
		})
	})
}

// publicCORS lets any origin read a public document (no credentials are
// involved, so "*" is safe) and answers a preflight, in which case it
// returns true. The allowed headers include MCP-Protocol-Version, which the
// TypeScript SDK sends on discovery (a browser then preflights).
func publicCORS(w http.ResponseWriter, r *http.Request, methods string) bool {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodOptions {
		return false
	}
	w.Header().Set("Access-Control-Allow-Methods", methods+", OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Mcp-Protocol-Version, Content-Type, Authorization")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.Header().Set("Allow", methods+", OPTIONS")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// Canonical answers a request for the metadata's path with a trailing
// slash (the path form of the metadata of a client pointed at "/mcp/") with
// 308 Permanent Redirect to path, its query kept. Like the metadata, it is
// public: any origin may read the redirect, which a browser follows only
// if it passes the CORS check, and its preflight is answered (a redirect
// is no answer to a preflight: Fetch wants an ok status, 2xx).
func Canonical(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if publicCORS(w, r, "GET, HEAD") {
			return
		}
		redirect(w, r, path)
	})
}

// TrailingSlash answers a request for the edge's path with a trailing
// slash, a client pointed at "/mcp/" say, as the edge's first stages do (a
// Host or an Origin refused 403, a Host of no resource 421, an allowed
// Origin's CORS headers, a preflight answered 204, another method than
// GET, POST and DELETE 405), then with 308 Permanent Redirect, its query
// kept: a 308 is followed with the same method, body and headers (a POST
// stays a POST, its Authorization on the same origin), so such a client
// goes on as if pointed right; a browser's, whose preflight was answered
// and whose redirect carries its CORS headers, too. The redirect names the
// resource of the request's Host, the URL clients use, when the edge knows
// it (Resources by Host): behind a proxy that serves pingmcp at a path
// prefix, /prefix/mcp/ comes back to /prefix/mcp, not /mcp. Otherwise (a
// proxy in front may rewrite Host, or no resource) it is relative to the
// URL the client used: "../mcp" for path "/mcp".
func (e *Edge) TrailingSlash(path string) http.Handler {
	h := chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := "../" + pathpkg.Base(path)
		if rs := e.opts.Resources; rs != nil && rs.fixed == "" {
			to = factsOf(r).resource
		}
		redirect(w, r, to)
	}), e.checkHost, e.checkResource, e.checkOrigin, e.checkMethod)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, withFacts(r, &facts{}))
	})
}

// redirect answers r with 308 Permanent Redirect to to, r's query (if any)
// in place of to's.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	if r.URL.RawQuery != "" {
		if u, err := url.Parse(to); err == nil {
			u.RawQuery = r.URL.RawQuery
			to = u.String()
		}
	}
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusPermanentRedirect)
}

package transport

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/pingmcp/pingmcp/auth"
)

// MetadataPaths are where the RFC 9728 protected-resource metadata of a
// resource is served: the path-suffixed form for the resource's path (what
// 2025-06-18+ clients derive) and the root form.
func MetadataPaths(resource string) []string {
	paths := []string{"/.well-known/oauth-protected-resource"}
	if u, err := url.Parse(resource); err == nil && u.Path != "" && u.Path != "/" {
		paths = append(paths, paths[0]+u.Path)
	}
	return paths
}

// ProtectedResourceMetadata serves RFC 9728 metadata: PingFederate has none
// of its own, so pingmcp names the issuer for its clients.
func ProtectedResourceMetadata(resource, issuer string, scopes []string) http.Handler {
	return sdkauth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{issuer},
		ScopesSupported:        scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "pingmcp",
	})
}

// AuthorizationServerMirror serves the issuer's metadata at this host's
// /.well-known/oauth-authorization-server, for 2025-03-26 clients that look
// for it on the MCP server. It is fetched from the issuer and cached.
func AuthorizationServerMirror(issuer string, client *http.Client, ttl time.Duration) http.Handler {
	var (
		mu      sync.Mutex
		body    []byte
		fetched time.Time
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if body == nil || time.Since(fetched) > ttl {
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			md, err := auth.DiscoverMetadata(ctx, client, issuer)
			cancel()
			if err != nil && body == nil {
				w.Header().Set("Retry-After", "5")
				http.Error(w, "authorization server metadata unavailable", http.StatusServiceUnavailable)
				return
			}
			if err == nil {
				body, _ = json.Marshal(md.Raw)
				fetched = time.Now()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(body)
	})
}

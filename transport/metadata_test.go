package transport

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth/authtest"
)

func TestProtectedResourceMetadata(t *testing.T) {
	if got := MetadataPaths("https://mcp.example.com/mcp"); !slices.Equal(got, []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"}) {
		t.Errorf("paths = %v", got)
	}
	if got := MetadataPaths("https://mcp.example.com"); len(got) != 1 {
		t.Errorf("paths of a root resource = %v", got)
	}
	srv := httptest.NewServer(ProtectedResourceMetadata("https://mcp.example.com/mcp", "https://pf.example.com", []string{"todo_api:read", "todo_api:write"}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Resource               string   `json:"resource"`
		AuthorizationServers   []string `json:"authorization_servers"`
		ScopesSupported        []string `json:"scopes_supported"`
		BearerMethodsSupported []string `json:"bearer_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md.Resource != "https://mcp.example.com/mcp" || !slices.Equal(md.AuthorizationServers, []string{"https://pf.example.com"}) ||
		len(md.ScopesSupported) != 2 || !slices.Equal(md.BearerMethodsSupported, []string{"header"}) {
		t.Errorf("metadata = %+v", md)
	}
}

// The mirror serves the issuer's metadata, and keeps serving it from cache
// when the issuer is briefly away.
func TestAuthorizationServerMirror(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := httptest.NewServer(AuthorizationServerMirror(is.URL, http.DefaultClient, time.Hour))
	defer srv.Close()
	get := func() (int, map[string]any) {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var md map[string]any
		json.NewDecoder(resp.Body).Decode(&md)
		return resp.StatusCode, md
	}
	if code, md := get(); code != 200 || md["issuer"] != is.URL || md["jwks_uri"] != is.URL+"/pf/JWKS" {
		t.Fatalf("mirror: %d %v", code, md)
	}
	is.Close()
	if code, md := get(); code != 200 || md["issuer"] != is.URL {
		t.Fatalf("mirror with the issuer down: %d %v", code, md)
	}

	down := authtest.NewIssuer(t)
	down.Close()
	cold := httptest.NewServer(AuthorizationServerMirror(down.URL, http.DefaultClient, time.Hour))
	defer cold.Close()
	resp, err := http.Get(cold.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("cold mirror with the issuer down: %d", resp.StatusCode)
	}
}

package devidp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Found by an attack review: the login form names a registered client by its client_name
// alone, a free text of the registrant's (anyone may register, from any
// origin: CORS *). A client of a metadata document is shown as
// "name (host)", the host being the one verified; a registered client may
// write exactly that into its name, while its code goes to a redirect URI
// the page never shows.
func TestLoginFormShowsWhereTheCodeGoes(t *testing.T) {
	f := newFixture(t, nil)
	const evil = "https://collector.attacker.example/cb"
	resp, body := f.postJSON(PathRegister, map[string]any{
		"redirect_uris": []string{evil},
		"client_name":   "MCP Inspector (inspector.modelcontextprotocol.io)",
	})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %v", resp.StatusCode, body)
	}
	resp, _ = f.authorize(body["client_id"].(string), url.Values{"redirect_uri": {evil}})
	_, page := f.loginForm(resp)
	if !strings.Contains(page, "<strong>MCP Inspector (inspector.modelcontextprotocol.io)</strong> (the name it registered with)") {
		t.Fatalf("login page: %s", page)
	}
	if !strings.Contains(page, "attacker.example") {
		t.Errorf("the login form presents the client as %q and never names the host its code is sent to (%s)",
			"MCP Inspector (inspector.modelcontextprotocol.io)", evil)
	}
}

package auth

import "testing"

func TestMetadataURL(t *testing.T) {
	for resource, want := range map[string]string{
		"https://mcp.example.com/mcp":   "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
		"http://[::1]:8080/mcp":         "http://[::1]:8080/.well-known/oauth-protected-resource/mcp",
		"https://mcp.example.com":       "https://mcp.example.com/.well-known/oauth-protected-resource",
		"https://mcp.example.com/a/mcp": "https://mcp.example.com/.well-known/oauth-protected-resource/a/mcp",
		"":                              "",
	} {
		if got := MetadataURL(resource); got != want {
			t.Errorf("MetadataURL(%q) = %q, want %q", resource, got, want)
		}
	}
}

// A token is for the resources its aud names, exactly.
func TestTokenFor(t *testing.T) {
	tok := &Token{Audience: []string{"http://localhost:8080/mcp"}}
	if err := tok.For("http://localhost:8080/mcp"); err != nil {
		t.Errorf("its own resource: %v", err)
	}
	for _, other := range []string{"http://127.0.0.1:8080/mcp", "http://localhost:8080/mcp/", "http://localhost:8080", ""} {
		if err := tok.For(other); !IsInvalidToken(err) {
			t.Errorf("For(%q) = %v, want invalid_token", other, err)
		}
	}
}

// A token is for its resource however its aud or the resource spells the
// scheme, the host and a default port (RFC 3986 §6.2.2.1, §6.2.3; MCP
// 2025-11-25, Canonical Server URI: "implementations SHOULD accept
// uppercase scheme and host components for robustness"): the TypeScript
// SDK sends the metadata's resource as its URL class spells it (lower
// case, no default port), and an authorization server puts that in aud.
// The path, the port and the scheme remain exact.
func TestTokenForSpellingsOfItsResource(t *testing.T) {
	for aud, resources := range map[string][]string{
		"HTTPS://MCP.Example.com:443/mcp": {"https://mcp.example.com/mcp"},
		"https://mcp.example.com/mcp":     {"HTTPS://mcp.EXAMPLE.com:443/mcp", "https://mcp.example.com:443/mcp"},
		"http://[::1]:80/mcp":             {"http://[::1]/mcp"},
	} {
		for _, resource := range resources {
			if err := (&Token{Audience: []string{aud}}).For(resource); err != nil {
				t.Errorf("aud %q at %q: %v", aud, resource, err)
			}
		}
	}
	tok := &Token{Audience: []string{"https://mcp.example.com/mcp"}}
	for _, other := range []string{"https://mcp.example.com/MCP", "https://mcp.example.com:8443/mcp", "http://mcp.example.com/mcp", "https://mcp.example.com/mcp?x=1", "https://mcp.example.com:80/mcp"} {
		if err := tok.For(other); !IsInvalidToken(err) {
			t.Errorf("For(%q) = %v, want invalid_token", other, err)
		}
	}
	if got := CanonicalResource("HTTPS://MCP.Example.com:443/mcp"); got != "https://mcp.example.com/mcp" {
		t.Errorf("CanonicalResource = %q", got)
	}
}

// A challenge's attributes keep to the characters RFC 6750 §3 allows in
// them (no '"', no '\': a quoted-string's escapes are not among them), so
// that a client that reads the challenge as RFC 6750 writes it (a quoted
// value ends at the next '"') reads each attribute whole: a malformed
// claim's description names the claim in quotes.
func TestChallengeKeepsToRFC6750Characters(t *testing.T) {
	aerr := &Error{Code: CodeInvalidToken, Description: `malformed claim "exp": a string is not a valid value for it \ é` + "\n"}
	got := Challenge(aerr, "https://mcp.example/.well-known/oauth-protected-resource/mcp", []string{"todo_api:read"})
	want := `Bearer error="invalid_token", error_description="malformed claim 'exp': a string is not a valid value for it  ", ` +
		`resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="todo_api:read"`
	if got != want {
		t.Errorf("challenge\n %s\nwant\n %s", got, want)
	}
}

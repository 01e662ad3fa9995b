package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --apis (or PINGMCP_APIS) names the APIs file, read and checked with the
// other flags; its documents load later, when the node builds its tools.
func TestAPIsFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "apis.yaml")
	os.WriteFile(good, []byte("apis:\n  - {name: todo, base_url: 'http://127.0.0.1:8081', document: 'http://127.0.0.1:8081/openapi.yaml'}\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apis:\n  - {name: todo, base_url: 'ftp://x', document: d}\n"), 0o600)

	withClient := []string{"--issuer", "https://pf.example.com", "--client-id", "pingmcp", "--client-secret", "s"}
	c, err := Parse("serve", append(withClient, "--apis", good), env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIsFile != good || len(c.APIs) != 1 || c.APIs[0].Name != "todo" {
		t.Errorf("--apis: %q %+v", c.APIsFile, c.APIs)
	}
	c, err = Parse("dev", nil, env(map[string]string{"PINGMCP_APIS": good}), new(bytes.Buffer))
	if err != nil || len(c.APIs) != 1 {
		t.Errorf("PINGMCP_APIS: %v %+v", err, c)
	}
	for _, f := range []string{bad, filepath.Join(dir, "missing.yaml")} {
		if _, err := Parse("serve", append(withClient, "--apis", f), env(nil), new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--apis") {
			t.Errorf("--apis %s: %v", f, err)
		}
	}
}

// --apis needs a user and the exchange client: with --auth none, or
// without --client-id and --client-secret, it is refused at start, saying
// what is missing. A base_url of http:// beyond loopback is warned of.
func TestAPIsNeedExchange(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "apis.yaml")
	os.WriteFile(file, []byte("apis:\n  - {name: a, base_url: 'http://api.example.com', document: 'http://127.0.0.1:8081/openapi.yaml'}\n  - {name: b, base_url: 'http://127.0.0.1:8081', document: d.yaml}\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--auth", "none", "--addr", "127.0.0.1:0"}, "--auth none"},
		{[]string{"--issuer", "https://pf.example.com"}, "--client-id and --client-secret"},
		{[]string{"--issuer", "https://pf.example.com", "--client-id", "pingmcp"}, "--client-id and --client-secret"},
	} {
		if _, err := Parse("serve", append(c.args, "--apis", file), env(nil), new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
	}
	if _, err := Parse("dev", []string{"--auth", "none", "--apis", file}, env(nil), new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--auth none") {
		t.Errorf("dev --auth none: %v", err)
	}
	c, err := Parse("dev", []string{"--apis", file}, env(nil), new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.APIWarnings(); len(w) != 1 || !strings.Contains(w[0], `api "a"`) || !strings.Contains(w[0], "in clear") {
		t.Errorf("warnings %q", w)
	}
}

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

	c, err := Parse("serve", []string{"--auth", "none", "--addr", "127.0.0.1:0", "--apis", good}, env(nil), new(bytes.Buffer))
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
		if _, err := Parse("serve", []string{"--auth", "none", "--addr", "127.0.0.1:0", "--apis", f}, env(nil), new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "--apis") {
			t.Errorf("--apis %s: %v", f, err)
		}
	}
}

package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A metrics token that holds the admin token (a suffix, a prefix, Base64
// padding added) gives it away as surely as being it: refused (found by a
// review).
func TestMetricsTokenHoldingTheAdminToken(t *testing.T) {
	dir := t.TempDir()
	const adminToken = "admin-token-0123456789abcdef"
	admin := filepath.Join(dir, "admin")
	if err := os.WriteFile(admin, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, metricsToken := range map[string]string{
		"a suffix":       adminToken + "-metrics",
		"a prefix":       "metrics-" + adminToken,
		"base64 padding": adminToken + "==",
	} {
		t.Run(name, func(t *testing.T) {
			metrics := filepath.Join(dir, "metrics")
			if err := os.WriteFile(metrics, []byte(metricsToken+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Parse("serve", serveArgs("--admin-addr", "127.0.0.1:0", "--admin-token-file", admin, "--metrics-token-file", metrics),
				env(nil), new(bytes.Buffer))
			if err == nil {
				t.Errorf("a metrics token holding the admin token (%s) is taken", name)
			}
		})
	}
}

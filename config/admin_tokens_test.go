package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetricsTokenFile: --metrics-token-file is read and checked as
// --admin-token-file is (a file of this user's or root's that neither group
// nor others may write, a token of at least 16 characters), must hold
// another token than the admin token, and needs the admin listener. No
// refusal shows a token.
func TestMetricsTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	const adminToken, metricsToken = "admin-token-0123456789abcdef", "metrics-token-0123456789abcdef"
	admin := write("admin", adminToken+"\n", 0o600)
	metrics := write("metrics", metricsToken+"\n", 0o440)
	sameAsAdmin := write("same", "  "+adminToken+"\n", 0o600)
	short := write("short", "only-15-chars-x\n", 0o600)
	groupWritable := write("writable", metricsToken, 0o620)
	admitted := serveArgs("--admin-addr", "127.0.0.1:0", "--admin-token-file", admin)

	c, err := Parse("serve", append(admitted, "--metrics-token-file", metrics), env(nil), new(bytes.Buffer))
	if err != nil || c.MetricsTokenFile != metrics {
		t.Fatalf("a metrics token of its own: %v, file %q", err, c.MetricsTokenFile)
	}
	c, err = Parse("serve", admitted, env(map[string]string{"PINGMCP_METRICS_TOKEN_FILE": metrics}), new(bytes.Buffer))
	if err != nil || c.MetricsTokenFile != metrics {
		t.Fatalf("a metrics token from the environment: %v, file %q", err, c.MetricsTokenFile)
	}
	// With auth on, the admin API may have no static token (access tokens
	// with the admin scope), and the metrics token beside them.
	if _, err := Parse("serve", []string{"--issuer", "https://pf.example.com", "--addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--metrics-token-file", metrics}, env(nil), new(bytes.Buffer)); err != nil {
		t.Errorf("a metrics token beside admin access tokens: %v", err)
	}
	if _, err := Parse("dev", []string{"--metrics-token-file", metrics}, env(nil), new(bytes.Buffer)); err != nil {
		t.Errorf("dev with a metrics token: %v", err)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"the admin token", append(admitted, "--metrics-token-file", sameAsAdmin), "--metrics-token-file holds the admin token"},
		{"too short", append(admitted, "--metrics-token-file", short), "--metrics-token-file: the token must be at least 16 characters"},
		{"missing", append(admitted, "--metrics-token-file", filepath.Join(dir, "none")), "--metrics-token-file: open"},
		{"group may write it", append(admitted, "--metrics-token-file", groupWritable), "--metrics-token-file: " + groupWritable + " may be written by group or others"},
		{"no admin listener", serveArgs("--metrics-token-file", metrics), "--metrics-token-file needs --admin-addr"},
		{"admin token too short", serveArgs("--admin-addr", "127.0.0.1:0", "--admin-token-file", short), "--admin-token-file: the token must be at least 16 characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("serve", tt.args, env(nil), new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
			for _, secret := range []string{adminToken, metricsToken, "only-15-chars-x"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("err = %v: it shows a token", err)
				}
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/state"
)

// TestServeAdminMetricsToken: the node's admin listener takes the token of
// --metrics-token-file for GET /metrics alone, and the admin token for
// everything; a token file other users may read is warned about by its
// flag; neither token is logged.
func TestServeAdminMetricsToken(t *testing.T) {
	dir := t.TempDir()
	const adminTok, metricsTok = "admin-token-0123456789abcdef", "metrics-token-0123456789abcdef"
	adminFile, metricsFile := filepath.Join(dir, "admin"), filepath.Join(dir, "metrics")
	if err := os.WriteFile(adminFile, []byte(adminTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metricsFile, []byte(metricsTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(metricsFile, 0o644); err != nil { // a Secret's default mode
		t.Fatal(err)
	}
	cfg, err := config.Parse("serve", []string{"--auth", "none", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--admin-token-file", adminFile, "--metrics-token-file", metricsFile}, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := serveAdmin(ctx, cfg, state.MemoryStores(time.Minute), nil, nil, nil, nil, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	get := func(path, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+cfg.AdminAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", metricsTok, http.StatusOK},
		{"/admin/v1/sessions", metricsTok, http.StatusForbidden},
		{"/admin/v1/nodes", metricsTok, http.StatusForbidden},
		{"/metrics", adminTok, http.StatusOK},
		{"/admin/v1/sessions", adminTok, http.StatusOK},
	} {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s with the %s token: %d, want %d", c.path, map[string]string{adminTok: "admin", metricsTok: "metrics"}[c.token], got, c.want)
		}
	}
	if !strings.Contains(logs.String(), "--metrics-token-file may be read by other users") || strings.Contains(logs.String(), "--admin-token-file may be read") {
		t.Errorf("the warnings about readable token files:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), adminTok) || strings.Contains(logs.String(), metricsTok) {
		t.Error("a token was logged")
	}
}

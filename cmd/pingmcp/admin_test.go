package main

import (
	"bytes"
	"context"
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

	// As the admin CLI calls the API.
	for _, c := range []struct {
		path, token string
		refused     string // "": admitted
	}{
		{"/metrics", metricsTok, ""},
		{"/admin/v1/sessions", metricsTok, "the metrics token reads GET /metrics only (HTTP 403)"},
		{"/admin/v1/nodes", metricsTok, "the metrics token reads GET /metrics only (HTTP 403)"},
		{"/metrics", adminTok, ""},
		{"/admin/v1/sessions", adminTok, ""},
	} {
		cli := &adminClient{base: "http://" + cfg.AdminAddr, token: c.token, http: http.DefaultClient}
		err := cli.do(ctx, http.MethodGet, c.path, nil)
		if c.refused == "" && err != nil || c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused)) {
			t.Errorf("GET %s with the %s token: %v, want %q", c.path, map[string]string{adminTok: "admin", metricsTok: "metrics"}[c.token], err, c.refused)
		}
	}
	if !strings.Contains(logs.String(), "--metrics-token-file may be read by other users") || strings.Contains(logs.String(), "--admin-token-file may be read") {
		t.Errorf("the warnings about readable token files:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), adminTok) || strings.Contains(logs.String(), metricsTok) {
		t.Error("a token was logged")
	}
}

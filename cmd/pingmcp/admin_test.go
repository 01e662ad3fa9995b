package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	srv, err := serveAdmin(ctx, cfg, state.MemoryStores(time.Minute), nil, nil, nil, nil, nil, nil, logger)
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

// TestServeAdminHoldsLoopbackTwin: an admin listener given as
// localhost:PORT holds both loopback addresses on its port, as the other
// servers told as localhost do: net.Listen takes localhost's first address
// alone, and another local user holding the other one would be handed the
// admin token by an operator's browser or CLI pointed at localhost. A
// process holding it makes the node refuse to start, naming it; given as
// the IP literal, the listener holds that address alone.
func TestServeAdminHoldsLoopbackTwin(t *testing.T) {
	squat, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback: nobody can hold [::1]")
	}
	port := strconv.Itoa(squat.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin")
	if err := os.WriteFile(tokenFile, []byte("admin-token-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := func(adminAddr string) (*http.Server, *config.Config, error) {
		cfg, err := config.Parse("serve", []string{"--auth", "none", "--addr", "127.0.0.1:0", "--admin-addr", adminAddr,
			"--admin-token-file", tokenFile}, func(string) string { return "" }, new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := serveAdmin(t.Context(), cfg, state.MemoryStores(time.Minute), nil, nil, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
		return srv, cfg, err
	}
	if srv, _, err := serve("localhost:" + port); err == nil || !strings.Contains(err.Error(), "[::1]:"+port) {
		if srv != nil {
			srv.Close()
		}
		t.Fatalf("the admin API on localhost:%s while [::1]:%s is another process's: %v, want a refusal naming it", port, port, err)
	}
	squat.Close()
	srv, cfg, err := serve("localhost:" + port)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		resp, err := http.Get("http://" + host + ":" + port + "/admin/v1/sessions")
		if err != nil {
			t.Errorf("the admin API on localhost:%s, at %s: %v", port, host, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "pingmcp-admin") {
			t.Errorf("the admin API on localhost:%s, at %s: %d %q, want its 401", port, host, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if cfg.AdminAddr != "127.0.0.1:"+port && cfg.AdminAddr != "[::1]:"+port {
		t.Errorf("the admin address told: %s", cfg.AdminAddr)
	}
	srv.Close()

	// The IP literal needs no twin.
	srv, cfg, err = serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, p, _ := net.SplitHostPort(cfg.AdminAddr)
	if ln, err := net.Listen("tcp", "[::1]:"+p); err != nil {
		t.Errorf("the admin API on %s holds [::1]:%s too: %v", cfg.AdminAddr, p, err)
	} else {
		ln.Close()
	}
}

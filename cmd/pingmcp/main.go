// Command pingmcp is a remote MCP server for APIs protected by PingFederate.
//
//	pingmcp dev     everything in one process on loopback, state in memory
//	pingmcp serve   one node of a cluster
//
// Run `pingmcp <command> --help` for the flags; each is also read from the
// environment as PINGMCP_<FLAG>.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/conformance"
	"github.com/pingmcp/pingmcp/transport"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		config.Usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	switch cmd {
	case "dev", "serve":
	default:
		fmt.Fprintf(stderr, "pingmcp: unknown command %q\n\n", cmd)
		config.Usage(stderr)
		return 2
	}
	cfg, err := config.Parse(cmd, args[1:], os.Getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pingmcp %s: %v\n", cmd, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "pingmcp %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func toolsets(names []string) ([]tools.Toolset, error) {
	var out []tools.Toolset
	for _, n := range names {
		switch n {
		case "conformance":
			out = append(out, conformance.New())
		case "todo":
			return nil, errors.New(`--tools todo: the Todo toolset is not in this build yet; use --tools conformance`)
		}
	}
	return out, nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// serve runs one node until ctx is done, then drains it.
func serve(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	logger := newLogger(cfg, stderr)
	ts, err := toolsets(cfg.Tools)
	if err != nil {
		return err
	}

	// Listen before joining, so that a taken port fails fast and port 0
	// resolves to the address we report.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	httpAddr := ln.Addr().String()

	actorCfg := actors.Config{
		Implementation: &mcp.Implementation{Name: "pingmcp", Version: version()},
		Toolsets:       ts,
		IdleTimeout:    cfg.SessionIdleTimeout,
		SchemaCache:    mcp.NewSchemaCache(),
		Logger:         logger,
	}
	var kinds []*protocluster.Kind
	if cfg.Role != cluster.RoleEdge {
		kinds = append(kinds,
			protocluster.NewKind(cluster.SessionKind, actors.SessionProps(actorCfg)),
			protocluster.NewKind(cluster.PrincipalKind, actors.PrincipalProps(actorCfg)))
	}
	node, err := cluster.Start(cluster.Config{
		Addr:           cfg.ClusterAddr,
		AdvertisedAddr: cfg.ClusterAdvertise,
		Provider:       cfg.ClusterProvider,
		Seeds:          cfg.ClusterSeeds,
		Role:           cfg.Role,
		Kinds:          kinds,
		HTTPAddr:       httpAddr,
		Logger:         logger,
	})
	if err != nil {
		ln.Close()
		return err
	}
	logger = node.Logger() // actors add the node address themselves

	mux := http.NewServeMux()
	health := transport.Health(node, cfg.Role)
	mux.Handle("/healthz", health)
	mux.Handle("/readyz", health)
	if cfg.Role != cluster.RoleMember {
		mux.Handle("/mcp", transport.NewEdge(node, transport.Options{
			AllowedOrigins: cfg.AllowedOrigins,
			AllowedHosts:   cfg.AllowedHosts,
			Loopback:       config.IsLoopback(httpAddr),
			MaxBodyBytes:   cfg.MaxBodyBytes,
			Logger:         logger,
		}))
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	logger.Info("node started", "http", httpAddr, "cluster", node.Address(), "role", cfg.Role,
		"provider", cfg.ClusterProvider, "tools", cfg.Tools, "auth", cfg.Auth)
	if cfg.Command == "dev" {
		fmt.Fprintf(stdout, `
pingmcp dev is running: everything in this one process, state in memory.

  MCP URL:   http://%[1]s/mcp
  Health:    http://%[1]s/healthz   http://%[1]s/readyz

Next: connect an MCP client to the URL above, for example
  npx @modelcontextprotocol/inspector   (transport "Streamable HTTP", URL as above)
  npx mcp-remote http://%[1]s/mcp        (for Claude Desktop; see README.md)
Stop with Ctrl-C.
`, httpAddr)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case serveErr = <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Open SSE streams never end by themselves; Shutdown waits for them
	// until its deadline, then Close cuts them so clients reconnect elsewhere.
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	node.Stop(true)
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/devidp"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/todoapi"
)

// Scopes of the demo's resources at the development authorization server.
var (
	todoScopes = []string{todoapi.ScopeRead, todoapi.ScopeWrite}
	mcpScopes  = append([]string{"openid", "profile", "offline_access"}, todoScopes...)
)

// dev runs everything in this process: with auth on (the default), the
// development authorization server and the Todo API beside the MCP node, all
// on loopback, URLs derived from their addresses.
func dev(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	logger := newLogger(cfg, stderr)
	mcpLn, err := listen(cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.Auth == "none" {
		cfg.Rebind(mcpLn.Addr().String(), cfg.IdPAddr, cfg.TodoAPIAddr)
		return serveNode(ctx, cfg, mcpLn, logger, stdout)
	}
	var servers []*http.Server
	defer func() {
		for _, s := range servers {
			shutdownWithin(10*time.Second, s)
		}
	}()
	start := func(ln net.Listener, h http.Handler) {
		s := newHTTPServer(h, logger)
		servers = append(servers, s)
		go func() {
			if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("embedded server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}

	embeddedIdP := cfg.Issuer == "http://"+cfg.IdPAddr // not pointed at a real PingFederate
	var idpLn net.Listener
	if embeddedIdP {
		if idpLn, err = listen(cfg.IdPAddr); err != nil {
			mcpLn.Close()
			return err
		}
	}
	todoLn, err := listen(cfg.TodoAPIAddr)
	if err != nil {
		mcpLn.Close()
		return err
	}
	idpAddr := cfg.IdPAddr
	if idpLn != nil {
		idpAddr = idpLn.Addr().String()
	}
	cfg.Rebind(mcpLn.Addr().String(), idpAddr, todoLn.Addr().String())

	if embeddedIdP {
		idp, err := devidp.New(devIdPOptions(cfg, logger.With("component", "idp")))
		if err != nil {
			return err
		}
		start(idpLn, idp)
	}
	api, err := newTodoAPI(cfg, cfg.TodoAPIURL, logger)
	if err != nil {
		return err
	}
	start(todoLn, api)
	return serveNode(ctx, cfg, mcpLn, logger, stdout)
}

func newTodoAPI(cfg *config.Config, audience string, logger *slog.Logger) (http.Handler, error) {
	opts := todoapi.Options{
		Verifier:         auth.NewJWTVerifier(auth.JWTOptions{Issuer: cfg.Issuer, Audiences: []string{audience}, HTTPClient: upstream(cfg)}),
		AllowUndelegated: cfg.AllowUndelegated,
		Logger:           logger.With("component", "todo-api"),
	}
	if cfg.RedisURL != "" {
		ropts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		t := cmp.Or(cfg.RedisTimeout, config.DefaultRedisTimeout)
		ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout, ropts.PoolTimeout = t, t, t, t
		opts.Store = todoapi.NewRedisStore(redis.NewClient(ropts), "")
	}
	return todoapi.New(opts)
}

// todoAPI runs the Todo API alone.
func todoAPI(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	logger := newLogger(cfg, stderr)
	stopTracing, err := telemetry.Setup(ctx, telemetry.Config{OTLPEndpoint: cfg.OTLPEndpoint, Version: version(), Logger: logger})
	if err != nil {
		return err
	}
	defer flushTraces(stopTracing, logger)
	api, err := newTodoAPI(cfg, cfg.Resource, logger)
	if err != nil {
		return err
	}
	return serveUntilDone(ctx, cfg.Addr, api, logger, "todo api started", "resource", cfg.Resource, "issuer", cfg.Issuer)
}

// devIdPOptions configure the development authorization server: users
// alice, bob and admin (passwords as names), of whom only admin may be
// granted the admin scope, and the grant manager --grants-user.
func devIdPOptions(cfg *config.Config, logger *slog.Logger) *devidp.Options {
	adminScope := cmp.Or(cfg.AdminScope, admin.DefaultScope)
	users := map[string]string{"alice": "alice", "bob": "bob", "admin": "admin"}
	for i := 1; i <= cfg.TestUsers; i++ {
		name := "user" + strconv.Itoa(i)
		users[name] = name
	}
	var grantManagers map[string]string
	if cfg.GrantsUser != "" {
		grantManagers = map[string]string{cfg.GrantsUser: cfg.GrantsPassword}
	}
	// Tokens for the MCP resource by any of the URIs it answers to: the
	// resource (RFC 8707) a client asks for is the URL it was pointed at.
	var resources []devidp.Resource
	for _, uri := range cfg.Resources() {
		resources = append(resources, devidp.Resource{URI: uri, Scopes: append(slices.Clip(mcpScopes), adminScope)})
	}
	resources = append(resources, devidp.Resource{URI: cfg.TodoAPIURL, Scopes: todoScopes})
	opts := &devidp.Options{
		Issuer:        cfg.Issuer,
		Users:         users,
		ScopeUsers:    map[string][]string{adminScope: {"admin"}},
		Clients:       []devidp.Client{{ID: cfg.ClientID, Secret: cfg.ClientSecret}},
		GrantManagers: grantManagers,
		Resources:     resources,
		Logger:        logger,
	}
	if cfg.CIMD {
		opts.ClientIDMetadata = &devidp.ClientIDMetadata{AllowLoopback: cfg.CIMDAllowLoopback, CAFile: cfg.CIMDCAFile}
	}
	return opts
}

// idp runs the development authorization server alone.
func idp(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	logger := newLogger(cfg, stderr)
	if err := devidp.CheckAddr(cfg.Addr, cfg.ForceNonLoopback); err != nil {
		return err
	}
	s, err := devidp.New(devIdPOptions(cfg, logger))
	if err != nil {
		return err
	}
	return serveUntilDone(ctx, cfg.Addr, s, logger, "development authorization server started", "issuer", cfg.Issuer)
}

func serveUntilDone(ctx context.Context, addr string, h http.Handler, logger *slog.Logger, msg string, attrs ...any) error {
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	srv := newHTTPServer(h, logger)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info(msg, append([]any{"http", ln.Addr().String()}, attrs...)...)
	select {
	case <-ctx.Done():
		shutdownWithin(10*time.Second, srv)
		return nil
	case err := <-served:
		return err
	}
}

func printDevBanner(w io.Writer, cfg *config.Config) {
	fmt.Fprintf(w, "\npingmcp dev is running: everything in this one process, state in memory.\n\n  MCP URL:   %s\n", cfg.Resource)
	if cfg.Auth != "none" {
		fmt.Fprintf(w, "  Log in:    %s (development users alice/alice and bob/bob)\n  Todo API:  %s\n", cfg.Issuer, cfg.TodoAPIURL)
	}
	if cfg.AdminAddr != "" {
		fmt.Fprintf(w, "  Admin:     http://%s (token in %s), for example\n             pingmcp sessions ls --admin-url http://%[1]s --admin-token-file %[2]s\n", cfg.AdminAddr, cfg.AdminTokenFile)
	}
	fmt.Fprintf(w, `  Health:    %[1]s/healthz   %[1]s/readyz

Next: connect an MCP client to the MCP URL, for example the MCP Inspector
  npx @modelcontextprotocol/inspector      (transport "Streamable HTTP")
or Claude Desktop: Settings → Developer → Edit Config, and paste
  {
    "mcpServers": {
      "pingmcp": { "command": "npx", "args": ["mcp-remote", "%[2]s"] }
    }
  }
Stop with Ctrl-C.
`, cfg.PublicURL, cfg.Resource)
}

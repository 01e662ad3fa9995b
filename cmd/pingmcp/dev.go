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
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/devidp"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/state"
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
	setMemoryLimit(cfg, logger)
	mcpLn, err := listenEdge(cfg)
	if err != nil {
		return err
	}
	// What dev starts beside the node goes on the node's cleanup stack
	// below the node's own parts: it stops after the node has drained.
	n := newNodeAssembly(cfg, mcpLn, logger)
	defer n.close()
	if cfg.Auth == auth.ModeNone {
		cfg.Rebind(mcpLn.Addr().String(), cfg.IdPAddr, cfg.TodoAPIAddr)
		return n.serve(ctx, stdout)
	}
	embeddedIdP := embeddedIdP(cfg)
	var store *devidp.StateFile
	if embeddedIdP && cfg.DevState != "" {
		// Before any listener: a second dev on this file is told so, not
		// that its ports are taken.
		if store, err = devidp.OpenStateFile(cfg.DevState); err != nil {
			if errors.Is(err, devidp.ErrStateInUse) {
				return fmt.Errorf("--dev-state: %w. Is another pingmcp dev running? Stop it, or give this one another --dev-state FILE, or --dev-state off", err)
			}
			return fmt.Errorf("--dev-state: %w (or --dev-state off: logins kept in memory only)", err)
		}
		n.cleanup.push(func() { store.Close() })
	}
	// Each refuses a Host that is not a loopback name or its URL's
	// (loopbackHostsOnly: DNS rebinding).
	start := func(ln net.Listener, h http.Handler, told string) {
		s := newHTTPServer(loopbackHostsOnly(ln, h, told), logger)
		n.cleanup.push(func() { shutdownWithin(10*time.Second, s) })
		go func() {
			if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("embedded server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}

	// Each on its loopback twin too when its URL, given, names localhost
	// (config.LocalhostTwins); a derived one is the IP literal it is bound
	// to (Rebind, below), which needs none.
	given := func(flagName, url string) []string {
		if cfg.Explicit(flagName) {
			return []string{url}
		}
		return nil
	}
	var idpLn net.Listener
	if embeddedIdP {
		if idpLn, err = listenTold(cfg.IdPAddr, given("issuer", cfg.Issuer)...); err != nil {
			return err
		}
		n.cleanup.push(func() { idpLn.Close() }) // closed already once served
	}
	todoLn, err := listenTold(cfg.TodoAPIAddr, given("todo-api-url", cfg.TodoAPIURL)...)
	if err != nil {
		return err
	}
	n.cleanup.push(func() { todoLn.Close() })
	idpAddr := cfg.IdPAddr
	if idpLn != nil {
		idpAddr = idpLn.Addr().String()
	}
	cfg.Rebind(mcpLn.Addr().String(), idpAddr, todoLn.Addr().String())

	if embeddedIdP {
		opts := devIdPOptions(cfg, logger.With("component", "idp"))
		opts.AccessTokenLifetime, opts.RefreshTokenLifetime = cfg.AccessTokenTTL, cfg.RefreshTokenTTL
		if store != nil {
			opts.Store = store
		}
		idp, err := devidp.New(opts)
		if err != nil {
			if store != nil {
				return fmt.Errorf("--dev-state %s: %w. The file was left as it is; to start afresh, move it away "+
					"(every client then registers and logs in again), or run with --dev-state off", store.Path(), err)
			}
			return err
		}
		start(idpLn, idp, cfg.Issuer)
	}
	api, err := newTodoAPI(cfg, cfg.TodoAPIURL, logger)
	if err != nil {
		return err
	}
	start(todoLn, api, cfg.TodoAPIURL)
	return n.serve(ctx, stdout)
}

// embeddedIdP says whether dev runs its own authorization server (it is not
// pointed at a real PingFederate).
func embeddedIdP(cfg *config.Config) bool { return cfg.Issuer == "http://"+cfg.IdPAddr }

func newTodoAPI(cfg *config.Config, audience string, logger *slog.Logger) (http.Handler, error) {
	opts := todoapi.Options{
		Verifier:         auth.NewJWTVerifier(auth.JWTOptions{Issuer: cfg.Issuer, Audiences: []string{audience}, HTTPClient: upstream(cfg)}),
		AllowUndelegated: cfg.AllowUndelegated,
		Logger:           logger.With("component", "todo-api"),
	}
	if cfg.RedisURL != "" {
		client, _, err := state.OpenRedis(cfg.RedisURL, cfg.RedisCluster, cmp.Or(cfg.RedisTimeout, config.DefaultRedisTimeout))
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		opts.Store = todoapi.NewRedisStore(client, "")
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
	return serveUntilDone(ctx, cfg.Addr, []string{cfg.Resource}, api, logger, "todo api started", "resource", cfg.Resource, "issuer", cfg.Issuer)
}

// operatorRedirect is the redirect URI of pingmcp's configured client at the
// development authorization server, through which an operator logs in for
// an admin access token: the admin scope is exclusive, granted through
// configured clients only (never registered or metadata document ones).
const operatorRedirect = "http://127.0.0.1/callback"

// devIdPOptions configure the development authorization server: users
// alice, bob and admin (passwords as names), of whom only admin may be
// granted the admin scope (through the configured client alone), and the
// grant manager --grants-user.
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
		Issuer:     cfg.Issuer,
		Users:      users,
		ScopeUsers: map[string][]string{adminScope: {"admin"}},
		Clients: []devidp.Client{{ID: cfg.ClientID, Secret: cfg.ClientSecret,
			GrantTypes:   []string{"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange", "authorization_code", "refresh_token"},
			RedirectURIs: []string{operatorRedirect}}},
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
	opts := devIdPOptions(cfg, logger)
	opts.AccessTokenLifetime, opts.RefreshTokenLifetime = cfg.AccessTokenTTL, cfg.RefreshTokenTTL
	s, err := devidp.New(opts)
	if err != nil {
		return err
	}
	return serveUntilDone(ctx, cfg.Addr, []string{cfg.Issuer}, s, logger, "development authorization server started", "issuer", cfg.Issuer)
}

// serveUntilDone serves h on addr, and on the loopback twins its clients'
// URLs need (config.LocalhostTwins), until ctx ends; on loopback, to
// loopback names and the hosts of urls only (loopbackHostsOnly).
func serveUntilDone(ctx context.Context, addr string, urls []string, h http.Handler, logger *slog.Logger, msg string, attrs ...any) error {
	ln, err := listenTold(addr, urls...)
	if err != nil {
		return err
	}
	srv := newHTTPServer(loopbackHostsOnly(ln, h, urls...), logger)
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

// runAgain is the command that runs this program again from the working
// directory: "pingmcp" for an installed binary, and for one that `go run`
// built (in a temporary go-build directory, on no PATH) the go run command
// of its source.
func runAgain() string {
	exe, err := os.Executable()
	if err != nil {
		return "pingmcp"
	}
	wd, _ := os.Getwd()
	_, file, _, _ := runtime.Caller(0)
	return runCommand(exe, wd, filepath.Dir(file))
}

// runCommand is runAgain for the executable exe, run from wd, whose main
// package's source is in srcDir ("" or missing: built with -trimpath).
func runCommand(exe, wd, srcDir string) string {
	if !builtByGoRun(exe) {
		return "pingmcp"
	}
	if fi, err := os.Stat(filepath.Join(srcDir, "main.go")); srcDir == "" || err != nil || fi.IsDir() {
		return "go run " + mainPackage // resolved in the module of the working directory
	}
	root := srcDir
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(root) == root {
			return "go run " + mainPackage
		}
		root = filepath.Dir(root)
	}
	if inModule, err := filepath.Rel(root, wd); err == nil && inModule != ".." && !strings.HasPrefix(inModule, ".."+string(filepath.Separator)) {
		rel, _ := filepath.Rel(wd, srcDir)
		if rel = filepath.ToSlash(rel); !strings.HasPrefix(rel, ".") {
			rel = "./" + rel
		}
		return "go run " + shellQuote(rel)
	}
	// Outside the module: go -C runs from its root.
	rel, _ := filepath.Rel(root, srcDir)
	return "go -C " + shellQuote(root) + " run " + shellQuote("./"+filepath.ToSlash(rel))
}

// mainPackage is this program's import path.
const mainPackage = "github.com/pingmcp/pingmcp/cmd/pingmcp"

// builtByGoRun says whether exe is where `go run` puts what it builds:
// $GOTMPDIR/go-buildNNN/bNNN/exe/NAME.
func builtByGoRun(exe string) bool {
	dir := filepath.Dir(exe)
	return filepath.Base(dir) == "exe" && strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(dir))), "go-build")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printDevBanner(w io.Writer, cfg *config.Config) {
	fmt.Fprintf(w, "\npingmcp dev is running: everything in this one process, sessions in memory.\n\n  MCP URL:   %s\n", cfg.Resource)
	if cfg.Auth != auth.ModeNone {
		fmt.Fprintf(w, "  Log in:    %s (development users alice/alice and bob/bob)\n  Todo API:  %s\n", cfg.Issuer, cfg.TodoAPIURL)
		switch {
		case !embeddedIdP(cfg):
		case cfg.DevState != "":
			fmt.Fprintf(w, "  Logins:    kept in %s (clients and grants survive a restart; --dev-state off for memory only)\n", cfg.DevState)
		default:
			fmt.Fprintf(w, "  Logins:    in memory only (--dev-state off): after a restart every client registers and logs in again\n")
		}
	}
	if cfg.AdminAddr != "" {
		tokenFile := cfg.AdminTokenFile
		if abs, err := filepath.Abs(tokenFile); err == nil {
			tokenFile = abs
		}
		fmt.Fprintf(w, "  Admin:     http://%s (token in %s), for example\n             %s sessions ls --admin-url http://%[1]s --admin-token-file %[4]s\n",
			cfg.AdminAddr, tokenFile, runAgain(), shellQuote(tokenFile))
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

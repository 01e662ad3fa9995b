// Command pingmcp is a remote MCP server for APIs protected by PingFederate.
//
//	pingmcp dev       everything in one process on loopback, sessions in memory
//	pingmcp serve     one node of a cluster
//	pingmcp todo-api  the demo Todo API
//	pingmcp idp       the development authorization server
//	pingmcp certs     a cluster CA and node certificates for its mutual TLS
//	pingmcp sessions  ls | show ID | kill ID, through a node's admin API
//	pingmcp tasks     ls | show OWNER/ID | cancel OWNER/ID, the same
//	pingmcp nodes     ls | drain ADDRESS, the same
//	pingmcp users     revoke SUBJECT, the same
//	pingmcp apis      reload, the same
//
// Run `pingmcp <command> --help` for the flags. Each flag of the first five
// is also read from the environment as PINGMCP_<FLAG>; the admin commands
// (admincli.go) read PINGMCP_ADMIN_URL, PINGMCP_ADMIN_TOKEN_FILE and
// PINGMCP_ADMIN_TOKEN.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/logwriter"
	"github.com/pingmcp/pingmcp/internal/loopback"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/conformance"
	"github.com/pingmcp/pingmcp/tools/openapi"
	"github.com/pingmcp/pingmcp/tools/todo"
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
	case checkOpenAPI:
		return openapi.CheckMain(os.Stdin, stdout)
	case "sessions", "tasks", "nodes", "users", "apis":
		return adminCLI(context.Background(), cmd, args[1:], os.Getenv, stdout, stderr)
	case "dev", "serve", "todo-api", "idp", "certs":
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
	// The process log goes out off the requests' paths, in order (an audit
	// record in it is waited for: audit.Logger); everything is written
	// before run returns.
	lw := logwriter.New(stderr)
	defer lw.Close()
	stderr = lw
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var runErr error
	switch cmd {
	case "dev":
		runErr = dev(ctx, cfg, stdout, stderr)
	case "serve":
		runErr = serve(ctx, cfg, stdout, stderr)
	case "todo-api":
		runErr = todoAPI(ctx, cfg, stderr)
	case "idp":
		runErr = idp(ctx, cfg, stderr)
	case "certs":
		runErr = certs(cfg, stdout)
	}
	if err := runErr; err != nil {
		fmt.Fprintf(stderr, "pingmcp %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// newLogger builds the process's logger and makes it the default, so that
// libraries logging through slog.Default (zitadel's op) follow
// --log-format and --log-level too.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.LogFormat == "json" {
		opts.ReplaceAttr = telemetry.PrintableStrings
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	if lw, ok := w.(*logwriter.Writer); ok {
		h = logwriter.Handler(h, lw) // audit records wait for their line (audit.Logger)
	}
	logger := slog.New(h)
	slog.SetDefault(logger)
	log.SetFlags(0)
	log.SetOutput(stdLog{logger})
	return logger
}

// stdLog takes what the standard library's log package writes (net/http's
// transport among others) into logger, as slog.SetDefault would, but for
// what quotes a server's bytes: the transport logs the start of what a
// server sent on an idle connection ("Unsolicited response received on
// idle HTTP channel starting with …"), where a server that reflects its
// requests would put the Basic credentials or the token a call carried.
type stdLog struct{ logger *slog.Logger }

// unsolicited starts the transport's line for bytes a server sent unasked.
const unsolicited = "Unsolicited response received on idle HTTP channel"

func (l stdLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if strings.HasPrefix(msg, unsolicited) {
		msg = unsolicited + ": a server sent bytes after its answer (not shown: they are the server's to choose, and may echo the request's credentials)"
	}
	l.logger.Info(msg)
	return len(p), nil
}

// grantsService is the grant management service's URL (--grants-url, or
// the issuer's), with a warning when it is plain http beyond loopback: the
// grant manager's password would cross the network in clear.
func grantsService(cfg *config.Config) (endpoint, warning string) {
	endpoint = cmp.Or(cfg.GrantsURL, strings.TrimSuffix(cfg.Issuer, "/")+auth.GrantsPath)
	if u, err := url.Parse(endpoint); err == nil && u.Scheme == "http" && !loopback.Is(u.Host) {
		warning = "the grant management service is plain http beyond loopback: its password (--grants-password) crosses the network in clear"
	}
	return endpoint, warning
}

// upstream is the client of calls to the authorization server and the
// APIs: each bounded by --upstream-timeout (commands without the flag: its
// default), all on one connection pool (upstreamTransport).
// apisOptions are the options of the toolset of --apis: each document
// loaded and checked first by a process of its own, this executable
// running its hidden command check-openapi, killed if it takes longer than
// the load's time (openapi.Options.Checker). On Linux the executable is the
// file this process runs, /proc/self/exe, not the path it was started from:
// a binary replaced there since (an upgrade in place) would check the
// documents with another build's code.
func apisOptions(cfg *config.Config) openapi.Options {
	opts := openapi.Options{HTTPClient: upstream(cfg)}
	if self, err := os.Executable(); err == nil {
		run := self
		if _, err := os.Stat(runningExe); err == nil {
			run = runningExe
		}
		opts.Checker = func(ctx context.Context) *exec.Cmd {
			cmd := exec.CommandContext(ctx, run, checkOpenAPI)
			cmd.Args[0] = self   // its name in ps
			cmd.Env = []string{} // nothing of the node's secrets
			return cmd
		}
	}
	return opts
}

// runningExe is, on Linux, the file the process runs, whatever has become
// of its path since.
const runningExe = "/proc/self/exe"

// checkOpenAPI is the hidden command that loads and checks a document for
// a node (openapi.CheckMain).
const checkOpenAPI = "check-openapi"

func upstream(cfg *config.Config) *http.Client {
	return &http.Client{
		Timeout:   cmp.Or(cfg.UpstreamTimeout, config.DefaultUpstreamTimeout),
		Transport: upstreamTransport(),
	}
}

// upstreamIdlePerHost is how many idle connections to one upstream host
// (the authorization server, an API) a process keeps for reuse. Go's
// default, 2, is a client's: a node's tool calls reach one API from many
// sessions at once, and with 2 every burst left all but two of its
// connections to close, the next burst dialing (over TLS, handshaking)
// again: 2-3 % of the load test's calls at 200/s, all of a burst's.
const upstreamIdlePerHost = 256

// upstreamTransport is the default transport with upstreamIdlePerHost, one
// per process.
var upstreamTransport = sync.OnceValue(func() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = upstreamIdlePerHost
	tr.MaxIdleConns = 4 * upstreamIdlePerHost
	return tr
})

// verifier builds the token verifier of --auth for the MCP resource: it
// accepts a token for any of the resource's URIs (cfg.Resources), and the
// edge checks that it is for the one its request names (auth.Token.For).
func verifier(cfg *config.Config) auth.Verifier {
	if cfg.Auth == auth.ModeIntrospection {
		return auth.NewIntrospectionVerifier(auth.IntrospectionOptions{
			Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
			Audiences: cfg.Resources(), HTTPClient: upstream(cfg),
		})
	}
	return auth.NewJWTVerifier(auth.JWTOptions{Issuer: cfg.Issuer, Audiences: cfg.Resources(), HTTPClient: upstream(cfg)})
}

// httpIdleTimeout: a kept-alive connection with no request goes after this
// long (streams are requests: they stay).
const httpIdleTimeout = 2 * time.Minute

// keepAliveHint is the Keep-Alive header of every HTTP/1.x response to a
// client that came directly (not through a proxy: proxied): it
// tells the client to keep an idle connection open up to 5 s less than the
// server does. Node's fetch (undici: mcp-remote, the MCP Inspector, the
// TypeScript SDK) otherwise closes one idle for 4 s, so that a session's
// next request after a pause (a model thinking) opens a new connection,
// which a connection-level balancer (a Kubernetes Service) may send to
// another node than the one holding the session: that request then takes
// a hop. Shorter than the server's own timeout, so that the client closes
// first: a server's close racing a client's next request fails that
// request (a POST is not retried).
var keepAliveHint = "timeout=" + strconv.Itoa(int((httpIdleTimeout-5*time.Second)/time.Second))

// proxied says whether a request came through an HTTP proxy (it says so in
// Forwarded, X-Forwarded-For or Via): the proxy keeps its own connections
// to its clients, and one that passed the hint on would tell them to
// outlast its own idle timeout.
func proxied(h http.Header) bool {
	return h.Get("Forwarded") != "" || h.Get("X-Forwarded-For") != "" || h.Get("Via") != ""
}

// closingServers are the servers whose keep-alives stopKeepAlives turned
// off.
var closingServers sync.Map // *http.Server → struct{}

// stopKeepAlives turns srv's keep-alives off (each connection closes after
// its answer) and its answers' Keep-Alive hint with them.
func stopKeepAlives(srv *http.Server) {
	closingServers.Store(srv, struct{}{})
	srv.SetKeepAlivesEnabled(false)
}

// keepAlivesOff says whether r's server had its keep-alives turned off.
func keepAlivesOff(r *http.Request) bool {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	_, off := closingServers.Load(srv)
	return off
}

func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A connection-specific header: none in HTTP/2, nor when the
			// connection closes after this answer (the client asked, or a
			// drain turned keep-alives off).
			if r.ProtoMajor == 1 && !r.Close && !proxied(r.Header) && !keepAlivesOff(r) {
				w.Header().Set("Keep-Alive", keepAliveHint)
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    config.DefaultMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// shutdown stops srv: open SSE streams never end by themselves, so Shutdown
// waits for them until its deadline, then Close cuts them and clients
// reconnect elsewhere.
func shutdownWithin(d time.Duration, srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	shutdown(ctx, srv)
}

func shutdown(ctx context.Context, srv *http.Server) {
	if ctx.Err() != nil {
		// No time left: give what is open a moment, then cut it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
	}
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
}

// toolsets are those of --tools, and the tools of --apis' APIs, whose
// documents are loaded (a URL fetched) now; no two of them may offer a tool
// of the same name (actors.NewTools). A reload replaces the --apis toolset
// (reload.go).
func toolsets(ctx context.Context, cfg *config.Config) (*actors.Tools, error) {
	var out []tools.Toolset
	for _, n := range cfg.Tools {
		switch n {
		case "conformance":
			out = append(out, conformance.New())
		case "todo":
			out = append(out, todo.New(todo.Options{APIURL: cfg.TodoAPIURL, HTTPClient: upstream(cfg)}))
		}
	}
	if len(cfg.APIs) > 0 {
		// Within the time a reload has: a document that takes longer is
		// refused, not waited for (openapi.load).
		lctx, cancel := context.WithTimeout(ctx, reloadTimeout)
		defer cancel()
		apis, err := openapi.New(lctx, cfg.APIs, apisOptions(cfg))
		if err != nil {
			return nil, fmt.Errorf("--apis %s: %w", cfg.APIsFile, err)
		}
		out = append(out, apis)
	}
	return actors.NewTools(ctx, out...)
}

// exchanger is the token exchange client, when one is configured.
func exchanger(cfg *config.Config) *auth.Exchanger {
	if cfg.Auth == auth.ModeNone || cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil
	}
	return auth.NewExchanger(auth.ExchangeOptions{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, ActorToken: cfg.ActorToken, HTTPClient: upstream(cfg)})
}

// flushTraces exports the spans still buffered, within a few seconds.
func flushTraces(stop func(context.Context) error, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := stop(ctx); err != nil {
		logger.Warn("tracing: spans not flushed", "err", err)
	}
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	// Built from a checkout: the commit it was built from.
	rev, dirty := "", ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = "+" + s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	return "dev" + rev + dirty
}

// serve runs one node until ctx is done, then drains it.
func serve(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	// Listen before joining, so that a taken port fails fast and port 0
	// resolves to the address we report.
	ln, err := listenEdge(cfg)
	if err != nil {
		return err
	}
	cfg.Rebind(ln.Addr().String(), cfg.IdPAddr, cfg.TodoAPIAddr)
	logger := newLogger(cfg, stderr)
	setMemoryLimit(cfg, logger)
	return serveNode(ctx, cfg, ln, logger, stdout)
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// newStores is where the node keeps sessions: Redis when --redis-url is
// set, else this process's memory.
func newStores(cfg *config.Config, logger *slog.Logger) (*state.Stores, func(), error) {
	var sealer *state.Sealer
	if cfg.StateKeys != "" {
		var err error
		if sealer, err = state.ParseKeys(cfg.StateKeys); err != nil {
			return nil, nil, fmt.Errorf("--state-keys: %w", err)
		}
	}
	if cfg.RedisURL == "" {
		d := state.MemoryStores(cfg.SessionIdleTimeout)
		d.MaxSessionsPerUser = cfg.MaxSessionsPerUser
		d.MaxTasksPerUser = cfg.MaxTasksPerUser
		d.MaxSnapshotBytes = cfg.MaxSnapshotBytes
		d.Events.(*state.MemoryEvents).SetOptions(eventOptions(cfg))
		if sealer != nil {
			d.Sealer = sealer
		}
		logger.Info("sessions are kept in this process's memory: they survive their actors, not this process (set --redis-url for a cluster)")
		return d, func() {}, nil
	}
	shared := sealer != nil
	if sealer == nil {
		// Only dev gets here (config refuses serve without keys).
		sealer = state.NewProcessSealer()
		logger.Warn("no --state-keys: session tokens, task records and SSE events in Redis are sealed with a key of this process alone; sessions and tasks will not survive its restart")
	}
	timeout := cmp.Or(cfg.RedisTimeout, config.DefaultRedisTimeout)
	client, where, err := state.OpenRedis(cfg.RedisURL, cfg.RedisCluster, timeout)
	if err != nil {
		return nil, nil, fmt.Errorf("--redis-url: %w", err)
	}
	// A Redis that may evict is refused now, if it answers.
	pctx, cancel := context.WithTimeout(context.Background(), timeout)
	err = state.EvictionPolicy(pctx, client)
	cancel()
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("--redis-url: %w", err)
	}
	rep := state.Replication{Replicas: cfg.RedisReplicas, Timeout: timeout}
	snapshots, events := state.NewRedisSnapshots(client, cfg.RedisPrefix), state.NewRedisEvents(client, cfg.RedisPrefix, eventOptions(cfg))
	revocations, users := state.NewRedisRevocations(client, cfg.RedisPrefix), state.NewRedisUserSessions(client, cfg.RedisPrefix)
	userTasks := state.NewRedisUserTasks(client, cfg.RedisPrefix)
	userTasks.SetReplication(rep)
	tasks := taskstore.NewRedis(client, cfg.RedisPrefix)
	tasks.SetReplication(rep.Replicas, rep.Timeout)
	tasks.SetSealer(sealer)  // a task's arguments and results may hold users' data
	events.SetSealer(sealer) // so may tool results, and every event
	snapshots.SetReplication(rep)
	snapshots.SetMaxBytes(cfg.MaxSnapshotBytes) // whence what it reads
	events.SetReplication(rep)
	revocations.SetReplication(rep)
	users.SetReplication(rep)
	d := &state.Stores{
		Snapshots:   snapshots,
		Events:      events,
		Sealer:      sealer,
		SessionTTL:  cfg.SessionIdleTimeout,
		Check:       state.RedisCheck(client),
		Revocations: revocations,
		Tasks:       tasks,

		Users:              users,
		MaxSessionsPerUser: cfg.MaxSessionsPerUser,
		UserTasks:          userTasks,
		MaxTasksPerUser:    cfg.MaxTasksPerUser,
		MaxSnapshotBytes:   cfg.MaxSnapshotBytes,
		Shared:             shared,
	}
	logger.Info("sessions are kept in Redis", "redis", where, "replicas", cfg.RedisReplicas, "prefix", cfg.RedisPrefix, "state_keys", sealer.KeyIDs())
	return d, func() { client.Close() }, nil
}

// eventOptions are the bounds of the SSE events kept for resumption.
func eventOptions(cfg *config.Config) state.EventOptions {
	return state.EventOptions{MaxLen: cfg.EventsMax, TTL: cfg.EventsTTL, MaxBytes: cfg.EventsMaxBytes, MaxTotalBytes: cfg.EventsMaxTotalBytes,
		JournalEntries: journalEntries(cfg.MaxConcurrentRequests)}
}

// journalEntries is the most entries of a session's request journal a node
// reads, for running calls, the calls a session may run at once
// (--max-concurrent-requests): twice as many, and the default at least;
// with no limit (0), 65,536 (256 MiB of ids at most), beyond which a
// journal is refused unread.
func journalEntries(running int) int64 {
	if running <= 0 {
		return 1 << 16
	}
	return max(state.DefaultJournalEntries, 2*int64(running))
}

// revocationRefresh is how often a node reloads the revoked users: a
// revocation reaches every edge within it.
const revocationRefresh = 500 * time.Millisecond

// adminToken reads the static token of the admin API in path (none if
// path is empty), the file of --flagName, and warns when other users of
// the host may read it.
func adminToken(flagName, path string, logger *slog.Logger) (string, error) {
	if path == "" {
		return "", nil
	}
	token, exposed, err := config.ReadToken(flagName, path)
	if err != nil {
		return "", err
	}
	if exposed {
		logger.Warn("--"+flagName+" may be read by other users of this host: chmod 600 it (640 for a group; a Kubernetes Secret's defaultMode 0440), and make a new token if they may have read it",
			"file", path)
	}
	return string(token), nil
}

// serveAdmin starts the admin API on its own listener, when --admin-addr
// is set. Access tokens are verified by v within budget (the edge's).
func serveAdmin(ctx context.Context, cfg *config.Config, d *state.Stores, node *cluster.Node, v auth.Verifier, budget *transport.TokenBudget,
	x *auth.Exchanger, revoked func(*auth.Token) bool, auditLog *audit.Logger, logger *slog.Logger) (srv *http.Server, err error) {
	if cfg.AdminAddr == "" {
		return nil, nil
	}
	if cfg.AdminTokenFile == "" && cfg.Command == "dev" {
		// dev makes a token in a new file readable by this user alone
		// (CreateTemp: 0600, a name nobody could have taken before), and
		// the banner says where.
		f, err := os.CreateTemp("", "pingmcp-dev-admin-token-*")
		if err != nil {
			return nil, fmt.Errorf("write the dev admin token: %w", err)
		}
		_, err = f.WriteString(rand.Text() + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write the dev admin token: %w", err)
		}
		cfg.AdminTokenFile = f.Name()
		defer func() {
			if srv == nil { // not started: nothing will use it
				os.Remove(f.Name())
			}
		}()
		context.AfterFunc(ctx, func() { os.Remove(f.Name()) })
	}
	opts := admin.Options{Stores: d, Node: node, Logger: logger, Issuer: cfg.Issuer, Scope: cfg.AdminScope, Revoked: revoked, Audit: auditLog}
	if opts.Token, err = adminToken("admin-token-file", cfg.AdminTokenFile, logger); err != nil {
		return nil, err
	}
	if opts.MetricsToken, err = adminToken("metrics-token-file", cfg.MetricsTokenFile, logger); err != nil {
		return nil, err
	}
	opts.Verifier, opts.Budget = v, budget
	if x != nil {
		opts.RevokeToken = x.Revoke
	}
	if cfg.Auth != auth.ModeNone && cfg.GrantsUser != "" {
		endpoint, warning := grantsService(cfg)
		if warning != "" {
			logger.Warn(warning, "grants_url", endpoint)
		}
		opts.RevokeGrants = auth.NewGrantRevoker(auth.GrantsOptions{URL: endpoint,
			User: cfg.GrantsUser, Password: cfg.GrantsPassword, HTTPClient: upstream(cfg)}).RevokeUser
	} else if cfg.Auth != auth.ModeNone {
		logger.Warn("no --grants-user: revoking a user ends their sessions but leaves their refresh tokens working at the authorization server")
	}
	h, err := admin.Handler(opts)
	if err != nil {
		return nil, err
	}
	// Operators are told http://<--admin-addr>: given as localhost, on
	// both loopback addresses (config.LocalhostTwins), or another local
	// user could take the other one and be handed the admin token.
	ln, err := listenTold(cfg.AdminAddr, "http://"+cfg.AdminAddr)
	if err != nil {
		return nil, err
	}
	// On loopback, to loopback names only: a web page rebound to
	// 127.0.0.1 gets nothing of it (loopbackHostsOnly).
	srv = newHTTPServer(loopbackHostsOnly(ln, h, "http://"+cfg.AdminAddr), logger)
	go srv.Serve(ln)
	cfg.AdminAddr = ln.Addr().String() // port 0 resolved, for the banner
	logger.Info("admin API started", "admin", cfg.AdminAddr)
	return srv, nil
}

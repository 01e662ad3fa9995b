// Package config turns pingmcp's command line and environment into a Config.
//
// Every flag --some-flag can also be set as PINGMCP_SOME_FLAG; the command
// line wins over the environment, which wins over the default. The package
// validates values and their combinations (auth "none" only on loopback, say)
// and leaves acting on them to cmd/pingmcp.
package config

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/internal/enum"
	"github.com/pingmcp/pingmcp/internal/loopback"
	"github.com/pingmcp/pingmcp/internal/outbound"
	"github.com/pingmcp/pingmcp/internal/privfile"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/tools/openapi"
)

// Config is everything a pingmcp command is told.
type Config struct {
	Command string

	Addr             string
	ClusterAddr      string
	ClusterAdvertise string
	ClusterSeeds     []string
	ClusterProvider  cluster.Provider
	// ProbeInterval and ProbeFailures pace the automanaged provider's
	// failure detection: a node that misses ProbeFailures probes in a row,
	// one every ProbeInterval, has left.
	ProbeInterval time.Duration
	ProbeFailures int
	// ClusterTLSCert, ClusterTLSKey and ClusterTLSCA are the PEM files of
	// the cluster's mutual TLS: this node's certificate and key, and the
	// cluster CA's certificates. ClusterInsecure allows plaintext,
	// unauthenticated connections between the nodes of a multi-node cluster
	// (loopback included); a single node accepts none at all.
	ClusterTLSCert     string
	ClusterTLSKey      string
	ClusterTLSCA       string
	ClusterInsecure    bool
	Role               cluster.Role
	Tools              []string
	APIsFile           string        // --apis: APIs whose OpenAPI operations become tools
	APIs               []openapi.API // what APIsFile declares (documents not loaded yet)
	Auth               auth.Mode
	AllowedOrigins     []string
	AllowedHosts       []string
	SessionIdleTimeout time.Duration // a session with no request for this long ends
	ActorIdleTimeout   time.Duration // an idle session's actor leaves memory; ≤ SessionIdleTimeout
	DrainTimeout       time.Duration // on SIGTERM, how long in-flight requests may take
	// SSEKeepAlive is how long an open SSE stream may stay silent before it
	// carries a keep-alive comment (0: never); see DefaultSSEKeepAlive.
	SSEKeepAlive time.Duration
	// AdminAddr is the admin API's listener (off when empty); AdminTokenFile
	// holds its bearer token, MetricsTokenFile a bearer token that reads
	// its GET /metrics and nothing else (Prometheus's).
	AdminAddr        string
	AdminTokenFile   string
	MetricsTokenFile string
	// AdminScope is the scope that makes an access token of the
	// authorization server an admin token.
	AdminScope   string
	MaxBodyBytes int64
	LogLevel     string
	LogFormat    string

	// Identity (issue: PingFederate-protected /mcp).
	PublicURL    string // how clients reach /mcp's host: scheme://host[:port]
	Resource     string // the canonical MCP URI (RFC 8707 / 9728)
	Issuer       string // the authorization server (PingFederate)
	ClientID     string // pingmcp's own client: token exchange, introspection
	ClientSecret string
	Scopes       []string // scopes_supported of the resource metadata
	TodoAPIURL   string   // the downstream API's URL and resource URI
	ActorToken   bool     // send the client's own token as actor_token
	// The authorization server's grant management service (PingFederate's
	// OAuth Access Grant Management Service): revoking a user revokes their
	// persistent grants there. GrantsURL defaults to the issuer's
	// /pf-ws/rest/oauth/users; GrantsPassword is secret, never print it.
	GrantsURL      string
	GrantsUser     string
	GrantsPassword string

	// Durability (serve and dev): snapshots and SSE events in Redis, or in
	// this process's memory when RedisURL is empty.
	RedisURL string // also todo-api's store
	// RedisCluster says RedisURL names a Redis Cluster by one address (a
	// URL naming several, with addr= parameters, is one anyway).
	RedisCluster bool
	// RedisReplicas is how many replicas must hold each write of session
	// state before it is confirmed (WAIT).
	RedisReplicas int
	RedisPrefix   string
	StateKeys     string // keyid:base64-of-32-bytes,...; secret, never print it
	EventsMax     int64
	EventsTTL     time.Duration
	// TaskTTL is how long a task (the MCP tasks extension) stays readable
	// after its last change; TaskLease how long the runner of a task's
	// round answers for it without renewing (it renews every third).
	TaskTTL, TaskLease time.Duration

	// Tracing and audit (serve and dev; todo-api traces too).
	OTLPEndpoint  string // OTLP/HTTP collector; tracing off when empty (and no OTEL_EXPORTER_OTLP_* set)
	AuditLog      string // file of audit records (JSON lines); empty: the process log
	AuditToolArgs bool   // record tool call arguments in the audit log

	// Limits (serve and dev), each per edge unless it says otherwise; a
	// zero rate or cap turns that limit off.
	RateLimit              float64 // requests per second per principal
	RateBurst              int     // requests a principal may make at once above the rate
	MaxConcurrentRequests  int     // POST/DELETE requests in flight per principal
	MaxBatch               int     // messages of one JSON-RPC batch
	MaxBatchConcurrency    int     // tool calls of one batch running at once
	PassivateAbove         float64 // the share of GOMEMLIMIT the node's retained memory (live heap, stacks, runtime metadata) may reach before idle actors passivate
	MemoryLimit            int64   // the container's memory limit in bytes, of which the Go soft limit is 90 % when GOMEMLIMIT is not set; 0: the cgroup's, if any
	MaxInitializeBytes     int     // params of an initialize
	MaxStreamsPerPrincipal int     // open GET (SSE) and subscriptions/listen streams per principal
	MaxStreamsPerSession   int     // open GET (SSE) streams per session, counted by its actor (cluster-wide)
	// The same per user (issuer, subject), all the user's clients together.
	UserRateLimit     float64
	UserRateBurst     int
	UserMaxConcurrent int
	UserMaxStreams    int
	// MaxSessionsPerUser caps a user's sessions in the whole cluster
	// (counted in the shared store).
	MaxSessionsPerUser int
	// MaxTasksPerUser caps a user's live tasks in the whole cluster (all
	// clients together); zero: no cap.
	MaxTasksPerUser int
	// TrustedProxies are the peers whose forwarding headers name the client.
	TrustedProxies []netip.Prefix
	EventsBuffer   int // event writes a session holds while its store is unreachable
	// MaxSnapshotBytes bounds a session's snapshot (changes beyond are
	// refused); EventsMaxBytes the SSE events a session keeps, all its
	// streams (oldest dropped beyond); EventsMaxTotalBytes those all
	// sessions keep in memory (without Redis).
	MaxSnapshotBytes    int
	EventsMaxBytes      int64
	EventsMaxTotalBytes int64
	MaxHeaderBytes      int           // request header size (431 beyond)
	UpstreamTimeout     time.Duration // every call to the authorization server, the Todo API and --apis' APIs
	RedisTimeout        time.Duration // dialing, reading and writing Redis

	// pingmcp dev, idp and todo-api.
	IdPAddr          string
	TodoAPIAddr      string
	AllowUndelegated bool
	ForceNonLoopback bool
	// CIMD turns on Client ID Metadata Documents at the development
	// authorization server; CIMDAllowLoopback (fetch documents from
	// loopback) and CIMDCAFile (trust this CA for them) are for tests.
	CIMD              bool
	CIMDAllowLoopback bool
	CIMDCAFile        string
	// TestUsers adds users user1 … userN to the development authorization
	// server (password: the name), for load tests.
	TestUsers int
	// DevState is the file where dev's embedded authorization server keeps
	// its signing key, registered clients and grants across restarts; ""
	// when off (in memory only). Given as "off" or "" on the command line.
	DevState string
	// AccessTokenTTL and RefreshTokenTTL are the lifetimes of the tokens
	// the development authorization server issues (dev and idp).
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration

	// pingmcp certs: the directory it writes to, the node certificates'
	// names (CertsNodes of them, node-1 … node-N, unless named), the names
	// and addresses they hold, and how long they and the CA are valid.
	CertsDir        string
	CertsNodes      int
	CertsNames      []string
	CertsHosts      []string
	CertsValidity   time.Duration
	CertsCAValidity time.Duration

	explicit map[string]bool // flags set on the command line or environment
	unheld   map[string]bool // loopback twins this host lacks (see Unheld)
}

// Commands lists the subcommands and what they do, for help.
var Commands = []struct{ Name, Summary string }{
	{"dev", "run everything in one process on loopback, sessions in memory, logins kept across restarts (the embedded default)"},
	{"serve", "run one node of a pingmcp cluster"},
	{"todo-api", "run the demo Todo API (the downstream API the todo tools call)"},
	{"idp", "run the development authorization server (a PingFederate stand-in; not for production)"},
	{"sessions", "ls | show ID | kill ID: the cluster's sessions, through the admin API"},
	{"tasks", "ls | show OWNER/ID | cancel OWNER/ID: the cluster's durable tasks (MCP tasks extension), through the admin API"},
	{"nodes", "ls | drain ADDRESS: the cluster's nodes, through the admin API"},
	{"users", "revoke SUBJECT [--for 1h]: end a user's sessions and refuse their current tokens"},
	{"apis", "reload: every node reads its --apis file and fetches its documents again (as on SIGHUP), through the admin API"},
	{"certs", "write a cluster CA and node certificates for the cluster's mutual TLS (--cluster-tls-*)"},
}

// Toolsets are the values of --tools. The values of --auth, --role and
// --cluster-provider are the packages' own: auth.Modes, cluster.Roles and
// cluster.Providers.
var Toolsets = []string{"todo", "conformance"}

// DefaultSSEKeepAlive is --sse-keepalive's default. An idle stream must
// carry bytes more often than the shortest idle timeout on its way: Node.js's
// HTTP client (undici, under the TypeScript SDK, mcp-remote and the
// Inspector) drops a response body silent for 300 s, and common proxies and
// load balancers do sooner (nginx's proxy_read_timeout and AWS ALB's idle
// timeout are 60 s by default). 25 s is under half of the shortest of
// those, so that one late comment cuts nothing; it costs a comment of 14
// bytes per stream every 25 s.
const DefaultSSEKeepAlive = 25 * time.Second

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return "PINGMCP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse reads the flags of command from args and the environment. With
// --help it writes usage to out and returns flag.ErrHelp.
func Parse(command string, args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{Command: command}
	fs := flag.NewFlagSet("pingmcp "+command, flag.ContinueOnError)
	fs.SetOutput(out)
	lists := map[string]*string{}
	list := func(name, def, usage string) {
		lists[name] = fs.String(name, def, usage)
	}

	switch command {
	case "dev", "serve":
		dev := command == "dev"
		defAddr := ":8080"
		if dev {
			defAddr = "127.0.0.1:8080"
		}
		fs.StringVar(&c.Addr, "addr", defAddr, "HTTP address of the edge (/mcp, /healthz, /readyz, /.well-known/...)")
		list("tools", "todo", "comma-separated toolsets the MCP server offers: "+strings.Join(Toolsets, ", "))
		fs.StringVar(&c.APIsFile, "apis", "", "YAML file declaring APIs whose OpenAPI operations become tools besides --tools' (each called with a token exchanged for its resource; documents given as URLs are fetched at start and on a reload: SIGHUP, pingmcp apis reload)")
		fs.StringVar((*string)(&c.Auth), "auth", string(auth.ModeJWT), "how /mcp authenticates callers: "+enum.Names(auth.Modes)+` ("none" only when every listen address is loopback)`)
		list("allowed-origins", "", "comma-separated browser origins allowed to call /mcp besides same-origin (and loopback origins on a loopback listener)")
		list("allowed-hosts", "", "comma-separated Host values /mcp answers to (DNS-rebinding protection); empty: loopback names on a loopback listener, any otherwise")
		fs.DurationVar(&c.SessionIdleTimeout, "session-idle-timeout", 30*time.Minute, "end a session with no request for this long; its snapshot and events expire then (0: never)")
		fs.DurationVar(&c.ActorIdleTimeout, "actor-idle-timeout", 5*time.Minute, "unload a session's actor from memory after this long without a request or open stream; the session lives on in its snapshot; a call whose client closed its stream keeps it until the call ends or the session's idle timeout (0: never)")
		defAdmin, tokenHelp := "", "file holding a static admin bearer token (with --auth none it is required with --admin-addr)"
		if dev {
			defAdmin, tokenHelp = "127.0.0.1:9090", "file holding the admin API's bearer token (dev: one is made when empty)"
		}
		fs.StringVar(&c.AdminAddr, "admin-addr", defAdmin, "HTTP address of the admin API (sessions, nodes, /metrics), a listener of its own; off when empty")
		fs.StringVar(&c.AdminTokenFile, "admin-token-file", "", tokenHelp)
		fs.StringVar(&c.MetricsTokenFile, "metrics-token-file", "", "file holding a static bearer token that reads the admin API's GET /metrics and nothing else: give Prometheus this one, not the admin token (needs --admin-addr; must neither hold nor be part of the admin token)")
		fs.StringVar(&c.AdminScope, "admin-scope", "pingmcp:admin", "scope that makes an access token of the authorization server (for this resource) an admin token")
		fs.DurationVar(&c.DrainTimeout, "drain-timeout", 20*time.Second, "on SIGTERM, how long in-flight requests may take to finish before their streams are ended with a retry hint")
		fs.DurationVar(&c.SSEKeepAlive, "sse-keepalive", DefaultSSEKeepAlive, "write an SSE comment on every open stream (GET, and POST answered with a stream) silent for this long, so that clients and proxies keep it open; a stream silent for three times this long is ended as dead, for the client to resume (0: never)")
		fs.StringVar(&c.RedisURL, "redis-url", "", "keep session snapshots and SSE events in Redis (redis://host:port/db, rediss:// for TLS; a Redis Cluster: redis://host1:port1?addr=host2:port2&addr=…); in this process's memory when empty (one node only)")
		fs.BoolVar(&c.RedisCluster, "redis-cluster", false, "--redis-url is a Redis Cluster, named by one of its nodes")
		fs.IntVar(&c.RedisReplicas, "redis-replicas", 0, "confirm a write of session state (snapshot, event, session count, revocation) only once this many replicas of its Redis master hold it (WAIT, bounded by --redis-timeout), so that a failover loses none; 0: once the master has it")
		fs.StringVar(&c.RedisPrefix, "redis-prefix", "pingmcp:", "prefix of every Redis key this cluster writes")
		fs.StringVar(&c.StateKeys, "state-keys", "", "keys sealing the tokens in session snapshots, the task records and the SSE events in Redis: keyid:base64-of-32-bytes, comma-separated, newest first (prefer the environment variable)")
		fs.Int64Var(&c.EventsMax, "events-max", 1000, "SSE events kept per stream for resumption")
		fs.DurationVar(&c.EventsTTL, "events-ttl", time.Hour, "how long an SSE stream's events outlive its last event")
		fs.DurationVar(&c.TaskTTL, "task-ttl", DefaultTaskTTL, "how long a task (MCP tasks extension) stays readable after its last change: its result, its pending input; more than --task-lease")
		fs.DurationVar(&c.TaskLease, "task-lease", DefaultTaskLease, "how long the node running a task's round answers for it without renewing (it renews every third of it): a task whose node died is taken over this long after its last renewal ("+MinTaskLease.String()+" to "+MaxTaskLease.String()+")")
		fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 4<<20, "largest request body /mcp accepts (413 beyond)")
		limitFlags(fs, c)
		fs.Int64Var(&c.MemoryLimit, "memory-limit", 0, "the memory limit the process runs under, in bytes (on Kubernetes: the downward API's limits.memory); unless GOMEMLIMIT is set, the Go runtime's soft memory limit is 90 % of it (0: of the cgroup's memory.max, if any)")
		fs.StringVar(&c.PublicURL, "public-url", "", "scheme://host[:port] clients use to reach this edge (default: http:// and --addr)")
		fs.StringVar(&c.Resource, "resource", "", "canonical URI of the MCP resource, the audience tokens must name (default: --public-url + /mcp)")
		fs.StringVar(&c.Issuer, "issuer", "", "issuer URL of the authorization server (PingFederate); needed unless --auth none (dev: the embedded one)")
		fs.StringVar(&c.ClientID, "client-id", "", "pingmcp's client at the authorization server, for token exchange and introspection")
		fs.StringVar(&c.ClientSecret, "client-secret", "", "that client's secret (prefer the environment variable)")
		list("scopes", "todo_api:read todo_api:write", "space- or comma-separated scopes clients should request (scopes_supported, and the challenge's scope)")
		fs.StringVar(&c.TodoAPIURL, "todo-api-url", "", "URL of the Todo API, also its resource URI for token exchange (dev: the embedded one)")
		fs.BoolVar(&c.ActorToken, "exchange-actor-token", false, "send pingmcp's own client_credentials token as the exchange's actor_token")
		fs.StringVar(&c.GrantsURL, "grants-url", "", "PingFederate's OAuth Access Grant Management Service by user, up to the user key (default: --issuer + /pf-ws/rest/oauth/users); revoking a user revokes their grants there")
		grantsFlags(fs, c, "user name of the Password Credential Validator that PingFederate's grant management service admits (HTTP Basic); without it, revoking a user leaves their refresh tokens working (dev: one is made)")
		otlpFlag(fs, c)
		fs.StringVar(&c.AuditLog, "audit-log", "", "file to append audit records to (JSON lines, one per tool call and admin action; created 0600); empty: the process log, marked log=audit")
		fs.BoolVar(&c.AuditToolArgs, "audit-tool-args", false, "also record each tool call's arguments in the audit log (they may hold personal data)")
		if dev {
			cimdFlags(fs, c)
			fs.StringVar(&c.IdPAddr, "idp-addr", "127.0.0.1:9031", "address of the embedded development authorization server")
			fs.StringVar(&c.TodoAPIAddr, "todo-api-addr", "127.0.0.1:8081", "address of the embedded Todo API")
			fs.StringVar(&c.DevState, "dev-state", DefaultDevState(), "file where the embedded authorization server keeps its signing key, registered clients and grants, "+
				"so that clients refresh without a new login after a restart (made 0600; refused if others may read it; one dev process at a time); off or '' to keep them in memory only")
			tokenTTLFlags(fs, c)
		} else {
			fs.StringVar(&c.ClusterAddr, "cluster-addr", "127.0.0.1:0", "host:port of this node's cluster endpoint (port 0 picks a free one)")
			fs.StringVar(&c.ClusterAdvertise, "cluster-advertised-addr", "", "host:port other nodes dial to reach this one (a pod IP on Kubernetes); --cluster-addr when empty")
			list("cluster-seeds", "", "comma-separated cluster addresses of other nodes to join, host:port by any address or host name that reaches them (the automanaged provider; the first node of a cluster may have none)")
			fs.StringVar((*string)(&c.ClusterProvider), "cluster-provider", "", "membership: "+enum.Names(cluster.Providers)+" (default: single without seeds, automanaged with them)")
			fs.DurationVar(&c.ProbeInterval, "cluster-probe-interval", 500*time.Millisecond, "automanaged provider: how often each node probes the others")
			fs.IntVar(&c.ProbeFailures, "cluster-probe-failures", 3, "automanaged provider: probes a node may miss in a row before it counts as gone (failover takes about interval × failures)")
			fs.StringVar(&c.ClusterTLSCert, "cluster-tls-cert", "", "PEM file of this node's certificate for the cluster's mutual TLS (with --cluster-tls-key and --cluster-tls-ca; usages serverAuth and clientAuth; read at start: rotate by restarting)")
			fs.StringVar(&c.ClusterTLSKey, "cluster-tls-key", "", "PEM file of the private key of --cluster-tls-cert")
			fs.StringVar(&c.ClusterTLSCA, "cluster-tls-ca", "", "PEM file of the cluster CA's certificates: only nodes with a certificate it issued may connect to this one, and this one connects only to them")
			fs.BoolVar(&c.ClusterInsecure, "cluster-insecure", false, "allow plaintext, unauthenticated connections between the nodes of a multi-node cluster, loopback included "+
				"(any process that reaches a cluster port can join, act as any user and receive forwarded requests with users' bearer tokens: tests only, or hosts and a network you alone use); "+
				"a single node accepts no cluster connection and needs neither this nor TLS")
			fs.StringVar((*string)(&c.Role), "role", string(cluster.RoleBoth), "what this node does: both, edge (serves /mcp, hosts no actors), member (hosts actors, serves only health)")
		}
	case "certs":
		fs.StringVar(&c.CertsDir, "dir", "", "directory to write to (made 0700 if missing): ca.crt and ca.key (unless it holds a CA already, which then issues), and NAME.crt and NAME.key of each node; no file is ever overwritten (required)")
		fs.IntVar(&c.CertsNodes, "nodes", 1, "how many node certificates to issue: node-1 … node-N")
		list("names", "", "comma-separated names of the node certificates to issue instead of node-1 … node-N (letters, digits, '.', '_', '-')")
		list("hosts", "localhost,127.0.0.1,::1", "comma-separated DNS names and IP addresses every node certificate names (nodes trust any certificate of the CA whatever its names; other tools may check them)")
		fs.DurationVar(&c.CertsValidity, "validity", 365*24*time.Hour, "how long the node certificates are valid (renew by issuing new ones with the same CA and restarting the nodes one at a time)")
		fs.DurationVar(&c.CertsCAValidity, "ca-validity", 10*365*24*time.Hour, "how long a new CA is valid")
	case "todo-api":
		fs.StringVar(&c.Addr, "addr", "127.0.0.1:8081", "HTTP address of the Todo API")
		fs.StringVar(&c.Issuer, "issuer", "", "issuer URL of the authorization server whose tokens the API accepts (required)")
		fs.StringVar(&c.Resource, "resource", "", "the API's resource URI, the audience its tokens must name (default: http:// and --addr)")
		fs.StringVar(&c.RedisURL, "redis-url", "", "store todos in Redis (redis://host:port/db); in memory when empty")
		fs.BoolVar(&c.AllowUndelegated, "allow-undelegated", false, "also accept tokens without an act claim (not minted by token exchange)")
		otlpFlag(fs, c)
	case "idp":
		fs.StringVar(&c.Addr, "addr", "127.0.0.1:9031", "HTTP address of the development authorization server")
		fs.StringVar(&c.Issuer, "issuer", "", "issuer URL (default: http:// and --addr)")
		fs.StringVar(&c.ClientID, "client-id", "pingmcp", "the confidential client pingmcp uses for token exchange and introspection")
		fs.StringVar(&c.ClientSecret, "client-secret", "", "that client's secret (required; prefer the environment variable)")
		fs.StringVar(&c.Resource, "resource", "http://127.0.0.1:8080/mcp", "the MCP resource URI users log in for")
		fs.StringVar(&c.TodoAPIURL, "todo-api-url", "http://127.0.0.1:8081", "the Todo API's resource URI, the target of token exchange")
		fs.BoolVar(&c.ForceNonLoopback, "force-non-loopback", false, "listen on a non-loopback address anyway (it is still not for production)")
		fs.IntVar(&c.TestUsers, "test-users", 0, "also create users user1 … userN, each with its name as password (load tests; at most 100000)")
		tokenTTLFlags(fs, c)
		grantsFlags(fs, c, "user name the grant management service (/pf-ws/rest/oauth/users/{userKey}/grants) admits; off when empty")
		cimdFlags(fs, c)
	default:
		return nil, fmt.Errorf("unknown command %q", command)
	}
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text, json")

	fs.Usage = func() { usage(fs, command, out) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(EnvName(f.Name)); v != "" && !set[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	c.explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.explicit[f.Name] = true })
	get := func(name string) []string {
		if p := lists[name]; p != nil {
			return splitList(*p)
		}
		return nil
	}
	c.Tools, c.AllowedOrigins, c.AllowedHosts, c.ClusterSeeds, c.Scopes =
		get("tools"), get("allowed-origins"), get("allowed-hosts"), get("cluster-seeds"), get("scopes")
	c.CertsNames, c.CertsHosts = get("names"), get("hosts")
	c.derive()
	err := c.validate()
	if c.APIsFile != "" {
		apis, aerr := openapi.ReadFile(c.APIsFile)
		if aerr != nil {
			err = errors.Join(err, fmt.Errorf("--apis: %w", aerr))
		}
		c.APIs = apis
		// Its tools call each API with a token exchanged for the user's:
		// without a user, or without the exchange client, every call
		// would fail; refused at start instead.
		if c.Auth == auth.ModeNone {
			err = errors.Join(err, errors.New("--apis needs authentication: its tools call each API with a token exchanged for the user's, and with --auth none there is no user"))
		} else if c.ClientID == "" || c.ClientSecret == "" {
			err = errors.Join(err, fmt.Errorf("--apis needs the token exchange client: --client-id and --client-secret (or %s)", EnvName("client-secret")))
		}
	}
	return c, err
}

// APIWarnings are what the node logs at start about the APIs of --apis:
// a base_url of http:// beyond loopback, over which each call's bearer
// token travels in clear.
func (c *Config) APIWarnings() []string {
	var out []string
	for _, api := range c.APIs {
		u, err := url.Parse(api.BaseURL)
		if err == nil && u.Scheme == "http" && !loopback.Is(u.Hostname()) {
			out = append(out, fmt.Sprintf("--apis: api %q: base_url %s is http:// beyond loopback: each call's bearer token travels in clear; use https://", api.Name, api.BaseURL))
		}
	}
	return out
}

// DefaultDevState is dev's state file: state.json in pingmcp/dev in the
// user's cache directory (a folder of its own, made 0700), or "off" when
// there is none ($HOME unset).
func DefaultDevState() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "off"
	}
	return filepath.Join(dir, "pingmcp", "dev", "state.json")
}

// tokenTTLFlags are the lifetimes of the development authorization
// server's tokens.
func tokenTTLFlags(fs *flag.FlagSet, c *Config) {
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", 10*time.Minute, "lifetime of the access tokens the development authorization server issues")
	fs.DurationVar(&c.RefreshTokenTTL, "refresh-token-ttl", 8*time.Hour, "lifetime of each refresh token it issues (rotation: every refresh issues a new one, so a client in use stays logged in)")
}

// grantsFlags are the grant management service's credentials.
func grantsFlags(fs *flag.FlagSet, c *Config, userHelp string) {
	fs.StringVar(&c.GrantsUser, "grants-user", "", userHelp)
	fs.StringVar(&c.GrantsPassword, "grants-password", "", "that user's password (prefer the environment variable)")
}

// cimdFlags are the development authorization server's Client ID Metadata
// Documents settings (dev and idp).
func cimdFlags(fs *flag.FlagSet, c *Config) {
	fs.BoolVar(&c.CIMD, "dev-cimd", true, "the development authorization server accepts Client ID Metadata Documents: an https client_id names the client's metadata, fetched, checked and cached (as PingFederate 13.1 with CIMD enabled)")
	fs.BoolVar(&c.CIMDAllowLoopback, "dev-cimd-allow-loopback", false, "tests only: also fetch client metadata documents from loopback addresses, and from ports other than 443 (other private and special-use addresses are never fetched)")
	fs.StringVar(&c.CIMDCAFile, "dev-cimd-ca", "", "tests only: PEM file of a CA to trust, besides the system's, when fetching client metadata documents")
}

// Rebind records the addresses the listeners really got (a port 0 resolved)
// and derives again every URL that was derived from them.
func (c *Config) Rebind(addr, idpAddr, todoAPIAddr string) {
	for flagName, field := range map[string]*string{
		"public-url": &c.PublicURL, "resource": &c.Resource, "issuer": &c.Issuer, "todo-api-url": &c.TodoAPIURL,
	} {
		if !c.explicit[flagName] {
			*field = ""
		}
	}
	c.Addr, c.IdPAddr, c.TodoAPIAddr = addr, idpAddr, todoAPIAddr
	c.derive()
}

// derive fills what follows from other settings.
func (c *Config) derive() {
	switch c.Command {
	case "dev":
		c.ClusterAddr, c.ClusterProvider, c.Role = "127.0.0.1:0", cluster.ProviderSingle, cluster.RoleBoth
		if c.Auth != auth.ModeNone {
			if c.Issuer == "" {
				c.Issuer = "http://" + c.IdPAddr
			}
			if c.ClientID == "" {
				c.ClientID = "pingmcp"
			}
			if c.ClientSecret == "" && !c.explicit["issuer"] {
				// The embedded authorization server's exchange client: this
				// process's only, never written anywhere.
				c.ClientSecret = rand.Text()
			}
			if c.GrantsUser == "" && c.GrantsPassword == "" && !c.explicit["issuer"] {
				// The embedded authorization server's grant manager, as
				// its exchange client: this process's only.
				c.GrantsUser, c.GrantsPassword = "pingmcp-grants", rand.Text()
			}
		}
		if c.TodoAPIURL == "" {
			c.TodoAPIURL = "http://" + c.TodoAPIAddr
		}
		if c.DevState == "off" {
			c.DevState = ""
		} else if abs, err := filepath.Abs(c.DevState); c.DevState != "" && err == nil {
			c.DevState = abs
		}
	case "serve":
		if c.ClusterProvider == "" {
			c.ClusterProvider = cluster.ProviderSingle
			if len(c.ClusterSeeds) > 0 {
				c.ClusterProvider = cluster.ProviderAutomanaged
			}
		}
	case "todo-api":
		if c.Resource == "" {
			c.Resource = "http://" + c.Addr
		}
	case "idp":
		if c.Issuer == "" {
			c.Issuer = "http://" + c.Addr
		}
	}
	if c.Command == "dev" || c.Command == "serve" {
		if c.PublicURL == "" {
			c.PublicURL = "http://" + hostForURL(c.Addr)
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
		if c.Resource == "" {
			c.Resource = c.PublicURL + "/mcp"
		}
		// The metadata names it, the authorization server issues tokens
		// for it: spelt as MCP's canonical server URI, which clients
		// compare (the TypeScript SDK asks for it as its URL class spells
		// it: lower case, no default port).
		c.PublicURL, c.Resource = auth.CanonicalResource(c.PublicURL), auth.CanonicalResource(c.Resource)
		// An actor may never outlive its session: "never" and the default
		// shorten to the session's timeout (a longer one given explicitly
		// is an error, see validate).
		if s := c.SessionIdleTimeout; s > 0 && (c.ActorIdleTimeout == 0 || (c.ActorIdleTimeout > s && !c.explicit["actor-idle-timeout"])) {
			c.ActorIdleTimeout = s
		}
	}
}

// Resources are the URIs of the MCP resource (RFC 8707) clients may name;
// the first is Resource. From a loopback --addr (no --resource or
// --public-url given), the resource as reached through each loopback name
// (127.0.0.1, localhost, [::1]) on its port, since a person may point a
// client at any of them, and clients check that the metadata names the
// very URL they used; an address the host lacks (Unheld) is left out.
// Otherwise Resource alone. The idp command's --resource is the same.
func (c *Config) Resources() []string {
	u, ok := c.loopbackResource()
	if !ok {
		return []string{c.Resource}
	}
	out := []string{c.Resource}
	for _, name := range []string{"127.0.0.1", "localhost", "[::1]"} {
		alias := *u
		alias.Host = name
		if port := u.Port(); port != "" {
			alias.Host = net.JoinHostPort(strings.Trim(name, "[]"), port)
		}
		if s := alias.String(); !slices.Contains(out, s) && !c.unheld[alias.Host] {
			out = append(out, s)
		}
	}
	return out
}

// loopbackResource returns Resource when Resources names its loopback
// aliases.
func (c *Config) loopbackResource() (*url.URL, bool) {
	u, err := url.Parse(c.Resource)
	if err != nil || c.explicit["resource"] || c.explicit["public-url"] || c.edgeBeyondLoopback() || !loopback.Is(u.Host) {
		return nil, false
	}
	return u, true
}

// Explicit says whether the flag flagName was given (on the command line
// or in the environment), rather than derived.
func (c *Config) Explicit(flagName string) bool { return c.explicit[flagName] }

// LoopbackTwins are the addresses the MCP edge must hold besides bound (its
// own listen address, resolved): while Resources names the loopback
// aliases, 127.0.0.1 and [::1] on bound's port, other than bound itself;
// with --public-url or --resource given, those its URL needs
// (LocalhostTwins). localhost resolves to both, and clients try them in
// their own order: a process that took a twin would be reached by a client
// pointed at localhost, and handed a token this server accepts.
func (c *Config) LoopbackTwins(bound string) []string {
	if c.Command != "dev" && c.Command != "serve" {
		return nil
	}
	if _, ok := c.loopbackResource(); !ok {
		return LocalhostTwins(bound, c.Resource, c.PublicURL)
	}
	return twinsOf(bound)
}

// twinsOf are 127.0.0.1 and [::1] on bound's port, other than bound.
func twinsOf(bound string) []string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return nil
	}
	var twins []string
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if ip != host {
			twins = append(twins, net.JoinHostPort(ip, port))
		}
	}
	return twins
}

// LocalhostTwins are the loopback addresses a server bound to bound (a
// loopback address) must hold besides it, because one of urls, which its
// clients are told, names it localhost on bound's port: 127.0.0.1 and
// [::1], other than bound. An issuer or resource URL given as
// http://localhost:PORT, or derived from --addr localhost:PORT, binds one
// of them alone (net.Listen takes localhost's first address); any local
// user could take the other, and clients that try it first (browsers,
// Node, macOS's resolver) would hand that process their tokens and codes.
func LocalhostTwins(bound string, urls ...string) []string {
	_, port, err := net.SplitHostPort(bound)
	if err != nil || !loopback.Is(bound) {
		return nil
	}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		// localhost, and names under it (RFC 6761: resolvers such as
		// systemd-resolved's and browsers answer both addresses for
		// them), spelt in any case, with or without the root's dot.
		if h := strings.TrimSuffix(strings.ToLower(u.Hostname()), "."); h != "localhost" && !strings.HasSuffix(h, ".localhost") {
			continue
		}
		p := u.Port()
		if p == "" {
			p = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		if p == port {
			return twinsOf(bound)
		}
	}
	return nil
}

// Unheld records that a loopback twin (LoopbackTwins) cannot be bound on
// this host (no IPv6 loopback, say): nobody can take it, and Resources no
// longer names it.
func (c *Config) Unheld(twin string) {
	if c.unheld == nil {
		c.unheld = map[string]bool{}
	}
	c.unheld[twin] = true
}

// HostNamesResource reports whether the Host of a request names its
// resource among Resources, a Host that names none being refused: when the
// URLs clients use are known, from --public-url or a loopback --addr. With
// --resource alone, or an edge beyond loopback without --public-url, they
// are not (a proxy in front may rewrite Host): every request is for
// Resource, whatever its Host.
func (c *Config) HostNamesResource() bool {
	return c.explicit["public-url"] || !(c.explicit["resource"] || c.edgeBeyondLoopback())
}

func (c *Config) edgeBeyondLoopback() bool {
	return (c.Command == "dev" || c.Command == "serve") && !loopback.Is(c.Addr)
}

// sameOrigin reports whether two absolute URLs have the same scheme, host
// and port (a port left out being its scheme's default).
func sameOrigin(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return true // refused as malformed already
	}
	return outbound.SameOrigin(ua, ub)
}

// hostForURL turns a listen address into a host[:port] a client can dial: an
// unspecified host (":8080", "0.0.0.0:8080") becomes localhost.
func hostForURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func (c *Config) validate() error {
	var errs []error
	check := func(name, v string, allowed []string) {
		if !slices.Contains(allowed, v) {
			errs = append(errs, fmt.Errorf("--%s %q: want one of %s", name, v, strings.Join(allowed, ", ")))
		}
	}
	check("log-level", c.LogLevel, []string{"debug", "info", "warn", "error"})
	check("log-format", c.LogFormat, []string{"text", "json"})
	if !c.CIMD && (c.CIMDAllowLoopback || c.CIMDCAFile != "") {
		errs = append(errs, errors.New("--dev-cimd-allow-loopback and --dev-cimd-ca need --dev-cimd"))
	}
	if c.CIMDAllowLoopback && c.ForceNonLoopback {
		// The draft allows fetching from loopback only to a server that is
		// itself on loopback.
		errs = append(errs, errors.New("--dev-cimd-allow-loopback: not with --force-non-loopback (documents may be fetched from loopback only by a server on loopback)"))
	}
	if c.TestUsers < 0 || c.TestUsers > 100000 {
		errs = append(errs, errors.New("--test-users must be between 0 and 100000"))
	}
	if c.Command == "dev" || c.Command == "idp" {
		if c.AccessTokenTTL < time.Second || c.RefreshTokenTTL < time.Second {
			errs = append(errs, errors.New("--access-token-ttl and --refresh-token-ttl must be at least 1s"))
		}
	}
	switch c.Command {
	case "dev", "serve":
		if _, err := auth.ParseMode(string(c.Auth)); err != nil {
			errs = append(errs, fmt.Errorf("--auth %w", err))
		}
		for _, t := range c.Tools {
			check("tools", t, Toolsets)
		}
		if len(c.Tools) == 0 {
			errs = append(errs, errors.New("--tools: at least one toolset is needed"))
		}
		if c.Command == "serve" && (c.ProbeInterval < 50*time.Millisecond || c.ProbeFailures < 1) {
			errs = append(errs, errors.New("--cluster-probe-interval must be at least 50ms and --cluster-probe-failures at least 1"))
		}
		if c.Auth == auth.ModeNone {
			for _, a := range []string{c.Addr, c.ClusterAddr} {
				if a != "" && !loopback.Is(a) {
					errs = append(errs, fmt.Errorf("--auth none is refused: %q is not a loopback address (anyone who reaches it could act as any user)", a))
				}
			}
		} else if c.Issuer == "" {
			errs = append(errs, fmt.Errorf("--auth %s needs --issuer", c.Auth))
		}
		if c.Auth == auth.ModeIntrospection && (c.ClientID == "" || c.ClientSecret == "") {
			errs = append(errs, errors.New("--auth introspection needs --client-id and --client-secret"))
		}
		for name, u := range map[string]string{"public-url": c.PublicURL, "resource": c.Resource} {
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.Fragment != "" {
				errs = append(errs, fmt.Errorf("--%s %q: want an absolute http(s) URL without fragment", name, u))
			}
		}
		if c.explicit["public-url"] && c.explicit["resource"] && !sameOrigin(c.PublicURL, c.Resource) {
			// The edge answers only the Host of --public-url, and a
			// resource elsewhere names none it answers: every request
			// would be refused (421).
			errs = append(errs, fmt.Errorf("--resource %q and --public-url %q differ in scheme, host or port: the resource is the URL clients reach, so give it on --public-url's origin (or give only one of them)", c.Resource, c.PublicURL))
		}
		if c.Command == "dev" {
			for flagName, a := range map[string]string{"addr": c.Addr, "idp-addr": c.IdPAddr, "todo-api-addr": c.TodoAPIAddr, "admin-addr": cmp.Or(c.AdminAddr, "127.0.0.1:0")} {
				if !loopback.Is(a) {
					errs = append(errs, fmt.Errorf("--%s %q: pingmcp dev listens on loopback only (use pingmcp serve, todo-api and a real PingFederate beyond it)", flagName, a))
				}
			}
		}
	case "todo-api":
		if c.Issuer == "" {
			errs = append(errs, errors.New("--issuer is required"))
		}
	case "idp":
		if c.ClientSecret == "" {
			errs = append(errs, fmt.Errorf("--client-secret (or %s) is required", EnvName("client-secret")))
		}
	case "certs":
		if c.CertsDir == "" {
			errs = append(errs, errors.New("--dir is required: the directory to write the certificates to"))
		}
		if len(c.CertsNames) > 0 && c.explicit["nodes"] && c.CertsNodes != len(c.CertsNames) {
			errs = append(errs, fmt.Errorf("--nodes %d and --names (%d names) disagree: give one of them", c.CertsNodes, len(c.CertsNames)))
		}
		if c.CertsNodes < 1 || c.CertsNodes > 1000 {
			errs = append(errs, errors.New("--nodes must be between 1 and 1000"))
		}
		if c.CertsValidity <= 0 || c.CertsCAValidity <= 0 {
			errs = append(errs, errors.New("--validity and --ca-validity must be positive"))
		}
	}
	if (c.GrantsUser == "") != (c.GrantsPassword == "") {
		errs = append(errs, fmt.Errorf("--grants-user and --grants-password (or %s) go together", EnvName("grants-password")))
	}
	if c.GrantsURL != "" {
		switch u, err := url.Parse(c.GrantsURL); {
		case err == nil && u.User != nil:
			// Not quoted: it holds credentials.
			errs = append(errs, errors.New("--grants-url: credentials in the URL are refused (errors would show them): give them as --grants-user and --grants-password"))
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("--grants-url %q: want an absolute http(s) URL without query or fragment", c.GrantsURL))
		}
	}
	if c.Command == "serve" {
		if _, err := cluster.ParseProvider(string(c.ClusterProvider)); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-provider %w", err))
		}
		if _, err := cluster.ParseRole(string(c.Role)); err != nil {
			errs = append(errs, fmt.Errorf("--role %w", err))
		}
		errs = append(errs, c.validateClusterTLS()...)
	}
	if c.OTLPEndpoint != "" {
		if err := checkOTLPEndpoint(c.OTLPEndpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxBodyBytes <= 0 && (c.Command == "dev" || c.Command == "serve") {
		errs = append(errs, errors.New("--max-body-bytes must be positive"))
	}
	if c.SessionIdleTimeout < 0 {
		errs = append(errs, errors.New("--session-idle-timeout must not be negative"))
	}
	if c.Command == "dev" || c.Command == "serve" {
		errs = append(errs, c.validateLimits()...)
		if c.MemoryLimit < 0 {
			errs = append(errs, fmt.Errorf("--memory-limit %d: must be a number of bytes, or 0 for the cgroup's", c.MemoryLimit))
		}
	}
	if c.Command == "dev" || c.Command == "serve" {
		errs = append(errs, c.validateDurability()...)
	}
	if c.Command == "todo-api" && c.RedisURL != "" {
		if err := checkRedisURL(c.RedisURL, c.RedisCluster); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range c.ClusterSeeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-seeds %q: %w", s, err))
		}
	}
	return errors.Join(errs...)
}

// validateClusterTLS checks the cluster's transport security: the three TLS
// files go together and hold a certificate the cluster's CA issued, and
// without them the cluster stays on loopback unless --cluster-insecure.
func (c *Config) validateClusterTLS() []error {
	files := []struct{ flag, path string }{
		{"cluster-tls-cert", c.ClusterTLSCert}, {"cluster-tls-key", c.ClusterTLSKey}, {"cluster-tls-ca", c.ClusterTLSCA},
	}
	var given, missing []string
	for _, f := range files {
		if f.path != "" {
			given = append(given, "--"+f.flag)
		} else {
			missing = append(missing, "--"+f.flag)
		}
	}
	switch {
	case len(given) == 3:
		if c.ClusterInsecure {
			return []error{errors.New("--cluster-insecure contradicts --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca: with them every connection between nodes is mutual TLS; drop one or the other")}
		}
		var pems [3][]byte
		var errs []error
		for i, f := range files {
			// Refused when another user could have written it, as
			// cluster.LoadTLS reads them: a CA of theirs in the CA file
			// admits them to the cluster.
			b, _, err := privfile.ReadSecret(f.path)
			if err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", f.flag, err))
			}
			pems[i] = b
		}
		if len(errs) > 0 {
			return errs
		}
		if _, err := cluster.ParseTLS(pems[0], pems[1], pems[2]); err != nil {
			return []error{fmt.Errorf("--cluster-tls-cert %s, --cluster-tls-key %s, --cluster-tls-ca %s: %w", c.ClusterTLSCert, c.ClusterTLSKey, c.ClusterTLSCA, err)}
		}
		return nil
	case len(given) > 0:
		return []error{fmt.Errorf("--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together (this node's certificate, its key, and the CA that issues the cluster's certificates): %s given without %s",
			strings.Join(given, ", "), strings.Join(missing, ", "))}
	}
	if c.ClusterInsecure || c.ClusterProvider == cluster.ProviderSingle {
		return nil // a single node accepts no cluster connection
	}
	var exposed []string
	for flagName, a := range map[string]string{"cluster-addr": c.ClusterAddr, "cluster-advertised-addr": c.ClusterAdvertise} {
		if a != "" && !loopback.Is(a) {
			exposed = append(exposed, fmt.Sprintf("--%s %q", flagName, a))
		}
	}
	if len(exposed) == 0 {
		// Loopback hides nothing from the host's other processes, and
		// protoactor authenticates no peer.
		return []error{fmt.Errorf("--cluster-provider %s without TLS: any process on this host could connect to the cluster port, join the cluster, "+
			"act as any user and be given users' sessions with their bearer tokens. %s, or --cluster-insecure to accept plaintext (tests, on a host only you use)",
			c.ClusterProvider, certsHint)}
	}
	slices.Sort(exposed)
	return []error{fmt.Errorf("%s: not a loopback address, and the cluster has no TLS. Nodes forward requests to each other with the users' bearer tokens in them: "+
		"in plaintext anyone on the network could read those tokens, and anyone who reaches the port could join the cluster and call its session actors. "+
		"%s, or --cluster-insecure to accept plaintext on a network you trust", strings.Join(exposed, " and "), certsHint)}
}

// certsHint tells how to give a cluster mutual TLS.
const certsHint = "Make the cluster's CA and node certificates with `pingmcp certs --dir DIR --nodes N` " +
	"and give every node --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca (mutual TLS with the cluster's own CA)"

// validateDurability checks the flags of session state: where it lives, the
// keys that seal it, and how long sessions, actors and event logs last.
func (c *Config) validateDurability() []error {
	var errs []error
	if c.RedisURL != "" {
		if err := checkRedisURL(c.RedisURL, c.RedisCluster); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RedisReplicas < 0 {
		errs = append(errs, errors.New("--redis-replicas must not be negative"))
	}
	if c.StateKeys != "" {
		// state.ParseKeys never puts key material in its errors.
		if _, err := state.ParseKeys(c.StateKeys); err != nil {
			errs = append(errs, fmt.Errorf("--state-keys: %w", err))
		}
	} else if c.Command == "serve" && c.RedisURL != "" {
		errs = append(errs, fmt.Errorf("--redis-url needs --state-keys (or %s): the tokens in session snapshots are sealed before they go to Redis, "+
			"with a key every node of the cluster shares (a key of this process alone would leave the other nodes unable to open them); "+
			"make one with `head -c32 /dev/urandom | base64` and give it as keyid:key, e.g. k1:<that output>", EnvName("state-keys")))
	}
	if c.ActorIdleTimeout < 0 {
		errs = append(errs, errors.New("--actor-idle-timeout must not be negative"))
	}
	if c.SessionIdleTimeout > 0 && c.ActorIdleTimeout > c.SessionIdleTimeout {
		errs = append(errs, fmt.Errorf("--actor-idle-timeout %s is longer than --session-idle-timeout %s: an actor may not outlive its session",
			c.ActorIdleTimeout, c.SessionIdleTimeout))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("--drain-timeout must not be negative"))
	}
	if c.SSEKeepAlive != 0 && (c.SSEKeepAlive < time.Second || c.SSEKeepAlive > time.Hour) {
		errs = append(errs, fmt.Errorf("--sse-keepalive %s: want 0 (off) or between 1s and 1h", c.SSEKeepAlive))
	}
	if c.AdminAddr != "" {
		var adminToken []byte
		if c.AdminTokenFile == "" {
			if c.Command != "dev" && c.Auth == auth.ModeNone { // dev makes one; with auth, access tokens with --admin-scope
				errs = append(errs, errors.New("--admin-addr with --auth none needs --admin-token-file: the admin API is never unauthenticated"))
			}
		} else if b, _, err := ReadToken("admin-token-file", c.AdminTokenFile); err != nil {
			errs = append(errs, err)
		} else {
			adminToken = b
		}
		if c.MetricsTokenFile != "" {
			if b, _, err := ReadToken("metrics-token-file", c.MetricsTokenFile); err != nil {
				errs = append(errs, err)
			} else if adminToken != nil && (bytes.Contains(b, adminToken) || bytes.Contains(adminToken, b)) {
				// Containing it (a suffix, Base64 padding) gives it away as
				// surely as being it.
				errs = append(errs, errors.New("--metrics-token-file holds the admin token (--admin-token-file), or is part of it: it must be a token of its own, else whoever scrapes /metrics with it may do all an admin does"))
			}
		}
		if c.AdminAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") { // port 0: two free ports
			errs = append(errs, errors.New("--admin-addr must differ from --addr: the admin API never shares the /mcp listener"))
		}
	} else if c.MetricsTokenFile != "" {
		errs = append(errs, errors.New("--metrics-token-file needs --admin-addr: /metrics is served on the admin API's listener"))
	}
	if c.EventsMax <= 0 {
		errs = append(errs, errors.New("--events-max must be positive"))
	}
	if c.EventsTTL <= 0 {
		errs = append(errs, errors.New("--events-ttl must be positive"))
	}
	errs = append(errs, c.checkTasks()...)
	return errs
}

// MinTokenLength is the fewest characters a static token of the admin API
// (--admin-token-file, --metrics-token-file) may have.
const MinTokenLength = 16

// ReadToken reads the static bearer token in path, the file of --flagName,
// as privfile.ReadSecret does (refused when another user could have put it
// there; exposed when others may read it), trimmed of surrounding white
// space, and refuses one shorter than MinTokenLength. Its errors never show
// the token.
func ReadToken(flagName, path string) (token []byte, exposed bool, err error) {
	b, exposed, err := privfile.ReadSecret(path)
	if err != nil {
		return nil, false, fmt.Errorf("--%s: %w", flagName, err)
	}
	token = []byte(strings.TrimSpace(string(b)))
	if len(token) < MinTokenLength {
		return nil, false, fmt.Errorf("--%s: the token must be at least %d characters (make one with `head -c24 /dev/urandom | base64`)", flagName, MinTokenLength)
	}
	return token, exposed, nil
}

// The tasks' defaults and bounds (tasks.DefaultTTL, tasks.DefaultLease).
const (
	DefaultTaskTTL   = time.Hour
	DefaultTaskLease = 6 * time.Second
	// MinTaskLease: renewed every third of it, a shorter lease would
	// write each running task to the store more than ten times a second.
	MinTaskLease = 300 * time.Millisecond
	// MaxTaskLease: a task whose node died waits this long to be taken
	// over.
	MaxTaskLease = 10 * time.Minute
)

// checkTasks checks --task-ttl and --task-lease: the lease long enough to
// renew (every third of it), and the TTL longer than the lease, so that a
// running task's record, refreshed at each renewal, never expires under
// its runner.
func (c *Config) checkTasks() []error {
	var errs []error
	if c.TaskLease < MinTaskLease || c.TaskLease > MaxTaskLease {
		errs = append(errs, fmt.Errorf("--task-lease %v: must be from %v to %v (renewed every third of it)", c.TaskLease, MinTaskLease, MaxTaskLease))
	}
	if c.TaskTTL <= c.TaskLease {
		errs = append(errs, fmt.Errorf("--task-ttl %v must be longer than --task-lease %v: a running task's record would expire between renewals", c.TaskTTL, c.TaskLease))
	}
	return errs
}

// checkRedisURL checks that go-redis accepts a Redis URL (of a cluster, if
// cluster). The message shows the URL without its password and query, and
// never url.Parse's error, which quotes the URL whole: it may hold a
// password.
func checkRedisURL(raw string, cluster bool) error {
	err := state.CheckRedisURL(raw, cluster)
	if err == nil {
		return nil
	}
	shown := "(unparsable)"
	if u, perr := url.Parse(raw); perr == nil {
		if u.RawQuery != "" {
			u.RawQuery = "…" // options only, but a misplaced password would show
		}
		u.Fragment, u.RawFragment = "", ""
		shown = u.Redacted()
	}
	return fmt.Errorf("--redis-url %s: %v; want redis://[user:password@]host:port/db, rediss://... for TLS, unix:///path, or a cluster's redis://host1:port1?addr=host2:port2", shown, err)
}

func otlpFlag(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "OpenTelemetry collector to export traces to over OTLP/HTTP: http(s)://host:port (/v1/traces is added) or the traces URL; "+
		"off when empty, unless OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set")
}

// checkOTLPEndpoint checks --otlp-endpoint, never showing a password it
// might hold.
func checkOTLPEndpoint(raw string) error {
	s := raw
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("--otlp-endpoint: want http(s)://host:port[/path]")
	}
	return nil
}

// splitList splits a list given with commas, spaces or both.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

func usage(fs *flag.FlagSet, command string, out io.Writer) {
	for _, c := range Commands {
		if c.Name == command {
			fmt.Fprintf(out, "pingmcp %s: %s\n\nFlags (each also read from the environment variable shown):\n", command, c.Summary)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(out, "  --%s\n        %s%s\n        env %s\n", f.Name, f.Usage, def, EnvName(f.Name))
	})
}

// Usage writes the top-level help.
func Usage(out io.Writer) {
	fmt.Fprintln(out, "pingmcp: a remote MCP server for APIs protected by PingFederate.\n\nUsage: pingmcp <command> [flags]\n\nCommands:")
	for _, c := range Commands {
		fmt.Fprintf(out, "  %-8s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintln(out, "\nRun 'pingmcp <command> --help' for the flags of a command; every flag --x-y is also read from PINGMCP_X_Y.")
}

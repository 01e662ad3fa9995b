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
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/loopback"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/transport"
)

// serveNode runs a cluster node whose HTTP edge serves on ln until ctx is
// done or an operator asks it to drain, then drains it.
func serveNode(ctx context.Context, cfg *config.Config, ln net.Listener, logger *slog.Logger, stdout io.Writer) error {
	n := newNodeAssembly(cfg, ln, logger)
	defer n.close()
	return n.serve(ctx, stdout)
}

// cleanups is a stack of release functions: run calls them last pushed
// first, so that each part is released before the parts it was built on.
type cleanups []func()

func (c *cleanups) push(f func()) { *c = append(*c, f) }

// run releases everything pushed, in reverse order, and empties the stack.
func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// nodeAssembly is one cluster node as this process runs it, its HTTP edge
// serving on the listener it was made with. Its life is three steps, in
// order: build starts the parts (stores, audit log, cluster node, tracing,
// the HTTP server, the control actor, the admin API), run serves until the
// process is told to stop or an operator asks the node to drain, and drain
// hands the node's sessions over and leaves the cluster. Each part that
// needs releasing is pushed on one cleanup stack as it starts; close runs
// it, after a failed build and after drain alike. The listener is the
// assembly's from the start: serving closes it, and so does close when
// the build fails first.
type nodeAssembly struct {
	cfg      *config.Config
	ln       net.Listener
	httpAddr string       // ln's address
	logger   *slog.Logger // the process's, then the node's once it has joined
	cleanup  cleanups

	node     *cluster.Node
	local    *actors.Local   // the actors live here
	apis     *apisReloader   // reloads --apis (SIGHUP, an operator)
	edge     *transport.Edge // nil on a member
	srv      *http.Server    // /mcp, /healthz, /readyz on ln; nil until it serves
	served   chan error      // srv.Serve's return
	adminSrv *http.Server    // nil without --admin-addr

	draining   atomic.Bool // /readyz and the node's status say so
	drainAsked chan struct{}
	askDrain   sync.Once
	drained    bool // drain stopped srv and the node: the cleanup stack skips them
}

func newNodeAssembly(cfg *config.Config, ln net.Listener, logger *slog.Logger) *nodeAssembly {
	n := &nodeAssembly{cfg: cfg, ln: ln, httpAddr: ln.Addr().String(), logger: logger, drainAsked: make(chan struct{})}
	n.cleanup.push(func() {
		if n.srv == nil {
			ln.Close()
		}
	})
	return n
}

// close releases everything on the cleanup stack, last pushed first.
func (n *nodeAssembly) close() { n.cleanup.run() }

// serve builds the node, runs it and drains it. It returns the build's
// error, or the HTTP server's if it stopped by itself; the caller closes n
// either way.
func (n *nodeAssembly) serve(ctx context.Context, stdout io.Writer) error {
	if err := n.build(ctx); err != nil {
		return err
	}
	cfg := n.cfg
	n.logger.Info("node started", "http", n.httpAddr, "cluster", n.node.Address(), "role", cfg.Role,
		"provider", cfg.ClusterProvider, "tools", cfg.Tools, "auth", cfg.Auth)
	if cfg.Command == "dev" {
		printDevBanner(stdout, cfg)
	}
	serveErr := n.run(ctx)
	n.drain()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// build starts the node's parts in order, each pushing its release on the
// cleanup stack; on an error it returns at once, leaving the stack to close.
func (n *nodeAssembly) build(ctx context.Context) error {
	cfg := n.cfg
	stores, closeStores, err := newStores(cfg, n.logger)
	if err != nil {
		return err
	}
	n.cleanup.push(closeStores)
	auditLog, err := audit.Open(audit.Options{Path: cfg.AuditLog, ToolArgs: cfg.AuditToolArgs}, n.logger)
	if err != nil {
		return err
	}
	n.cleanup.push(func() { auditLog.Close() })
	for _, w := range cfg.APIWarnings() {
		n.logger.Warn(w)
	}
	tools, err := toolsets(ctx, cfg)
	if err != nil {
		return err
	}
	n.local = actors.NewLocal()
	n.apis = &apisReloader{cfg: cfg, tools: tools, local: n.local, logger: n.logger, system: func() *actor.ActorSystem {
		if n.node == nil {
			return nil
		}
		return n.node.System
	}}
	actorCfg := actors.Config{
		Implementation: &mcp.Implementation{Name: "pingmcp", Version: version()},
		Tools:          tools,
		IdleTimeout:    cfg.ActorIdleTimeout,
		TaskTTL:        cfg.TaskTTL,
		TaskLease:      cfg.TaskLease,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Stores:         stores,
		Local:          n.local,
		SchemaCache:    mcp.NewSchemaCache(),
		Logger:         n.logger,
		Authenticated:  cfg.Auth != auth.ModeNone,
		Exchanger:      exchanger(cfg),
		Audit:          auditLog,

		MaxStreamsPerSession:   cfg.MaxStreamsPerSession,
		MaxRunningCalls:        cfg.MaxConcurrentRequests,
		MaxListensPerPrincipal: cfg.MaxStreamsPerPrincipal,
		MaxBatchConcurrency:    cfg.MaxBatchConcurrency,
		EventsBuffer:           cfg.EventsBuffer,
		Scopes:                 cfg.Scopes,
	}
	var kinds []*protocluster.Kind
	if cfg.Role != cluster.RoleEdge {
		kinds = append(kinds,
			protocluster.NewKind(cluster.SessionKind, actors.SessionProps(actorCfg)),
			protocluster.NewKind(cluster.PrincipalKind, actors.PrincipalProps(actorCfg)))
	}
	var clusterTLS *cluster.TLS
	if cfg.ClusterTLSCert != "" {
		// Read once, here: rotating the certificates means restarting.
		if clusterTLS, err = cluster.LoadTLS(cfg.ClusterTLSCert, cfg.ClusterTLSKey, cfg.ClusterTLSCA); err != nil {
			return err
		}
		if clusterTLS.KeyExposed() {
			n.logger.Warn("--cluster-tls-key may be read by other users of this host, and whoever holds it joins the cluster: chmod 600 it (640 for a group; a Kubernetes Secret's defaultMode 0440), and issue the node a new certificate if they may have read it",
				"file", cfg.ClusterTLSKey)
		}
	}
	// Spans are flushed after the node has left, so that its last ones go
	// too: their release sits below the node's on the stack.
	var stopTracing func(context.Context) error
	n.cleanup.push(func() {
		if stopTracing != nil {
			flushTraces(stopTracing, n.logger)
		}
	})
	n.node, err = cluster.Start(cluster.Config{
		TLS:            clusterTLS,
		Addr:           cfg.ClusterAddr,
		AdvertisedAddr: cfg.ClusterAdvertise,
		Provider:       cfg.ClusterProvider,
		Seeds:          cfg.ClusterSeeds,
		ProbeInterval:  cfg.ProbeInterval,
		ProbeFailures:  cfg.ProbeFailures,
		Role:           cfg.Role,
		Kinds:          kinds,
		HTTPAddr:       n.httpAddr,
		SharedStores:   stores.Shared,
		Logger:         n.logger,
	})
	if err != nil {
		return err
	}
	n.cleanup.push(func() {
		if !n.drained {
			n.node.Stop(false)
		}
	})
	n.logger = n.node.Logger() // actors add the node address themselves
	n.apis.logger = n.logger
	n.apis.onHangup(ctx)
	stop, err := telemetry.Setup(ctx, telemetry.Config{OTLPEndpoint: cfg.OTLPEndpoint, Node: n.node.Address(), Version: version(), Logger: n.logger})
	if err != nil {
		return err
	}
	stopTracing = stop

	// One verifier (its keys and introspection cache) for /mcp and the
	// admin API, and one budget of refused credentials per address for
	// both: an address that floods either with bad tokens gets no more
	// introspection calls out of the node than from one of them.
	var v auth.Verifier
	var budget *transport.TokenBudget
	var revoked func(*auth.Token) bool
	if cfg.Auth != auth.ModeNone {
		v = verifier(cfg)
		budget = tokenBudget(cfg)
		cache := state.NewRevocationCache(stores.Revocations, revocationRefresh)
		go cache.Run(ctx)
		revoked = func(t *auth.Token) bool { return cache.Revoked(t.Issuer, t.Subject, t.IssuedAt) }
	}
	n.serveHTTP(stores, v, budget, revoked)

	metrics.LiveActors(n.local.Counts)
	if cfg.Role != cluster.RoleEdge && stores.Shared && stores.Check != nil {
		go watchStore(ctx, stores.Check, n.node)
	}
	if cfg.Role != cluster.RoleEdge && cfg.PassivateAbove > 0 {
		p := &actors.Pressure{Local: n.local, System: n.node.System, Above: cfg.PassivateAbove, Logger: n.logger}
		go p.Run(ctx, time.Second)
	}
	metrics.StoredSessions(stores.Snapshots.Count, 15*time.Second)
	if stores.Tasks != nil {
		tasks := stores.Tasks
		metrics.StoredTasks(func(ctx context.Context) (map[string]int, error) { return taskstore.CountByStatus(ctx, tasks) },
			taskstore.Statuses, time.Minute)
	}
	if err := n.node.ServeControl(n.control()); err != nil {
		return fmt.Errorf("start the node's control actor: %w", err)
	}
	n.adminSrv, err = serveAdmin(ctx, cfg, stores, n.node, v, budget, actorCfg.Exchanger, revoked, auditLog, n.logger)
	return err
}

// tokenBudget is a node's budget of refused credentials per client
// address (transport.TokenBudget), which its edge and its admin API share:
// --rate-limit and --rate-burst refused tokens per address (the rate
// limit's flags, as the edge always had), the client named by
// --trusted-proxies.
func tokenBudget(cfg *config.Config) *transport.TokenBudget {
	return transport.NewTokenBudget(transport.Limits{Rate: cfg.RateLimit, Burst: cfg.RateBurst}, cfg.TrustedProxies)
}

// serveHTTP starts serving the health checks and, unless the node is a
// member only, the MCP edge, on n.ln.
func (n *nodeAssembly) serveHTTP(stores *state.Stores, v auth.Verifier, budget *transport.TokenBudget, revoked func(*auth.Token) bool) {
	cfg := n.cfg
	mux := http.NewServeMux()
	health := transport.Health(n.node, cfg.Role, &n.draining, stores.Check)
	mux.Handle("/healthz", health)
	mux.Handle("/readyz", health)
	if cfg.Role != cluster.RoleMember {
		edgeOpts := transport.Options{
			AllowedOrigins:     cfg.AllowedOrigins,
			AllowedHosts:       cfg.AllowedHosts,
			Loopback:           loopback.Is(n.httpAddr),
			MaxBodyBytes:       cfg.MaxBodyBytes,
			MaxBatch:           cfg.MaxBatch,
			MaxInitializeBytes: cfg.MaxInitializeBytes,
			SSEKeepAlive:       cfg.SSEKeepAlive,
			Logger:             n.logger,
			Limits: transport.Limits{Rate: cfg.RateLimit, Burst: cfg.RateBurst, MaxConcurrent: cfg.MaxConcurrentRequests,
				MaxStreams: cfg.MaxStreamsPerPrincipal},
			UserLimits: transport.Limits{Rate: cfg.UserRateLimit, Burst: cfg.UserRateBurst, MaxConcurrent: cfg.UserMaxConcurrent,
				MaxStreams: cfg.UserMaxStreams},
			TrustedProxies: cfg.TrustedProxies,
		}
		if cfg.Auth != auth.ModeNone {
			edgeOpts.Revoked = revoked
			edgeOpts.Verifier = v
			edgeOpts.Budget = budget
			edgeOpts.Scopes = cfg.Scopes
			// The metadata of each resource the edge answers to, at their
			// shared path; nothing at the root (transport/metadata.go), and
			// no authorization server metadata: on this origin its issuer
			// would not be the origin's (RFC 8414 §3.3).
			edgeOpts.Resources = transport.FixedResource(cfg.Resource)
			if cfg.HostNamesResource() {
				edgeOpts.Resources = transport.NewResources(cfg.Resources())
			}
			metadata := auth.MetadataPath(cfg.Resource)
			mux.Handle(metadata, transport.ProtectedResourceMetadata(edgeOpts.Resources, cfg.Issuer, cfg.Scopes))
			// A client pointed at "/mcp/" looks for its metadata here.
			mux.Handle(metadata+"/{$}", transport.Canonical(metadata))
		}
		n.edge = transport.NewEdge(n.node, edgeOpts)
		mux.Handle("/mcp", n.edge)
		mux.Handle("/mcp/{$}", n.edge.TrailingSlash("/mcp"))
	}
	srv := newHTTPServer(mux, n.logger)
	srv.MaxHeaderBytes = cmp.Or(cfg.MaxHeaderBytes, config.DefaultMaxHeaderBytes)
	n.served = make(chan error, 1)
	go func() { n.served <- srv.Serve(n.ln) }()
	n.srv = srv
	n.cleanup.push(func() {
		if !n.drained {
			shutdownWithin(time.Second, srv)
		}
	})
}

// control answers operators' questions to this node (cluster.Control):
// what it is and hosts, which of some sessions are live here; and it stops
// a revoked user's actors, or asks run to end and the node to drain.
func (n *nodeAssembly) control() cluster.ControlFunc {
	started, v := time.Now(), version()
	return func(ctx context.Context, q *envelope.NodeQuery) *envelope.NodeStatus {
		node := n.node
		st := &envelope.NodeStatus{Address: node.Address(), Role: n.cfg.Role.String(), Version: v, HttpAddr: n.httpAddr,
			StartedUnix: started.Unix()}
		if s := q.GetStopSubject(); s != nil {
			st.Stopped = int32(n.local.StopSubject(node.System, s.Issuer, s.Subject, "user revoked by an operator"))
		}
		if q.Drain {
			n.askDrain.Do(func() { close(n.drainAsked) })
		}
		if q.ReloadApis {
			st.ApisReload = n.apis.reload(ctx, "an operator (admin API)")
		}
		st.Draining = q.Drain || n.draining.Load()
		sessions, principals := n.local.Counts()
		st.Sessions, st.Principals = int32(sessions), int32(principals)
		if len(q.Sessions) > 0 {
			st.Live = n.local.Live(q.Sessions)
		}
		return st
	}
}

// run serves until ctx is done, an operator asks the node to drain, or the
// HTTP server stops by itself; it returns the server's error in that last
// case.
func (n *nodeAssembly) run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		n.logger.Info("shutting down")
	case <-n.drainAsked:
		n.logger.Info("shutting down: an operator asked this node to drain")
	case err := <-n.served:
		return err
	}
	return nil
}

// drain reports the node not ready, lets the actors here finish their
// requests, end their streams (with a retry hint; a subscriptions/listen
// with its subscription's end) and write their snapshots
// (within --drain-timeout), stops serving HTTP, then leaves the cluster;
// the sessions continue on the other nodes.
func (n *nodeAssembly) drain() {
	n.drained = true
	n.draining.Store(true)
	n.node.Drain() // no new sessions here for other nodes
	if n.srv != nil {
		// Clients' kept connections go: the idle ones now, the others
		// after their answer (Connection: close). A client then comes
		// back through its balancer to a node that serves, instead of
		// keeping this one for the drain (Keep-Alive tells clients to
		// keep a connection 115 s).
		stopKeepAlives(n.srv)
	}
	if n.edge != nil {
		n.edge.Drain()
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), n.cfg.DrainTimeout)
	if count := n.local.Len(); count > 0 {
		n.logger.Info("draining actors", "actors", count, "timeout", n.cfg.DrainTimeout)
		if left := n.local.Drain(drainCtx, n.node.System); left > 0 {
			n.logger.Warn("drain timed out; actors left", "actors", left)
		}
	}
	shutdown(drainCtx, n.srv)
	if n.adminSrv != nil {
		shutdownWithin(time.Second, n.adminSrv)
	}
	cancel()
	n.node.Stop(true)
	n.logger.Info("node left the cluster")
}

// watchStore tells the node, every storeCheckEvery, whether it reaches the
// stores its sessions are kept in: while it does not, it draws no session
// from another node (cluster.Node.StoreReachable).
func watchStore(ctx context.Context, check func(context.Context) error, node *cluster.Node) {
	t := time.NewTicker(storeCheckEvery)
	defer t.Stop()
	for {
		c, cancel := context.WithTimeout(ctx, storeCheckEvery)
		node.StoreReachable(check(c) == nil)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// storeCheckEvery is how often a node checks that it reaches its stores.
const storeCheckEvery = time.Second

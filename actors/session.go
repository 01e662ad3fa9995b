// Package actors holds the actors pingmcp places on the cluster: the session
// actor, which runs the MCP server of one Mcp-Session-Id, and the principal
// actor, which serves one user's stateless (2026-07-28) requests.
//
// An actor receives forwarded HTTP requests as envelopes, serves each on its
// own goroutine through a go-sdk StreamableHTTPHandler, and streams the
// response back to the edge part by part (see relay.go). Its mailbox only
// dispatches: it never waits on a request. Placement, membership and the edge
// are left to the cluster and transport packages.
package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/tools"
)

// Config is what every actor of a node shares.
type Config struct {
	// Implementation names the server in initialize results.
	Implementation *mcp.Implementation
	// Toolsets are installed into every MCP server.
	Toolsets []tools.Toolset
	// IdleTimeout passivates an actor that has had no request for this long
	// and has no stream open. Zero means never.
	IdleTimeout time.Duration
	// SchemaCache is shared by every server of the node, so that tool
	// schemas are reflected once, not per session.
	SchemaCache *mcp.SchemaCache
	Logger      *slog.Logger
	// Authenticated says the edge verifies callers: sessions are then bound
	// to their principal and hold its token.
	Authenticated bool
	// Exchanger swaps the user's token for downstream ones (RFC 8693); nil
	// when no exchange client is configured.
	Exchanger *auth.Exchanger
	// Stores keep sessions beyond their actors; nil keeps them in this
	// process's memory.
	Stores *state.Stores
	// Local, if set, tracks the node's live actors for draining.
	Local *Local
	// Audit records every tool call; nil records nothing.
	Audit *audit.Logger
	// MaxStreamsPerSession bounds the GET (SSE) streams a session has open
	// at once, wherever they arrived (429 beyond); zero: no bound.
	MaxStreamsPerSession int
	// MaxBatchConcurrency bounds the tool calls of one JSON-RPC batch that
	// run at once (0: no bound; the SDK would run them all together).
	MaxBatchConcurrency int
	// EventsBuffer bounds the event writes a session holds while its store
	// is unreachable (limits.go); DefaultEventsBuffer when zero.
	EventsBuffer int
	// Scopes are the scopes clients are told to request (--scopes): a token
	// must hold one of them, or one a tool needs, to use a session through
	// another client of its user than the one the session is used through
	// (admit).
	Scopes []string
}

// toolScopes merges the scopes each toolset's tools need.
func (c Config) toolScopes() map[string][]string {
	out := map[string][]string{}
	for _, ts := range c.Toolsets {
		for tool, scopes := range ts.Scopes() {
			out[tool] = scopes
		}
	}
	return out
}

// SessionProps are the props of the session actor kind.
func SessionProps(cfg Config) *actor.Props {
	if cfg.Stores == nil {
		cfg.Stores = state.MemoryStores(0)
	}
	scopes := cfg.toolScopes()
	return actor.PropsFromProducer(func() actor.Actor { return &SessionActor{cfg: cfg, scopes: scopes} })
}

// PrincipalProps are the props of the principal actor kind: the same actor
// with a stateless handler, since 2026-07-28 requests carry no session.
func PrincipalProps(cfg Config) *actor.Props {
	scopes := cfg.toolScopes()
	return actor.PropsFromProducer(func() actor.Actor { return &SessionActor{cfg: cfg, scopes: scopes, stateless: true} })
}

// SessionActor serves the MCP requests of one session (or, stateless, of one
// principal).
type SessionActor struct {
	cfg       Config
	stateless bool
	id        string
	logger    *slog.Logger
	server    *mcp.Server
	handler   http.Handler
	flights   map[string]*flight // in-flight requests by request id
	stopping  bool
	// owner is the principal the session was opened by (nil without auth);
	// credential is the newest token it presented; creds hands it, and the
	// tokens exchanged for it, to the tools.
	owner      *auth.Principal
	credential *envelope.Principal
	creds      *credentials
	scopes     map[string][]string // tool → scopes it needs
	edges      map[string]bool     // reply routers watched, by address/id
	node       string              // this node's cluster address
	requests   requestsOf          // being served, for the middleware (observe.go)
	// live is this actor's entry in the node's Local set (nil without one).
	live *liveActor

	// Durability (session actors only). An activation first takes an
	// epoch, restoring the session from its snapshot if it has one;
	// requests wait in pending meanwhile.
	phase   phase
	pending []queued
	epoch   int64
	events  *sessionEvents
	// persist writes the snapshot: nil until activated, and for unknown
	// sessions. Set on the actor's goroutine, read by the SDK's too.
	persist atomic.Pointer[persister]
	// changing serializes the changes recordChanges checks and makes.
	changing sync.Mutex
	fenced   bool // a newer activation owns the session
	ended    bool // the session ended (or never began) here

	draining      bool
	drainTimer    *time.Timer
	drainFlushing bool
}

type phase int

const (
	phaseNew phase = iota
	phaseActivating
	phaseReady
)

// queued is a request that arrived while the actor was activating.
type queued struct {
	replyTo *actor.PID
	req     *envelope.Request
}

// maxQueued bounds the requests an activating actor holds.
const maxQueued = 256

// activated is the outcome of an activation, sent by its goroutine.
type activated struct {
	epoch       int64
	snap        []byte
	err         error
	refused     *sessionCap // the user has as many sessions as allowed
	interrupted int         // journalled requests answered
	started     time.Time
}

// fencedOut tells the actor that a newer activation owns its session.
type fencedOut struct{}

// endedNow stops an actor whose session ended, once it lingered.
type endedNow struct{}

// endedLinger is how long an actor whose session ended answers "not found"
// before it stops.
const endedLinger = time.Second

// idOf is who a forwarded credential speaks for: the session's owner is
// the user (SameUser); the client is the one it is used through now.
func idOf(p *envelope.Principal) *auth.Principal {
	if p == nil {
		return nil
	}
	return &auth.Principal{Issuer: p.Issuer, Subject: p.Subject, ClientID: p.ClientId}
}

// flight is one request being served.
type flight struct {
	cancel  context.CancelFunc
	window  *window
	replyTo *actor.PID         // the edge's reply router
	rpc     *rpcbody.Body      // the edge's reading of a POST's body
	get     bool               // a GET: a stream that never ends by itself
	client  string             // the client_id of the request's token
	moved   atomic.Bool        // refused: a newer activation owns the session
	drain   context.CancelFunc // ends the handler, not the response

	mu     sync.Mutex
	stream string // the event stream its requests were journalled on
}

func (f *flight) setStream(s string) {
	f.mu.Lock()
	f.stream = s
	f.mu.Unlock()
}

func (f *flight) journalled() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stream
}

// requestDone is sent by a request's goroutine to its actor when it ends.
// It never leaves the node, so it need not be an envelope.
type requestDone struct{ id string }

func (a *SessionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *envelope.Envelope:
		switch {
		case m.GetRequest() != nil:
			a.serve(ctx, m.GetRequest())
		case m.GetAck() != nil:
			if f := a.flights[m.GetAck().RequestId]; f != nil {
				f.window.ack(m.GetAck().Seq)
			}
		case m.GetCancel() != nil:
			if f := a.flights[m.GetCancel().RequestId]; f != nil {
				f.cancel()
			}
		case m.GetStop() != nil:
			// An operator ended the session: its state is already gone
			// from the store; what is left here goes now.
			a.logger.Info("session stopped by an operator", "reason", m.GetStop().Reason)
			a.ended = true
			if a.events != nil {
				a.events.keep.Store(true)
			}
			a.stop(ctx)
		}
	case *activated:
		a.activated(ctx, m)
	case *drainActor:
		a.drain(ctx, m)
	case drainDeadline:
		for _, f := range a.flights {
			f.drain()
		}
	case drained:
		if a.events != nil {
			a.events.keep.Store(true)
		}
		a.stop(ctx)
	case *actor.Stopped:
		a.cfg.Local.remove(ctx.Self(), a.id)
		if a.drainTimer != nil {
			a.drainTimer.Stop()
		}
	case fencedOut:
		if !a.fenced {
			a.logger.Warn("session moved to a newer activation; this one stops serving", "epoch", a.epoch)
			metrics.Fenced.Inc()
			a.fenced = true
			a.events.keep.Store(true)
			a.stop(ctx)
		}
	case requestDone:
		if f := a.flights[m.id]; f != nil {
			a.live.flight(f.get, -1)
		}
		delete(a.flights, m.id)
		a.settle(ctx)
	case endedNow:
		a.stop(ctx)
	case stopNow:
		ctx.Stop(ctx.Self())
	case *actor.ReceiveTimeout:
		if len(a.flights) > 0 {
			return
		}
		if !a.persist.Load().clean() || (a.events != nil && !a.events.clean()) {
			// The snapshot has changes not written yet (Redis is down):
			// this actor is all there is of them, so it stays.
			a.logger.Info("idle actor kept: its snapshot is not written yet")
			ctx.SetReceiveTimeout(a.cfg.IdleTimeout) // protoactor cancelled it
			return
		}
		a.logger.Info("passivating idle actor", "idle", a.cfg.IdleTimeout)
		a.stop(ctx)
	case *actor.Terminated:
		// An edge's node went away: nobody is left to read its requests'
		// answers, and a stream a window ahead would wait forever.
		delete(a.edges, keyOf(m.Who))
		for _, f := range a.flights {
			if f.replyTo.Equal(m.Who) {
				f.cancel()
			}
		}
	case *actor.Stopping:
		if !a.stopping {
			// Not one of ours (passivation, drain, fencing, an operator):
			// protoactor stops activations whose placement moved to
			// another member when membership changes.
			a.logger.Info("actor stopped by the cluster: its placement moved", "in_flight", len(a.flights))
		}
		a.stopping = true
		for _, q := range a.pending {
			a.reply(ctx, q.replyTo, unavailable(q.req.Id))
		}
		a.pending = nil
		for _, f := range a.flights {
			f.cancel()
		}
		// The actor stops, the session goes on (unless it already ended):
		// closing the SDK's sessions must not delete their events.
		if a.events != nil {
			a.events.keep.Store(true)
		}
		for s := range a.server.Sessions() {
			s.Close()
		}
		a.persist.Load().close()
		if a.events != nil {
			a.events.close()
		}
	}
}

func (a *SessionActor) reply(ctx actor.Context, to *actor.PID, p *envelope.ResponsePart) {
	ctx.ActorSystem().Root.Send(to, &envelope.Envelope{Body: &envelope.Envelope_Part{Part: p}})
}

func (a *SessionActor) start(ctx actor.Context) {
	a.id = protocluster.GetClusterIdentity(ctx).Identity
	a.flights = map[string]*flight{}
	a.live = a.cfg.Local.add(ctx.Self(), a.stateless, a.id)
	if a.cfg.Local != nil && a.cfg.Local.draining.Load() {
		// Activated on a node on its way out: refuse (retryably) and go.
		ctx.Send(ctx.Self(), &drainActor{deadline: time.Now().Add(time.Second)})
	}
	kind := "session"
	if a.stateless {
		kind = "principal"
	}
	a.node = ctx.ActorSystem().Address()
	a.logger = a.cfg.Logger.With("node", a.node, kind, a.id)

	sdkLogger := a.logger
	if a.stateless {
		// Every stateless request is a session of its own to the go-sdk,
		// which logs each one's start and end at info.
		sdkLogger = slog.New(telemetry.Floor(a.logger.Handler(), slog.LevelWarn))
	}
	opts := &mcp.ServerOptions{
		Logger:      sdkLogger,
		SchemaCache: a.cfg.SchemaCache,
		// The edge minted this actor's identity for the session it is
		// initializing: the session takes that id, so the next request
		// finds its way back here.
		GetSessionID: func() string { return a.id },
	}
	for _, ts := range a.cfg.Toolsets {
		ts.Configure(opts)
	}
	a.server = mcp.NewServer(a.cfg.Implementation, opts)
	a.server.AddReceivingMiddleware(a.auditToolCalls, recoverPanics(a.logger))
	if !a.stateless {
		a.server.AddReceivingMiddleware(a.recordChanges)
	}
	var caller tools.Caller
	if a.cfg.Authenticated {
		a.creds = newCredentials(a.cfg.Exchanger, a.logger)
		if !a.stateless {
			a.creds.changed = a.delegationsChanged
		}
		caller = a.creds
	}
	for _, ts := range a.cfg.Toolsets {
		ts.Install(a.server, caller)
	}
	hopts := &mcp.StreamableHTTPOptions{
		Stateless: a.stateless,
		Logger:    a.logger,
		// The edge has checked Host and Origin against its own listener.
		DisableLocalhostProtection: true,
		// Body size is the edge's to limit; it sends at most this much.
		MaxRequestBodyBytes: -1,
	}
	if !a.stateless {
		self, root := ctx.Self(), ctx.ActorSystem().Root
		a.events = &sessionEvents{
			store:  a.cfg.Stores.Events,
			max:    a.cfg.EventsBuffer,
			logger: a.logger,
			fenced: func() { root.Send(self, fencedOut{}) },
			ended:  func(ctx context.Context) error { return a.persist.Load().remove(ctx) },
		}
		hopts.EventStore = a.events
	}
	a.handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return a.server }, hopts)
	if a.cfg.IdleTimeout > 0 {
		ctx.SetReceiveTimeout(a.cfg.IdleTimeout)
	}
}

// serve takes one forwarded request: a session actor that is not
// activated yet holds it until it is.
func (a *SessionActor) serve(ctx actor.Context, req *envelope.Request) {
	replyTo := ctx.Sender()
	if replyTo == nil {
		a.logger.Warn("request without a reply address dropped", "request", req.Id)
		return
	}
	if a.stateless || a.phase == phaseReady {
		a.serveFrom(ctx, replyTo, req)
		return
	}
	if len(a.pending) >= maxQueued || a.stopping {
		a.reply(ctx, replyTo, unavailable(req.Id))
		return
	}
	a.pending = append(a.pending, queued{replyTo, req})
	if a.phase == phaseNew {
		a.phase = phaseActivating
		// Only an initialize creates a session; any other request for an
		// id without a snapshot is answered "not found" and leaves nothing.
		create := req.Method == http.MethodPost && !hasHeader(req, "Mcp-Session-Id")
		a.activate(ctx, create, req.Principal)
	}
}

func hasHeader(req *envelope.Request, name string) bool {
	for _, h := range req.Headers {
		if strings.EqualFold(h.Name, name) && len(h.Values) > 0 && h.Values[0] != "" {
			return true
		}
	}
	return false
}

// serveFrom starts one request on a goroutine of its own (a worker's, see
// requestWorkers), answering replyTo.
func (a *SessionActor) serveFrom(ctx actor.Context, replyTo *actor.PID, req *envelope.Request) {
	root := ctx.ActorSystem().Root
	send := func(p *envelope.ResponsePart) {
		root.Send(replyTo, &envelope.Envelope{Body: &envelope.Envelope_Part{Part: p}})
	}
	if a.ended {
		send(notFound(req.Id))
		return
	}
	if a.stopping || a.fenced || a.draining {
		send(unavailable(req.Id))
		return
	}
	if ok, refusal := a.admit(req); !ok {
		// Another user's request on this session: answered exactly like an
		// unknown session, so that ids cannot be probed, and nothing of the
		// session is touched.
		a.logger.Warn("request refused: session belongs to another principal", "request", req.Id)
		send(notFound(req.Id))
		return
	} else if refusal != nil {
		send(refusal)
		return
	}
	rb, err := reading(req)
	if err != nil {
		send(badRequest(req.Id, err.Error()))
		return
	}
	if refusal := a.checkScopes(req, rb); refusal != nil {
		send(refusal)
		return
	}
	if refusal := a.checkLimits(req); refusal != nil {
		send(refusal)
		return
	}
	a.persist.Load().touch()
	// rctx is the response's (the edge's) context; hctx, the handler's,
	// also ends when a drain cuts the request, leaving the response open for
	// its retry hint.
	rctx, cancel := context.WithCancel(context.Background())
	f := &flight{cancel: cancel, window: newWindow(uint64(req.Window)), replyTo: replyTo, rpc: rb, get: req.Method == http.MethodGet}
	if req.Principal != nil {
		f.client = req.Principal.ClientId
	}
	hctx, drain := context.WithCancel(context.WithValue(rctx, flightKey{}, f))
	f.drain = drain
	a.flights[req.Id] = f
	a.live.flight(f.get, 1)
	a.watchEdge(ctx, replyTo)
	ctx.CancelReceiveTimeout()
	self := ctx.Self()
	start := time.Now()
	debug := a.logger.Enabled(rctx, slog.LevelDebug)
	if debug {
		a.logger.Debug("request started", "method", req.Method, "request", req.Id)
	}
	requestWorkers.run(func() {
		defer func() {
			if debug {
				a.logger.Debug("request finished", "method", req.Method, "request", req.Id, "duration", time.Since(start))
			}
			root.Send(self, requestDone{req.Id})
		}()
		defer cancel()
		defer drain()
		w := newRelayWriter(rctx, req.Id, f.window, send)
		if debug {
			w.onStream = func() {
				a.logger.Debug("stream open", "method", req.Method, "request", req.Id)
			}
		}
		w.startKeepAlive(time.Duration(req.KeepaliveMs)*time.Millisecond, f.get)
		a.serveHTTP(hctx, w, req)
		if a.events != nil && hctx.Err() == nil {
			a.events.finish(a.id, f)
		}
	})
}

// serveHTTP runs one request through the MCP handler. A panic here (the
// handler's, not a tool's: those are caught by recoverPanics) ends this
// request with a 500 and leaves the actor serving.
func (a *SessionActor) serveHTTP(ctx context.Context, w *relayWriter, req *envelope.Request) {
	defer func() {
		if r := recover(); r != nil {
			a.logger.Error("panic serving request", "request", req.Id, "panic", r, "stack", string(debug.Stack()))
			w.fail(fmt.Sprintf("internal error: %v", r))
		}
	}()
	hr, err := http.NewRequestWithContext(ctx, req.Method, "http://pingmcp"+req.Path, bytes.NewReader(req.Body))
	if err != nil {
		w.fail(err.Error())
		return
	}
	envelope.ToHTTP(req.Headers, hr.Header)
	hr.ContentLength = int64(len(req.Body))
	var rb *rpcbody.Body
	if f, _ := ctx.Value(flightKey{}).(*flight); f != nil {
		rb = f.rpc
	}
	hr, end := a.observe(hr, req, rb)
	defer end(w)
	a.handler.ServeHTTP(w, hr)
	if w.unservedIfCut(req.Id) {
		a.logger.Info("request cut before it was dispatched; the edge sends it again", "request", req.Id)
	}
	if f, _ := ctx.Value(flightKey{}).(*flight); f != nil && f.moved.Load() {
		h := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}
		w.replace(http.StatusServiceUnavailable, h, rpcerr.Replaced().Body(f.rpc.FirstID()))
	}
	if ctx.Err() != nil && strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		// Cut by a drain: tell the client when to reconnect.
		w.Write([]byte(retryHint))
	}
	w.finish()
}

// watchEdge watches the reply router of an edge once, so that the requests
// it forwarded are cancelled if its node goes away.
func (a *SessionActor) watchEdge(ctx actor.Context, edge *actor.PID) {
	if a.edges == nil {
		a.edges = map[string]bool{}
	}
	if k := keyOf(edge); !a.edges[k] {
		a.edges[k] = true
		ctx.Watch(edge)
	}
}

func keyOf(pid *actor.PID) string { return pid.Address + "/" + pid.Id }

// admit binds a new session to the user (issuer, subject) of its first
// request, and admits later requests only from that user, through whichever
// client: a client that re-registers to step up (the Go SDK does) keeps its
// session. Through another client than the one the session is used through,
// the token must hold one of the MCP resource's scopes (403
// insufficient_scope otherwise): a token the user gave some other
// application for sign-in only (openid) does not take the session over.
// The request's token then replaces the one held when it is newer, or when
// it comes through another client: the session is now used through that
// client, what was exchanged for the other client's token is dropped, and
// the other client's GET streams end (it reconnects, with its own token,
// and resumes). Each tool call still acts with its own request's token
// (credentials.Delegate). A token that would make the session's snapshot
// exceed its bound is refused (the refusal to send), and the one held
// stays. README ("Step-up and sessions") says why the user, not the client,
// is the owner.
func (a *SessionActor) admit(req *envelope.Request) (bool, *envelope.ResponsePart) {
	p := req.Principal
	id := idOf(p)
	if a.owner == nil && a.credential == nil && (a.stateless || !a.hasSession()) {
		a.owner, a.credential = id, p
		a.live.setOwner(id)
		a.events.setOwner(id)
		if a.creds != nil {
			a.creds.set(p)
		}
		if ps := a.persist.Load(); ps != nil {
			// Written with the handshake, once initialize succeeds.
			sealed, err := a.cfg.Stores.SealPrincipal(a.id, p)
			ps.stage(func(r *state.Snapshot) {
				if id != nil {
					r.Issuer, r.Subject, r.ClientID = id.Issuer, id.Subject, id.ClientID
				}
				if err == nil {
					r.Principal = sealed
				}
			})
		}
		return true, nil
	}
	if (a.owner == nil) != (id == nil) || (id != nil && !id.SameUser(*a.owner)) {
		return false, nil
	}
	switched := id != nil && id.ClientID != a.owner.ClientID
	if switched && !a.resourceScoped(p) {
		a.logger.Warn("request refused: another client of the session's user, without any of the resource's scopes",
			"request", req.Id, "client_id", id.ClientID, "session_client_id", a.owner.ClientID)
		return true, a.switchRefused(req)
	}
	if p != nil && (a.credential == nil || switched || p.ExpiresUnix >= a.credential.ExpiresUnix) {
		if ps := a.persist.Load(); ps != nil && (a.credential == nil || a.credential.Token != p.Token) {
			if sealed, err := a.cfg.Stores.SealPrincipal(a.id, p); err == nil {
				var big *SnapshotTooLarge
				err := ps.update(false, func(r *state.Snapshot) {
					r.Principal, r.ClientID = sealed, id.ClientID
					if switched {
						r.Delegations = ""
					}
				})
				if errors.As(err, &big) {
					return true, tooLarge(req, big)
				}
			}
		}
		a.credential = p
		if switched {
			from := a.owner.ClientID
			a.logger.Info("session now used through another client of its user", "from_client_id", from, "client_id", id.ClientID)
			a.owner = id
			a.live.setOwner(id)
			if a.creds != nil {
				a.creds.replace(p)
			}
			a.endStreamsOf(from)
		}
	}
	if a.creds != nil {
		a.creds.set(a.credential)
	}
	return true, nil
}

// resourceScoped says whether p holds one of the MCP resource's scopes: those
// clients are told to request (--scopes) or one a tool needs. A resource
// that defines none asks nothing of a token but its audience, which the
// edge checked.
func (a *SessionActor) resourceScoped(p *envelope.Principal) bool {
	defined := len(a.cfg.Scopes) > 0
	for _, needed := range a.scopes {
		defined = defined || len(needed) > 0
	}
	if !defined {
		return true
	}
	return slices.ContainsFunc(p.Scopes, func(s string) bool {
		if slices.Contains(a.cfg.Scopes, s) {
			return true
		}
		for _, needed := range a.scopes {
			if slices.Contains(needed, s) {
				return true
			}
		}
		return false
	})
}

// endStreamsOf ends the GET streams opened through client, which the
// session is no longer used through: what the server sends outside a
// request's response (server→client requests such as elicitations,
// notifications) then goes only to the client now using the session. A
// client whose stream ends with the retry hint reconnects with its own
// token and resumes from its last event.
func (a *SessionActor) endStreamsOf(client string) {
	for id, f := range a.flights {
		if f.get && f.client == client {
			a.logger.Info("stream of the client the session was used through ended", "request", id, "client_id", client)
			f.drain()
		}
	}
}

// switchRefused answers a request through another client of the session's
// user whose token holds none of the resource's scopes: 403
// insufficient_scope naming those clients are told to request, or without
// any, those the tools need (RFC 6750 §3.1), and the resource's metadata.
func (a *SessionActor) switchRefused(req *envelope.Request) *envelope.ResponsePart {
	scopes := a.cfg.Scopes
	if len(scopes) == 0 {
		for _, needed := range a.scopes {
			scopes = append(scopes, needed...)
		}
		scopes = slices.Compact(slices.Sorted(slices.Values(scopes)))
	}
	aerr := auth.InsufficientScope(req.Principal.Scopes, scopes,
		"this session is used through another client: a token for it must hold one of the scopes "+strings.Join(scopes, " "))
	return scopeRefusal(req, aerr, firstID(req))
}

// checkScopes refuses a tools/call whose tool needs a scope the request's
// token lacks: 403 insufficient_scope naming the scopes the token holds and
// those needed, so that the client can step up without losing any (MCP
// authorization, RFC 6750 §3.1), and the metadata of the resource the
// request was made to (the edge found it from the Host).
func (a *SessionActor) checkScopes(req *envelope.Request, rb *rpcbody.Body) *envelope.ResponsePart {
	if req.Principal == nil || len(a.scopes) == 0 || rb == nil {
		return nil
	}
	// rb is the edge's reading, which refused a body another reader could
	// take differently (a key in another case, a key twice): the tools read
	// here are those the SDK will call. See reading for why it is trusted.
	var needed, missing []string
	var tool string
	var id json.RawMessage
	for _, c := range rb.Messages {
		if c.Method != "tools/call" {
			continue
		}
		for _, s := range a.scopes[c.Tool] {
			if !slices.Contains(req.Principal.Scopes, s) && !slices.Contains(missing, s) {
				missing = append(missing, s)
				tool, id = c.Tool, c.ID
			}
		}
		needed = append(needed, a.scopes[c.Tool]...)
	}
	if len(missing) == 0 {
		return nil
	}
	aerr := auth.InsufficientScope(req.Principal.Scopes, needed, fmt.Sprintf("%s needs scope %s", tool, strings.Join(missing, " ")))
	return scopeRefusal(req, aerr, id)
}

// scopeRefusal is the 403 insufficient_scope answer to req: the challenge
// names the scopes to ask for and the metadata of the resource the request
// was made to, the body is a JSON-RPC error (id: its first request's).
func scopeRefusal(req *envelope.Request, aerr *auth.Error, id json.RawMessage) *envelope.ResponsePart {
	return errorPart(req.Id, http.StatusForbidden, id, rpcerr.New(rpcerr.InvalidRequest, aerr.Error()),
		&envelope.Header{Name: "WWW-Authenticate", Values: []string{auth.Challenge(aerr, auth.MetadataURL(req.Resource), aerr.Scopes)}})
}

// badRequest refuses a request before the MCP handler sees it.
func badRequest(requestID, msg string) *envelope.ResponsePart {
	return errorPart(requestID, http.StatusBadRequest, nil, rpcerr.New(rpcerr.InvalidRequest, msg))
}

// settle decides, once no request is in flight, whether the actor stays: a
// session actor whose MCP session ended (or never began: an unknown id, a
// failed initialize) stops at once; otherwise it waits for its idle timeout.
func (a *SessionActor) settle(ctx actor.Context) {
	if len(a.flights) > 0 {
		return
	}
	if a.draining {
		a.finishDrain(ctx)
		return
	}
	if !a.stateless && a.hasSession() && a.handshakeRefused() {
		// The SDK accepted the initialize, then the snapshot refused it
		// (recordChanges): the client got an error and no session, but the
		// SDK keeps one, which would count against its user until the idle
		// timeout. It goes, and the session ends here as a failed one does.
		for s := range a.server.Sessions() {
			s.Close()
		}
	}
	if !a.stateless && !a.hasSession() {
		// What still arrives is for a session that is no more: the actor
		// answers it "not found" for a moment before it stops, rather than
		// leave requests already on their way to meet a stopping actor
		// (which the edge could only answer "retry").
		if !a.ended {
			a.ended = true
			if a.owner != nil {
				releaseSession(a.cfg.Stores, a.id, a.owner.Issuer, a.owner.Subject, a.logger)
			}
			self, root := ctx.Self(), ctx.ActorSystem().Root
			time.AfterFunc(endedLinger, func() { root.Send(self, endedNow{}) })
		}
		return
	}
	if a.cfg.IdleTimeout > 0 {
		ctx.SetReceiveTimeout(a.cfg.IdleTimeout)
	}
}

// handshakeRefused says whether the session's snapshot lacks the
// initialize the SDK took: recordChanges refused it after the SDK had.
func (a *SessionActor) handshakeRefused() bool {
	p := a.persist.Load()
	if p == nil || a.fenced {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rec.Initialize) == 0
}

func (a *SessionActor) hasSession() bool {
	for range a.server.Sessions() {
		return true
	}
	return false
}

func (a *SessionActor) stop(ctx actor.Context) {
	if !a.stopping {
		a.stopping = true
		// Stop only once the requests already in the mailbox were answered
		// "not served" (serve refuses them while stopping): protoactor
		// drops what is left in a stopped actor's mailbox, and the edge
		// cannot tell such a request from one lost half-way, which it may
		// not send again.
		ctx.Send(ctx.Self(), stopNow{})
	}
}

// stopNow stops the actor, after the requests queued before it.
type stopNow struct{}

// unavailable is the answer to a request that reached an actor on its way
// out: 503 with Retry-After, which clients and the edge retry.
func unavailable(requestID string) *envelope.ResponsePart {
	return &envelope.ResponsePart{
		RequestId: requestID,
		Status:    http.StatusServiceUnavailable,
		Headers: []*envelope.Header{
			{Name: "Content-Type", Values: []string{"text/plain; charset=utf-8"}},
			{Name: "Retry-After", Values: []string{"1"}},
			// The request was not served: the edge may send it again.
			{Name: envelope.NotServedHeader, Values: []string{"1"}},
		},
		Body:  []byte("actor is stopping; retry\n"),
		Final: true,
	}
}

// notFound is the answer for a session this actor does not serve.
func notFound(requestID string) *envelope.ResponsePart {
	return errorPart(requestID, http.StatusNotFound, nil, rpcerr.NotFound())
}

// errorPart is the whole answer to request requestID when the actor refuses
// it itself: status, err answering id (null when empty) as a JSON body, and
// headers besides Content-Type.
func errorPart(requestID string, status int, id json.RawMessage, err *rpcerr.Error, headers ...*envelope.Header) *envelope.ResponsePart {
	return &envelope.ResponsePart{
		RequestId: requestID,
		Status:    int32(status),
		Headers:   append([]*envelope.Header{{Name: "Content-Type", Values: []string{"application/json"}}}, headers...),
		Body:      err.Body(id),
		Final:     true,
	}
}

// recoverPanics turns a panic in a method handler (a tool, say) into a
// JSON-RPC internal error for that request alone.
func recoverPanics(logger *slog.Logger) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (res mcp.Result, err error) {
			defer func() {
				if r := recover(); r != nil {
					logger.Error("panic in MCP handler", "method", method, "panic", r, "stack", string(debug.Stack()))
					res, err = nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("internal error in %s", method)}
				}
			}()
			return next(ctx, method, req)
		}
	}
}

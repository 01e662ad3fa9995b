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
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/tools"
)

// Config is what every actor of a node shares.
type Config struct {
	// Implementation names the server in initialize results.
	Implementation *mcp.Implementation
	// Toolsets are installed into every MCP server, when Tools is nil.
	Toolsets []tools.Toolset
	// Tools, if set, are the toolsets installed into every MCP server,
	// which a reload may replace (tools.go); Toolsets are then ignored.
	Tools *Tools
	// IdleTimeout passivates an actor that has had no request for this long
	// and has no stream open. Zero means never.
	IdleTimeout time.Duration
	// TaskTTL is how long a task stays readable after its last change,
	// TaskLease how long a round's runner answers for it without renewing
	// (renewed every third of it); zero: tasks.DefaultTTL,
	// tasks.DefaultLease (--task-ttl, --task-lease).
	TaskTTL, TaskLease time.Duration
	// MaxBodyBytes is the largest request body the edge accepts
	// (--max-body-bytes): the tasks layer reads no more (zero: its own
	// bound).
	MaxBodyBytes int64
	// servers are the MCP servers the node's session actors share
	// (servers.go); SessionProps makes them.
	servers *servers
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
	// MaxRunningCalls bounds the handlers a session runs at once, whether
	// their clients still wait for them or not: on the 2025-11-25
	// protocol a client that closes a request's stream does not cancel the
	// request (it may resume the stream), so the edge's count of requests
	// in flight misses those. A POST carrying requests beyond it is
	// refused 429 (limit running_calls); zero: no bound.
	MaxRunningCalls int
	// MaxListensPerPrincipal bounds the stateless subscriptions/listen
	// streams a principal (a user's client) has open at once, wherever
	// they arrived (429 beyond); zero: no bound.
	MaxListensPerPrincipal int
	// MaxBatchConcurrency bounds the tool calls of one JSON-RPC batch that
	// run at once (0: no bound; the SDK would run them all together).
	MaxBatchConcurrency int
	// EventsBuffer bounds the event writes a session holds while its store
	// is unreachable (limits.go); DefaultEventsBuffer when zero.
	EventsBuffer int
	// PartDelay is how long a response's first flush, and a POST stream's
	// last event, may wait to travel with the next part or the response's
	// end (relayWriter); zero: firstPartDelay, 1 ms.
	PartDelay time.Duration
	// Scopes are the scopes clients are told to request (--scopes): a token
	// must hold one of them, or one a tool needs, to use a session through
	// another client of its user than the one the session is used through
	// (admit).
	Scopes []string
}

// toolScopes merges the scopes each toolset's tools need.
func (c Config) toolScopes() map[string][]string { return scopesOf(c.Toolsets) }

// withTools is c with its Tools set (StaticTools of Toolsets if unset).
func (c Config) withTools() Config {
	if c.Tools == nil {
		c.Tools = StaticTools(c.Toolsets...)
	}
	return c
}

// SessionProps are the props of the session actor kind.
func SessionProps(cfg Config) *actor.Props {
	if cfg.Stores == nil {
		cfg.Stores = state.MemoryStores(0)
	}
	cfg = cfg.withTools()
	cfg.servers = newServers(cfg)
	return props(func() actor.Actor { return newSessionActor(cfg) })
}

func newSessionActor(cfg Config) *SessionActor {
	cfg = cfg.withTools()
	if cfg.servers == nil {
		cfg.servers = newServers(cfg)
	}
	a := &SessionActor{core: core{cfg: cfg, life: lifeNew}}
	a.kind = a
	return a
}

// SessionActor serves the MCP requests of one session: the core's serving
// (core.go), and what keeps the session beyond the actor. Its first request
// activates it (activation.go): it takes an epoch for the session, restoring
// it from its snapshot if it has one (rehydrate.go), while requests wait in
// pending; from then on it keeps the snapshot (persist.go) and the events
// (events.go) in the store, fenced by that epoch.
type SessionActor struct {
	core
	pending []queued
	epoch   int64
	// claimed is the principal whose sessions the activation counted this
	// one among (claimSession): released as the session ends, even when
	// nothing bound the actor to it (its initialize dropped: dropPending).
	claimed *envelope.Principal
	// changing serializes the changes recordChanges checks and makes.
	changing sync.Mutex
	// binding serializes taking a shared server (holdServer); chained is
	// the actor's middleware on it (chain).
	binding sync.Mutex
	chained atomic.Pointer[mcp.MethodHandler]
	// removed says this activation removed the session from the store (a
	// DELETE, an end): the store's epoch moved on then, and a write of its
	// own still on its way finds itself fenced, which is no newer
	// activation (fence).
	removed atomic.Bool
}

// endedNow stops an actor whose session ended, once it lingered.
type endedNow struct{}

// endedLinger is how long an actor whose session ended answers "not found"
// before it stops.
const endedLinger = time.Second

// Receive dispatches the session actor's messages; those every kind takes
// alike are the core's (core.receive).
func (a *SessionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *envelope.Envelope:
		if req := m.GetRequest(); req != nil {
			a.serve(ctx, req)
			return
		}
		if c := m.GetCancel(); c != nil && a.dropPending(c.RequestId) {
			return
		}
		a.receive(ctx)
	case *activated:
		a.activated(ctx, m)
	case fencedOut:
		a.fence(ctx)
	case *actor.Stopping:
		for _, q := range a.pending {
			a.reply(ctx, q.replyTo, unavailable(q.req.Id))
		}
		a.pending = nil
		a.receive(ctx)
	default:
		a.receive(ctx)
	}
}

func (a *SessionActor) start(ctx actor.Context) {
	a.begin(ctx, "session", true)
	self, root := ctx.Self(), ctx.ActorSystem().Root
	a.events = &sessionEvents{
		store:  a.cfg.Stores.Events,
		max:    a.cfg.EventsBuffer,
		logger: a.logger,
		fenced: func() { root.Send(self, fencedOut{}) },
		ended: func(ctx context.Context) error {
			a.removed.Store(true)
			err := a.persist.Load().remove(ctx)
			if err != nil {
				a.removed.Store(false)
			}
			return err
		},
		behind: a.cfg.Stores.Events.Remote(),
	}
	a.build(ctx, serverOptions{middleware: []mcp.Middleware{a.recordChanges}, changed: a.delegationsChanged})
}

// serve takes one forwarded request: until the session is activated, the
// actor holds it (the first one starts the activation).
func (a *SessionActor) serve(ctx actor.Context, req *envelope.Request) {
	replyTo := replyAddress(ctx, a.logger, req)
	if replyTo == nil {
		return
	}
	switch a.life {
	case lifeNew, lifeActivating:
	default:
		a.serveFrom(ctx, replyTo, req)
		return
	}
	if len(a.pending) >= maxQueued {
		a.reply(ctx, replyTo, unavailable(req.Id))
		return
	}
	a.pending = append(a.pending, queued{replyTo, req})
	if a.to(lifeActivating) {
		// Only an initialize creates a session; any other request for an
		// id without a snapshot is answered "not found" and leaves nothing.
		create := req.Method == http.MethodPost && !hasHeader(req, "Mcp-Session-Id")
		a.activate(ctx, create, req.Principal)
	}
}

// dropPending forgets a request that waits for the activation, its edge
// having cancelled it (its client left): nobody reads its answer, and its
// client, which saw no event of it, cannot resume it. It says whether there
// was one.
func (a *SessionActor) dropPending(id string) bool {
	return dropQueued(&a.pending, id)
}

func hasHeader(req *envelope.Request, name string) bool {
	for _, h := range req.Headers {
		if strings.EqualFold(h.Name, name) && len(h.Values) > 0 && h.Values[0] != "" {
			return true
		}
	}
	return false
}

// bindable: a session is bound to the principal of the request that opens
// it, before the SDK has a session for it.
func (a *SessionActor) bindable() bool { return !a.hasSession() }

// settled ends the actor of a session that ended (or never began: an
// unknown id, a failed initialize); a live session's actor waits for its
// idle timeout.
func (a *SessionActor) settled(ctx actor.Context) {
	has := a.hasSession()
	refused := has && a.handshakeRefused()
	if refused {
		// The SDK accepted the initialize, then the snapshot refused it
		// (recordChanges): the client got an error and no session, but the
		// SDK keeps one, which would count against its user until the idle
		// timeout. It goes, and the session ends here as a failed one does,
		// whether or not the SDK has let go of it yet (it does so on a
		// goroutine of its own).
		for s := range a.ownSessions() {
			s.Close()
		}
	}
	if has && !refused {
		a.stayIdle(ctx)
		return
	}
	if a.events.unended.Load() {
		// A DELETE that could not remove the snapshot: the session
		// stays as stored, counted against its user, and the next
		// request activates it again from there.
		a.logger.Info("actor stops: its session's end did not reach the store")
		a.to(lifeStopping)
		a.stop(ctx)
		return
	}
	// What still arrives is for a session that is no more: the actor
	// answers it "not found" for a moment before it stops, rather than
	// leave requests already on their way to meet a stopping actor (which
	// the edge could only answer "retry").
	a.to(lifeEnded)
	if a.owner != nil {
		releaseSession(a.cfg.Stores, a.id, a.owner.Issuer, a.owner.Subject, a.logger)
	} else if a.claimed != nil {
		releaseSession(a.cfg.Stores, a.id, a.claimed.Issuer, a.claimed.Subject, a.logger)
	}
	lingerEnded(ctx)
}

// lingerEnded stops an actor whose session ended once endedLinger passed.
func lingerEnded(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(endedLinger, func() { root.Send(self, endedNow{}) })
}

// handshakeRefused says whether the session's snapshot lacks the
// initialize the SDK took: recordChanges refused it after the SDK had.
func (a *SessionActor) handshakeRefused() bool {
	p := a.persist.Load()
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rec.Initialize) == 0
}

func (a *SessionActor) hasSession() bool {
	for range a.ownSessions() {
		return true
	}
	return false
}

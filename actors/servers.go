package actors

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/growstack"
	"github.com/pingmcp/pingmcp/tools"
)

// servers are the MCP servers a node's session actors share: a go-sdk
// Server serves many sessions, and building one (its toolsets' AddTool,
// which marshals and parses every tool's schema) costs far more than
// opening a session on it. The bare SDK opens sessions ~6x faster on one
// shared server than with one server per session (BENCHMARKS.md,
// "Initialize"), and rehydration storms after a node loss open many at
// once. Each shared server holds at most sessionsPerServer sessions, so
// that what the SDK does per server (list a server's sessions, drop one
// from its list, tell all of them that the tools changed) stays small.
//
// What differs between sessions is not in the server: its middleware finds
// the actor of the session a request belongs to (the actor that created the
// session: see below) and runs that actor's own middleware around the
// request (dispatch), which hands the actor's credentials to the tools in
// the request's context (sessionCaller).
//
// The go-sdk asks a server for a new session's id (ServerOptions.
// GetSessionID) without saying for which request. A session must take its
// actor's identity (the edge minted it and routes by it), so a session is
// created on a shared server only while its actor holds that server's
// create lock, with the id in next (sessionHandler); actors creating
// sessions at the same moment take different servers. A session's first
// request is dispatched while its actor holds the lock: that is how the
// server learns which actor the session is (two activations of one
// session id, a stale one and its successor, keep apart).
//
// Principal actors (the stateless protocol) keep a server of their own:
// one per user, not per request.
type servers struct {
	cfg Config // Implementation, Tools, SchemaCache, Logger, Authenticated

	mu sync.Mutex
	// open are the servers of the current tools with room for a session,
	// the newest last.
	open []*sharedServer
}

// sessionsPerServer is how many sessions' actors a shared server takes.
const sessionsPerServer = 64

// sharedServer is one MCP server the session actors of a node share.
type sharedServer struct {
	s *mcp.Server
	// create is held while a session is created on s: s's GetSessionID
	// answers next.
	create   sync.Mutex
	next     string
	creating atomic.Pointer[SessionActor]
	// sessions are the actors of its sessions, by SDK session.
	sessions sync.Map
	n        int // actors bound to it (servers.mu)
	// v are the tools installed on s; tools serializes their changes.
	v     atomic.Pointer[toolsVersion]
	tools sync.Mutex
}

func newServers(cfg Config) *servers { return &servers{cfg: cfg.withTools()} }

// caller is what the shared servers' tools act for: the actor's
// credentials of each request (sessionCaller), or nobody without
// authentication.
func (p *servers) caller() tools.Caller {
	if p.cfg.Authenticated {
		return sessionCaller{}
	}
	return nil
}

// build makes a server of the tools v.
func (p *servers) build(v *toolsVersion) *sharedServer {
	sh := &sharedServer{}
	opts := &mcp.ServerOptions{
		Logger:       p.cfg.Logger,
		SchemaCache:  p.cfg.SchemaCache,
		GetSessionID: func() string { return sh.next },
	}
	configure(opts, v)
	sh.s = mcp.NewServer(p.cfg.Implementation, opts)
	sh.s.AddReceivingMiddleware(sh.dispatch)
	for _, ts := range v.sets {
		ts.Install(sh.s, p.caller())
	}
	sh.v.Store(v)
	return sh
}

// configure fills opts for a server of the tools v: each toolset's
// options, and the tools' list_changed capability when the tools may
// change.
func configure(opts *mcp.ServerOptions, v *toolsVersion) {
	for _, ts := range v.sets {
		ts.Configure(opts)
	}
	if v.names != nil {
		// The tools may change (a reload of --apis): the client is told
		// (notifications/tools/list_changed), whatever tools there are now.
		if opts.Capabilities == nil {
			opts.Capabilities = &mcp.ServerCapabilities{Logging: &mcp.LoggingCapabilities{}}
		}
		if opts.Capabilities.Tools == nil {
			opts.Capabilities.Tools = &mcp.ToolCapabilities{ListChanged: true}
		}
	}
}

// bind gives a a shared server of the current tools with room, held for
// creating a's session (its create lock taken, next set to a's id): one
// no other actor is creating a session on, or a new one.
func (p *servers) bind(a *SessionActor) *sharedServer {
	v := p.cfg.Tools.cur.Load()
	p.mu.Lock()
	var sh *sharedServer
	for i := len(p.open) - 1; i >= 0; i-- {
		c := p.open[i]
		if c.v.Load() != v {
			// Of tools replaced since: it keeps its sessions (each
			// brought to the new tools by its actor), takes no more.
			p.open = slices.Delete(p.open, i, i+1)
			continue
		}
		if c.create.TryLock() {
			sh = c
			break
		}
	}
	if sh != nil {
		p.take(sh)
		p.mu.Unlock()
	} else {
		p.mu.Unlock()
		sh = p.add(v, true)
	}
	sh.hold(a)
	return sh
}

// hold is sh, its create lock just taken, creating a's session.
func (sh *sharedServer) hold(a *SessionActor) {
	sh.next = a.id
	sh.creating.Store(a)
}

// unhold lets go of sh's create lock.
func (sh *sharedServer) unhold() {
	sh.creating.Store(nil)
	sh.create.Unlock()
}

// take counts one more actor on sh; p.mu is held.
func (p *servers) take(sh *sharedServer) {
	sh.n++
	if sh.n >= sessionsPerServer {
		p.open = slices.DeleteFunc(p.open, func(c *sharedServer) bool { return c == sh })
	}
}

// release lets go of a's server once a stopped: it takes another session,
// or goes once it serves none (unless it is the last of the current tools
// with room).
func (p *servers) release(a *core, sh *sharedServer) {
	sh.sessions.Range(func(ss, v any) bool {
		if v == a.kind {
			sh.sessions.Delete(ss)
		}
		return true
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	sh.n--
	current := sh.v.Load() == p.cfg.Tools.cur.Load()
	i := slices.Index(p.open, sh)
	switch {
	case sh.n == 0 && i >= 0 && len(p.open) > 1:
		p.open = slices.Delete(p.open, i, i+1)
	case sh.n == sessionsPerServer-1 && i < 0 && current:
		p.open = append(p.open, sh)
	}
}

// prototype is a server of the current tools, for the SDK to read the
// protocol versions it takes before an actor has a session (the answer to
// such a request is "not found" anyway).
func (p *servers) prototype() *mcp.Server {
	v := p.cfg.Tools.cur.Load()
	p.mu.Lock()
	for _, sh := range slices.Backward(p.open) {
		if sh.v.Load() == v {
			p.mu.Unlock()
			return sh.s
		}
	}
	p.mu.Unlock()
	return p.add(v, false).s
}

// add builds a server of the tools v and opens it to sessions; held, with
// its create lock taken and an actor counted on it (bind).
func (p *servers) add(v *toolsVersion, held bool) *sharedServer {
	sh := p.build(v)
	if held {
		sh.create.Lock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = append(p.open, sh)
	if held {
		p.take(sh)
	}
	return sh
}

// upgrade brings sh to the tools v, once for all its sessions: the tools
// no toolset offers any more are removed, the toolsets that are new are
// installed. The SDK tells the server's sessions that their tool list
// changed.
func (p *servers) upgrade(sh *sharedServer, v *toolsVersion) {
	sh.tools.Lock()
	defer sh.tools.Unlock()
	old := sh.v.Load()
	if old == v || old.gen > v.gen {
		return
	}
	if gone := missingFrom(old.names, v.names); len(gone) > 0 {
		sh.s.RemoveTools(gone...)
	}
	for _, ts := range v.sets {
		if !slices.Contains(old.sets, ts) {
			ts.Install(sh.s, p.caller())
		}
	}
	sh.v.Store(v)
}

// errUnserved answers a request of a session whose actor is gone.
var errUnserved = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "session not served: retry"}

// dispatch is a shared server's middleware: it runs the request through
// the middleware of the actor of the request's session. A session's first
// request comes while its actor creates it (holds sh's create lock). The
// go-sdk runs each request on a fresh goroutine, and this is where pingmcp's
// part of it starts: its stack is grown here, once, to what the rest needs
// (growstack).
func (sh *sharedServer) dispatch(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		growstack.Grow()
		ss, ok := req.GetSession().(*mcp.ServerSession)
		if !ok {
			return nil, errUnserved
		}
		v, ok := sh.sessions.Load(ss)
		if !ok {
			a := sh.creating.Load()
			if a == nil || ss.ID() != a.id {
				return nil, errUnserved
			}
			v, _ = sh.sessions.LoadOrStore(ss, a)
		}
		return v.(*SessionActor).chain(next)(ctx, method, req)
	}
}

// chain is the actor's middleware around next, the shared server's
// handler (always the same: an actor is bound to one server): a log
// level's check, what the actor records of the session, readiness, the
// audit, panic recovery, and its credentials for the tools.
func (a *SessionActor) chain(next mcp.MethodHandler) mcp.MethodHandler {
	if h := a.chained.Load(); h != nil {
		return *h
	}
	h := refuseListen(checkRequest(a.running(a.recordChanges(a.ready(a.auditToolCalls(recoverPanics(a.logger)(a.withCaller(next))))))))
	a.chained.Store(&h)
	return h
}

// withCaller hands the actor's credentials to the tools of a request.
func (a *core) withCaller(next mcp.MethodHandler) mcp.MethodHandler {
	if a.creds == nil {
		return next
	}
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		return next(context.WithValue(ctx, callerKey{}, a.creds), method, req)
	}
}

type callerKey struct{}

// sessionCaller is the tools.Caller of the shared servers' tools: the
// credentials of the actor serving the tool call's session, from its
// context (withCaller).
type sessionCaller struct{}

var errNoCaller = errors.New("no user to act for")

func (sessionCaller) Claims(ctx context.Context) map[string]any {
	if c, _ := ctx.Value(callerKey{}).(*credentials); c != nil {
		return c.Claims(ctx)
	}
	return nil
}

func (sessionCaller) Delegate(ctx context.Context, audience string, scopes []string) (*tools.Delegation, error) {
	if c, _ := ctx.Value(callerKey{}).(*credentials); c != nil {
		return c.Delegate(ctx, audience, scopes)
	}
	return nil, errNoCaller
}

func (sessionCaller) Refused(ctx context.Context, d *tools.Delegation) {
	if c, _ := ctx.Value(callerKey{}).(*credentials); c != nil {
		c.Refused(ctx, d)
	}
}

// sessionHandler is a session actor's HTTP handler: the SDK's, with the
// actor's shared server held for a request that creates a session.
type sessionHandler struct {
	a   *SessionActor
	sdk http.Handler
}

func (h sessionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Mcp-Session-Id") != "" {
		h.sdk.ServeHTTP(w, r)
		return
	}
	sh := h.a.holdServer()
	defer sh.unhold()
	h.sdk.ServeHTTP(w, r)
}

// holdServer returns the actor's shared server with its create lock held,
// binding the actor to one first.
func (a *SessionActor) holdServer() *sharedServer {
	a.binding.Lock()
	defer a.binding.Unlock()
	if sh := a.shared.Load(); sh != nil {
		sh.create.Lock()
		sh.hold(a)
		return sh
	}
	sh := a.cfg.servers.bind(a)
	a.shared.Store(sh)
	return sh
}

// sdkServer is the server the SDK's handler serves the actor's sessions
// with.
func (a *core) sdkServer(*http.Request) *mcp.Server {
	if sh := a.shared.Load(); sh != nil {
		return sh.s
	}
	if a.cfg.servers != nil && a.events != nil {
		return a.cfg.servers.prototype()
	}
	return a.server
}

// ownSessions are the SDK's sessions of this actor: of its shared server,
// those it created; of a server of its own, all.
func (a *core) ownSessions() iter.Seq[*mcp.ServerSession] {
	return func(yield func(*mcp.ServerSession) bool) {
		if sh := a.shared.Load(); sh != nil {
			for s := range sh.s.Sessions() {
				if v, _ := sh.sessions.Load(s); v == a.kind && !yield(s) {
					return
				}
			}
			return
		}
		if a.server == nil {
			return
		}
		for s := range a.server.Sessions() {
			if !yield(s) {
				return
			}
		}
	}
}

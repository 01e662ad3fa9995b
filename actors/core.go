package actors

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/capture"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/internal/sse"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/state/taskstore"
	"github.com/pingmcp/pingmcp/tasks"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/tools"
)

// core is the request-serving core both actor kinds share (the session
// actor, session.go; the principal actor, principal.go). It takes forwarded
// requests, admits them (admission.go), runs each through the MCP handler
// on a worker (workers.go) and streams the answer back to the edge
// (relay.go). It keeps the actor's lifecycle (lifecycle.go), and handles
// the messages every actor kind takes the same way (receive).
type core struct {
	cfg  Config
	kind kind
	life life
	// calls are the handlers of the actor's server running now (running.go).
	calls runningCalls
	// lastRequest is when a request last started or ended here: a call
	// whose client left keeps an idle actor until the session's idle
	// timeout, counted from it (idle).
	lastRequest time.Time
	// idleSince is when it last had nothing in flight (zero: serving), for
	// its idle timer, idleTimer (stayIdle).
	idleSince time.Time
	idleTimer *time.Timer
	// trail counts the requests forwarded from one node; moving says the
	// session is to move there, leaving that it drains to, handedOver that
	// it did; held are the requests that came meanwhile (follow.go).
	trail                       trail
	moving, leaving, handedOver bool
	held                        []queued
	// id is the actor's cluster identity: the session's Mcp-Session-Id, or
	// the principal's key; sessionID is the Mcp-Session-Id served (empty
	// for a principal actor).
	id, sessionID string
	logger        *slog.Logger
	// server is a principal actor's own MCP server; shared, a session
	// actor's, once it has a session (servers.go).
	server  *mcp.Server
	shared  atomic.Pointer[sharedServer]
	handler http.Handler
	// tasks serves the tasks extension in front of handler (a principal
	// actor's: the 2026-07-28 protocol); nil for a session actor.
	tasks *tasks.Layer
	// flights are the requests in flight by request id; nil while there
	// are none (an idle actor keeps no map).
	flights map[string]*flight
	// owner is the principal the actor serves (nil without auth);
	// credential is the newest token it presented; creds hands it, and the
	// tokens exchanged for it, to the tools.
	owner      *auth.Principal
	credential *envelope.Principal
	creds      *credentials
	scopes     map[string][]string // tool → scopes it needs (toolsOf's)
	// toolsOf are the toolsets installed on server; caller is the user
	// they act for (refreshTools).
	toolsOf  *toolsVersion
	caller   tools.Caller
	edges    []string   // reply routers watched, by address/id (keyOf): a few per node
	node     string     // this node's cluster address
	requests requestsOf // being served, for the middleware (observe.go)
	// live is this actor's entry in the node's Local set (nil without one).
	live *liveActor

	// What a session keeps beyond its actor (persist.go, events.go): nil
	// for a principal actor; persist also until the session is activated.
	// persist is set on the actor's goroutine, read by the SDK's too.
	events  *sessionEvents
	persist atomic.Pointer[persister]

	// stopQueued says the actor asked itself to stop (stop): a Stopping it
	// did not ask for is the cluster's.
	stopQueued bool
	drainTimer *time.Timer

	// The sweep of the principal's lapsed tasks (sweepTasks): swept once
	// it ran for this activation, sweeping while it runs, sweepTimer for
	// the next one.
	swept, sweeping bool
	sweepTimer      *time.Timer
}

// kind is what an actor kind adds to the core.
type kind interface {
	// bindable says whether a request may bind the actor to its principal
	// now, when none is bound yet (admit).
	bindable() bool
	// checkLimits refuses, once admitted, a request the actor cannot take
	// now (nil: take it).
	checkLimits(req *envelope.Request, rb *rpcbody.Body) *envelope.ResponsePart
	// settled is called when the actor serves and has no request in
	// flight: it decides whether the actor stays.
	settled(ctx actor.Context)
}

// serverOptions are how a kind's MCP server differs from the others.
type serverOptions struct {
	// stateless is the SDK's stateless mode: every request is a session
	// of its own.
	stateless bool
	// middleware runs inside the core's (audit, panic recovery).
	middleware []mcp.Middleware
	// changed is told when the tokens exchanged for the owner change.
	changed func()
}

// begin starts the actor: its identity, its entry in the node's Local set,
// its logger (name is the kind, the logger's key for the identity).
func (a *core) begin(ctx actor.Context, name string, session bool) {
	a.id = protocluster.GetClusterIdentity(ctx).Identity
	if session {
		a.sessionID = a.id
	}
	a.live = a.cfg.Local.add(ctx.Self(), !session, a.id)
	if a.cfg.Local != nil && a.cfg.Local.draining.Load() {
		// Activated on a node on its way out: refuse (retryably) and go.
		ctx.Send(ctx.Self(), &drainActor{deadline: time.Now().Add(time.Second)})
	}
	a.node = ctx.ActorSystem().Address()
	a.logger = a.cfg.Logger.With("node", a.node, name, a.id)
}

// build makes the actor's MCP server and its HTTP handler. A session
// actor's server is one the node's session actors share (servers.go),
// taken when its session is created.
func (a *core) build(ctx actor.Context, o serverOptions) {
	v := a.cfg.Tools.cur.Load()
	if a.cfg.Authenticated {
		a.creds = newCredentials(a.cfg.Exchanger, a.logger)
		a.creds.changed = o.changed
		a.caller = a.creds
	}
	a.toolsOf, a.scopes = v, v.scopes
	// A session actor's middleware is the shared server's dispatch to it
	// (chain); a principal actor builds its server now.
	if o.stateless || a.cfg.servers == nil {
		sdkLogger := a.logger
		if o.stateless {
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
		configure(opts, v)
		if o.stateless {
			tasks.Advertise(opts)
		}
		a.server = mcp.NewServer(a.cfg.Implementation, opts)
		a.server.AddReceivingMiddleware(a.running, a.ready, a.auditToolCalls, recoverPanics(a.logger))
		if len(o.middleware) > 0 {
			a.server.AddReceivingMiddleware(o.middleware...)
		}
		// Outermost (each call wraps what the earlier ones made): before
		// anything else sees the request.
		a.server.AddReceivingMiddleware(checkRequest)
		if !o.stateless {
			a.server.AddReceivingMiddleware(refuseListen)
		}
		for _, ts := range v.sets {
			ts.Install(a.server, a.caller)
		}
	}
	hopts := &mcp.StreamableHTTPOptions{
		Stateless: o.stateless,
		Logger:    a.logger,
		// The edge has checked Host and Origin against its own listener.
		DisableLocalhostProtection: true,
		// Body size is the edge's to limit; it sends at most this much.
		MaxRequestBodyBytes: -1,
		// A 2026-07-28 client cancels a request by closing its response
		// stream, and sends no notifications/cancelled: its handler's
		// context ends with the request's (the edge's Cancel, or a drain).
		// Earlier revisions are unaffected (a stream they close may be
		// resumed).
		PropagateRequestCancellation: true,
	}
	if a.events != nil {
		hopts.EventStore = a.events
	}
	a.handler = mcp.NewStreamableHTTPHandler(a.sdkServer, hopts)
	if sa, ok := a.kind.(*SessionActor); ok && a.cfg.servers != nil {
		a.handler = sessionHandler{sa, a.handler}
	}
	if o.stateless {
		// The principal actor owns its principal's tasks (package tasks).
		// Rounds count as requests in flight: an actor running some is
		// not idle (memory pressure passivates idle actors first).
		la := a.live
		o := tasks.Options{Store: a.cfg.taskStore(), Owner: a.id, Runner: a.node + "/" + activationID(), Logger: a.logger,
			TTL: a.cfg.TaskTTL, Lease: a.cfg.TaskLease, Bind: a.bindRound, Authorize: a.authorizeRound, Principal: a.principalOf, Valid: a.roundValid, MaxBody: a.cfg.MaxBodyBytes,
			Rounds: func(d int) { la.flight(false, int32(d)) }}
		if d := a.cfg.Stores; d != nil && d.UserTasks != nil && d.MaxTasksPerUser > 0 {
			// A user's live tasks, all clients together (--max-tasks-per-user).
			o.Live, o.MaxPerUser, o.User = d.UserTasks, d.MaxTasksPerUser, a.userOf
		}
		a.tasks = tasks.New(a.handler, o)
		a.handler = a.tasks
	}
	a.stayIdle(ctx)
}

// receive handles the messages every actor kind takes the same way; a
// kind's Receive handles the others and passes these on.
func (a *core) receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *envelope.Envelope:
		a.control(ctx, m)
	case requestDone:
		a.requestDone(ctx, m.id)
	case *clientSwitch:
		a.commitSwitch(m)
	case toolsChanged:
		a.refreshTools()
	case *drainActor:
		a.drain(ctx, m)
	case drainDeadline:
		for _, f := range a.flights {
			f.cut.Store(true)
			f.drain()
		}
	case drained:
		if a.leaving && !m.ok && a.life == lifeFlushing {
			a.stay(ctx)
			return
		}
		a.to(lifeStopping)
		a.keepEvents()
		if a.leaving {
			a.handOver(ctx)
			return
		}
		a.stop(ctx)
	case endedNow:
		a.stop(ctx)
	case stopNow:
		ctx.Stop(ctx.Self())
	case sweepTasks:
		a.sweepTasks(ctx)
	case tasksSwept:
		a.tasksSwept(ctx, m)
	case idleTimeout:
		a.idleTimeout(ctx)
	case passivateNow:
		a.idle(ctx)
	case *actor.Terminated:
		a.edgeGone(m.Who)
	case *actor.Stopping:
		a.answerHeld(ctx, unavailable) // (stopped before it handed over: fenced)
		a.stopping()
	case *actor.Stopped:
		a.cfg.Local.remove(ctx.Self(), a.id)
		if a.idleTimer != nil {
			a.idleTimer.Stop()
		}
		if a.drainTimer != nil {
			a.drainTimer.Stop()
		}
		if a.sweepTimer != nil {
			a.sweepTimer.Stop()
		}
	}
}

// control takes an edge's word on its requests (acknowledged parts, a
// cancellation) or an operator's end of the session.
func (a *core) control(ctx actor.Context, m *envelope.Envelope) {
	switch {
	case m.GetAck() != nil:
		if f := a.flights[m.GetAck().RequestId]; f != nil {
			f.window.ack(m.GetAck().Seq)
		}
	case m.GetCancel() != nil:
		id := m.GetCancel().RequestId
		if f := a.flights[id]; f != nil {
			if m.GetCancel().GetResume() {
				f.resuming.Store(true)
			} else {
				f.left.Store(true)
			}
			f.cancel()
		} else {
			// Held while the session moves (refuseMoving): nobody reads
			// its answer, and its client, which saw nothing of it, cannot
			// resume it; a move given up would run it (stay).
			dropQueued(&a.held, id)
		}
	case m.GetStop() != nil:
		// An operator ended the session: its state is already gone from
		// the store; what is left here goes now.
		a.logger.Info("session stopped by an operator", "reason", m.GetStop().Reason)
		a.to(lifeEnded)
		a.keepEvents()
		a.stop(ctx)
	}
}

// requestDone forgets a request that ended, and settles the actor.
func (a *core) requestDone(ctx actor.Context, id string) {
	if f := a.flights[id]; f != nil {
		a.live.flight(f.get, -1)
		a.lastRequest = time.Now()
		a.calls.releaseLater(f)
	}
	delete(a.flights, id)
	if len(a.flights) == 0 {
		a.flights = nil // a map keeps its room once grown
	}
	if a.moving {
		a.follow(ctx)
	}
	a.settle(ctx)
}

// edgeGone cancels the requests an edge's reply router forwarded, when its
// node went away: nobody is left to read their answers, and a stream a
// window ahead would wait forever.
func (a *core) edgeGone(edge *actor.PID) {
	k := keyOf(edge)
	a.edges = slices.DeleteFunc(a.edges, func(e string) bool { return e == k })
	for _, f := range a.flights {
		if f.replyTo.Equal(edge) {
			// The edge may be alive, only the link to it lost: a client
			// that takes JSON alone is still waiting there, and its edge
			// resumes the stream (it cancels the calls itself if it
			// cannot). Its calls run on, as an event stream client's do.
			// Not a flight whose edge already said its client left
			// (flight.left): the link lost after that word changes
			// nothing of it, and its calls are cancelled (cancelLeft).
			if !f.left.Load() {
				f.resuming.Store(true)
			}
			f.cancel()
		}
	}
}

// keepEvents keeps the session's events in the store when the actor stops:
// the session goes on (elsewhere, or until an operator's end removed them).
func (a *core) keepEvents() {
	if a.events != nil {
		a.events.keep.Store(true)
	}
}

// idle passivates an actor that had no request for its idle timeout.
func (a *core) idle(ctx actor.Context) {
	if len(a.flights) > 0 {
		return
	}
	if a.tasks != nil && a.tasks.Running() > 0 {
		// It runs tasks' rounds: it stays until they end.
		a.stayIdle(ctx)
		return
	}
	if n := a.calls.count(); n > 0 && ctx.Message() != (passivateNow{}) && a.sessionLives() {
		// Calls whose clients left (closed their streams, which on the
		// 2025-11-25 protocol does not cancel them: they may resume) run
		// on: passivation would end them, and what they would answer. They
		// keep the actor while the session lives; memory pressure does not
		// wait for them.
		a.logger.Info("idle actor kept: calls whose clients left still run", "running", n)
		a.stayIdle(ctx)
		return
	}
	if !a.persist.Load().clean() || (a.events != nil && !a.events.clean()) {
		// The snapshot has changes not written yet (Redis is down):
		// this actor is all there is of them, so it stays.
		a.logger.Info("idle actor kept: its snapshot is not written yet")
		a.stayIdle(ctx) // protoactor cancelled it
		return
	}
	a.logger.Info("passivating idle actor", "idle", a.cfg.IdleTimeout, "memory_pressure", ctx.Message() == passivateNow{})
	a.to(lifeStopping)
	a.stop(ctx)
}

// stopping lets go of what the actor holds as it stops, whoever stopped it.
func (a *core) stopping() {
	if !a.stopQueued {
		// Not one of ours (passivation, drain, fencing, an operator):
		// protoactor stops activations whose placement moved to
		// another member when membership changes.
		a.logger.Info("actor stopped by the cluster: its placement moved", "in_flight", len(a.flights))
	}
	a.stopQueued = true
	a.to(lifeStopping)
	for _, f := range a.flights {
		f.cancel()
	}
	a.calls.stop() // (before the sessions' close, which waits for them)
	// The actor stops, the session goes on (unless it already ended):
	// closing the SDK's sessions must not delete their events.
	a.keepEvents()
	for s := range a.ownSessions() {
		s.Close()
	}
	if sh := a.shared.Load(); sh != nil {
		a.cfg.servers.release(a, sh)
	}
	a.persist.Load().close()
	if a.events != nil {
		a.events.close()
	}
	if a.tasks != nil {
		// Their tasks fail, retryably: nobody runs them any more.
		a.tasks.Close()
	}
}

// standaloneFrom makes a GET without Last-Event-ID (a client opening the
// session's standalone stream anew) one that resumes the standalone stream
// from the last event a GET was written, of this activation or of an
// earlier one (sessionEvents.noteSent), or, with none, from before the
// first event kept, so that the go-sdk replays to it what no stream
// carried and nothing twice, and numbers the next event as the store does.
// The go-sdk would replay the stream's whole history to it (events a
// client was sent already, on an earlier GET: the revision forbids
// replaying across streams), and refuse it 400, for the session's life,
// once the stream's first event was dropped (a bound) or the stream
// expired (--events-ttl without a notification): the store opens the
// stream (again, if it expired) and says where it starts and ends. It
// reports whether the request goes on; if not, it was answered "not
// served" (the store is away, or a newer activation owns the session: the
// edge sends it again).
func (a *core) standaloneFrom(ctx context.Context, hr *http.Request, w *relayWriter, req *envelope.Request, f *flight) bool {
	first, last, sent, err := a.events.lastOfStandalone(ctx, a.id)
	if err != nil {
		if errors.Is(err, state.ErrFenced) && f != nil {
			f.moved.Store(true)
		} else {
			a.logger.Warn("standalone stream not opened in the store: GET refused, to be retried", "err", err)
		}
		w.unserved(req.Id)
		return false
	}
	// From the last event a GET was written, or from before the first
	// kept: what no stream carried (sent while no GET was open, on this
	// activation or an earlier one) is sent, and nothing a GET was written
	// is sent twice.
	from := min(max(sent, first-1), last)
	if from >= 0 {
		hr.Header.Set("Last-Event-ID", "_"+strconv.Itoa(from))
	}
	return true
}

// noteStandaloneSent notes the index of a standalone stream event (id
// "_N") written to a GET (sessionEvents.noteSent).
func (a *core) noteStandaloneSent(event []byte) {
	for line := range bytes.Lines(event) {
		if bytes.HasPrefix(line, []byte("data:")) {
			return
		}
		id, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("id: _"))
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(string(id)); err == nil {
			a.events.noteSent(a.id, n)
			return
		}
	}
}

// replyAddress is where the answer to a forwarded request goes: nil, after
// a warning, for a request that names none.
func replyAddress(ctx actor.Context, logger *slog.Logger, req *envelope.Request) *actor.PID {
	replyTo := ctx.Sender()
	if replyTo == nil {
		logger.Warn("request without a reply address dropped", "request", req.Id)
	}
	return replyTo
}

// flight is one request being served.
type flight struct {
	cancel  context.CancelFunc
	window  *window
	replyTo *actor.PID    // the edge's reply router
	rpc     *rpcbody.Body // the edge's reading of a POST's body
	get     bool          // a GET: a stream that never ends by itself
	// jsonAlone says its client takes its answer as JSON alone
	// (Request.JsonAlone): leaving, it cannot resume it (cancelLeft).
	jsonAlone bool
	client    string              // the client_id of the request's token
	scopes    map[string][]string // the tools' scopes when it was taken (served.scopes)
	from      string              // the node that forwarded it, if it would host the session (Request.From)
	moved     atomic.Bool         // refused: a newer activation owns the session
	// ran says one of its messages was handed to its handler (ready).
	ran atomic.Bool
	// accepted, if set, is called once the request is accepted: the go-sdk
	// answers it with a success status (relayWriter.accepted), or hands
	// one of its messages to its handler (ready). It makes the switch of
	// client the request's admission left to make (admit).
	accepted func()
	// answered is set when the answer to the last of its requests was
	// appended to its stream: the flush that follows is the stream's
	// last event, which travels with the response's end (relayWriter).
	answered atomic.Bool
	// untaken says the go-sdk refused its POST with an error status of
	// its own, which it does before it takes any of the POST's messages
	// (a request whose id is in flight, a body it cannot read): none of
	// them is its client's to cancel (cancelLeft).
	untaken atomic.Bool
	// resuming says its edge let its response go to resume its event
	// stream itself (Cancel.Resume: the stream went silent there), or the
	// link to the edge was lost (edgeGone), its client perhaps still
	// waiting for the answer there: the client did not leave (cancelLeft).
	resuming atomic.Bool
	// left says its edge cancelled it because its client left (a Cancel
	// without Resume). The link to that edge lost afterwards (edgeGone)
	// does not make it resuming: the client is gone either way.
	left  atomic.Bool
	drain context.CancelFunc // ends the handler, not the response

	// cancels says its client cancelled one of its requests at least
	// (peerCancelled).
	cancels atomic.Bool
	// cut says a drain's deadline cut its handler (drainDeadline);
	// answerSent, that a stateless request's answer went out, its own or,
	// once cut, "request interrupted" (interruptedAnswer).
	cut, answerSent atomic.Bool
	// listen is the id of a principal actor's subscriptions/listen
	// (2026-07-28): its answer is the server ending the subscription
	// (interruptedAnswer). acked says its acknowledgement went out;
	// stopping, that a drain ended it.
	listen          json.RawMessage
	acked, stopping atomic.Bool

	// reserved are the places its requests hold among the session's
	// running calls until their handlers start (runningCalls; its mu).
	reserved int

	mu     sync.Mutex
	stream string // the event stream its requests were journalled on
	// peerCancelled are the ids of its requests the client cancelled
	// (notifications/cancelled; notePeerCancels), canonical.
	peerCancelled map[string]bool
}

// answersCancelled says whether the SSE event p answers a request of f's
// that its client cancelled (looked at only once the client cancelled one).
func (f *flight) answersCancelled(p []byte) bool {
	if !f.cancels.Load() {
		return false
	}
	id := eventAnswerID(p)
	if id == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peerCancelled[string(id)]
}

// interruptedAnswer is what a stateless request's answer becomes (nil:
// the answer itself, or any other event). It notes that an answer went out:
// when the SDK lets go of the stream before the handler's answer, serveHTTP
// writes the answer itself.
//   - A listen's result is the server ending the subscription (the client
//     ends one by closing its stream): the 2026-07-28 cancellation utility
//     says a server MUST then send notifications/cancelled naming the
//     listen, so that goes first (sse.ListenEnded). The result is the
//     go-sdk's (its handler's context ended: a drain) or the tasks layer's
//     (every task it listened to ended). An error answering a listen
//     refused it: no subscription ended. Its acknowledgement is noted as
//     it goes (what the handler writes once a drain cut the listen before
//     its acknowledgement is dropped: listenRefused).
//   - Once a drain's deadline cut its handler, the go-sdk answers with what
//     the cancelled handler returned (an error of code 0, "context
//     canceled"), where a session's client, resuming on the next
//     activation, gets the journal's "request interrupted". A stateless
//     request has no journal and no resumption: an answer written once it
//     was cut is that one, retryable, whether or not the tool ended first;
//     one written before goes as it is.
func (f *flight) interruptedAnswer(p []byte) []byte {
	id := eventAnswerID(p)
	if id == nil {
		if f.listen != nil && !f.acked.Load() && sse.AcknowledgesListen(p) {
			f.acked.Store(true)
		}
		return nil
	}
	f.answerSent.Store(true)
	switch {
	case f.listen != nil:
		if eventIsResult(p) {
			return append(sse.Message(sse.ListenCancelled(f.listen, f.listenEndReason())), p...)
		}
	case f.cut.Load():
		return interruptedEvent(id)
	}
	return nil
}

// listenRefused is the relay's refused for a listen: a drain cut it before
// its acknowledgement (which MUST come first), so no subscription began.
// What the handler writes then (the SDK's error for the cancelled handler)
// is dropped, before it starts the response, and serveHTTP answers the
// listen "not served": the edge sends it again, to a node that serves.
func (f *flight) listenRefused() bool {
	return f.moved.Load() || f.stopping.Load() && !f.acked.Load()
}

// listenEndReason is the reason of the notifications/cancelled that ends
// the listen f.
func (f *flight) listenEndReason() string {
	if f.stopping.Load() {
		return "the node serving the subscription is stopping; listen again to go on"
	}
	return "the server ended the subscription"
}

// interruptedEvent is the SSE event answering a stateless request id
// "request interrupted" (no session: the journal's message names one).
func interruptedEvent(id json.RawMessage) []byte {
	e := rpcerr.Interruption()
	e.Message = "request interrupted: the node serving it stopped before answering; it may or may not have taken effect, retry if that is safe"
	return sse.Message(e.Response(id))
}

// notePeerCancels marks, before the SDK reads the request, the requests in
// flight that a notifications/cancelled of body names. The MCP cancellation
// utility says a receiver should not answer a cancelled request (its client
// has forgotten it: the TypeScript SDK reports "a response for an unknown
// message ID"); the go-sdk stops the handler and answers anyway, with what
// the handler returned (an error of code 0 for a context's, or a tool's
// result) (modelcontextprotocol/go-sdk#1235, #1259), so that answer is
// dropped on its way out (relayWriter.Write). It is still journalled, as
// every answer is. Runs in the actor's turn, which owns a.flights, once the
// request, own, is admitted and in flight itself: a 2025-03-26 batch may
// cancel a call of its own, one that comes before the cancel (a request is
// cancelled only once sent). The SDK sees the notification only after. Keys
// are matched as the SDK reads them, case and all.
//
// Only a session's requests are matched: a principal actor serves every
// stateless request of its principal, each a session of its own, whose ids
// its clients reuse (a cancel there names none of the others), and a
// 2026-07-28 client cancels by closing its stream.
func (a *core) notePeerCancels(own *flight, body []byte) {
	rb := own.rpc
	if _, session := a.kind.(*SessionActor); !session || rb == nil {
		return
	}
	if !slices.ContainsFunc(rb.Messages, func(m rpcbody.Message) bool { return m.Method == "notifications/cancelled" }) {
		return
	}
	var ns []map[string]json.RawMessage
	if rb.Batch {
		json.Unmarshal(body, &ns)
	} else {
		ns = make([]map[string]json.RawMessage, 1)
		json.Unmarshal(body, &ns[0])
	}
	for i, n := range ns {
		var method string
		var params map[string]json.RawMessage
		var requestID any
		if json.Unmarshal(n["method"], &method) != nil || method != "notifications/cancelled" ||
			json.Unmarshal(n["params"], &params) != nil || json.Unmarshal(params["requestId"], &requestID) != nil {
			continue
		}
		id := canonicalID(requestID)
		if id == nil {
			continue
		}
		for _, f := range a.flights {
			ids := f.rpc.IDs()
			if f == own {
				ids = nil
				if len(ns) == len(rb.Messages) {
					ids = (&rpcbody.Body{Messages: rb.Messages[:i]}).IDs()
				}
			}
			if slices.ContainsFunc(ids, func(r json.RawMessage) bool { return bytes.Equal(r, id) }) {
				f.mu.Lock()
				if f.peerCancelled == nil {
					f.peerCancelled = map[string]bool{}
				}
				f.peerCancelled[string(id)] = true
				f.mu.Unlock()
				f.cancels.Store(true)
			}
		}
	}
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

func (a *core) reply(ctx actor.Context, to *actor.PID, p *envelope.ResponsePart) {
	ctx.ActorSystem().Root.Send(to, &envelope.Envelope{Body: &envelope.Envelope_Part{Part: p}})
}

// serveFrom starts one request on a goroutine of its own (a worker's, see
// requestWorkers), answering replyTo.
func (a *core) serveFrom(ctx actor.Context, replyTo *actor.PID, req *envelope.Request) {
	root := ctx.ActorSystem().Root
	send := func(p *envelope.ResponsePart) {
		root.Send(replyTo, &envelope.Envelope{Body: &envelope.Envelope_Part{Part: p}})
	}
	// The tools this request sees are the node's current ones, even if
	// the word that they changed is still on its way.
	a.refreshTools()
	switch a.life {
	case lifeServing:
	case lifeEnded:
		send(notFound(req.Id))
		return
	default:
		if a.leaving {
			a.refuseMoving(replyTo, req, send)
			return
		}
		send(unavailable(req.Id))
		return
	}
	ok, refusal, sw := a.admit(req)
	if !ok {
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
	// From here on, a refusal leaves sw unmade: the switch of client
	// is made once the request is accepted (flight.accepted).
	rb, err := reading(req)
	if err != nil {
		send(badRequest(req.Id, err.Error()))
		return
	}
	if refusal := a.checkScopes(req, rb); refusal != nil {
		send(refusal)
		return
	}
	if refusal := a.kind.checkLimits(req, rb); refusal != nil {
		send(refusal)
		return
	}
	if a.tasks != nil && !a.swept {
		// The principal is known now: take over what its tasks' runners
		// left (their node died, their activation stopped).
		a.swept = true
		a.sweepTasks(ctx)
	}
	a.persist.Load().touch()
	// rctx is the response's (the edge's) context; hctx, the handler's,
	// also ends when a drain cuts the request, leaving the response open for
	// its retry hint.
	rctx, cancel := context.WithCancel(context.Background())
	f := &flight{cancel: cancel, window: newWindow(uint64(req.Window)), replyTo: replyTo, rpc: rb, get: req.Method == http.MethodGet, scopes: a.scopes, from: req.From}
	_, principal := a.kind.(*PrincipalActor)
	// 2026-07-28 ends a request whose client left by itself (the go-sdk's
	// PropagateRequestCancellation).
	f.jsonAlone = req.JsonAlone && !principal && req.Method == http.MethodPost
	if principal {
		f.listen = rb.Listen()
	}
	// Admitted requests count towards a move, the others not (follow.go);
	// one served where it arrived, between, cancels a move.
	a.moving = a.cfg.Stores != nil && a.cfg.Stores.Shared && a.trail.note(req.From)
	if req.Principal != nil {
		f.client = req.Principal.ClientId
	}
	self := ctx.Self()
	if sw != nil && req.Method != http.MethodDelete {
		// Sent once, as the request is accepted: the actor makes the
		// switch in its turn (commitSwitch), before any request the
		// client sends once it has the answer. (A DELETE ends the
		// session: taking it first would only write a snapshot its
		// end removed.)
		f.accepted = sync.OnceFunc(func() { root.Send(self, sw) })
	}
	hctx, drain := context.WithCancel(context.WithValue(rctx, flightKey{}, f))
	f.drain = drain
	if a.flights == nil {
		a.flights = map[string]*flight{}
	}
	a.flights[req.Id] = f
	if rb != nil && req.Method == http.MethodPost {
		if n := rb.Requests(); n > 0 {
			a.calls.reserve(f, n)
		}
	}
	// After f is in flight: a batch may cancel a call of its own.
	a.notePeerCancels(f, req.Body)
	a.live.flight(f.get, 1)
	a.lastRequest = time.Now()
	a.watchEdge(ctx, replyTo)
	a.idleSince = time.Time{} // not idle while it serves
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
		w.refused = f.moved.Load
		w.answered = f.answered.Load
		w.accepted = f.accepted
		w.cancelled = f.answersCancelled
		if f.get && a.events != nil {
			w.wrote = a.noteStandaloneSent
		}
		if principal {
			w.replaced = f.interruptedAnswer
			if f.listen != nil {
				w.refused = f.listenRefused
			}
		}
		w.hold = a.cfg.PartDelay
		if debug {
			w.onStream = func() {
				a.logger.Debug("stream open", "method", req.Method, "request", req.Id)
			}
		}
		w.startKeepAlive(time.Duration(req.KeepaliveMs)*time.Millisecond, f.get)
		a.serveHTTP(hctx, w, req)
		if f.jsonAlone && rctx.Err() != nil && !f.answered.Load() && !f.untaken.Load() && !f.resuming.Load() {
			a.cancelLeft(req, f)
		}
		if a.events != nil {
			a.events.finish(a.id, f, hctx.Err() == nil)
			if f.moved.Load() {
				// Refused, and answered so: now the activation stops.
				a.events.fence()
			}
		}
	})
}

// cancelLeft cancels, for a client that takes JSON alone and left before
// its answer (its edge cancelled f, or went away; not when the edge let f
// go to resume its stream itself: flight.resuming), the requests of req, as
// the client would with notifications/cancelled: on the 2025-11-25
// protocol a client that closes its stream does not cancel its requests,
// since it may resume the stream, but one that takes JSON alone cannot, and
// its calls would run on for nobody, holding their places among the
// session's running calls. Sent once the go-sdk's handler of req returned,
// which it does only after it handed req's messages to its session: the
// go-sdk reads a session's messages in order, so the cancellation finds
// the request it names, however early the client left. (An id the go-sdk
// no longer runs is ignored.) Not sent when the go-sdk refused req
// (flight.untaken): an id it refused, as one in flight, would cancel the
// request in flight.
//
// Nor for an initialize (a POST without the session's id, which its client
// never learnt): MCP forbids cancelling one, the go-sdk ends a session
// whose initialize it did not answer, and a notification without the id
// would have the go-sdk connect another session of the same id for it.
func (a *core) cancelLeft(req *envelope.Request, f *flight) {
	if !hasHeader(req, "Mcp-Session-Id") {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), saveWait)
	defer cancel()
	for _, id := range f.rpc.IDs() {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://pingmcp"+req.Path, bytes.NewReader(
			[]byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`+string(id)+`,"reason":"the client left before its answer, which it takes as JSON alone"}}`)))
		if err != nil {
			return
		}
		envelope.ToHTTP(req.Headers, hr.Header)
		hr.Header.Set("Content-Type", "application/json")
		rec := capture.New()
		a.handler.ServeHTTP(rec, hr)
		// (404: the session is gone or closing, as when the actor stops,
		// which ends its calls itself.)
		if st := rec.Status(); st != http.StatusAccepted && st != http.StatusNotFound {
			a.logger.Warn("could not cancel the request of a client that left", "request", req.Id, "status", st)
		}
	}
}

// serveHTTP runs one request through the MCP handler. A panic here (the
// handler's, not a tool's: those are caught by recoverPanics) ends this
// request with a 500 and leaves the actor serving.
func (a *core) serveHTTP(ctx context.Context, w *relayWriter, req *envelope.Request) {
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
	f, _ := ctx.Value(flightKey{}).(*flight)
	if f != nil {
		rb = f.rpc
	}
	hr, end := a.observe(hr, req, rb)
	defer end(w)
	fresh := req.Method == http.MethodGet && a.events != nil && hr.Header.Get("Mcp-Session-Id") != "" && len(hr.Header.Values("Last-Event-ID")) == 0
	if req.Method == http.MethodDelete {
		// The go-sdk's close of the session waits for its handlers: a
		// call whose client left, waiting for an elicitation's answer,
		// would hold the DELETE, and the actor, for good.
		a.calls.cancelAll()
	}
	for try := 1; ; try++ {
		if fresh && !a.standaloneFrom(ctx, hr, w, req, f) {
			w.finish()
			return
		}
		// The SDK keeps the context of a request that creates a session
		// for the session's life: it gets one it lets go of (releasable).
		rctx := releasing(hr.Context())
		a.handler.ServeHTTP(w, hr.WithContext(rctx))
		rctx.release()
		// A fresh GET's replay starts at the first event kept, which an
		// event appended since may have dropped (a bound): the store is
		// asked again.
		if !fresh || try == 3 || !w.replayRefused() {
			break
		}
		hr.Header.Del("Last-Event-ID")
	}
	if f != nil {
		// Before the go-sdk's answer is rewritten below.
		f.untaken.Store(w.errorStatus())
	}
	if !w.methodNotFound(rb) {
		w.plainErrors(rb)
	}
	if req.Method == http.MethodDelete && a.events != nil && a.events.unended.Load() {
		// The go-sdk answered 204 whatever its close of the session met.
		h := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}
		w.replace(http.StatusServiceUnavailable, h, rpcerr.New(rpcerr.InternalError, "the session's store could not be reached: the session was not ended; send the DELETE again").Body(nil))
	}
	if w.unservedIfCut(req.Id) {
		a.logger.Info("request cut before it was dispatched; the edge sends it again", "request", req.Id)
	}
	if f != nil && f.moved.Load() {
		// Nothing of it ran: the edge sends it again, and the cluster
		// finds it the newer activation. Else the client is told.
		if f.ran.Load() || !w.unserved(req.Id) {
			h := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}
			w.replace(http.StatusServiceUnavailable, h, rpcerr.Replaced().Body(f.rpc.FirstID()))
		}
	}
	if ctx.Err() != nil && strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		switch {
		case f != nil && f.listen != nil:
			// A listen ended by a drain, its answer not sent (the SDK
			// lets go of the stream when its handler's context ends):
			// the subscription's end, as interruptedAnswer sends it,
			// once the subscription began. Cut before its
			// acknowledgement, which comes first or not at all, it is
			// answered "not served" when nothing went out yet: the edge
			// sends it again, to a node that serves.
			switch {
			case f.answerSent.Load():
			case f.acked.Load():
				w.Write(sse.ListenEnded(f.listen, f.listenEndReason()))
			default:
				w.unserved(req.Id)
			}
		case f != nil && w.replaced != nil && f.cut.Load() && !f.answerSent.Load():
			// A stateless request cut by a drain, no answer sent: it has
			// no journal to be answered from later.
			w.Write(interruptedEvent(f.rpc.FirstID()))
			w.Write([]byte(sse.RetryHint))
		default:
			// Cut by a drain: tell the client when to reconnect.
			w.Write([]byte(sse.RetryHint))
		}
	}
	w.finish()
}

// watchEdge watches the reply router of an edge once, so that the requests
// it forwarded are cancelled if its node goes away.
func (a *core) watchEdge(ctx actor.Context, edge *actor.PID) {
	if k := keyOf(edge); !slices.Contains(a.edges, k) {
		a.edges = append(a.edges, k)
		ctx.Watch(edge)
	}
}

func keyOf(pid *actor.PID) string { return pid.Address + "/" + pid.Id }

// badRequest refuses a request before the MCP handler sees it.
func badRequest(requestID, msg string) *envelope.ResponsePart {
	return errorPart(requestID, http.StatusBadRequest, nil, rpcerr.New(rpcerr.InvalidRequest, msg))
}

// settle decides, once no request is in flight, whether the actor stays:
// a draining one writes what it keeps and stops; a serving one is its
// kind's to decide (settled).
func (a *core) settle(ctx actor.Context) {
	if len(a.flights) > 0 {
		return
	}
	switch a.life {
	case lifeDraining:
		a.finishDrain(ctx)
	case lifeServing:
		a.kind.settled(ctx)
	}
}

// sessionLives says whether the session's idle timeout (the stores'
// SessionTTL) has not passed since its last request here; for sessions
// that never end, leftCallsKeep: a call waiting for an answer that never
// comes does not hold its actor for the node's life.
func (a *core) sessionLives() bool {
	ttl := time.Duration(0)
	if a.cfg.Stores != nil {
		ttl = a.cfg.Stores.SessionTTL
	}
	if ttl <= 0 {
		ttl = leftCallsKeep
	}
	return time.Since(a.lastRequest) < ttl
}

// leftCallsKeep is how long calls whose clients left keep an idle actor
// after its last request when sessions never end (--session-idle-timeout
// 0): the default session idle timeout.
var leftCallsKeep = 30 * time.Minute

// stayIdle lets an actor with nothing in flight wait for its idle timeout,
// from now.
//
// The actor's own timer, not protoactor's receive timeout, whose timer's
// function reads what the actor's goroutine writes as it sets it (a data
// race the race detector reports): this one's sends a message, and the
// actor, on its goroutine, finds whether it is still idle and since when.
// One timer an activation, reset, not made anew.
func (a *core) stayIdle(ctx actor.Context) {
	if a.cfg.IdleTimeout <= 0 {
		return
	}
	a.idleSince = time.Now()
	if a.idleTimer == nil {
		self, root := ctx.Self(), ctx.ActorSystem().Root
		a.idleTimer = time.AfterFunc(a.cfg.IdleTimeout, func() { root.Send(self, idleTimeout{}) })
		return
	}
	a.idleTimer.Reset(a.cfg.IdleTimeout)
}

// idleTimeout is the actor's idle timer's message (stayIdle).
type idleTimeout struct{}

// idleTimeout passivates the actor if it has been idle for its idle
// timeout (idle); a timer that fired for a wait since ended (a request came)
// or started again is waited out or ignored.
func (a *core) idleTimeout(ctx actor.Context) {
	if a.idleSince.IsZero() || len(a.flights) > 0 {
		return // serving: its last request's end waits anew (settle)
	}
	if a.life == lifeDraining || a.life == lifeFlushing {
		return // the drain ends it, once its state is handed over
	}
	if left := a.cfg.IdleTimeout - time.Since(a.idleSince); left > 0 {
		a.idleTimer.Reset(left)
		return
	}
	a.idleSince = time.Time{}
	a.idle(ctx)
}

// stop stops the actor once; its caller has moved it to the state it stops
// in (or found it there).
func (a *core) stop(ctx actor.Context) {
	if !a.stopQueued {
		a.stopQueued = true
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

// logLevels are the levels MCP defines (RFC 5424's names).
var logLevels = []mcp.LoggingLevel{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// errLogLevel answers a logging/setLevel of a level not in logLevels, as
// MCP says (invalid params); it does not repeat the level, which may be
// long.
var errLogLevel = rpcerr.New(rpcerr.InvalidParams, "invalid log level: want one of debug, info, notice, warning, error, critical, alert, emergency")

// errInitialized answers an initialize on a session that has one (the
// go-sdk's answer has no JSON-RPC code).
var errInitialized = rpcerr.New(rpcerr.InvalidRequest, "the session is initialized already: a new session starts with an initialize without Mcp-Session-Id")

// checkRequest refuses, before anything else sees them, what the go-sdk
// would take wrongly:
//   - a logging/setLevel whose level MCP does not define: the SDK would
//     take any string, write it whole to the node's log, and the session
//     would keep it (its snapshot, the admin API's view) up to the
//     snapshot's bound;
//   - a second initialize of a session: the SDK refuses it with an error
//     of code 0.
func checkRequest(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "logging/setLevel":
			if p, ok := req.GetParams().(*mcp.SetLoggingLevelParams); ok && !slices.Contains(logLevels, p.Level) {
				return nil, errLogLevel.SDK()
			}
		case "initialize":
			if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss.InitializeParams() != nil {
				return nil, errInitialized.SDK()
			}
		}
		return next(ctx, method, req)
	}
}

// refuseListen refuses subscriptions/listen on a session's server. The
// method is the 2026-07-28 protocol's (its stateless clients' GET stream);
// the go-sdk serves it on the session protocols too, as a POST that never
// ends, which pingmcp's session actors would neither count among the
// session's streams nor end at a drain, a token's expiry or a client
// switch as they do its GET streams. Its answer is -32601, as for any
// method a session's server lacks (the go-sdk words the message).
func refuseListen(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "subscriptions/listen" {
			return nil, rpcerr.UnknownMethod(method).SDK()
		}
		return next(ctx, method, req)
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

// processTasks keeps the tasks of actors configured without stores (tests,
// an embedded node): in this process, shared by its actors.
var processTasks = &taskstore.Memory{}

// taskStore is where the principal actors keep their tasks.
func (c Config) taskStore() taskstore.Store {
	if c.Stores != nil && c.Stores.Tasks != nil {
		return c.Stores.Tasks
	}
	return processTasks
}

// activationID is a random name of one activation, for the leases of the
// tasks it runs.
func activationID() string {
	b := make([]byte, 8)
	rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}

// bindRound lets a round of a task act for the caller of the request that
// started it (tasks.Options.Bind): the middleware finds that request's
// principal under a forwarded id of the round's own, for as long as the
// round runs, which may be long after the request was answered.
func (a *core) bindRound(from, round *http.Request) func() {
	v := a.requests.load(from.Header.Get(forwardedHeader))
	if v == nil {
		round.Header.Del(forwardedHeader)
		return func() {}
	}
	id := "task-round-" + activationID()
	a.requests.store(id, &served{principal: v.principal, scopes: v.scopes, resource: v.resource})
	round.Header.Set(forwardedHeader, id)
	return func() { a.requests.remove(id) }
}

// userOf names the user of request from (auth.Principal.UserKey), whose
// live tasks are counted together whatever client made them; "" for a
// request without an authenticated principal.
func (a *core) userOf(from *http.Request) string {
	s := a.requests.load(from.Header.Get(forwardedHeader))
	if s == nil || s.principal == nil || (s.principal.Issuer == "" && s.principal.Subject == "") {
		return ""
	}
	return auth.Principal{Issuer: s.principal.Issuer, Subject: s.principal.Subject}.UserKey()
}

// principalOf names the principal of request from (tasks.Options.Principal),
// all empty for a request without one.
func (a *core) principalOf(from *http.Request) (issuer, subject, clientID string) {
	s := a.requests.load(from.Header.Get(forwardedHeader))
	if s == nil || s.principal == nil {
		return "", "", ""
	}
	return s.principal.Issuer, s.principal.Subject, s.principal.ClientId
}

// authorizeRound refuses a round of a task (tasks.Options.Authorize) to the
// caller of request from whose token lacks a scope tool needs, as
// checkScopes refuses a tools/call: 403 insufficient_scope naming the
// scopes the token holds and those needed, so that the client steps up and
// sends the tasks/update (or tasks/get) again.
func (a *core) authorizeRound(from *http.Request, tool string) *tasks.Refusal {
	s := a.requests.load(from.Header.Get(forwardedHeader))
	if s == nil || s.principal == nil {
		return nil
	}
	if expired(s.principal) {
		// The sweep's token (the newest the actor saw) expired, or the
		// request's within the verifier's clock skew: nobody may be acted
		// for with it. The task waits for a request with a fresh one.
		aerr := &auth.Error{Code: auth.CodeInvalidToken, Description: "the token expired"}
		return &tasks.Refusal{Status: http.StatusUnauthorized,
			Header: http.Header{"Www-Authenticate": {auth.Challenge(aerr, auth.MetadataURL(s.resource), nil)}},
			Error:  rpcerr.New(rpcerr.InvalidRequest, aerr.Error()).SDK()}
	}
	needed := s.scopes[tool]
	missing := missingScopes(s.principal.Scopes, needed)
	if len(missing) == 0 {
		return nil
	}
	aerr := auth.InsufficientScope(s.principal.Scopes, needed, fmt.Sprintf("%s needs scope %s", tool, strings.Join(missing, " ")))
	return &tasks.Refusal{Status: http.StatusForbidden,
		Header: http.Header{"Www-Authenticate": {auth.Challenge(aerr, auth.MetadataURL(s.resource), aerr.Scopes)}},
		Error:  rpcerr.New(rpcerr.InvalidRequest, aerr.Error()).SDK()}
}

// expired says whether p's token has expired (a principal without an
// expiry never does).
func expired(p *envelope.Principal) bool {
	return p.ExpiresUnix > 0 && p.ExpiresUnix <= time.Now().Unix()
}

// roundValid says whether a round of a task may still act for the caller
// it was bound to (tasks.Options.Valid): not once that caller's token
// expired.
func (a *core) roundValid(round *http.Request) bool {
	s := a.requests.load(round.Header.Get(forwardedHeader))
	return s == nil || s.principal == nil || !expired(s.principal)
}

// revoked says whether an operator revoked p's user's tokens issued when
// p's was (its iat; a token without one counts as issued before any
// revocation, as at the edge): the store's word, read now, since the
// sweep acts with a token no request presented lately.
func (c Config) revoked(ctx context.Context, p *envelope.Principal) (bool, error) {
	if p == nil || c.Stores == nil || c.Stores.Revocations == nil {
		return false, nil
	}
	all, err := c.Stores.Revocations.All(ctx)
	if err != nil {
		return false, err
	}
	rev, ok := all[state.RevocationKey(p.Issuer, p.Subject)]
	if !ok || !time.Now().Before(rev.Until) {
		return false, nil
	}
	var claims struct {
		IssuedAt json.Number `json:"iat"`
	}
	json.Unmarshal(p.ClaimsJson, &claims)
	iat := time.Time{}
	if f, err := claims.IssuedAt.Float64(); err == nil && f > 0 {
		iat = time.Unix(int64(f), 0)
	}
	return !iat.After(rev.At), nil
}

// missingScopes are the needed scopes a token holding held lacks.
func missingScopes(held, needed []string) []string {
	var missing []string
	for _, s := range needed {
		if !slices.Contains(held, s) && !slices.Contains(missing, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// sweepTasks and tasksSwept are the principal actor's messages to itself
// about the sweep of its lapsed tasks.
type (
	sweepTasks struct{}
	tasksSwept struct {
		next time.Time
		err  error
		// revoked: the sweep did not act, the principal's user being
		// revoked; the next request (a fresh token) sweeps.
		revoked bool
	}
)

// sweepTimeout bounds one sweep of the store.
const sweepTimeout = 30 * time.Second

// sweepTasks takes over the principal's tasks whose runner was lost
// (tasks.Layer.Sweep), off the actor's goroutine, for the principal's
// newest token and the tools' current scopes: once when the activation
// takes its first request (the principal is known then), and again when
// the next lease of a task run elsewhere ends (a runner on a node that
// died just before). Cheap: one read of the principal's index of leases,
// and one of each task whose lease ran out. It does not keep an idle actor
// alive: a task left to lapse after it passivates is taken over at the
// principal's next request (this sweep) or read, or expires its TTL after
// its last change; it is never reported working forever.
func (a *core) sweepTasks(ctx actor.Context) {
	if a.tasks == nil || a.sweeping || a.life != lifeServing {
		return
	}
	p := a.credential // nil without authentication (--auth none)
	if p != nil && expired(p) {
		// Nobody to act for now: the next request, whose token the edge
		// verified, sweeps.
		a.swept = false
		return
	}
	a.sweeping = true
	id := "task-sweep-" + activationID()
	a.requests.store(id, &served{principal: p, scopes: a.scopes})
	sctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	from, _ := http.NewRequestWithContext(sctx, http.MethodPost, "http://pingmcp/mcp", nil) // a constant URL
	from.Header.Set(forwardedHeader, id)
	l, root, self, cfg := a.tasks, ctx.ActorSystem().Root, ctx.Self(), a.cfg
	go func() {
		defer cancel()
		defer a.requests.remove(id)
		// A revocation the edge saw refuses the user's requests; the
		// sweep has none, so it asks the store itself.
		if revoked, err := cfg.revoked(sctx, p); err != nil || revoked {
			root.Send(self, tasksSwept{err: err, revoked: revoked})
			return
		}
		next, err := l.Sweep(from)
		root.Send(self, tasksSwept{next: next, err: err})
	}()
}

// tasksSwept schedules the next sweep, if a lease is to end (or the store
// failed: a lease later).
func (a *core) tasksSwept(ctx actor.Context, m tasksSwept) {
	a.sweeping = false
	if m.revoked {
		a.logger.Info("tasks: lapsed tasks left: the principal's user is revoked")
		a.swept = false
		return
	}
	next := m.next
	if m.err != nil {
		a.logger.Warn("tasks: sweeping lapsed tasks", "err", m.err)
		next = time.Now().Add(cmp.Or(a.cfg.TaskLease, tasks.DefaultLease))
	}
	if next.IsZero() || a.life != lifeServing {
		return
	}
	if a.sweepTimer != nil {
		a.sweepTimer.Stop()
	}
	root, self := ctx.ActorSystem().Root, ctx.Self()
	// A little after the lease ends, so that its end has passed.
	a.sweepTimer = time.AfterFunc(time.Until(next)+50*time.Millisecond, func() { root.Send(self, sweepTasks{}) })
}

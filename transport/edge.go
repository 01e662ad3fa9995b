// Package transport is pingmcp's HTTP edge: the /mcp endpoint every client
// talks to, served by every node whose --role is both or edge, with the
// resource's protected-resource metadata (RFC 9728, metadata.go) and the
// /healthz and /readyz probes (health.go).
//
// The edge checks what can be checked without the session: Host, Origin,
// the method, the bearer token (verified by auth; refused with its
// challenge), the caller's rates and caps (limits.go), and the body, read
// once (internal/rpcbody) and bounded in size and batch length. It then
// decides which actor serves the request (the session's, by Mcp-Session-Id;
// a new one for an initialize; the principal's for the stateless 2026-07-28
// protocol), forwards it through the cluster with the body's reading, and
// relays the actor's response, flushing each part to the client as it
// arrives. The MCP protocol itself is the actor's business.
package transport

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/loopback"
	"github.com/pingmcp/pingmcp/internal/retry"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/internal/sse"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/telemetry"
)

// Header names of the MCP streamable HTTP transport.
const (
	headerSessionID       = "Mcp-Session-Id"
	headerProtocolVersion = "Mcp-Protocol-Version"
	// statelessVersion is the first protocol revision without sessions.
	statelessVersion = "2026-07-28"
	// batchlessVersion is the first protocol revision without JSON-RPC
	// batches; a request without Mcp-Protocol-Version is read as of
	// 2025-03-26, which has them.
	batchlessVersion = "2025-06-18"
)

// sessionVersions are the protocol revisions that have sessions. A request
// whose Mcp-Protocol-Version names 2026-07-28 goes to the stateless
// handler; one that names any other (a later one, or one nobody knows) the
// edge refuses with 2026-07-28's UnsupportedProtocolVersionError, listing
// protocolVersions, whatever its body says.
var sessionVersions = map[string]bool{"2024-11-05": true, "2025-03-26": true, "2025-06-18": true, "2025-11-25": true}

// protocolVersions are the revisions the edge serves, newest first.
var protocolVersions = []string{statelessVersion, "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// DefaultMaxBodyBytes bounds a request body when Options leaves it zero.
const DefaultMaxBodyBytes = 4 << 20

// Options configure an Edge. The zero value of each field is a safe default.
type Options struct {
	// Revoked, if set, refuses the tokens of users an operator revoked
	// (401 invalid_token).
	Revoked func(*auth.Token) bool
	// AllowedOrigins are origins (scheme://host[:port]) browsers may call
	// from. Same-origin requests, and loopback origins on a loopback
	// listener, are always allowed; any other Origin is refused with 403.
	AllowedOrigins []string
	// AllowedHosts are the Host values the edge answers to (DNS-rebinding
	// protection). Empty means: loopback names only on a loopback listener,
	// any Host otherwise.
	AllowedHosts []string
	// Loopback says the edge listens on loopback addresses only.
	Loopback bool
	// MaxBodyBytes limits a request body (413 beyond); DefaultMaxBodyBytes
	// when zero.
	MaxBodyBytes int64
	// Verifier authenticates callers by their bearer token; nil serves
	// without authentication (--auth none, loopback only).
	Verifier auth.Verifier
	// Resources are the MCP resource's URIs, one per Host the edge answers
	// to (metadata.go): a request for another Host is refused with 421, and
	// a request's challenges name the metadata of its own resource, whose
	// URI its token's aud must name. Nil answers any Host hostAllowed
	// admits, with challenges naming no metadata.
	Resources *Resources
	// Scopes are what a client should ask for (the challenge's scope).
	Scopes []string
	// Limits are the per-principal limits (limits.go); the zero value
	// limits nothing.
	Limits Limits
	// UserLimits are the same limits per user (issuer, subject), whatever
	// client the user's tokens come through; both must admit a request.
	UserLimits Limits
	// TrustedProxies are the peers whose X-Forwarded-For or Forwarded
	// header names the client (clientaddr.go), for the budget of refused
	// credentials; any other peer is the client itself.
	TrustedProxies []netip.Prefix
	// Budget is the budget of refused credentials per address (limits.go),
	// shared with the node's other listeners that verify tokens (the admin
	// API); nil: one of the edge's own, of Limits' Rate and Burst, with
	// TrustedProxies.
	Budget *TokenBudget
	// MaxBatch bounds the messages of a JSON-RPC batch (400 beyond);
	// DefaultMaxBatch when zero.
	MaxBatch int
	// MaxInitializeBytes bounds the params of an initialize, which its
	// session keeps for its life (400 beyond); DefaultMaxInitializeBytes
	// when zero.
	MaxInitializeBytes int
	// SSEKeepAlive is how long an open SSE stream may stay silent before
	// its actor writes a keep-alive comment on it (the forwarded request
	// says so); zero writes none. A stream from which nothing arrives for
	// silentIntervals times this is ended as dead, for the client to
	// resume.
	SSEKeepAlive time.Duration
	Logger       *slog.Logger
}

// Edge serves /mcp by forwarding each request to its actor.
type Edge struct {
	node    *cluster.Node
	opts    Options
	logger  *slog.Logger
	origins map[string]bool
	hosts   map[string]bool
	prefix  string // per-node prefix of request ids
	seq     atomic.Uint64
	limits  *limiter // per principal
	// noClientWarned says a token naming no client was warned of (once a
	// process).
	noClientWarned atomic.Bool
	users          *limiter // per user
	// budget is the budget of refused credentials per address block
	// (Options.Budget).
	budget *TokenBudget
	// refusedLog throttles the log lines of refused tokens; unverifiedLog
	// those of tokens not verified (the authorization server out of
	// reach), which anyone can cause too, and which spend no budget.
	refusedLog, unverifiedLog telemetry.Throttle
	// draining is cancelled when the node drains: the streams that never
	// end by themselves end then, a GET stream with a retry hint, since the
	// client resumes it through another node, a stateless listen with its
	// subscription's end, since its client listens again.
	draining    context.Context
	stopStreams context.CancelFunc
	// handler is the chain of stages NewEdge composes.
	handler http.Handler
}

// Drain ends the GET streams the edge relays, each with an SSE retry hint,
// and its stateless listens, each with its subscription's end, and keeps
// doing so for new ones; other POSTs are left to finish.
func (e *Edge) Drain() { e.stopStreams() }

// NewEdge returns the /mcp handler of a node.
func NewEdge(node *cluster.Node, opts Options) *Edge {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxInitializeBytes <= 0 {
		opts.MaxInitializeBytes = DefaultMaxInitializeBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Edge{node: node, opts: opts, logger: opts.Logger, origins: map[string]bool{}, hosts: map[string]bool{}}
	for _, o := range opts.AllowedOrigins {
		e.origins[strings.TrimSuffix(strings.ToLower(o), "/")] = true
	}
	for _, h := range opts.AllowedHosts {
		e.hosts[allowedHostKey(h)] = true
	}
	e.prefix = rand.Text()[:8]
	e.limits = newLimiter(opts.Limits)
	e.users = newLimiter(opts.UserLimits)
	e.budget = opts.Budget
	if e.budget == nil {
		e.budget = NewTokenBudget(opts.Limits, opts.TrustedProxies)
	}
	e.draining, e.stopStreams = context.WithCancel(context.Background())
	// A request meets the stages (checks.go) in this order, and the first
	// that refuses it answers, so the order decides which refusal a client
	// sees: a Host that is not allowed is 403 before one without a resource
	// is 421, a missing token 401 before any limit, and every request holds
	// its limits' slot while its body is read.
	e.handler = chain(http.HandlerFunc(e.forwardRequest),
		closeUnread,       // Connection: close until the body is read
		e.checkHost,       // 403: DNS rebinding
		e.checkResource,   // 421: no resource for this Host
		e.checkOrigin,     // 403; CORS headers
		e.checkMethod,     // 405; OPTIONS answered here
		checkHeaders,      // 400: a header value that is not UTF-8
		e.checkToken,      // 401, 403, 503; 429 by address, principal, user
		e.readBody,        // 413, 400
		e.parseBody,       // 400; the request's span starts here
		e.admitBatch,      // 429: a batch's other messages
		e.checkInitialize, // 400: initialize params beyond their limit
		e.routeRequest,    // 404, 400: which actor serves it
		checkSSEHeaders,   // 400: a session's Accept, Last-Event-ID the go-sdk refuses
	)
	return e
}

// chain wraps h in stages, the first outermost: a request meets them in
// the order given.
func chain(h http.Handler, stages ...func(http.Handler) http.Handler) http.Handler {
	for i := len(stages) - 1; i >= 0; i-- {
		h = stages[i](h)
	}
	return h
}

// ServeHTTP serves one /mcp request inside a server span ("mcp " + the
// JSON-RPC method; tracing.go). Its parent is the request's traceparent
// header, else the body's params._meta.traceparent; the forwarded request
// carries the span's own context to the actor. The span holds the method,
// the session id and the status: never a token, never the body.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tr := &edgeSpan{start: time.Now()}
	rw := telemetry.NewResponseWriter(w)
	defer tr.end(r, rw)
	e.handler.ServeHTTP(rw, withFacts(r, &facts{span: tr}))
}

// facts are what the edge's stages learn of one request, for the stages
// after them. Each field is set by one stage (named) and zero before it.
type facts struct {
	span      *edgeSpan           // ServeHTTP; begun by parseBody
	keepAlive []string            // closeUnread: the Keep-Alive hint it took off, for readBody
	resource  string              // checkResource: the resource r.Host names
	token     *auth.Token         // checkToken; nil without authentication
	principal *envelope.Principal // checkToken
	body      []byte              // readBody; nil but for a POST
	rpc       *rpcbody.Body       // parseBody: the body's one reading
	route     route               // routeRequest
}

type factsKey struct{}

// withFacts returns r carrying f for the stages.
func withFacts(r *http.Request, f *facts) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), factsKey{}, f))
}

// factsOf returns the facts ServeHTTP attached to r.
func factsOf(r *http.Request) *facts {
	return r.Context().Value(factsKey{}).(*facts)
}

// route is where a request goes.
type route struct {
	kind     string
	identity string
	// minted is set when the edge created the session id (an initialize).
	minted bool
}

// forwardRequest, the last stage, forwards a request every check admitted
// to its actor and relays the answer.
func (e *Edge) forwardRequest(w http.ResponseWriter, r *http.Request) {
	f := factsOf(r)
	rt, rb := f.route, f.rpc
	// Built only when a line is logged: most requests log nothing.
	logger := func() *slog.Logger { return e.logger.With(rt.kind, rt.identity) }

	req := &envelope.Request{
		Id:        e.requestID(),
		Method:    r.Method,
		Path:      r.URL.RequestURI(),
		Headers:   forwardHeaders(r.Header),
		Body:      f.body,
		Principal: f.principal,
		Rpc:       rb.Proto(),
		Resource:  f.resource,
		// Produced by the actor, not here: see actors.relayWriter.keepAlive.
		KeepaliveMs: uint32(e.opts.SSEKeepAlive.Milliseconds()),
	}
	// The actor's span is a child of this edge's: its context replaces
	// the client's in the forwarded headers.
	req.Headers = traceHeaders(r.Context(), req.Headers)
	ctx := r.Context()
	rel := relayedOf(r.Method, rb, rt.kind == cluster.PrincipalKind, f.token)
	if r.Method == http.MethodPost {
		// A client that takes one of a POST's two answers, or does not say
		// (accepts): the actor's go-sdk is asked with both, and a client
		// that takes JSON alone gets its answer as JSON.
		// A listen's stream never ends: taking JSON alone, it is refused
		// (the go-sdk's 400), as before.
		accept := r.Header.Values("Accept")
		if jsonOK, streamOK := accepts(accept); (jsonOK || streamOK) && !(jsonOK && streamOK && len(accept) > 0) && (streamOK || !rel.unbounded) {
			req.Headers = slices.DeleteFunc(req.Headers, func(h *envelope.Header) bool { return h.Name == "Accept" })
			req.Headers = append(req.Headers, &envelope.Header{Name: "Accept", Values: []string{acceptBoth}})
			if !streamOK {
				rel.json, rel.batch, rel.want = true, rb.Batch, rb.Requests()
				if !rb.Batch {
					rel.id = rb.FirstID()
				}
				rel.refuse = func(ask json.RawMessage) { e.refuseAsk(rt, req, ask, logger) }
				if rt.kind == cluster.SessionKind && !rt.minted {
					// Its stream cut before its answers, the edge resumes
					// it for the client (2026-07-28 has no resumption; an
					// initialize names no session to resume it on, and
					// MCP lets no client cancel it).
					rel.resume = func(ctx context.Context, lastID string) (*cluster.Stream, error) {
						return e.forward(ctx, rt, resumeOf(req, lastID, e.requestID()))
					}
					rel.cancel = func() { e.cancelLeft(rt, req, rb.IDs(), logger) }
				}
				// Leaving, it cannot resume its answer: its actor
				// cancels its requests then (actors.core.cancelLeft).
				req.JsonAlone = true
			}
		}
	}
	if rel.unbounded {
		// Ended when the node drains: it would never end by itself.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(e.draining, cancel)()
	}
	stream, err := e.forward(ctx, rt, req)
	if err != nil {
		e.forwardFailed(ctx, w, r, rb, err, logger)
		return
	}
	defer stream.Close()
	status := e.relay(ctx, w, stream, rel, logger)
	metrics.Requests.WithLabelValues(mcpMethod(r.Method, rb), strconv.Itoa(status)).Observe(time.Since(f.span.start).Seconds())
	// A stream cut by the drain ends with its hint; a listen that ended
	// without its answer, however it ended (the drain, its actor or the
	// link to it gone), with its subscription's end.
	if (e.draining.Err() != nil || rel.listen != nil) && r.Context().Err() == nil &&
		strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		if e.draining.Err() != nil {
			rel.end(w, "the node relaying the subscription is stopping; listen again to go on")
		} else {
			rel.end(w, "the node serving the subscription stopped; listen again to go on")
		}
		http.NewResponseController(w).Flush()
	}
	if e.logger.Enabled(r.Context(), slog.LevelDebug) {
		logger().Debug("mcp request", "method", r.Method, "status", status, "minted", rt.minted, "duration", time.Since(f.span.start))
	}
}

// forwardFailed answers a request that could not be forwarded (err), ctx
// being the forward's context (cancelled by a drain for a GET).
func (e *Edge) forwardFailed(ctx context.Context, w http.ResponseWriter, r *http.Request, rb *rpcbody.Body, err error, logger func() *slog.Logger) {
	switch {
	case errors.Is(err, cluster.ErrNoMember), errors.Is(err, cluster.ErrActorGone):
		// The actor went away before it answered (its node died, was
		// drained, or the session moved): the session lives on in its
		// snapshot, and the retry reaches its next activation.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, rb.FirstID(), rpcerr.New(rpcerr.InternalError, "no node can serve this request right now; retry"))
	case r.Context().Err() != nil:
		// The client went away; nobody is left to answer.
	case ctx.Err() != nil:
		// Drained before its actor answered.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, rb.FirstID(), rpcerr.New(rpcerr.InternalError, "this node is shutting down; retry"))
	default:
		logger().Error("forward request", "err", err)
		writeError(w, http.StatusBadGateway, rb.FirstID(), rpcerr.New(rpcerr.InternalError, "could not reach the session's node"))
	}
}

// bodyReadTimeout bounds the time a POST body may take to arrive.
const bodyReadTimeout = 30 * time.Second

// getRetryWindow is how long the edge keeps retrying a GET whose actor is
// gone or has no node: long enough for membership to notice a dead node and
// for the session to be activated elsewhere.
const getRetryWindow = 15 * time.Second

// forward sends req to its actor. A GET (a stream resumed with
// Last-Event-ID, or the standalone stream) has no effect but replay, so when
// its actor is gone or no node can take it yet, the edge retries it until
// the session is activated elsewhere: MCP clients give up a session whose
// resumption fails, while a moved session is the normal case here.
func (e *Edge) forward(ctx context.Context, rt route, req *envelope.Request) (*cluster.Stream, error) {
	stream, err := e.node.Forward(ctx, rt.kind, rt.identity, req)
	if req.Method != http.MethodGet {
		return stream, err
	}
	wait, cancel := context.WithTimeout(ctx, getRetryWindow)
	defer cancel()
	backoff := retry.Backoff{Min: 50 * time.Millisecond, Max: time.Second}
	for err != nil && (errors.Is(err, cluster.ErrActorGone) || errors.Is(err, cluster.ErrNoMember)) {
		if werr := backoff.Wait(wait); werr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			break // the window is spent: the last answer stands
		}
		stream, err = e.node.Forward(ctx, rt.kind, rt.identity, req)
	}
	return stream, err
}

// mcpMethod names a request for metrics: its JSON-RPC method (one of those
// MCP defines, else "other"), "batch", "response", or the HTTP method.
func mcpMethod(httpMethod string, rb *rpcbody.Body) string {
	switch {
	case httpMethod != http.MethodPost:
		return httpMethod
	case rb == nil:
		return "invalid"
	case rb.Batch:
		return "batch"
	case rb.First() == nil:
		return "response"
	}
	return telemetry.MethodName(rb.First().Method)
}

// silentIntervals is how many keep-alive intervals a stream may go without
// a part from its actor before the edge ends it as dead. More than one: a
// keep-alive is skipped while the handler is in the middle of an event or
// the edge a window behind, and parts take time to cross nodes.
const silentIntervals = 3

// Why the edge ends a stream itself (relay).
var (
	errStreamSilent = errors.New("nothing arrived from the session's actor for three keep-alive intervals")
	errTokenExpired = errors.New("the token that opened the stream expired")
	// errSilentResumed is errStreamSilent for a stream the edge resumes
	// itself (a JSON answer's: relayed.resume): its actor is told so with
	// the cancellation (cluster.ErrResuming), and does not cancel the
	// requests of a client that is still there (Request.JsonAlone).
	errSilentResumed = fmt.Errorf("%w, resumed by the edge: %w", errStreamSilent, cluster.ErrResuming)
)

// relayed is what relay needs to know of the request, and what it saw of
// the answer.
type relayed struct {
	// unbounded says the stream lasts as long as its client keeps it: the
	// GET stream, and a stateless subscriptions/listen (SEP-2575). Any
	// other stream is bounded by the request it answers.
	unbounded bool
	// listen is the id of a subscriptions/listen (rpcbody.Body.Listen);
	// acked, that its acknowledgement went through (saw); answered, that
	// its answer did; ended, that the edge ended it (end).
	listen                 json.RawMessage
	acked, answered, ended bool
	token                  *auth.Token // nil without authentication
	// json says the client takes a JSON answer alone (accepts): an event
	// stream answering it is sent as JSON (jsonAnswer), an array for a
	// batch, once it carried the answers to want requests; id is the
	// request's (a batch's: none) for an error; refuse answers a request
	// of the server's that the client cannot see.
	json, batch bool
	want        int
	id          json.RawMessage
	refuse      func(ask json.RawMessage)
	// resume, if set, resumes the event stream of a client that takes
	// JSON alone after the event lastID (a GET with Last-Event-ID), when
	// the stream ended before its answers: what its client would do,
	// could it.
	resume func(ctx context.Context, lastID string) (*cluster.Stream, error)
	// cancel cancels the requests of such a client that left while a
	// resumed stream relayed their answers (their actor knows nothing of
	// the client's leaving then: Request.JsonAlone is the POST's).
	cancel func()
}

// resumeOf is the GET that resumes the event stream of req, a POST, after
// the event lastID, forwarded as id: with req's principal, which the
// session's actor admitted already (Request.Continues: the session stays
// with the client it is used through, and the token it holds).
func resumeOf(req *envelope.Request, lastID, id string) *envelope.Request {
	hs := make([]*envelope.Header, 0, len(req.Headers)+1)
	for _, h := range req.Headers {
		switch http.CanonicalHeaderKey(h.Name) {
		case "Accept", "Content-Type", "Content-Length", "Last-Event-Id":
		default:
			hs = append(hs, h)
		}
	}
	hs = append(hs, &envelope.Header{Name: "Accept", Values: []string{"text/event-stream"}},
		&envelope.Header{Name: "Last-Event-ID", Values: []string{lastID}})
	return &envelope.Request{
		Id: id, Method: http.MethodGet, Path: req.Path, Headers: hs, Principal: req.Principal,
		Resource: req.Resource, KeepaliveMs: req.KeepaliveMs, Window: req.Window, Continues: true,
	}
}

// relayedOf is what relay is told of a request of method with body rb,
// stateless (2026-07-28: its principal's actor serves it) or not.
func relayedOf(method string, rb *rpcbody.Body, stateless bool, token *auth.Token) *relayed {
	rel := &relayed{token: token}
	var listen json.RawMessage
	if method == http.MethodPost {
		listen = rb.Listen()
	}
	rel.unbounded = method == http.MethodGet || listen != nil
	if stateless {
		// Only 2026-07-28 has listens: a session's actor answers one
		// -32601 at once (actors.refuseListen).
		rel.listen = listen
	}
	return rel
}

// listenAnswer begins the one answer a listen's stream carries: its end.
// Its notifications carry no id, and 2026-07-28 sends no request of the
// server's there.
var listenAnswer = []byte(`data: {"jsonrpc":"2.0","id":`)

// saw notes what a part's body, relayed to the client, says of a listen.
func (req *relayed) saw(body []byte) {
	if req.listen == nil {
		return
	}
	if !req.acked && sse.AcknowledgesListen(body) {
		req.acked = true
	}
	if !req.answered && bytes.Contains(body, listenAnswer) {
		req.answered = true
	}
}

// end ends an event stream the edge cuts, or that ended short: a listen
// with the end of its subscription (sse.ListenEnded), once, if it began
// (acknowledged) and its answer did not go through; any other stream with
// a retry hint.
func (req *relayed) end(w io.Writer, reason string) {
	switch {
	case req.listen == nil:
		io.WriteString(w, sse.RetryHint)
	case req.acked && !req.answered && !req.ended:
		w.Write(sse.ListenEnded(req.listen, reason))
		req.ended = true
	}
}

// relay writes each part of the actor's response to the client as it
// arrives, flushing after each, and returns the status sent.
//
// An event stream (a GET, or a POST answered with one) it also ends itself,
// with a retry hint, in two cases. The client reconnects; resuming with
// Last-Event-ID, it loses nothing, since the actor stores every event
// before it sends it, and a keep-alive comment carries no event id. A
// listen has nothing to resume: it ends with its subscription's end
// instead (relayed.end), and its client listens again.
//   - Nothing arrived from the actor for silentIntervals keep-alive
//     intervals: the path to the actor is dead (a node that vanished
//     without a word, a partition), even though no Terminated came.
//   - The token that opened an unbounded stream (the GET stream, a
//     subscriptions/listen) is no longer accepted (auth.Token.ValidUntil):
//     what the server sends there later was authorized by that token only,
//     and the client's reconnection presents a fresh one (it refreshes on
//     the 401). A stream that answers a request carries only that request's
//     messages, authorized when it was made, and ends with its answer: it is
//     left to finish, since ending it would lose that answer for clients
//     that resume without Last-Event-ID after a refresh (opening a fresh
//     GET stream after the 401).
func (e *Edge) relay(ctx context.Context, w http.ResponseWriter, s *cluster.Stream, req *relayed, logger func() *slog.Logger) int {
	rc := http.NewResponseController(w)
	parent := ctx
	ctx, cut := withCut(parent)
	status := 0
	streaming := false
	var silent *time.Timer // runs while waiting for a part of an event stream
	var answer *jsonAnswer // what is sent as JSON (relayed.json)
	fresh := false         // s resumes answer's stream, and sent nothing yet
	// resumable says the edge resumes the stream if it goes silent (the
	// silent timer's cause: errSilentResumed).
	var resumable atomic.Bool
	// unsilenced gives the wait for a stream the edge resumes a context of
	// its own, if the silent timer cut the last one (it may have fired as
	// the last part came).
	unsilenced := func() {
		if errors.Is(context.Cause(ctx), errStreamSilent) {
			silent.Stop()
			silent = nil
			cut(nil)
			ctx, cut = withCut(parent)
		}
	}
	defer func() {
		cut(nil)
		if silent != nil {
			silent.Stop()
		}
		if answer != nil {
			answer.closeResumed()
		}
	}()
	for {
		if limit := silentIntervals * e.opts.SSEKeepAlive; streaming && limit > 0 {
			resumable.Store(answer != nil && answer.resumable(req))
			if silent == nil {
				cut := cut
				silent = time.AfterFunc(limit, func() {
					if resumable.Load() {
						cut(errSilentResumed)
					} else {
						cut(errStreamSilent)
					}
				})
			} else {
				silent.Reset(limit)
			}
		}
		p, err := s.Next(ctx)
		if silent != nil {
			silent.Stop()
		}
		if err != nil {
			if answer != nil {
				if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, errStreamSilent) {
					// The client left: nobody to answer (its actor
					// cancels its requests: Request.JsonAlone; the edge,
					// if they were on a resumed stream by then).
					if answer.resumedFrom != "" && req.cancel != nil {
						go req.cancel()
					}
					return status
				}
				// The stream ended before its answer (its actor or the
				// link to it gone, or silent): resumed, as an event
				// stream's client would.
				logger().Warn("response cut short before its JSON answer", "err", err)
				unsilenced()
				if next := e.resumeJSON(ctx, req, answer, logger); next != nil {
					s, fresh = next, true
					continue
				}
				return giveUp(parent, w, req, answer)
			}
			switch cause := context.Cause(ctx); {
			case errors.Is(cause, errStreamSilent), errors.Is(cause, errTokenExpired):
				reason, why := "silent", "the node serving the subscription went silent; listen again to go on"
				if errors.Is(cause, errTokenExpired) {
					reason, why = "token_expired", "the token that opened the subscription expired; listen again with a fresh one"
				} else {
					logger().Warn("stream ended: its actor went silent; the client resumes it", "keepalive", e.opts.SSEKeepAlive)
				}
				metrics.StreamsEnded.WithLabelValues(reason).Inc()
				req.end(w, why)
				rc.Flush()
			case ctx.Err() == nil:
				logger().Warn("response cut short", "err", err)
			}
			return status
		}
		if status == 0 && req.json && p.Status == http.StatusOK && isEventStream(p.Headers) {
			// Sent as JSON once the stream ends (answered).
			status = int(p.Status)
			streaming = true
			answer = &jsonAnswer{}
			envelope.ToHTTP(p.Headers, w.Header())
			w.Header().Set("Content-Type", "application/json")
		}
		if answer != nil && fresh {
			// The first part of a resumed stream.
			fresh = false
			if p.Status == http.StatusConflict {
				// The go-sdk's stream is still held by the response the
				// edge let go (its actor had yet to see that end): tried
				// again, as a stalled try.
				unsilenced()
				if next := e.resumeJSON(ctx, req, answer, logger); next != nil {
					s, fresh = next, true
					continue
				}
			}
			if p.Status == http.StatusNotFound {
				// The session is gone (ended, expired, deleted): nothing
				// runs to cancel, and its client is to initialize anew, as
				// an event stream's client would be told resuming it.
				return answer.fail(w, req.id, http.StatusNotFound, rpcerr.NotFound())
			}
			if p.Status != http.StatusOK || !isEventStream(p.Headers) {
				logger().Warn("a JSON answer's stream could not be resumed", "status", p.Status)
				return giveUp(parent, w, req, answer)
			}
		}
		if answer != nil {
			if err := answer.write(p.Body); err != nil {
				logger().Warn("answer refused: too large for JSON", "limit", maxJSONAnswer)
				return answer.fail(w, req.id, http.StatusBadGateway, rpcerr.New(rpcerr.InternalError, err.Error()))
			}
			for _, ask := range answer.takeAsks() {
				go req.refuse(ask)
			}
			if p.Final {
				if len(answer.answers) < max(req.want, 1) {
					logger().Warn("event stream ended without every answer to send as JSON", "answers", len(answer.answers), "requests", req.want)
					unsilenced()
					if next := e.resumeJSON(ctx, req, answer, logger); next != nil {
						s, fresh = next, true
						continue
					}
					return giveUp(parent, w, req, answer)
				}
				if !req.batch && !answer.committed && sessionGone(answer.answers[0]) {
					// Its session ended under it (a DELETE): answered as
					// the session's requests then are, 404.
					w.Header().Del("Content-Length")
					w.WriteHeader(http.StatusNotFound)
					answer.writeTo(w, false)
					return http.StatusNotFound
				}
				answer.commit(w)
				answer.writeTo(w, req.batch)
				return http.StatusOK
			}
			if len(answer.answers) == 0 && bytes.HasPrefix(p.Body, []byte(":")) {
				// The actor's keep-alive on a silent stream: white space,
				// which JSON allows before its value, keeps the connection
				// from looking idle to what is on its way (a load
				// balancer's idle timeout) while a long call runs. The
				// status is sent with it: what ends the call short now
				// comes as a JSON-RPC error, status 200.
				answer.commit(w)
				w.Write([]byte(" "))
				if err := rc.Flush(); err != nil {
					return status
				}
			}
			s.Written(p.Seq)
			continue
		}
		if status == 0 {
			status = int(p.Status)
			envelope.ToHTTP(p.Headers, w.Header())
			if strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
				w.Header().Set("X-Accel-Buffering", "no")
			}
			w.WriteHeader(status)
			if !p.Final && strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
				streaming = true
				metrics.OpenStreams.Inc()
				defer metrics.OpenStreams.Dec()
				if req.token != nil && req.unbounded {
					until := cmp.Or(req.token.ValidUntil, req.token.Expiry)
					expiry := time.AfterFunc(time.Until(until), func() { cut(errTokenExpired) })
					defer expiry.Stop()
				}
			}
		}
		if len(p.Body) > 0 {
			req.saw(p.Body)
			if _, err := w.Write(p.Body); err != nil {
				return status
			}
		}
		if p.Final {
			if p.Error != "" {
				logger().Warn("actor ended response with an error", "err", p.Error)
			}
			return status
		}
		if err := rc.Flush(); err != nil {
			return status
		}
		s.Written(p.Seq)
	}
}

// withCut is the context relay waits for its parts with: relay ends it
// with a cause (errStreamSilent, errTokenExpired), and cancels it as it
// returns, or when it starts another (a JSON answer's resumed stream).
func withCut(parent context.Context) (context.Context, context.CancelCauseFunc) {
	return context.WithCancelCause(parent)
}

// resumeJSON resumes the event stream of a client that takes JSON alone,
// which ended before its answers (a drain, its node lost, a tool that
// closed it for the client to resume: SEP-1699), from the last event read,
// as an event stream's client would: nil if it cannot (no resumption for
// the request, no event id read yet, no progress since the last tries, the
// client gone).
func (e *Edge) resumeJSON(ctx context.Context, req *relayed, answer *jsonAnswer, logger func() *slog.Logger) *cluster.Stream {
	if !answer.resumable(req) || ctx.Err() != nil {
		return nil
	}
	var pause time.Duration
	switch asked := answer.retry; {
	case asked > 0:
		// The stream asked to be resumed later (a tool closed it for its
		// client to come back, SEP-1699): as long as it asked, however
		// often it does, which is no stall.
		answer.retry, pause = 0, asked
		if answer.lastID != answer.resumedFrom {
			answer.resumedFrom, answer.stalled = answer.lastID, 0
		}
	case answer.lastID == answer.resumedFrom:
		// A pause first: what held the stream (the response let go,
		// which its actor has yet to end) may let go of it meanwhile.
		answer.stalled++
		pause = time.Duration(answer.stalled) * stalledResumePause
	default:
		answer.resumedFrom, answer.stalled = answer.lastID, 0
	}
	if pause > 0 {
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
	s, err := req.resume(ctx, answer.lastID)
	if err != nil {
		if ctx.Err() == nil {
			logger().Warn("a JSON answer's stream could not be resumed", "err", err)
		}
		return nil
	}
	metrics.JSONResumes.Inc()
	// The streams it resumed before have ended: let go now, rather than
	// held until the answer, however many times a long call's stream is
	// resumed. An event cut short at the end of the last one (none is,
	// from the go-sdk: a part ends with an event) comes again whole.
	answer.closeResumed()
	answer.resumed = append(answer.resumed, s)
	answer.pending = nil
	return s
}

// resumable says whether resumeJSON would resume the stream of answer, a
// JSON answer to req, now: the request's stream can be resumed, an event
// id came, and it did not stall maxStalledResumes times in a row (a
// stream that asked to be resumed later, with a retry field, did not
// stall).
func (j *jsonAnswer) resumable(req *relayed) bool {
	return req.resume != nil && j.lastID != "" && (j.retry > 0 || j.lastID != j.resumedFrom || j.stalled+1 < maxStalledResumes)
}

// giveUp answers a request taking JSON alone whose stream ended before all
// its answers and could not be resumed (cutShort), ctx being the
// request's. If the edge resumed it (or tried), or its client left
// meanwhile, nobody will read the answers,
// and the requests are the edge's to cancel (relayed.cancel): their actor
// cancels them only when the POST's own response is cut by its client
// leaving (Request.JsonAlone), not once it ended, nor when the edge let it
// go to resume it (errSilentResumed).
func giveUp(ctx context.Context, w http.ResponseWriter, req *relayed, answer *jsonAnswer) int {
	if (answer.resumedFrom != "" || ctx.Err() != nil) && req.cancel != nil {
		go req.cancel()
	}
	return cutShort(w, req, answer)
}

// maxStalledResumes is how many times in a row the edge resumes a JSON
// answer's stream that brought no event since the last time;
// stalledResumePause times the number of the try is the pause before each
// try after the first.
const (
	maxStalledResumes  = 3
	stalledResumePause = 50 * time.Millisecond
)

// cutShort answers a request taking JSON alone whose event stream ended
// before all its answers (a stream its tool closed for the client to
// resume, a drain, its node lost): an event stream's client would resume
// it; this one can only be told.
func cutShort(w http.ResponseWriter, req *relayed, answer *jsonAnswer) int {
	return answer.fail(w, req.id, http.StatusBadGateway, rpcerr.New(rpcerr.InternalError, "the answer was cut short; its request may have run (take text/event-stream to resume it)"))
}

// refuseAsk answers, on behalf of a client that takes JSON alone, a
// request the server sent it on the stream of req (an elicitation, a
// sampling request), which the client cannot see: with an error, sent to
// the actor as the client would send it, so that the call goes on to its
// answer.
func (e *Edge) refuseAsk(rt route, req *envelope.Request, ask json.RawMessage, logger func() *slog.Logger) {
	e.tellActor(rt, req, []byte(`{"jsonrpc":"2.0","id":`+string(ask)+`,"error":{"code":-32600,"message":"the client takes JSON answers alone: it cannot answer a request of the server's"}}`), logger)
}

// cancelLeft cancels, on behalf of a client that takes JSON alone and left
// before its answer, the requests of req (ids), as the client would with
// notifications/cancelled. Only once the go-sdk has them (their stream was
// resumed): sent sooner, it could reach the go-sdk before them.
func (e *Edge) cancelLeft(rt route, req *envelope.Request, ids []json.RawMessage, logger func() *slog.Logger) {
	for _, id := range ids {
		e.tellActor(rt, req, []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`+string(id)+`,"reason":"the client left before its answer, which it takes as JSON alone"}}`), logger)
	}
}

// tellActor sends the actor of req's session a message of its client's,
// body, made by the edge for a client that takes JSON alone, and waits for
// the actor's 202.
func (e *Edge) tellActor(rt route, req *envelope.Request, body []byte, logger func() *slog.Logger) {
	rb, err := rpcbody.Read(body)
	if err != nil {
		logger().Warn("could not send a message for a client that takes JSON alone", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tellActorTimeout)
	defer cancel()
	s, err := e.forward(ctx, rt, &envelope.Request{
		Id: e.requestID(), Method: http.MethodPost, Path: req.Path,
		Headers: req.Headers, Body: body, Principal: req.Principal, Rpc: rb.Proto(), Resource: req.Resource,
	})
	if err != nil {
		logger().Warn("could not send a message for a client that takes JSON alone", "err", err)
		return
	}
	defer s.Close()
	for {
		p, err := s.Next(ctx)
		if err != nil || p.Final {
			return
		}
		s.Written(p.Seq)
	}
}

// requestID names a request the edge forwards, unique to this edge.
func (e *Edge) requestID() string { return e.prefix + strconv.FormatUint(e.seq.Add(1), 36) }

// tellActorTimeout bounds tellActor's wait for the actor's 202.
const tellActorTimeout = 10 * time.Second

// isEventStream says whether the headers of an actor's answer make it an
// event stream.
func isEventStream(hs []*envelope.Header) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, "Content-Type") && len(h.Values) > 0 {
			return strings.HasPrefix(h.Values[0], "text/event-stream")
		}
	}
	return false
}

// route decides which actor serves r. A non-zero status is a refusal, with
// its error.
func (e *Edge) route(r *http.Request, rb *rpcbody.Body, tok *auth.Token) (route, int, *rpcerr.Error) {
	// Its field lines as one value (RFC 9110 §5.3): two name no revision.
	if v := strings.Join(r.Header.Values(headerProtocolVersion), ", "); v != "" && !sessionVersions[v] {
		if v != statelessVersion {
			return route{}, http.StatusBadRequest, rpcerr.UnsupportedProtocolVersion(v, protocolVersions)
		}
		if r.Method == http.MethodPost {
			if err := checkRequestMetadata(r.Header); err != nil {
				return route{}, http.StatusBadRequest, err
			}
		}
		return route{kind: cluster.PrincipalKind, identity: principalKey(tok)}, 0, nil
	}
	if sid := r.Header.Get(headerSessionID); sid != "" {
		if !validSessionID(sid) {
			return route{}, http.StatusNotFound, rpcerr.NotFound()
		}
		if err := metaMismatch(r.Header.Get(headerProtocolVersion), rb); err != nil {
			return route{}, http.StatusBadRequest, err
		}
		return route{kind: cluster.SessionKind, identity: sid}, 0, nil
	}
	if r.Method != http.MethodPost {
		return route{}, http.StatusBadRequest, rpcerr.New(rpcerr.InvalidRequest, "Mcp-Session-Id header is required")
	}
	switch classify(rb) {
	case bodyInitialize:
		if err := metaMismatch(r.Header.Get(headerProtocolVersion), rb); err != nil {
			return route{}, http.StatusBadRequest, err
		}
		return route{kind: cluster.SessionKind, identity: e.mintSessionID(), minted: true}, 0, nil
	case bodyStateless:
		// A 2026-07-28 request that forgot its header: the stateless
		// handler answers it with the protocol's own error.
		return route{kind: cluster.PrincipalKind, identity: principalKey(tok)}, 0, nil
	}
	return route{}, http.StatusBadRequest, rpcerr.New(rpcerr.InvalidRequest, "Mcp-Session-Id header is required (only initialize may omit it)")
}

// metaMismatch refuses a request going to a session (its
// Mcp-Protocol-Version, header, names a revision with sessions, or is
// absent) whose body's _meta names another protocol version: 2026-07-28
// requires the two to match (400, HeaderMismatch). The session's go-sdk
// server answered it -32022, naming the header's revision, one it serves,
// as the one unsupported, and listing no 2026-07-28.
func metaMismatch(header string, rb *rpcbody.Body) *rpcerr.Error {
	if rb == nil {
		return nil
	}
	for _, m := range rb.Messages {
		switch {
		case m.ProtocolVersion == "" || m.ProtocolVersion == header:
		case header == "":
			return rpcerr.New(rpcerr.HeaderMismatch, fmt.Sprintf("header mismatch: the Mcp-Protocol-Version header is required for a request whose _meta names io.modelcontextprotocol/protocolVersion %q", m.ProtocolVersion))
		default:
			return rpcerr.New(rpcerr.HeaderMismatch, fmt.Sprintf("header mismatch: the Mcp-Protocol-Version header %q does not match the body's io.modelcontextprotocol/protocolVersion %q", header, m.ProtocolVersion))
		}
	}
	return nil
}

// principalKey names the actor of the caller for stateless requests: a hash
// of (issuer, subject, client), so that no identifier appears in actor names.
// Without authentication every caller is the same anonymous principal.
func principalKey(tok *auth.Token) string {
	if tok == nil {
		return auth.Principal{}.Key()
	}
	return tok.Principal.Key()
}

// authenticate verifies the caller's bearer token, which must be for
// resource, the one the request was made to. On refusal it has written the
// answer (401 with a WWW-Authenticate challenge, or 503 when the token could
// not be checked) and returns ok false. The token is never logged.
func (e *Edge) authenticate(w http.ResponseWriter, r *http.Request, resource string) (*auth.Token, *envelope.Principal, bool) {
	raw, present, err := auth.BearerToken(r.Header.Values("Authorization"))
	if !present {
		e.challenge(w, nil, resource)
		return nil, nil, false
	}
	if err != nil {
		// A malformed credential: 400 invalid_request (RFC 6750 §3.1).
		aerr, ok := err.(*auth.Error)
		if !ok {
			aerr = &auth.Error{Code: auth.CodeInvalidRequest, Description: err.Error()}
		}
		e.challenge(w, aerr, resource)
		return nil, nil, false
	}
	tok, err := e.budget.Verify(r, e.opts.Verifier, raw)
	if over, ok := err.(*OverBudget); ok {
		e.refuse(w, r, &refusal{"address", over.RetryAfter, over.Error()}, e.budget.key(r))
		return nil, nil, false
	}
	if err == nil && e.opts.Resources != nil {
		err = tok.For(resource)
	}
	if err == nil && e.opts.Revoked != nil && e.opts.Revoked(tok) {
		err = &auth.Error{Code: auth.CodeInvalidToken, Description: "this user's tokens were revoked by an operator; sign in again"}
	}
	if err != nil {
		var aerr *auth.Error
		if errors.As(err, &aerr) {
			e.challenge(w, aerr, resource)
			return nil, nil, false
		}
		e.unverifiedLog.Log(e.logger, slog.LevelWarn, "could not verify a bearer token", "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, nil, rpcerr.New(rpcerr.InternalError, "the authorization server could not be reached; retry"))
		return nil, nil, false
	}
	if tok.ClientID == "" && !e.noClientWarned.Swap(true) {
		e.logger.Warn("a token names no client (neither client_id nor azp): the clients of one user cannot be told apart, and share their stateless actors and tasks; have the access token manager put client_id in its tokens",
			"issuer", tok.Issuer)
	}
	claims, _ := json.Marshal(tok.Claims)
	return tok, &envelope.Principal{
		Issuer: tok.Issuer, Subject: tok.Subject, ClientId: tok.ClientID,
		Scopes: tok.Scopes, ExpiresUnix: tok.Expiry.Unix(), Token: raw, TokenId: tok.ID,
		Audience: tok.Audience, ClaimsJson: claims,
	}, true
}

// challenge answers 401 (or 403 for insufficient_scope) with an RFC 6750
// challenge naming the metadata of resource, the one the request was made
// to; aerr nil means no token was sent.
// A refused credential is logged with the reason (a malformed claim, a bad
// signature, an expiry: descriptions name claims, never values or tokens),
// so that an operator sees why a client is refused; at most a few a
// second, since anyone can send bad tokens.
func (e *Edge) challenge(w http.ResponseWriter, aerr *auth.Error, resource string) {
	status := http.StatusUnauthorized
	scopes := e.opts.Scopes
	msg := "authentication required"
	if aerr != nil {
		status = aerr.Status()
		e.refusedLog.Log(e.logger, slog.LevelInfo, "bearer token refused", "error", aerr.Code, "reason", aerr.Description)
		msg = aerr.Error()
		if aerr.Code == auth.CodeInsufficientScope {
			scopes = aerr.Scopes
		}
	}
	w.Header().Set("WWW-Authenticate", auth.Challenge(aerr, auth.MetadataURL(resource), scopes))
	writeError(w, status, nil, rpcerr.New(rpcerr.InvalidRequest, msg))
}

// Session ids are 128 bits from crypto/rand, base64url without padding.
const sessionIDLen = 22

func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// mintSessionID makes the id of a new session, one whose actor lives on
// this node when it hosts sessions and is not draining
// (cluster.Node.NewIdentity): the session's requests that reach this node
// (on the client's connection) then take no hop to another member.
func (e *Edge) mintSessionID() string {
	if e.node == nil || e.draining.Err() != nil {
		return newSessionID()
	}
	return e.node.NewIdentity(cluster.SessionKind, newSessionID)
}

func validSessionID(s string) bool {
	if len(s) != sessionIDLen {
		return false
	}
	// The base64url alphabet exactly: the decoder alone also takes CR and
	// LF, which it skips, so one id would have several spellings.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

type bodyKind int

const (
	bodyOther bodyKind = iota
	bodyInitialize
	bodyStateless
)

// classify tells an initialize (alone, or in a 2025-03-26 batch) and a
// request of the stateless protocol (its _meta names a version) from the
// rest; the first message that is either decides.
func classify(rb *rpcbody.Body) bodyKind {
	if rb == nil {
		return bodyOther
	}
	for _, m := range rb.Messages {
		if m.Method == "initialize" {
			return bodyInitialize
		}
		if m.ProtocolVersion >= statelessVersion {
			return bodyStateless
		}
	}
	return bodyOther
}

// forwardHeaders keeps what the MCP handler needs and drops hop-by-hop
// headers and credentials: the verified principal travels in the envelope,
// never the raw token. pingmcp's own headers (X-Pingmcp-*: the actor's
// forwarded id, the tasks layer's run) are set inside the actor only: a
// client's are dropped here.
// internalHeaderPrefix begins the headers pingmcp sets for itself.
const internalHeaderPrefix = "X-Pingmcp-"

func forwardHeaders(h http.Header) []*envelope.Header {
	out := make([]*envelope.Header, 0, len(h))
	all := make([]envelope.Header, len(h)) // one allocation for them all
	for name, values := range h {
		switch name {
		case "Authorization", "Cookie", "Connection", "Keep-Alive", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Origin":
			continue
		}
		if strings.HasPrefix(http.CanonicalHeaderKey(name), internalHeaderPrefix) {
			continue
		}
		if name == "Mcp-Name" {
			values = decodeSentinel(values)
		}
		e := &all[len(out)]
		e.Name, e.Values = name, values
		out = append(out, e)
	}
	return out
}

// hostAllowed says whether the edge answers to Host host: with
// AllowedHosts, one listed by its name alone, or with its port, a Host
// without a port standing for either scheme's default (the edge cannot
// tell the scheme behind a proxy that ends TLS, and clients leave the
// default port out: an entry spelt as a URL's host, mcp.example.com:443,
// is the Host mcp.example.com); without, any Host, or loopback names only
// on a loopback listener.
func (e *Edge) hostAllowed(host string) bool {
	name := hostname(host)
	if len(e.hosts) > 0 {
		if e.hosts[name] {
			return true
		}
		if _, _, err := net.SplitHostPort(host); err == nil {
			return e.hosts[hostKey(host, "")]
		}
		return e.hosts[hostKey(host, "443")] || e.hosts[hostKey(host, "80")]
	}
	return !e.opts.Loopback || loopback.Is(name)
}

// allowedHostKey is the key of an AllowedHosts entry: its name alone (an
// IPv6 literal without its brackets), or name and port as hostKey makes
// them, in lower case.
func allowedHostKey(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return hostKey(h, "")
	}
	return hostname(h)
}

func (e *Edge) originAllowed(origin, host string) bool {
	o := strings.TrimSuffix(strings.ToLower(origin), "/")
	if e.origins[o] {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true // same origin
	}
	return e.opts.Loopback && loopback.Is(u.Hostname())
}

func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(strings.Trim(h, "[]"))
	}
	return strings.ToLower(strings.Trim(hostport, "[]"))
}

func setCORS(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, WWW-Authenticate")
}

// writeError answers id with err, a JSON-RPC error response, as MCP
// clients expect from the transport whatever the status.
func writeError(w http.ResponseWriter, status int, id json.RawMessage, err *rpcerr.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(err.Body(id))
}

// decodeSentinel decodes a 2026-07-28 Base64-sentinel header value
// (=?base64?...?=), which the go-sdk compares to the body undecoded; a value
// that is not well-formed Base64 of UTF-8 is left as sent (checkRequestMetadata
// refuses it).
func decodeSentinel(values []string) []string {
	if len(values) != 1 {
		return values
	}
	if dec, sentinel, ok := sentinelValue(values[0]); sentinel && ok {
		return []string{dec}
	}
	return values
}

// sentinelValue decodes v when it is a Base64-sentinel value (sentinel);
// ok is false when it is one that is not well-formed Base64 of UTF-8.
func sentinelValue(v string) (dec string, sentinel, ok bool) {
	enc, pre := strings.CutPrefix(v, "=?base64?")
	enc, suf := strings.CutSuffix(enc, "?=")
	if !pre || !suf {
		return "", false, false
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || !utf8.Valid(b) {
		return "", true, false
	}
	return string(b), true, true
}

// checkRequestMetadata refuses a 2026-07-28 POST whose request metadata
// headers (Mcp-Method, Mcp-Name, Mcp-Param-*) are malformed, with
// HeaderMismatch (-32020; "Servers MUST reject requests with a 400 Bad
// Request HTTP status and JSON-RPC error code -32020 (HeaderMismatch) if any
// validation fails"): one sent in more than one field line, whose value
// (RFC 9110 §5.3: the lines joined by commas) matches no body value while
// the go-sdk compares the first line alone; one holding a character other
// than visible ASCII, space and tab ("A header value contains invalid
// characters": a client sends such a value as =?base64?…?=); an Mcp-Name
// that is a sentinel but not Base64 of UTF-8, which the go-sdk would compare
// undecoded. Mcp-Param-* headers are checked whichever the tool names: a
// client encodes every one it sends.
func checkRequestMetadata(h http.Header) *rpcerr.Error {
	for name, values := range h {
		if name != "Mcp-Method" && name != "Mcp-Name" &&
			!(len(name) > len("Mcp-Param-") && strings.EqualFold(name[:len("Mcp-Param-")], "Mcp-Param-")) {
			continue
		}
		if len(values) > 1 {
			return rpcerr.New(rpcerr.HeaderMismatch, fmt.Sprintf("header mismatch: the %s header is sent %d times; send it once", name, len(values)))
		}
		for i := 0; i < len(values[0]); i++ {
			if c := values[0][i]; c != '\t' && (c < 0x20 || c > 0x7e) {
				return rpcerr.New(rpcerr.HeaderMismatch, fmt.Sprintf("header mismatch: the %s header has a character other than visible ASCII, space and tab; send such a value as =?base64?…?=", name))
			}
		}
		if _, sentinel, ok := sentinelValue(values[0]); name == "Mcp-Name" && sentinel && !ok {
			return rpcerr.New(rpcerr.HeaderMismatch, "header mismatch: the Mcp-Name header is not Base64 of UTF-8 between =?base64? and ?=")
		}
	}
	return nil
}

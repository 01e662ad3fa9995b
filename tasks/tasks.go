// Package tasks serves the MCP tasks extension (io.modelcontextprotocol/tasks,
// SEP-2663, "tasks v2") on the stateless 2026-07-28 protocol: durable tasks,
// kept in the shared store (taskstore.Store) under their owner, run by the actor
// that owns them.
//
// # What the extension is (as the conformance suite 0.2.0-alpha.12 checks it)
//
// The SEP text is not in the suite's package; what follows is what its
// tasks-* scenarios (dist/index.js) assert, the only executable reading:
//
//   - Negotiation. The server advertises capabilities.extensions
//     ["io.modelcontextprotocol/tasks"] = {} in server/discover, never the v1
//     capabilities.tasks. A client declares it per request in
//     _meta["io.modelcontextprotocol/clientCapabilities"].extensions (the
//     stateless protocol has no session: its "session-level" declaration and
//     the per-request opt-in of SEP-2575 are the same member). tasks/get,
//     tasks/update and tasks/cancel from a client that did not declare it
//     are refused with -32021 (Missing Required Client Capability, data
//     {"requiredCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}},
//     HTTP 400).
//   - Creation is server-directed: a tools/call of a task-capable tool from a
//     client with the extension answers a CreateTaskResult, flat (Result &
//     Task): resultType "task", taskId, status, createdAt, lastUpdatedAt
//     (ISO 8601), ttlMs (integer ms or null), pollIntervalMs (integer ms, if
//     present); never result, error, inputRequests, requestState, the v1
//     ttl/pollInterval or a nested task. The task exists (tasks/get finds it)
//     before the answer leaves. A legacy params.task hint is ignored: it
//     never makes a synchronous tool a task. A server may answer a fast call
//     synchronously instead. Without the extension an optional tool runs
//     synchronously; a required one is refused with -32021.
//   - tasks/get {taskId} answers a DetailedTask: resultType "complete", the
//     task members, and by status: completed → result (the tool's result,
//     content[]; a tool error is completed with result.isError, never
//     failed), failed → error {code, message, data} (a protocol error) and
//     no result, input_required → inputRequests (a non-empty map keyed by
//     server-minted ids, each an elicitation/create, sampling/createMessage...
//     request with its method). Statuses: working, input_required,
//     completed, failed, cancelled. An unknown taskId is -32602. A task stays
//     readable for its ttlMs. No io.modelcontextprotocol/related-task _meta on
//     the inlined result.
//   - tasks/update {taskId, inputResponses} delivers answers (SEP-2322
//     MRTR), keyed by the inputRequests ids; unknown keys are ignored. The
//     answer is the bare ack {resultType:"complete"}. (Ours: an answer to a
//     pending request that is no input response is -32602, nothing
//     recorded; one answering none changes nothing.) Answered keys leave
//     inputRequests; the task stays input_required until none is left, then
//     runs on (to a terminal status, or another input round).
//   - tasks/cancel {taskId} answers the same bare ack, for a running task
//     (which then settles to cancelled) and, idempotently, for a terminal
//     one; -32602 only for an unknown id.
//   - tasks/result and tasks/list (v1) are removed: -32601.
//   - Routing headers (SEP-2243 as SEP-2663 extends it): tasks/get,
//     tasks/update and tasks/cancel carry Mcp-Name: <taskId>; a value that
//     differs from params.taskId, or none, is -32020 (HeaderMismatch), HTTP
//     400 (the suite checks the mismatch; its text says a missing required
//     header is refused the same way).
//   - MRTR composition: a tool may run input_required rounds synchronously
//     (no taskId) and answer its final round with a CreateTaskResult (no
//     requestState); the task's result reflects the answers.
//   - notifications/tasks {taskId, status, result|error} on the
//     subscriptions/listen stream are optional; the suite skips the scenario
//     (its harness is pending a rewrite: its run answers SKIPPED, --force
//     or not). They are sent: see Notifications.
//
// The scenarios' fixtures (tools/conformance): greet (sync), slow_compute
// {seconds} (settles to cancelled when cancelled), failing_job (required;
// a tool error after about a second), protocol_error_job (panics),
// confirm_delete (one elicitation), multi_input (two at once) and
// test_tool_with_task (required, deferred: an MRTR round, then a task).
//
// # What the go-sdk (v1.8.0) offers and lacks
//
// It has ServerCapabilities.Extensions (AddExtension), the 2026-07-28
// stateless protocol with per-request _meta, InputRequests/RequestState on
// CallToolResult (MRTR), receiving middleware, and custom methods
// (AddReceivingCustomMethod, with ParamsBase and ResultBase). It has no task
// support and no Tool.execution. What keeps the extension out of the SDK's
// handler is HTTP: its answers need statuses and headers of their own
// (-32020 and -32021 are HTTP 400, the per-user cap 429 with Retry-After, a
// round's missing scope 403 with its WWW-Authenticate challenge, a store
// outage 503), which nothing inside the SDK's JSON-RPC dispatch can set, and
// a task's rounds run detached from any client's request. So the layer is an
// http.Handler in front of the SDK's streamable handler: it answers tasks/*
// itself, and runs a task-capable tools/call as a request of its own through
// the SDK handler. The SDK's subscriptions/listen knows only the base filter
// (NotificationSubscriptions: no taskIds, no field an extension could add)
// and acknowledges a listen by itself, from its own capabilities: so the
// layer serves a listen naming taskIds, and runs the SDK's for the other
// types on the same stream (see Notifications).
// Upstream should add: Tool.execution, a way for a method's error to carry
// its HTTP status and headers, a tasks extension of its own, and a way for
// an extension to take part in subscriptions/listen (grant its filter
// fields in the acknowledgement, and send its notifications on the listens
// that granted them).
//
// # How tasks are owned
//
// On the 2026-07-28 protocol every request of a principal (issuer, subject,
// client_id) goes to that principal's actor (actors/principal.go), which
// serves it through a Layer: the actor owns its principal's tasks. A task
// is stored under the actor's key (taskstore.Task.Owner), so another user's, or
// another client's, tasks/get finds nothing (-32602, as for an id that never
// existed). The store keeps the task's status, result or error, pending
// input, the tools/call it runs, and its runner's lease; a task expires its
// TTL after its last change (DefaultTTL).
//
// A round of a task runs on the owner's activation, which renews the
// round's lease (Lease) in the store while it runs, and reads the task's
// status as it does: a cancel recorded by any node (the record says
// cancelled) cancels the round's context within a third of the lease. When
// the activation stops (drain, passivation, placement moved), its rounds
// are cancelled. When its node dies, nobody renews the lease. Whoever reads
// a working task whose lease ran out takes it over (reap): a Resumable
// tool's round runs again from its start on the reader's activation (at
// most maxResumes times); any other task fails with -32003 (retryable).
// So does the owner's Sweep, without a read: the actor runs it when it
// takes its first request, and when the next lease held elsewhere ends
// (actors/core.go, sweepTasks). An activation that stops lets the leases
// of its resumable rounds lapse at once, and fails the others. A task is
// never "working" forever: a lapsed one that nobody reads or sweeps
// expires its TTL after its last change.
//
// Each round acts for the caller of the request that started it (the
// tools/call, the tasks/update that answered its input, the tasks/get or
// the sweep that resumed it): Options.Bind, through which the actor hands
// the round that request's principal and token, in memory only; and
// Options.Authorize first checks that this caller's token holds the
// tool's scopes. In Redis the records are sealed (taskstore.Sealer),
// bound to their owner and id; one that does not open is an unknown task.
//
// # Bounds
//
// A task outlives its request, so the request's limits do not bound it:
// a user has at most Options.MaxPerUser live tasks, all the user's clients
// together (Options.Live, counted atomically per user; refused with 429 and
// -32005 tasks_per_user); a task keeps at most MaxRequestBytes of its call
// (413); a task-capable tool's arguments are checked against its input
// schema before the task is created (the tool error a synchronous call
// gets, nothing stored); a round acts for its caller only while the
// caller's token is valid (Options.Valid, at each renewal); and running
// rounds count as the actor's requests in flight (Options.Rounds).
//
// # Notifications
//
// SEP-2663 ("Task Status Notifications", seps/2663-tasks-extension.md):
// "Servers MAY push status updates via notifications/tasks notifications
// in addition to servicing client polls"; a client asks for them with
// subscriptions/listen (SEP-2575), params.notifications.taskIds: "a list
// of task IDs the client is interested in" (there is no "all my tasks"
// filter); "In its acknowledgement notification, the server includes the
// list of task IDs it has agreed to send task status notifications for";
// "If a client requests task status notifications but does not declare the
// io.modelcontextprotocol/tasks extension capability, the server MUST
// return a JSON-RPC error" (-32021); "Each notification carries a complete
// DetailedTask for the current status, identical to what tasks/get would
// have returned at that moment" (params are NotificationParams & Task: no
// resultType); notifications/progress and notifications/message "MUST NOT
// be sent on the subscriptions/listen stream for a task". SEP-2575 (the
// draft's subscriptions pattern): the server "MUST NOT send notification
// types the client has not explicitly requested", "MUST send
// notifications/subscriptions/acknowledged as the first message", every
// message on the stream carries _meta io.modelcontextprotocol/subscriptionId
// (the listen's request id), and a server ending a subscription "SHOULD"
// answer the listen (resultType "complete", the same _meta).
//
// The layer serves a listen that names taskIds (notify.go): it grants the
// owner's tasks among them (an unknown id, or another owner's, is left out
// of the acknowledgement, as tasks/get answers it unknown; more than
// MaxListenTasks is -32600, limit listen_tasks; a task whose tool the
// caller may not call refuses the listen, as Authorize refuses its
// tasks/get), sends each granted task's
// state at once (the task may have changed before the client could
// listen), then a
// notification each time the task's status changes, until the client
// leaves, the activation stops, or every task it listens to ended
// (completed, failed, cancelled or expired: nothing more can come, and an
// open listen would keep the actor active); in the last two cases the
// listen is answered. Other
// types asked for on the same listen are the SDK's: its own listen runs on
// the same stream, its grants merged into the one acknowledgement.
//
// The owner's activation sees every change it makes (Layer.change: a
// round's end, input_required, a cancel, a reap or the sweep failing a
// task), and those made elsewhere that a round of its own runs into (a
// renewal finding its task cancelled or taken over by another node); a
// change it cannot see (a record written by another node while no round
// runs here) reaches its listeners within a lease, as each listener reads
// its unfinished tasks once a lease. A listener's memory is bounded by its
// tasks: a change marks its task, and the listener reads the task's
// current record as it writes it. A slow client stalls its own stream only,
// and changes meanwhile coalesce: it gets each task's latest state, never
// a queue (an intermediate status it was too slow to read is skipped).
//
// The extension is not defined on the 2025-11-25 session protocol
// (SEP-2663, "Backward Compatibility"): session actors have no Layer, do
// not advertise it, and run task-capable tools synchronously.
//
// # Operators
//
// A task records the principal it acts for (Options.Principal: issuer,
// subject, client_id; sealed in Redis with the rest), so that operators
// see any node's view of every task (package admin: the admin API, the
// CLI, the console; Store.List) and cancel one with Cancel, the same
// cancel as the client's tasks/cancel: recorded, its user's place freed,
// and its round, wherever it runs, cancelled at its next renewal.
package tasks

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
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state/taskstore"
)

// Extension is the extension's identifier.
const Extension = "io.modelcontextprotocol/tasks"

const (
	// DefaultTTL is how long a task stays readable after its last change.
	DefaultTTL = time.Hour
	// DefaultPollInterval is the pollIntervalMs a task suggests.
	DefaultPollInterval = time.Second
	// DefaultLease is how long a round's runner answers for it without
	// renewing.
	DefaultLease = 6 * time.Second
	// MaxResultBytes bounds what a task keeps of its tool's answer (its
	// result, input requests or error): a larger answer fails the task.
	MaxResultBytes = 1 << 20
	// MaxRequestBytes bounds the params of a call that becomes a task
	// (the task keeps them, to run them again): a larger call is refused
	// (413, -32005) before anything is stored.
	MaxRequestBytes = 64 << 10
)

// Advertise declares the extension in the server's capabilities, keeping
// the SDK's default ones (logging) when opts set none.
func Advertise(opts *mcp.ServerOptions) {
	if opts.Capabilities == nil {
		opts.Capabilities = &mcp.ServerCapabilities{Logging: &mcp.LoggingCapabilities{}}
	}
	opts.Capabilities.AddExtension(Extension, nil)
}

// Options configure a Layer.
type Options struct {
	// Store keeps the tasks; Owner is the key they are kept under (the
	// owning actor's).
	Store taskstore.Store
	Owner string
	// Runner names this activation (node and a random id) in the leases
	// of its rounds.
	Runner string
	// TTL, PollInterval and Lease default to DefaultTTL,
	// DefaultPollInterval, DefaultLease.
	TTL, PollInterval, Lease time.Duration
	Logger                   *slog.Logger
	// Bind, if set, prepares the request of a round for the MCP handler:
	// from is the client's request that starts it (the tools/call, the
	// tasks/update that answered its last input, the tasks/get that
	// resumed it), round the layer's own; the round acts for from's caller
	// (its token, for the tools that call downstream APIs). release is
	// called when the round ends.
	Bind func(from, round *http.Request) (release func())
	// Authorize, if set, says whether the caller of request from may run
	// tool now (its token holds the scopes the tool needs, as checked for a
	// tools/call), before a round of a task starts for it: the tasks/update
	// that answers the task's input, the tasks/get (or Sweep) that resumes
	// it. A refusal is the answer to from, and changes nothing: the task
	// stays as it was (input_required; working with its lease run out) for
	// a request whose token may. A tasks/get, and a listen naming the
	// task, are refused the same way: what they show of a task is its
	// tool's.
	Authorize func(from *http.Request, tool string) *Refusal
	// Live counts each user's live tasks (working or input_required), at
	// most MaxPerUser of them (zero: no cap): a task is counted from its
	// creation until it ends, or until it has not changed for TTL (its
	// record expired). User names the user of request from (a key: all
	// the user's clients together, so that registering clients buys
	// nothing), "" for none (not counted).
	Live       Live
	MaxPerUser int
	User       func(from *http.Request) string
	// Principal, if set, names the principal request from acts for
	// (issuer, subject, client_id), recorded in the tasks it creates for
	// operators to see (package admin); the records are sealed in Redis.
	Principal func(from *http.Request) (issuer, subject, clientID string)
	// Valid, if set, says whether the caller a round acts for (as Bind
	// prepared its request, round) may still be acted for: its token has
	// not expired. Checked at each renewal of the round's lease: a round
	// whose caller may no longer be acted for ends as when its activation
	// stops (Close): a resumable one is handed on (its lease lapses, for
	// a request with a fresh token to resume it), the others fail with
	// the retryable -32003.
	Valid func(round *http.Request) bool
	// Rounds, if set, is told of each round that starts (1) and ends (-1),
	// while it runs outside any request: the actor counts them with its
	// requests in flight, so that it is not taken for idle (by memory
	// pressure, say) while it runs them.
	Rounds func(delta int)
	// MaxBody bounds what the layer reads of a request body (the edge's
	// --max-body-bytes; DefaultMaxBody when zero): a larger body is
	// refused (413), never cut.
	MaxBody int64
}

// Live counts live tasks by user (state.UserSessions has this shape):
// Claim counts id as one of user's unless user has max others already,
// atomically; Touch marks a counted id active; Release stops counting it.
type Live interface {
	Claim(ctx context.Context, user, id string, max int, ttl time.Duration) (ok bool, retry time.Duration, err error)
	Touch(ctx context.Context, user, id string, ttl time.Duration) error
	Release(ctx context.Context, user, id string) error
}

// counted says whether the layer caps its users' live tasks.
func (l *Layer) counted() bool { return l.o.Live != nil && l.o.MaxPerUser > 0 }

// user is the user of request from, "" when tasks are not counted.
func (l *Layer) user(from *http.Request) string {
	if !l.counted() || l.o.User == nil {
		return ""
	}
	return l.o.User(from)
}

// change is Store.Update, and the user's count of live tasks kept with it:
// a task that ends stops counting, one that changes stays counted. A
// change of status is told to the task's listeners (notifications/tasks).
func (l *Layer) change(ctx context.Context, id string, fn func(*taskstore.Task) error) (*taskstore.Task, error) {
	var before string
	t, err := l.o.Store.Update(ctx, l.o.Owner, id, func(t *taskstore.Task) error {
		before = t.Status
		return fn(t)
	})
	if err == nil && t != nil {
		l.account(ctx, t)
		if t.Status != before {
			l.changed(t)
		}
	}
	return t, err
}

// account releases a task that ended from its user's count of live tasks,
// or marks a live one active. Best effort: an entry it misses ages out
// with the task's TTL.
func (l *Layer) account(ctx context.Context, t *taskstore.Task) {
	if t.User == "" || l.o.Live == nil {
		return
	}
	var err error
	if t.Terminal() {
		err = l.o.Live.Release(ctx, t.User, t.ID)
	} else {
		err = l.o.Live.Touch(ctx, t.User, t.ID, l.o.TTL)
	}
	if err != nil {
		l.o.Logger.Warn("tasks: counting the user's live tasks", "task", t.ID, "err", err)
	}
}

// Refusal is Authorize's answer to a request that may not start a round:
// its HTTP status and headers (403 and the insufficient_scope challenge)
// and its JSON-RPC error.
type Refusal struct {
	Status int
	Header http.Header
	Error  *jsonrpc.Error
}

// authorize asks Options.Authorize whether from's caller may run tool.
func (l *Layer) authorize(from *http.Request, tool string) *Refusal {
	if l.o.Authorize == nil {
		return nil
	}
	return l.o.Authorize(from, tool)
}

// Layer serves the extension in front of an MCP handler (the SDK's
// streamable handler, stateless): it answers tasks/* and the task-capable
// tools/calls of clients that negotiated the extension, and passes the
// rest on.
type Layer struct {
	inner http.Handler
	o     Options

	mu     sync.Mutex
	rounds map[string]*run // running rounds, by task id (and "" while undecided)
	live   int             // rounds running, decided or not
	closed bool
	// listeners are the subscriptions/listen streams waiting for
	// notifications/tasks, by task id (notify.go); done is closed by Close.
	listeners map[string]map[*listener]struct{}
	done      chan struct{}
}

// New is a Layer in front of inner.
func New(inner http.Handler, o Options) *Layer {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Layer{inner: inner, o: o, rounds: map[string]*run{}, listeners: map[string]map[*listener]struct{}{}, done: make(chan struct{})}
}

// Running is how many rounds of tasks run here now: an actor with any
// stays (it is their runner).
func (l *Layer) Running() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live
}

// Close cancels the rounds running here; their tasks fail with a
// retryable error (-32003), since the activation running them ends. The
// listens waiting for task notifications here end (answered: the
// subscription closed).
func (l *Layer) Close() {
	l.mu.Lock()
	if !l.closed {
		close(l.done)
	}
	l.closed = true
	rs := make([]*run, 0, len(l.rounds))
	for _, r := range l.rounds {
		rs = append(rs, r)
	}
	l.mu.Unlock()
	for _, r := range rs {
		r.interrupted.Store(true)
		r.cancel()
	}
}

// DefaultMaxBody bounds what the layer reads of a body when Options.MaxBody
// is zero; the edge bounds bodies already, this is a backstop.
const DefaultMaxBody = 8 << 20

func (l *Layer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stripRunHeader(r.Header)
	if r.Method != http.MethodPost {
		l.inner.ServeHTTP(w, r)
		return
	}
	max := cmp.Or(l.o.MaxBody, DefaultMaxBody)
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	r.Body.Close()
	if int64(len(body)) > max {
		writeErrorStatus(w, nil, rpcerr.New(rpcerr.InvalidRequest, fmt.Sprintf("request body exceeds %d bytes", max)).SDK(), http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	// Only tasks/* and the tools/calls of clients that declared the
	// extension are the layer's: the others pass without being parsed
	// again (the edge parsed them once).
	if err != nil || !(bytes.Contains(body, []byte(`"tasks/`)) ||
		bytes.Contains(body, []byte(`"tools/call"`)) && bytes.Contains(body, []byte(`"`+Extension+`"`)) ||
		bytes.Contains(body, []byte(`"subscriptions/listen"`)) && bytes.Contains(body, []byte(`"taskIds"`))) {
		l.inner.ServeHTTP(w, r)
		return
	}
	var m message
	var c common
	if json.Unmarshal(body, &m) != nil || len(m.ID) == 0 {
		// A batch, a notification, or not JSON-RPC: the SDK's to answer.
		l.inner.ServeHTTP(w, r)
		return
	}
	err = json.Unmarshal(m.Params, &c)
	if err == nil && string(bytes.TrimSpace(m.Params)) == "null" {
		err = errors.New("params null") // no taskId either
	}
	if err != nil {
		switch m.Method {
		case "tasks/get", "tasks/update", "tasks/cancel":
			// This layer's methods, with params that are not theirs
			// (none, an array, a taskId that is not a string): the SDK
			// would answer "unsupported method".
			if r.Header.Get("Mcp-Protocol-Version") >= "2026-07-28" {
				writeError(w, m.ID, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: m.Method + ": params must be an object whose taskId is a string"})
				return
			}
		}
		l.inner.ServeHTTP(w, r)
		return
	}
	if !c.stateless() {
		// A session's request: the SDK's to answer.
		l.inner.ServeHTTP(w, r)
		return
	}
	switch m.Method {
	case "tasks/result", "tasks/list":
		writeError(w, m.ID, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: m.Method + " was removed by SEP-2663: tasks/get inlines the result"})
	case "tasks/get", "tasks/update", "tasks/cancel":
		l.serveMethod(w, r, &m, &c)
	case "subscriptions/listen":
		f, perr := parseListen(m.Params)
		switch {
		case perr != nil:
			writeRefusal(w, m.ID, perr)
		case f.asked:
			l.listen(w, r, &m, &c, f, body)
		default:
			l.inner.ServeHTTP(w, r)
		}
	case "tools/call":
		if _, ok := supportOf(c.Name); !ok || !c.negotiated() {
			// Synchronous, or refused by the tool (Required): see add.
			l.inner.ServeHTTP(w, r)
			return
		}
		l.call(w, r, &m, body)
	default:
		l.inner.ServeHTTP(w, r)
	}
}

// serveMethod answers tasks/get, tasks/update and tasks/cancel.
func (l *Layer) serveMethod(w http.ResponseWriter, r *http.Request, m *message, c *common) {
	if err := methodHeader(r, m.Method); err != nil {
		writeError(w, m.ID, err)
		return
	}
	if !c.negotiated() {
		writeError(w, m.ID, missingExtension())
		return
	}
	if c.TaskID == nil || *c.TaskID == "" {
		writeError(w, m.ID, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "params.taskId is required"})
		return
	}
	id := *c.TaskID
	// SEP-2243, as SEP-2663 extends it to these methods: a missing
	// Mcp-Name is refused as a mismatched one is (-32020, HTTP 400), as the
	// go-sdk refuses a tools/call without it.
	if name, ok := headerValue(r.Header, "Mcp-Name"); !ok {
		writeError(w, m.ID, &jsonrpc.Error{Code: mcp.CodeHeaderMismatch, Message: "missing required Mcp-Name header for method " + quote(m.Method)})
		return
	} else if name != id {
		writeError(w, m.ID, &jsonrpc.Error{Code: mcp.CodeHeaderMismatch, Message: "Mcp-Name header does not match params.taskId"})
		return
	}
	ctx := r.Context()
	t, err := l.o.Store.Get(ctx, l.o.Owner, id)
	if err != nil {
		writeRefusal(w, m.ID, l.storeFailure(id, err))
		return
	}
	if t == nil {
		writeError(w, m.ID, unknownTask())
		return
	}
	switch m.Method {
	case "tasks/get":
		// What a task shows (its result, its input requests) is its
		// tool's: a token that may not call the tool may not read it (403
		// insufficient_scope, as for a tasks/update), though it be the
		// user's through the same client (after a step-down, say).
		if refusal := l.authorize(r, t.Tool()); refusal != nil {
			writeRefusal(w, m.ID, refusal)
			return
		}
		var refusal *Refusal
		if t, refusal, err = l.reap(r, t); err != nil {
			writeRefusal(w, m.ID, l.storeFailure(id, err))
			return
		}
		if refusal != nil {
			writeRefusal(w, m.ID, refusal)
			return
		}
		if t == nil {
			writeError(w, m.ID, unknownTask())
			return
		}
		writeResult(w, m.ID, detailed(t))
	case "tasks/update":
		var p struct {
			InputResponses map[string]json.RawMessage `json:"inputResponses"`
		}
		if err := json.Unmarshal(m.Params, &p); err != nil {
			writeError(w, m.ID, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "params.inputResponses must be an object of responses by input request key"})
			return
		}
		var tooLarge inputsTooLarge
		var refused roundRefused
		var bad badInput
		if err := l.update(r, id, p.InputResponses); errors.As(err, &refused) {
			writeRefusal(w, m.ID, refused.r)
			return
		} else if errors.As(err, &bad) {
			writeError(w, m.ID, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "params." + bad.Error() + "; nothing was recorded"})
			return
		} else if errors.As(err, &tooLarge) {
			metrics.Limited.WithLabelValues("task_request_bytes").Inc()
			writeRefusal(w, m.ID, &Refusal{Status: http.StatusRequestEntityTooLarge, Error: rpcerr.TooLarge("task_request_bytes", tooLarge.kept, MaxRequestBytes,
				fmt.Sprintf("a task keeps at most %d bytes of the answers to its input requests; nothing was recorded", MaxRequestBytes)).SDK()})
			return
		} else if err != nil {
			writeRefusal(w, m.ID, l.storeFailure(id, err))
			return
		}
		writeResult(w, m.ID, ack)
	case "tasks/cancel":
		if err := l.cancelTask(ctx, id); err != nil {
			writeRefusal(w, m.ID, l.storeFailure(id, err))
			return
		}
		writeResult(w, m.ID, ack)
	}
}

// headerValue is a header's value without the optional white space around
// it (RFC 9110 §5.5), and whether it was sent.
func headerValue(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	return strings.TrimSpace(vs[0]), true
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func unknownTask() *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "unknown taskId"}
}

// storeFailure answers a store's error about task id: a record that does
// not open (sealed under a key no longer configured, or moved from another
// owner's key) is an unknown task, as one that never existed; any other
// error is the store's outage: 503 with Retry-After, as other store
// outages answer.
func (l *Layer) storeFailure(id string, err error) *Refusal {
	if errors.Is(err, taskstore.ErrUnreadable) {
		l.o.Logger.Warn("tasks: a stored task does not open; answered as unknown", "task", id, "err", err)
		return &Refusal{Status: http.StatusBadRequest, Error: unknownTask()}
	}
	l.o.Logger.Error("tasks: the task store failed", "task", id, "err", err)
	return unavailable()
}

// unavailable answers a call whose task could not be stored (the store is
// unreachable): 503 with Retry-After, as other store outages answer.
func unavailable() *Refusal {
	return &Refusal{Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"1"}},
		Error: rpcerr.New(rpcerr.InternalError, "the task store is unavailable; retry").SDK()}
}

// errTerminal leaves a terminal task as it is.
var errTerminal = errors.New("task is terminal")

// inputsTooLarge refuses answers to a task's input requests that would
// make what it keeps of them (kept bytes) exceed MaxRequestBytes: they go
// with its call to its next round, and are kept as long as it.
type inputsTooLarge struct{ kept int }

func (e inputsTooLarge) Error() string {
	return fmt.Sprintf("input responses of %d bytes: at most %d are kept", e.kept, MaxRequestBytes)
}

// badInput refuses an answer to a pending input request that is no input
// response (SEP-2322: an elicitation's, a sampling's or a roots' result):
// recorded, it would make the task's next round a call the MCP handler
// refuses, and fail the task for good.
type badInput struct{ err error }

func (e badInput) Error() string { return e.err.Error() }

// inputResponse checks the answer v to input request key as the MCP
// handler will read it in the task's next round (mcp.InputResponseMap).
func inputResponse(key string, v json.RawMessage) error {
	b, err := json.Marshal(map[string]json.RawMessage{key: v})
	if err == nil {
		var m mcp.InputResponseMap
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return badInput{err}
	}
	return nil
}

// roundRefused is Authorize's refusal of a round to the caller of a
// tasks/update: nothing was recorded.
type roundRefused struct{ r *Refusal }

func (e roundRefused) Error() string { return e.r.Error.Message }

// maxResumes bounds how many times a task is resumed after losing its
// runner: a tool that takes its node down each time fails in the end.
const maxResumes = 3

// reap takes over a working task whose runner's lease ran out (its node
// died): a resumable tool's round runs again here, from its start; any
// other task fails, retryably.
// A resume needs from's caller to be allowed the tool (Options.Authorize):
// the refusal is returned, and the task left as it is.
func (l *Layer) reap(from *http.Request, t *taskstore.Task) (*taskstore.Task, *Refusal, error) {
	ctx, cancel := detached(from.Context())
	defer cancel()
	if t.Status != "working" || t.Runner == "" || time.Now().Before(t.LeaseUntil) {
		return t, nil, nil
	}
	lost, tag, tool := t.Runner, l.tag(), t.Tool()
	if resumable(tool) && t.Resumes < maxResumes && !l.isClosed() {
		if refusal := l.authorize(from, tool); refusal != nil {
			return t, refusal, nil
		}
	}
	var resumed bool
	u, err := l.change(ctx, t.ID, func(t *taskstore.Task) error {
		if t.Status != "working" || t.Runner != lost || time.Now().Before(t.LeaseUntil) {
			return errTerminal // changed meanwhile: keep it
		}
		resumed = resumable(tool) && t.Resumes < maxResumes && !l.isClosed()
		if !resumed {
			interrupt(t)
			return nil
		}
		t.Resumes++
		t.Runner, t.LeaseUntil = tag, time.Now().Add(l.o.Lease)
		t.StatusMessage = "resumed: the node running it stopped"
		t.UpdatedAt = time.Now()
		return nil
	})
	if errors.Is(err, errTerminal) {
		u, err := l.o.Store.Get(ctx, l.o.Owner, t.ID)
		return u, nil, err
	}
	if err != nil || u == nil {
		return u, nil, err
	}
	if resumed {
		metrics.Tasks.WithLabelValues("resumed").Inc()
		l.o.Logger.Warn("tasks: task resumed: its runner stopped renewing its lease", "task", t.ID, "runner", lost, "resumes", u.Resumes)
		l.startRound(u, tag, from)
	} else {
		metrics.Tasks.WithLabelValues("failed").Inc()
		l.o.Logger.Warn("tasks: task failed: its runner stopped renewing its lease", "task", t.ID, "runner", lost)
	}
	return u, nil, nil
}

// Sweep takes over the owner's tasks whose runner was lost (their lease
// ran out: its node died, or its activation stopped) as a read would
// (reap), for the caller of request from: the actor's principal, with the
// newest token it presented. It reads the owner's index of leases
// (Store.Leases), and each task whose lease there ran out. It returns when
// the next lease of a task not run here ends (zero: none is left), when
// the owner should sweep again. A resume the caller's token may not run
// (Authorize) is left to a read by one that may.
func (l *Layer) Sweep(from *http.Request) (next time.Time, err error) {
	ctx := from.Context()
	leases, err := l.o.Store.Leases(ctx, l.o.Owner)
	if err != nil {
		return time.Time{}, err
	}
	later := func(until time.Time) {
		if next.IsZero() || until.Before(next) {
			next = until
		}
	}
	for id, until := range leases {
		if l.runsHere(id) {
			continue
		}
		if time.Now().Before(until) {
			later(until)
			continue
		}
		t, err := l.o.Store.Get(ctx, l.o.Owner, id)
		if errors.Is(err, taskstore.ErrUnreadable) {
			continue
		}
		if err != nil {
			return next, err
		}
		if t == nil {
			// Expired: Update takes it out of the index.
			l.o.Store.Update(ctx, l.o.Owner, id, func(*taskstore.Task) error { return errTerminal })
			continue
		}
		u, refusal, err := l.reap(from, t)
		if err != nil {
			return next, err
		}
		if refusal != nil {
			l.o.Logger.Info("tasks: a lapsed task is left for a caller allowed its tool", "task", id, "tool", t.Tool())
			continue
		}
		if u != nil && u.Status == "working" && u.Runner != "" && !l.runsHere(id) {
			later(u.LeaseUntil)
		}
	}
	return next, nil
}

// runsHere says whether a round of task id runs on this activation.
func (l *Layer) runsHere(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.rounds[id]
	return ok
}

func (l *Layer) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// interrupt fails t with the retryable -32003: the activation running it
// ended before it finished.
func interrupt(t *taskstore.Task) {
	e := rpcerr.Interruption()
	e.Message = "task interrupted: the node running it stopped before it finished; it may or may not have taken effect, retry the call if that is safe"
	t.Status, t.StatusMessage = "failed", "interrupted"
	t.Error = errorObject(int64(e.Code), e.Message, e.Data)
	t.Result, t.InputRequests, t.Responses = nil, nil, nil
	t.Runner, t.LeaseUntil = "", time.Time{}
	t.UpdatedAt = time.Now()
}

// cancelTask records the cancellation (terminal tasks stay as they are)
// and cancels the round if it runs here; a round elsewhere sees it at its
// next renewal.
func (l *Layer) cancelTask(ctx context.Context, id string) error {
	ctx, cancel := detached(ctx)
	defer cancel()
	if _, _, err := l.cancel(ctx, id, "cancelled by the client"); err != nil {
		return err
	}
	l.mu.Lock()
	r := l.rounds[id]
	l.mu.Unlock()
	if r != nil {
		r.cancel()
	}
	return nil
}

// Cancel cancels task id of o.Owner in o.Store, for the client's
// tasks/cancel or for an operator (package admin), with message as its
// statusMessage: the task is recorded cancelled, stops counting among its
// user's live tasks (o.Live), and its round, wherever it runs, sees the
// cancel at its next renewal of its lease (within a third of it) and is
// cancelled. It returns the task as it is now, and whether this call
// cancelled it: a terminal task is returned unchanged (cancelled false);
// nil for an unknown one. Only o's Store, Owner, Live and Logger are used.
func Cancel(ctx context.Context, o Options, id, message string) (t *taskstore.Task, cancelled bool, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return (&Layer{o: o}).cancel(ctx, id, message)
}

// cancel is Cancel by the layer: its listeners hear of it at once (an
// operator's Cancel, made by no layer of the owner's, reaches them at the
// owner's next look at the task: its round's renewal, or the listeners'
// own reading once a lease).
func (l *Layer) cancel(ctx context.Context, id, message string) (t *taskstore.Task, cancelled bool, err error) {
	var terminal *taskstore.Task
	t, err = l.change(ctx, id, func(t *taskstore.Task) error {
		if t.Terminal() {
			terminal = t
			return errTerminal
		}
		t.Status, t.StatusMessage = "cancelled", message
		t.InputRequests, t.Responses = nil, nil
		t.Runner, t.LeaseUntil = "", time.Time{}
		t.UpdatedAt = time.Now()
		return nil
	})
	switch {
	case errors.Is(err, errTerminal):
		return terminal, false, nil
	case err != nil || t == nil:
		return nil, false, err
	}
	metrics.Tasks.WithLabelValues("cancelled").Inc()
	return t, true, nil
}

// update records answers to a task's pending input requests; once none is
// pending, the task runs its next round here.
func (l *Layer) update(from *http.Request, id string, responses map[string]json.RawMessage) error {
	ctx, cancel := detached(from.Context())
	defer cancel()
	tag := l.tag()
	var next bool
	t, err := l.change(ctx, id, func(t *taskstore.Task) error {
		next = false
		if t.Status != "input_required" {
			return errTerminal // nothing asked: the answer changes nothing
		}
		// The answers would start a round of the tool, for this caller:
		// checked on the record they are recorded in (a read before may
		// have found the task still working).
		if refusal := l.authorize(from, t.Tool()); refusal != nil {
			return roundRefused{refusal}
		}
		kept, answered := 0, false
		for _, v := range t.Responses {
			kept += len(v)
		}
		for k, v := range responses {
			if _, pending := t.InputRequests[k]; pending {
				if err := inputResponse(k, v); err != nil {
					return err
				}
				if kept += len(v); kept > MaxRequestBytes {
					return inputsTooLarge{kept}
				}
				if t.Responses == nil {
					t.Responses = map[string]json.RawMessage{}
				}
				t.Responses[k] = v
				delete(t.InputRequests, k)
				answered = true
			}
		}
		if !answered {
			// Unknown keys alone (or none), ignored: the task stays as it
			// was, its lastUpdatedAt and TTL too.
			return errTerminal
		}
		if len(t.InputRequests) == 0 {
			t.Status, t.StatusMessage = "working", ""
			t.InputRequests = nil
			t.Runner, t.LeaseUntil = tag, time.Now().Add(l.o.Lease)
			next = true
		}
		t.UpdatedAt = time.Now()
		return nil
	})
	if errors.Is(err, errTerminal) {
		return nil
	}
	if err != nil || t == nil || !next {
		return err
	}
	metrics.Tasks.WithLabelValues("working").Inc()
	l.startRound(t, tag, from)
	return nil
}

// storeTimeout bounds a change of a task in the store that no client's
// request bounds: a round's outcome, a task's creation, a change a
// client's request asked for (detached).
const storeTimeout = 10 * time.Second

// detached is the context of a change in the store that a client's
// request (ctx's) asks for (a tasks/update's answers, a cancel, a task
// taken over by a read): not cut by the client leaving, on a time of its
// own. A change made in the store whose answer a cut lost would be taken
// for one that failed: the round it starts never started, the task left
// working under a lease nobody holds (then failed, or its resumes spent).
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}

// startRound runs a round of task t, tagged tag (its lease is the round's
// already): its call again, with the round's answers and request state, for
// the caller of request from (see Options.Bind).
func (l *Layer) startRound(t *taskstore.Task, tag string, from *http.Request) {
	params, err := nextRound(t.Request, t.Responses, t.RequestState)
	if err != nil {
		l.finish(t.ID, tag, nil, nil, false, err, false)
		return
	}
	body, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      int             `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}{"2.0", 1, "tools/call", params})
	var c common
	json.Unmarshal(params, &c)
	r := l.newRun(t.ID, tag)
	if r == nil {
		l.finish(t.ID, tag, nil, nil, false, nil, true)
		return
	}
	hr, _ := http.NewRequestWithContext(r.ctx, http.MethodPost, "http://pingmcp/mcp", bytes.NewReader(body)) // a constant URL
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json, text/event-stream")
	hr.Header.Set("MCP-Protocol-Version", protocolOf(&c))
	hr.Header.Set("Mcp-Method", "tools/call")
	hr.Header.Set("Mcp-Name", c.Name)
	hr.Header.Set(runHeader, r.id)
	r.release, r.req = l.bind(from, hr), hr
	r.escalate() // a task already: renews its lease
	go l.runRound(r, hr)
}

func protocolOf(c *common) string {
	var v string
	json.Unmarshal(c.Meta[metaProtocol], &v)
	return v
}

// nextRound is the tools/call params of a task's next round: its first
// round's, with this round's responses and the tool's request state.
func nextRound(first json.RawMessage, responses map[string]json.RawMessage, requestState string) (json.RawMessage, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(first, &p); err != nil {
		return nil, err
	}
	delete(p, "inputResponses")
	delete(p, "requestState")
	if len(responses) > 0 {
		b, err := json.Marshal(responses)
		if err != nil {
			return nil, err
		}
		p["inputResponses"] = b
	}
	if requestState != "" {
		b, _ := json.Marshal(requestState)
		p["requestState"] = b
	}
	return json.Marshal(p)
}

// bind prepares round for the MCP handler (Options.Bind).
func (l *Layer) bind(from, round *http.Request) func() {
	if l.o.Bind == nil {
		return func() {}
	}
	return l.o.Bind(from, round)
}

// tag names a new round of this activation in a lease.
func (l *Layer) tag() string { return l.o.Runner + "/" + newID() }

func newID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b)
}

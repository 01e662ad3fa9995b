// Package admin is pingmcp's operator API: JSON over HTTP on a listener of
// its own (--admin-addr), never the /mcp one, and never unauthenticated.
//
//	GET    /admin/v1/sessions?user=&client=&node=&cursor=&limit=   sessions of the whole cluster
//	GET    /admin/v1/sessions/{id}                           one session, with its cached tokens described
//	DELETE /admin/v1/sessions/{id}                           end a session
//	POST   /admin/v1/users/{subject}/revoke?for=&issuer=     revoke a user's grants, end their sessions, refuse their current tokens
//	GET    /admin/v1/nodes                                   the cluster's nodes: role, version, actors hosted
//	POST   /admin/v1/nodes/{address}/drain                   drain a node: its sessions move, then it exits
//	POST   /admin/v1/apis/reload                             every node reads its --apis file and documents again (as on SIGHUP)
//	GET    /admin/v1/tasks?user=&client=&issuer=&session=&status=&cursor=&limit=   durable tasks of the whole cluster (tasks.go)
//	GET    /admin/v1/tasks/{owner}/{id}                      one task: whom it acts for, its tool, state and runner
//	POST   /admin/v1/tasks/{owner}/{id}/cancel               cancel a task, wherever its round runs
//	GET    /metrics                                          Prometheus metrics of this node (the metrics token reads it too, and nothing else)
//	GET    /debug/pprof/, /debug/pprof/{profile,trace,heap,...}?seconds=   this node's Go runtime profiles (profiles.go)
//
// Sessions and tasks are read from the stores that every node shares
// (Redis), so any node's admin API lists every session, passivated or live,
// and every task. No response carries a token value, nor a task's
// arguments or result.
//
// A session whose snapshot is there but cannot be read (larger than a node
// reads, not a string in Redis, not a snapshot this node decodes) is still
// an operator's to see and end: the list shows it, with its id and why
// ("unreadable", never its content), when no user, client or node filter
// is given (nothing of it can match one); DELETE ends it as any other, its
// live actor told to stop, its count against its user found among every
// user's counts; a revocation finds the user's in their count of sessions
// (state.UserSessions, kept with --max-sessions-per-user) and cannot
// without it. GET of one answers 500, saying why.
package admin

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/internal/redisscan"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/transport"
)

// DefaultScope is the scope an access token needs to be an admin token.
const DefaultScope = "pingmcp:admin"

// Options configure the admin API.
type Options struct {
	// Token is the static admin bearer token (--admin-token-file). Empty:
	// only access tokens with Scope are admitted.
	Token string
	// MetricsToken, if set, is a static bearer token that reads GET
	// /metrics and nothing else (--metrics-token-file): Prometheus's, so
	// that whoever reads Prometheus's configuration cannot drain nodes or
	// end sessions with it. It must differ from Token.
	MetricsToken string
	// Verifier, if set, admits access tokens of the authorization server
	// (PingFederate) that carry Scope. The same verifier as /mcp's: the
	// tokens are for pingmcp, and the scope makes them admin tokens.
	Verifier auth.Verifier
	// Scope is the scope an admin access token must carry (DefaultScope).
	Scope string
	// Budget, if set, is the budget of refused credentials per client
	// address that bounds the Verifier's calls caused by an address that
	// keeps sending bad tokens (transport.TokenBudget): the edge's, shared.
	// An address over it gets 429 with Retry-After for a token that would
	// cost an introspection call (or cannot be a token), and its tokens
	// are verified as before otherwise; the static tokens never spend it,
	// and are never refused by it. Nil: no such bound.
	Budget *transport.TokenBudget
	// Revoked, if set, refuses the tokens of users an operator revoked.
	Revoked func(*auth.Token) bool
	// RevokeToken, if set, revokes at the authorization server the tokens
	// exchanged for a session an operator ends (RFC 7009).
	RevokeToken func(ctx context.Context, token string) error
	// RevokeGrants, if set, revokes at the authorization server (Issuer)
	// every persistent grant of a user an operator revokes, so that the
	// refresh tokens their clients hold stop working (PingFederate's OAuth
	// Access Grant Management Service). Unset, a revoked user's client can
	// refresh and carry on once the revocation (for=) ends, and every
	// revocation answer says so.
	RevokeGrants func(ctx context.Context, subject string) error
	// Audit records every admin request, refused ones included (nil: none).
	Audit  *audit.Logger
	Stores *state.Stores
	Node   *cluster.Node
	// Issuer is the authorization server whose users are revoked when a
	// revocation names none.
	Issuer string
	Logger *slog.Logger
}

// Handler serves the admin API.
func Handler(opts Options) (http.Handler, error) {
	if strings.TrimSpace(opts.Token) == "" && opts.Verifier == nil {
		return nil, errors.New("the admin API needs a static token or an authorization server")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	metricsToken := strings.TrimSpace(opts.MetricsToken)
	if admin := strings.TrimSpace(opts.Token); metricsToken != "" && admin != "" && (strings.Contains(metricsToken, admin) || strings.Contains(admin, metricsToken)) {
		return nil, errors.New("the metrics token must neither hold nor be part of the admin token: it would give away what the admin token does")
	}
	opts.Scope = cmp.Or(opts.Scope, DefaultScope)
	a := &api{opts: opts, token: []byte(strings.TrimSpace(opts.Token)), metricsToken: []byte(metricsToken),
		anonymous: telemetry.Throttle{Burst: anonymousRecords}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/sessions", a.listSessions)
	mux.HandleFunc("GET /admin/v1/sessions/{id}", a.showSession)
	mux.HandleFunc("DELETE /admin/v1/sessions/{id}", a.endSession)
	mux.HandleFunc("GET /admin/v1/nodes", a.listNodes)
	mux.HandleFunc("POST /admin/v1/nodes/{address}/drain", a.drainNode)
	mux.HandleFunc("POST /admin/v1/users/{subject}/revoke", a.revokeUser)
	mux.HandleFunc("POST /admin/v1/apis/reload", a.reloadAPIs)
	mux.HandleFunc("GET /admin/v1/tasks", a.listTasks)
	mux.HandleFunc("GET /admin/v1/tasks/{owner}/{id}", a.showTask)
	mux.HandleFunc("POST /admin/v1/tasks/{owner}/{id}/cancel", a.cancelTaskAPI)
	mux.Handle(metricsRoute, metrics.Handler())
	profiles(mux)
	// The console (console.go) signs its operators in itself.
	console, root := a.console(), http.NewServeMux()
	root.Handle("/console", console)
	root.Handle("/console/", console)
	root.Handle("/", a.audited(mux, a.authenticate(mux)))
	return boundBody(root), nil
}

// boundBody gives a request's body formTimeout to arrive whole, whatever
// its route: the admin listener has no read timeout (for its profiles), and
// net/http reads a body its handler left before it answers (or after), so
// that anyone reaching the listener held a connection, and a file
// descriptor of the process, for good with each request whose body never
// came. A body that is not read in time keeps the deadline, and its
// connection closes once it passed. A body read to its end lifts it
// (net/http clears it as it starts the read that notices a client leaving),
// so that a handler may run on. A request without a body gets none.
func boundBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(formTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// metricsRoute is the one route the metrics token reads.
const metricsRoute = "GET /metrics"

type api struct {
	opts  Options
	token []byte
	// metricsToken is Options.MetricsToken, trimmed (empty: none).
	metricsToken []byte
	// anonymous bounds the audit records of requests without an operator
	// (anyone who reaches the listener can send them): 20 a second, the
	// others counted in the next one's details.suppressed
	// (summarizeSuppressed).
	anonymous telemetry.Throttle
	summary   atomic.Bool // a summary of suppressed records is due
	// unverifiedLog bounds the log lines of tokens not verified (the
	// authorization server out of reach): anyone can send a token, and
	// such a refusal spends no budget.
	unverifiedLog telemetry.Throttle
}

// anonymousRecords is how many records of requests without an operator
// the audit log takes a second.
const anonymousRecords = 20

// summarizeSuppressed writes, a second after the first record a flood of
// requests without an operator did not get, a record of how many did not
// (action audit.suppressed), unless one of theirs written meanwhile said
// so: the count is not lost when the flood stops.
func (a *api) summarizeSuppressed() {
	if !a.summary.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(time.Second, func() {
		a.summary.Store(false)
		if ok, n := a.anonymous.Allow(); ok && n > 0 {
			a.opts.Audit.Admin(context.Background(), audit.AdminRecord{Action: "audit.suppressed", Outcome: audit.OutcomeDenied,
				Details: map[string]any{"suppressed": n}})
		}
	})
}

// Operator is who an admin request comes from.
type Operator struct {
	// Issuer, Subject and ClientID name the operator of an access token;
	// all empty for the static token.
	Issuer   string `json:"issuer,omitempty"`
	Subject  string `json:"subject,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	// TokenID is the access token's jti.
	TokenID string `json:"jti,omitempty"`
	// Static is set for the static admin token.
	Static bool `json:"static,omitempty"`
	// Metrics is set for the static metrics token, which reads GET
	// /metrics and nothing else.
	Metrics bool `json:"metrics,omitempty"`
	// The access token's issue and expiry times: a console sign-in made
	// with it ends when it expires or its user is revoked.
	issuedAt, expiry time.Time
}

// stillValid says whether the operator's credential still holds: the
// static token always does; an access token until it expires or its user
// is revoked.
func (o *Operator) stillValid(revoked func(*auth.Token) bool) bool {
	if o.Static {
		return true
	}
	if !o.expiry.IsZero() && !time.Now().Before(o.expiry) {
		return false
	}
	return revoked == nil || !revoked(&auth.Token{Principal: auth.Principal{Issuer: o.Issuer, Subject: o.Subject, ClientID: o.ClientID}, IssuedAt: o.issuedAt})
}

// String names the operator for logs and audit records.
func (o *Operator) String() string {
	if o.Metrics {
		return "static-metrics-token"
	}
	if o.Static {
		return "static-admin-token"
	}
	return o.Subject + " (" + o.Issuer + ", client " + o.ClientID + ")"
}

type operatorKey struct{}

// OperatorOf returns the operator an authenticated admin request comes from.
func OperatorOf(ctx context.Context) *Operator {
	o, _ := ctx.Value(operatorKey{}).(*Operator)
	return o
}

// refusal is why a credential is not an admin's: an RFC 6750 error, or
// unavailable when the authorization server could not be asked, or limited
// when its address is over its budget of refused credentials.
type refusal struct {
	err         *auth.Error // nil: no credential at all
	unavailable bool
	limited     *transport.OverBudget
	// metrics: the credential is the metrics token, which authenticate
	// admits on metricsRoute alone.
	metrics bool
}

// metricsOnly refuses the metrics token on every route but metricsRoute,
// and at the console's sign-in.
var metricsOnly = &auth.Error{Code: auth.CodeInsufficientScope, Description: "the metrics token reads GET /metrics only"}

// check says who token, presented by r, belongs to, if it is an admin's:
// the static token, or an access token of the authorization server with
// the admin scope (verified within Budget).
func (a *api) check(r *http.Request, token string) (*Operator, *refusal) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, &refusal{}
	}
	if len(a.token) > 0 && subtle.ConstantTimeCompare([]byte(token), a.token) == 1 {
		return &Operator{Static: true}, nil
	}
	if len(a.metricsToken) > 0 && subtle.ConstantTimeCompare([]byte(token), a.metricsToken) == 1 {
		return nil, &refusal{err: metricsOnly, metrics: true}
	}
	if a.opts.Verifier == nil {
		return nil, &refusal{err: &auth.Error{Code: auth.CodeInvalidToken, Description: "invalid admin token"}}
	}
	var tok *auth.Token
	var err error
	if a.opts.Budget != nil {
		tok, err = a.opts.Budget.Verify(r, a.opts.Verifier, token)
	} else {
		tok, err = a.opts.Verifier.Verify(r.Context(), token)
	}
	var over *transport.OverBudget
	if errors.As(err, &over) {
		metrics.Limited.WithLabelValues("admin_address").Inc()
		return nil, &refusal{limited: over}
	}
	if err == nil && a.opts.Revoked != nil && a.opts.Revoked(tok) {
		err = &auth.Error{Code: auth.CodeInvalidToken, Description: "this user's tokens were revoked by an operator"}
	}
	if err != nil {
		var aerr *auth.Error
		if errors.As(err, &aerr) {
			if aerr.Code == auth.CodeInvalidToken {
				desc := "invalid admin token: not a valid access token (" + aerr.Description + ")"
				if len(a.token) > 0 {
					desc = "invalid admin token: neither the static admin token nor a valid access token (" + aerr.Description + ")"
				}
				aerr = &auth.Error{Code: aerr.Code, Description: desc}
			}
			return nil, &refusal{err: aerr}
		}
		a.unverifiedLog.Log(a.opts.Logger, slog.LevelWarn, "admin: could not verify a bearer token", "err", err)
		return nil, &refusal{unavailable: true}
	}
	if !tok.HasScopes(a.opts.Scope) {
		return nil, &refusal{err: &auth.Error{Code: auth.CodeInsufficientScope,
			Description: "the token lacks the admin scope", Scopes: []string{a.opts.Scope}}}
	}
	return &Operator{Issuer: tok.Issuer, Subject: tok.Subject, ClientID: tok.ClientID, TokenID: tok.ID,
		issuedAt: tok.IssuedAt, expiry: tok.Expiry}, nil
}

// spend spends one of the budget of r's address for a credential refused
// for what it is (not for an authorization server out of reach, nor by
// the budget itself, nor the metrics token, a static token, refused on a
// route it does not read).
func (a *api) spend(r *http.Request, why *refusal) {
	if a.opts.Budget != nil && !why.unavailable && why.limited == nil && !why.metrics {
		a.opts.Budget.Refused(r)
	}
}

// refuse answers a refused credential: 401 or 403 with an RFC 6750
// challenge, 503 when the authorization server could not be asked, or 429
// with Retry-After when the credential's address is over its budget of
// refused credentials; and spends that budget (spend).
func (a *api) refuse(w http.ResponseWriter, r *http.Request, why *refusal) {
	a.spend(r, why)
	if why.limited != nil {
		w.Header().Set("Retry-After", strconv.Itoa(why.limited.Seconds()))
		writeError(w, http.StatusTooManyRequests, why.limited.Error())
		return
	}
	if why.unavailable {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "the authorization server could not be reached; retry")
		return
	}
	status, msg, scopes := http.StatusUnauthorized, "an admin bearer token is required", []string{a.opts.Scope}
	if why.err != nil {
		msg, status = why.err.Error(), why.err.Status()
	}
	w.Header().Set("WWW-Authenticate", strings.Replace(auth.Challenge(why.err, "", scopes), "Bearer", `Bearer realm="pingmcp-admin",`, 1))
	writeError(w, status, msg)
}

// authenticate lets through only requests bearing an admin's token, with
// the operator in their context, and requests of next's metricsRoute
// bearing the metrics token.
func (a *api) authenticate(next *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, present, err := auth.BearerToken(r.Header.Values("Authorization"))
		if !present || err != nil {
			why := &refusal{}
			if err != nil {
				why.err = &auth.Error{Code: auth.CodeInvalidRequest, Description: "malformed Authorization header"}
			}
			a.refuse(w, r, why)
			return
		}
		op, why := a.check(r, raw)
		if why != nil && why.metrics {
			op = &Operator{Metrics: true}
			// The route as the mux matches it (a HEAD is served as the
			// GET; a path to clean is only redirected).
			if _, pattern := next.Handler(r); pattern == metricsRoute {
				why = nil
			} else {
				noteOperator(w, op) // audited (throttled) as the metrics token's
			}
		}
		if why != nil {
			a.refuse(w, r, why)
			return
		}
		a.opts.Logger.Info("admin request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "operator", op.String())
		noteOperator(w, op)
		if h, pattern := next.Handler(r); pattern == "" {
			unrouted(w, r, h)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), operatorKey{}, op)))
	})
}

// unrouted answers a request that no route takes as the API answers its
// other errors, in JSON: 404, or 405 with the Allow that the mux's own
// answer, h, names (a path whose routes take other methods). What else h
// answers (a redirect to the path cleaned) it answers.
func unrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	mux := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(mux, r)
	switch mux.status {
	case http.StatusNotFound:
		writeError(w, http.StatusNotFound, "no such route of the admin API")
	case http.StatusMethodNotAllowed:
		allow := mux.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed on this route; allowed: "+allow)
	default:
		h.ServeHTTP(w, r)
	}
}

// headerRecorder keeps a response's header and status, and drops its body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *headerRecorder) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(b), nil
}

// actions name the admin API's routes in audit records.
var actions = map[string]string{
	"GET /admin/v1/sessions":                   "sessions.list",
	"GET /admin/v1/sessions/{id}":              "sessions.show",
	"DELETE /admin/v1/sessions/{id}":           "sessions.kill",
	"POST /admin/v1/users/{subject}/revoke":    "users.revoke",
	"GET /admin/v1/nodes":                      "nodes.list",
	"POST /admin/v1/nodes/{address}/drain":     "nodes.drain",
	"POST /admin/v1/apis/reload":               "apis.reload",
	"GET /admin/v1/tasks":                      "tasks.list",
	"GET /admin/v1/tasks/{owner}/{id}":         "tasks.show",
	"POST /admin/v1/tasks/{owner}/{id}/cancel": "tasks.cancel",
	"GET /debug/pprof/":                        "debug.profile",
	"GET /debug/pprof/profile":                 "debug.profile",
	"GET /debug/pprof/trace":                   "debug.profile",
	"POST /console/login":                      "console.login",
	"POST /console/logout":                     "console.logout",
	"POST /console/sessions/{id}/end":          "sessions.kill",
	"POST /console/tasks/{owner}/{id}/cancel":  "tasks.cancel",
}

// audited writes one audit record per admin request (scrapes of /metrics
// excepted): who, which action on what, the outcome and how long it took.
// Refused requests are recorded too, with no operator (but the metrics
// token, named as such).
func (a *api) audited(mux *http.ServeMux, next http.Handler) http.Handler {
	if a.opts.Audit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if r.URL.Path == "/metrics" && rec.status < 400 {
			return
		}
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, consoleRoot) {
			return // the console's pages, which refresh themselves
		}
		operator := ""
		if op := rec.operator; op != nil {
			operator = op.String()
		}
		// A request without an operator can be sent by anyone who reaches
		// the listener: its records are throttled (anonymousRecords a
		// second, those not written counted in the next one, or in a
		// record of their own once the flood stops), and what it chose
		// (its path, the target, the query) cut to a bound
		// (telemetry.Clip), so that it cannot make its record as large as
		// itself. So are those of the metrics token, which is no
		// operator's (whoever reads Prometheus's configuration has it).
		// An operator's are all written whole.
		clip := func(s string) string { return s }
		var suppressed int
		if op := rec.operator; op == nil || op.Metrics {
			clip = telemetry.Clip
			var ok bool
			if ok, suppressed = a.anonymous.Allow(); !ok {
				a.summarizeSuppressed()
				return
			}
		}
		_, pattern := mux.Handler(r)
		action := actions[pattern]
		if action == "" {
			action = r.Method + " " + r.URL.EscapedPath() // as sent: /admin%2Fv1 is not /admin/v1
		}
		target := wildcard(pattern, r.URL.EscapedPath())
		if action == "debug.profile" {
			target = cmp.Or(strings.TrimPrefix(r.URL.Path, "/debug/pprof/"), "index")
		}
		outcome := audit.OutcomeOK
		switch {
		case rec.status >= 500:
			outcome = audit.OutcomeError
		case rec.status >= 400, rec.denied:
			outcome = audit.OutcomeDenied
		}
		// The HTTP status, and the query parameters that say what the
		// request was for under a key of their own (?status= cannot pass
		// for the HTTP status).
		details := map[string]any{"status": rec.status, "remote": r.RemoteAddr}
		for k, v := range rec.details {
			details[k] = v
		}
		query := map[string]string{}
		for _, k := range []string{"user", "client", "node", "for", "issuer", "session", "status", "seconds"} {
			if v := r.URL.Query().Get(k); v != "" {
				query[k] = clip(v)
			}
		}
		if len(query) > 0 {
			details["query"] = query
		}
		if suppressed > 0 {
			details["suppressed"] = suppressed
		}
		action, target = clip(action), clip(target)
		a.opts.Audit.Admin(r.Context(), audit.AdminRecord{Operator: operator, Action: action, Target: target,
			Outcome: outcome, Duration: time.Since(start), Details: details})
	})
}

// wildcard returns the parts of path that the pattern's wildcards matched,
// joined by "/" ("" if it has none): the target of an admin action (a
// session's id; a task's owner/id).
func wildcard(pattern, path string) string {
	_, pattern, _ = strings.Cut(pattern, " ")
	want := strings.Split(strings.Trim(pattern, "/"), "/")
	got := strings.Split(strings.Trim(path, "/"), "/")
	var parts []string
	for i, seg := range want {
		if strings.HasPrefix(seg, "{") && i < len(got) {
			v, _ := url.PathUnescape(got[i])
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, "/")
}

// noteOperator tells the audit who an admitted request comes from.
func noteOperator(w http.ResponseWriter, op *Operator) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.operator = op
	}
}

// noteAudit adds key and value to the details of the request's audit
// record (what the handler learnt: that a session it ended had a snapshot
// that cannot be read, say).
func noteAudit(w http.ResponseWriter, key string, value any) {
	if rec, ok := w.(*statusRecorder); ok {
		if rec.details == nil {
			rec.details = map[string]any{}
		}
		rec.details[key] = value
	}
}

// noteDenied tells audited that the request was refused, whatever its
// status says (the console answers a change from no one signed in with a
// redirect to its sign-in page).
func noteDenied(w http.ResponseWriter) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.denied = true
	}
}

// statusRecorder notes a response's status, and the operator its request
// was authenticated as.
type statusRecorder struct {
	http.ResponseWriter
	status   int
	operator *Operator
	denied   bool           // noteDenied
	details  map[string]any // noteAudit
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

const (
	defaultLimit = 50
	maxLimit     = 500
)

func (a *api) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := parseLimit(w, r)
	if !ok {
		return
	}
	out, next, err := a.sessionPage(r.Context(), q.Get("user"), q.Get("client"), q.Get("node"), q.Get("cursor"), limit)
	if errors.Is(err, redisscan.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor is not one a page of this list gave: start from the first page")
		return
	}
	if err != nil {
		a.opts.Logger.Warn("admin: list sessions", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the session store cannot be read: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out, "next": next})
}

// find reads the session named in the path, or writes 404.
func (a *api) find(w http.ResponseWriter, r *http.Request) (state.SessionInfo, bool) {
	info, found, err := a.describeSession(r.Context(), r.PathValue("id"))
	switch {
	case err != nil && !found:
		writeError(w, http.StatusServiceUnavailable, "the session store cannot be read: "+err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, "the session's snapshot cannot be read: "+snapshotWhy(err))
	case !found:
		writeError(w, http.StatusNotFound, "no such session")
	}
	return info, found && err == nil
}

// snapshotWhy says why a session's snapshot cannot be read, for err: a
// value over its bound or of another type by its key and size or type;
// else as the lists say it (a decoder's error may quote what it could not
// decode, which someone else may have written).
func snapshotWhy(err error) string {
	var wrong *state.WrongType
	if errors.Is(err, state.ErrTooLarge) || errors.As(err, &wrong) {
		return err.Error()
	}
	return cmp.Or(state.WhyUnreadable(err), "it does not open")
}

func (a *api) showSession(w http.ResponseWriter, r *http.Request) {
	if info, ok := a.find(w, r); ok {
		writeJSON(w, http.StatusOK, info)
	}
}

// endSession ends the session named in the path, whether its snapshot can
// be read or not (storedSession): 204, 404 for none, 503 when the store
// cannot be read (nothing changed) or the session could not be ended.
func (a *api) endSession(w http.ResponseWriter, r *http.Request) {
	info, found, err := a.storedSession(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "the session store cannot be read: "+err.Error())
		return
	case !found:
		writeError(w, http.StatusNotFound, "no such session")
		return
	}
	noteUnreadable(w, info)
	revoked, err := a.terminate(r, info.ID)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the session could not be ended: "+err.Error())
		return
	}
	a.logEnded("admin: session ended", info, revoked, OperatorOf(r.Context()))
	w.WriteHeader(http.StatusNoContent)
}

// storedSession reads what ending session id needs of it, opening nothing
// sealed: found is false if there is none, and an error means that the
// store cannot be read. A snapshot that is there but cannot be read (too
// large, not a string in Redis, not a snapshot this node decodes) is
// found: its SessionInfo has the id and why (Unreadable), and nothing
// else, so that an operator can end it all the same.
func (a *api) storedSession(ctx context.Context, id string) (info state.SessionInfo, found bool, err error) {
	snap, err := a.opts.Stores.Snapshots.Get(ctx, id)
	if errors.Is(err, state.ErrUnreadable) {
		return unreadable(id, err), true, nil
	}
	if err != nil || snap == nil {
		return info, false, err
	}
	if info, err = a.opts.Stores.Describe(id, snap, false); err != nil {
		return unreadable(id, err), true, nil
	}
	return info, true, nil
}

// unreadable is what an operator sees of session id, whose stored snapshot
// could not be read for err: its id, and why (never its content).
func unreadable(id string, err error) state.SessionInfo {
	return state.SessionInfo{ID: id, Unreadable: cmp.Or(state.WhyUnreadable(err), "it cannot be read")}
}

// noteUnreadable notes in the audit record of a request ending session
// info that its snapshot could not be read, and why.
func noteUnreadable(w http.ResponseWriter, info state.SessionInfo) {
	if info.Unreadable != "" {
		noteAudit(w, "unreadable", info.Unreadable)
	}
}

// logEnded logs that an operator ended session info, with why its
// snapshot could not be read if it could not (its owner then unknown).
func (a *api) logEnded(msg string, info state.SessionInfo, tokensRevoked int, op *Operator) {
	attrs := []any{"session", info.ID, "subject", info.Subject, "client_id", info.ClientID, "tokens_revoked", tokensRevoked, "operator", op.String()}
	if info.Unreadable != "" {
		attrs = append(attrs, "unreadable", info.Unreadable)
	}
	a.opts.Logger.Info(msg, attrs...)
}

// terminate ends a session now: its stored state goes, the tokens
// exchanged for it are revoked, and its live actor is told to stop. A
// snapshot that cannot be read (state.ErrUnreadable) does not stop it: no
// exchanged token of it is known to revoke, the rest is done, and the
// session's actor, which may still be live somewhere, is told to stop all
// the same.
func (a *api) terminate(r *http.Request, id string) (tokensRevoked int, err error) {
	snap, err := a.opts.Stores.Snapshots.Get(r.Context(), id)
	if errors.Is(err, state.ErrUnreadable) {
		snap, err = nil, nil
	}
	if err != nil {
		return 0, err
	}
	if tokensRevoked, err = a.end(r.Context(), id, snap); err != nil {
		return 0, err
	}
	a.stopActor(r, id, "ended by an operator")
	return tokensRevoked, nil
}

// end ends a stored session: its snapshot and events go, then the tokens
// exchanged for it are revoked at the authorization server (best effort: a
// failure is logged, the session is ended anyway). It returns how many
// tokens were revoked.
func (a *api) end(ctx context.Context, id string, snap []byte) (int, error) {
	var tokens []string
	if a.opts.RevokeToken != nil && snap != nil {
		var err error
		if tokens, err = a.opts.Stores.Delegated(id, snap); err != nil {
			a.opts.Logger.Warn("admin: the session's exchanged tokens cannot be read to revoke them", "session", id, "err", err)
		}
	}
	if err := a.opts.Stores.End(ctx, id); err != nil {
		return 0, err
	}
	revoked := 0
	for _, tok := range tokens {
		if err := a.opts.RevokeToken(ctx, tok); err != nil {
			a.opts.Logger.Warn("admin: an exchanged token could not be revoked; it lives until it expires", "session", id, "err", err)
			continue
		}
		revoked++
	}
	return revoked, nil
}

// maxRevocation bounds how long a revocation lasts.
const maxRevocation = 30 * 24 * time.Hour

// revokeUser revokes a user: their persistent grants at the authorization
// server (so that no refresh token of theirs works any more), then, for the
// time asked (default 1 h), every edge refuses their tokens issued until now,
// within a second; every session of theirs ends and their live actors stop.
//
// The revocation does not depend on the caller staying: an admin client
// that gives up (or disconnects) does not cancel it. The edges' refusal is
// stored first, so that a slow authorization server does not delay it, and
// stored again with its time taken after the grants' revocation returns: a
// refresh that raced the grants' revocation got a token issued before that
// time, which the edges refuse. A failure to revoke the grants does not stop
// the rest, but the answer is then 502 and names the failure: the user's
// client may refresh once for= ends, so the operator must retry (revoking
// again is harmless: it never shortens a revocation). Without a grant
// service configured the answer is 200 and says that the grants were not
// revoked.
func (a *api) revokeUser(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	if subject == "." || subject == ".." {
		// They survive url.PathEscape and would change the grants' path.
		writeError(w, http.StatusBadRequest, `a subject "." or ".." cannot be revoked`)
		return
	}
	q := r.URL.Query()
	issuer := q.Get("issuer")
	if issuer == "" {
		issuer = a.opts.Issuer
	}
	span := time.Hour
	if s := q.Get("for"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second || d > maxRevocation {
			writeError(w, http.StatusBadRequest, "for must be a duration between 1s and 720h")
			return
		}
		span = d
	}
	ctx := context.WithoutCancel(r.Context())
	key := state.RevocationKey(issuer, subject)
	if len(key) > state.MaxRevocationKey {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the issuer and subject take %d bytes together, over the %d a revocation may name", len(key), state.MaxRevocationKey))
		return
	}
	now := time.Now()
	rev := state.Revocation{At: now, Until: now.Add(span)}
	if err := a.opts.Stores.Revocations.Revoke(ctx, key, rev); err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, state.ErrRevocationsFull) {
			// Not a retry soon: room comes as revocations end.
			status = http.StatusInsufficientStorage
		}
		writeError(w, status, "the revocation could not be stored, nothing was revoked: "+err.Error())
		return
	}
	grantsErr := a.revokeGrants(ctx, issuer, subject)
	now = time.Now()
	rev = state.Revocation{At: now, Until: now.Add(span)}
	if err := a.opts.Stores.Revocations.Revoke(ctx, key, rev); err != nil {
		grants := "the grants were revoked"
		if grantsErr != nil {
			grants = "the grants were not revoked: " + grantsErr.Error()
		}
		writeError(w, http.StatusServiceUnavailable, "the user's tokens until the grants' revocation began are refused, but a token refreshed during it may not be ("+grants+"); revoke again: "+err.Error())
		return
	}
	ended, tokensRevoked := 0, 0
	err := a.eachSession(ctx, func(info state.SessionInfo, snap []byte) error {
		if info.Subject != subject || info.Issuer != issuer {
			return nil
		}
		n, err := a.end(ctx, info.ID, snap)
		if err != nil {
			return err
		}
		ended, tokensRevoked = ended+1, tokensRevoked+n
		return nil
	})
	if err == nil {
		var n int
		n, err = a.endUnreadableOf(ctx, issuer, subject)
		ended += n
		if n > 0 {
			noteAudit(w, "unreadable_sessions_ended", n)
		}
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "revoked, but the sessions could not all be ended: "+err.Error())
		return
	}
	// Every node stops the user's live actors, session and principal
	// (stateless) ones, and with them the tokens they cached.
	stopped, unreached := a.stopSubject(ctx, issuer, subject)
	out := map[string]any{"issuer": issuer, "subject": subject, "revoked_at": rev.At, "until": rev.Until,
		"sessions_ended": ended, "actors_stopped": stopped, "nodes_unreached": unreached, "tokens_revoked": tokensRevoked,
		"grants_revoked": grantsErr == nil}
	status := http.StatusOK
	if grantsErr != nil {
		out["grants_error"] = grantsErr.Error()
		if !errors.Is(grantsErr, errNoGrantService) {
			status = http.StatusBadGateway
		}
		a.opts.Logger.Warn("admin: the user's grants were not revoked: their client may refresh once the revocation ends",
			"issuer", issuer, "subject", subject, "err", grantsErr)
	}
	a.opts.Logger.Info("admin: user revoked", "issuer", issuer, "subject", subject, "until", rev.Until,
		"sessions_ended", ended, "actors_stopped", stopped, "nodes_unreached", unreached, "tokens_revoked", tokensRevoked,
		"grants_revoked", grantsErr == nil)
	writeJSON(w, status, out)
}

// endUnreadableOf ends the sessions of the user (issuer, subject) whose
// snapshots cannot be read, which a listing cannot tell whose they are: it
// finds them in the user's count of sessions (state.UserSessions), kept
// only when sessions are counted (--max-sessions-per-user). Without it
// they cannot be found, and live on until an operator ends them one by
// one (the list shows them) or their idle timeout. It returns how many it
// ended.
func (a *api) endUnreadableOf(ctx context.Context, issuer, subject string) (int, error) {
	d := a.opts.Stores
	user := d.UserKey(issuer, subject)
	if user == "" {
		return 0, nil
	}
	ids, err := d.Users.Sessions(ctx, user, d.MaxSessionsPerUser)
	if errors.Is(err, state.ErrTooLarge) {
		// Not pingmcp's count: the rest of the revocation goes on.
		a.opts.Logger.Warn("admin: a revoked user's sessions whose snapshots cannot be read were not looked for: their count cannot be read",
			"issuer", issuer, "subject", subject, "err", err)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, id := range ids {
		info, found, err := a.storedSession(ctx, id)
		if err != nil {
			return ended, err
		}
		if !found || info.Unreadable == "" {
			continue // gone (ended above, or expired), or readable: the listing judged it
		}
		if err := d.EndCounted(ctx, id, user); err != nil {
			return ended, err
		}
		ended++
		a.opts.Logger.Info("admin: a revoked user's session whose snapshot cannot be read ended", "session", id,
			"issuer", issuer, "subject", subject, "unreadable", info.Unreadable)
	}
	return ended, nil
}

// errNoGrantService: no grant management service is configured for the
// revoked user's issuer.
var errNoGrantService = errors.New("no grant management service is configured for this issuer (--grants-user): the user's refresh tokens still work")

// revokeGrants revokes the user's persistent grants at their issuer.
func (a *api) revokeGrants(ctx context.Context, issuer, subject string) error {
	if a.opts.RevokeGrants == nil || issuer != a.opts.Issuer {
		return errNoGrantService
	}
	return a.opts.RevokeGrants(ctx, subject)
}

// eachSession calls f with every stored session the node can read, page by
// page, until f fails.
func (a *api) eachSession(ctx context.Context, f func(info state.SessionInfo, snapshot []byte) error) error {
	cursor := ""
	for {
		page, next, err := a.opts.Stores.Snapshots.List(ctx, cursor, maxLimit)
		if err != nil {
			return err
		}
		for _, st := range page {
			if st.Unreadable != nil {
				continue // whose it is cannot be known
			}
			info, err := a.opts.Stores.Describe(st.Session, st.Snapshot, false)
			if err != nil {
				continue // a snapshot of another version, or unreadable
			}
			if err := f(info, st.Snapshot); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// stopActor stops the session's live actor wherever it is, so that its
// requests and streams end now, not at its next write. The session is
// already gone from the store, so a failure here only delays that.
func (a *api) stopActor(r *http.Request, id, reason string) {
	stop := stopSessionActor
	if stop == nil {
		if a.opts.Node == nil {
			return
		}
		stop = func(ctx context.Context, id, reason string) error {
			return a.opts.Node.StopActor(ctx, cluster.SessionKind, id, reason)
		}
	}
	if err := stop(r.Context(), id, reason); err != nil {
		a.opts.Logger.Warn("admin: the session's actor could not be told to stop; it stops at its next request", "session", id, "err", err)
	}
}

// stopSessionActor, when set (by the tests, which serve no cluster node),
// is what stopActor tells a session's actor to stop with, instead of the
// node's StopActor.
var stopSessionActor func(ctx context.Context, id, reason string) error

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

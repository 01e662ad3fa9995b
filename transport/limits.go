package transport

import (
	"bytes"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
)

// Limits are the edge's limits per caller. The edge applies them twice
// (Options.Limits, Options.UserLimits): per principal, the verified (issuer,
// subject, client_id) of a request's token, and per user, its (issuer,
// subject), so that registering more clients (DCR is open) does not
// multiply what one user may do. Both must admit a request. They apply only
// when the edge authenticates (with --auth none every caller is the same
// anonymous principal, on loopback). Each edge counts for itself: behind a
// load balancer a caller gets up to these limits at every edge.
//
// The zero value of a field turns its limit off (cmd/pingmcp gives the
// defaults of its flags).
type Limits struct {
	// Rate is the requests per second a principal may make (a token bucket
	// refilled at Rate, holding at most Burst); beyond, 429 with Retry-After.
	Rate  float64
	Burst int
	// MaxConcurrent bounds a principal's POST and DELETE requests in flight.
	MaxConcurrent int
	// MaxStreams bounds a principal's GET (SSE) and subscriptions/listen
	// streams open at once (holdsStream).
	MaxStreams int
	// MaxTracked bounds the principals tracked at once (and as many users,
	// and as many addresses, each in a table of its own)
	// (DefaultMaxTracked when zero). Idle entries whose bucket has refilled
	// are dropped as new ones come; when every entry has requests in flight
	// a newcomer is refused (429) rather than tracked.
	MaxTracked int
}

// DefaultMaxTracked is how many principals and addresses an edge tracks when
// Limits leaves it zero.
const DefaultMaxTracked = 100_000

// Unauthenticated callers are tracked by client address (clientaddr.go:
// the peer, or the client a trusted proxy names; an IPv6 address by its
// /64, addressBlock), in a table of their own (TokenBudget, of MaxTracked
// entries), so that addresses, which cost an attacker nothing to rotate,
// cannot push principals' buckets out and erase their debt. A request
// whose token is refused (401/403, not a 503 for an unreachable
// authorization server) spends one of its address's tokens, at the
// principal Rate and Burst.
// Valid tokens spend nothing there, so that users behind one proxy or NAT
// do not share a budget.
//
// An address with no tokens left is not refused outright: that would lock
// out every valid user behind it as soon as one client sends garbage. What
// it loses is the expensive path (overBudget), by the token's auth.Cost: a
// token checked locally (a JWT's signature, by a cached key, with key
// fetches paced by the verifier; an introspection answer already cached)
// is still verified, and a valid one is served; one that cannot verify (not
// a JWT, for a JWT verifier) is refused (429). An introspection call (or a
// verifier that cannot tell) goes through a lane of overBudgetVerifications
// at a time for the whole edge (for the whole node: the admin API shares
// the edge's TokenBudget), waiting its turn (refused, 429, only after
// overBudgetWait), among at most overBudgetWaiters of its address's
// requests (beyond, refused at once): one flooding address can then cost
// the authorization server at most that many calls at once, and cannot
// queue more than a couple of them ahead of anyone's valid token.

// overBudgetVerifications bounds the expensive verifications in flight for
// addresses over their budget, at one TokenBudget (one node).
const overBudgetVerifications = 2

// DefaultMaxBatch and DefaultMaxInitializeBytes bound what one POST may ask
// for when Options leaves them zero (cmd/pingmcp gives its flags' defaults).
const (
	DefaultMaxBatch           = 16
	DefaultMaxInitializeBytes = 64 << 10
)

// bodyAllowed refuses, before anything is forwarded, an initialize whose
// params (what its session keeps, in memory and in its snapshot, for its
// life) exceed MaxInitializeBytes: 400, since sending the same again cannot
// succeed. (A batch beyond MaxBatch is refused the same way as it is read.)
func (e *Edge) bodyAllowed(w http.ResponseWriter, r *http.Request, rb *rpcbody.Body, body []byte) bool {
	m := rb.Initialize()
	if m == nil {
		return true
	}
	if m.ParamsBytes > e.opts.MaxInitializeBytes {
		e.refuseBody(w, r, "initialize_bytes", fmt.Sprintf("initialize params may hold at most %d bytes (--max-initialize-bytes); these hold %d", e.opts.MaxInitializeBytes, m.ParamsBytes), e.opts.MaxInitializeBytes)
		return false
	}
	if why := initializeParamsRefused(body); why != "" {
		writeError(w, http.StatusBadRequest, m.ID, rpcerr.New(rpcerr.InvalidParams, why))
		return false
	}
	return true
}

// initializeParamsRefused says why the params of the initialize that is
// body cannot open a session ("" when they may, or when body is a batch,
// left to the go-sdk): none, not an object, or a value of theirs, at any
// depth, of another JSON type than MCP's InitializeParams has there. The
// go-sdk answers those with an error of code 0 quoting its Go types and the
// params, and a session id of a session it never opened. They are decoded
// as the go-sdk decodes them (segmentio/encoding, field names matched
// exactly), so that what it would take is never refused here.
func initializeParamsRefused(body []byte) string {
	var msg struct {
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil {
		return ""
	}
	if p := bytes.TrimSpace(msg.Params); len(p) == 0 || string(p) == "null" {
		return "initialize needs params: protocolVersion, capabilities, clientInfo"
	}
	if bytes.TrimSpace(msg.Params)[0] != '{' {
		return "initialize params must be an object"
	}
	var params mcp.InitializeParams
	err := rpcbody.DecodeAsSDK(msg.Params, &params)
	if err == nil {
		return ""
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("initialize params: %s must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type))
	}
	return "initialize params do not decode as MCP's InitializeParams"
}

// jsonKind names the JSON type a Go value of type t decodes from.
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	}
	return "value"
}

// refuseBody answers 400 with a JSON-RPC invalid-request error naming the
// limit, marked not retryable.
func (e *Edge) refuseBody(w http.ResponseWriter, r *http.Request, limit, msg string, max int) {
	metrics.Limited.WithLabelValues(limit).Inc()
	if e.logger.Enabled(r.Context(), slog.LevelDebug) {
		e.logger.Debug("request refused by a limit", "limit", limit, "max", max)
	}
	writeError(w, http.StatusBadRequest, nil, rpcerr.OverLimit(limit, max, msg))
}

// refusal is why a limit refused a request.
type refusal struct {
	limit string // rate, concurrency, streams, tracked, address
	after time.Duration
	msg   string
}

// limiter keeps a token bucket and in-flight counts per key (a principal's
// Key, or "ip:" and an address), least recently used first for eviction.
type limiter struct {
	lim Limits
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element // of *bucket
	lru     list.List                // front: most recently used
}

type bucket struct {
	key      string
	tokens   float64
	last     time.Time // when tokens was computed
	inflight int
	streams  int
}

func newLimiter(lim Limits) *limiter {
	if lim.MaxTracked <= 0 {
		lim.MaxTracked = DefaultMaxTracked
	}
	if lim.Rate > 0 && lim.Burst < 1 {
		lim.Burst = 1
	}
	return &limiter{lim: lim, now: time.Now, entries: map[string]*list.Element{}}
}

// enabled says whether any per-principal limit is on.
func (l *limiter) enabled() bool {
	return l != nil && (l.lim.Rate > 0 || l.lim.MaxConcurrent > 0 || l.lim.MaxStreams > 0)
}

// refill brings b's tokens up to now.
func (l *limiter) refill(b *bucket, now time.Time) {
	if l.lim.Rate <= 0 {
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(float64(l.lim.Burst), b.tokens+d.Seconds()*l.lim.Rate)
	}
	b.last = now
}

// idle says b holds nothing a fresh bucket would not: no request in flight
// and a full bucket.
func (l *limiter) idle(b *bucket, now time.Time) bool {
	if b.inflight > 0 || b.streams > 0 {
		return false
	}
	if l.lim.Rate <= 0 {
		return true
	}
	return b.tokens+now.Sub(b.last).Seconds()*l.lim.Rate >= float64(l.lim.Burst)
}

// get returns key's bucket, tracking a new one if need be; nil when the
// table is full of entries in use. The caller holds mu.
func (l *limiter) get(key string, now time.Time) *bucket {
	// Entries idle at the back go first, a couple per call: the table
	// shrinks back as principals go quiet, with no sweeper to run.
	for range 2 {
		e := l.lru.Back()
		if e == nil || e.Value.(*bucket).key == key || !l.idle(e.Value.(*bucket), now) {
			break
		}
		l.drop(e)
	}
	if e, ok := l.entries[key]; ok {
		l.lru.MoveToFront(e)
		b := e.Value.(*bucket)
		l.refill(b, now)
		return b
	}
	if len(l.entries) >= l.lim.MaxTracked {
		// Full: the least recently used entry with nothing in flight goes
		// (forgetting what it had spent, which LRU order makes the oldest
		// debt). Entries in use stay: their counts must be released.
		var victim *list.Element
		for e := l.lru.Back(); e != nil; e = e.Prev() {
			if b := e.Value.(*bucket); b.inflight == 0 && b.streams == 0 {
				victim = e
				break
			}
		}
		if victim == nil {
			return nil
		}
		l.drop(victim)
	}
	b := &bucket{key: key, tokens: float64(l.lim.Burst), last: now}
	l.entries[key] = l.lru.PushFront(b)
	return b
}

func (l *limiter) drop(e *list.Element) {
	delete(l.entries, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// take spends n of b's tokens, or says how long until n are there.
func (l *limiter) take(b *bucket, n int) (time.Duration, bool) {
	if l.lim.Rate <= 0 {
		return 0, true
	}
	if b.tokens >= float64(n) {
		b.tokens -= float64(n)
		return 0, true
	}
	return time.Duration((float64(n) - b.tokens) / l.lim.Rate * float64(time.Second)), false
}

// busyRetry is the Retry-After of a refusal for requests in flight: they end
// at no time the edge can tell.
const busyRetry = time.Second

// admit applies the principal's limits to one request of n JSON-RPC
// messages (a batch of n costs what n requests do; a GET or a DELETE is
// 1): n tokens of its rate, then n slots among its requests in flight
// (stream: one among its GET streams). It takes all or nothing. On success
// the caller must call release once the request ends.
func (l *limiter) admit(key string, n int, stream bool) (release func(), ref *refusal) {
	return l.admitMore(key, 0, n, stream)
}

// admitMore is admit for n more messages of a request that holds already
// admitted ones (the first message of a POST is admitted before its body
// is read): a batch is judged by its whole size, held + n.
func (l *limiter) admitMore(key string, held, n int, stream bool) (release func(), ref *refusal) {
	if !l.enabled() {
		return func() {}, nil
	}
	n = max(n, 1)
	total := held + n
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, now)
	if b == nil {
		return nil, &refusal{"tracked", busyRetry, "too many clients at this server right now; retry"}
	}
	if l.lim.Rate > 0 && total > l.lim.Burst {
		// Never admissible: said so, rather than a retry that cannot help.
		return nil, &refusal{"rate", time.Duration(float64(total) / l.lim.Rate * float64(time.Second)),
			fmt.Sprintf("a batch of %d messages costs %d requests, more than the burst of %d; send smaller batches", total, total, l.lim.Burst)}
	}
	if !stream && l.lim.MaxConcurrent > 0 && total > l.lim.MaxConcurrent {
		return nil, &refusal{"concurrency", busyRetry,
			fmt.Sprintf("a batch of %d messages needs as many of the %d requests a user may have in flight; send smaller batches", total, l.lim.MaxConcurrent)}
	}
	if wait, ok := l.take(b, n); !ok {
		return nil, &refusal{"rate", wait, fmt.Sprintf("rate limit exceeded: at most %g requests per second (burst %d; a batch counts each message); retry", l.lim.Rate, l.lim.Burst)}
	}
	switch {
	case stream && l.lim.MaxStreams > 0 && b.streams >= l.lim.MaxStreams:
		return nil, &refusal{"streams", busyRetry, fmt.Sprintf("too many open streams: at most %d per user; close one or retry", l.lim.MaxStreams)}
	case !stream && l.lim.MaxConcurrent > 0 && b.inflight+n > l.lim.MaxConcurrent:
		return nil, &refusal{"concurrency", busyRetry, fmt.Sprintf("too many requests in flight: at most %d per user (a batch counts each message); retry", l.lim.MaxConcurrent)}
	}
	count, k := &b.inflight, n
	if stream {
		count, k = &b.streams, 1
	}
	*count += k
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			*count -= k
			l.mu.Unlock()
		})
	}, nil
}

// blocked says whether the address has spent its budget of refused tokens.
func (l *limiter) blocked(key string) *refusal {
	if l == nil || l.lim.Rate <= 0 {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok {
		return nil // never refused, or long enough ago to be forgotten
	}
	b := e.Value.(*bucket)
	l.refill(b, now)
	if b.tokens >= 1 {
		return nil
	}
	return &refusal{"address", time.Duration((1 - b.tokens) / l.lim.Rate * float64(time.Second)),
		"too many requests with invalid credentials from this address; retry later"}
}

// charge spends one of the address's tokens for a refused credential.
func (l *limiter) charge(key string) {
	if l == nil || l.lim.Rate <= 0 {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.get(key, now); b != nil {
		b.tokens = math.Max(0, b.tokens-1)
	}
}

// queue counts one more of key's requests waiting, unless max already
// are; leave uncounts it. Waiting requests count as in flight, so that
// their entry is not dropped while they wait.
func (l *limiter) queue(key string, max int) (leave func(), ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(key, now)
	if b == nil || b.inflight >= max {
		return nil, false
	}
	b.inflight++
	return func() {
		l.mu.Lock()
		b.inflight--
		l.mu.Unlock()
	}, true
}

// len is how many keys are tracked.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// TokenBudget is the budget of refused credentials per client address
// (above): the table of addresses (of at most Limits.MaxTracked) and the
// lane of expensive verifications. A node's listeners that verify tokens
// share one (Options.Budget; the admin API's Options.Budget): an address
// that floods any of them with bad tokens is over its budget at all of
// them, and costs the authorization server at most
// overBudgetVerifications calls at once at that node, whichever it floods.
type TokenBudget struct {
	addrs     *limiter
	expensive chan struct{}
	trusted   []netip.Prefix
}

// NewTokenBudget returns a budget of lim.Rate refused credentials a second
// per address, lim.Burst at once (a zero Rate: no budget); trusted are the
// peers whose X-Forwarded-For or Forwarded header names the client
// (clientaddr.go).
func NewTokenBudget(lim Limits, trusted []netip.Prefix) *TokenBudget {
	return &TokenBudget{addrs: newLimiter(lim), expensive: make(chan struct{}, overBudgetVerifications), trusted: trusted}
}

// OverBudget is the error of a token that was not verified: its address
// spent its budget of refused credentials, and verifying it would be
// worthless or expensive (see above). Answer 429 with Retry-After.
type OverBudget struct {
	RetryAfter time.Duration
	msg        string
}

func (e *OverBudget) Error() string { return e.msg }

// Seconds is RetryAfter in whole seconds, rounded up, at least 1: the
// value of a Retry-After header.
func (e *OverBudget) Seconds() int { return retryAfter(e.RetryAfter) }

// Verify verifies raw, presented by r, with v, unless r's address is over
// its budget and raw is worthless or expensive to verify: then the error
// is an *OverBudget, and v was not asked. The caller tells b of a
// credential it refuses (Refused).
func (b *TokenBudget) Verify(r *http.Request, v auth.Verifier, raw string) (*auth.Token, error) {
	done, ref := b.overBudget(r, v, raw)
	if ref != nil {
		return nil, &OverBudget{RetryAfter: ref.after, msg: ref.msg}
	}
	defer done()
	return v.Verify(r.Context(), raw)
}

// Refused spends one of the budget of r's address for a credential that
// was refused (401, 403; not a 503 for an unreachable authorization server,
// which is no fault of the caller's, nor a 429 of the budget's own).
func (b *TokenBudget) Refused(r *http.Request) {
	b.addrs.charge(b.key(r))
}

// key is the limiter key of a request's client address: an IPv4 address
// itself, an IPv6 address by its /64, the block a single host or
// subscriber is usually given, so that a client rotating its source
// addresses within its /64 still spends one budget.
func (b *TokenBudget) key(r *http.Request) string {
	return "ip:" + addressBlock(clientAddress(r, b.trusted)).String()
}

// addressBlock is the block of addresses one client is taken to hold: a /32
// for IPv4 (IPv4-mapped IPv6 included), a /64 for IPv6.
func addressBlock(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	return netip.PrefixFrom(a, 64).Masked()
}

// overBudget decides whether a token from r's address may be verified by
// v: on refusal, the address is over its budget and verifying raw would be
// worthless or expensive (see above); otherwise done must be called once
// it is verified.
func (b *TokenBudget) overBudget(r *http.Request, v auth.Verifier, raw string) (done func(), ref *refusal) {
	ref = b.addrs.blocked(b.key(r))
	if ref == nil {
		return func() {}, nil
	}
	cost := auth.CostUnknown
	if c, ok := v.(auth.CostedVerifier); ok {
		cost = c.Cost(raw)
	}
	switch cost {
	case auth.CostLocal:
		return func() {}, nil
	case auth.CostNone:
		return nil, ref
	}
	// A full lane is waited for, not refused at once: introspections take
	// milliseconds, so a valid token from a flooded address is delayed, not
	// refused, unless the authorization server is too slow to drain the
	// lane within overBudgetWait. Waiting costs the caller its own
	// connection, nothing more. An address has at most overBudgetWaiters
	// requests waiting; more are refused at once (a 429 spends nothing):
	// a flood cannot build a queue that the valid tokens of its address,
	// or of any other, would wait behind.
	leave, ok := b.addrs.queue(b.key(r), overBudgetWaiters)
	if !ok {
		return nil, ref
	}
	defer leave()
	wait := time.NewTimer(overBudgetWait)
	defer wait.Stop()
	select {
	case b.expensive <- struct{}{}:
		return func() { <-b.expensive }, nil
	case <-wait.C:
		return nil, ref
	case <-r.Context().Done():
		return nil, ref
	}
}

// overBudgetWaiters bounds the requests of one address waiting for the lane.
const overBudgetWaiters = 2

// overBudgetWait is how long a request from an address over its budget
// waits for room in the lane of expensive verifications.
var overBudgetWait = 5 * time.Second

// admit applies the principal's limits, then the user's, to a verified
// request: both must admit it. The principal goes first so that a client
// refused by its own limits (retrying in a loop, say) does not spend its
// user's budget, which the user's other clients share. n is the JSON-RPC
// messages to admit (a batch costs each), held those of the same request
// already admitted. who names the
// caller that was refused.
func (e *Edge) admit(tok *auth.Token, held, n int, stream bool) (release func(), ref *refusal, who string) {
	releasePrincipal, ref := e.limits.admitMore(tok.Principal.Key(), held, n, stream)
	if ref != nil {
		return nil, ref, tok.Principal.Key()
	}
	user := "user:" + tok.Principal.UserKey()
	releaseUser, ref := e.users.admitMore(user, held, n, stream)
	if ref != nil {
		releasePrincipal()
		ref.limit = "user_" + ref.limit
		return nil, ref, user
	}
	return func() { releaseUser(); releasePrincipal() }, nil, ""
}

// retryAfter is d in whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// refuse answers a request a limit refused: 429 Too Many Requests with
// Retry-After and a JSON-RPC error marked retryable. who names the
// principal (its key, a hash) or the address; never the token.
func (e *Edge) refuse(w http.ResponseWriter, r *http.Request, ref *refusal, who string) {
	metrics.Limited.WithLabelValues(ref.limit).Inc()
	secs := retryAfter(ref.after)
	if e.logger.Enabled(r.Context(), slog.LevelDebug) {
		e.logger.Debug("request refused by a limit", "limit", ref.limit, "principal", who, "method", r.Method, "retry_after", secs)
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, nil, rpcerr.RetryLater(ref.limit, secs, ref.msg))
}

// authRefused spends a token of the address of a request whose credential
// was refused; not when the authorization server could not be reached
// (503), which is no fault of the caller's.
func (e *Edge) authRefused(w http.ResponseWriter, r *http.Request) {
	if s, ok := w.(interface{ Status() int }); ok && (s.Status() == http.StatusServiceUnavailable || s.Status() == http.StatusTooManyRequests) {
		return
	}
	e.budget.Refused(r)
}

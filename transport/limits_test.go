package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/hangtest"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
)

// clock is a settable clock for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func testLimiter(lim Limits) (*limiter, *clock) {
	l := newLimiter(lim)
	c := &clock{time.Unix(1_000_000_000, 0)}
	l.now = c.now
	return l, c
}

func mustAdmit(t *testing.T, l *limiter, key string, stream bool) func() {
	t.Helper()
	release, ref := l.admit(key, 1, stream)
	if ref != nil {
		t.Fatalf("%s refused: %+v", key, ref)
	}
	return release
}

func mustRefuse(t *testing.T, l *limiter, key string, stream bool, limit string) *refusal {
	t.Helper()
	release, ref := l.admit(key, 1, stream)
	if ref == nil {
		release()
		t.Fatalf("%s admitted, want refused by %s", key, limit)
	}
	if ref.limit != limit {
		t.Fatalf("%s refused by %s (%s), want %s", key, ref.limit, ref.msg, limit)
	}
	return ref
}

// A principal gets its burst at once, then the rate; a refusal says when a
// token is there again, rounded up to whole seconds.
func TestLimiterRateAndBurst(t *testing.T) {
	l, c := testLimiter(Limits{Rate: 2, Burst: 3})
	for range 3 {
		mustAdmit(t, l, "alice", false)()
	}
	ref := mustRefuse(t, l, "alice", false, "rate")
	if ref.after != 500*time.Millisecond || retryAfter(ref.after) != 1 {
		t.Errorf("retry after %v (%ds), want 500ms (1s)", ref.after, retryAfter(ref.after))
	}
	c.add(499 * time.Millisecond)
	mustRefuse(t, l, "alice", false, "rate")
	c.add(time.Millisecond)
	mustAdmit(t, l, "alice", false)()
	mustRefuse(t, l, "alice", false, "rate")
	// Idle, the bucket refills to the burst, no further.
	c.add(time.Hour)
	for range 3 {
		mustAdmit(t, l, "alice", false)()
	}
	mustRefuse(t, l, "alice", false, "rate")
	if got := retryAfter(1500 * time.Millisecond); got != 2 {
		t.Errorf("retryAfter(1.5s) = %d, want 2", got)
	}
	if got := retryAfter(0); got != 1 {
		t.Errorf("retryAfter(0) = %d, want 1", got)
	}
}

// Requests in flight hold their slot until released (the edge releases when
// the request ends, answered or cancelled); a second release is harmless.
func TestLimiterConcurrency(t *testing.T) {
	l, _ := testLimiter(Limits{MaxConcurrent: 2})
	r1 := mustAdmit(t, l, "alice", false)
	r2 := mustAdmit(t, l, "alice", false)
	mustRefuse(t, l, "alice", false, "concurrency")
	r1()
	r1() // released twice: still one slot
	r3 := mustAdmit(t, l, "alice", false)
	mustRefuse(t, l, "alice", false, "concurrency")
	r2()
	r3()
	for range 2 {
		defer mustAdmit(t, l, "alice", false)()
	}
}

// GET streams count apart from other requests, against their own cap.
func TestLimiterStreamsCountSeparately(t *testing.T) {
	l, _ := testLimiter(Limits{MaxConcurrent: 1, MaxStreams: 2})
	s1 := mustAdmit(t, l, "alice", true)
	s2 := mustAdmit(t, l, "alice", true)
	mustRefuse(t, l, "alice", true, "streams")
	p := mustAdmit(t, l, "alice", false) // streams do not take request slots
	mustRefuse(t, l, "alice", false, "concurrency")
	s1()
	mustAdmit(t, l, "alice", true)()
	s2()
	p()
}

// One principal's flood limits no one else.
func TestLimiterIsolation(t *testing.T) {
	l, _ := testLimiter(Limits{Rate: 1, Burst: 5, MaxConcurrent: 3, MaxStreams: 1})
	for range 5 {
		mustAdmit(t, l, "alice", false)()
	}
	for range 100 {
		mustRefuse(t, l, "alice", false, "rate")
	}
	for range 3 {
		defer mustAdmit(t, l, "bob", false)()
	}
	mustRefuse(t, l, "bob", false, "concurrency")
	defer mustAdmit(t, l, "carol", true)()
	defer mustAdmit(t, l, "carol", false)()
}

// The limiter tracks at most MaxTracked keys: idle ones are dropped as new
// ones come (least recently used first), and once every entry has requests
// in flight a newcomer is refused rather than tracked. Quiet entries leave
// by themselves as the limiter is used.
func TestLimiterMemoryBound(t *testing.T) {
	const max = 100
	l, c := testLimiter(Limits{Rate: 10, Burst: 10, MaxConcurrent: 1, MaxTracked: max})
	for i := range 10_000 {
		mustAdmit(t, l, fmt.Sprint("user", i), false)()
		if n := l.len(); n > max {
			t.Fatalf("%d keys tracked after %d principals, want at most %d", n, i+1, max)
		}
	}
	// The most recent survive; a spent bucket is kept while it matters.
	l, c = testLimiter(Limits{Rate: 10, Burst: 10, MaxConcurrent: 1, MaxTracked: max})
	var held []func()
	for i := range max {
		held = append(held, mustAdmit(t, l, fmt.Sprint("user", i), false))
	}
	mustRefuse(t, l, "newcomer", false, "tracked")
	if n := l.len(); n != max {
		t.Fatalf("%d keys tracked, want %d", n, max)
	}
	held[42]()
	mustAdmit(t, l, "newcomer", false)()
	if _, ok := l.entries["user42"]; ok {
		t.Error("the released entry was not the one evicted")
	}
	for i, release := range held {
		if i != 42 {
			release()
		}
	}
	// Idle with full buckets, entries go as the limiter is used.
	c.add(2 * time.Second)
	for range max {
		mustAdmit(t, l, "bob", false)()
		c.add(100 * time.Millisecond) // bob's bucket refills as he goes
	}
	if n := l.len(); n > 2 {
		t.Errorf("%d keys still tracked after they went idle", n)
	}
}

// Refused credentials spend their address's tokens; valid ones nothing.
func TestLimiterAddress(t *testing.T) {
	l, c := testLimiter(Limits{Rate: 1, Burst: 2})
	if l.blocked("ip:a") != nil {
		t.Fatal("unknown address blocked")
	}
	l.charge("ip:a")
	l.charge("ip:a")
	ref := l.blocked("ip:a")
	if ref == nil || ref.limit != "address" || retryAfter(ref.after) != 1 {
		t.Fatalf("address with no tokens left: %+v", ref)
	}
	if l.blocked("ip:b") != nil {
		t.Error("another address blocked")
	}
	c.add(time.Second)
	if l.blocked("ip:a") != nil {
		t.Error("address still blocked after its bucket refilled")
	}
	if (&limiter{}).blocked("ip:a") != nil || newLimiter(Limits{}).blocked("ip:a") != nil {
		t.Error("blocked without a rate")
	}
}

func limitedEdge(t *testing.T, is *authtest.Issuer, lim Limits) string {
	t.Helper()
	return resourceEdge(t, mcpResource, Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}}),
		Scopes:   []string{"mcp:tools"},
		Limits:   lim,
	}).URL
}

// checkLimited checks a refusal: 429, Retry-After, a JSON-RPC error marked
// retryable naming the limit.
func checkLimited(t *testing.T, resp *http.Response, body, limit string) int {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d %s, want 429", resp.StatusCode, body)
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	var m struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int
			Message string
			Data    struct {
				Retryable  bool
				RetryAfter int
				Limit      string
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.JSONRPC != "2.0" || m.Error.Code != rpcerr.Limited ||
		!m.Error.Data.Retryable || m.Error.Data.Limit != limit || m.Error.Data.RetryAfter != secs || m.Error.Message == "" {
		t.Fatalf("429 body %s (%v), want a retryable JSON-RPC error of limit %s", body, err, limit)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return secs
}

// Over its rate, a principal gets 429 with Retry-After and a JSON-RPC
// error, and the request never reaches an actor; another principal is not
// limited. The refusal is logged at debug with the principal's key, never
// its token.
func TestEdgeRateLimit(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := limitedEdge(t, is, Limits{Rate: 0.01, Burst: 2})
	alice := is.Token(t, is.Claims("alice", mcpResource, "mcp:tools"))
	bob := is.Token(t, is.Claims("bob", mcpResource, "mcp:tools"))
	for range 2 {
		if resp, body := (call{http.MethodPost, bearer(alice, nil), initBody}).do(t, url); resp.StatusCode != http.StatusOK {
			t.Fatalf("alice within her burst: %d %s", resp.StatusCode, body)
		}
	}
	started := records.count("request started")
	resp, body := call{http.MethodPost, bearer(alice, nil), initBody}.do(t, url)
	if secs := checkLimited(t, resp, body, "rate"); secs < 90 || secs > 100 {
		t.Errorf("Retry-After %d, want about 100 (one token at 0.01/s)", secs)
	}
	if n := records.count("request started"); n != started {
		t.Errorf("the refused request reached an actor")
	}
	if resp, body := (call{http.MethodPost, bearer(bob, nil), initBody}).do(t, url); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob while alice is limited: %d %s", resp.StatusCode, body)
	}
	if records.count("request refused by a limit") == 0 {
		t.Error("the refusal was not logged")
	}
	for _, secret := range []string{alice, bob} {
		if records.count(secret) > 0 {
			t.Error("a token was logged")
		}
	}
}

// An address whose credentials keep being refused loses the expensive
// path: what cannot be a token is refused (429) before it is looked at, but
// a valid token from that same address is still verified and served (a JWT
// is checked locally), so that one client sending garbage does not lock
// out the users behind the same NAT or proxy; a valid token from elsewhere
// is not affected, and an unreachable issuer (503) spends nothing.
func TestEdgeAddressLimit(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := limitedEdge(t, is, Limits{Rate: 0.01, Burst: 3})
	for range 3 {
		if resp, body := (call{http.MethodPost, bearer("not-a-jwt", nil), initBody}).do(t, url); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token: %d %s", resp.StatusCode, body)
		}
	}
	resp, body := call{http.MethodPost, bearer("not-a-jwt", nil), initBody}.do(t, url)
	checkLimited(t, resp, body, "address")
	alice := is.Token(t, is.Claims("alice", mcpResource, "mcp:tools"))
	for range 3 {
		if resp, body := (call{http.MethodPost, bearer(alice, nil), initBody}).do(t, url); resp.StatusCode != http.StatusOK {
			t.Fatalf("valid token from an address over its budget: %d %s, want 200", resp.StatusCode, body)
		}
	}
	// A JWT that does not verify is still cheap to check: it is checked,
	// and refused as what it is.
	forged := is.Token(t, is.Claims("mallory", "http://elsewhere.test/mcp", "mcp:tools"))
	if resp, body := (call{http.MethodPost, bearer(forged, nil), initBody}).do(t, url); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("invalid JWT from an address over its budget: %d %s, want 401", resp.StatusCode, body)
	}

	// A fresh edge: an issuer that cannot be reached costs the caller
	// nothing.
	hung := hangtest.New(t, nil)
	srv := newEdge(t, Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: hung.URL, Audiences: []string{mcpResource},
			HTTPClient: &http.Client{Timeout: 100 * time.Millisecond}}),
		Limits: Limits{Rate: 0.01, Burst: 1},
	})
	for range 3 {
		if resp, body := (call{http.MethodPost, bearer(alice, nil), initBody}).do(t, srv.URL); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("issuer hung: %d %s, want 503", resp.StatusCode, body)
		}
	}
}

// aliceSession serves an edge with limits and opens a session of alice's on
// it; it returns the edge's URL and the headers of her requests.
func aliceSession(t *testing.T, is *authtest.Issuer, limits Limits) (string, map[string]string) {
	t.Helper()
	url := limitedEdge(t, is, limits)
	h := bearer(is.Token(t, is.Claims("alice", mcpResource, "mcp:tools")), map[string]string{"Mcp-Protocol-Version": "2025-11-25"})
	h["Mcp-Session-Id"] = authInitialize(t, url, h)
	return url, h
}

// A principal's GET streams are capped; a stream's slot is free again once
// its client goes away.
func TestEdgeStreamCap(t *testing.T) {
	is := authtest.NewIssuer(t)
	url, h := aliceSession(t, is, Limits{MaxStreams: 1})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := openStream(t, ctx, url, h)
	started := records.count("request started")
	r2, body := call{http.MethodGet, h, ""}.do(t, url)
	checkLimited(t, r2, body, "streams")
	if records.count("request started") != started {
		t.Error("the refused stream reached its actor")
	}
	// POSTs are not streams.
	if r, body := (call{http.MethodPost, h, `{"jsonrpc":"2.0","id":2,"method":"ping"}`}).do(t, url); r.StatusCode != http.StatusOK {
		t.Fatalf("ping while streaming: %d %s", r.StatusCode, body)
	}
	cancel()
	resp.Body.Close()
	eventually(t, "a stream after the first one ended", func() bool {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := streamRequest(ctx, url, h)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
}

// A principal's POSTs in flight are capped (a tool call waiting on the
// client holds its slot); cancelling one frees its slot, and other
// principals are not affected.
func TestEdgeConcurrencyCap(t *testing.T) {
	is := authtest.NewIssuer(t)
	url, h := aliceSession(t, is, Limits{MaxConcurrent: 1})

	// test_elicitation asks the client, and waits for its answer.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`))
	for k, v := range h {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for !strings.Contains(sc.Text(), "elicitation/create") {
		if !sc.Scan() {
			t.Fatalf("tool call ended before it asked: %d %v", resp.StatusCode, sc.Err())
		}
	}
	ping := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":6,"method":"ping"}`}
	r, body := ping.do(t, url)
	checkLimited(t, r, body, "concurrency")

	bob := is.Token(t, is.Claims("bob", mcpResource, "mcp:tools"))
	if r, body := (call{http.MethodPost, bearer(bob, nil), initBody}).do(t, url); r.StatusCode != http.StatusOK {
		t.Fatalf("bob while alice is at her cap: %d %s", r.StatusCode, body)
	}
	cancel()
	resp.Body.Close()
	eventually(t, "a request after the first was cancelled", func() bool {
		r, _ := ping.do(t, url)
		return r.StatusCode == http.StatusOK
	})
}

// An upstream that never answers fails a token check within the client's
// timeout: the edge answers 503 with Retry-After, it does not hang.
func TestEdgeHungIssuer(t *testing.T) {
	hung := hangtest.New(t, nil)
	srv := newEdge(t, Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: hung.URL, Audiences: []string{mcpResource},
			HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}}),
	})
	start := time.Now()
	resp, body := call{http.MethodPost, bearer("eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.e30.c2ln", nil), initBody}.do(t, srv.URL)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"error"`) {
		t.Fatalf("hung issuer: %d %s", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	// The client may give up before the server's goroutine has read the
	// request it sent: that one comes, if late.
	select {
	case <-hung.Reached:
	case <-time.After(10 * time.Second):
		t.Error("the issuer was never asked")
	}
}

func authInitialize(t *testing.T, url string, h map[string]string) string {
	t.Helper()
	resp, body := call{http.MethodPost, h, strings.Replace(initBody, `"capabilities":{}`, `"capabilities":{"elicitation":{}}`, 1)}.do(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	h2 := map[string]string{"Mcp-Session-Id": sid}
	for k, v := range h {
		h2[k] = v
	}
	if resp, body := (call{http.MethodPost, h2, `{"jsonrpc":"2.0","method":"notifications/initialized"}`}).do(t, url); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", resp.StatusCode, body)
	}
	return sid
}

func streamRequest(ctx context.Context, url string, h map[string]string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "text/event-stream")
	return req
}

// openStream opens the session's standalone GET stream and returns once
// its actor serves it: the stream's headers come from the actor.
func openStream(t *testing.T, ctx context.Context, url string, h map[string]string) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(streamRequest(ctx, url, h))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream: %d %v", resp.StatusCode, resp.Header)
	}
	return resp
}

// eventually retries cond, paced, until it holds or 10 s passed: for
// effects that follow a client's disconnect, which nothing signals to it.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Behind a trusted proxy, the address budget is the client's the proxy
// names (the rightmost untrusted hop), so that one client's bad tokens do
// not use up everyone's budget, and what a client puts left of it gains
// nothing; from any other peer the header is ignored.
func TestEdgeTrustedProxies(t *testing.T) {
	is := authtest.NewIssuer(t)
	edge := func(trusted ...netip.Prefix) string {
		return newEdge(t, Options{
			Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}}),
			Limits:   Limits{Rate: 0.01, Burst: 2}, TrustedProxies: trusted,
		}).URL
	}
	bad := func(url, xff string) (*http.Response, string) {
		return call{http.MethodPost, bearer("not-a-jwt", map[string]string{"X-Forwarded-For": xff}), initBody}.do(t, url)
	}
	url := edge(netip.MustParsePrefix("127.0.0.1/32"))
	for range 2 {
		if resp, body := bad(url, "203.0.113.7"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token: %d %s", resp.StatusCode, body)
		}
	}
	resp, body := bad(url, "203.0.113.7")
	checkLimited(t, resp, body, "address")
	// A spoofed entry left of the proxy's own is not the client.
	resp, body = bad(url, "203.0.113.8, 203.0.113.7")
	checkLimited(t, resp, body, "address")
	if resp, body := bad(url, "203.0.113.8"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another client behind the proxy: %d %s, want 401", resp.StatusCode, body)
	}

	url = edge() // no trusted proxy: the header means nothing
	for range 2 {
		bad(url, "203.0.113.7")
	}
	resp, body = bad(url, "203.0.113.8")
	checkLimited(t, resp, body, "address")
}

func TestClientAddress(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	for _, c := range []struct {
		name, peer string
		header     map[string][]string
		want       string
	}{
		{"untrusted peer", "192.0.2.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.7"}}, "192.0.2.1"},
		{"trusted peer, no header", "10.0.0.1:1234", nil, "10.0.0.1"},
		{"one hop", "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7"},
		{"spoofed left", "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"198.51.100.1, 203.0.113.7"}}, "203.0.113.7"},
		{"chain of proxies", "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"198.51.100.1, 203.0.113.7, 10.1.2.3"}}, "203.0.113.7"},
		{"several header lines", "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"198.51.100.1", "203.0.113.7, 10.1.2.3"}}, "203.0.113.7"},
		{"all trusted", "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"10.9.9.9, 10.1.2.3"}}, "10.9.9.9"},
		{"garbage stops the walk", "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.9, unknown, 10.1.2.3"}}, "10.1.2.3"},
		{"with a port", "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.7:5555"}}, "203.0.113.7"},
		{"IPv6 peer and hop", "[2001:db8::1]:443", map[string][]string{"X-Forwarded-For": {"2001:db8:ffff::1, 2a00::7"}}, "2a00::7"},
		{"Forwarded", "10.0.0.1:1234", map[string][]string{"Forwarded": {`for=198.51.100.1, for="[2a00::7]:4711";proto=https`}}, "2a00::7"},
		{"Forwarded, spoofed left", "10.0.0.1:1234", map[string][]string{"Forwarded": {"for=198.51.100.1", "for=203.0.113.7;by=10.0.0.1"}}, "203.0.113.7"},
		{"Forwarded obfuscated", "10.0.0.1:1234", map[string][]string{"Forwarded": {"for=_hidden"}}, "10.0.0.1"},
		{"X-Forwarded-For wins", "10.0.0.1:1234", map[string][]string{"Forwarded": {"for=198.51.100.1"}, "X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7"},
		{"IPv4-mapped", "[::ffff:10.0.0.1]:1234", map[string][]string{"X-Forwarded-For": {"::ffff:203.0.113.7"}}, "203.0.113.7"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.RemoteAddr = c.peer
		for k, vs := range c.header {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		if got := clientAddress(r, trusted).String(); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// The per-user limits count a user's requests whatever client they come
// through: more registered clients do not buy more requests. Each client
// (principal) still has its own limits, and another user is not affected.
func TestEdgeUserLimits(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := newEdge(t, Options{
		Verifier:   auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}}),
		Limits:     Limits{Rate: 0.01, Burst: 3},
		UserLimits: Limits{Rate: 0.01, Burst: 4},
	}).URL
	token := func(user, client string) string {
		c := is.Claims(user, mcpResource, "mcp:tools")
		c["client_id"] = client
		return is.Token(t, c)
	}
	ok := func(tok string) {
		t.Helper()
		if resp, body := (call{http.MethodPost, bearer(tok, nil), initBody}).do(t, url); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s, want 200", resp.StatusCode, body)
		}
	}
	a1, a2, a3 := token("alice", "c1"), token("alice", "c2"), token("alice", "c3")
	for range 3 {
		ok(a1)
	}
	resp, body := call{http.MethodPost, bearer(a1, nil), initBody}.do(t, url)
	checkLimited(t, resp, body, "rate") // the client's own bucket
	ok(a2)                              // the user's fourth
	resp, body = call{http.MethodPost, bearer(a3, nil), initBody}.do(t, url)
	checkLimited(t, resp, body, "user_rate")
	ok(token("bob", "c1"))
}

// With introspection, an address over its budget still gets its valid
// tokens checked: a cached answer at once, a new token through the edge's
// lane of overBudgetVerifications calls at a time, waiting while that lane
// is full (refused, 429, only when the wait runs out), so that one address
// cannot keep more calls than that going to the authorization server.
func TestEdgeAddressLimitIntrospection(t *testing.T) {
	post, slow, free, _ := overBudgetIntrospection(t)
	defer free()
	for range 3 {
		if resp, body := post("bad"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token: %d %s", resp.StatusCode, body)
		}
	}
	if resp, body := post("good1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("new valid token over budget, lane free: %d %s, want 200", resp.StatusCode, body)
	}
	done := make(chan int, overBudgetVerifications)
	for i := range overBudgetVerifications {
		go func() {
			resp, _ := post(fmt.Sprint("slow", i))
			done <- resp.StatusCode
		}()
	}
	for range overBudgetVerifications {
		<-slow
	}
	if resp, body := post("good1"); resp.StatusCode != http.StatusOK {
		t.Fatalf("cached valid token while the lane is full: %d %s, want 200", resp.StatusCode, body)
	}
	// A new token waits for the lane; refused only once its wait is over
	// (the slow calls hold the lane until free).
	wait := overBudgetWait
	overBudgetWait = 50 * time.Millisecond
	resp, body := post("good2")
	overBudgetWait = wait
	checkLimited(t, resp, body, "address")
	// Waiting while the lane drains: served.
	waited := make(chan int, 1)
	go func() {
		resp, _ := post("good3")
		waited <- resp.StatusCode
	}()
	free()
	if st := <-waited; st != http.StatusOK {
		t.Errorf("new valid token waiting for the lane: %d, want 200", st)
	}
	for range overBudgetVerifications {
		if st := <-done; st != http.StatusUnauthorized {
			t.Errorf("slow bad token: %d, want 401", st)
		}
	}
	if resp, body := post("good2"); resp.StatusCode != http.StatusOK {
		t.Fatalf("new valid token once the lane is free: %d %s, want 200", resp.StatusCode, body)
	}
}

// A request of n messages (a batch) costs n tokens and n slots, all or
// nothing; its refusal says when n tokens are there; a batch larger than
// the burst is refused as such.
func TestLimiterBatchCountsEachMessage(t *testing.T) {
	l, c := testLimiter(Limits{Rate: 2, Burst: 10, MaxConcurrent: 8})
	r5, ref := l.admit("alice", 5, false)
	if ref != nil {
		t.Fatalf("batch of 5 refused: %+v", ref)
	}
	// 5 tokens left, 3 slots.
	if _, ref := l.admit("alice", 4, false); ref == nil || ref.limit != "concurrency" {
		t.Fatalf("batch of 4 with 3 slots free: %+v, want refused by concurrency", ref)
	}
	r5()
	// 1 token left: a batch of 3 waits for 2 more, 1 s at 2/s.
	_, ref = l.admit("alice", 3, false)
	if ref == nil || ref.limit != "rate" || ref.after != time.Second {
		t.Fatalf("batch of 3 with 1 token: %+v, want refused by rate for 1s", ref)
	}
	c.add(time.Second)
	r3, ref := l.admit("alice", 3, false)
	if ref != nil {
		t.Fatalf("batch of 3 with 3 tokens refused: %+v", ref)
	}
	r3()
	c.add(time.Hour)
	_, ref = l.admit("alice", 11, false)
	if ref == nil || ref.limit != "rate" || !strings.Contains(ref.msg, "burst of 10") {
		t.Fatalf("batch of 11 with a burst of 10: %+v", ref)
	}
	_, ref = l.admit("alice", 9, false)
	if ref == nil || ref.limit != "concurrency" || !strings.Contains(ref.msg, "smaller batches") {
		t.Fatalf("batch of 9 with at most 8 in flight: %+v", ref)
	}
	// Nothing was spent by the refusals: the whole burst is there.
	mustAdmitN(t, l, "alice", 8)()
	mustAdmitN(t, l, "alice", 2)()
}

func mustAdmitN(t *testing.T, l *limiter, key string, n int) func() {
	t.Helper()
	release, ref := l.admit(key, n, false)
	if ref != nil {
		t.Fatalf("%s refused %d: %+v", key, n, ref)
	}
	return release
}

// The edge refuses, before forwarding, a batch beyond MaxBatch, an empty
// batch, an id the SDK would answer under another id, and an initialize
// whose params exceed MaxInitializeBytes (no session is created); a batch of
// n spends n of the principal's tokens.
func TestEdgeBodyLimits(t *testing.T) {
	srv := newEdge(t, Options{MaxBatch: 3, MaxInitializeBytes: 1024})
	resp, body := call{method: http.MethodPost, body: strings.Replace(initBody, "2025-11-25", "2025-03-26", 1)}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	session := map[string]string{"Mcp-Session-Id": resp.Header.Get("Mcp-Session-Id"), "Mcp-Protocol-Version": "2025-03-26"}
	pings := func(n int) string {
		var msgs []string
		for i := range n {
			msgs = append(msgs, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i+1))
		}
		return "[" + strings.Join(msgs, ",") + "]"
	}
	limited := func(limit string) float64 { return counterValue(t, metrics.Limited.WithLabelValues(limit)) }
	before, sessions := limited("batch"), counted(t, "new")
	for _, tt := range []struct {
		name    string
		headers map[string]string
		body    string
		status  int
		errText string
	}{
		{"batch at the limit", session, pings(3), 200, ""},
		{"batch beyond the limit", session, pings(4), 400, "at most 3 messages (--max-batch)"},
		{"empty batch", session, `[]`, 400, "empty batch"},
		{"id 1.5", session, `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, 400, "2^53"},
		{"id 2^53+1", session, `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, 400, "2^53"},
		{"initialize too large", nil, strings.Replace(initBody, `"capabilities":{}`, `"capabilities":{"experimental":{"x":"`+strings.Repeat("x", 1100)+`"}}`, 1), 400, "at most 1024 bytes (--max-initialize-bytes)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, got := call{method: http.MethodPost, headers: tt.headers, body: tt.body}.do(t, srv.URL)
			if resp.StatusCode != tt.status || !strings.Contains(got, tt.errText) {
				t.Fatalf("%d %s, want %d with %q", resp.StatusCode, got, tt.status, tt.errText)
			}
			if tt.status == 400 {
				if err := checkRPCError([]byte(got)); err != "" || !strings.Contains(got, `"code":-32600`) {
					t.Fatalf("not a JSON-RPC invalid request error (%s): %s", err, got)
				}
				if resp.Header.Get("Mcp-Session-Id") != "" {
					t.Fatalf("a refused request named a session")
				}
			}
		})
	}
	if got := limited("batch") - before; got != 1 {
		t.Errorf("limited{batch} counted %v refusals, want 1", got)
	}
	if got := counted(t, "new") - sessions; got != 0 {
		t.Errorf("%v sessions created by refused requests", got)
	}
}

// Each message of a batch spends a token of the principal's rate, and a
// body the edge refuses spends one too: an unreadable body is no free
// request.
func TestEdgeRateLimitCountsMessages(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := limitedEdge(t, is, Limits{Rate: 0.01, Burst: 5})
	alice := is.Token(t, is.Claims("alice", mcpResource, "mcp:tools"))
	if resp, body := (call{http.MethodPost, bearer(alice, nil), `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`}).do(t, url); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("id 1.5: %d %s", resp.StatusCode, body)
	}
	// 4 tokens left: a batch of 5 is refused (its first message, admitted
	// before the body was read, is spent, as any refused request's); with 3
	// left, one of 3 goes.
	batch := func(n int) string {
		msgs := make([]string, n)
		for i := range msgs {
			msgs[i] = strings.Replace(initBody, `"id":1`, `"id":`+strconv.Itoa(i+1), 1)
		}
		return "[" + strings.Join(msgs, ",") + "]"
	}
	resp, body := call{http.MethodPost, bearer(alice, nil), batch(5)}.do(t, url)
	checkLimited(t, resp, body, "rate")
	if resp, body := (call{http.MethodPost, bearer(alice, nil), batch(3)}).do(t, url); resp.StatusCode == http.StatusTooManyRequests {
		t.Fatalf("a batch of 3 with 3 tokens: %d %s", resp.StatusCode, body)
	}
	resp, body = call{http.MethodPost, bearer(alice, nil), initBody}.do(t, url)
	checkLimited(t, resp, body, "rate")
}

// A POST holds its slot among the principal's requests in flight while its
// body arrives: bodies being read count against --max-concurrent-requests,
// so one token cannot hold many connections each buffering a body.
func TestEdgeBodyBeingReadHoldsItsSlot(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := limitedEdge(t, is, Limits{MaxConcurrent: 1})
	host := strings.TrimPrefix(url, "http://")
	alice := is.Token(t, is.Claims("alice", mcpResource, "mcp:tools"))
	// The held request, written by hand so that nothing buffers it: its
	// headers, then a part of the body it announced, then nothing more.
	hold := func() net.Conn {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: mcp.test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
			"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n%s", alice, len(initBody), initBody[:10])
		return conn
	}
	conn := hold()
	defer func() { conn.Close() }()
	var resp *http.Response
	var body string
	eventually(t, "a second request refused while the first one's body is read", func() bool {
		resp, body = call{http.MethodPost, bearer(alice, nil), initBody}.do(t, url)
		if resp.StatusCode == http.StatusTooManyRequests {
			return true
		}
		// This request was admitted first, and the held one, if it came
		// meanwhile, was refused for it (its 429 stays unsent while the
		// server waits for the rest of its body): hold another.
		conn.Close()
		conn = hold()
		return false
	})
	checkLimited(t, resp, body, "concurrency")
	// A request refused before its body was read is answered at once, on a
	// connection that then closes: not held waiting for the body.
	refused := hold()
	defer refused.Close()
	refused.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, err := http.ReadResponse(bufio.NewReader(refused), nil)
	if err != nil || answer.StatusCode != http.StatusTooManyRequests || !answer.Close {
		t.Fatalf("a request refused before its body arrived: %v %+v, want 429 and Connection: close", err, answer)
	}
}

// An IPv6 client spends one budget for its whole /64: rotating its source
// address within it gains nothing, while another /64 has its own. IPv4
// addresses (IPv4-mapped too) are their own block.
func TestEdgeAddressBlock(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := newEdge(t, Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}}),
		Limits:   Limits{Rate: 0.01, Burst: 2}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}).URL
	bad := func(xff string) (*http.Response, string) {
		return call{http.MethodPost, bearer("not-a-jwt", map[string]string{"X-Forwarded-For": xff}), initBody}.do(t, url)
	}
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if resp, body := bad(a); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token from %s: %d %s", a, resp.StatusCode, body)
		}
	}
	resp, body := bad("2001:db8:1:2:abcd::77")
	checkLimited(t, resp, body, "address")
	if resp, body := bad("2001:db8:1:3::1"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another /64: %d %s, want 401", resp.StatusCode, body)
	}
	for _, c := range []struct{ addr, want string }{
		{"203.0.113.7", "203.0.113.7/32"},
		{"::ffff:203.0.113.7", "203.0.113.7/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
	} {
		if got := addressBlock(netip.MustParseAddr(c.addr)).String(); got != c.want {
			t.Errorf("block of %s: %s, want %s", c.addr, got, c.want)
		}
	}
}

// Addresses are tracked apart from principals: however many addresses send
// refused tokens, a principal's bucket stays, with what it has spent.
func TestEdgeAddressesDoNotEvictPrincipals(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := newEdge(t, Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{mcpResource}}),
		Limits:   Limits{Rate: 0.01, Burst: 1, MaxTracked: 2}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}).URL
	alice := is.Token(t, is.Claims("alice", mcpResource, "mcp:tools"))
	if resp, body := (call{http.MethodPost, bearer(alice, nil), initBody}).do(t, url); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice: %d %s", resp.StatusCode, body)
	}
	for i := range 4 {
		xff := fmt.Sprintf("203.0.113.%d", i+1)
		if resp, body := (call{http.MethodPost, bearer("not-a-jwt", map[string]string{"X-Forwarded-For": xff}), initBody}).do(t, url); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token from %s: %d %s", xff, resp.StatusCode, body)
		}
	}
	resp, body := call{http.MethodPost, bearer(alice, nil), initBody}.do(t, url)
	checkLimited(t, resp, body, "rate")
}

// A flooding address cannot queue for the lane of introspections: beyond
// overBudgetWaiters of its requests waiting, the next are refused at once,
// so a valid token from it waits behind a couple of the flood's calls, not
// behind the whole flood.
func TestEdgeAddressLimitIntrospectionQueue(t *testing.T) {
	post, slow, open, openOne := overBudgetIntrospection(t)
	defer open()
	wait := overBudgetWait
	overBudgetWait = time.Minute // only the lane draining ends a wait here
	defer func() { overBudgetWait = wait }()
	for range 3 {
		if resp, body := post("bad"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token: %d %s", resp.StatusCode, body)
		}
	}
	const flood = 10
	done := make(chan int, flood)
	for i := range flood {
		go func() {
			resp, _ := post(fmt.Sprint("slow", i))
			done <- resp.StatusCode
		}()
	}
	for range overBudgetVerifications {
		<-slow
	}
	// The lane is held; of the others, overBudgetWaiters wait and the rest
	// are refused at once.
	deadline := time.After(10 * time.Second)
	for range flood - overBudgetVerifications - overBudgetWaiters {
		select {
		case st := <-done:
			if st != http.StatusTooManyRequests {
				t.Fatalf("flood beyond the address's waiters: %d, want 429", st)
			}
		case <-deadline:
			t.Fatal("the flood's requests queue for the lane instead of being refused")
		}
	}
	// One call of the lane ends, one waiter takes its place: the address
	// has a waiting slot again, which a valid token takes.
	openOne()
	<-slow
	good := make(chan int, 1)
	go func() {
		resp, _ := post("good1")
		good <- resp.StatusCode
	}()
	open()
	if st := <-good; st != http.StatusOK {
		t.Errorf("valid token from the flooding address: %d, want 200", st)
	}
	for range overBudgetVerifications + overBudgetWaiters {
		if st := <-done; st != http.StatusUnauthorized {
			t.Errorf("slow bad token: %d, want 401", st)
		}
	}
}

// overBudgetIntrospection is an edge verifying by introspection (Rate 0.01,
// Burst 3) against a server whose answers for tokens "slow…" wait until
// release is called, or releaseOne lets one go on (each signals on slow
// when it arrives): post sends an
// initialize with a token. Tokens "good…" are active, any other inactive.
func overBudgetIntrospection(t *testing.T) (post func(tok string) (*http.Response, string), slow <-chan struct{}, release, releaseOne func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.PostFormValue("token")
		if strings.HasPrefix(tok, "slow") {
			arrived <- struct{}{}
			<-gate
		}
		if !strings.HasPrefix(tok, "good") {
			json.NewEncoder(w).Encode(map[string]any{"active": false})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": tok, "client_id": "c", "scope": "mcp:tools",
			"aud": mcpResource, "exp": time.Now().Add(time.Hour).Unix()})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release) // runs first: the server's handlers wait for it
	url := newEdge(t, Options{
		Verifier: auth.NewIntrospectionVerifier(auth.IntrospectionOptions{Issuer: "https://idp", Endpoint: srv.URL,
			ClientID: "pingmcp", ClientSecret: "s", Audiences: []string{mcpResource}}),
		Limits: Limits{Rate: 0.01, Burst: 3},
	}).URL
	return func(tok string) (*http.Response, string) {
		return call{http.MethodPost, bearer(tok, nil), initBody}.do(t, url)
	}, arrived, release, func() { gate <- struct{}{} }
}

// A stateless subscriptions/listen is one of a principal's streams, as a
// GET stream is: it is capped with them, and holds none of the slots of
// the principal's requests in flight, which its calls need while it
// listens.
func TestEdgeListenIsAStream(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := limitedEdge(t, is, Limits{MaxConcurrent: 1, MaxStreams: 1})
	h := listenHeaders(bearer(is.Token(t, is.Claims("alice", mcpResource, "mcp:tools")), nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := readStream(t, ctx, http.MethodPost, url, h, listenBody)
	awaitListenAck(t, s)

	callHeaders := map[string]string{}
	for k, v := range h {
		callHeaders[k] = v
	}
	callHeaders["Mcp-Method"], callHeaders["Mcp-Name"] = "tools/call", "test_simple_text"
	body := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	if r, b := (call{http.MethodPost, callHeaders, body}).do(t, url); r.StatusCode != http.StatusOK || !strings.Contains(b, `"result"`) {
		t.Fatalf("a call while listening, at most 1 request in flight: %d %s", r.StatusCode, b)
	}
	r, b := call{http.MethodPost, h, listenBody}.do(t, url)
	checkLimited(t, r, b, "streams")
}

// An initialize whose params cannot open a session (none, null, not an
// object, a field of another JSON type than MCP's) is refused at the edge,
// 400 -32602, naming no session: the go-sdk answered it with an error of
// code 0 quoting its Go types, and the id of a session it never opened. A
// field it does not know, or one null, is left to it, as before.
func TestInitializeParamsRefused(t *testing.T) {
	srv := newEdge(t, Options{})
	sessions := counted(t, "new")
	for _, params := range []string{
		``, `,"params":null`, `,"params":[]`, `,"params":"x"`,
		`,"params":{"protocolVersion":7,"capabilities":{},"clientInfo":{"name":"t","version":"1"}}`,
		`,"params":{"protocolVersion":"2025-11-25","capabilities":[],"clientInfo":{"name":"t","version":"1"}}`,
		`,"params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":"t"}`,
		// Type-correct at the top, not below: the go-sdk's code 0 quoted the params.
		`,"params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":5,"version":"1"}}`,
		`,"params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{"listChanged":"yes"}},"clientInfo":{"name":"t","version":"1"}}`,
		`,"params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1","icons":{}}}`,
		`,"params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"},"_meta":[]}`,
	} {
		resp, got := call{method: http.MethodPost, body: `{"jsonrpc":"2.0","id":"i"` + params + `,"method":"initialize"}`}.do(t, srv.URL)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(got, `"code":-32602`) || !strings.Contains(got, `"id":"i"`) || resp.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("initialize%s: %d %s (session %q), want 400 -32602 naming no session", params, resp.StatusCode, got, resp.Header.Get("Mcp-Session-Id"))
		}
		if strings.Contains(got, "mcp.") || strings.Contains(got, "*") || strings.Contains(got, "listChanged\\\":") {
			t.Errorf("initialize%s: the error quotes Go types or the params: %s", params, got)
		}
	}
	if _, got := (call{method: http.MethodPost, body: `{"jsonrpc":"2.0","id":"i","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"},"_meta":[]},"method":"initialize"}`}).do(t, srv.URL); !strings.Contains(got, "_meta must be a JSON object") {
		t.Errorf("the error does not name the field and its JSON type: %s", got)
	}
	if got := counted(t, "new") - sessions; got != 0 {
		t.Errorf("%v sessions created by refused initializes", got)
	}
	for _, body := range []string{
		initBody,
		strings.Replace(initBody, `"capabilities":{}`, `"capabilities":null,"extra":[1]`, 1),
		// Names matched exactly, as the go-sdk matches them: this is a field it does not know.
		strings.Replace(initBody, `"capabilities":{}`, `"capabilities":{},"ClientInfo":7`, 1),
	} {
		if resp, got := (call{method: http.MethodPost, body: body}).do(t, srv.URL); resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") == "" {
			t.Errorf("initialize %s: %d %s", body, resp.StatusCode, got)
		}
	}
}

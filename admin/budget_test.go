package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/metrics"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/transport"
)

// introspectionServer is an RFC 7662 endpoint: tokens "good…" are active
// admin tokens for resource, any other inactive; the answers for tokens
// "slow…" wait until release is called (each signals on slow as it
// arrives); while down is set it answers 500. calls counts the calls.
// skew is added to the clock of the verifiers made for it (budgetedAdmin).
type introspectionServer struct {
	url     string
	calls   atomic.Int32
	down    atomic.Bool
	slow    chan struct{}
	release func()
	skew    atomic.Int64 // a time.Duration
}

func newIntrospectionServer(t *testing.T) *introspectionServer {
	gate := make(chan struct{})
	var once sync.Once
	s := &introspectionServer{slow: make(chan struct{}, 16), release: func() { once.Do(func() { close(gate) }) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		tok := r.PostFormValue("token")
		if strings.HasPrefix(tok, "slow") {
			s.slow <- struct{}{}
			<-gate
		}
		if !strings.HasPrefix(tok, "good") {
			json.NewEncoder(w).Encode(map[string]any{"active": false})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": tok, "client_id": "ops-client", "scope": DefaultScope,
			"aud": resource, "exp": time.Now().Add(time.Hour).Unix()})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(s.release) // runs first: the server's handlers wait for it
	s.url = srv.URL
	return s
}

// budgetedAdmin is an admin API verifying access tokens by introspection
// at is, within a budget of 3 refused credentials per address (refilled
// at 0.01 a second), with a static token.
func budgetedAdmin(t *testing.T, is *introspectionServer) http.Handler {
	h, err := Handler(Options{
		Token: "static-admin-token-0123456789",
		Verifier: auth.NewIntrospectionVerifier(auth.IntrospectionOptions{Issuer: "https://idp", Endpoint: is.url,
			ClientID: "pingmcp", ClientSecret: "s", Audiences: []string{resource},
			Now: func() time.Time { return time.Now().Add(time.Duration(is.skew.Load())) }}),
		Budget: transport.NewTokenBudget(transport.Limits{Rate: 0.01, Burst: 3}, nil),
		Stores: state.MemoryStores(time.Minute),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// adminAs sends a request to h from the client address from, bearing
// token ("": none).
func adminAs(h http.Handler, from, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/admin/v1/sessions", nil)
	r.RemoteAddr = from
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// checkOverBudget checks the admin API's refusal of an address over its
// budget: 429 with Retry-After, the API's JSON error, never the token.
func checkOverBudget(t *testing.T, w *httptest.ResponseRecorder, token string) {
	t.Helper()
	var body struct{ Error string }
	if w.Code != http.StatusTooManyRequests || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error == "" ||
		w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("over budget: %d %q %s, want 429 with a JSON error", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	if secs, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("over budget: Retry-After %q, want whole seconds", w.Header().Get("Retry-After"))
	}
	if strings.Contains(w.Body.String(), token) {
		t.Errorf("the refusal repeats the token: %s", w.Body)
	}
}

// An address that keeps sending bad bearer tokens to the admin API cannot
// make it introspect them without bound: once it has spent its budget (the
// edge's, transport.TokenBudget), its tokens go through the node's lane of
// 2 introspections at a time, among at most 2 of its requests waiting, and
// the rest are refused at once (429, Retry-After, the API's JSON error)
// without a call to the authorization server; the console's sign-in too.
// Meanwhile an operator's access token from another address, and the
// static token from the flooding one, are admitted.
func TestAdminTokenFloodBounded(t *testing.T) {
	is := newIntrospectionServer(t)
	h := budgetedAdmin(t, is)
	const flooder, operator = "192.0.2.7:4000", "198.51.100.9:5000"
	limited := limitedTotal("admin_address")

	for i := range 3 {
		if w := adminAs(h, flooder, fmt.Sprint("bad", i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("bad token within the budget: %d %s, want 401", w.Code, w.Body)
		}
	}
	const flood = 10
	done := make(chan *httptest.ResponseRecorder, flood)
	for i := range flood {
		go func() { done <- adminAs(h, flooder, fmt.Sprint("slow", i)) }()
	}
	// Two hold the lane, two wait for it; the others are refused at once.
	for range 2 {
		<-is.slow
	}
	deadline := time.After(10 * time.Second)
	for range flood - 4 {
		select {
		case w := <-done:
			checkOverBudget(t, w, "slow")
		case <-deadline:
			t.Fatalf("the flood's tokens are all introspected: %d calls so far", is.calls.Load())
		}
	}
	if w := adminAs(h, operator, "good-ops"); w.Code != http.StatusOK {
		t.Errorf("an operator's access token from another address during the flood: %d %s, want 200", w.Code, w.Body)
	}
	if w := adminAs(h, flooder, "static-admin-token-0123456789"); w.Code != http.StatusOK {
		t.Errorf("the static token from the flooding address: %d %s, want 200", w.Code, w.Body)
	}
	// The console's sign-in verifies through the same budget.
	form := url.Values{"token": {"bad-console-token"}}
	r := httptest.NewRequest(http.MethodPost, consoleLogin, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = flooder
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || strings.Contains(w.Body.String(), "bad-console-token") {
		t.Errorf("a console sign-in from the flooding address: %d (Retry-After %q), want 429 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	is.release()
	for range 4 {
		if w := <-done; w.Code != http.StatusUnauthorized {
			t.Errorf("a flood's token that waited its turn: %d %s, want 401", w.Code, w.Body)
		}
	}
	// 3 within the budget, 4 through the lane, the operator's.
	if n := is.calls.Load(); n != 3+4+1 {
		t.Errorf("%d introspection calls, want 8", n)
	}
	if got := limitedTotal("admin_address") - limited; got != flood-4+1 {
		t.Errorf("pingmcp_limited_requests_total{limit=admin_address} grew by %v, want %d", got, flood-4+1)
	}
}

// An authorization server out of reach (503) spends nothing of the
// caller's budget: once it is back, the caller's tokens are introspected
// at once, not through the lane kept for addresses over their budget
// (which another address's flood holds here).
func TestAdminUnreachableIssuerSpendsNothing(t *testing.T) {
	is := newIntrospectionServer(t)
	h := budgetedAdmin(t, is)
	const caller, flooder = "192.0.2.8:4000", "192.0.2.9:4000"
	is.down.Store(true)
	for i := range 5 {
		if w := adminAs(h, caller, fmt.Sprint("bad", i)); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("issuer down: %d %s, want 503 with Retry-After", w.Code, w.Body)
		}
	}
	// Back, and past the second the verifier refuses tokens with the
	// server's trouble without asking it.
	is.down.Store(false)
	is.skew.Store(int64(time.Second))
	for i := range 3 {
		if w := adminAs(h, flooder, fmt.Sprint("bad", i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("bad token within the budget: %d %s, want 401", w.Code, w.Body)
		}
	}
	done := make(chan int, 2)
	for i := range 2 {
		go func() { done <- adminAs(h, flooder, fmt.Sprint("slow", i)).Code }()
	}
	for range 2 {
		<-is.slow
	}
	if w := adminAs(h, caller, "bad-again"); w.Code != http.StatusUnauthorized {
		t.Errorf("bad token once the issuer is back, the lane full: %d %s, want 401 (the 503s spent nothing)", w.Code, w.Body)
	}
	is.release()
	for range 2 {
		if code := <-done; code != http.StatusUnauthorized {
			t.Errorf("a flood's token in the lane: %d, want 401", code)
		}
	}
}

// limitedTotal is pingmcp_limited_requests_total{limit}.
func limitedTotal(limit string) float64 {
	var m dto.Metric
	metrics.Limited.WithLabelValues(limit).Write(&m)
	return m.GetCounter().GetValue()
}

// unverifiable refuses every token, and says that none could verify
// (auth.CostNone): over its address's budget, a token is refused unasked.
type unverifiable struct{}

func (unverifiable) Verify(context.Context, string) (*auth.Token, error) {
	return nil, &auth.Error{Code: auth.CodeInvalidToken, Description: "not a token"}
}

func (unverifiable) Cost(string) auth.Cost { return auth.CostNone }

// The static tokens never spend the budget of refused credentials: the
// metrics token sent to a route it does not read is refused (403
// insufficient_scope), and spends nothing, as README says, so that
// Prometheus's address keeps its budget whatever it asks. Before, each
// such refusal spent one, and the address was soon over its budget.
func TestMetricsTokenSpendsNoBudget(t *testing.T) {
	const metricsToken = "static-metrics-token-0123456789"
	h, err := Handler(Options{
		Token:        "static-admin-token-0123456789",
		MetricsToken: metricsToken,
		Verifier:     unverifiable{},
		Budget:       transport.NewTokenBudget(transport.Limits{Rate: 0.01, Burst: 3}, nil),
		Stores:       state.MemoryStores(time.Minute),
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	const from = "192.0.2.10:4000"
	for range 5 {
		if w := adminAs(h, from, metricsToken); w.Code != http.StatusForbidden {
			t.Fatalf("the metrics token on another route: %d %s, want 403", w.Code, w.Body)
		}
	}
	if w := adminAs(h, from, "junk"); w.Code != http.StatusUnauthorized {
		t.Fatalf("a bad token after the metrics token's refusals: %d %s, want 401 (the budget unspent)", w.Code, w.Body)
	}
}

// unreachable cannot reach its authorization server for any token.
type unreachable struct{}

func (unreachable) Verify(context.Context, string) (*auth.Token, error) {
	return nil, errors.New("introspect token: connection refused")
}

// While the authorization server cannot be reached, anyone's token (no valid
// one needed) is answered 503 and spends nothing of its address's budget:
// the line saying so is throttled (at most 5 a second), so that a flood
// during an outage cannot fill the log (it was one line a request).
func TestAdminUnreachableIssuerLogThrottled(t *testing.T) {
	logs := &logtest.Buffer{}
	h, err := Handler(Options{
		Token:    "static-admin-token-0123456789",
		Verifier: unreachable{},
		Budget:   transport.NewTokenBudget(transport.Limits{Rate: 0.01, Burst: 3}, nil),
		Stores:   state.MemoryStores(time.Minute),
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	const requests = 60
	start := time.Now()
	for i := range requests {
		if w := adminAs(h, "192.0.2.11:4000", fmt.Sprint("any", i)); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("issuer down: %d %s, want 503", w.Code, w.Body)
		}
	}
	// The requests' time may span two more of the throttle's one-second
	// windows than whole seconds.
	seconds := int(time.Since(start)/time.Second) + 2
	if n := strings.Count(logs.String(), "could not verify a bearer token"); n == 0 || n > 5*seconds {
		t.Errorf("%d requests while the issuer is down logged %d lines in under %d s, want 1 to %d", requests, n, seconds, 5*seconds)
	}
}

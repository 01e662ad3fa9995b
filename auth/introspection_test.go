package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIntrospectionVerifier(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := now
	var calls atomic.Int32
	answers := map[string]map[string]any{
		"good":     {"active": true, "sub": "alice", "client_id": "claude", "scope": "mcp:tools todo_api:read", "aud": "https://mcp.example/mcp", "exp": now.Add(30 * time.Second).Unix()},
		"array":    {"active": true, "sub": "bob", "scope": []string{"a", "b"}, "aud": []string{"x", "https://mcp.example/mcp"}, "exp": now.Add(time.Hour).Unix()},
		"inactive": {"active": false},
		"aud":      {"active": true, "sub": "alice", "aud": "http://127.0.0.1:8081", "exp": now.Add(time.Hour).Unix()},
		"iss":      {"active": true, "sub": "alice", "iss": "https://evil", "aud": "https://mcp.example/mcp", "exp": now.Add(time.Hour).Unix()},
		"noexp":    {"active": true, "sub": "alice", "aud": "https://mcp.example/mcp"},
		"nbf":      {"active": true, "sub": "alice", "aud": "https://mcp.example/mcp", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Minute).Unix()},
		"strexp":   {"active": true, "sub": "alice", "aud": "https://mcp.example/mcp", "exp": "1900000000"},
		"objsub":   {"active": true, "sub": map[string]any{"id": "alice"}, "aud": "https://mcp.example/mcp", "exp": now.Add(time.Hour).Unix()},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "pingmcp" || secret != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		tok := r.PostFormValue("token")
		if tok == "boom" {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		a, ok := answers[tok]
		if !ok {
			a = map[string]any{"active": false}
		}
		json.NewEncoder(w).Encode(a)
	}))
	defer srv.Close()
	v := NewIntrospectionVerifier(IntrospectionOptions{
		Issuer: "https://idp", Endpoint: srv.URL, ClientID: "pingmcp", ClientSecret: "s3cret",
		Audiences: []string{"https://mcp.example/mcp"}, Now: func() time.Time { return clock },
	})
	ctx := context.Background()

	tok, err := v.Verify(ctx, "good")
	if err != nil || tok.Subject != "alice" || tok.ClientID != "claude" || tok.Issuer != "https://idp" || !tok.HasScopes("todo_api:read") {
		t.Fatalf("good: %+v %v", tok, err)
	}
	if exp := now.Add(30 * time.Second); !tok.ValidUntil.Equal(exp) {
		t.Errorf("good: valid until %s, want its expiry %s (refused from then on)", tok.ValidUntil, exp)
	}
	if tok, err := v.Verify(ctx, "array"); err != nil || !tok.HasScopes("a", "b") {
		t.Fatalf("array: %+v %v", tok, err)
	}
	// A malformed claim is the token's fault, named (not the server's: 503).
	for bad, claim := range map[string]string{"strexp": `malformed claim "exp": a string`, "objsub": `malformed claim "sub": an object`} {
		if _, err := v.Verify(ctx, bad); !IsInvalidToken(err) || !strings.Contains(err.Error(), claim) {
			t.Errorf("%s: %v, want invalid_token naming %s", bad, err, claim)
		}
	}
	// What the edge lets through from an address over its budget: a token
	// whose answer is cached costs nothing, any other a call.
	if v.Cost("array") != CostLocal || v.Cost("never-asked") != CostRemote || v.Cost("") != CostNone {
		t.Errorf("costs: cached %v, new %v, empty %v", v.Cost("array"), v.Cost("never-asked"), v.Cost(""))
	}
	for _, bad := range []string{"inactive", "aud", "iss", "noexp", "nbf", "unknown"} {
		if _, err := v.Verify(ctx, bad); !IsInvalidToken(err) {
			t.Errorf("%s: %v, want invalid_token", bad, err)
		}
	}
	if _, err := v.Verify(ctx, "boom"); err == nil || IsInvalidToken(err) {
		t.Errorf("server error: %v, want a non-token error", err)
	}

	// Answers are reused, but never past the token's expiry.
	before := calls.Load()
	v.Verify(ctx, "good")
	if calls.Load() != before {
		t.Error("a cached answer was asked again")
	}
	clock = now.Add(31 * time.Second)
	if _, err := v.Verify(ctx, "good"); !IsInvalidToken(err) {
		t.Errorf("good after expiry: %v", err)
	}
	if calls.Load() != before+1 {
		t.Error("the answer outlived the token")
	}
	// Server trouble is not cached.
	before = calls.Load()
	v.Verify(ctx, "boom")
	if calls.Load() != before+1 {
		t.Error("a failed introspection was cached")
	}
}

// Concurrent checks of one token make one introspection; a flood of made-up
// tokens does not evict the good answers.
func TestIntrospectionSharedAndBounded(t *testing.T) {
	var calls atomic.Int32
	release, asked := make(chan struct{}), make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.PostFormValue("token") == "good" {
			asked <- struct{}{}
			<-release
			json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": "alice", "aud": "r", "exp": time.Now().Add(time.Hour).Unix()})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"active": false})
	}))
	defer srv.Close()
	v := NewIntrospectionVerifier(IntrospectionOptions{Issuer: "https://idp", Endpoint: srv.URL, Audiences: []string{"r"}, MaxCacheEntries: 100})
	ctx := context.Background()
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := v.Verify(ctx, "good")
			errs <- err
		}()
	}
	<-asked // one introspection is under way; the others wait on it or hit the cache
	close(release)
	for range 10 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d introspections for 10 concurrent checks of one token", n)
	}
	for i := range 500 {
		v.Verify(ctx, "made-up-"+strconv.Itoa(i))
	}
	before := calls.Load()
	if _, err := v.Verify(ctx, "good"); err != nil || calls.Load() != before {
		t.Errorf("the good answer was evicted by a flood of refusals (err %v)", err)
	}
	if len(v.cache.m) > 100 {
		t.Errorf("cache holds %d entries, bound 100", len(v.cache.m))
	}
}

// While the server is in trouble, a flood of tokens not cached is one call
// to it a second, not one each: after a failed introspection, the others
// are refused with its error at once (the edge's 503) for troublePause,
// then one call at a time asks whether it is back; an answer, a token's
// refusal included, ends the pause. Cached answers are served throughout,
// and an introspection its caller left says nothing of the server.
func TestIntrospectionOutagePaused(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	var calls atomic.Int32
	var down atomic.Bool
	asked, release := make(chan struct{}, 10), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		tok := r.PostFormValue("token")
		if tok == "slow" {
			asked <- struct{}{}
			<-release
		}
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"active": tok == "good", "sub": "alice", "aud": "r", "exp": clock.Add(time.Hour).Unix()})
	}))
	defer srv.Close()
	v := NewIntrospectionVerifier(IntrospectionOptions{Issuer: "https://idp", Endpoint: srv.URL, Audiences: []string{"r"},
		Now: func() time.Time { return clock }})
	ctx := context.Background()
	if _, err := v.Verify(ctx, "good"); err != nil {
		t.Fatal(err)
	}

	down.Store(true)
	if _, err := v.Verify(ctx, "first"); err == nil || IsInvalidToken(err) {
		t.Fatalf("the server down: %v, want its trouble", err)
	}
	for i := range 100 {
		if _, err := v.Verify(ctx, "flood-"+strconv.Itoa(i)); err == nil || IsInvalidToken(err) || !strings.Contains(err.Error(), "502") {
			t.Fatalf("a token during the pause: %v, want the server's trouble", err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls to the server for a good token, then 101 during an outage; want 2", n)
	}
	if tok, err := v.Verify(ctx, "good"); err != nil || tok.Subject != "alice" {
		t.Errorf("a cached answer during the pause: %v %v", tok, err)
	}

	// After the pause, one call probes; the others wait no more than
	// they did in the pause.
	clock = clock.Add(troublePause)
	probed := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, "slow")
		probed <- err
	}()
	<-asked
	if _, err := v.Verify(ctx, "beside-the-probe"); err == nil || IsInvalidToken(err) {
		t.Errorf("a token beside the probe: %v, want the server's trouble", err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3 (the probe alone)", n)
	}
	close(release)
	if err := <-probed; err == nil || IsInvalidToken(err) {
		t.Errorf("the probe, the server still down: %v", err)
	}

	// A call its caller left says nothing of the server: the pause ends
	// as it would have.
	clock = clock.Add(troublePause)
	left, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := v.Verify(left, "left"); err == nil {
		t.Error("a cancelled introspection succeeded")
	}
	down.Store(false)
	if _, err := v.Verify(ctx, "back"); !IsInvalidToken(err) {
		t.Fatalf("the server back: %v, want its answer (inactive)", err)
	}
	before := calls.Load()
	if _, err := v.Verify(ctx, "after"); !IsInvalidToken(err) || calls.Load() != before+1 {
		t.Errorf("after the server answered: %v, %d calls; want its answer, asked", err, calls.Load()-before)
	}
}

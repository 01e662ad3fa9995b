package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/devidp"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

// Revoking a user revokes their persistent grants at the authorization
// server (here the dev IdP's grant management service): their tokens of
// that issuer stop being active there. The answer says so; a grant service
// that refuses makes the answer 502 naming the failure (never the
// password); with none configured, or for another issuer, the answer is 200
// and says the grants were not revoked.
func TestRevokeUserRevokesGrants(t *testing.T) {
	const staticToken = "static-admin-token-0123456789"
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	idp, err := devidp.New(&devidp.Options{
		Issuer:        issuer,
		GrantManagers: map[string]string{"grants": "grants-secret"},
		Clients:       []devidp.Client{{ID: "pingmcp", Secret: "pingmcp-secret"}},
		Resources:     []devidp.Resource{{URI: resource, Scopes: []string{"todo_api:read"}}},
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = idp
	ts.Start()
	t.Cleanup(ts.Close)
	active := func(token string) bool {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, issuer+devidp.PathIntrospect, strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("pingmcp", "pingmcp-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out["active"] == true
	}

	revoke := func(password, subject, query string) (int, map[string]any, string) {
		t.Helper()
		logs := &logtest.Buffer{}
		opts := Options{Token: staticToken, Issuer: issuer, Stores: state.MemoryStores(time.Minute),
			Logger: slog.New(slog.NewJSONHandler(logs, nil))}
		if password != "" {
			opts.RevokeGrants = auth.NewGrantRevoker(auth.GrantsOptions{URL: issuer + auth.GrantsPath, User: "grants", Password: password}).RevokeUser
		}
		h, err := Handler(opts)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/admin/v1/users/"+subject+"/revoke?for=1m"+query, nil)
		req.Header.Set("Authorization", "Bearer "+staticToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer %q: %v", rec.Body, err)
		}
		return rec.Code, out, logs.String()
	}

	alice, err := idp.AccessToken("alice", "client", resource, "todo_api:read")
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := idp.AccessToken("bob", "client", resource, "todo_api:read")

	status, out, logs := revoke("wrong-secret", "alice", "")
	if status != http.StatusBadGateway || out["grants_revoked"] != false || !strings.Contains(out["grants_error"].(string), "401") {
		t.Errorf("grant service refusing: %d %v, want 502 naming the failure", status, out)
	}
	if out["sessions_ended"] == nil || out["until"] == nil {
		t.Errorf("a 502 still reports what was done: %v", out)
	}
	if strings.Contains(logs, "wrong-secret") || strings.Contains(logs, "grants-secret") || !strings.Contains(logs, "were not revoked") {
		t.Errorf("log of a failed grants revocation:\n%s", logs)
	}
	if !active(alice) {
		t.Fatal("alice's grants were revoked with a wrong password")
	}

	for name, c := range map[string]struct{ password, query string }{
		"no grant service":             {"", ""},
		"another issuer than --issuer": {"grants-secret", "&issuer=" + url.QueryEscape("https://other.example.test")},
	} {
		status, out, _ := revoke(c.password, "alice", c.query)
		if status != http.StatusOK || out["grants_revoked"] != false || !strings.Contains(out["grants_error"].(string), "refresh tokens still work") {
			t.Errorf("%s: %d %v, want 200 saying the grants were not revoked", name, status, out)
		}
	}
	if !active(alice) {
		t.Fatal("alice's grants were revoked without a grant service")
	}

	status, out, _ = revoke("grants-secret", "alice", "")
	if status != http.StatusOK || out["grants_revoked"] != true || out["grants_error"] != nil {
		t.Fatalf("revoke: %d %v", status, out)
	}
	if active(alice) {
		t.Error("alice's token is still active at the authorization server after her revocation")
	}
	if !active(bob) {
		t.Error("bob's token was revoked with alice")
	}
}

// A revocation does not wait for the authorization server, nor depend on
// the admin client staying: while the grant service hangs, the user's
// tokens are already refused; the client disconnecting (the CLI's timeout)
// cancels neither the stored revocation nor the grants' revocation, and
// once that returns the revocation is stored again with a later time, so
// that a token refreshed during it is refused too.
func TestRevokeUserSurvivesSlowGrantsAndDisconnect(t *testing.T) {
	const staticToken = "static-admin-token-0123456789"
	arrived, release := make(chan struct{}), make(chan struct{})
	grants := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done(): // the request was cancelled
		}
	}))
	defer grants.Close()
	const issuer = "https://idp.example.test"
	dur := state.MemoryStores(time.Minute)
	dur.Revocations = state.NewRedisRevocations(redistest.Start(t), "t:")
	h, err := Handler(Options{Token: staticToken, Issuer: issuer, Stores: dur, Logger: slog.New(slog.DiscardHandler),
		RevokeGrants: auth.NewGrantRevoker(auth.GrantsOptions{URL: grants.URL, User: "grants", Password: "pw"}).RevokeUser})
	if err != nil {
		t.Fatal(err)
	}
	ctx, disconnect := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/admin/v1/users/alice/revoke?for=1h", nil)
	req.Header.Set("Authorization", "Bearer "+staticToken)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); h.ServeHTTP(rec, req) }()

	key := state.RevocationKey(issuer, "alice")
	stored := func() state.Revocation {
		t.Helper()
		all, err := dur.Revocations.All(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return all[key]
	}
	<-arrived
	if first := stored(); first.At.IsZero() || !first.At.Before(time.Now()) {
		t.Errorf("while the grant service hangs, alice's revocation is not stored: %+v", first)
	}
	disconnect()
	released := time.Now()
	close(release)
	<-done
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Code != http.StatusOK || out["grants_revoked"] != true {
		t.Fatalf("after the admin client disconnected: %d %s, want the grants revoked all the same", rec.Code, rec.Body)
	}
	if final := stored(); final.At.Before(released) || final.Until.Sub(final.At) != time.Hour {
		t.Errorf("revocation after the grants' revocation returned at %v: %+v, want it taken after", released, final)
	}
}

// A subject "." or ".." (escaped in the request's path) would name another
// path of the grant service: it is refused, nothing revoked.
func TestRevokeUserRefusesDotSubjects(t *testing.T) {
	const staticToken = "static-admin-token-0123456789"
	dur := state.MemoryStores(time.Minute)
	var called []string
	h, err := Handler(Options{Token: staticToken, Issuer: "https://idp.example.test", Stores: dur, Logger: slog.New(slog.DiscardHandler),
		RevokeGrants: func(_ context.Context, subject string) error { called = append(called, subject); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"%2E", "%2E%2E", "%2e%2E"} {
		req := httptest.NewRequest(http.MethodPost, "/admin/v1/users/"+p+"/revoke", nil)
		req.Header.Set("Authorization", "Bearer "+staticToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", p, rec.Code, rec.Body)
		}
	}
	if all, _ := dur.Revocations.All(context.Background()); len(called) != 0 || len(all) != 0 {
		t.Errorf("grants revoked for %q, revocations stored %v", called, all)
	}
}

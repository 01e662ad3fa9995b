package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/state"
)

const (
	metricsTestToken = "scrape-only-token-0123456789"
	adminTestToken   = "static-admin-token-0123456789"
)

// adminPath is a request path of route (a pattern of actions, or
// metricsRoute), its wildcards filled in: {id} with session.
func adminPath(route, session string) string {
	_, path, _ := strings.Cut(route, " ")
	return strings.NewReplacer("{id}", session, "{subject}", "alice", "{address}", "127.0.0.1:7000",
		"{owner}", "owner").Replace(path)
}

// TestMetricsTokenScope: the metrics token reads GET /metrics (and its
// HEAD) and nothing else. Every other route of the admin API, with every
// method, and paths that are no route, refuse it as a token without the
// admin scope is refused (403 insufficient_scope, the admin realm's
// challenge, the API's error body), and change nothing; the console does
// not sign it in, and answers a request bearing it as one bearing nothing.
// The admin token still reads /metrics. The refusals are audited as the
// metrics token's; neither token is logged or audited.
func TestMetricsTokenScope(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	const sid = "metrics-scope-session"
	storeSession(t, d, sid, "alice", "client-a")
	logs, audits := &logtest.Buffer{}, &logtest.Buffer{}
	h, err := Handler(Options{Token: adminTestToken, MetricsToken: metricsTestToken, Stores: d,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), Audit: audit.New(audits, false)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	call := func(method, path, token string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}

	// Every route of the API (the audited ones, the runtime profiles by
	// name, /metrics), and paths that are none.
	var paths []string
	for route := range actions {
		if _, path, _ := strings.Cut(route, " "); !strings.HasPrefix(path, consoleRoot) {
			paths = append(paths, adminPath(route, sid))
		}
	}
	paths = append(paths, adminPath(metricsRoute, sid), "/debug/pprof/heap", "/debug/pprof/goroutine", "/debug/pprof/cmdline",
		"/", "/admin/v1/", "/metrics/", "/metrics/x", "/METRICS", "/admin/v1/sessions/"+sid+"/end")
	slices.Sort(paths)
	paths = slices.Compact(paths)
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}
	refused := 0
	for _, path := range paths {
		for _, method := range methods {
			status, header, body := call(method, path, metricsTestToken)
			if path == "/metrics" && (method == http.MethodGet || method == http.MethodHead) {
				if status != http.StatusOK {
					t.Errorf("%s %s with the metrics token: %d, want 200: %s", method, path, status, body)
				}
				if method == http.MethodGet && !strings.Contains(body, "go_goroutines") {
					t.Errorf("GET /metrics with the metrics token: no metrics in %.200s", body)
				}
				continue
			}
			refused++
			if status != http.StatusForbidden {
				t.Errorf("%s %s with the metrics token: %d, want 403: %.200s", method, path, status, body)
				continue
			}
			if c := header.Get("WWW-Authenticate"); !strings.HasPrefix(c, `Bearer realm="pingmcp-admin", error="insufficient_scope"`) ||
				!strings.Contains(c, `scope="pingmcp:admin"`) {
				t.Errorf("%s %s with the metrics token: WWW-Authenticate %q", method, path, c)
			}
			if method == http.MethodHead {
				continue
			}
			var answer map[string]string
			if err := json.Unmarshal([]byte(body), &answer); err != nil || len(answer) != 1 ||
				answer["error"] != "insufficient_scope: the metrics token reads GET /metrics only" {
				t.Errorf("%s %s with the metrics token: body %q, want the API's error", method, path, body)
			}
		}
	}
	// It changed nothing: the session is there, no user is revoked.
	if !stored(t, d, sid) {
		t.Error("the metrics token ended a session")
	}
	if revs, err := d.Revocations.All(context.Background()); err != nil || len(revs) != 0 {
		t.Errorf("the metrics token revoked users: %v %v", revs, err)
	}

	// The admin token still reads /metrics, and the API.
	if status, _, body := call(http.MethodGet, "/metrics", adminTestToken); status != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics with the admin token: %d %.200s", status, body)
	}
	if status, _, body := call(http.MethodGet, "/admin/v1/sessions/"+sid, adminTestToken); status != http.StatusOK {
		t.Errorf("GET a session with the admin token: %d %s", status, body)
	}

	// The console: the metrics token does not sign in, and bearing it
	// changes nothing of what a request without credentials gets.
	browser := newConsoleClient(t, srv)
	status, body, hdr := browser.post("/console/login", url.Values{"token": {metricsTestToken}})
	if status != http.StatusForbidden || hdr.Get("Set-Cookie") != "" || !strings.Contains(body, "metrics token") {
		t.Errorf("console sign-in with the metrics token: %d, cookie %q: %.300s", status, hdr.Get("Set-Cookie"), body)
	}
	console := []string{"GET /console/", "GET /console/tasks", "GET /console/sessions/" + sid}
	for route := range actions {
		if _, path, _ := strings.Cut(route, " "); strings.HasPrefix(path, consoleRoot) {
			console = append(console, route)
		}
	}
	for _, route := range console {
		method, _, _ := strings.Cut(route, " ")
		path := adminPath(route, sid)
		bare, _, _ := call(method, path, "")
		if bearing, _, _ := call(method, path, metricsTestToken); bearing != bare {
			t.Errorf("%s %s: %d bearing the metrics token, %d bearing nothing", method, path, bearing, bare)
		}
	}
	if !stored(t, d, sid) {
		t.Error("the metrics token ended a session through the console")
	}

	// Audited: each refusal as the metrics token's, denied; the scrapes
	// not at all.
	denied := 0
	for _, rec := range auditRecords(t, audits) {
		if rec["operator"] == "static-metrics-token" {
			denied++
			if rec["outcome"] != "denied" {
				t.Errorf("audit record of the metrics token %v, want denied", rec)
			}
		}
	}
	if denied == 0 || denied > refused {
		t.Errorf("%d audit records of the metrics token for %d refusals", denied, refused)
	}
	for _, leak := range []string{metricsTestToken, adminTestToken} {
		if strings.Contains(logs.String(), leak) || strings.Contains(audits.String(), leak) {
			t.Error("a token was logged or audited")
		}
	}
}

// TestMetricsTokenRefusedWithAdminToken: the metrics token may not be the
// admin token (it would read everything), nor hold it.
func TestMetricsTokenRefusedWithAdminToken(t *testing.T) {
	for _, m := range []string{" " + adminTestToken + "\n", adminTestToken + "==", "m-" + adminTestToken} {
		_, err := Handler(Options{Token: adminTestToken, MetricsToken: m, Stores: state.MemoryStores(time.Minute)})
		if err == nil || !strings.Contains(err.Error(), "must neither hold nor be part of the admin token") {
			t.Errorf("Handler with the admin token as (part of) the metrics token: %v", err)
			continue
		}
		if strings.Contains(err.Error(), adminTestToken) {
			t.Error("the error shows the token")
		}
	}
}

package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

const resource = "https://mcp.example.test/mcp"

// TestAuthorization: the admin API admits the static token and access
// tokens for pingmcp with the admin scope, and nothing else, with the RFC
// 6750 status and challenge of each refusal; the operator is logged, never
// the token.
func TestAuthorization(t *testing.T) {
	is := authtest.NewIssuer(t)
	logs, audits := &logtest.Buffer{}, &logtest.Buffer{}
	revokedSub := "mallory"
	h, err := Handler(Options{
		Token:    "static-admin-token-0123456789",
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{resource}}),
		Revoked:  func(t *auth.Token) bool { return t.Subject == revokedSub },
		Stores:   state.MemoryStores(time.Minute),
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
		Audit:    audit.New(audits, false),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	admin := is.Token(t, is.Claims("ops", resource, "openid "+DefaultScope))
	cases := []struct {
		name      string
		header    string
		status    int
		challenge string // a substring of WWW-Authenticate
	}{
		{"no token", "", http.StatusUnauthorized, `Bearer realm="pingmcp-admin", scope="pingmcp:admin"`},
		{"not bearer", "Basic b3BzOm9wcw==", http.StatusUnauthorized, `realm="pingmcp-admin"`},
		{"malformed bearer", "Bearer a b", http.StatusBadRequest, `error="invalid_request"`},
		{"wrong static token", "Bearer static-admin-token-012345678X", http.StatusUnauthorized, `error="invalid_token"`},
		{"static token", "Bearer static-admin-token-0123456789", http.StatusOK, ""},
		{"admin access token", "Bearer " + admin, http.StatusOK, ""},
		{"user token without the admin scope", "Bearer " + is.Token(t, is.Claims("alice", resource, "openid todo_api:read")),
			http.StatusForbidden, `error="insufficient_scope"`},
		{"admin scope for another resource", "Bearer " + is.Token(t, is.Claims("ops", "https://other.example.test", DefaultScope)),
			http.StatusUnauthorized, `error="invalid_token"`},
		{"expired admin token", "Bearer " + is.Token(t, func() map[string]any {
			c := is.Claims("ops", resource, DefaultScope)
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			return c
		}()), http.StatusUnauthorized, `error="invalid_token"`},
		{"revoked operator", "Bearer " + is.Token(t, is.Claims(revokedSub, resource, DefaultScope)), http.StatusUnauthorized, `error="invalid_token"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/v1/sessions", nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, c.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", got, c.challenge)
			}
			if c.status == http.StatusOK && !strings.Contains(string(body), `"sessions":[]`) {
				t.Errorf("body %s", body)
			}
		})
	}
	if !strings.Contains(logs.String(), `"operator":"ops (`+is.URL) || !strings.Contains(logs.String(), `"operator":"static-admin-token"`) {
		t.Errorf("the operators are not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), admin) || strings.Contains(logs.String(), "static-admin-token-0123456789") {
		t.Error("a token was logged")
	}

	// One audit record per request: refusals without an operator,
	// admitted requests with theirs; never a token.
	records := auditRecords(t, audits)
	if len(records) != len(cases) {
		t.Fatalf("%d audit records for %d requests:\n%s", len(records), len(cases), audits.String())
	}
	for i, c := range cases {
		rec := records[i]
		want := "ok"
		if c.status != http.StatusOK {
			want = "denied"
		}
		if rec["outcome"] != want || rec["action"] != "sessions.list" {
			t.Errorf("%s: audit record %v, want outcome %s of sessions.list", c.name, rec, want)
		}
		if (c.status == http.StatusOK) != (rec["operator"] != "") {
			t.Errorf("%s: audit operator %q", c.name, rec["operator"])
		}
	}
	if strings.Contains(audits.String(), admin) || strings.Contains(audits.String(), "static-admin-token-0123456789") {
		t.Error("a token was audited")
	}

	// Without a static token, only access tokens are admitted; with
	// neither, no admin API.
	if _, err := Handler(Options{Stores: state.MemoryStores(time.Minute)}); err == nil {
		t.Error("an admin API without any credential was made")
	}
}

// auditRecords are the audit records written to audits, one a line.
func auditRecords(t *testing.T, audits *logtest.Buffer) []map[string]any {
	t.Helper()
	var records []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(audits.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		records = append(records, rec)
	}
	return records
}

// A request without an operator cannot make its audit record as large as
// itself (its path, target and query are cut to a bound; an operator's are
// recorded whole), nor make it lie: ?status= does not pass for the HTTP
// status; a console form posted by no one signed in is recorded denied,
// not done.
func TestAuditRecordsBounded(t *testing.T) {
	audits := &logtest.Buffer{}
	const token = "static-admin-token-0123456789"
	h, err := Handler(Options{Token: token, Stores: state.MemoryStores(time.Minute), Logger: slog.New(slog.DiscardHandler), Audit: audit.New(audits, false)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, path, bearer string, form url.Values) int {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, srv.URL+path, body)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", srv.URL)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	long := strings.Repeat("x", 30000)
	if s := do(http.MethodGet, "/"+long+"?user="+long+"&status=200", "", nil); s != http.StatusUnauthorized {
		t.Fatalf("status %d", s)
	}
	if s := do(http.MethodDelete, "/admin/v1/sessions/"+long, token, nil); s != http.StatusNotFound && s != http.StatusBadRequest {
		t.Fatalf("ending a long id: %d", s)
	}
	if s := do(http.MethodGet, "/admin/v1/sessions?status=500", token, nil); s != http.StatusOK {
		t.Fatalf("status %d", s)
	}
	if s := do(http.MethodGet, "/admin%2Fv1%2Fsessions", "", nil); s != http.StatusUnauthorized {
		t.Fatalf("status %d", s)
	}
	if s := do(http.MethodPost, "/console/sessions/victim/end", "", url.Values{"csrf": {"x"}}); s != http.StatusSeeOther {
		t.Fatalf("a console form without a sign-in: %d", s)
	}
	lines := strings.Split(strings.TrimSpace(audits.String()), "\n")
	for i, l := range lines {
		if i != 1 && len(l) > 2000 { // the second is an operator's
			t.Errorf("an audit record of %d bytes: %.300s", len(l), l)
		}
	}
	records := auditRecords(t, audits)
	if len(records) != 5 {
		t.Fatalf("%d records:\n%s", len(records), audits.String())
	}
	details := func(i int) map[string]any { d, _ := records[i]["details"].(map[string]any); return d }
	filters := func(i int) map[string]any { f, _ := details(i)["query"].(map[string]any); return f }
	if a, _ := records[0]["action"].(string); !strings.HasPrefix(a, "GET /xxx") || !strings.HasSuffix(a, "…") || details(0)["status"] != 401.0 ||
		!strings.HasSuffix(filters(0)["user"].(string), "…") || filters(0)["status"] != "200" {
		t.Errorf("a refused request with a long path and filters: %v", records[0])
	}
	if tg, _ := records[1]["target"].(string); tg != long || records[1]["action"] != "sessions.kill" {
		t.Errorf("an operator's long target is not recorded whole: %.300v", records[1])
	}
	if details(2)["status"] != 200.0 || filters(2)["status"] != "500" || records[2]["outcome"] != "ok" {
		t.Errorf("a status filter: %v", records[2])
	}
	if records[3]["action"] != "GET /admin%2Fv1%2Fsessions" {
		t.Errorf("an escaped path recorded as %v", records[3]["action"])
	}
	if records[4]["outcome"] != "denied" || records[4]["operator"] != "" {
		t.Errorf("a console form from no one signed in: %v", records[4])
	}
}

// Requests without an operator (anyone who reaches the listener can send
// them, refused or not; a console page's HEAD, as its GET, is not
// recorded) are recorded at most
// anonymousRecords a second; the next record says how many were not, and
// when none comes, a record of their own does, a second later. An
// operator's are all recorded.
func TestAnonymousRefusalsThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		audits := &logtest.Buffer{}
		const token = "static-admin-token-0123456789"
		h, err := Handler(Options{Token: token, Stores: state.MemoryStores(time.Minute), Logger: slog.New(slog.DiscardHandler), Audit: audit.New(audits, false)})
		if err != nil {
			t.Fatal(err)
		}
		do := func(method, path, bearer string) {
			req := httptest.NewRequest(method, path, nil)
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
		for range anonymousRecords {
			do(http.MethodGet, "/admin/v1/sessions", "")
			do(http.MethodGet, "/admin/v1/sessions", "wrong-token-0123456789")
			do(http.MethodHead, "/console/login", "")
			do(http.MethodPost, "/nowhere", "")
		}
		for range 3 {
			do(http.MethodGet, "/admin/v1/sessions", token)
		}
		records := auditRecords(t, audits)
		if len(records) != anonymousRecords+3 {
			t.Fatalf("%d records of %d anonymous requests and 3 operator requests, want %d", len(records), 3*anonymousRecords, anonymousRecords+3)
		}
		time.Sleep(2 * time.Second) // the bubble's clock: the summary is due
		synctest.Wait()
		records = auditRecords(t, audits)
		last := records[len(records)-1]
		if d, _ := last["details"].(map[string]any); len(records) != anonymousRecords+4 || last["action"] != "audit.suppressed" || d["suppressed"] != float64(2*anonymousRecords) {
			t.Fatalf("after the flood: %d records, the last %v", len(records), last)
		}
		do(http.MethodGet, "/admin/v1/sessions", "")
		records = auditRecords(t, audits)
		if last := records[len(records)-1]; last["details"].(map[string]any)["suppressed"] != nil {
			t.Errorf("the count was given twice: %v", last)
		}
	})
}

// An API that serves no cluster node (an embedder's) lists no node and
// drains none, rather than failing.
func TestNodesWithoutANode(t *testing.T) {
	const token = "static-admin-token-0123456789"
	h, err := Handler(Options{Token: token, Stores: state.MemoryStores(time.Minute), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{http.MethodGet, "/admin/v1/nodes", http.StatusOK, `{"nodes":[]}`},
		{http.MethodPost, "/admin/v1/nodes/127.0.0.1:7000/drain", http.StatusNotFound, "no such node"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s %s: %d %s; want %d with %s", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
	}
}

// TestBodyThatTricklesIn: a request whose body never finishes arriving is
// answered, and its connection closed, once formTimeout passed, whatever
// its route: the admin listener has no read timeout (for its profiles),
// and net/http reads an unread body before it answers, so that anyone
// reaching the listener held a connection, and a file descriptor of the
// process, for good with each request they never finished (no token
// needed). An operator's request with a whole body is answered as ever.
func TestBodyThatTricklesIn(t *testing.T) {
	defer func(d time.Duration) { formTimeout = d }(formTimeout)
	formTimeout = 200 * time.Millisecond
	const token = "static-admin-token-0123456789"
	h, err := Handler(Options{Token: token, Stores: state.MemoryStores(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	send := func(t *testing.T, request, headers, body string) (*http.Response, net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "%s HTTP/1.1\r\nHost: %s\r\n%s\r\n%s", request, addr, headers, body)
		c.SetReadDeadline(time.Now().Add(30 * time.Second)) // the test's own bound, far beyond formTimeout
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: no answer: %v", request, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, c
	}
	for _, request := range []string{
		"POST /admin/v1/apis/reload", "GET /admin/v1/sessions", "POST /admin/v1/users/alice/revoke",
		"GET /console/login", "POST /console/logout", "POST /console/sessions/x/end", "POST /nowhere",
	} {
		t.Run(request, func(t *testing.T) {
			_, c := send(t, request, "Content-Length: 1000\r\n", "abc")
			var ne net.Error
			if n, err := c.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("%s: the connection stays open (%d more bytes, %v)", request, n, err)
			}
		})
	}
	t.Run("an operator's whole body", func(t *testing.T) {
		resp, _ := send(t, "GET /admin/v1/sessions", "Authorization: Bearer "+token+"\r\nContent-Length: 3\r\n", "abc")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /admin/v1/sessions with a body: %d", resp.StatusCode)
		}
	})
}

// TestBodyReadLiftsItsDeadline: a handler that read its request's body
// whole runs on past formTimeout without its request being cancelled: the
// server's read that notices a client leaving, which starts as the body
// ends, does not time out on the deadline boundBody set (net/http clears it
// then), which would cancel the request.
func TestBodyReadLiftsItsDeadline(t *testing.T) {
	defer func(d time.Duration) { formTimeout = d }(formTimeout)
	formTimeout = 100 * time.Millisecond
	srv := httptest.NewServer(boundBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, err := io.ReadAll(r.Body); err != nil || string(b) != "abc" {
			t.Errorf("body %q, %v", b, err)
		}
		select {
		case <-r.Context().Done():
			t.Errorf("the request was cancelled once its body was read: %v", context.Cause(r.Context()))
		case <-time.After(5 * formTimeout):
		}
	})))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestUnroutedAnswersJSON: an operator's request that no route takes is
// answered as the API's other errors are, a JSON error body: 404 for a
// path that is no route (a runtime profile of no name the runtime knows
// included), 405 with Allow for a route's path asked with another method. A request without an admin's token still gets 401
// first (nothing is unauthenticated, nor are the routes told to
// strangers), and a path to clean is still only redirected.
func TestUnroutedAnswersJSON(t *testing.T) {
	h, err := Handler(Options{Token: adminTestToken, Stores: state.MemoryStores(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cases := []struct {
		method, path string
		token        string
		status       int
		allow        string
	}{
		{http.MethodGet, "/admin/v1/nothing", adminTestToken, http.StatusNotFound, ""},
		{http.MethodGet, "/", adminTestToken, http.StatusNotFound, ""},
		{http.MethodPost, "/admin/v2/sessions", adminTestToken, http.StatusNotFound, ""},
		{http.MethodHead, "/admin/v1/nothing", adminTestToken, http.StatusNotFound, ""},
		{http.MethodPut, "/admin/v1/sessions", adminTestToken, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPost, "/admin/v1/sessions/s1", adminTestToken, http.StatusMethodNotAllowed, "DELETE, GET, HEAD"},
		{http.MethodGet, "/admin/v1/apis/reload", adminTestToken, http.StatusMethodNotAllowed, "POST"},
		{http.MethodDelete, "/admin/v1/tasks/o/t/cancel", adminTestToken, http.StatusMethodNotAllowed, "POST"},
		{http.MethodOptions, "/admin/v1/users/alice/revoke", adminTestToken, http.StatusMethodNotAllowed, "POST"},
		{http.MethodPost, "/metrics", adminTestToken, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPost, "/debug/pprof/heap", adminTestToken, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodGet, "/debug/pprof/cmdline", adminTestToken, http.StatusNotFound, ""},
		{http.MethodGet, "/debug/pprof/nothing", adminTestToken, http.StatusNotFound, ""},
		{http.MethodGet, "/debug/pprof/heap/x", adminTestToken, http.StatusNotFound, ""},
		{http.MethodGet, "/admin/v1/nothing", "", http.StatusUnauthorized, ""},
		{http.MethodPut, "/admin/v1/sessions", "", http.StatusUnauthorized, ""},
		{http.MethodGet, "/admin/v1//sessions", adminTestToken, http.StatusTemporaryRedirect, ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		what := c.method + " " + c.path
		if c.status == http.StatusTemporaryRedirect { // or 301: whatever redirect net/http's mux answers
			if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/admin/v1/sessions" {
				t.Errorf("%s: %d to %q, want a redirect to /admin/v1/sessions", what, resp.StatusCode, resp.Header.Get("Location"))
			}
			continue
		}
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d, want %d: %s", what, resp.StatusCode, c.status, body)
			continue
		}
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s: Allow %q, want %q", what, got, c.allow)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json: %s", what, ct, body)
		}
		if c.method == http.MethodHead {
			continue
		}
		var answer map[string]string
		if err := json.Unmarshal(body, &answer); err != nil || len(answer) != 1 || answer["error"] == "" {
			t.Errorf("%s: body %q, want the API's JSON error", what, body)
		}
	}
}

// A session whose snapshot is larger than pingmcp writes (refused by the
// store, unread) is a session whose snapshot cannot be read (500, naming
// its key and size), not a store that cannot be read (503); a list shows
// it with why it cannot be read (and nothing else of it), and the others
// as ever.
func TestOversizeSnapshotUnreadable(t *testing.T) {
	const token = "static-admin-token-0123456789"
	client := redistest.Start(t)
	d := state.MemoryStores(time.Minute)
	d.Snapshots = state.NewRedisSnapshots(client, "")
	ctx := context.Background()
	for _, id := range []string{"big", "other"} {
		epoch, _, err := d.Snapshots.Activate(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Snapshots.Save(ctx, id, epoch, []byte(`{"v":1,"sub":"alice"}`), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	bound := 2 * state.DefaultMaxSnapshotBytes
	client.Set(ctx, "pingmcp:session:{big}:snap", strings.Repeat("x", bound+1), time.Hour)
	h, err := Handler(Options{Token: token, Stores: d, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	size := fmt.Sprintf("holds %d bytes", bound+1)
	for _, path := range []string{"/admin/v1/sessions/big", "/admin/v1/tasks?session=big"} {
		if status, body := get(path); status != http.StatusInternalServerError || !strings.Contains(body, "snapshot cannot be read") || !strings.Contains(body, size) {
			t.Errorf("GET %s: %d %s; want 500 naming the snapshot's size", path, status, body)
		}
	}
	why := fmt.Sprintf(`{"id":"big","unreadable":"too large: %d bytes, over its bound of %d bytes"`, bound+1, bound)
	if status, body := get("/admin/v1/sessions"); status != http.StatusOK || !strings.Contains(body, why) || !strings.Contains(body, `{"id":"other","subject":"alice"`) {
		t.Errorf("GET /admin/v1/sessions: %d %s; want the other session, and %s", status, body, why)
	}
}

// A revocation the nodes would not read back is refused, nothing revoked:
// a user named past MaxRevocationKey (400), a new user once the
// revocations in force are as many as a node reads (507: room comes as
// they end, not with a retry).
func TestRevocationRefusedPastTheReadBound(t *testing.T) {
	const token = "static-admin-token-0123456789"
	client := redistest.Start(t)
	d := state.MemoryStores(time.Minute)
	d.Revocations = state.NewRedisRevocations(client, "")
	h, err := Handler(Options{Token: token, Stores: d, Issuer: "https://issuer.example", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	revoke := func(subject string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/v1/users/"+subject+"/revoke", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := revoke(strings.Repeat("s", state.MaxRevocationKey)); code != http.StatusBadRequest || !strings.Contains(body, "over the 512") {
		t.Errorf("a subject past the bound: %d %s", code, body)
	}
	until := time.Now().Add(time.Hour)
	rec := fmt.Sprintf(`{"at":%q,"until":%q,"until_ms":%d}`, time.Now().Format(time.RFC3339Nano), until.Format(time.RFC3339Nano), until.UnixMilli())
	fields := map[string]any{}
	for i := range 100_000 {
		fields[state.RevocationKey("https://issuer.example", "u"+strconv.Itoa(i))] = rec
	}
	if err := client.HSet(context.Background(), "pingmcp:revocations", fields).Err(); err != nil {
		t.Fatal(err)
	}
	if code, body := revoke("mallory"); code != http.StatusInsufficientStorage || !strings.Contains(body, "nothing was revoked") {
		t.Errorf("a new user past the count: %d %s", code, body)
	}
	if n := client.HLen(context.Background(), "pingmcp:revocations").Val(); n != 100_000 {
		t.Errorf("%d revocations stored, want 100000", n)
	}
}

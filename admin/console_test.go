package admin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

const consoleTestToken = "console-test-token-0123456789"

// consoleClient is a browser of the console: it keeps cookies, does not
// follow redirects (the tests look at them), and sends the console's
// Origin on its POSTs.
type consoleClient struct {
	t    *testing.T
	base string
	http *http.Client
	srv  *httptest.Server
}

type consoleFixture struct {
	*consoleClient
	d    *state.Stores
	logs *logtest.Buffer
}

func newConsoleFixture(t *testing.T, snaps state.Snapshots) *consoleFixture {
	t.Helper()
	d := state.MemoryStores(time.Hour)
	if snaps != nil {
		d.Snapshots = snaps
	}
	logs := &logtest.Buffer{}
	h, err := Handler(Options{Token: consoleTestToken, Stores: d, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if strings.Contains(logs.String(), consoleTestToken) {
			t.Error("the admin token appears in the logs")
		}
	})
	return &consoleFixture{consoleClient: newConsoleClient(t, srv), d: d, logs: logs}
}

// newConsoleClient returns a browser of srv with no cookie yet.
func newConsoleClient(t *testing.T, srv *httptest.Server) *consoleClient {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: srv.Client().Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &consoleClient{t: t, base: srv.URL, http: c, srv: srv}
}

func (c *consoleClient) do(req *http.Request) (int, string, http.Header) {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c *consoleClient) get(path string) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

// post sends a form from the console's own origin, with extra headers
// (an empty value removes the header).
func (c *consoleClient) post(path string, form url.Values, headers ...string) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.base)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	return c.do(req)
}

func (c *consoleClient) login() {
	c.t.Helper()
	if status, body, h := c.post("/console/login", url.Values{"token": {consoleTestToken}}); status != http.StatusSeeOther || h.Get("Location") != "/console/" {
		c.t.Fatalf("sign in: %d %s %s", status, h.Get("Location"), body)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token of the signed-in operator from a page.
func (c *consoleClient) csrf() string {
	c.t.Helper()
	_, body, _ := c.get("/console/")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no CSRF token on the list page:\n%s", body)
	}
	return m[1]
}

// storeSession writes the snapshot of a session as a session actor would.
func storeSession(t *testing.T, d *state.Stores, id, subject, clientID string) {
	t.Helper()
	ctx := context.Background()
	epoch, _, err := d.Snapshots.Activate(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	snap := `{"v":1,"iss":"https://idp.example","sub":"` + subject + `","client_id":"` + clientID + `",` +
		`"initialize":{"protocolVersion":"2025-11-25","clientInfo":{"name":"probe-client","version":"1.2.3"}},` +
		`"protocol_version":"2025-11-25","initialized":true,"log_level":"info","subscriptions":["todo://list"],` +
		`"node":"127.0.0.1:7001","epoch":1,"created":"` + now + `","active":"` + now + `"}`
	if err := d.Snapshots.Save(ctx, id, epoch, []byte(snap), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Describe(id, []byte(snap), false); err != nil {
		t.Fatalf("the test's snapshot is not one the node reads: %v", err)
	}
}

func stored(t *testing.T, d *state.Stores, id string) bool {
	t.Helper()
	snap, err := d.Snapshots.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return snap != nil
}

func TestConsoleLogin(t *testing.T) {
	f := newConsoleFixture(t, nil)

	// Signed out, every page sends to the sign-in form.
	for _, path := range []string{"/console/", "/console/sessions/abc"} {
		if status, _, h := f.get(path); status != http.StatusSeeOther || h.Get("Location") != "/console/login" {
			t.Errorf("GET %s signed out: %d %q", path, status, h.Get("Location"))
		}
	}
	if status, _, h := f.get("/console"); status != http.StatusSeeOther || h.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d %q", status, h.Get("Location"))
	}
	status, body, h := f.get("/console/login")
	if status != http.StatusOK || !strings.Contains(body, `name="token"`) || strings.Contains(body, "http-equiv") {
		t.Errorf("sign-in form: %d\n%s", status, body)
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	// The JSON API stays behind its bearer token.
	if status, _, _ := f.get("/admin/v1/sessions"); status != http.StatusUnauthorized {
		t.Errorf("the API without a token: %d", status)
	}

	for _, tc := range []struct{ token, message string }{
		{"", "Enter an admin token"},
		{"wrong-token-of-some-length", "This token was refused: invalid admin token"},
		{consoleTestToken + "x", "This token was refused: invalid admin token"},
	} {
		status, body, h := f.post("/console/login", url.Values{"token": {tc.token}})
		if status != http.StatusUnauthorized || !strings.Contains(body, tc.message) || !strings.Contains(body, `name="token"`) {
			t.Errorf("sign in with %q: %d\n%s", tc.token, status, body)
		}
		if tc.token != "" && strings.Contains(body, tc.token) {
			t.Errorf("the refused token is echoed: %s", body)
		}
		if h.Get("Set-Cookie") != "" {
			t.Errorf("a refused sign-in set a cookie: %s", h.Get("Set-Cookie"))
		}
	}
	if status, _, _ := f.get("/console/"); status != http.StatusSeeOther {
		t.Errorf("refused sign-ins signed in: %d", status)
	}
	// A sign-in form posted from another site is refused before the token
	// is looked at.
	if status, _, h := f.post("/console/login", url.Values{"token": {consoleTestToken}}, "Origin", "https://evil.example"); status != http.StatusForbidden || h.Get("Set-Cookie") != "" {
		t.Errorf("cross-origin sign-in: %d", status)
	}

	status, _, h = f.post("/console/login", url.Values{"token": {consoleTestToken}})
	if status != http.StatusSeeOther || h.Get("Location") != "/console/" {
		t.Fatalf("sign in: %d %q", status, h.Get("Location"))
	}
	cookie := h.Get("Set-Cookie")
	for _, want := range []string{"pingmcp_console=", "Path=/console", "HttpOnly", "SameSite=Strict", "Max-Age=28800"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") || strings.Contains(cookie, consoleTestToken) {
		t.Errorf("cookie %q: Secure without TLS, or the token itself", cookie)
	}
	value := strings.TrimPrefix(strings.Split(cookie, ";")[0], "pingmcp_console=")
	if len(value) != 43 { // 256 bits, base64url
		t.Errorf("console session id %q is not 256 bits", value)
	}
	status, body, _ = f.get("/console/")
	if status != http.StatusOK || !strings.Contains(body, `<meta http-equiv="refresh" content="2">`) || !strings.Contains(body, "static-admin-token") || !strings.Contains(body, `id="no-sessions"`) {
		t.Errorf("the list signed in: %d\n%s", status, body)
	}
	if status, _, h := f.get("/console/login"); status != http.StatusSeeOther || h.Get("Location") != "/console/" {
		t.Errorf("the sign-in form signed in: %d", status)
	}
	if !strings.Contains(f.logs.String(), "admin console: signed in") || !strings.Contains(f.logs.String(), "operator=static-admin-token") {
		t.Errorf("the sign-in is not logged with its operator:\n%s", f.logs.String())
	}

	// Signing out forgets the console session on the server: its cookie,
	// replayed, no longer signs in.
	csrf := f.csrf()
	if status, _, h := f.post("/console/logout", url.Values{"csrf": {csrf}}); status != http.StatusSeeOther || h.Get("Location") != "/console/login" || !strings.Contains(h.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("sign out: %d %q %q", status, h.Get("Location"), h.Get("Set-Cookie"))
	}
	replay, _ := http.NewRequest(http.MethodGet, f.base+"/console/", nil)
	replay.AddCookie(&http.Cookie{Name: consoleCookie, Value: value})
	if status, _, _ := newConsoleClient(t, f.srv).do(replay); status != http.StatusSeeOther {
		t.Errorf("the cookie of a signed-out console session still signs in: %d", status)
	}
	if !strings.Contains(f.logs.String(), "admin console: signed out") {
		t.Error("the sign-out is not logged")
	}
}

func TestConsoleSessions(t *testing.T) {
	f := newConsoleFixture(t, nil)
	storeSession(t, f.d, "sess-alice-1", "alice", "client-a")
	storeSession(t, f.d, "sess-bob-1", "bob", "client-b")
	f.login()

	_, body, _ := f.get("/console/")
	for _, want := range []string{`data-session="sess-alice-1"`, `data-session="sess-bob-1"`, "probe-client", "2025-11-25", "127.0.0.1:7001", "passivated"} {
		if !strings.Contains(body, want) {
			t.Errorf("the list lacks %s:\n%s", want, body)
		}
	}
	_, body, _ = f.get("/console/?user=alice")
	if !strings.Contains(body, `data-session="sess-alice-1"`) || strings.Contains(body, "sess-bob-1") || !strings.Contains(body, `value="alice"`) {
		t.Errorf("the list of alice:\n%s", body)
	}
	_, body, _ = f.get("/console/?client=client-b")
	if !strings.Contains(body, `data-session="sess-bob-1"`) || strings.Contains(body, "sess-alice-1") {
		t.Errorf("the list of client-b:\n%s", body)
	}
	_, body, _ = f.get("/console/?user=carol")
	if !strings.Contains(body, `id="no-sessions"`) {
		t.Errorf("the list of nobody:\n%s", body)
	}

	status, body, _ := f.get("/console/sessions/sess-alice-1")
	for _, want := range []string{"alice", "https://idp.example", "probe-client", "1.2.3", "client-a", "2025-11-25", "todo://list", "info", `id="no-delegations"`, `<meta http-equiv="refresh" content="2">`, `action="/console/sessions/sess-alice-1/end"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the session's page (%d) lacks %s:\n%s", status, want, body)
		}
	}
	status, body, _ = f.get("/console/sessions/no-such-session")
	if status != http.StatusNotFound || !strings.Contains(body, "no such session") {
		t.Errorf("an unknown session: %d\n%s", status, body)
	}
	if status, _, _ := f.post("/console/sessions/no-such-session/end", url.Values{"csrf": {f.csrf()}}); status != http.StatusNotFound {
		t.Errorf("ending an unknown session: %d", status)
	}

	status, _, h := f.post("/console/sessions/sess-alice-1/end", url.Values{"csrf": {f.csrf()}})
	if status != http.StatusSeeOther || h.Get("Location") != "/console/" {
		t.Fatalf("end: %d %q", status, h.Get("Location"))
	}
	if stored(t, f.d, "sess-alice-1") {
		t.Error("the ended session is still stored")
	}
	if !stored(t, f.d, "sess-bob-1") {
		t.Error("ending alice's session ended bob's")
	}
	_, body, _ = f.get("/console/")
	if strings.Contains(body, "sess-alice-1") || !strings.Contains(body, "sess-bob-1") {
		t.Errorf("the list after the end:\n%s", body)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "admin console: session ended") || !strings.Contains(logs, "session=sess-alice-1") || !strings.Contains(logs, "operator=static-admin-token") {
		t.Errorf("the end is not logged with its operator:\n%s", logs)
	}
}

// Forms that change something, refused: nothing changes.
func TestConsoleRefusals(t *testing.T) {
	f := newConsoleFixture(t, nil)
	storeSession(t, f.d, "sess-1", "alice", "client-a")
	f.login()
	csrf := f.csrf()
	other := newConsoleClient(t, f.srv) // signed out

	for _, tc := range []struct {
		name    string
		client  *consoleClient
		path    string
		form    url.Values
		headers []string
		status  int
	}{
		{"end without the CSRF token", f.consoleClient, "/console/sessions/sess-1/end", url.Values{}, nil, http.StatusForbidden},
		{"end with a wrong CSRF token", f.consoleClient, "/console/sessions/sess-1/end", url.Values{"csrf": {csrf + "x"}}, nil, http.StatusForbidden},
		{"end from another origin", f.consoleClient, "/console/sessions/sess-1/end", url.Values{"csrf": {csrf}}, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"end from another port", f.consoleClient, "/console/sessions/sess-1/end", url.Values{"csrf": {csrf}}, []string{"Origin", "http://127.0.0.1:1"}, http.StatusForbidden},
		{"end from an opaque origin", f.consoleClient, "/console/sessions/sess-1/end", url.Values{"csrf": {csrf}}, []string{"Origin", "null"}, http.StatusForbidden},
		{"end from a cross-site page", f.consoleClient, "/console/sessions/sess-1/end", url.Values{"csrf": {csrf}}, []string{"Origin", "", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"end signed out", other, "/console/sessions/sess-1/end", url.Values{"csrf": {csrf}}, nil, http.StatusSeeOther},
		{"sign out without the CSRF token", f.consoleClient, "/console/logout", url.Values{}, nil, http.StatusForbidden},
		{"sign out from another origin", f.consoleClient, "/console/logout", url.Values{"csrf": {csrf}}, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"end by GET", f.consoleClient, "/console/sessions/sess-1/end", nil, nil, http.StatusNotFound},
	} {
		var status int
		if tc.form == nil {
			status, _, _ = tc.client.get(tc.path)
		} else {
			status, _, _ = tc.client.post(tc.path, tc.form, tc.headers...)
		}
		if status != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, status, tc.status)
		}
		if !stored(t, f.d, "sess-1") {
			t.Fatalf("%s: the session was ended", tc.name)
		}
		if status, _, _ := f.get("/console/"); status != http.StatusOK {
			t.Fatalf("%s: signed out", tc.name)
		}
	}
	// A form without Origin (no browser page) but with the token works.
	if status, _, _ := f.post("/console/sessions/sess-1/end", url.Values{"csrf": {csrf}}, "Origin", ""); status != http.StatusSeeOther || stored(t, f.d, "sess-1") {
		t.Errorf("end without Origin: %d", status)
	}
}

// failingSnapshots is a session store that cannot be reached.
type failingSnapshots struct{ state.Snapshots }

var errStoreDown = errors.New("dial tcp 10.0.0.1:6379: connection refused")

func (failingSnapshots) List(context.Context, string, int) ([]state.Stored, string, error) {
	return nil, "", errStoreDown
}
func (failingSnapshots) Get(context.Context, string) ([]byte, error) { return nil, errStoreDown }

func TestConsoleStoreDown(t *testing.T) {
	f := newConsoleFixture(t, failingSnapshots{})
	f.login()
	for _, path := range []string{"/console/", "/console/sessions/sess-1"} {
		status, body, h := f.get(path)
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") || h.Get("Retry-After") == "" {
			t.Errorf("GET %s, store down: %d\n%s", path, status, body)
		}
	}
}

func TestConsoleSecureCookie(t *testing.T) {
	h, err := Handler(Options{Token: consoleTestToken, Stores: state.MemoryStores(time.Hour), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	c := newConsoleClient(t, srv)
	_, _, hdr := c.post("/console/login", url.Values{"token": {consoleTestToken}})
	if ck := hdr.Get("Set-Cookie"); !strings.Contains(ck, "; Secure") {
		t.Errorf("cookie over TLS: %q", ck)
	}
}

// The sign-ins a node keeps are bounded, and expired ones go.
func TestConsoleSignInsBounded(t *testing.T) {
	c := &console{signIns: map[[sha256.Size]byte]*consoleSignIn{}}
	c.remember("expired", &consoleSignIn{expires: time.Now().Add(-time.Second)})
	c.remember("first", &consoleSignIn{expires: time.Now().Add(time.Hour)})
	if len(c.signIns) != 1 {
		t.Fatalf("the expired sign-in was kept: %d", len(c.signIns))
	}
	for i := range maxConsoleLogins + 10 {
		c.remember(newSecret(), &consoleSignIn{expires: time.Now().Add(2*time.Hour + time.Duration(i))})
	}
	if len(c.signIns) != maxConsoleLogins {
		t.Errorf("%d sign-ins kept, want %d", len(c.signIns), maxConsoleLogins)
	}
	if c.signIns[sha256.Sum256([]byte("first"))] != nil {
		t.Error("the oldest sign-in was kept past the bound")
	}
	req := httptest.NewRequest(http.MethodGet, "/console/", nil)
	req.AddCookie(&http.Cookie{Name: consoleCookie, Value: "expired"})
	if c.current(req) != nil {
		t.Error("an expired sign-in signs in")
	}
}

// TestConsoleAccessTokenSignIn: an operator signs in with a PingFederate
// access token carrying the admin scope; a token without it is refused 403;
// and the sign-in ends as soon as the operator's user is revoked.
func TestConsoleAccessTokenSignIn(t *testing.T) {
	is := authtest.NewIssuer(t)
	var revokedMu sync.Mutex
	revoked := ""
	h, err := Handler(Options{
		Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{resource}}),
		Stores:   state.MemoryStores(time.Hour),
		Revoked: func(t *auth.Token) bool {
			revokedMu.Lock()
			defer revokedMu.Unlock()
			return t.Subject == revoked
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := newConsoleClient(t, srv)
	if status, body, _ := c.post("/console/login", url.Values{"token": {is.Token(t, is.Claims("alice", resource, "openid"))}}); status != http.StatusForbidden || !strings.Contains(body, "admin scope") {
		t.Errorf("sign-in without the admin scope: %d\n%s", status, body)
	}
	if status, _, h := c.post("/console/login", url.Values{"token": {is.Token(t, is.Claims("ops", resource, DefaultScope))}}); status != http.StatusSeeOther {
		t.Fatalf("sign-in with an admin access token: %d %q", status, h.Get("Location"))
	}
	if status, body, _ := c.get("/console/"); status != http.StatusOK || !strings.Contains(body, "ops (") {
		t.Fatalf("the list after signing in: %d\n%s", status, body)
	}
	revokedMu.Lock()
	revoked = "ops"
	revokedMu.Unlock()
	if status, _, h := c.get("/console/"); status != http.StatusSeeOther || h.Get("Location") != "/console/login" {
		t.Errorf("the list after the operator was revoked: %d %q", status, h.Get("Location"))
	}
}

// A cursor the console did not give: 400 and a way back to the first page,
// not "the store cannot be read".
func TestConsoleBadCursor(t *testing.T) {
	f := newConsoleFixture(t, state.NewRedisSnapshots(redistest.Start(t), "console:"))
	f.login()
	status, body, _ := f.get("/console/?cursor=bogus")
	if status != http.StatusBadRequest || !strings.Contains(body, "first page") {
		t.Errorf("GET /console/?cursor=bogus: %d\n%s", status, body)
	}
}

// A sign-in whose body never finishes arriving is answered (refused, as an
// empty form) once formTimeout passed, not held for good: whatever its
// type (ParseForm reads only a urlencoded body).
func TestConsoleFormThatTricklesIn(t *testing.T) {
	f := newConsoleFixture(t, nil)
	defer func(d time.Duration) { formTimeout = d }(formTimeout)
	formTimeout = 200 * time.Millisecond
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", ""} {
		c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ct != "" {
			ct = "Content-Type: " + ct + "\r\n"
		}
		fmt.Fprintf(c, "POST /console/login HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\n%sContent-Length: 1000\r\n\r\ntoken=con",
			f.srv.Listener.Addr(), f.srv.URL, ct)
		c.SetReadDeadline(time.Now().Add(30 * time.Second)) // the test's own bound, far beyond formTimeout
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: no answer to a form that trickles in: %v", ct, err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusSeeOther {
			t.Fatalf("%q: a partial form signed in: %d", ct, resp.StatusCode)
		}
	}
}

// Refused sign-ins (anyone can post one) are logged at most a few a
// second: a flood of them does not fill the process log.
func TestConsoleRefusedSignInsThrottled(t *testing.T) {
	f := newConsoleFixture(t, nil)
	for range 40 {
		if status, _, _ := f.post("/console/login", url.Values{"token": {"wrong-token-0123456789"}}); status != http.StatusUnauthorized {
			t.Fatalf("a wrong token: %d", status)
		}
	}
	if n := strings.Count(f.logs.String(), "sign-in refused"); n == 0 || n >= 40 {
		t.Errorf("%d log lines for 40 refused sign-ins", n)
	}
}

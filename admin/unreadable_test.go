package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

// secretContent is what the unreadable snapshots of these tests are made
// of: no answer, log line or audit record may quote it.
const secretContent = "s3cr3t-content"

// unreadableFixture is an admin API over stores in Redis that count each
// user's sessions, as a cluster's are, and records which sessions' actors
// it told to stop.
type unreadableFixture struct {
	t              *testing.T
	client         *redis.Client
	d              *state.Stores
	srv            *httptest.Server
	logs, audits   *logtest.Buffer
	mu             sync.Mutex
	stopped        []string
	issuer, prefix string
}

func newUnreadableFixture(t *testing.T) *unreadableFixture {
	t.Helper()
	f := &unreadableFixture{t: t, client: redistest.Start(t), logs: &logtest.Buffer{}, audits: &logtest.Buffer{},
		issuer: "https://idp.example", prefix: "pingmcp:"}
	f.d = state.MemoryStores(time.Hour)
	f.d.Snapshots = state.NewRedisSnapshots(f.client, f.prefix)
	f.d.Events = state.NewRedisEvents(f.client, f.prefix, state.EventOptions{})
	f.d.Users = state.NewRedisUserSessions(f.client, f.prefix)
	f.d.MaxSessionsPerUser = 10
	stopSessionActor = func(_ context.Context, id, _ string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.stopped = append(f.stopped, id)
		return nil
	}
	t.Cleanup(func() { stopSessionActor = nil })
	h, err := Handler(Options{Token: consoleTestToken, Stores: f.d, Issuer: f.issuer,
		Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), Audit: audit.New(f.audits, false)})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		for what, s := range map[string]string{"logs": f.logs.String(), "audit": f.audits.String()} {
			if strings.Contains(s, secretContent) || strings.Contains(s, consoleTestToken) {
				t.Errorf("the %s quote a snapshot's content or the token:\n%s", what, s)
			}
		}
	})
	return f
}

// session makes a session of subject as an actor does: counted against
// its user, its snapshot written, an event stream with an event.
func (f *unreadableFixture) session(id, subject string) {
	f.t.Helper()
	ctx := context.Background()
	if ok, _, err := f.d.Users.Claim(ctx, f.d.UserKey(f.issuer, subject), id, f.d.MaxSessionsPerUser, time.Hour); err != nil || !ok {
		f.t.Fatalf("claim %s: %v %v", id, ok, err)
	}
	storeSession(f.t, f.d, id, subject, "client-a")
	if err := f.d.Events.Open(ctx, id, "stream-1"); err != nil {
		f.t.Fatal(err)
	}
	if err := f.d.Events.Append(ctx, id, "stream-1", []byte(`{"jsonrpc":"2.0","method":"notifications/progress"}`)); err != nil {
		f.t.Fatal(err)
	}
}

// spoil makes session id's snapshot unreadable in one of the ways Redis
// may hold one: larger than a node reads, not JSON, not a string.
func (f *unreadableFixture) spoil(id, how string) {
	f.t.Helper()
	ctx := context.Background()
	key := f.prefix + "session:{" + id + "}:snap"
	var err error
	switch how {
	case "large":
		err = f.client.Set(ctx, key, strings.Repeat(secretContent, 3<<20)[:3<<20], time.Hour).Err() // 3 MiB
	case "garbage":
		err = f.client.Set(ctx, key, "\x00"+secretContent, time.Hour).Err()
	case "hash":
		f.client.Del(ctx, key)
		err = f.client.HSet(ctx, key, "field", secretContent).Err()
	default:
		f.t.Fatalf("spoil %s: %s?", id, how)
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *unreadableFixture) do(method, path string) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+consoleTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(body), secretContent) {
		f.t.Errorf("%s %s quotes a snapshot's content: %.300s", method, path, body)
	}
	return resp.StatusCode, string(body)
}

// keys are the Redis keys of session id: its snapshot and its events.
func (f *unreadableFixture) keys(id string) []string {
	f.t.Helper()
	ctx := context.Background()
	var out []string
	for _, pattern := range []string{f.prefix + "session:{" + id + "}:snap", f.prefix + "events:{" + id + "}:*"} {
		ks, err := f.client.Keys(ctx, pattern).Result()
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, ks...)
	}
	return out
}

// counted says whether session id counts against subject.
func (f *unreadableFixture) counted(id, subject string) bool {
	f.t.Helper()
	ids, err := f.d.Users.Sessions(context.Background(), f.d.UserKey(f.issuer, subject), f.d.MaxSessionsPerUser)
	if err != nil {
		f.t.Fatal(err)
	}
	return slices.Contains(ids, id)
}

func (f *unreadableFixture) wasStopped(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.stopped, id)
}

// A session whose snapshot is there but cannot be read (larger than a
// node reads, not JSON, not a string in Redis) is listed, with its id and
// why, never its content, when no filter is given (no filter can match
// it: nothing says whose it is); and an operator ends it as any other:
// 204, its snapshot and events go, it no longer counts against its user
// (found in the users' counts, since its snapshot cannot say whose it
// is), its actor is told to stop wherever it is, and the audit record and
// the log say that its snapshot could not be read, and why. Before, the
// list left it out and DELETE answered 500 at its lookup, changing
// nothing: it stayed until its idle timeout, counted against its user.
func TestEndUnreadableSession(t *testing.T) {
	f := newUnreadableFixture(t)
	ways := map[string]string{"s-large": "large", "s-garbage": "garbage", "s-hash": "hash"}
	for id, how := range ways {
		f.session(id, "alice")
		f.spoil(id, how)
	}
	f.session("s-fine", "alice")

	status, body := f.do(http.MethodGet, "/admin/v1/sessions")
	var list struct{ Sessions []state.SessionInfo }
	if err := json.Unmarshal([]byte(body), &list); status != http.StatusOK || err != nil {
		t.Fatalf("GET /admin/v1/sessions: %d %s", status, body)
	}
	got := map[string]state.SessionInfo{}
	for _, s := range list.Sessions {
		got[s.ID] = s
	}
	for id, want := range map[string]string{
		"s-large":   "too large: 3 MiB, over its bound of 512 KiB",
		"s-garbage": "not a session snapshot: it does not decode",
		"s-hash":    "not a snapshot: Redis holds a hash there",
	} {
		if s, ok := got[id]; !ok || s.Unreadable != want || s.Subject != "" || s.Live {
			t.Errorf("%s listed as %+v (listed: %v), want it with unreadable %q", id, s, ok, want)
		}
	}
	var raw struct{ Sessions []map[string]any }
	json.Unmarshal([]byte(body), &raw)
	for _, s := range raw.Sessions {
		if _, ok := ways[s["id"].(string)]; ok && (s["created"] != nil || s["last_active"] != nil) {
			t.Errorf("an unreadable session is listed with times it does not have: %v", s)
		}
	}
	if s := got["s-fine"]; s.Subject != "alice" || s.Unreadable != "" {
		t.Errorf("the readable session listed as %+v", s)
	}
	// GET of one, or of its tasks, says why as the list does, quoting
	// nothing of it; a hash where the snapshot is, by its type (500: the
	// store was read).
	for _, path := range []string{"/admin/v1/sessions/s-garbage", "/admin/v1/tasks?session=s-garbage"} {
		if status, body := f.do(http.MethodGet, path); status != http.StatusInternalServerError ||
			!strings.Contains(body, "not a session snapshot: it does not decode") || strings.Contains(body, `\u0000`) || strings.Contains(body, "s3") {
			t.Errorf("GET %s of a garbage snapshot: %d %s", path, status, body)
		}
	}
	if status, body := f.do(http.MethodGet, "/admin/v1/tasks?session=s-hash"); status != http.StatusInternalServerError || !strings.Contains(body, "hash") {
		t.Errorf("GET of the tasks of a session whose snapshot is a hash: %d %s", status, body)
	}
	for _, filter := range []string{"user=alice", "client=client-a", "node=127.0.0.1:7001"} {
		status, body := f.do(http.MethodGet, "/admin/v1/sessions?"+filter)
		if status != http.StatusOK || !strings.Contains(body, `"s-fine"`) || strings.Contains(body, "unreadable") {
			t.Errorf("GET /admin/v1/sessions?%s: %d %s; want the readable session alone", filter, status, body)
		}
	}

	for id := range ways {
		if len(f.keys(id)) < 2 || !f.counted(id, "alice") {
			t.Fatalf("%s before its end: keys %v, counted %v", id, f.keys(id), f.counted(id, "alice"))
		}
		if status, body := f.do(http.MethodDelete, "/admin/v1/sessions/"+id); status != http.StatusNoContent {
			t.Errorf("DELETE %s: %d %s, want 204", id, status, body)
			continue
		}
		if keys := f.keys(id); len(keys) != 0 {
			t.Errorf("%s ended: its keys %v are left", id, keys)
		}
		if f.counted(id, "alice") {
			t.Errorf("%s ended: still counted against its user", id)
		}
		if !f.wasStopped(id) {
			t.Errorf("%s ended: its actor was not told to stop", id)
		}
		if status, body := f.do(http.MethodDelete, "/admin/v1/sessions/"+id); status != http.StatusNotFound {
			t.Errorf("DELETE %s again: %d %s, want 404", id, status, body)
		}
	}
	if len(f.keys("s-fine")) < 2 || !f.counted("s-fine", "alice") {
		t.Error("ending the unreadable sessions ended the readable one too")
	}

	kills := 0
	for _, rec := range auditRecords(t, f.audits) {
		if rec["action"] != "sessions.kill" || rec["outcome"] != "ok" {
			continue
		}
		kills++
		d, _ := rec["details"].(map[string]any)
		if why, _ := d["unreadable"].(string); why == "" || why != got[rec["target"].(string)].Unreadable {
			t.Errorf("the audit record of the kill of %v does not say why its snapshot could not be read: %v", rec["target"], rec)
		}
	}
	if kills != len(ways) {
		t.Errorf("%d audit records of kills done, want %d:\n%s", kills, len(ways), f.audits.String())
	}
	if n := strings.Count(f.logs.String(), `"msg":"admin: session ended"`); n != len(ways) || strings.Count(f.logs.String(), `"unreadable":"`) != len(ways) {
		t.Errorf("%d log lines of sessions ended, want %d saying why each was unreadable:\n%s", n, len(ways), f.logs.String())
	}
}

// A session whose snapshot is sealed under a key no longer in --state-keys
// (or tampered with) is listed as any other (nothing sealed is opened for
// a list), and is ended as any other: before, DELETE answered 500, since
// its lookup opened its cached tokens (the tokens exchanged for it cannot
// be read, so none is revoked).
func TestEndUnsealableSession(t *testing.T) {
	f := newUnreadableFixture(t)
	f.session("s-sealed", "alice")
	ctx := context.Background()
	key := f.prefix + "session:{s-sealed}:snap"
	b, err := f.client.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var snap map[string]any
	json.Unmarshal(b, &snap)
	snap["delegations"] = state.NewProcessSealer().Seal([]byte(`[]`), []byte("pingmcp/s-sealed/delegations")) // another key's
	b, _ = json.Marshal(snap)
	f.client.Set(ctx, key, b, time.Hour)
	if status, body := f.do(http.MethodGet, "/admin/v1/sessions/s-sealed"); status != http.StatusInternalServerError {
		t.Fatalf("GET of a session whose tokens do not open: %d %s", status, body)
	}
	if status, body := f.do(http.MethodDelete, "/admin/v1/sessions/s-sealed"); status != http.StatusNoContent {
		t.Fatalf("DELETE of a session whose tokens do not open: %d %s, want 204", status, body)
	}
	if keys := f.keys("s-sealed"); len(keys) != 0 || f.counted("s-sealed", "alice") || !f.wasStopped("s-sealed") {
		t.Errorf("after its end: keys %v, counted %v, actor stopped %v", keys, f.counted("s-sealed", "alice"), f.wasStopped("s-sealed"))
	}
}

// Revoking a user ends their sessions whose snapshots cannot be read too:
// a listing cannot tell whose they are, but the user's count of sessions
// (kept when sessions are counted) names them. Another user's are left.
// Before, they were skipped, and lived on until their idle timeout.
func TestRevokeEndsUnreadableSessions(t *testing.T) {
	f := newUnreadableFixture(t)
	for _, s := range []struct{ id, subject, how string }{
		{"a-fine", "alice", ""}, {"a-large", "alice", "large"}, {"a-garbage", "alice", "garbage"}, {"b-garbage", "bob", "garbage"},
	} {
		f.session(s.id, s.subject)
		if s.how != "" {
			f.spoil(s.id, s.how)
		}
	}
	status, body := f.do(http.MethodPost, "/admin/v1/users/alice/revoke?for=1m")
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil || status != http.StatusOK || out["sessions_ended"] != 3.0 {
		t.Fatalf("revoke alice: %d %s; want 200 with her 3 sessions ended", status, body)
	}
	for _, id := range []string{"a-fine", "a-large", "a-garbage"} {
		if keys := f.keys(id); len(keys) != 0 || f.counted(id, "alice") {
			t.Errorf("alice revoked: her session %s is left (keys %v, counted %v)", id, keys, f.counted(id, "alice"))
		}
	}
	if len(f.keys("b-garbage")) < 2 || !f.counted("b-garbage", "bob") {
		t.Error("alice revoked: bob's unreadable session was ended too")
	}
	var rec map[string]any
	for _, r := range auditRecords(t, f.audits) {
		if r["action"] == "users.revoke" {
			rec = r
		}
	}
	if d, _ := rec["details"].(map[string]any); d["unreadable_sessions_ended"] != 2.0 {
		t.Errorf("the revocation's audit record does not count the unreadable sessions ended: %v", rec)
	}

	// A count of sessions larger than pingmcp keeps (not pingmcp's) is
	// not read: the revocation goes on without it, and says so in the log.
	ctx := context.Background()
	f.session("c-garbage", "carol")
	f.spoil("c-garbage", "garbage")
	carol := f.prefix + "user:{" + f.d.UserKey(f.issuer, "carol") + "}:sessions"
	for i := range 1001 {
		f.client.ZAdd(ctx, carol, redis.Z{Score: float64(time.Now().UnixMilli()), Member: fmt.Sprint("c", i)})
	}
	status, body = f.do(http.MethodPost, "/admin/v1/users/carol/revoke?for=1m")
	if status != http.StatusOK || !strings.Contains(f.logs.String(), "were not looked for") {
		t.Errorf("revoke carol, whose count is over its bound: %d %s, want 200 and a warning", status, body)
	}
}

// The console lists a session whose snapshot cannot be read, with why and
// an End button, its page says why and offers to end it, and ending it
// there ends it.
func TestConsoleEndsUnreadableSession(t *testing.T) {
	f := newUnreadableFixture(t)
	f.session("s-large", "alice")
	f.spoil("s-large", "large")
	f.session("s-garbage", "alice")
	f.spoil("s-garbage", "garbage")
	c := newConsoleClient(t, f.srv)
	c.login()
	_, list, _ := c.get("/console/")
	for _, want := range []string{`<tr data-session="s-large" class="unreadable">`, `unreadable</span>: too large: 3 MiB, over its bound of 512 KiB`,
		`action="/console/sessions/s-large/end"`, `action="/console/sessions/s-garbage/end"`} {
		if !strings.Contains(list, want) {
			t.Errorf("the list lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, secretContent) {
		t.Error("the list quotes a snapshot's content")
	}
	status, page, _ := c.get("/console/sessions/s-garbage")
	if status != http.StatusInternalServerError || !strings.Contains(page, "cannot be read") || !strings.Contains(page, `action="/console/sessions/s-garbage/end"`) {
		t.Errorf("the page of an unreadable session: %d, want 500 offering to end it:\n%s", status, page)
	}
	csrf := c.csrf()
	for _, id := range []string{"s-large", "s-garbage"} {
		if status, _, h := c.post("/console/sessions/"+id+"/end", url.Values{"csrf": {csrf}}); status != http.StatusSeeOther || h.Get("Location") != consoleRoot {
			t.Errorf("end %s: %d to %q", id, status, h.Get("Location"))
		}
		if keys := f.keys(id); len(keys) != 0 || f.counted(id, "alice") || !f.wasStopped(id) {
			t.Errorf("%s ended in the console: keys %v, counted %v, stopped %v", id, keys, f.counted(id, "alice"), f.wasStopped(id))
		}
	}
}

package devidp

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/logtest"
)

// restarts runs servers one after the other on one address and one state
// file, as a developer's `pingmcp dev` stopped and started again.
type restarts struct {
	t     *testing.T
	path  string // "" for no Store
	addr  string
	clock *clock
	stop  func()
}

func newRestarts(t *testing.T, path string) *restarts {
	return &restarts{t: t, path: path, addr: "127.0.0.1:0", clock: &clock{t: time.Now()}}
}

// start stops the running server, if any, and starts a new one.
func (r *restarts) start(mod func(*Options)) *fixture {
	r.t.Helper()
	if r.stop != nil {
		r.stop()
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	f := &fixture{
		t:      r.t,
		issuer: "http://" + r.addr,
		clock:  r.clock,
		logs:   &logtest.Buffer{},
		http: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	opts := testOptions()
	opts.Issuer = f.issuer
	opts.Now = r.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.GrantManagers = map[string]string{grantsUser: grantsPW}
	opts.SigningKey = nil // the store's, or a new one
	var file *StateFile
	if r.path != "" {
		if file, err = OpenStateFile(r.path); err != nil {
			ln.Close()
			r.t.Fatal(err)
		}
		opts.Store = file
	}
	if mod != nil {
		mod(opts)
	}
	if f.srv, err = New(opts); err != nil {
		ln.Close()
		r.t.Fatal(err)
	}
	ts := &httptest.Server{Listener: ln, Config: &http.Server{Handler: f.srv}}
	ts.Start()
	r.stop = func() {
		ts.Close()
		if file != nil {
			file.Close()
		}
		r.stop = nil
	}
	r.t.Cleanup(func() {
		if r.stop != nil {
			r.stop()
		}
	})
	return f
}

func (f *fixture) refresh(clientID, token string) (*http.Response, map[string]any) {
	f.t.Helper()
	return f.post(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {clientID}}, "", "")
}

func (f *fixture) active(token string) bool {
	f.t.Helper()
	resp, body := f.post(PathIntrospect, url.Values{"token": {token}}, exchanger, exchangerPW)
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("introspect: %d %v", resp.StatusCode, body)
	}
	return body["active"] == true
}

func (f *fixture) keyID() string {
	f.t.Helper()
	_, jwks := f.get(PathJWKS)
	keys, _ := jwks["keys"].([]any)
	if len(keys) != 1 {
		f.t.Fatalf("JWKS %v", jwks)
	}
	return keys[0].(map[string]any)["kid"].(string)
}

// A server restarted on its state file keeps its signing key, its
// registered clients and their grants: a refresh token, an access token and
// the token exchanged from it, all issued before the restart, work after
// it. Without a store (the control), the restarted server knows none of
// them.
func TestStateSurvivesRestart(t *testing.T) {
	for _, withStore := range []bool{true, false} {
		t.Run(map[bool]string{true: "state file", false: "memory only"}[withStore], func(t *testing.T) {
			path := ""
			if withStore {
				path = filepath.Join(t.TempDir(), "devidp", "state.json")
			}
			r := newRestarts(t, path)
			f := r.start(nil)
			clientID := f.registerClient()
			tokens := f.login(clientID, nil)
			access := tokens["access_token"].(string)
			resp, exchanged := f.post(PathToken, exchangeForm(access, todoResource, "todo_api:read"), exchanger, exchangerPW)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("exchange: %d %v", resp.StatusCode, exchanged)
			}
			down := exchanged["access_token"].(string)
			kid := f.keyID()

			f = r.start(nil)
			if got := f.keyID(); (got == kid) != withStore {
				t.Errorf("signing key id after the restart %q, before %q", got, kid)
			}
			if f.active(access) != withStore || f.active(down) != withStore {
				t.Errorf("after the restart: access token active %v, exchanged token active %v; want %v", f.active(access), f.active(down), withStore)
			}
			resp, body := f.refresh(clientID, tokens["refresh_token"].(string))
			if !withStore {
				wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
				return
			}
			if resp.StatusCode != http.StatusOK || body["refresh_token"] == nil {
				t.Fatalf("refresh after the restart: %d %v", resp.StatusCode, body)
			}
			if c := claims(t, body["access_token"].(string)); c["sub"] != "alice" || c["client_id"] != clientID || c["iss"] != f.issuer {
				t.Errorf("refreshed token's claims %v", c)
			}
			// The rotation is on record too: the new token works after
			// another restart, and the spent one stays spent, and known
			// as spent: presented again, it revokes its grant.
			f = r.start(nil)
			resp, again := f.refresh(clientID, body["refresh_token"].(string))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the rotated refresh token after a second restart: %d %v", resp.StatusCode, again)
			}
			r.clock.Advance(refreshReuseGrace)
			resp, spent := f.refresh(clientID, tokens["refresh_token"].(string))
			wantError(t, resp, spent, http.StatusBadRequest, "invalid_grant")
			resp, revoked := f.refresh(clientID, again["refresh_token"].(string))
			wantError(t, resp, revoked, http.StatusBadRequest, "invalid_grant")
			// And the client may log in again without registering.
			f.login(clientID, nil)
		})
	}
}

// A revocation is on record before it is confirmed: a refresh token revoked
// (RFC 7009), and the grants of a user deleted through the grant management
// service, stay revoked after a restart, while another user's grant works.
func TestRevocationsSurviveRestart(t *testing.T) {
	r := newRestarts(t, filepath.Join(t.TempDir(), "state.json"))
	f := r.start(nil)
	clientID := f.registerClient()
	first := f.login(clientID, nil)
	second := f.login(clientID, nil)
	bob, err := f.srv.AccessToken("bob", clientID, mcpResource, "todo_api:read")
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := f.post(PathRevoke, url.Values{"token": {first["refresh_token"].(string)}, "client_id": {clientID}}, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %v", resp.StatusCode, body)
	}

	f = r.start(nil)
	resp, body := f.refresh(clientID, first["refresh_token"].(string))
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if f.active(first["access_token"].(string)) {
		t.Error("the revoked grant's access token is active after the restart")
	}
	if !f.active(second["access_token"].(string)) {
		t.Fatal("another grant's access token is inactive after the restart")
	}

	req, _ := http.NewRequest(http.MethodDelete, f.issuer+"/pf-ws/rest/oauth/users/alice/grants", nil)
	req.SetBasicAuth(grantsUser, grantsPW)
	req.Header.Set("X-XSRF-HEADER", "test")
	if resp, _ := f.do(req); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete alice's grants: %d", resp.StatusCode)
	}
	f = r.start(nil)
	resp, body = f.refresh(clientID, second["refresh_token"].(string))
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if f.active(second["access_token"].(string)) {
		t.Error("an access token of alice's deleted grants is active after the restart")
	}
	if !f.active(bob) {
		t.Error("bob's access token is inactive after the restart")
	}
}

// A redeemed code is on record: presented again after a restart, it still
// revokes the tokens issued from it; the state file holds its hash, never
// the code.
func TestSpentCodeSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	r := newRestarts(t, path)
	f := r.start(nil)
	clientID := f.registerClient()
	resp, verifier := f.authorize(clientID, nil)
	id, _ := f.loginForm(resp)
	code := f.redirected(f.submitLogin(id, "alice", "alice")).Get("code")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "client_id": {clientID}, "code_verifier": {verifier}}
	resp, tokens := f.post(PathToken, form, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("redemption: %d %v", resp.StatusCode, tokens)
	}
	other := f.login(clientID, nil)

	f = r.start(nil)
	if doc, err := os.ReadFile(path); err != nil || bytes.Contains(doc, []byte(code)) || !bytes.Contains(doc, []byte(`"spent_codes"`)) {
		t.Errorf("the state file holds the code, or no spent code (%v)", err)
	}
	if !f.active(tokens["access_token"].(string)) {
		t.Fatal("the code's access token is not active after the restart")
	}
	resp, body := f.post(PathToken, form, "", "")
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if f.active(tokens["access_token"].(string)) {
		t.Error("the access token of a code presented again after a restart is still active")
	}
	resp, body = f.refresh(clientID, tokens["refresh_token"].(string))
	wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if !f.active(other["access_token"].(string)) {
		t.Error("another login's access token was revoked with the reused code's")
	}
}

// The state file is 0600 in a 0700 directory, and holds no token value:
// refresh tokens are kept by their hash, access tokens by their jti.
func TestStateFileHoldsNoTokens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache", "pingmcp")
	path := filepath.Join(dir, "dev-state.json")
	r := newRestarts(t, path)
	f := r.start(nil)
	clientID := f.registerClient()
	tokens := f.login(clientID, nil)
	_, refreshed := f.refresh(clientID, tokens["refresh_token"].(string))
	r.stop()

	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, []byte(`"version": 1`)) || !bytes.Contains(doc, []byte(clientID)) {
		t.Errorf("the state file has no version or not the client: %s", doc)
	}
	for _, body := range []map[string]any{tokens, refreshed} {
		for _, kind := range []string{"access_token", "refresh_token", "id_token"} {
			if v, _ := body[kind].(string); v == "" || bytes.Contains(doc, []byte(v)) {
				t.Errorf("the state file holds the %s (or it was not issued: %q)", kind, v)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("a temporary file was left: %s", e.Name())
		}
	}
}

// A state file that could be anyone's, that is not a state document, or
// that another process uses is refused with an error that says why, and is
// left as it was.
func TestStateFileRefused(t *testing.T) {
	valid := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "state.json")
		r := newRestarts(t, path)
		r.start(nil)
		r.stop()
		return path
	}
	for name, tc := range map[string]struct {
		spoil func(t *testing.T, path string)
		want  string
	}{
		"readable by others": {func(t *testing.T, path string) { os.Chmod(path, 0o644) }, "group or others"},
		"not JSON":           {func(t *testing.T, path string) { os.WriteFile(path, []byte("{not json"), 0o600) }, "not a state document"},
		"truncated":          {func(t *testing.T, path string) { b, _ := os.ReadFile(path); os.WriteFile(path, b[:len(b)/2], 0o600) }, "not a state document"},
		"another version": {func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			os.WriteFile(path, bytes.Replace(b, []byte(`"version": 1`), []byte(`"version": 2`), 1), 0o600)
		}, "version 2"},
		"no key": {func(t *testing.T, path string) {
			os.WriteFile(path, []byte(`{"version": 1, "signing_key": ""}`), 0o600)
		}, "signing_key"},
		"a symbolic link": {func(t *testing.T, path string) {
			os.Rename(path, path+".real")
			os.Symlink(path+".real", path)
		}, "symbolic link"},
	} {
		t.Run(name, func(t *testing.T) {
			path := valid(t)
			tc.spoil(t, path)
			before, _ := os.ReadFile(path)
			file, err := OpenStateFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			opts := testOptions()
			opts.Issuer, opts.Store, opts.Logger = "http://127.0.0.1:9031", file, slog.New(slog.DiscardHandler)
			_, err = New(opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error saying %q", err, tc.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("the refused state file was changed")
			}
		})
	}

	t.Run("in use", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		first, err := OpenStateFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = OpenStateFile(path)
		if !errors.Is(err, ErrStateInUse) || !strings.Contains(err.Error(), path) {
			t.Errorf("second OpenStateFile: %v, want ErrStateInUse naming %s", err, path)
		}
		first.Close()
		again, err := OpenStateFile(path)
		if err != nil {
			t.Fatalf("after the first let go: %v", err)
		}
		again.Close()
	})

	// A lock another user planted as a link to a file of the operator's
	// is refused, and the file is not written through it (the pid).
	// Planting it as another user (nobody) takes root, as CI runs.
	t.Run("a planted lock link", func(t *testing.T) {
		if os.Geteuid() != 0 {
			return
		}
		dir := t.TempDir()
		victim := filepath.Join(dir, "victim.txt")
		os.WriteFile(victim, []byte("important operator data"), 0o600)
		path := filepath.Join(dir, "state.json")
		if err := os.Symlink(victim, path+".lock"); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(path+".lock", 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if f, err := OpenStateFile(path); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenStateFile through a planted lock link: %v", err)
		}
		if b, _ := os.ReadFile(victim); string(b) != "important operator data" {
			t.Errorf("the link's target was written: %q", b)
		}
	})
}

// A store that fails to save is logged, once, and the server goes on from
// memory.
func TestStateSaveFailureLogged(t *testing.T) {
	store := &failingStore{}
	f := newFixture(t, func(o *Options) { o.Store = store })
	store.fail = true
	clientID := f.registerClient()
	tokens := f.login(clientID, nil)
	if resp, body := f.refresh(clientID, tokens["refresh_token"].(string)); resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh while the store fails: %d %v", resp.StatusCode, body)
	}
	if n := strings.Count(f.logs.String(), "could not save"); n != 1 {
		t.Errorf("%d errors logged for the failing store, want 1:\n%s", n, f.logs.String())
	}
}

type failingStore struct{ fail bool }

func (s *failingStore) Load() ([]byte, error) { return nil, nil }
func (s *failingStore) Save([]byte) error {
	if s.fail {
		return errors.New("disk full")
	}
	return nil
}

// Changes made at once are saved together (a group commit): each caller
// returns once a write that holds its change is done, and writes never
// overlap.
func TestSaverGroupsChanges(t *testing.T) {
	store := &countingStore{release: make(chan struct{})}
	var changes atomic.Int64
	s := newSaver(store, func() ([]byte, error) { return []byte(strconv.FormatInt(changes.Load(), 10)), nil }, slog.New(slog.DiscardHandler))
	const n = 50
	var wg sync.WaitGroup
	saved := make([]int64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := changes.Add(1)
			s.save()
			saved[i] = mine
			if last := store.lastSaved(); last < mine {
				t.Errorf("save returned before its change %d was written (last write holds %d)", mine, last)
			}
		}()
	}
	// Once every change waits for its save, let the first write end: the
	// next one holds all the others.
	for waiting := false; !waiting; runtime.Gosched() {
		s.mu.Lock()
		waiting = s.asked == n
		s.mu.Unlock()
	}
	close(store.release)
	wg.Wait()
	if w := store.writes.Load(); w < 1 || w > 2 {
		t.Errorf("%d writes for %d changes made at once: want 1 or 2", w, n)
	}
	if store.overlapped.Load() {
		t.Error("writes overlapped")
	}
}

type countingStore struct {
	release    chan struct{}
	writing    atomic.Bool
	overlapped atomic.Bool
	writes     atomic.Int64
	mu         sync.Mutex
	last       int64
}

func (s *countingStore) Load() ([]byte, error) { return nil, nil }
func (s *countingStore) Save(doc []byte) error {
	if !s.writing.CompareAndSwap(false, true) {
		s.overlapped.Store(true)
	}
	defer s.writing.Store(false)
	<-s.release
	time.Sleep(time.Millisecond)
	v, _ := strconv.ParseInt(string(doc), 10, 64)
	s.mu.Lock()
	s.last = max(s.last, v)
	s.mu.Unlock()
	s.writes.Add(1)
	return nil
}

func (s *countingStore) lastSaved() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

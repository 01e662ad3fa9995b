package todoapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/logtest"
)

const (
	testAudience = "https://todo.example.test/api"
	testActor    = "pingmcp-server"
)

// testIssuer is the shared test issuer (discovery and a JWKS over real
// HTTP), with the claims of the tokens this API expects.
type testIssuer struct {
	*authtest.Issuer
	kid string // of the key it publishes
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	is := &testIssuer{Issuer: authtest.NewIssuer(t)}
	sig, err := jose.ParseSigned(is.token(t, "probe"), auth.Algorithms)
	if err != nil {
		t.Fatal(err)
	}
	is.kid = sig.Signatures[0].Header.KeyID
	return is
}

// verifier is the production verifier pointed at this issuer.
func (is *testIssuer) verifier() auth.Verifier {
	return auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{testAudience}})
}

// claims are those of a delegated token for sub with both scopes; callers
// change or delete what a case needs.
func (is *testIssuer) claims(sub string) map[string]any {
	c := is.Claims(sub, testAudience, ScopeRead+" "+ScopeWrite)
	c["client_id"] = "pingmcp"
	c["act"] = map[string]any{"sub": testActor}
	return c
}

func (is *testIssuer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	return is.Token(t, claims)
}

// token is a valid delegated token for sub.
func (is *testIssuer) token(t *testing.T, sub string) string {
	return is.sign(t, is.claims(sub))
}

// testAPI is the API served over real HTTP, with its store and log at hand.
type testAPI struct {
	URL   string
	store Store
	logs  *logtest.Buffer
}

// newTestAPI serves the API; opts.Verifier, opts.Store and opts.Logger are
// filled in when unset. The clock ticks one second per todo created, so the
// creation order is the order of the calls.
func newTestAPI(t *testing.T, is *testIssuer, opts Options) *testAPI {
	t.Helper()
	if opts.Verifier == nil {
		opts.Verifier = is.verifier()
	}
	if opts.Store == nil {
		opts.Store = NewMemoryStore()
	}
	logs := &logtest.Buffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Now == nil {
		var tick atomic.Int64
		start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		opts.Now = func() time.Time { return start.Add(time.Duration(tick.Add(1)) * time.Second) }
	}
	api, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &testAPI{URL: srv.URL, store: opts.Store, logs: logs}
}

// response is what a call got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) list(t *testing.T) []Todo {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	var l List
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("decode list %s: %v", r.body, err)
	}
	return l.Todos
}

func (r response) errorBody(t *testing.T) ErrorBody {
	t.Helper()
	var e ErrorBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" || e.Description == "" {
		t.Fatalf("error body %q is not {error, error_description}: %v", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	return e
}

// call sends one request. header holds extra headers ("Authorization" among
// them); a JSON body gets Content-Type application/json unless header says.
func call(t *testing.T, method, url string, header map[string]string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// Calls by a user holding token.
func (a *testAPI) list(t *testing.T, token string) response {
	return call(t, http.MethodGet, a.URL+"/api/todos", bearer(token), "")
}

func (a *testAPI) create(t *testing.T, token, text string) response {
	b, _ := json.Marshal(map[string]string{"todoText": text})
	return call(t, http.MethodPost, a.URL+"/api/todos", bearer(token), string(b))
}

func (a *testAPI) setCompleted(t *testing.T, token, id string, completed bool) response {
	b, _ := json.Marshal(map[string]bool{"completed": completed})
	return call(t, http.MethodPatch, a.URL+"/api/todos/"+id, bearer(token), string(b))
}

func (a *testAPI) remove(t *testing.T, token, id string) response {
	return call(t, http.MethodDelete, a.URL+"/api/todos/"+id, bearer(token), "")
}

// mustCreate creates a todo and returns it.
func (a *testAPI) mustCreate(t *testing.T, token, text string) Todo {
	t.Helper()
	for _, todo := range a.create(t, token, text).list(t) {
		if todo.Text == text {
			return todo
		}
	}
	t.Fatalf("created %q but the answer does not list it", text)
	return Todo{}
}

func texts(todos []Todo) []string {
	out := make([]string, len(todos))
	for i, t := range todos {
		out[i] = t.Text
	}
	return out
}

// users counts the users that have a list.
func (s *MemoryStore) users() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lists)
}

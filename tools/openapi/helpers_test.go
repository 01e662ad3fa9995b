package openapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/todoapi"
	"github.com/pingmcp/pingmcp/tools"
)

// issuerCaller is a user of the test issuer: Delegate signs a delegated
// token (act) for the audience asked, with the scopes asked that the user
// holds, as the actor's exchange would, and records what was asked.
type issuerCaller struct {
	t       *testing.T
	is      *authtest.Issuer
	subject string
	scopes  []string

	mu    sync.Mutex
	asked []delegation
}

type delegation struct {
	audience string
	scopes   []string
}

func (c *issuerCaller) Claims(context.Context) map[string]any { return nil }

func (c *issuerCaller) Delegate(_ context.Context, audience string, scopes []string) (*tools.Delegation, error) {
	c.mu.Lock()
	c.asked = append(c.asked, delegation{audience, scopes})
	c.mu.Unlock()
	held := slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return !slices.Contains(c.scopes, s) })
	claims := c.is.Claims(c.subject, audience, strings.Join(held, " "))
	claims["act"] = map[string]any{"sub": "pingmcp"}
	return &tools.Delegation{Token: c.is.Token(c.t, claims), Scopes: held, Expiry: time.Now().Add(time.Minute)}, nil
}

// todoServer runs the Todo API, trusting the issuer, and returns its URL
// (its resource too).
func todoServer(t *testing.T, is *authtest.Issuer) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	apiURL := "http://" + srv.Listener.Addr().String()
	api, err := todoapi.New(todoapi.Options{Verifier: auth.NewJWTVerifier(auth.JWTOptions{Issuer: is.URL, Audiences: []string{apiURL}})})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = api
	srv.Start()
	t.Cleanup(srv.Close)
	return apiURL
}

// recorder is an API that answers every request with answer (200 {} when
// nil) and records them.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func newRecorder(t *testing.T, answer http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req)
		r.mu.Unlock()
		if answer != nil {
			answer(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// writeDoc writes a document to a file of the test's.
func writeDoc(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// connect installs ts for caller on a new server and connects a client.
func connect(t *testing.T, ts tools.Toolset, caller tools.Caller) *mcp.ClientSession {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "test"}, nil)
	ts.Install(s, caller)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := s.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "client"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// callTool calls a tool with arguments given as JSON.
func callTool(t *testing.T, cs *mcp.ClientSession, name, args string) *mcp.CallToolResult {
	t.Helper()
	var a map[string]any
	if err := json.Unmarshal([]byte(args), &a); err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: a})
	if err != nil {
		t.Fatalf("call %s %s: %v", name, args, err)
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

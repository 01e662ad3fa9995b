package actors

import (
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/openapi"
)

// apiDoc is an OpenAPI document with a GET operation per id, at /<id>.
func apiDoc(ids ...string) string {
	doc := "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n"
	for _, id := range ids {
		doc += "  /" + id + ":\n    get:\n      operationId: " + id + "\n      responses: {\"200\": {description: ok}}\n"
	}
	return doc
}

// apisToolset is the --apis toolset of one API, "api", whose document is
// doc, each operation needing scope (the API's).
func apisToolset(t *testing.T, scope, doc string) (*openapi.Toolset, error) {
	t.Helper()
	return openapi.New(t.Context(), []openapi.API{{Name: "api", BaseURL: "https://api.example", Document: writeFile(t, doc), Scopes: []string{scope}}}, openapi.Options{})
}

func mustToolset(t *testing.T, scope, doc string) *openapi.Toolset {
	t.Helper()
	ts, err := apisToolset(t, scope, doc)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// fixedTools is a toolset of --tools' kind: tools by name, no scopes.
type fixedTools []string

func (fixedTools) Name() string                 { return "fixed" }
func (fixedTools) Configure(*mcp.ServerOptions) {}
func (fixedTools) Scopes() map[string][]string  { return nil }
func (f fixedTools) Install(s *mcp.Server, _ tools.Caller) {
	for _, n := range f {
		s.AddTool(&mcp.Tool{Name: n, InputSchema: map[string]any{"type": "object"}}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	}
}

// A replacement of the --apis toolset swaps it whole, with its scopes, and
// says which tools came and went; one that would offer a tool another
// toolset offers is refused, naming both, and changes nothing.
func TestReloadToolsReplace(t *testing.T) {
	v1 := mustToolset(t, "r1", apiDoc("listA", "listB"))
	ts, err := NewTools(t.Context(), fixedTools{"fixed_one"}, v1)
	if err != nil {
		t.Fatal(err)
	}
	if g := ts.Generation(); g != 1 {
		t.Fatalf("generation at start %d, want 1", g)
	}
	v2 := mustToolset(t, "r2", apiDoc("listA", "listC"))
	change, err := ts.Replace(t.Context(), v2)
	if err != nil {
		t.Fatal(err)
	}
	if change.Generation != 2 || !slices.Equal(change.Added, []string{"api_listC"}) || !slices.Equal(change.Removed, []string{"api_listB"}) || change.Tools != 3 {
		t.Errorf("change %+v: want generation 2, api_listC added, api_listB removed, 3 tools", change)
	}
	if sets := ts.Toolsets(); len(sets) != 2 || sets[0].Name() != "fixed" || sets[1] != tools.Toolset(v2) {
		t.Errorf("toolsets after the replacement %v: want fixed, then the new apis one", sets)
	}
	if got := ts.cur.Load().scopes["api_listA"]; !slices.Equal(got, []string{"r2"}) {
		t.Errorf("api_listA needs %v after the replacement, want the new document's [r2]", got)
	}

	// A tool named as the fixed toolset's: refused, nothing changes.
	clash, err := openapi.New(t.Context(), []openapi.API{{Name: "api", BaseURL: "https://api.example", Document: writeFile(t, apiDoc("listA")),
		Scopes: []string{"r3"}, Tools: map[string]openapi.Override{"listA": {Name: "fixed_one"}}}}, openapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Replace(t.Context(), clash); err == nil || !strings.Contains(err.Error(), `"fixed_one"`) || !strings.Contains(err.Error(), "fixed") || !strings.Contains(err.Error(), "apis") {
		t.Errorf("a replacement offering another toolset's tool: %v, want an error naming the tool and both toolsets", err)
	}
	if g, sets := ts.Generation(), ts.Toolsets(); g != 2 || sets[1] != tools.Toolset(v2) {
		t.Errorf("after a refused replacement: generation %d, toolsets %v: want 2 and the same", g, sets)
	}

	// A toolset whose tools the SDK refuses (it panics): an error, not a
	// crash, and nothing changes.
	if _, err := ts.Replace(t.Context(), badTools{}); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("a toolset whose Install panics: %v", err)
	}
	if g := ts.Generation(); g != 2 {
		t.Errorf("generation %d after a refused replacement, want 2", g)
	}

	if _, err := StaticTools(v1).Replace(t.Context(), v2); err == nil {
		t.Error("static toolsets replaced")
	}
}

// badTools has a tool whose input schema is not an object.
type badTools struct{}

func (badTools) Name() string                 { return "bad" }
func (badTools) Configure(*mcp.ServerOptions) {}
func (badTools) Scopes() map[string][]string  { return nil }
func (badTools) Install(s *mcp.Server, _ tools.Caller) {
	s.AddTool(&mcp.Tool{Name: "bad_one", InputSchema: map[string]any{"type": "string"}}, nil)
}

func writeFile(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// stream is a forwarded request whose answer is read part by part.
type stream struct {
	head  chan *envelope.ResponsePart
	parts chan string
}

// streamOn forwards a request of fuzzSession's to pid as the edge does,
// acknowledging each part and handing its body on as it comes.
func streamOn(root *actor.RootContext, pid *actor.PID, method, body string) *stream {
	req := &envelope.Request{
		Id: rand.Text(), Method: method, Path: "/mcp", Body: []byte(body), Window: 16,
		Headers: []*envelope.Header{
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
			{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
		},
	}
	if method == http.MethodPost {
		req.Headers = append(req.Headers, &envelope.Header{Name: "Content-Type", Values: []string{"application/json"}})
	}
	s := &stream{head: make(chan *envelope.ResponsePart, 1), parts: make(chan string, 64)}
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			part := m.GetPart()
			if part.GetSeq() == 0 {
				s.head <- part
			}
			s.parts <- string(part.GetBody())
			if part.GetFinal() {
				close(s.parts)
				ctx.Stop(ctx.Self())
			} else {
				ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: req.Id, Seq: part.GetSeq()}}})
			}
		}
	}))
	return s
}

// A live session's actor, told that the --apis toolset was replaced,
// applies the change to its server on its own goroutine: the client gets
// notifications/tools/list_changed on its GET stream, and tools/list
// names the new operation's tool and no longer the removed one's. The
// session declared tools.listChanged.
func TestReloadLiveSessionTools(t *testing.T) {
	ts, err := NewTools(t.Context(), mustToolset(t, "r", apiDoc("listA", "listB")))
	if err != nil {
		t.Fatal(err)
	}
	local := NewLocal()
	system, props := testSessions(t, Config{Tools: ts, Local: local})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	root := system.Root
	init := postInitialize(t, root, pid, nil, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if !strings.Contains(init, `"tools":{"listChanged":true}`) {
		t.Errorf("initialize result %s: want the tools.listChanged capability", init)
	}
	if status := fuzzForward(t, root, pid, nil, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	list := func(id string) string {
		t.Helper()
		r := forwardOn(root, pid, nil, http.MethodPost, `{"jsonrpc":"2.0","id":"`+id+`","method":"tools/list"}`)
		return await(t, r.body, "tools/list")
	}
	if got := list("l1"); !strings.Contains(got, `"api_listB"`) || strings.Contains(got, `"api_listC"`) {
		t.Fatalf("tools/list before the reload: %s", got)
	}
	get := streamOn(root, pid, http.MethodGet, "")
	if head := await(t, get.head, "the GET stream"); head.GetStatus() != http.StatusOK {
		t.Fatalf("GET stream: %d %s", head.GetStatus(), head.GetBody())
	}

	if _, err := ts.Replace(t.Context(), mustToolset(t, "r", apiDoc("listA", "listC"))); err != nil {
		t.Fatal(err)
	}
	if told := local.ToolsChanged(system); told != 1 {
		t.Errorf("ToolsChanged told %d actors, want the one with a stream open", told)
	}
	deadline := time.After(forwardTimeout)
	for got := ""; !strings.Contains(got, "notifications/tools/list_changed"); {
		select {
		case p, ok := <-get.parts:
			if !ok {
				t.Fatalf("the GET stream ended without notifications/tools/list_changed: %q", got)
			}
			got += p
		case <-deadline:
			t.Fatalf("no notifications/tools/list_changed on the GET stream within %v: %q", forwardTimeout, got)
		}
	}
	if got := list("l2"); !strings.Contains(got, `"api_listC"`) || strings.Contains(got, `"api_listB"`) || !strings.Contains(got, `"api_listA"`) {
		t.Errorf("tools/list after the reload: %s, want api_listA and api_listC, not api_listB", got)
	}
}

// An actor that was not told (its word still on its way) serves its next
// request with the current tools all the same: it compares generations
// before each.
func TestReloadAtTheNextRequest(t *testing.T) {
	ts, err := NewTools(t.Context(), mustToolset(t, "r", apiDoc("listA")))
	if err != nil {
		t.Fatal(err)
	}
	system, props := testSessions(t, Config{Tools: ts})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	root := system.Root
	postInitialize(t, root, pid, nil, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	fuzzForward(t, root, pid, nil, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if _, err := ts.Replace(t.Context(), mustToolset(t, "r", apiDoc("listA", "listD"))); err != nil {
		t.Fatal(err)
	}
	r := forwardOn(root, pid, nil, http.MethodPost, `{"jsonrpc":"2.0","id":"l","method":"tools/list"}`)
	if got := await(t, r.body, "tools/list"); !strings.Contains(got, `"api_listD"`) {
		t.Errorf("tools/list after a replacement nobody announced: %s, want api_listD", got)
	}
}

// A session opened after a reload gets the new tools, though the server
// of a session opened before it has room and is not brought up to date
// yet (that session's actor has not served since): it takes a server of
// the current tools.
func TestReloadNewSessionTakesTheNewTools(t *testing.T) {
	ts, err := NewTools(t.Context(), mustToolset(t, "r", apiDoc("listA")))
	if err != nil {
		t.Fatal(err)
	}
	system, props := testSessions(t, Config{Tools: ts})
	root := system.Root
	open := func(id string) *actor.PID {
		pid := root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(id, "session")))
		postInitialize(t, root, pid, nil, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
		return pid
	}
	before := rand.Text()
	open(before)
	if _, err := ts.Replace(t.Context(), mustToolset(t, "r", apiDoc("listA", "listD"))); err != nil {
		t.Fatal(err)
	}
	after := rand.Text()
	pid := open(after)
	if got := inSession(t, root, pid, after, nil, `{"jsonrpc":"2.0","id":"l","method":"tools/list"}`); !strings.Contains(got, `"api_listD"`) {
		t.Errorf("tools/list of a session opened after the reload: %s, want api_listD", got)
	}
}

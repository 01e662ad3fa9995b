package e2e

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
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// reloadDoc is an OpenAPI document with a GET operation per id, at /<id>,
// each needing todo_api:read (the scope the test's users hold); extra is
// YAML appended to the last operation.
func reloadDoc(extra string, ids ...string) string {
	doc := "openapi: 3.0.3\ninfo: {title: reload, version: \"1\"}\npaths:\n"
	for _, id := range ids {
		doc += "  /" + id + ":\n    get:\n      operationId: " + id + "\n      responses: {\"200\": {description: ok}}\n"
	}
	return doc + extra
}

// servedDoc is an OpenAPI document the test serves over HTTP and changes.
type servedDoc struct {
	mu  sync.Mutex
	doc string
}

func (s *servedDoc) set(doc string) {
	s.mu.Lock()
	s.doc = doc
	s.mu.Unlock()
}

func (s *servedDoc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/yaml")
	w.Write([]byte(s.doc))
}

// toolNamesOf lists cs's tools by name.
func toolNamesOf(t *testing.T, ctx context.Context, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// reloadAnswer is POST /admin/v1/apis/reload's answer.
type reloadAnswer struct {
	Reloaded bool `json:"reloaded"`
	Nodes    []struct {
		Address    string   `json:"address"`
		Reloaded   bool     `json:"reloaded"`
		Error      string   `json:"error"`
		Generation uint64   `json:"generation"`
		Added      []string `json:"added"`
		Removed    []string `json:"removed"`
	} `json:"nodes"`
}

// TestReloadAPIsAcrossNodes: on a two-process cluster with --apis naming a
// document the test serves over HTTP, the document gains an operation and
// an operator reloads through one node's admin API: every node answers
// that it reloaded, a live session is told its tool list changed and lists
// the new tool, and so does a stateless (2026-07-28) client at its next
// request. A document
// that cannot become tools is refused on every node, 422 naming the API,
// the operation and why, and the tools stay. SIGHUP to each node reloads
// as well, and so does pingmcp apis reload. The reloads are counted in
// pingmcp_apis_reloads_total.
func TestReloadAPIsAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	doc := &servedDoc{doc: reloadDoc("", "listA")}
	api := httptest.NewServer(doc)
	defer api.Close()
	file := filepath.Join(t.TempDir(), "apis.yaml")
	if err := os.WriteFile(file, []byte("apis:\n  - name: api\n    base_url: "+api.URL+"\n    document: "+api.URL+"/openapi.yaml\n    scopes: [todo_api:read]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startAuthCluster(t, ctx, 2, "--apis", file)

	token := login(t, ctx, c.Issuer, c.Resource, "alice", allScopes)
	changed := make(chan struct{}, 8)
	client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: c.Nodes[1].URL(), HTTPClient: &http.Client{Transport: bearerTransport{token}}, MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	if init := session.InitializeResult(); init.Capabilities.Tools == nil || !init.Capabilities.Tools.ListChanged {
		t.Errorf("capabilities %+v: want tools.listChanged", init.Capabilities)
	}
	if names := toolNamesOf(t, ctx, session); !slices.Contains(names, "api_listA") || slices.Contains(names, "api_listC") {
		t.Fatalf("tools at start: %v", names)
	}
	// A stateless client of the same user: its principal actor lives on
	// from before the reload.
	stateless := connectVersion(t, ctx, c.Nodes[0].URL(), token, "2026-07-28")
	if names := toolNamesOf(t, ctx, stateless); !slices.Contains(names, "api_listA") || slices.Contains(names, "api_listC") {
		t.Fatalf("a stateless client's tools at start: %v", names)
	}
	awaitStandaloneStream(t, ctx, session.ID(), c.Nodes...)
	awaitChange := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("%s: no notifications/tools/list_changed", what)
		}
	}
	reload := func() (int, reloadAnswer) {
		t.Helper()
		status, body, _ := adminCall(t, ctx, http.MethodPost, c.Admin[0]+"/apis/reload", c.Token)
		var a reloadAnswer
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("reload answer %d %q: %v", status, body, err)
		}
		if len(a.Nodes) != len(c.Nodes) {
			t.Fatalf("reload answered for %d nodes, want %d: %s", len(a.Nodes), len(c.Nodes), body)
		}
		return status, a
	}

	// The document gains an operation; an operator reloads.
	doc.set(reloadDoc("", "listA", "listC"))
	status, a := reload()
	if status != http.StatusOK || !a.Reloaded {
		t.Fatalf("reload: %d %+v", status, a)
	}
	for _, n := range a.Nodes {
		if !n.Reloaded || n.Generation != 2 || !slices.Equal(n.Added, []string{"api_listC"}) {
			t.Errorf("node %s: %+v, want reloaded, generation 2, api_listC added", n.Address, n)
		}
	}
	awaitChange("the admin reload")
	if names := toolNamesOf(t, ctx, session); !slices.Contains(names, "api_listC") {
		t.Errorf("the live session's tools after the reload: %v, want api_listC", names)
	}
	if names := toolNamesOf(t, ctx, stateless); !slices.Contains(names, "api_listC") {
		t.Errorf("a stateless client's tools after the reload: %v, want api_listC", names)
	}

	// A document one of whose operations cannot be a tool: refused
	// everywhere, the tools stay.
	doc.set(reloadDoc("      parameters: [{name: session, in: cookie, required: true, schema: {type: string}}]\n", "listA", "listC", "needsCookie"))
	status, a = reload()
	if status != http.StatusUnprocessableEntity || a.Reloaded {
		t.Errorf("reload of a broken document: %d %+v, want 422", status, a)
	}
	for _, n := range a.Nodes {
		if n.Reloaded || n.Generation != 2 || !containsAll(n.Error, `api "api"`, "operation needsCookie", `cookie parameter "session"`) {
			t.Errorf("node %s: %+v, want refused at generation 2, naming the API, the operation and why", n.Address, n)
		}
	}
	if names := toolNamesOf(t, ctx, session); !slices.Contains(names, "api_listC") || slices.Contains(names, "api_needsCookie") {
		t.Errorf("tools after a refused reload: %v, want them unchanged", names)
	}
	for _, nd := range c.Nodes {
		if !nd.logged(`--apis reload refused`, "needsCookie") {
			t.Errorf("%s did not log the refusal", nd.name)
		}
	}

	// SIGHUP: each node reloads by itself.
	doc.set(reloadDoc("", "listA", "listD"))
	for _, nd := range c.Nodes {
		if err := nd.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range c.Nodes {
		// Its second: the admin API's, then SIGHUP's.
		if n := nd.awaitCount(ctx, `"msg":"--apis reloaded"`, 2); n != 2 || !nd.logged(`"msg":"--apis reloaded"`, `"asked_by":"SIGHUP"`) {
			t.Fatalf("%s logged %d reloads, want 2, the last SIGHUP's", nd.name, n)
		}
	}
	awaitChange("SIGHUP")
	if names := toolNamesOf(t, ctx, session); !slices.Contains(names, "api_listD") || slices.Contains(names, "api_listC") {
		t.Errorf("the live session's tools after SIGHUP: %v, want api_listD and no api_listC", names)
	}

	// pingmcp apis reload, through the other node's admin API.
	out, errOut, code := runCLI(t, []string{"PINGMCP_ADMIN_URL=http://" + c.Nodes[1].Admin, "PINGMCP_ADMIN_TOKEN=" + c.Token}, "apis", "reload")
	if code != 0 || strings.Count(out, "reloaded") != len(c.Nodes) {
		t.Errorf("pingmcp apis reload: exit %d, %q %q: want every node reloaded", code, out, errOut)
	}

	_, metrics, _ := adminCall(t, ctx, http.MethodGet, "http://"+c.Nodes[0].Admin+"/metrics", c.Token)
	for _, want := range []string{`pingmcp_apis_reloads_total{result="reloaded"} 3`, `pingmcp_apis_reloads_total{result="refused"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

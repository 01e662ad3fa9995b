package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/config"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/metrics"
)

// docServer serves an OpenAPI document at /openapi.yaml that a test
// changes (status other than 200: answered instead).
type docServer struct {
	*httptest.Server
	mu     sync.Mutex
	doc    string
	status int
}

func newDocServer(t *testing.T, doc string) *docServer {
	d := &docServer{doc: doc, status: http.StatusOK}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if r.URL.Path != "/openapi.yaml" {
			http.NotFound(w, r)
			return
		}
		if d.status != http.StatusOK {
			http.Error(w, "no", d.status)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.Write([]byte(d.doc))
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *docServer) set(doc string, status int) {
	d.mu.Lock()
	d.doc, d.status = doc, status
	d.mu.Unlock()
}

// getDoc is an OpenAPI document with a GET operation per id, at /<id>;
// extra is YAML appended to the last operation.
func getDoc(extra string, ids ...string) string {
	doc := "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n"
	for _, id := range ids {
		doc += "  /" + id + ":\n    get:\n      operationId: " + id + "\n      responses: {\"200\": {description: ok}}\n"
	}
	return doc + extra
}

func countOf(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A reload reads the --apis file and fetches its documents again: a new
// operation becomes a tool, and the change is counted; a document that
// cannot become tools (naming the API, the operation and why), one that
// cannot be fetched, a tool name another toolset has, a file that no
// longer parses: each is refused, logged and counted, and the tools stay
// those of the last reload that succeeded.
func TestReloadAPIs(t *testing.T) {
	docs := newDocServer(t, getDoc("", "listA"))
	dir := t.TempDir()
	file := filepath.Join(dir, "apis.yaml")
	writeAPIs := func(extra string) {
		t.Helper()
		y := "apis:\n  - name: api\n    base_url: " + docs.URL + "\n    document: " + docs.URL + "/openapi.yaml\n    scopes: [r]\n" + extra
		if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeAPIs("")
	cfg, err := config.Parse("dev", []string{"--apis", file}, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	tools, err := toolsets(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	r := &apisReloader{cfg: cfg, tools: tools, local: actors.NewLocal(), logger: slog.New(slog.NewJSONHandler(logs, nil))}
	reloaded, refused := metrics.APIsReloads.WithLabelValues("reloaded"), metrics.APIsReloads.WithLabelValues("refused")
	okBefore, refusedBefore := countOf(t, reloaded), countOf(t, refused)

	docs.set(getDoc("", "listA", "listC"), http.StatusOK)
	res := r.reload(t.Context(), "a test")
	if !res.Reloaded || res.Error != "" || res.Generation != 2 || !slices.Equal(res.Added, []string{"api_listC"}) || len(res.Removed) != 0 {
		t.Fatalf("reload with a new operation: %+v", res)
	}
	if got := countOf(t, reloaded) - okBefore; got != 1 {
		t.Errorf("pingmcp_apis_reloads_total{result=reloaded} grew by %v, want 1", got)
	}
	kept := tools.Toolsets()

	refusals := []struct {
		name  string
		setup func()
		want  []string
	}{
		{"an operation that cannot be a tool", func() {
			docs.set(getDoc("      parameters: [{name: session, in: cookie, required: true, schema: {type: string}}]\n", "listA", "needsCookie"), http.StatusOK)
		}, []string{`api "api"`, "operation needsCookie", `cookie parameter "session"`}},
		{"a document that is not there", func() { docs.set("", http.StatusNotFound) }, []string{`api "api"`, "404"}},
		{"a tool name of the todo toolset's", func() {
			docs.set(getDoc("", "listA"), http.StatusOK)
			writeAPIs("    tools: {listA: {name: get_my_todo_list}}\n")
		}, []string{`"get_my_todo_list"`, "todo", "apis"}},
		{"a file that no longer parses", func() { os.WriteFile(file, []byte("apis: [\n"), 0o600) }, []string{"--apis", file}},
	}
	for i, c := range refusals {
		c.setup()
		res := r.reload(t.Context(), "a test")
		if res.Reloaded || res.Generation != 2 {
			t.Errorf("%s: %+v, want refused at generation 2", c.name, res)
		}
		for _, w := range c.want {
			if !strings.Contains(res.Error, w) {
				t.Errorf("%s: error %q, want it to name %q", c.name, res.Error, w)
			}
		}
		if got := tools.Toolsets(); !slices.Equal(got, kept) || tools.Generation() != 2 {
			t.Errorf("%s changed the toolsets", c.name)
		}
		if got := countOf(t, refused) - refusedBefore; got != float64(i+1) {
			t.Errorf("%s: pingmcp_apis_reloads_total{result=refused} grew by %v, want %d", c.name, got, i+1)
		}
	}
	if n := strings.Count(logs.String(), "--apis reload refused"); n != len(refusals) {
		t.Errorf("%d refusals logged, want %d: %s", n, len(refusals), logs.String())
	}

	// The next good document is taken again.
	writeAPIs("")
	docs.set(getDoc("", "listA"), http.StatusOK)
	if res := r.reload(t.Context(), "a test"); !res.Reloaded || res.Generation != 3 || !slices.Equal(res.Removed, []string{"api_listC"}) {
		t.Errorf("reload after the refusals: %+v", res)
	}
}

// Reloads asked at once (SIGHUP and operators) take turns: each builds on
// the last, and every one gets a generation of its own.
func TestReloadsTakeTurns(t *testing.T) {
	docs := newDocServer(t, getDoc("", "listA"))
	file := filepath.Join(t.TempDir(), "apis.yaml")
	if err := os.WriteFile(file, []byte("apis:\n  - name: api\n    base_url: "+docs.URL+"\n    document: "+docs.URL+"/openapi.yaml\n    scopes: [r]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("dev", []string{"--apis", file}, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	tools, err := toolsets(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &apisReloader{cfg: cfg, tools: tools, local: actors.NewLocal(), logger: slog.New(slog.DiscardHandler)}
	const n = 4
	gens := make(chan uint64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			res := r.reload(t.Context(), "a test")
			if !res.Reloaded {
				t.Errorf("a concurrent reload: %+v", res)
			}
			gens <- res.Generation
		})
	}
	wg.Wait()
	close(gens)
	var got []uint64
	for g := range gens {
		got = append(got, g)
	}
	slices.Sort(got)
	if want := []uint64{2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("generations of %d concurrent reloads %v, want %v", n, got, want)
	}
}

// The error a reload answers with is bounded; the log has all of it.
func TestReloadErrorBounded(t *testing.T) {
	if got := bounded("short"); got != "short" {
		t.Errorf("bounded(short) = %q", got)
	}
	long := strings.Repeat("é", maxReloadError) // 2 bytes each
	got := bounded(long)
	if len(got) > maxReloadError+64 || !strings.HasSuffix(got, "more bytes: see the node's log)") || !utf8.ValidString(got) {
		t.Errorf("bounded(%d bytes) = %d bytes ending %q", len(long), len(got), got[len(got)-40:])
	}
}

// A node started without --apis has nothing to reload, and says so.
func TestReloadWithoutAPIs(t *testing.T) {
	cfg, err := config.Parse("dev", nil, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	tools, err := toolsets(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &apisReloader{cfg: cfg, tools: tools, local: actors.NewLocal(), logger: slog.New(slog.DiscardHandler)}
	if res := r.reload(t.Context(), "a test"); res.Reloaded || !strings.Contains(res.Error, "without --apis") || res.Generation != 1 {
		t.Errorf("reload without --apis: %+v", res)
	}
}

package openapi

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	metaschema "github.com/santhosh-tekuri/jsonschema/v6"
)

// githubDocument is GitHub's REST description as the npm package
// @octokit/openapi ships it: 13 MB of OpenAPI 3.0, thousands of operations
// and schemas, none of them written with pingmcp in mind.
const (
	githubPackage  = "@octokit/openapi@23.0.2"
	githubDocument = "package/generated/api.github.com.json"
)

// githubDoc returns the path of GitHub's document: PINGMCP_GITHUB_OPENAPI,
// else the copy in pingmcp's cache (${PINGMCP_CACHE:-~/.cache/pingmcp}),
// fetched there with npm the first time (scripts/test.sh installs npm;
// without it the test fails). With -short, the test is skipped.
func githubDoc(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PINGMCP_GITHUB_OPENAPI"); p != "" {
		return p
	}
	if testing.Short() {
		t.Skip("-short: GitHub's OpenAPI document is 28 MB to fetch and seconds to load")
	}
	cache := os.Getenv("PINGMCP_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("no cache directory for GitHub's OpenAPI document (set PINGMCP_CACHE): %v", err)
		}
		cache = filepath.Join(home, ".cache", "pingmcp")
	}
	dir := filepath.Join(cache, "octokit-openapi-23.0.2")
	doc := filepath.Join(dir, filepath.FromSlash(githubDocument))
	if _, err := os.Stat(doc); err == nil {
		return doc
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is not installed: cannot fetch " + githubPackage + "; install it (Debian: apt-get install -y npm; scripts/test.sh does)")
	}
	tmp := t.TempDir()
	cmd := exec.CommandContext(t.Context(), npm, "pack", githubPackage, "--pack-destination", tmp)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm pack %s: %v\n%s", githubPackage, err, out)
	}
	extract(t, filepath.Join(tmp, "octokit-openapi-23.0.2.tgz"), githubDocument, doc)
	return doc
}

// extract writes one file of a .tgz to dst (through a temporary file, so
// that a cut run leaves nothing half written).
func extract(t testing.TB, tgz, name, dst string) {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s in %s: %v", name, tgz, err)
		}
		if h.Name != name {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		tmp := dst + ".part"
		out, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, io.LimitReader(tr, 64<<20)); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			t.Fatal(err)
		}
		return
	}
}

// GitHub's REST description becomes tools, every one of its 1000-odd
// operations: every input schema is valid JSON Schema 2020-12 (checked
// against its meta-schema by another implementation than the one that
// checks arguments); and with include filters as an operator would write
// them, tools/list is well-formed, names valid and unique, and bounded.
func TestGitHubDocument(t *testing.T) {
	path := githubDoc(t)
	start := time.Now()
	ts, err := New(t.Context(), []API{{
		Name: "github", BaseURL: "https://api.github.com", Document: path,
		// The document declares no security: the scopes of GitHub's
		// OAuth apps stand in.
		Scopes:  []string{"repo"},
		Include: Selector{Tags: []string{"repos", "issues", "pulls"}, Methods: []string{"GET", "POST", "PATCH", "PUT", "DELETE"}},
		// Its servers are uploads.github.com's (TestOperationServers).
		Exclude: Selector{Operations: []string{"repos/upload-release-asset"}},
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tools in %v", len(ts.Tools()), time.Since(start))
	if len(ts.Tools()) < 250 {
		t.Fatalf("%d tools: want the hundreds of operations of three tags", len(ts.Tools()))
	}
	// Every operation of the document can be a tool too, but the one
	// whose server is another host than base_url's: refused, naming it,
	// unless excluded (its call went to api.github.com).
	everything := API{Name: "github", BaseURL: "https://api.github.com", Document: path, Scopes: []string{"repo"},
		Include: Selector{Methods: []string{"GET", "POST", "PATCH", "PUT", "DELETE"}}}
	if _, err := New(t.Context(), []API{everything}, Options{}); err == nil || !strings.Contains(err.Error(), "repos/upload-release-asset") || !strings.Contains(err.Error(), "https://uploads.github.com is on another origin") {
		t.Errorf("the operation on uploads.github.com: %v", err)
	}
	everything.Exclude.Operations = []string{"repos/upload-release-asset"}
	all, err := New(t.Context(), []API{everything}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Tools()) < 1000 {
		t.Fatalf("%d tools of the whole document", len(all.Tools()))
	}

	compiler := metaschema.NewCompiler()
	compiler.DefaultDraft(metaschema.Draft2020)
	var largest int
	for _, ot := range all.tools {
		tool := ot.def
		raw := schemaBytes(t, tool)
		// What tools/list shows is the conversion's JSON, value for value.
		converted, err := ot.schemaJSON()
		if err != nil {
			t.Fatal(err)
		}
		var got, want any
		json.Unmarshal(raw, &got)
		json.Unmarshal(converted, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: input schema\n%s\nwant\n%s", tool.Name, raw, converted)
		}
		largest = max(largest, len(raw))
		doc, err := metaschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", tool.Name, err)
		}
		url := "urn:pingmcp:" + tool.Name
		if err := compiler.AddResource(url, doc); err != nil {
			t.Errorf("%s: %v", tool.Name, err)
			continue
		}
		if _, err := compiler.Compile(url); err != nil {
			t.Errorf("%s: input schema is not valid JSON Schema 2020-12: %v", tool.Name, err)
		}
	}
	t.Logf("largest input schema: %d bytes", largest)

	cs := connect(t, ts, &countingCaller{})
	seen := map[string]bool{}
	var listed int
	params := &mcp.ListToolsParams{}
	for {
		res, err := cs.ListTools(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res)
		listed += len(b)
		for _, tool := range res.Tools {
			if !validToolName(tool.Name) || seen[tool.Name] || len(tool.Description) > maxDescription+len("…") {
				t.Errorf("tool %q: invalid or repeated name, or too long a description", tool.Name)
			}
			seen[tool.Name] = true
			if !strings.HasPrefix(tool.Name, "github_") {
				t.Errorf("tool %q: not named for its API", tool.Name)
			}
		}
		if res.NextCursor == "" {
			break
		}
		params.Cursor = res.NextCursor
	}
	if len(seen) != len(ts.Tools()) {
		t.Errorf("tools/list listed %d tools of %d", len(seen), len(ts.Tools()))
	}
	t.Logf("tools/list: %d bytes", listed)
	if listed > 16<<20 {
		t.Errorf("tools/list is %d bytes", listed)
	}
}

// BenchmarkInstallGitHub is Install of every operation of GitHub's
// document (1000-odd tools), what each session actor's activation pays.
func BenchmarkInstallGitHub(b *testing.B) {
	ts, err := New(b.Context(), []API{{Name: "github", BaseURL: "https://api.github.com", Document: githubDoc(b), Scopes: []string{"repo"},
		Include: Selector{Methods: []string{"GET", "POST", "PATCH", "PUT", "DELETE"}},
		Exclude: Selector{Operations: []string{"repos/upload-release-asset"}}}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ts.Install(mcp.NewServer(&mcp.Implementation{Name: "bench"}, nil), nil)
	}
}

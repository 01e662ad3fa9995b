package openapi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
)

// docWith is a document of the given paths (YAML, indented under
// paths:) and components.
func docWith(version, paths, components string) string {
	return "openapi: " + version + "\ninfo: {title: t, version: \"1\"}\npaths:\n" + paths + "\ncomponents:\n" + components + `
  securitySchemes:
    oauth:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: /token, scopes: {a: a, b: b, c: c}}}
    key: {type: apiKey, in: header, name: X-Key}
`
}

func newAPI(t *testing.T, api API, doc string) (*Toolset, error) {
	t.Helper()
	if api.Name == "" {
		api.Name = "t"
	}
	if api.BaseURL == "" {
		api.BaseURL = "https://api.example.com"
	}
	api.Document = writeDoc(t, doc)
	return New(t.Context(), []API{api}, Options{})
}

// Each tool needs its operation's scopes: the operation's security, else
// the document's, else the API's from the file; alternatives without
// scopes (an API key) are passed over; alternatives with different scopes
// are refused, as is an operation with no scopes at all.
func TestScopesFromSecurity(t *testing.T) {
	doc := "openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\nsecurity: [{oauth: [a]}]\npaths:\n" + `
  /one:
    get: {operationId: inherits, responses: {"200": {description: ok}}}
  /two:
    get: {operationId: own, security: [{oauth: [b, c]}], responses: {"200": {description: ok}}}
  /three:
    get: {operationId: orKey, security: [{key: []}, {oauth: [c]}], responses: {"200": {description: ok}}}
  /four:
    get: {operationId: public, security: [], responses: {"200": {description: ok}}}
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: /token, scopes: {a: a, b: b, c: c}}}
    key: {type: apiKey, in: header, name: X-Key}
`
	ts, err := newAPI(t, API{Scopes: []string{"fallback"}}, doc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"t_inherits": {"a"}, "t_own": {"b", "c"}, "t_orKey": {"c"}, "t_public": {"fallback"}}
	if got := ts.Scopes(); !equalScopes(got, want) {
		t.Errorf("Scopes() = %v, want %v", got, want)
	}

	_, err = newAPI(t, API{}, doc)
	if err == nil || !strings.Contains(err.Error(), "operation public") || !strings.Contains(err.Error(), "no OAuth scopes") {
		t.Errorf("an operation without scopes and an API without any: %v", err)
	}
	alternatives := strings.Replace(doc, "[{key: []}, {oauth: [c]}]", "[{oauth: [a]}, {oauth: [c]}]", 1)
	_, err = newAPI(t, API{Scopes: []string{"fallback"}}, alternatives)
	if err == nil || !strings.Contains(err.Error(), "operation orKey") || !strings.Contains(err.Error(), "alternatives") || !strings.Contains(err.Error(), "tools: {orKey: {scopes:") {
		t.Errorf("alternatives with different scopes: %v", err)
	}
	// The APIs file chooses one of the alternatives (Google's APIs: drive,
	// or drive.readonly), exactly one of them.
	ts, err = newAPI(t, API{Scopes: []string{"fallback"}, Tools: map[string]Override{"orKey": {Scopes: []string{"c"}}}}, alternatives)
	if err != nil {
		t.Fatalf("alternatives, one chosen: %v", err)
	}
	if got := ts.Scopes()["t_orKey"]; !slices.Equal(got, []string{"c"}) {
		t.Errorf("alternatives, c chosen: the tool needs %v", got)
	}
	_, err = newAPI(t, API{Scopes: []string{"fallback"}, Tools: map[string]Override{"orKey": {Scopes: []string{"a", "c"}}}}, alternatives)
	if err == nil || !strings.Contains(err.Error(), "none of its security requirements' alternatives") {
		t.Errorf("alternatives, a choice that is none of them: %v", err)
	}
	// An operation with scopes of its own, or none, takes what is chosen
	// as the only alternative there is, or as its scopes.
	ts, err = newAPI(t, API{Tools: map[string]Override{"public": {Scopes: []string{"p"}}, "own": {Scopes: []string{"c", "b"}}}, Scopes: []string{"fallback"}}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := ts.Scopes(); !slices.Equal(got["t_public"], []string{"p"}) || !slices.Equal(got["t_own"], []string{"b", "c"}) {
		t.Errorf("chosen scopes of an operation without alternatives: %v", got)
	}
}

// Names are api_operationId with what MCP forbids made '_', or
// api_method_path without an operationId; at most 128 characters, unique
// (a long one ends with a hash); a name given twice is refused, naming
// both operations.
func TestToolNames(t *testing.T) {
	long := strings.Repeat("x", 200)
	doc := docWith("3.0.3", `
  /users/{id}/keys:
    get: {parameters: [{name: id, in: path, required: true, schema: {type: string}}], responses: {"200": {description: ok}}}
  /a:
    get: {operationId: "list users (v2)", responses: {"200": {description: ok}}}
  /b:
    get: {operationId: `+long+`a, responses: {"200": {description: ok}}}
  /c:
    get: {operationId: `+long+`b, responses: {"200": {description: ok}}}
`, "  schemas: {}")
	ts, err := newAPI(t, API{Name: "api-1", Scopes: []string{"a"}}, doc)
	if err != nil {
		t.Fatal(err)
	}
	names := toolNames(ts)
	if !slices.Contains(names, "api-1_list_users_v2") || !slices.Contains(names, "api-1_get_users_id_keys") {
		t.Errorf("names %v", names)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !validToolName(n) || seen[n] {
			t.Errorf("name %q invalid or given twice", n)
		}
		seen[n] = true
	}

	_, err = newAPI(t, API{Scopes: []string{"a"}, Tools: map[string]Override{"list users (v2)": {Name: "t_get_users_id_keys"}}}, doc)
	if err == nil || !strings.Contains(err.Error(), "is also") {
		t.Errorf("a name given twice: %v", err)
	}
	_, err = newAPI(t, API{Scopes: []string{"a"}, Tools: map[string]Override{"missing": {Name: "x"}}}, doc)
	if err == nil || !strings.Contains(err.Error(), `no operation "missing"`) {
		t.Errorf("an override of an operation the document lacks: %v", err)
	}
}

// A schema that refers to itself is expanded a bounded number of times:
// the input schema is finite, still checks the levels it describes, and
// accepts anything below.
func TestCyclicRefBounded(t *testing.T) {
	doc := docWith("3.0.3", `
  /nodes:
    post:
      operationId: putNode
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/Node"}}}
      responses: {"200": {description: ok}}
`, `  schemas:
    Node:
      type: object
      additionalProperties: false
      properties:
        name: {type: string}
        children: {type: array, items: {$ref: "#/components/schemas/Node"}}
        partner: {$ref: "#/components/schemas/Other"}
    Other:
      type: object
      properties:
        back: {$ref: "#/components/schemas/Node"}`)
	ts, err := newAPI(t, API{Scopes: []string{"a"}, Include: Selector{Methods: []string{"POST"}}}, doc)
	if err != nil {
		t.Fatal(err)
	}
	raw := schemaBytes(t, ts.Tools()[0])
	if len(raw) > 4096 || !strings.Contains(string(raw), recursive) {
		t.Fatalf("input schema of %d bytes: %s", len(raw), raw)
	}
	var s jsonschema.Schema
	json.Unmarshal(raw, &s)
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	var ok, bad any
	json.Unmarshal([]byte(`{"body":{"name":"a","children":[{"name":"b","children":[{"anything":1}]}]}}`), &ok)
	json.Unmarshal([]byte(`{"body":{"name":"a","children":[{"name":5}]}}`), &bad)
	if err := rs.Validate(ok); err != nil {
		t.Errorf("a nested value refused: %v", err)
	}
	if rs.Validate(bad) == nil {
		t.Error("a wrong type one level down accepted")
	}
}

// Read-only by default; include widens by method, tag or name; exclude
// wins; a name in include or exclude the document lacks is refused.
func TestSelection(t *testing.T) {
	doc := docWith("3.1.0", `
  /a:
    get: {operationId: getA, tags: [x], responses: {"200": {description: ok}}}
    post: {operationId: postA, tags: [x], responses: {"200": {description: ok}}}
    delete: {operationId: deleteA, tags: [y], responses: {"200": {description: ok}}}
  /b:
    head: {operationId: headB, tags: [y], responses: {"200": {description: ok}}}
`, "  schemas: {}")
	for _, c := range []struct {
		include, exclude Selector
		want             []string
	}{
		{want: []string{"t_getA", "t_headB"}},
		{include: Selector{Tags: []string{"x"}}, want: []string{"t_getA"}},
		{include: Selector{Methods: []string{"get", "post"}, Tags: []string{"x"}}, want: []string{"t_getA", "t_postA"}},
		{include: Selector{Operations: []string{"deleteA"}}, want: []string{"t_deleteA", "t_getA", "t_headB"}},
		{include: Selector{Operations: []string{"deleteA"}}, exclude: Selector{Tags: []string{"y"}}, want: []string{"t_getA"}},
		{exclude: Selector{Methods: []string{"HEAD"}, Operations: []string{"postA"}}, want: []string{"t_getA"}},
	} {
		ts, err := newAPI(t, API{Scopes: []string{"a"}, Include: c.include, Exclude: c.exclude}, doc)
		if err != nil {
			t.Fatal(err)
		}
		got := toolNames(ts)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("include %+v exclude %+v: %v, want %v", c.include, c.exclude, got, c.want)
		}
	}
	if _, err := newAPI(t, API{Scopes: []string{"a"}, Include: Selector{Operations: []string{"getC"}}}, doc); err == nil || !strings.Contains(err.Error(), "getC") {
		t.Errorf("include of a missing operation: %v", err)
	}
}

// A selected operation that cannot be called safely is refused at start,
// naming it and why; a document that is not valid OpenAPI too.
func TestRefusedAtStart(t *testing.T) {
	for _, c := range []struct{ paths, want string }{
		{`
  /a:
    get:
      operationId: needsCookie
      parameters: [{name: session, in: cookie, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}`, "operation needsCookie (GET /a): cookie parameter \"session\""},
		{`
  /a:
    get:
      operationId: setsHost
      parameters: [{name: Host, in: header, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}`, "pingmcp's to set"},
		{`
  /a/{p}:
    get:
      operationId: matrix
      parameters: [{name: p, in: path, required: true, style: matrix, schema: {type: string}}]
      responses: {"200": {description: ok}}`, "style matrix"},
		{`
  /a:
    post:
      operationId: upload
      requestBody: {required: true, content: {multipart/form-data: {schema: {type: object}}}}
      responses: {"200": {description: ok}}`, "only JSON bodies"},
	} {
		_, err := newAPI(t, API{Scopes: []string{"a"}, Include: Selector{Methods: []string{"GET", "POST"}}}, docWith("3.0.3", c.paths, "  schemas: {}"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.paths, err, c.want)
		}
	}
	// An optional cookie is simply not offered.
	ts, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", `
  /a:
    get:
      operationId: optionalCookie
      parameters: [{name: session, in: cookie, schema: {type: string}}]
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err != nil || strings.Contains(string(schemaBytes(t, ts.Tools()[0])), "session") {
		t.Errorf("optional cookie: %v", err)
	}
	// Nor a header that would change the method a read-only tool asks for,
	// the path it calls (a route override: IIS's URL Rewrite, older
	// Symfony and Zend read it), or the client, host, scheme or prefix a
	// proxy in front of the API vouches for (every X-Forwarded-*); nor the
	// encodings, which would turn off the transport's decompression (an
	// answer echoing the token, compressed, is not blanked).
	for _, h := range []string{"Accept-Encoding", "content-encoding", "X-HTTP-Method-Override", "x-http-method", "X-Method-Override", "X-Forwarded-For", "Forwarded", "X-Real-IP",
		"X-Forwarded-Prefix", "x-forwarded-uri", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Original-URL", "X-Rewrite-URL",
		"True-Client-IP", "X-Client-IP", "X-Cluster-Client-IP", "CF-Connecting-IP"} {
		ts, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", `
  /a:
    get:
      operationId: overrides
      parameters: [{name: `+h+`, in: header, schema: {type: string}}]
      responses: {"200": {description: ok}}`, "  schemas: {}"))
		if err != nil || strings.Contains(strings.ToLower(string(schemaBytes(t, ts.Tools()[0]))), strings.ToLower(h)) {
			t.Errorf("optional header %s: offered (%v)", h, err)
		}
	}
	if _, err := newAPI(t, API{Scopes: []string{"a"}}, "openapi: 3.0.3\ninfo: {title: t}\npaths: {/a: {get: {}}}\n"); err == nil || !strings.Contains(err.Error(), "not valid OpenAPI") {
		t.Errorf("an invalid document: %v", err)
	}
}

// OpenAPI 3.0's nullable and boolean exclusive bounds become JSON Schema's
// forms, so that the arguments are checked as the document means.
func TestOpenAPI30Dialect(t *testing.T) {
	ts, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", `
  /a:
    get:
      operationId: q
      parameters:
        - {name: n, in: query, schema: {type: integer, minimum: 0, exclusiveMinimum: true}}
        - {name: s, in: query, schema: {type: string, nullable: true}}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	rs := ts.tools[0].schema
	for args, ok := range map[string]bool{`{"n":1}`: true, `{"n":0}`: false, `{"s":null}`: true, `{"s":"x"}`: true, `{"s":1}`: false} {
		var v any
		json.Unmarshal([]byte(args), &v)
		if err := rs.Validate(v); (err == nil) != ok {
			t.Errorf("%s: %v", args, err)
		}
	}
}

// The APIs file: strict YAML, names and URLs checked, documents relative
// to the file.
func TestReadFile(t *testing.T) {
	write := func(s string) string { return writeDoc(t, s) }
	apis, err := ReadFile(write(`
apis:
  - name: todo
    base_url: http://127.0.0.1:8081
    document: todo.yaml
    include: {methods: [GET, POST]}
    tools: {listTodos: {name: my_todos}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(apis) != 1 || !strings.HasSuffix(apis[0].Document, "/todo.yaml") || apis[0].resource() != "http://127.0.0.1:8081" || apis[0].Tools["listTodos"].Name != "my_todos" {
		t.Errorf("read %+v", apis)
	}
	for doc, want := range map[string]string{
		"apis:\n  - {name: a, base_url: 'http://x', document: d, extra: 1}\n":                                         "unknown field",
		"apis:\n  - {name: 'a b', base_url: 'http://x', document: d}\n":                                               "name",
		"apis:\n  - {name: a, base_url: 'http://u:p@x', document: d}\n":                                               "credentials",
		"apis:\n  - {name: a, base_url: 'ftp://x', document: d}\n":                                                    "base_url",
		"apis:\n  - {name: a, base_url: 'http://x'}\n":                                                                "document",
		"apis:\n  - {name: a, base_url: 'http://x', document: d, include: {methods: [FETCH]}}\n":                      "FETCH",
		"apis:\n  - {name: a, base_url: 'http://x', document: d}\n  - {name: a, base_url: 'http://y', document: d}\n": "twice",
		"apis: []\n": "no apis",
	} {
		if _, err := ReadFile(write(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
}

// Two paths that differ only in their parameters' names are both tools
// (each is called as written); the later one, which kin-openapi's
// validation passes over, is still checked.
func TestConflictingPaths(t *testing.T) {
	paths := `
  /a/{x}:
    get: {operationId: byX, parameters: [{name: x, in: path, required: true, schema: {type: string}}], responses: {"200": {description: ok}}}
  /a/{y}:
    get: {operationId: byY, parameters: [{name: y, in: path, required: true, schema: {type: string}}], responses: {"200": {description: ok}}}`
	ts, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", paths, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(ts); !slices.Equal(got, []string{"t_byX", "t_byY"}) {
		t.Errorf("tools %v", got)
	}
	broken := paths[:strings.LastIndex(paths, "responses:")] + "responses: {}}" // no response: invalid
	if _, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", broken, "  schemas: {}")); err == nil || !strings.Contains(err.Error(), "/a/{y}") {
		t.Errorf("an invalid operation under the later path: %v", err)
	}
}

// A tool's title, the operation's summary, is bounded as its description
// is: a document with a summary of 100 KB (its vendor's to write) does
// not make every session's tools/list carry it.
func TestToolTitleBounded(t *testing.T) {
	long := strings.Repeat("word ", 20<<10)
	ts, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", `
  /a:
    get: {operationId: a, summary: "`+long+`", responses: {"200": {description: ok}}}
  /b:
    get: {operationId: b, summary: "List the items", responses: {"200": {description: ok}}}
`, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range ts.Tools() {
		if len(tool.Title) > maxTitle+len("…") || len(tool.Description) > maxDescription+len("…") {
			t.Errorf("%s: title of %d bytes, description of %d", tool.Name, len(tool.Title), len(tool.Description))
		}
	}
	if got := ts.Tools()[1].Title; got != "List the items" {
		t.Errorf("a short summary's title is %q", got)
	}
}

// A document that takes longer to load than the time given (a long chain
// of $refs: kin-openapi's resolving is quadratic in it, and stops for no
// context) is refused when that time ends, not waited for; until its
// loading, which runs on, ends, no other document is loaded (reloads of it
// would pile such loads up); then they are again.
func TestCostlyDocumentRefusedInTime(t *testing.T) {
	var schemas strings.Builder
	schemas.WriteString("  schemas:\n")
	const chain = 1500
	for i := range chain {
		fmt.Fprintf(&schemas, "    S%d: {$ref: '#/components/schemas/S%d'}\n", i, i+1)
	}
	fmt.Fprintf(&schemas, "    S%d: {type: string}\n", chain)
	costly := writeDoc(t, docWith("3.0.3", `
  /a:
    get: {operationId: getA, responses: {"200": {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/S0'}}}}}}`, schemas.String()))
	small := writeDoc(t, docWith("3.0.3", `
  /a:
    get: {operationId: getA, responses: {"200": {description: ok}}}`, "  schemas: {}"))
	api := func(doc string) []API {
		return []API{{Name: "t", BaseURL: "https://api.example.com", Scopes: []string{"a"}, Document: doc}}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := New(ctx, api(costly), Options{})
	if err == nil || !strings.Contains(err.Error(), "not loaded and checked within the time given") {
		t.Fatalf("a document costlier than its time: %v", err)
	}
	t.Logf("refused after %v", time.Since(start))
	if abandonedLoads.Load() == 0 {
		t.Fatal("no given-up loading counted")
	}
	if _, err := New(t.Context(), api(small), Options{}); err == nil || !strings.Contains(err.Error(), "still runs") {
		t.Errorf("a document loaded while a given-up loading runs: %v, want it refused", err)
	}
	for deadline := time.Now().Add(time.Minute); abandonedLoads.Load() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the given-up loading never ended")
		}
	}
	if _, err := New(t.Context(), api(small), Options{}); err != nil {
		t.Errorf("a document loaded once the given-up loading ended: %v", err)
	}
}

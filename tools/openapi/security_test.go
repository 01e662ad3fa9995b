package openapi

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// queryDoc has object query parameters: filter (form, exploded, its
// properties only), free (form, exploded, additionalProperties), sort
// (deepObject, additionalProperties), beside limit (at most 10).
const queryDoc = `
  /q:
    get:
      operationId: q
      parameters:
        - {name: limit, in: query, schema: {type: integer, maximum: 10}}
        - {name: filter, in: query, style: form, explode: true, schema: {type: object, properties: {state: {type: string, enum: [open, closed]}}}}
        - {name: free, in: query, style: form, explode: true, schema: {type: object, additionalProperties: {type: string}}}
        - {name: sort, in: query, style: deepObject, explode: true, schema: {type: object, additionalProperties: true}}
        - {name: internal, in: query, content: {application/json: {schema: {type: object}}}}
      responses: {"200": {description: ok}}`

// An object query parameter sends only the members its schema declares:
// an undeclared member is no new query parameter, and no member repeats a
// declared one past its schema, in any case, nor one the tool does not
// offer (internal, described by content).
func TestObjectQueryMembers(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}}, docWith("3.0.3", queryDoc, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, &countingCaller{})
	for _, args := range []string{
		`{"filter":{"state":"open","admin":"1"}}`,
		`{"filter":{"limit":"1000"}}`,
		`{"free":{"limit":"1000"}}`,
		`{"free":{"filter":"x"}}`,
		`{"free":{"Limit":"1000"}}`,
		`{"free":{"LIMIT":"1000"}}`,
		`{"free":{"internal":"{}"}}`,
		`{"free":{"Internal":"{}"}}`,
		`{"sort":{"x":"1"},"free":{"SORT[x]":"2"}}`,
		`{"free":{"":"x"}}`,
		`{"sort":{"a][x":"1"}}`,
		`{"sort":{"a[b]":"1"}}`,
	} {
		if res := callTool(t, cs, "t_q", args); !res.IsError || !strings.Contains(text(res), "invalid arguments") {
			t.Errorf("%s: %s, want refused", args, text(res))
		}
	}
	if reqs := api.requests(); len(reqs) != 0 {
		t.Fatalf("reached the API: %s", reqs[0].URL)
	}
	if res := callTool(t, cs, "t_q", `{"limit":5,"filter":{"state":"open"},"free":{"color":"red"},"sort":{"name":"asc"}}`); res.IsError {
		t.Fatal(text(res))
	}
	if got, want := api.requests()[0].URL.Query().Encode(), "color=red&limit=5&sort%5Bname%5D=asc&state=open"; got != want {
		t.Errorf("query %s, want %s", got, want)
	}
}

// A number goes to the API as written, so it must be exactly the number
// the schema checked: 1e2, 100.0, 100.0000000000000000001 or 2^53+1 would
// pass limit's bounds as another number than the API is sent.
func TestNumbersAsChecked(t *testing.T) {
	api := newRecorder(t, nil)
	cs := connect(t, itemsTools(t, api.URL, Options{}), &countingCaller{})
	for _, n := range []string{"1e1", "10.0", "100.0000000000000000001", "1.00000000000000000001", "9007199254740993", "-0.0"} {
		if res := callRaw(t, cs, "items_searchItems", `{"limit":`+n+`}`); !res.IsError || !strings.Contains(text(res), "invalid arguments") {
			t.Errorf("limit %s: %s, want refused", n, text(res))
		}
	}
	if reqs := api.requests(); len(reqs) != 0 {
		t.Fatalf("reached the API: %s", reqs[0].URL)
	}
	for _, n := range []string{"1", "100"} {
		if res := callRaw(t, cs, "items_searchItems", `{"limit":`+n+`}`); res.IsError {
			t.Errorf("limit %s: %s", n, text(res))
		}
	}
}

// Array elements joined by a separator may not hold it: the API would
// read more (or other) elements than the schema checked.
func TestArraySeparators(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}}, docWith("3.0.3", `
  /s:
    get:
      operationId: s
      parameters:
        - {name: c, in: query, explode: false, schema: {type: array, maxItems: 2, items: {type: string}}}
        - {name: sp, in: query, style: spaceDelimited, explode: false, schema: {type: array, maxItems: 2, items: {type: string}}}
        - {name: p, in: query, style: pipeDelimited, explode: false, schema: {type: array, maxItems: 2, items: {type: string}}}
        - {name: X-H, in: header, schema: {type: array, maxItems: 2, items: {type: string}}}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, &countingCaller{})
	for _, args := range []string{`{"c":["a","b,c,d"]}`, `{"sp":["a b"]}`, `{"p":["a|b|c"]}`, `{"X-H":["a,b","c"]}`} {
		if res := callTool(t, cs, "t_s", args); !res.IsError || !strings.Contains(text(res), "invalid arguments") {
			t.Errorf("%s: %s, want refused", args, text(res))
		}
	}
	if reqs := api.requests(); len(reqs) != 0 {
		t.Fatalf("reached the API: %s", reqs[0].URL)
	}
	if res := callTool(t, cs, "t_s", `{"c":["a b","c|d"],"sp":["a,b","c"],"p":["a b"],"X-H":["a b","c"]}`); res.IsError {
		t.Fatal(text(res))
	}
	r := api.requests()[0]
	if q := r.URL.Query(); q.Get("c") != "a b,c|d" || q.Get("sp") != "a,b c" || q.Get("p") != "a b" || r.Header.Get("X-H") != "a b,c" {
		t.Errorf("sent %s with X-H %q", r.URL, r.Header.Get("X-H"))
	}
}

// A path argument is refused when, decoded, it is not UTF-8 (an overlong
// '.' or '/'), holds a character a lax decoder could make '.' or '/', or
// is a dot segment or holds a slash once NFKC-normalized (U+2025 is "..",
// U+2100 "a/c"), also after decoding; other characters normalization
// changes are sent as they are.
func TestPathLookAlikes(t *testing.T) {
	api := newRecorder(t, nil)
	cs := connect(t, itemsTools(t, api.URL, Options{}), &countingCaller{})
	for _, id := range []string{"\uFF0E\uFF0E", "a\u2215b", "a\u2044b", "a\uFF0Fb", "%EF%BC%8E%EF%BC%8E", "%c0%ae%c0%ae", "%c0%af", "%e0%80%ae", "%ff",
		"\u2025", "\uFE30", "a\u2100", "\u2101", "%E2%80%A5", "\uFF05\uFF12\uFF45\uFF05\uFF12\uFF45", ".\u2024"} {
		if res := callTool(t, cs, "items_getItem", `{"id":`+quote(id)+`}`); !res.IsError || !strings.Contains(text(res), "invalid arguments") {
			t.Errorf("%q: %s, want refused", id, text(res))
		}
	}
	if reqs := api.requests(); len(reqs) != 0 {
		t.Fatalf("reached the API: %s", reqs[0].URL)
	}
	for _, id := range []string{"\uFF46\uFF4F\uFF4F", "x\u2025", "\u2026", "\u00BD", "1\u00BC"} {
		if res := callTool(t, cs, "items_getItem", `{"id":`+quote(id)+`}`); res.IsError {
			t.Errorf("%q refused: %s", id, text(res))
		}
	}
}

// A path argument whose '%' starts no escape is checked as a lenient
// decoder reads it (the escapes around it decoded), and a segment that
// two arguments make together is checked whole: "%2" and "e%2e" are each
// harmless, but sent side by side they are "%2e%2e".
func TestPathEscapesLenientAndComposed(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL + "/v1", Scopes: []string{"a"}}, docWith("3.0.3", `
  /items/{id}:
    get:
      operationId: item
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /files/{a}{b}:
    get:
      operationId: file
      parameters:
        - {name: a, in: path, required: true, schema: {type: string}}
        - {name: b, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, &countingCaller{})
	for _, args := range []struct{ tool, args string }{
		{"t_item", `{"id":"x%2f..%2f..%2fetc%2fpasswd%zz"}`},
		{"t_item", `{"id":"%2e%2e%2f%2e%2e%2fadmin%"}`},
		{"t_item", `{"id":"%2e%2e%2F%"}`},
		{"t_item", `{"id":"%252e%252e%2f%"}`},
		{"t_file", `{"a":"%2","b":"e%2e"}`},
		{"t_file", `{"a":".","b":"."}`},
		{"t_file", `{"a":"%2e","b":"x"}`},
		{"t_file", `{"a":"%","b":"2F"}`},
	} {
		if res := callTool(t, cs, args.tool, args.args); !res.IsError || !strings.Contains(text(res), "invalid arguments") {
			t.Errorf("%s %s: %s, want refused", args.tool, args.args, text(res))
		}
	}
	if reqs := api.requests(); len(reqs) != 0 {
		t.Fatalf("reached the API: %s", reqs[0].URL)
	}
	for _, c := range []struct{ tool, args, path string }{
		{"t_item", `{"id":"50%"}`, "/v1/items/50%25"},
		{"t_item", `{"id":"%zz%2e%2e"}`, "/v1/items/%25zz%252e%252e"},
		{"t_item", `{"id":"%2e%2e%"}`, "/v1/items/%252e%252e%25"},
		{"t_file", `{"a":"x","b":"y"}`, "/v1/files/xy"},
		{"t_file", `{"a":"x.","b":".y"}`, "/v1/files/x..y"},
	} {
		if res := callTool(t, cs, c.tool, c.args); res.IsError {
			t.Errorf("%s %s refused: %s", c.tool, c.args, text(res))
			continue
		}
		reqs := api.requests()
		if got := reqs[len(reqs)-1].URL.EscapedPath(); got != c.path {
			t.Errorf("%s %s reached %s, want %s", c.tool, c.args, got, c.path)
		}
	}
}

// Scopes come from oauth2 schemes only: an openIdConnect requirement's
// (openid, profile) are sign-in scopes, never a tool's.
func TestScopesFromOAuth2Only(t *testing.T) {
	doc := "openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\npaths:\n" + `
  /one:
    get: {operationId: both, security: [{oauth: [a], oidc: [openid, profile]}], responses: {"200": {description: ok}}}
  /two:
    get: {operationId: orOIDC, security: [{oidc: [openid]}, {oauth: [b]}], responses: {"200": {description: ok}}}
  /three:
    get: {operationId: oidcOnly, security: [{oidc: [openid, profile]}], responses: {"200": {description: ok}}}
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: /token, scopes: {a: a, b: b}}}
    oidc: {type: openIdConnect, openIdConnectUrl: https://idp.example.com/.well-known/openid-configuration}
`
	ts, err := newAPI(t, API{Scopes: []string{"fallback"}}, doc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"t_both": {"a"}, "t_orOIDC": {"b"}, "t_oidcOnly": {"fallback"}}
	if got := ts.Scopes(); !equalScopes(got, want) {
		t.Errorf("Scopes() = %v, want %v", got, want)
	}
}

// A schema whose $refs inline into millions of nodes is refused while it
// is converted, at the input schema's bound, not after it was built.
func TestSchemaExpansionBounded(t *testing.T) {
	var comps strings.Builder
	comps.WriteString("  schemas:\n")
	const levels, fanout = 8, 6 // 6^8: 1.7 million schemas inlined
	for l := range levels {
		fmt.Fprintf(&comps, "    S%d:\n      type: object\n      properties:\n", l)
		for f := range fanout {
			if l == levels-1 {
				fmt.Fprintf(&comps, "        p%d: {type: string}\n", f)
			} else {
				fmt.Fprintf(&comps, "        p%d: {$ref: \"#/components/schemas/S%d\"}\n", f, l+1)
			}
		}
	}
	start := time.Now()
	_, err := newAPI(t, API{Scopes: []string{"a"}, Include: Selector{Methods: []string{"POST"}}}, docWith("3.0.3", `
  /big:
    post:
      operationId: big
      requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/S0"}}}}
      responses: {"200": {description: ok}}`, comps.String()))
	if err == nil || !strings.Contains(err.Error(), "operation big") || !strings.Contains(err.Error(), "grows past") {
		t.Errorf("an exploding schema: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("refused after %v", took)
	}
}

// A document file's $refs read files under its folder (or the APIs
// file's) only: no URL is fetched, no file elsewhere is read, not through
// a symbolic link either.
func TestExternalRefsConfined(t *testing.T) {
	remote := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("type: object\n"))
	})
	root, outside := t.TempDir(), t.TempDir()
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "common.yaml"), "type: object\nproperties: {name: {type: string}}\n")
	write(filepath.Join(outside, "secret.yaml"), "type: object\n")
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(root, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	for ref, ok := range map[string]bool{
		"common.yaml":               true,
		remote.URL + "/schema.yaml": false,
		"../" + filepath.Base(outside) + "/secret.yaml": false,
		filepath.Join(outside, "secret.yaml"):           false,
		"link.yaml":                                     false,
	} {
		doc := filepath.Join(root, "openapi.yaml")
		write(doc, docWith("3.0.3", `
  /a:
    post:
      operationId: a
      requestBody: {content: {application/json: {schema: {$ref: "`+ref+`"}}}}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
		for _, checker := range []func(context.Context) *exec.Cmd{nil, testChecker} {
			_, err := New(t.Context(), []API{{Name: "t", BaseURL: "https://api.example.com", Document: doc, Scopes: []string{"a"},
				Include: Selector{Methods: []string{"POST"}}}}, Options{Checker: checker})
			if ok != (err == nil) {
				t.Errorf("$ref %s (checked by a process of its own: %v): %v", ref, checker != nil, err)
			}
		}
	}
	if n := len(remote.requests()); n != 0 {
		t.Errorf("a $ref was fetched %d times", n)
	}
}

// A document's URL may carry a credential (a signed URL's signature, an
// API key, a password): an error naming the document names it without.
func TestDocumentURLCredentialsNotShown(t *testing.T) {
	var answer atomic.Int64
	remote := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if code := int(answer.Load()); code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
		w.Write([]byte("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {/a: {get: {responses: {}}}}\n"))
	})
	u := strings.Replace(remote.URL, "://", "://user:pa55word@", 1) + "/openapi.yaml?sig=s3cr3t-signature&key=k3y"
	for _, code := range []int{http.StatusNotFound, http.StatusOK, -http.StatusOK} {
		answer.Store(int64(max(code, -code)))
		opts := Options{}
		if code < 0 { // checked by a process of its own
			opts.Checker = testChecker
		}
		_, err := New(t.Context(), []API{{Name: "t", BaseURL: "https://api.example.com", Document: u, Scopes: []string{"a"}}}, opts)
		if err == nil {
			t.Fatalf("answer %d: a document that cannot become tools was accepted", code)
		}
		msg := err.Error()
		for _, secret := range []string{"pa55word", "user", "s3cr3t-signature", "k3y"} {
			if strings.Contains(msg, secret) {
				t.Errorf("answer %d: the error shows %q of the document's URL: %s", code, secret, msg)
			}
		}
		if !strings.Contains(msg, "/openapi.yaml?…") {
			t.Errorf("answer %d: the error does not name the document: %s", code, msg)
		}
	}
}

// A document's path may not leave the base URL's path in escaped form
// either: a segment of its own text is checked as a path argument is, once
// decoded (a dot segment, a slash or backslash, also decoded again; '?' or
// '#' once decoded again), and refused at start, as "/../x" is. A gateway
// that decodes before it routes (nginx does) would take
// /v1/%2e%2e/other/secret to /other/secret with the token of this API.
func TestDocumentPathEscapesRefused(t *testing.T) {
	for _, p := range []string{"/%2e%2e/other/secret", "/items/%2E%2E", "/.%2e/x", "/a%2Fb", "/a%5cb", "/%252e%252e/x", "/a%253Fb", "/a%2523b", "/items/%2e%2e/{id}", "/a%zz"} {
		params := "[]"
		if strings.Contains(p, "{id}") {
			params = "[{name: id, in: path, required: true, schema: {type: string}}]"
		}
		_, err := newAPI(t, API{BaseURL: "https://gw.example.com/v1", Scopes: []string{"a"}}, docWith("3.0.3", `
  `+p+`:
    get:
      operationId: leave
      parameters: `+params+`
      responses: {"200": {description: ok}}`, "  schemas: {}"))
		if err == nil || !strings.Contains(err.Error(), "operation leave") {
			t.Errorf("path %s: %v, want refused", p, err)
		}
	}
	// Other escapes, and empty segments, are the API's own.
	for _, p := range []string{"/files/a%20b/{id}", "/q%3F/{id}", "/items/{id}/", "/v%31/{id}.json", "/a..b/.well-known/{id}"} {
		if _, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", `
  `+p+`:
    get:
      operationId: stay
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}`, "  schemas: {}")); err != nil {
			t.Errorf("path %s refused: %v", p, err)
		}
	}
}

// A path argument is also checked as a decoder of %uXXXX escapes (IIS,
// older Jetty) reads it once it decoded what it is sent: "%u002e%u002e"
// is sent as %25u002e%25u002e, which such an API, decoding again, reads
// as "..".
func TestPathPercentUEscapes(t *testing.T) {
	api := newRecorder(t, nil)
	cs := connect(t, itemsTools(t, api.URL+"/v1", Options{}), &countingCaller{})
	for _, id := range []string{"%u002e%u002e", "%U002E%U002E", "a%u002fb", "a%u005cb", "%u002e.", "%u2025", "%uff0e%uff0e", "%25u002e%25u002e"} {
		if res := callTool(t, cs, "items_getItem", `{"id":`+quote(id)+`}`); !res.IsError || !strings.Contains(text(res), "invalid arguments") {
			t.Errorf("%q: %s, want refused", id, text(res))
		}
	}
	if reqs := api.requests(); len(reqs) != 0 {
		t.Fatalf("reached the API: %s", reqs[0].URL)
	}
	for _, id := range []string{"%u0041", "%uzzzz", "%u00", "100%used"} {
		if res := callTool(t, cs, "items_getItem", `{"id":`+quote(id)+`}`); res.IsError {
			t.Errorf("%q refused: %s", id, text(res))
		}
	}
}

// The input schemas of one API's tools are bounded together, not only
// each: a document of a few hundred KB whose operations all refer to one
// large schema (each input schema under its own bound) would otherwise
// inline it into every tool, hundreds of MB held by the node (and sent in
// every tools/list); it is refused, naming the bound, once past it.
func TestInputSchemasBoundedTogether(t *testing.T) {
	var paths, comps strings.Builder
	const ops = 100
	for i := range ops {
		fmt.Fprintf(&paths, "  /p%d:\n    post: {operationId: op%d, requestBody: {required: true, content: {application/json: {schema: {$ref: '#/components/schemas/H'}}}}, responses: {\"200\": {description: ok}}}\n", i, i)
	}
	comps.WriteString("  schemas:\n    H:\n      type: object\n      properties:\n")
	for i := range 1200 {
		fmt.Fprintf(&comps, "        property_number_%d: {type: string, description: a property described at some length}\n", i)
	}
	doc := docWith("3.0.3", paths.String(), comps.String())
	ts, err := newAPI(t, API{Scopes: []string{"a"}, Include: Selector{Methods: []string{"POST"}}}, doc)
	if err == nil || !strings.Contains(err.Error(), "together") {
		n, total := 0, 0
		if ts != nil {
			for _, tool := range ts.Tools() {
				n, total = n+1, total+len(schemaBytes(t, tool))
			}
		}
		t.Errorf("a %d KB document made %d tools with %d KB of input schemas: %v", len(doc)>>10, n, total>>10, err)
	}
}

// A refused argument is quoted in its error by at most a few hundred
// bytes, whatever its size: the checker quoted it whole, and for each
// branch of a oneOf it failed (a sort of a vast object's members, and a
// string as large, each time: seconds of CPU a call against a 10-way oneOf
// for a user with a script (BenchmarkRefusedArgument), and an error of
// megabytes). Small values are quoted as before.
func TestRefusedArgumentQuotedBounded(t *testing.T) {
	cs := connect(t, refusingTools(t), &countingCaller{})
	for name, c := range map[string]struct{ args, shows string }{
		"a vast object": {vastBody(200_000), "200000 members"},
		"a long string": {`{"body":"` + strings.Repeat("x", 2<<20) + `"}`, `"xxxx`},
		"a small value": {`{"body":{"b":true,"a":[1,"two"]}}`, `{"a":[1,"two"],"b":true}`},
	} {
		res := callTool(t, cs, "t_putArray", c.args)
		msg := text(res)
		if !res.IsError || !strings.Contains(msg, "invalid arguments") || !strings.Contains(msg, c.shows) {
			t.Errorf("%s: %.300s, want refused, showing %s", name, msg, c.shows)
		}
		if len(msg) > 16<<10 {
			t.Errorf("%s: refused with an error of %d bytes", name, len(msg))
		}
	}
}

// refusingTools are two tools whose argument body is an array: putArray's
// schema says so, putOneOf's in each of a oneOf's ten branches.
func refusingTools(tb testing.TB) *Toolset {
	var branches []string
	for i := range 10 {
		branches = append(branches, fmt.Sprintf("{type: array, items: {type: string, description: b%d}}", i))
	}
	doc := docWith("3.0.3", `
  /array:
    post:
      operationId: putArray
      requestBody: {required: true, content: {application/json: {schema: {type: array, items: {type: string}}}}}
      responses: {"200": {description: ok}}
  /oneof:
    post:
      operationId: putOneOf
      requestBody: {required: true, content: {application/json: {schema: {oneOf: [`+strings.Join(branches, ", ")+`]}}}}
      responses: {"200": {description: ok}}`, "  schemas: {}")
	ts, err := New(tb.Context(), []API{{Name: "t", BaseURL: "https://api.example.com", Document: writeDocB(tb, doc), Scopes: []string{"a"},
		Include: Selector{Methods: []string{"POST"}}}}, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}

// vastBody is the arguments of a tool of refusingTools whose body is an
// object of n members (about 11.5 bytes each) where an array is wanted.
func vastBody(n int) string {
	var b strings.Builder
	b.WriteString(`{"body":{`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"member%d":1`, i)
	}
	b.WriteString(`}}`)
	return b.String()
}

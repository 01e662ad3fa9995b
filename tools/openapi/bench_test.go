package openapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// syntheticDoc is a document of n paths, each with a GET of query
// parameters and a POST of a body, whose schemas refer to shared
// components: 2n tools of input schemas of a few KB, as GitHub's are.
func syntheticDoc(n int) string {
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: synthetic, version: \"1\"}\nsecurity: [{oauth: [a]}]\npaths:\n")
	for i := range n {
		fmt.Fprintf(&b, `  /r%d/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get:
      operationId: get%d
      summary: Get resource %d
      parameters:
        - {name: per_page, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: state, in: query, schema: {type: string, enum: [open, closed, all]}}
        - {name: labels, in: query, explode: false, schema: {type: array, items: {type: string}}}
      responses: {"200": {description: ok}}
    post:
      operationId: post%d
      requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/Item"}}}}
      responses: {"200": {description: ok}}
`, i, i, i, i)
	}
	b.WriteString(`components:
  securitySchemes:
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: /token, scopes: {a: a}}}}
  schemas:
    User:
      type: object
      properties:
        login: {type: string, description: The user's login.}
        id: {type: integer, format: int64}
        url: {type: string, format: uri}
        site_admin: {type: boolean}
    Item:
      type: object
      required: [title]
      properties:
`)
	for j := range 20 {
		fmt.Fprintf(&b, "        f%d: {type: string, maxLength: 256, description: \"Field %d of the item, as the API describes it.\"}\n", j, j)
	}
	b.WriteString(`        owner: {$ref: "#/components/schemas/User"}
        assignees: {type: array, items: {$ref: "#/components/schemas/User"}}
        milestone: {type: object, nullable: true, properties: {number: {type: integer}, creator: {$ref: "#/components/schemas/User"}}}
`)
	return b.String()
}

// BenchmarkInstall is what every session actor's activation pays for the
// toolset: Install of 1200 tools on a new server.
func BenchmarkInstall(b *testing.B) {
	ts, err := New(b.Context(), []API{{Name: "s", BaseURL: "https://api.example.com", Document: writeDocB(b, syntheticDoc(600)),
		Include: Selector{Methods: []string{"GET", "POST"}}}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if len(ts.tools) != 1200 {
		b.Fatalf("%d tools", len(ts.tools))
	}
	b.ReportAllocs()
	for b.Loop() {
		s := mcp.NewServer(&mcp.Implementation{Name: "bench"}, nil)
		ts.Install(s, nil)
	}
}

// The input schemas tools/list shows are the JSON the conversion made,
// value for value.
func TestInputSchemasAsConverted(t *testing.T) {
	ts, err := New(t.Context(), []API{
		{Name: "s", BaseURL: "https://api.example.com", Document: writeDoc(t, syntheticDoc(3)), Include: Selector{Methods: []string{"GET", "POST"}}},
		{Name: "items", BaseURL: "https://api.example.com", Document: writeDoc(t, itemsDoc), Include: Selector{Methods: []string{"GET", "POST", "DELETE"}}},
		{Name: "q", BaseURL: "https://api.example.com", Document: writeDoc(t, docWith("3.0.3", queryDoc, "  schemas: {}")), Scopes: []string{"a"}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, nil)
	list, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) != len(ts.tools) {
		t.Fatalf("%d tools listed, want %d", len(list.Tools), len(ts.tools))
	}
	byName := map[string]*operationTool{}
	for _, ot := range ts.tools {
		byName[ot.def.Name] = ot
	}
	for _, tool := range list.Tools {
		ot := byName[tool.Name]
		if ot == nil {
			t.Fatalf("%s: not a tool of the toolset", tool.Name)
		}
		raw, err := ot.schemaJSON()
		if err != nil {
			t.Fatal(err)
		}
		var want, got any
		json.Unmarshal(raw, &want)
		b, _ := json.Marshal(tool.InputSchema)
		json.Unmarshal(b, &got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s lists\n%s\nwant\n%s", tool.Name, b, raw)
		}
	}
}

// BenchmarkRefusedArgument checks a refused argument of about 2.3 MB (an
// object of 200,000 members where an array is wanted) against the schema
// of a tool whose body is one of ten arrays: as the checker reads the
// decoded value (whole: each refusal quotes it, members sorted) and as a
// call reads it (shown: quoted by a few hundred bytes at most).
//
//	go test ./tools/openapi -run '^$' -bench RefusedArgument -benchtime 5x -count 3
func BenchmarkRefusedArgument(b *testing.B) {
	var tool *operationTool
	for _, t := range refusingTools(b).tools {
		if t.def.Name == "t_putOneOf" {
			tool = t
		}
	}
	arg := vastBody(200_000)
	for _, c := range []struct {
		name string
		form func(any) any
	}{{"whole", func(v any) any { return v }}, {"shown", shownValues}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				var v any
				if err := json.Unmarshal([]byte(arg), &v); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if tool.schema.Validate(c.form(v)) == nil {
					b.Fatal("an object taken for an array")
				}
			}
		})
	}
}

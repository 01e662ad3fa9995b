package openapi

import (
	"fmt"
	"strings"
	"testing"
)

// An API that would offer no tool is refused, saying why each operation
// was left out (the first few, and how many more): its filters select
// none, or exclude each, or its document has no operation at all. An
// operation named in the file that the document lacks is refused naming
// it, as before.
func TestNoOperationSelectedRefused(t *testing.T) {
	doc := docWith("3.1.0", `
  /a:
    get: {operationId: getA, tags: [x], responses: {"200": {description: ok}}}
    post: {operationId: postA, tags: [x], responses: {"200": {description: ok}}}
  /b:
    delete: {tags: [y], responses: {"200": {description: ok}}}
`, "  schemas: {}")
	for _, c := range []struct {
		include, exclude Selector
		want             []string
	}{
		{include: Selector{Tags: []string{"isues"}}, want: []string{
			`api "t"`, "none of its 3 operations", `getA (GET /a): none of its tags (x) is among include: tags (isues)`,
			`DELETE /b: method DELETE is not among include: methods (GET, HEAD: the default)`, `no operation has the tag "isues"`}},
		{exclude: Selector{Tags: []string{"x"}}, want: []string{`getA (GET /a): its tag "x" is excluded (exclude: tags)`}},
		{exclude: Selector{Methods: []string{"get"}}, want: []string{`getA (GET /a): its method is excluded (exclude: methods)`}},
		{include: Selector{Methods: []string{"GET"}}, exclude: Selector{Operations: []string{"getA"}}, want: []string{`getA (GET /a): excluded by name (exclude: operations)`}},
	} {
		_, err := newAPI(t, API{Scopes: []string{"a"}, Include: c.include, Exclude: c.exclude}, doc)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("include %+v exclude %+v: %v, want it to say %q", c.include, c.exclude, err, w)
			}
		}
	}

	// Bounded: the first few reasons, and a count of the others.
	var paths strings.Builder
	for i := range 9 {
		fmt.Fprintf(&paths, "\n  /p%d:\n    post: {operationId: p%d, responses: {\"200\": {description: ok}}}", i, i)
	}
	_, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.1.0", paths.String(), "  schemas: {}"))
	if err == nil || !strings.Contains(err.Error(), "p4 (POST /p4)") || strings.Contains(err.Error(), "p5 (POST /p5)") || !strings.Contains(err.Error(), "and 4 more") {
		t.Errorf("nine operations left out: %v", err)
	}

	_, err = newAPI(t, API{Scopes: []string{"a"}}, docWith("3.1.0", "  {}", "  schemas: {}"))
	if err == nil || !strings.Contains(err.Error(), `api "t"`) || !strings.Contains(err.Error(), "its document has no operations") {
		t.Errorf("a document without operations: %v", err)
	}

	// A name the document lacks is the error, alone.
	_, err = newAPI(t, API{Scopes: []string{"a"}, Include: Selector{Operations: []string{"getC"}, Methods: []string{"PUT"}}}, doc)
	if err == nil || !strings.Contains(err.Error(), `no operation "getC"`) || strings.Contains(err.Error(), "none of its") {
		t.Errorf("include of a missing operation, nothing else selected: %v", err)
	}
}

// A tag the APIs file names that no operation has is refused, whether or
// not the API offers tools otherwise: a misspelt exclude: tags would offer
// the operations the operator meant to leave out.
func TestUnknownTagRefused(t *testing.T) {
	doc := docWith("3.1.0", `
  /a:
    get: {operationId: getA, tags: [read], responses: {"200": {description: ok}}}
  /admin:
    get: {operationId: getAdmin, tags: [admin], responses: {"200": {description: ok}}}
`, "  schemas: {}")
	for _, c := range []struct {
		include, exclude Selector
		want             string
	}{
		{exclude: Selector{Tags: []string{"admn"}}, want: `no operation has the tag "admn" (exclude: tags)`},
		{include: Selector{Tags: []string{"read", "raed"}}, want: `no operation has the tag "raed" (include: tags)`},
	} {
		_, err := newAPI(t, API{Scopes: []string{"a"}, Include: c.include, Exclude: c.exclude}, doc)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `api "t"`) {
			t.Errorf("include %+v exclude %+v: %v; want the refusal %q", c.include, c.exclude, err, c.want)
		}
	}
	// Tags the document has are taken as before.
	if ts, err := newAPI(t, API{Scopes: []string{"a"}, Exclude: Selector{Tags: []string{"admin"}}}, doc); err != nil || len(ts.Tools()) != 1 {
		t.Errorf("exclude: tags [admin]: %v", err)
	}
}

package todoapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The document is valid OpenAPI, served as it is embedded, and says what
// the API does: every operation it names is a route of the API, needing
// exactly the scope its security names (a token with the other scope alone
// is refused 403, one with that scope alone is not).
func TestDocumentMatchesTheRoutes(t *testing.T) {
	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{})
	r := call(t, http.MethodGet, api.URL+DocumentPath, nil, "")
	if r.status != http.StatusOK || !bytes.Equal(r.body, Document) {
		t.Fatalf("GET %s: %d", DocumentPath, r.status)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(Document)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatal(err)
	}
	token := func(scope string) map[string]string {
		c := is.claims("alice")
		c["scope"] = scope
		return bearer(is.sign(t, c))
	}
	bodies := map[string]string{"createTodo": `{"todoText":"x"}`, "updateTodo": `{"completed":true}`}
	ops := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			scopes := (*op.Security)[0]["pingfederate"]
			if len(scopes) != 1 || (scopes[0] != ScopeRead && scopes[0] != ScopeWrite) {
				t.Errorf("%s: scopes %v", op.OperationID, scopes)
				continue
			}
			other := map[string]string{ScopeRead: ScopeWrite, ScopeWrite: ScopeRead}[scopes[0]]
			url := api.URL + strings.ReplaceAll(path, "{todoId}", strings.Repeat("A", idLen))
			if r := call(t, method, url, token(other), bodies[op.OperationID]); r.status != http.StatusForbidden {
				t.Errorf("%s %s with %s alone: %d, want 403", method, path, other, r.status)
			}
			r := call(t, method, url, token(scopes[0]), bodies[op.OperationID])
			if r.status == http.StatusForbidden || r.status == http.StatusMethodNotAllowed || r.status == http.StatusBadRequest ||
				r.status == http.StatusNotFound && !strings.Contains(string(r.body), "no todo with this id") {
				t.Errorf("%s %s with %s: %d %s", method, path, scopes[0], r.status, r.body)
			}
		}
	}
	if ops != 4 {
		t.Errorf("the document names %d operations, want the API's 4", ops)
	}
}

package openapi

import (
	"strings"
	"testing"
)

// Real documents, as their generators write them: what each becomes and
// what its calls send.

// OpenAPI says a header parameter named Accept, Content-Type or
// Authorization "SHALL be ignored" (pingmcp sets them): a document that
// declares a required Authorization header, as generated documents of
// APIs taking a bearer token often do, still makes its tool, without
// that argument.
func TestIgnoredHeaderParameters(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}}, docWith("3.0.3", `
  /a:
    get:
      operationId: get
      parameters:
        - {name: Authorization, in: header, required: true, description: "Bearer token.", schema: {type: string}}
        - {name: accept, in: header, required: true, schema: {type: string}}
        - {name: Content-Type, in: header, required: true, schema: {type: string}}
        - {name: q, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(schemaBytes(t, ts.Tools()[0])); strings.Contains(strings.ToLower(s), "authorization") || strings.Contains(s, "ccept") || strings.Contains(s, "Content-Type") || strings.Contains(s, "required") {
		t.Errorf("input schema %s", s)
	}
	cs := connect(t, ts, &countingCaller{})
	if res := callTool(t, cs, "t_get", `{"q":"x"}`); res.IsError {
		t.Fatal(text(res))
	}
	if r := api.requests()[0]; r.Header.Get("Authorization") != "Bearer "+testToken || r.URL.RawQuery != "q=x" {
		t.Errorf("sent %s, Authorization %q", r.URL, r.Header.Get("Authorization"))
	}
	// Other headers pingmcp sets are still refused when required.
	if _, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", `
  /a:
    get:
      parameters: [{name: Host, in: header, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}`, "  schemas: {}")); err == nil || !strings.Contains(err.Error(), "pingmcp's to set") {
		t.Errorf("a required Host header: %v", err)
	}
}

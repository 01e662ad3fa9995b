package openapi

import (
	"strings"
	"testing"
)

// An operation's servers, else its path's (OpenAPI: the most specific
// win), are followed when they lie within base_url (its scheme, host and
// port, under its path, dot segments resolved): a relative one is taken
// relative to base_url, which stands for the document's servers, and one
// of the document's own servers is base_url itself. One outside base_url would carry the API's
// token where the operator sent none: the operation is refused, naming the
// API, the operation and the server, never followed.
func TestOperationServers(t *testing.T) {
	api := newRecorder(t, nil)
	doc := `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: "https://api.example.com/v1"}, {url: "https://sandbox.example.com/v1"}]
paths:
  /items:
    get:
      operationId: items
      responses: {"200": {description: ok}}
  /uploads:
    servers: [{url: "/v1/files"}]
    get:
      operationId: pathServer
      responses: {"200": {description: ok}}
    head:
      operationId: opServer
      servers: [{url: "https://elsewhere.example.com"}, {url: "` + api.URL + `/v1/{area}", variables: {area: {default: blobs, enum: [blobs, media]}}}]
      responses: {"200": {description: ok}}
  /same:
    get:
      operationId: documentServer
      servers: [{url: "https://sandbox.example.com/v1"}]
      responses: {"200": {description: ok}}
`
	ts, err := newAPI(t, API{BaseURL: api.URL + "/v1", Scopes: []string{"a"}}, doc)
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, &countingCaller{})
	for tool, want := range map[string]string{
		"t_items":          "/v1/items",
		"t_pathServer":     "/v1/files/uploads",
		"t_opServer":       "/v1/blobs/uploads",
		"t_documentServer": "/v1/same",
	} {
		if res := callTool(t, cs, tool, `{}`); res.IsError {
			t.Fatalf("%s: %s", tool, text(res))
		}
		reqs := api.requests()
		if r := reqs[len(reqs)-1]; r.URL.EscapedPath() != want || r.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("%s: sent %s, want %s", tool, r.URL.EscapedPath(), want)
		}
	}

	for _, c := range []struct{ servers, want string }{
		{`[{url: "https://upload.example.com/v1"}]`, `https://upload.example.com/v1 is on another origin`},
		{`[{url: "http://api.example.com/v1"}]`, `http://api.example.com/v1 is on another origin`},
		{`[{url: "https://api.example.com:8443/v1"}]`, `https://api.example.com:8443/v1 is on another origin`},
		{`[{url: "https://api.example.com/v2"}]`, `https://api.example.com/v2 is outside base_url's path`},
		{`[{url: "/v2"}]`, `/v2 is outside base_url's path`},
		{`[{url: "//other.example.com/v1"}]`, `//other.example.com/v1 is on another origin`},
		{`[{url: "https://{host}/v1", variables: {host: {default: other.example.com}}}]`, `https://other.example.com/v1 is on another origin`},
		{`[{url: "https://api.example.com/v1/../admin"}]`, `https://api.example.com/v1/../admin is outside base_url's path`},
		{`[{url: "/v1/%2e%2e/admin"}]`, `segment "%2e%2e"`},
		{`[{url: "https://user:pw@api.example.com/v1"}]`, `credentials`},
		{`[{url: "https://api.example.com/v1?key=1"}]`, `query`},
		{`[{url: "ftp://api.example.com/v1"}]`, `http(s)`},
	} {
		_, err := newAPI(t, API{BaseURL: "https://api.example.com/v1", Scopes: []string{"a"}}, `openapi: 3.0.3
info: {title: t, version: "1"}
servers: [{url: "https://api.example.com/v1"}]
paths:
  /items:
    get:
      operationId: upload
      servers: `+c.servers+`
      responses: {"200": {description: ok}}
`)
		if err == nil || !strings.Contains(err.Error(), `api "t": operation upload (GET /items): its servers are not within base_url https://api.example.com/v1`) ||
			!strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "exclude: {operations: [upload]}") {
			t.Errorf("servers %s: %v, want it refused saying %q", c.servers, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("servers %s: the error shows the credentials: %v", c.servers, err)
		}
	}
}

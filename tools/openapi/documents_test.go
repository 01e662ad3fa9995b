package openapi

import (
	"encoding/json"
	"regexp"
	"slices"
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

// A body offered in several JSON media types is sent as application/json
// when it is one of them, else as a concrete +json type: never as a media
// range, which is no content type (ASP.NET's Swashbuckle lists
// application/*+json beside application/json, text/json and
// application/json-patch+json, and application/*+json sorts first).
func TestBodyMediaType(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{`{application/json-patch+json: {schema: {type: object}}, application/json: {schema: {type: object}}, text/json: {schema: {type: object}}, application/*+json: {schema: {type: object}}}`, "application/json"},
		{`{application/vnd.api+json: {schema: {type: object}}, application/*+json: {schema: {type: object}}}`, "application/vnd.api+json"},
		{`{"application/json; charset=utf-8": {schema: {type: object}}, application/hal+json: {schema: {type: object}}}`, "application/json; charset=utf-8"},
	} {
		api := newRecorder(t, nil)
		ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}, Include: Selector{Methods: []string{"POST"}}}, docWith("3.0.3", `
  /a:
    post:
      operationId: post
      requestBody: {required: true, content: `+c.content+`}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
		if err != nil {
			t.Fatal(err)
		}
		cs := connect(t, ts, &countingCaller{})
		if res := callTool(t, cs, "t_post", `{"body":{"a":1}}`); res.IsError {
			t.Fatal(text(res))
		}
		if got := api.requests()[0].Header.Get("Content-Type"); got != c.want {
			t.Errorf("%s: sent Content-Type %q, want %q", c.content, got, c.want)
		}
	}
	// A media range alone is no type to send: a required body so offered
	// is refused, saying so.
	_, err := newAPI(t, API{Scopes: []string{"a"}, Include: Selector{Methods: []string{"POST"}}}, docWith("3.0.3", `
  /a:
    post:
      operationId: post
      requestBody: {required: true, content: {application/*+json: {schema: {type: object}}}}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err == nil || !strings.Contains(err.Error(), "application/*+json") {
		t.Errorf("a body of a media range alone: %v", err)
	}
}

// A Swagger 2.0 document is refused saying what it is and what to do.
func TestSwagger2Refused(t *testing.T) {
	_, err := newAPI(t, API{Scopes: []string{"a"}}, `{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}}}`)
	if err == nil || !strings.Contains(err.Error(), "Swagger (OpenAPI 2)") || !strings.Contains(err.Error(), "OpenAPI 3") {
		t.Errorf("a Swagger 2.0 document: %v", err)
	}
}

// A oneOf with a discriminator is one branch chosen by the discriminator's
// value, as the API reads it (and kin-openapi validates it): a value that
// also fits another branch (branches rarely forbid each other's
// properties) is no refusal, as JSON Schema's oneOf would make it.
func TestDiscriminatorOneOf(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}, Include: Selector{Methods: []string{"POST"}}}, docWith("3.0.3", `
  /pets:
    post:
      operationId: addPet
      requestBody:
        required: true
        content:
          application/json:
            schema:
              oneOf: [{$ref: "#/components/schemas/Cat"}, {$ref: "#/components/schemas/Dog"}]
              discriminator: {propertyName: petType}
      responses: {"200": {description: ok}}`, `  schemas:
    Cat:
      type: object
      required: [petType]
      properties: {petType: {type: string}, name: {type: string}, hunts: {type: boolean}}
    Dog:
      type: object
      required: [petType]
      properties: {petType: {type: string}, name: {type: string}, bark: {type: boolean}}`))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, &countingCaller{})
	if res := callTool(t, cs, "t_addPet", `{"body":{"petType":"Cat","name":"Tom","hunts":true}}`); res.IsError {
		t.Fatal(text(res))
	}
	// Still checked: a value that fits no branch is refused.
	if res := callTool(t, cs, "t_addPet", `{"body":{"name":"Tom"}}`); !res.IsError {
		t.Error("a pet without petType was sent")
	}
}

// A default its schema refuses (a string for an array, a number for a
// string: generated and hand-written documents alike have them) does not
// refuse the document: the API applies its own default, and the argument
// is checked against the schema as any other.
func TestDefaultsNotChecked(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}}, docWith("3.0.3", `
  /a:
    get:
      operationId: list
      parameters:
        - {name: sort, in: query, schema: {type: array, items: {type: string}, default: created_at}}
        - {name: store, in: query, schema: {$ref: "#/components/schemas/Store"}}
      responses: {"200": {description: ok}}`, `  schemas:
    Store: {type: string, default: 0}`))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, &countingCaller{})
	if res := callTool(t, cs, "t_list", `{"sort":["name"],"store":"1"}`); res.IsError {
		t.Fatal(text(res))
	}
	if res := callTool(t, cs, "t_list", `{"store":0}`); !res.IsError {
		t.Error("a number sent for a string")
	}
}

// Each argument's name is one Claude's API, among clients, accepts as a
// property of an input schema (it refuses any other, and every tool of
// the server with it): OData's $filter, JSON:API's page[limit], ids[],
// Google's $.xgafv become filter, page_limit, ids, .xgafv; the call sends
// the parameters' own names.
func TestArgumentNamesPortable(t *testing.T) {
	api := newRecorder(t, nil)
	long := strings.Repeat("long name ", 10)
	ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}}, docWith("3.0.3", `
  /a/{item id}:
    get:
      operationId: list
      parameters:
        - {name: item id, in: path, required: true, schema: {type: string}}
        - {name: "$filter", in: query, schema: {type: string}}
        - {name: "page[limit]", in: query, schema: {type: integer}}
        - {name: "ids[]", in: query, schema: {type: array, items: {type: string}}}
        - {name: "$.xgafv", in: query, schema: {type: string}}
        - {name: _id, in: query, schema: {type: string}}
        - {name: "`+long+`", in: query, schema: {type: string}}
        - {name: "$", in: header, schema: {type: string}}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct{ Properties map[string]any }
	json.Unmarshal(schemaBytes(t, ts.Tools()[0]), &schema)
	var names []string
	for name := range schema.Properties {
		if !regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`).MatchString(name) {
			t.Errorf("argument %q", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	i := slices.IndexFunc(names, func(n string) bool { return strings.HasPrefix(n, "long_name_") })
	if i < 0 || len(names[i]) != 64 {
		t.Fatalf("arguments %q", names)
	}
	longArg := names[i]
	if want := []string{".xgafv", "_id", "filter", "header", "ids", "item_id", longArg, "page_limit"}; !slices.Equal(names, want) {
		t.Errorf("arguments %q, want %q", names, want)
	}
	cs := connect(t, ts, &countingCaller{})
	if res := callTool(t, cs, "t_list", `{"item_id":"7","filter":"a eq 1","page_limit":5,"ids":["1","2"],".xgafv":"2","_id":"i","header":"h",`+quote(longArg)+`:"l"}`); res.IsError {
		t.Fatal(text(res))
	}
	r := api.requests()[0]
	q := r.URL.Query()
	if r.URL.Path != "/a/7" || q.Get("$filter") != "a eq 1" || q.Get("page[limit]") != "5" || !slices.Equal(q["ids[]"], []string{"1", "2"}) ||
		q.Get("$.xgafv") != "2" || q.Get("_id") != "i" || q.Get(long) != "l" || r.Header.Get("$") != "h" {
		t.Errorf("sent %s, header $ %q", r.URL, r.Header.Get("$"))
	}
}

// A space in a query is sent as %20, as OpenAPI's styles write it (RFC
// 6570; spaceDelimited's example is color=blue%20black%20brown), not as
// '+', which only form decoders read as a space; a '+' is %2B.
func TestQuerySpaceEncoded(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}}, docWith("3.0.3", `
  /s:
    get:
      operationId: s
      parameters:
        - {name: color, in: query, style: spaceDelimited, explode: false, schema: {type: array, items: {type: string}}}
        - {name: q, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, &countingCaller{})
	if res := callTool(t, cs, "t_s", `{"color":["blue","black","brown"],"q":"a+b c"}`); res.IsError {
		t.Fatal(text(res))
	}
	if got, want := api.requests()[0].URL.RawQuery, "color=blue%20black%20brown&q=a%2Bb%20c"; got != want {
		t.Errorf("query %s, want %s", got, want)
	}
}

// A path key with a query (OpenAI's /responses?beta=true, Flickr's
// /rest?method=flickr.photos.search; OpenAPI appends the path to the
// server's URL as written) is called as written: the fixed query sent as
// it is, first, path parameters substituted in the path, the operation's
// query parameters after it with '&'. A query parameter the path fixes
// is not offered (its value is the path's). A parameter in the query part
// ({x} after the '?') or a character a query may not hold is refused,
// naming the path.
func TestPathWithQuery(t *testing.T) {
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL + "/v1", Scopes: []string{"a"}}, docWith("3.0.3", `
  /responses/{id}?beta=true:
    get:
      operationId: getResponse
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: include, in: query, schema: {type: array, items: {type: string}}}
      responses: {"200": {description: ok}}
  /rest?method=flickr.photos.search&format=json:
    get:
      operationId: search
      parameters:
        - {name: method, in: query, required: true, schema: {type: string, enum: [flickr.photos.search]}}
        - {name: text, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
  /rest?method=flickr.photos.getInfo:
    get:
      parameters: [{name: photo_id, in: query, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}`, "  schemas: {}"))
	if err != nil {
		t.Fatal(err)
	}
	if names := toolNames(ts); !slices.Contains(names, "t_get_rest_method_flickr.photos.getInfo") {
		t.Errorf("tools %v", names)
	}
	for _, tool := range ts.Tools() {
		if tool.Name == "t_search" && strings.Contains(string(schemaBytes(t, tool)), `"method"`) {
			t.Errorf("the query parameter the path fixes is offered: %s", schemaBytes(t, tool))
		}
	}
	cs := connect(t, ts, &countingCaller{})
	for _, c := range []struct{ tool, args, path, query string }{
		{"t_getResponse", `{"id":"r 1","include":["a","b"]}`, "/v1/responses/r%201", "beta=true&include=a&include=b"},
		{"t_getResponse", `{"id":"r1"}`, "/v1/responses/r1", "beta=true"},
		{"t_search", `{"text":"a&b=c"}`, "/v1/rest", "method=flickr.photos.search&format=json&text=a%26b%3Dc"},
		{"t_get_rest_method_flickr.photos.getInfo", `{"photo_id":"7"}`, "/v1/rest", "method=flickr.photos.getInfo&photo_id=7"},
	} {
		if res := callTool(t, cs, c.tool, c.args); res.IsError {
			t.Fatalf("%s %s: %s", c.tool, c.args, text(res))
		}
		reqs := api.requests()
		if r := reqs[len(reqs)-1]; r.URL.EscapedPath() != c.path || r.URL.RawQuery != c.query {
			t.Errorf("%s %s: sent %s?%s, want %s?%s", c.tool, c.args, r.URL.EscapedPath(), r.URL.RawQuery, c.path, c.query)
		}
	}

	for _, c := range []struct{ path, want string }{
		{"/login?user={user}", `path "/login?user={user}": a parameter in its query ({user})`},
		{"/a?b=c d", `path "/a?b=c d": its query "b=c d" holds ' '`},
		{"/a?b=%zz", `path "/a?b=%zz": its query "b=%zz" holds '%' that starts no escape`},
		{"/a?b=c#d", `path "/a?b=c#d"`},
		{"/%2e%2e/a?b=c", `segment "%2e%2e"`},
	} {
		params := ""
		if strings.Contains(c.path, "{user}") {
			params = "\n      parameters: [{name: user, in: path, required: true, schema: {type: string}}]"
		}
		_, err := newAPI(t, API{Scopes: []string{"a"}}, docWith("3.0.3", `
  "`+c.path+`":
    get:
      operationId: op`+params+`
      responses: {"200": {description: ok}}`, "  schemas: {}"))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "operation op") {
			t.Errorf("path %s: %v, want it refused saying %q", c.path, err, c.want)
		}
	}
}

// A oneOf whose branches inherit a discriminator through allOf (springdoc's
// and NSwag's polymorphism: Cat and Dog are allOf Pet, and Pet holds the
// discriminator) is one branch chosen by the discriminator's value too, as
// a oneOf with the discriminator beside it (TestDiscriminatorOneOf): a
// value that fits another branch as well is no refusal. Still checked: a
// value that fits no branch is refused; and a oneOf whose branches have no
// discriminator stays strict.
func TestDiscriminatorInheritedThroughAllOf(t *testing.T) {
	components := `  schemas:
    Pet:
      type: object
      required: [petType]
      properties: {petType: {type: string}, name: {type: string}}
      discriminator:
        propertyName: petType
        mapping: {cat: "#/components/schemas/Cat", dog: "#/components/schemas/Dog"}
    Cat:
      allOf:
        - $ref: "#/components/schemas/Pet"
        - {type: object, properties: {hunts: {type: boolean}}}
    Dog:
      allOf:
        - $ref: "#/components/schemas/Pet"
        - {type: object, properties: {bark: {type: boolean}}}
    Plain:
      type: object
      properties: {name: {type: string}}`
	api := newRecorder(t, nil)
	ts, err := newAPI(t, API{BaseURL: api.URL, Scopes: []string{"a"}, Include: Selector{Methods: []string{"POST"}}}, docWith("3.0.3", `
  /pets:
    post:
      operationId: addPet
      requestBody:
        required: true
        content:
          application/json:
            schema: {oneOf: [{$ref: "#/components/schemas/Cat"}, {$ref: "#/components/schemas/Dog"}]}
      responses: {"200": {description: ok}}
  /plain:
    post:
      operationId: addPlain
      requestBody:
        required: true
        content:
          application/json:
            schema: {oneOf: [{$ref: "#/components/schemas/Plain"}, {$ref: "#/components/schemas/Plain"}]}
      responses: {"200": {description: ok}}`, components))
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, ts, &countingCaller{})
	if res := callTool(t, cs, "t_addPet", `{"body":{"petType":"cat","name":"Tom","hunts":true}}`); res.IsError {
		t.Fatal(text(res))
	}
	if res := callTool(t, cs, "t_addPet", `{"body":{"name":"Tom"}}`); !res.IsError {
		t.Error("a pet without petType was sent")
	}
	if res := callTool(t, cs, "t_addPlain", `{"body":{"name":"x"}}`); !res.IsError {
		t.Error("a value fitting both branches of a oneOf without a discriminator was sent")
	}
}

package openapi

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/telemetry"
)

// Bounds of a tool's definition.
const (
	maxToolName       = 128 // the MCP SDKs' bound
	maxTitle          = 256
	maxDescription    = 4096
	maxInputSchemaLen = 128 << 10
	// maxInputSchemasLen bounds the input schemas of one API's tools
	// together (GitHub's whole document, 1,223 tools: 1 MiB): a schema
	// that every operation refers to is inlined into each, and the node
	// holds each tool's schema parsed too (about 15 times its JSON).
	maxInputSchemasLen = 8 << 20
)

// bodyArgument is the argument holding a request body.
const bodyArgument = "body"

// An operationTool is an operation made a tool: its definition, and what
// its calls need.
type operationTool struct {
	def       *mcp.Tool
	operation string // operationId, else "METHOD /path", for messages
	method    string
	path      string // the document's path template, without its query
	// fixedQuery is the query of a path key that has one (/rest?method=x):
	// sent as written, before the operation's query parameters.
	fixedQuery string
	params     []*param
	// queries are the names of all the operation's query parameters,
	// those not offered as arguments too, and those its path's query
	// fixes: an object parameter's member may not be sent as one of them
	// (memberName).
	queries []string
	body    *body
	scopes  []string
	schema  *jsonschema.Resolved
	api     *upstream
	// base is the URL its calls go under: the API's base_url, or, within
	// it, the operation's own server (operationBase).
	base *url.URL
}

// A param is one parameter an argument fills.
type param struct {
	name, in string
	argument string // its property in the input schema
	required bool
	style    string
	explode  bool
	spec     *openapi3.Parameter
}

// A body is the JSON request body the body argument fills.
type body struct {
	mediaType   string
	required    bool
	schema      *openapi3.SchemaRef
	description string
}

// build makes the tools of api's selected operations. An operation named
// in the file but absent from the document, or selected and impossible to
// call safely, is an error; so is an API that would offer no tool, saying
// why each operation was left out (noneSelected).
func build(api API, doc *openapi3.T, target *upstream) ([]*operationTool, error) {
	var out []*operationTool
	var errs []error
	var leftOut []string // why each operation not selected was left out
	seen := map[string]bool{}
	schemas := 0
	for _, path := range sortedPaths(doc) {
		item := doc.Paths.Value(path)
		for _, method := range sortedMethods(item) {
			op := item.GetOperation(method)
			if op.OperationID != "" {
				seen[op.OperationID] = true
			}
			name := method + " " + path
			if op.OperationID != "" {
				name = op.OperationID + " (" + name + ")"
			}
			if why := api.leftOut(method, op); why != "" {
				leftOut = append(leftOut, name+": "+why)
				continue
			}
			t, err := newTool(api, doc, path, method, item, op, target)
			if err != nil {
				errs = append(errs, fmt.Errorf("api %q: operation %s: %w", api.Name, name, err))
				continue
			}
			if schemas += len(t.def.InputSchema.(json.RawMessage)); schemas > maxInputSchemasLen {
				// Stop here: building the rest would cost as much again.
				return nil, errors.Join(append(errs, fmt.Errorf("api %q: the input schemas of its selected operations pass %d MiB together (at operation %s): select fewer (include:, exclude: in the APIs file)", api.Name, maxInputSchemasLen>>20, t.operation))...)
			}
			out = append(out, t)
		}
	}
	for _, named := range [][]string{api.Include.Operations, api.Exclude.Operations, sortedKeys(api.Tools)} {
		for _, id := range named {
			if !seen[id] {
				errs = append(errs, fmt.Errorf("api %q: no operation %q in the document", api.Name, id))
			}
		}
	}
	unknown := api.unknownTags(doc)
	switch {
	case len(out) == 0 && len(errs) == 0:
		// Nothing refused, nothing offered: the operator learns why.
		errs = append(errs, noneSelected(api, leftOut, unknown))
	case len(unknown) > 0:
		// A tag the file names that no operation has is refused as an
		// operation it names that the document lacks: a misspelt
		// exclude: tags would offer what the operator meant to leave
		// out.
		errs = append(errs, fmt.Errorf("api %q: no operation has the tag %s", api.Name, strings.Join(unknown, ", ")))
	}
	return out, errors.Join(errs...)
}

// unknownTags are the tags include: or exclude: names that no operation of
// doc has, quoted, each with the list that names it.
func (api *API) unknownTags(doc *openapi3.T) []string {
	var unknown []string
	for _, named := range []struct {
		list string
		tags []string
	}{{"include", api.Include.Tags}, {"exclude", api.Exclude.Tags}} {
		for _, tag := range named.tags {
			if !documentHasTag(doc, tag) {
				unknown = append(unknown, fmt.Sprintf("%q (%s: tags)", tag, named.list))
			}
		}
	}
	return unknown
}

// leftOut says why an operation does not become a tool, "" when it does
// (see API.Include): the reason build gives when an API selects none.
func (api *API) leftOut(method string, op *openapi3.Operation) string {
	ex := api.Exclude
	switch {
	case slices.Contains(ex.Operations, op.OperationID) && op.OperationID != "":
		return "excluded by name (exclude: operations)"
	case slices.ContainsFunc(ex.Methods, func(m string) bool { return strings.EqualFold(m, method) }):
		return "its method is excluded (exclude: methods)"
	}
	if i := slices.IndexFunc(op.Tags, func(t string) bool { return slices.Contains(ex.Tags, t) }); i >= 0 {
		return fmt.Sprintf("its tag %q is excluded (exclude: tags)", op.Tags[i])
	}
	if slices.Contains(api.Include.Operations, op.OperationID) && op.OperationID != "" {
		return ""
	}
	ms, def := api.Include.Methods, ""
	if len(ms) == 0 {
		ms, def = []string{http.MethodGet, http.MethodHead}, ": the default"
	}
	if !slices.ContainsFunc(ms, func(m string) bool { return strings.EqualFold(m, method) }) {
		return fmt.Sprintf("method %s is not among include: methods (%s%s)", method, strings.Join(ms, ", "), def)
	}
	if tags := api.Include.Tags; len(tags) > 0 && !slices.ContainsFunc(op.Tags, func(t string) bool { return slices.Contains(tags, t) }) {
		if len(op.Tags) == 0 {
			return fmt.Sprintf("it has no tags, and include: tags names some (%s)", strings.Join(tags, ", "))
		}
		return fmt.Sprintf("none of its tags (%s) is among include: tags (%s)", strings.Join(op.Tags, ", "), strings.Join(tags, ", "))
	}
	return ""
}

// maxLeftOut bounds the reasons an API that selects no operation is
// refused with: the first few, and a count of the others.
const maxLeftOut = 5

// noneSelected is the refusal of an API whose document has operations and
// whose filters select none of them (leftOut: each one's reason, in the
// document's order), or has none at all; it names the tags the file names
// that no operation has (unknownTags: a misspelt one, say).
func noneSelected(api API, leftOut, unknown []string) error {
	if len(leftOut) == 0 {
		return fmt.Errorf("api %q: its document has no operations (paths): it would offer no tool", api.Name)
	}
	shown := leftOut[:min(len(leftOut), maxLeftOut)]
	msg := fmt.Sprintf("api %q: selects none of its %d operations, so it would offer no tool (include:, exclude: in the APIs file): %s", api.Name, len(leftOut), strings.Join(shown, "; "))
	if more := len(leftOut) - len(shown); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	if len(unknown) > 0 {
		msg += fmt.Sprintf(" (no operation has the tag %s)", strings.Join(unknown, ", "))
	}
	return errors.New(msg)
}

// documentHasTag reports whether an operation of the document has tag.
func documentHasTag(doc *openapi3.T, tag string) bool {
	for _, path := range sortedPaths(doc) {
		for _, op := range doc.Paths.Value(path).Operations() {
			if slices.Contains(op.Tags, tag) {
				return true
			}
		}
	}
	return false
}

func newTool(api API, doc *openapi3.T, path, method string, item *openapi3.PathItem, op *openapi3.Operation, target *upstream) (*operationTool, error) {
	t := &operationTool{operation: op.OperationID, method: method, path: path, api: target}
	if t.operation == "" {
		t.operation = method + " " + path
	}
	var fixed []string
	var err error
	if t.path, t.fixedQuery, fixed, err = checkPathTemplate(path); err != nil {
		return nil, err
	}
	t.queries = fixed
	if t.base, err = operationBase(doc, item, op, target.base); err != nil {
		return nil, err
	}
	scopes, err := operationScopes(api, doc, op, api.Tools[op.OperationID].Scopes)
	if err != nil {
		return nil, err
	}
	t.scopes = scopes

	for _, p := range mergedParams(item, op) {
		if p.In == openapi3.ParameterInQuery {
			if slices.Contains(fixed, p.Name) {
				continue // the path's query fixes its value
			}
			t.queries = append(t.queries, p.Name)
		}
		pp, err := newParam(p)
		if err != nil {
			return nil, err
		}
		if pp != nil { // else optional and not offered (see newParam)
			t.params = append(t.params, pp)
		}
	}
	if err := nameArguments(t.params); err != nil {
		return nil, err
	}
	if rb := op.RequestBody; rb != nil && rb.Value != nil {
		if t.body, err = newBody(rb.Value); err != nil {
			return nil, err
		}
	}
	raw, err := t.schemaJSON()
	if err != nil {
		return nil, err
	}
	// The definition keeps the JSON, not the parsed schema: go-sdk 1.8's
	// AddTool marshals and parses a tool's input schema on every Install
	// whatever its type (validateParamHeaderAnnotations), and marshalling
	// a *jsonschema.Schema costs more than the parse of the JSON it saves
	// (BenchmarkInstall, BenchmarkInstallGitHub; BENCHMARKS.md).
	js := new(jsonschema.Schema)
	if err := json.Unmarshal(raw, js); err != nil {
		return nil, fmt.Errorf("input schema: %w", err)
	}
	if t.schema, err = js.Resolve(nil); err != nil {
		return nil, fmt.Errorf("input schema: %w", err)
	}

	o := api.Tools[op.OperationID]
	name := o.Name
	if name == "" {
		name = toolName(api.Name, op.OperationID, method, path)
	}
	desc := o.Description
	if desc == "" {
		desc = description(api.Name, method, path, op)
	}
	t.def = &mcp.Tool{
		Name:        name,
		Title:       telemetry.ClipTo(op.Summary, maxTitle),
		Description: desc,
		InputSchema: json.RawMessage(raw),
		Annotations: annotations(method),
	}
	return t, nil
}

// schemaJSON is the input schema as JSON: a schema may appear twice on a
// path through it, then once if that makes it too large; larger still, it
// is refused.
func (t *operationTool) schemaJSON() ([]byte, error) {
	var raw []byte
	var err error
	for _, repeat := range []int{2, 1} {
		conv := &jsonSchema{request: true, repeat: repeat, limit: maxInputSchemaLen}
		input := t.inputSchema(conv)
		if conv.over() {
			if repeat == 1 {
				return nil, fmt.Errorf("its input schema grows past %d bytes as its $refs are inlined: exclude it (exclude: operations: in the APIs file)", maxInputSchemaLen)
			}
			continue
		}
		if raw, err = json.Marshal(input); err != nil {
			return nil, fmt.Errorf("input schema: %w", err)
		}
		if len(raw) <= maxInputSchemaLen {
			break
		}
	}
	if len(raw) > maxInputSchemaLen {
		return nil, fmt.Errorf("its input schema is %d bytes, more than %d: exclude it (exclude: operations: in the APIs file)", len(raw), maxInputSchemaLen)
	}
	return raw, nil
}

// inputSchema is the JSON Schema of the tool's arguments: one per
// parameter offered, and the body; nothing else.
func (t *operationTool) inputSchema(conv *jsonSchema) map[string]any {
	props := map[string]any{}
	required := []string{}
	for _, p := range t.params {
		schema := conv.ref(p.spec.Schema)
		if p.spec.Description != "" {
			schema["description"] = p.spec.Description
		}
		if p.in == openapi3.ParameterInPath && schema["type"] == nil {
			schema["type"] = "string"
		}
		props[p.argument] = schema
		if p.required {
			required = append(required, p.argument)
		}
	}
	if b := t.body; b != nil {
		schema := map[string]any{}
		if b.schema != nil {
			schema = conv.ref(b.schema)
		}
		if b.description != "" && schema["description"] == nil {
			schema["description"] = b.description
		}
		props[bodyArgument] = schema
		if b.required {
			required = append(required, bodyArgument)
		}
	}
	input := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		slices.Sort(required)
		input["required"] = required
	}
	return input
}

// operationScopes are the scopes of an operation's security requirement
// (the document's when the operation has none): those a token for it must
// carry. Only the scopes of oauth2 schemes count: an openIdConnect
// scheme's (openid, profile) are sign-in scopes, no access to the API,
// and a tool's scopes also let a token use a session (actors' admission).
// Requirements are alternatives; those naming no OAuth 2 scope (an API
// key, OpenID Connect alone) are not pingmcp's way in and are passed
// over, and of alternatives with different scopes the APIs file chooses
// one (chosen: its tools entry's scopes), since a tool needs one set. An
// operation without scopes takes the API's from the file.
func operationScopes(api API, doc *openapi3.T, op *openapi3.Operation, chosen []string) ([]string, error) {
	reqs := doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	sets := map[string][]string{}
	for _, req := range reqs {
		var s []string
		for name, scopes := range req {
			if isOAuth2(doc, name) {
				s = append(s, scopes...)
			}
		}
		slices.Sort(s)
		s = slices.Compact(s)
		if len(s) > 0 {
			sets[strings.Join(s, " ")] = s
		}
	}
	if len(chosen) > 0 {
		c := slices.Clone(chosen)
		slices.Sort(c)
		c = slices.Compact(c)
		if s, ok := sets[strings.Join(c, " ")]; ok || len(sets) == 0 {
			if ok {
				return s, nil
			}
			return c, nil
		}
		return nil, fmt.Errorf("the scopes its tools entry chooses (%s) are none of its security requirements' alternatives (%s)", strings.Join(c, " "), strings.Join(sortedKeys(sets), "; "))
	}
	switch len(sets) {
	case 0:
		if len(api.Scopes) == 0 {
			return nil, errors.New("it declares no OAuth scopes (security) and the API names none (scopes: in the APIs file): there is nothing to ask a token for")
		}
		return slices.Clone(api.Scopes), nil
	case 1:
		for _, s := range sets {
			return s, nil
		}
	}
	return nil, fmt.Errorf("its security requirements are alternatives with different scopes (%s): a tool needs one set; choose one in the APIs file (tools: {%s: {scopes: [...]}})", strings.Join(sortedKeys(sets), "; "), cmp.Or(op.OperationID, "<operationId>"))
}

// isOAuth2 reports whether the document's security scheme name is of
// type oauth2.
func isOAuth2(doc *openapi3.T, name string) bool {
	if doc.Components == nil {
		return false
	}
	sr := doc.Components.SecuritySchemes[name]
	return sr != nil && sr.Value != nil && sr.Value.Type == "oauth2"
}

// mergedParams are the path item's parameters, overridden by the
// operation's of the same name and location.
func mergedParams(item *openapi3.PathItem, op *openapi3.Operation) []*openapi3.Parameter {
	var out []*openapi3.Parameter
	for _, ps := range []openapi3.Parameters{item.Parameters, op.Parameters} {
		for _, pr := range ps {
			if pr == nil || pr.Value == nil {
				continue
			}
			p := pr.Value
			out = slices.DeleteFunc(out, func(q *openapi3.Parameter) bool {
				return q.In == p.In && (q.Name == p.Name || p.In == openapi3.ParameterInHeader && strings.EqualFold(q.Name, p.Name))
			})
			out = append(out, p)
		}
	}
	return out
}

// reservedHeaders are headers a parameter may not set: pingmcp sets them,
// or they frame the request. OpenAPI ignores Accept, Content-Type and
// Authorization parameters; the others would let a model reshape the
// request: its method, to gateways and frameworks that honour an override
// (a read-only GET tool made a DELETE), its path (a route override, which
// IIS's URL Rewrite and older Symfony and Zend read: a call sent out of
// base_url's path), or the client address, host, scheme and path prefix a
// proxy in front of the API vouches for (an allow-list passed); so is
// every X-Forwarded-* (reservedHeader). Accept-Encoding is the transport's:
// set by a parameter, it turns off the transparent decompression, and an
// answer that echoes the token, compressed, would not be blanked;
// Content-Encoding would misname the body pingmcp sends.
var reservedHeaders = []string{"Accept", "Accept-Encoding", "Authorization", "Content-Encoding", "Connection", "Content-Length", "Content-Type", "Cookie", "Expect",
	"Host", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Traceparent", "Tracestate",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Original-Url", "X-Rewrite-Url",
	"Forwarded", "X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip", "Cf-Connecting-Ip"}

// reservedHeader reports whether a header parameter may not be set
// (reservedHeaders, or X-Forwarded-*), in any case.
func reservedHeader(name string) bool {
	const forwarded = "x-forwarded-"
	return len(name) > len(forwarded) && strings.EqualFold(name[:len(forwarded)], forwarded) ||
		slices.ContainsFunc(reservedHeaders, func(h string) bool { return strings.EqualFold(h, name) })
}

// ignoredHeaders are header parameters whose definition OpenAPI says
// "SHALL be ignored", required or not (pingmcp sets them: a document that
// declares a required Authorization header means the bearer token).
var ignoredHeaders = []string{"Accept", "Authorization", "Content-Type"}

// newParam makes the argument of a parameter, or nil for an optional one
// that is not offered (a cookie, a reserved header, a serialization pingmcp
// does not write); a required one of those makes the operation impossible,
// but for the headers OpenAPI ignores (ignoredHeaders), never offered.
func newParam(p *openapi3.Parameter) (*param, error) {
	skip := func(why string) (*param, error) {
		if p.Required || p.In == openapi3.ParameterInPath {
			return nil, fmt.Errorf("%s parameter %q: %s", p.In, p.Name, why)
		}
		return nil, nil
	}
	switch {
	case p.In == openapi3.ParameterInHeader && slices.ContainsFunc(ignoredHeaders, func(h string) bool { return strings.EqualFold(h, p.Name) }):
		return nil, nil // required or not: OpenAPI ignores it
	case p.In == openapi3.ParameterInCookie:
		return skip("cookie parameters are not supported")
	case p.In == openapi3.ParameterInHeader && reservedHeader(p.Name):
		return skip("this header is pingmcp's to set")
	case p.In == openapi3.ParameterInHeader && !validHeaderName(p.Name):
		return skip("not a valid header name")
	case p.Schema == nil || p.Schema.Value == nil:
		return skip("only parameters described by a schema are supported, not by content")
	}
	sm, err := p.SerializationMethod()
	if err != nil {
		return skip(err.Error())
	}
	kind := valueKind(p.Schema.Value)
	ok := false
	switch p.In {
	case openapi3.ParameterInPath:
		// A schema of no one type (oneOf integer or string, say) is
		// taken: a call with anything but a scalar is refused (scalar).
		ok = sm.Style == openapi3.SerializationSimple && (kind == "scalar" || kind == "any")
	case openapi3.ParameterInHeader:
		ok = sm.Style == openapi3.SerializationSimple && kind != "object"
	case openapi3.ParameterInQuery:
		switch sm.Style {
		case openapi3.SerializationForm:
			ok = kind != "object" || sm.Explode
		case openapi3.SerializationSpaceDelimited, openapi3.SerializationPipeDelimited:
			ok = kind == "array"
		case openapi3.SerializationDeepObject:
			ok = kind == "object"
		}
	}
	if !ok {
		return skip(fmt.Sprintf("style %s (explode %t) of a%s value is not supported", sm.Style, sm.Explode, map[string]string{"scalar": " scalar", "array": "n array", "object": "n object", "any": "ny"}[kind]))
	}
	return &param{name: p.Name, in: p.In, required: p.Required || p.In == openapi3.ParameterInPath, style: sm.Style, explode: sm.Explode, spec: p}, nil
}

// nameArguments names each parameter's argument: its name made a
// portable argument name (argumentName), or, when two parameters would
// share one (two locations share a name, or a parameter is called
// "body"), its location and name (query_id, header_id).
func nameArguments(params []*param) error {
	count := map[string]int{bodyArgument: 1}
	for _, p := range params {
		count[argumentName(p.name)]++
	}
	taken := map[string]bool{}
	for _, p := range params {
		p.argument = argumentName(p.name)
		switch {
		case p.argument == "":
			p.argument = p.in
		case count[p.argument] > 1:
			p.argument = argumentName(p.in + "_" + p.argument)
		}
		if taken[p.argument] {
			return fmt.Errorf("two parameters would both be the argument %q", p.argument)
		}
		taken[p.argument] = true
	}
	return nil
}

// maxArgumentName bounds an argument's name, as clients do.
const maxArgumentName = 64

var portableArgument = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// argumentName is a parameter's name as an argument: as it is when it is
// 1 to 64 letters, digits, '_', '.' or '-', which clients accept as a
// property of an input schema (Claude's API refuses any other, and with it
// every tool of the server, whatever the tool called); else each run of
// other characters made '_', none at either end ($filter is filter,
// page[limit] page_limit, ids[] ids), and beyond 64 characters cut and
// ended by a hash of the whole. The call sends the parameter's own name.
func argumentName(name string) string {
	if portableArgument.MatchString(name) {
		return name
	}
	a := invalidNameRunes.ReplaceAllString(name, "_")
	if loc := invalidNameRunes.FindStringIndex(name); loc != nil && loc[0] == 0 {
		a = a[1:]
	}
	if locs := invalidNameRunes.FindAllStringIndex(name, -1); len(locs) > 0 && locs[len(locs)-1][1] == len(name) && a != "" {
		a = a[:len(a)-1]
	}
	if len(a) > maxArgumentName {
		sum := sha256.Sum256([]byte(name))
		a = a[:maxArgumentName-9] + "_" + hex.EncodeToString(sum[:4])
	}
	return a
}

// newBody makes the body argument of a JSON request body, nil for an
// optional body pingmcp does not write (not JSON). Of several JSON media
// types, application/json is sent when it is one, else the first other;
// a media range (application/*+json) is no content type to send.
func newBody(rb *openapi3.RequestBody) (*body, error) {
	types := slices.DeleteFunc(sortedKeys(rb.Content), func(mt string) bool { return !isJSON(mt) || strings.Contains(mt, "*") })
	if i := slices.IndexFunc(types, func(mt string) bool {
		t, _, _ := mime.ParseMediaType(mt)
		return t == "application/json"
	}); i > 0 {
		types[0], types[i] = types[i], types[0]
	}
	if len(types) > 0 {
		b := &body{mediaType: types[0], required: rb.Required, description: rb.Description}
		if m := rb.Content[types[0]]; m != nil {
			b.schema = m.Schema
		}
		return b, nil
	}
	if rb.Required {
		return nil, fmt.Errorf("its request body is %s: only JSON bodies are supported (application/json or a +json type, not a range)", strings.Join(sortedKeys(rb.Content), ", "))
	}
	return nil, nil
}

// isJSON reports whether a media type is JSON (application/json, or a
// +json suffix).
func isJSON(mediaType string) bool {
	mt, _, err := mime.ParseMediaType(mediaType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// valueKind is "scalar", "array", "object" or "any" for a schema's type.
func valueKind(s *openapi3.Schema) string {
	types := slices.DeleteFunc(slices.Clone(s.Type.Slice()), func(t string) bool { return t == "null" })
	if len(types) != 1 {
		if len(types) > 1 && !slices.Contains(types, "array") && !slices.Contains(types, "object") {
			return "scalar"
		}
		return "any"
	}
	switch types[0] {
	case "array":
		return "array"
	case "object":
		return "object"
	}
	return "scalar"
}

// checkPathTemplate splits a document's path key into its path and its
// query (a key like /rest?method=x: OpenAPI appends the key to the
// server's URL as written, and some documents fix a query so), with the
// names that query sets. It refuses a path that would leave its place:
// dot segments, a fragment, also percent-encoded: each segment without
// parameters is checked as a path argument is (checkSegment), once
// decoded, for an API or a gateway in front of it that decodes before it
// routes (nginx does) would read /%2e%2e/x as /x. A segment with
// parameters is checked whole on each call (checkComposed). The query
// is sent as written, so it must be one (checkFixedQuery).
func checkPathTemplate(key string) (path, query string, names []string, err error) {
	path, query, _ = strings.Cut(key, "?")
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(key, "#\\") {
		return "", "", nil, fmt.Errorf("path %q: want an absolute path without fragment", key)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return "", "", nil, fmt.Errorf("path %q has a dot segment", key)
		}
		if seg == "" || strings.ContainsAny(seg, "{}") {
			continue
		}
		raw, err := url.PathUnescape(seg)
		if err == nil {
			err = checkSegment(raw)
		}
		if err != nil {
			return "", "", nil, fmt.Errorf("path %q: segment %q: %w", key, seg, err)
		}
	}
	if names, err = checkFixedQuery(query); err != nil {
		return "", "", nil, fmt.Errorf("path %q: %w", key, err)
	}
	return path, query, names, nil
}

// checkFixedQuery checks the query of a path key, sent as written: only
// characters a query may hold (RFC 3986), each '%' starting an escape, and
// no parameter ({name}), which pingmcp fills in a path's segments only.
// It returns the names the query sets.
func checkFixedQuery(query string) ([]string, error) {
	if i := strings.IndexByte(query, '{'); i >= 0 {
		name := query[i:]
		if j := strings.IndexByte(name, '}'); j >= 0 {
			name = name[:j+1]
		}
		return nil, fmt.Errorf("a parameter in its query (%s) is not supported: pingmcp fills parameters in the path's segments only; exclude the operation (exclude: in the APIs file)", name)
	}
	for _, r := range query {
		if r >= utf8.RuneSelf || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("%-._~!$&'()*+,;=:@/?", r)) {
			return nil, fmt.Errorf("its query %q holds %q, which a query may not hold unescaped", query, r)
		}
	}
	if _, err := url.QueryUnescape(query); err != nil {
		return nil, fmt.Errorf("its query %q holds '%%' that starts no escape", query)
	}
	var names []string
	for _, pair := range strings.Split(query, "&") {
		name, _, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err == nil && n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

var invalidNameRunes = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// toolName is apiName_operationId (else apiName_method_path) with every run
// of characters MCP does not allow in a name made '_'; beyond 128
// characters it is cut and ends with a hash of the whole, so that it stays
// unique.
func toolName(apiName, operationID, method, path string) string {
	base := operationID
	if base == "" {
		base = strings.ToLower(method) + path
	}
	name := apiName + "_" + strings.Trim(invalidNameRunes.ReplaceAllString(base, "_"), "_")
	if len(name) > maxToolName {
		sum := sha256.Sum256([]byte(name))
		name = name[:maxToolName-9] + "_" + hex.EncodeToString(sum[:4])
	}
	return name
}

func validToolName(name string) bool {
	return name != "" && len(name) <= maxToolName && !invalidNameRunes.MatchString(name)
}

// description is the operation's summary and description, bounded, or
// what the tool calls when the document says nothing.
func description(apiName, method, path string, op *openapi3.Operation) string {
	d := strings.TrimSpace(strings.Join(slices.DeleteFunc([]string{op.Summary, op.Description}, func(s string) bool { return s == "" }), "\n\n"))
	if d == "" {
		d = fmt.Sprintf("%s %s of the %s API.", method, path, apiName)
	}
	if op.Deprecated {
		d = "Deprecated. " + d
	}
	return telemetry.ClipTo(d, maxDescription)
}

// annotations say what a method does to the API: GET, HEAD and OPTIONS
// read; PUT and DELETE replace or remove (destructive, idempotent); PATCH
// changes (destructive); POST adds (not idempotent). Every tool touches
// its one API only.
func annotations(method string) *mcp.ToolAnnotations {
	closed := new(bool)
	yes := func() *bool { b := true; return &b }
	no := func() *bool { return new(bool) }
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, "QUERY":
		return &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: closed}
	case http.MethodPut, http.MethodDelete:
		return &mcp.ToolAnnotations{DestructiveHint: yes(), IdempotentHint: true, OpenWorldHint: closed}
	case http.MethodPost:
		return &mcp.ToolAnnotations{DestructiveHint: no(), OpenWorldHint: closed}
	}
	return &mcp.ToolAnnotations{DestructiveHint: yes(), OpenWorldHint: closed}
}

func sortedPaths(doc *openapi3.T) []string {
	if doc.Paths == nil {
		return nil
	}
	return sortedKeys(doc.Paths.Map())
}

func sortedMethods(item *openapi3.PathItem) []string {
	return sortedKeys(item.Operations())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func validHeaderName(s string) bool { return headerName.MatchString(s) }

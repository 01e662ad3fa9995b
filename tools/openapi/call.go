package openapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/text/unicode/norm"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/internal/outbound"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/answer"
)

// upstream is an API the tools call.
type upstream struct {
	name      string
	base      *url.URL
	resource  string
	client    *http.Client
	maxResult int
}

var errNoUser = errors.New("this server runs without authentication: there is no user to act for")

// call checks the arguments, builds the request, and only then asks for a
// token and calls the API. Every failure is a tool error saying what went
// wrong, never with a token in it.
func (t *operationTool) call(ctx context.Context, caller tools.Caller, req *mcp.CallToolRequest) *mcp.CallToolResult {
	var raw json.RawMessage
	if req != nil && req.Params != nil {
		raw = req.Params.Arguments
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		// No arguments: MCP's arguments are optional, and clients send
		// null for none (the Go SDK does).
		raw = json.RawMessage("{}")
	}
	var inst any
	if err := json.Unmarshal(raw, &inst); err != nil {
		return failure(fmt.Errorf("invalid arguments: %w", err))
	}
	if err := t.schema.Validate(shownValues(inst)); err != nil {
		return failure(fmt.Errorf("invalid arguments: %w", err))
	}
	// Again with numbers as written, which go to the API as such: so each
	// must be exactly the number the schema checked (1e2, 100.0 or
	// 100.0000000000000000001 would pass an integer's bounds as 100).
	var args map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&args); err != nil {
		return failure(fmt.Errorf("invalid arguments: %w", err))
	}
	if err := checkNumbers(args); err != nil {
		return failure(fmt.Errorf("invalid arguments: %w", err))
	}
	hr, err := t.request(ctx, args)
	if err != nil {
		return failure(fmt.Errorf("invalid arguments: %w", err))
	}
	if caller == nil {
		return failure(errNoUser)
	}
	// A token the API refuses (401: revoked before its expiry, say) is
	// told refused, and the request sent once more with a token exchanged
	// anew: a 401 is the API's refusal before it acts.
	var d *tools.Delegation
	var resp *http.Response
	for try := 1; ; try++ {
		if try > 1 {
			if hr, err = t.request(ctx, args); err != nil {
				return failure(fmt.Errorf("invalid arguments: %w", err))
			}
		}
		t.idempotent(ctx, hr, raw)
		if d, err = caller.Delegate(ctx, t.api.resource, t.scopes); err != nil {
			return failure(fmt.Errorf("could not get a token for the %s API: %w", t.api.name, err))
		}
		hr.Header.Set("Authorization", "Bearer "+d.Token)
		resp, err = t.api.client.Do(hr)
		call := audit.Call{API: t.api.name, Operation: t.operation, Method: t.method}
		if resp != nil {
			call.Status = resp.StatusCode
		}
		audit.RecordCall(ctx, call)
		if err != nil {
			return failure(fmt.Errorf("the %s API could not be reached: %w", t.api.name, outbound.Failed(err)))
		}
		if resp.StatusCode != http.StatusUnauthorized {
			break
		}
		caller.Refused(ctx, d)
		if try == 2 {
			break
		}
		resp.Body.Close()
	}
	defer resp.Body.Close()
	// Past the cut, as much as the token takes escaped (\u0074 for t): one
	// that the cut falls within is read whole, and found (result).
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(t.api.maxResult+6*len(d.Token))+1))
	if err != nil {
		return failure(fmt.Errorf("reading the %s API's answer: %w", t.api.name, outbound.Failed(err)))
	}
	return t.api.result(resp, b, d.Token)
}

var plainInteger = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// checkNumbers refuses a number whose text is not exactly the float64 the
// input schema was checked with: an integer must be written plainly and be
// exact in a float64 (every integer up to 2^53 is); any other number in
// its shortest form (0.5, not 5e-1 nor 0.50).
func checkNumbers(v any) error {
	switch v := v.(type) {
	case json.Number:
		t := v.String()
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return fmt.Errorf("number %s: %w", t, err)
		}
		if plainInteger.MatchString(t) {
			n, ok := new(big.Int).SetString(t, 10)
			if exact, acc := new(big.Float).SetFloat64(f).Int(nil); !ok || acc != big.Exact || exact.Cmp(n) != 0 {
				return fmt.Errorf("number %s: not exactly representable: the API would be sent another number than the one checked", t)
			}
			return nil
		}
		if canon := strconv.FormatFloat(f, 'f', -1, 64); canon != t {
			return fmt.Errorf("number %s: write it as %s", t, canon)
		}
	case []any:
		for _, e := range v {
			if err := checkNumbers(e); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, e := range v {
			if err := checkNumbers(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// request builds the HTTP request of the arguments (already checked against
// the input schema): to the configured base URL (or the operation's own
// server within it: operationBase) and the operation's path only, each
// path parameter one segment.
func (t *operationTool) request(ctx context.Context, args map[string]any) (*http.Request, error) {
	path, composed := t.path, false
	query := url.Values{}
	header := http.Header{}
	for _, p := range t.params {
		v, ok := args[p.argument]
		if !ok || v == nil {
			continue
		}
		switch p.in {
		case "path":
			s, err := scalar(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.argument, err)
			}
			if err := checkSegment(s); err != nil {
				return nil, fmt.Errorf("%s %q: %w", p.argument, s, err)
			}
			path = strings.ReplaceAll(path, "{"+p.name+"}", url.PathEscape(s))
			composed = true
		case "query":
			if err := t.addQuery(query, p, v); err != nil {
				return nil, fmt.Errorf("%s: %w", p.argument, err)
			}
		case "header":
			s, err := headerValue(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.argument, err)
			}
			header.Set(p.name, s)
		}
	}
	if strings.ContainsAny(path, "{}") {
		return nil, fmt.Errorf("path %s: a path parameter has no value", t.path)
	}
	if composed {
		if err := checkComposed(t.path, path); err != nil {
			return nil, err
		}
	}
	u, err := url.Parse(t.base.String() + path)
	if err != nil {
		return nil, err
	}
	// What the escaping above guarantees, checked once more: the request
	// goes where the file says, under the base URL's path (and the
	// operation's server's, within it).
	if u.Scheme != t.api.base.Scheme || u.Host != t.api.base.Host || u.User != nil ||
		!strings.HasPrefix(u.EscapedPath(), t.api.base.EscapedPath()+"/") || !strings.HasPrefix(u.EscapedPath(), t.base.EscapedPath()+"/") {
		return nil, fmt.Errorf("the request would leave %s", t.base)
	}
	// A space as %20, as OpenAPI's styles write it (RFC 6570), not '+',
	// which only form decoders read as a space ('+' itself is %2B).
	u.RawQuery = strings.ReplaceAll(query.Encode(), "+", "%20")
	// A path key's own query, as written, first (TestPathWithQuery).
	switch {
	case t.fixedQuery != "" && u.RawQuery != "":
		u.RawQuery = t.fixedQuery + "&" + u.RawQuery
	case t.fixedQuery != "":
		u.RawQuery = t.fixedQuery
	}
	var rd io.Reader
	if t.body != nil {
		if v, ok := args[bodyArgument]; ok {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("body: %w", err)
			}
			rd = bytes.NewReader(b)
			header.Set("Content-Type", t.body.mediaType)
		}
	}
	hr, err := http.NewRequestWithContext(ctx, t.method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		hr.Header[k] = v
	}
	hr.Header.Set("Accept", "application/json, */*;q=0.5")
	return hr, nil
}

// checkSegment refuses a path parameter that could name another resource
// than the one its segment stands for: empty, a dot segment, or holding a
// slash or backslash, also once (or twice) percent-decoded, in case the
// API decodes what it is sent again (leniently: a '%' that starts no
// escape is kept, as most decoders do, and the escapes around it decoded,
// %uXXXX ones too), and also NFKC-normalized, before or after decoding, in
// case it normalizes Unicode (U+2025 is "..", U+2100 "a/c", U+FF05 '%');
// and, in each of those forms, a dot segment or empty once its path
// parameters (";…") are dropped ("..;x").
func checkSegment(s string) error { return checkSegmentAs(s, false, 0) }

// checkSegmentAs checks s, the value as an API may read it after decoding
// it decoded times, and normalized if so.
func checkSegmentAs(s string, normalized bool, decoded int) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\") {
		return errors.New("not a single path segment (empty, '.', '..', or holding '/' or '\\', also once decoded or normalized)")
	}
	// Tomcat, Jetty and Spring drop a segment's path parameters (';' on)
	// before they resolve dot segments: "..;x" is "..", ";x" an empty
	// segment (merged away: /items/;x/tags is /items/tags).
	if seg, _, ok := strings.Cut(s, ";"); ok && (seg == "" || seg == "." || seg == "..") {
		return errors.New("a dot segment, or empty, before ';' (path parameters, which servers drop before resolving dot segments)")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return errors.New("holds control characters")
	}
	// Overlong encodings (%C0%AE) are not UTF-8; a lax decoder (a best-fit
	// code page) could read the look-alikes as a dot or a slash, in what
	// it is sent (what NFKC makes of a value is not a lax decoder's input:
	// '½' is "1⁄2").
	if !utf8.ValidString(s) {
		return errors.New("not UTF-8 once percent-decoded")
	}
	if !normalized && strings.ContainsAny(s, lookAlikes) {
		return errors.New("holds a look-alike of '.', '/' or '\\'")
	}
	// Once decoded, '?' or '#' would end the path for an API that decodes
	// what it is sent again and parses it anew (DELETE /items/5%3F/tags/x
	// read as DELETE /items/5).
	if decoded > 0 && strings.ContainsAny(s, "?#") {
		return errors.New("holds '?' or '#' once percent-decoded")
	}
	if n := norm.NFKC.String(s); n != s {
		if err := checkSegmentAs(n, true, decoded); err != nil {
			return err
		}
	}
	d := unescapeLeniently(s)
	switch {
	case d == s:
		return nil
	case decoded == 2:
		return errors.New("percent-encoded more than twice")
	}
	return checkSegmentAs(d, normalized, decoded+1)
}

// checkComposed checks whole each segment of the request's path that
// parameters fill together with another parameter or the template's text
// ({a}{b}, {name}.json): each value passed checkSegment alone, but an API
// that decodes what it is sent again could read their concatenation as a
// dot segment or a slash ("%2" and "e%2e" make "%2e%2e").
func checkComposed(template, path string) error {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return fmt.Errorf("path %s: a path parameter is not one segment", template)
	}
	for i, seg := range ts {
		if !strings.Contains(seg, "{") || strings.Count(seg, "{") == 1 && strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			continue // no parameter, or one alone: checked as it is
		}
		raw, err := url.PathUnescape(ps[i])
		if err != nil {
			return fmt.Errorf("path segment %q: %w", ps[i], err)
		}
		if err := checkSegment(raw); err != nil {
			return fmt.Errorf("path segment %q: %w", raw, err)
		}
	}
	return nil
}

// unescapeLeniently decodes each %XX escape of s, and each %uXXXX escape
// (IIS's, older Jetty's: '%u002e' is '.'), and keeps any other '%'.
func unescapeLeniently(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for ; i >= 0; i = strings.IndexByte(s, '%') {
		b = append(b, s[:i]...)
		if i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			if c, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil {
				b = utf8.AppendRune(b, rune(c))
				s = s[i+6:]
				continue
			}
		}
		if i+2 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(c))
				s = s[i+3:]
				continue
			}
		}
		b = append(b, '%')
		s = s[i+1:]
	}
	return string(append(b, s...))
}

// lookAlikes are characters that a lax decoder (a best-fit code page)
// could turn into '.', '/' or '\' (those NFKC normalization does are found
// by normalizing).
const lookAlikes = "\uFF0E\u2024\uFE52\u2215\u2044\uFF0F\u29F8\uFF3C\uFE68\u29F5\u2216"

// scalar writes a string, number or boolean as a parameter value.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, not %T", v)
}

// addQuery writes a query parameter in its style: form (arrays repeated
// when exploded, else comma-separated; objects exploded into their
// members), spaceDelimited, pipeDelimited, deepObject.
func (t *operationTool) addQuery(q url.Values, p *param, v any) error {
	switch v := v.(type) {
	case []any:
		vals := make([]string, len(v))
		for i, e := range v {
			s, err := scalar(e)
			if err != nil {
				return err
			}
			vals[i] = s
		}
		sep := ","
		switch {
		case p.style == "form" && p.explode:
			q[p.name] = append(q[p.name], vals...)
			return nil
		case p.style == "spaceDelimited":
			sep = " "
		case p.style == "pipeDelimited":
			sep = "|"
		}
		s, err := join(vals, sep)
		if err != nil {
			return err
		}
		q.Add(p.name, s)
	case map[string]any:
		for _, k := range sortedKeys(v) {
			name, err := t.memberName(p, k)
			if err != nil {
				return err
			}
			s, err := scalar(v[k])
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			q.Add(name, s)
		}
	default:
		s, err := scalar(v)
		if err != nil {
			return err
		}
		q.Add(p.name, s)
	}
	return nil
}

// join joins the elements of an array with sep, which none may hold: the
// API would read more elements than were checked.
func join(vals []string, sep string) (string, error) {
	for _, v := range vals {
		if strings.Contains(v, sep) {
			return "", fmt.Errorf("element %q holds %q, which separates the elements", v, sep)
		}
	}
	return strings.Join(vals, sep), nil
}

// memberName is the query name a member k of an object parameter is sent
// as: k (form, exploded) or name[k] (deepObject). Only the members the
// schema's properties name are sent; others only when the schema declares
// additionalProperties, and then never one that is (or, deepObject, one
// that could be read as) another of the operation's query parameters,
// offered or not, or a deepObject member of one (name[…]), in any case (an
// API may read query names without it): a member may not add a parameter
// nor repeat a declared one past its schema.
func (t *operationTool) memberName(p *param, k string) (string, error) {
	sch := p.spec.Schema.Value
	_, declared := sch.Properties[k]
	if !declared {
		ap := sch.AdditionalProperties
		if !(ap.Has != nil && *ap.Has || ap.Schema != nil) {
			return "", fmt.Errorf("member %q is not one of the schema's properties", k)
		}
		if k == "" || p.style == "deepObject" && strings.ContainsAny(k, "[]") {
			return "", fmt.Errorf("member %q: not a name this parameter can send", k)
		}
	}
	name := k
	if p.style == "deepObject" {
		name = p.name + "[" + k + "]"
	}
	for _, o := range t.queries {
		if o != p.name && (strings.EqualFold(o, name) ||
			len(name) > len(o) && name[len(o)] == '[' && strings.EqualFold(name[:len(o)], o)) {
			return "", fmt.Errorf("member %q would be (a member of) the query parameter %q", k, o)
		}
	}
	return name, nil
}

// headerValue writes a header parameter (simple style: arrays
// comma-separated); no value can add a header or a line.
func headerValue(v any) (string, error) {
	var s string
	if arr, ok := v.([]any); ok {
		vals := make([]string, len(arr))
		for i, e := range arr {
			x, err := scalar(e)
			if err != nil {
				return "", err
			}
			vals[i] = x
		}
		var err error
		if s, err = join(vals, ","); err != nil {
			return "", err
		}
	} else {
		x, err := scalar(v)
		if err != nil {
			return "", err
		}
		s = x
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r != '\t' && (r < ' ' || r == 0x7f) }) {
		return "", errors.New("a header value may not hold control characters")
	}
	return s, nil
}

// result turns an answer into a tool result: an error with the status and a
// bounded excerpt for anything but 2xx; else the JSON object as structured
// content (and its text), or the text, cut at maxResult. The token is
// blanked out of every path (an API that echoes the request would show it):
// of the text, and of every string of a JSON answer, whose text is then
// that of the cleaned value. A text that still holds it once JSON's
// escapes are undone (\u0074ok…, \/: in a text answer, a cut one, or
// under a key a later duplicate hides from the decoded value) is not
// shown at all.
func (a *upstream) result(resp *http.Response, b []byte, token string) *mcp.CallToolResult {
	long := len(b) > a.maxResult
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := fmt.Sprintf("the %s API answered %s", a.name, outbound.Answered(resp.StatusCode))
		if e := answer.ErrorExcerpt(b, token); e != "" {
			msg += ": " + e
		}
		return failure(errors.New(msg))
	}
	if len(b) == 0 {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: outbound.Status(resp.StatusCode)}}}
	}
	if long {
		text := answer.Blank(strings.ToValidUTF8(string(b), "\uFFFD"), token)
		if answer.Echoes(text, token) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: answer.Echoed}}}
		}
		text = answer.TrimTokenPrefix(telemetry.Cut(text, a.maxResult), token)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{
			Text: text + fmt.Sprintf("\n…(cut: the answer is longer than %d bytes)", a.maxResult)}}}
	}
	text := answer.Blank(strings.ToValidUTF8(string(b), "\uFFFD"), token)
	res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
	echoed := answer.Echoes(text, token)
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && isJSON(mt) {
		var v any
		if json.Unmarshal(b, &v) == nil {
			// Strings decoded: an escaped token (\u0074ok…) is found too.
			var changed bool
			if v, changed = answer.BlankValue(v, token); changed || echoed {
				clean, err := json.Marshal(v)
				if err != nil {
					return failure(fmt.Errorf("the %s API's answer could not be cleaned: %w", a.name, err))
				}
				res.Content = []mcp.Content{&mcp.TextContent{Text: string(clean)}}
				echoed = false
			}
			if obj, ok := v.(map[string]any); ok && obj != nil {
				res.StructuredContent = obj
			}
		}
	}
	if echoed {
		res.Content = []mcp.Content{&mcp.TextContent{Text: answer.Echoed}}
	}
	return res
}

func failure(err error) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}
}

// idempotencyHeader is the header an operation declares to make a write
// land once when it is sent again.
const idempotencyHeader = "Idempotency-Key"

// idempotent gives a POST or PATCH whose operation declares an
// Idempotency-Key header, and whose arguments set none, a key of its own:
// derived from the tool call's key (its session and JSON-RPC id, which the
// client keeps when it sends the call again), the operation and the
// arguments, so that a retried call lands once and any other call is new.
// Outside a session there is no such key, and none is sent.
func (t *operationTool) idempotent(ctx context.Context, hr *http.Request, args []byte) {
	if (t.method != http.MethodPost && t.method != http.MethodPatch) || hr.Header.Get(idempotencyHeader) != "" {
		return
	}
	declared := slices.ContainsFunc(t.params, func(p *param) bool {
		return p.in == "header" && strings.EqualFold(p.name, idempotencyHeader)
	})
	key := tools.CallKey(ctx)
	if !declared || key == "" {
		return
	}
	sum := sha256.Sum256([]byte(key + "\x00" + t.api.name + "\x00" + t.operation + "\x00" + string(args)))
	hr.Header.Set(idempotencyHeader, "pingmcp-"+base64.RawURLEncoding.EncodeToString(sum[:18]))
}

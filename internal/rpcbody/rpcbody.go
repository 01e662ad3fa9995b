// Package rpcbody is the one reader of JSON-RPC request bodies, shared by
// the edge and the actors: the edge reads a POST body once, refuses what the
// go-sdk would read differently, routes by what it read, and forwards that
// reading (a [Body]) with the bytes, so that the actor checks scopes,
// journals ids and audits tool calls from the same reading, never parsing
// the body again. Serving the MCP protocol is left to the go-sdk handler,
// which decodes the body itself.
package rpcbody

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	sdkjson "github.com/segmentio/encoding/json"

	"github.com/pingmcp/pingmcp/internal/rpcerr"
)

// Kind is what a JSON-RPC message is.
type Kind uint8

const (
	Request      Kind = iota + 1 // a method and an id: answered
	Notification                 // a method, no id
	Response                     // no method: an answer to a server's request
)

// Message is one JSON-RPC message of a body.
type Message struct {
	Kind   Kind
	Method string
	// ID is the id as the go-sdk writes it in its answer: a JSON string, or
	// an integer. Nil for a notification.
	ID json.RawMessage
	// Tool is params.name of a tools/call.
	Tool string
	// ArgsStart and ArgsEnd delimit params.arguments in the body (both 0
	// when absent): a tools/call's arguments are body[ArgsStart:ArgsEnd].
	ArgsStart, ArgsEnd int
	// ParamsBytes is the size of params as sent.
	ParamsBytes int
	// ProtocolVersion is params._meta["io.modelcontextprotocol/protocolVersion"]
	// when it is a string: it marks the stateless protocol (2026-07-28).
	ProtocolVersion string
	// Traceparent and Tracestate are params._meta's trace context.
	Traceparent, Tracestate string
}

// Body is the reading of one request body: a single message, or a batch.
type Body struct {
	Batch    bool
	Messages []Message
}

// Error is a body the edge refuses, with the JSON-RPC error code of its
// answer: [rpcerr.ParseError] for what is not JSON, [rpcerr.InvalidRequest]
// for JSON that is not a request the go-sdk would read as sent.
type Error struct {
	Code int
	Msg  string
	// Limit names the bound the body went beyond, when that is why it is
	// refused: "batch" (more messages than ReadAtMost allowed; the reading
	// stopped at the one beyond) or "members" (an object of more than
	// MaxMembers members); Max is that bound.
	Limit string
	Max   int
}

func (e *Error) Error() string { return e.Msg }

// MaxExactID is the largest integer id (in magnitude) the go-sdk answers
// under the same id: it reads ids through float64.
const MaxExactID = 1 << 53

// Strictness: the SDK reads keys case-sensitively, and a key that repeats
// could be read as its first or its last value. A body where another reader
// could see another method, id or tool than the SDK will — a key twice, or a
// key differing from a known one only in case — is refused, so that no scope
// check, limit or audit record can be read around.
var (
	messageKeys = []string{"jsonrpc", "id", "method", "params", "result", "error"}
	paramsKeys  = []string{"name", "arguments", "_meta"}
)

// Read reads a request body: one JSON-RPC message, or a non-empty batch of
// them. A body it returns an error for must not be served.
func Read(body []byte) (*Body, error) { return ReadAtMost(body, 0) }

// ReadAtMost is Read refusing a batch of more than maxMessages messages
// (no bound when zero) as soon as it meets the one beyond, so that the cost
// of reading a body the edge refuses does not grow with what follows.
//
// It reads the body in one pass over its bytes, refusing what
// encoding/json would (the same grammar, nesting depth and error classes),
// without building tokens for what it only skips: the arguments of a tool
// call, the capabilities of an initialize, whatever else a message holds.
func ReadAtMost(body []byte, maxMessages int) (*Body, error) {
	r := &reader{b: body}
	b := &Body{}
	switch c := r.next(); c {
	case '[':
		r.pos++
		b.Batch = true
		for {
			c := r.next()
			if c == eof || c == ']' || c == '}' {
				break
			}
			if maxMessages > 0 && len(b.Messages) == maxMessages {
				return nil, &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("a batch holds at most %d messages (--max-batch)", maxMessages), Limit: "batch", Max: maxMessages}
			}
			if len(b.Messages) > 0 {
				if c != ',' {
					return nil, r.syntax("after array element")
				}
				r.pos++
			}
			m, err := r.message()
			if err != nil {
				return nil, err
			}
			b.Messages = append(b.Messages, m)
		}
		if r.next() != ']' {
			return nil, r.syntax("looking for the end of the batch")
		}
		r.pos++
		if len(b.Messages) == 0 {
			return nil, &Error{Code: rpcerr.InvalidRequest, Msg: "empty batch"}
		}
	case '{':
		r.pos++
		m, err := r.object()
		if err != nil {
			return nil, err
		}
		b.Messages = []Message{m}
	default:
		if _, _, err := r.value(); err != nil {
			return nil, err
		}
		return nil, &Error{Code: rpcerr.InvalidRequest, Msg: "a request body is a JSON-RPC message (an object) or a batch of them (an array)"}
	}
	if r.next() != eof {
		return nil, &Error{Code: rpcerr.ParseError, Msg: "data after the JSON-RPC message"}
	}
	if err := b.distinctIDs(); err != nil {
		return nil, err
	}
	return b, nil
}

// distinctIDs refuses a batch two of whose requests have the same id: the
// go-sdk keeps one request of an id and drops the others, unanswered, and
// an answer could not say which it is for.
func (b *Body) distinctIDs() error {
	if !b.Batch || b.Requests() < 2 {
		return nil
	}
	seen := make(map[string]bool, len(b.Messages))
	for _, id := range b.IDs() {
		if seen[string(id)] {
			return &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("the requests of a batch need distinct ids: %.64s is repeated", id)}
		}
		seen[string(id)] = true
	}
	return nil
}

// reader walks a body's bytes: pos is the next byte to read.
type reader struct {
	b   []byte
	pos int
}

func parseError(err error) *Error {
	return &Error{Code: rpcerr.ParseError, Msg: fmt.Sprintf("not JSON: %v", err)}
}

// eof is what next returns at the end of the body.
const eof = -1

// maxDepth is how deeply a value may nest (encoding/json's bound).
const maxDepth = 10000

// next skips white space and returns the byte at pos (not consumed), or
// eof.
func (r *reader) next() int {
	for r.pos < len(r.b) {
		switch c := r.b[r.pos]; c {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return int(c)
		}
	}
	return eof
}

// syntax is a ParseError at pos.
func (r *reader) syntax(context string) *Error {
	if r.pos >= len(r.b) {
		return &Error{Code: rpcerr.ParseError, Msg: "not JSON: unexpected end of input"}
	}
	return &Error{Code: rpcerr.ParseError, Msg: fmt.Sprintf("not JSON: invalid character %q %s (offset %d)", r.b[r.pos], context, r.pos)}
}

// message reads one element of a batch.
func (r *reader) message() (Message, error) {
	switch r.next() {
	case '{':
		r.pos++
		return r.object()
	case '[':
		// A refused body is not read on.
	default:
		if _, _, err := r.value(); err != nil {
			return Message{}, err
		}
	}
	return Message{}, &Error{Code: rpcerr.InvalidRequest, Msg: "a batch element is not a JSON-RPC message (an object)"}
}

// members reads the members of an object whose '{' was read, calling
// member with each key (known: keys another may not differ from only in
// case) and the key's end, the reader at the value's ':'; member must read
// the value. It reads the closing '}'.
func (r *reader) members(known []string, member func(key string, keyEnd int) error) error {
	var seen keySet
	for first := true; ; first = false {
		c := r.next()
		if c == '}' {
			r.pos++
			return nil
		}
		if !first {
			if c != ',' {
				return r.syntax("after object key:value pair")
			}
			r.pos++
			c = r.next()
		}
		if c != '"' {
			return r.syntax("looking for beginning of object key string")
		}
		raw, plain, err := r.str()
		if err != nil {
			return err
		}
		key := text(raw, plain)
		if err := seen.add(key, known); err != nil {
			return err
		}
		keyEnd := r.pos
		if r.next() != ':' {
			return r.syntax("after object key")
		}
		r.pos++
		if err := member(key, keyEnd); err != nil {
			return err
		}
	}
}

// object reads a message whose '{' was read.
func (r *reader) object() (Message, error) {
	var m Message
	hasMethod, hasID, nullID, hasVersion := false, false, false, false
	var answer responseMembers
	err := r.members(messageKeys, func(key string, keyEnd int) error {
		switch key {
		case "jsonrpc":
			v, isString, err := r.stringValue()
			if err != nil {
				return err
			}
			if !isString || v != "2.0" {
				return &Error{Code: rpcerr.InvalidRequest, Msg: `"jsonrpc" must be "2.0"`}
			}
			hasVersion = true
		case "id":
			start, end, err := r.value()
			if err != nil {
				return err
			}
			if m.ID, err = canonicalID(r.b[start:end]); err != nil {
				return err
			}
			hasID, nullID = m.ID != nil, m.ID == nil
		case "method":
			null := r.next() == 'n'
			v, isString, err := r.stringValue()
			if err != nil {
				return err
			}
			if !isString && !null { // null: no method
				return &Error{Code: rpcerr.InvalidRequest, Msg: `"method" must be a string`}
			}
			m.Method, hasMethod = v, true
		case "params":
			return r.params(&m, keyEnd)
		default:
			start, end, err := r.value()
			if key == "error" && err == nil && string(r.b[start:end]) == "null" {
				// "error": null beside a result is no error: the go-sdk
				// reads it so, and lenient peers send it.
				answer.errorNull = true
			} else {
				answer.note(key)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	err = m.classify(hasVersion, hasMethod, hasID, nullID, answer)
	return m, err
}

// responseMembers says which of a response's members a message has.
type responseMembers struct{ result, error, errorNull bool }

func (a *responseMembers) note(key string) {
	switch key {
	case "result":
		a.result = true
	case "error":
		a.error = true
	}
}

// classify sets the message's kind from what it holds, or refuses it; a
// tool name and arguments are kept for tools/call alone.
func (m *Message) classify(hasVersion, hasMethod, hasID, nullID bool, answer responseMembers) error {
	if !hasVersion {
		return &Error{Code: rpcerr.InvalidRequest, Msg: `"jsonrpc" must be "2.0"`}
	}
	switch {
	case hasMethod && (answer.result || answer.error || answer.errorNull):
		return &Error{Code: rpcerr.InvalidRequest, Msg: `a request or notification has no "result" or "error"`}
	case !hasMethod && hasID && answer.result == answer.error:
		// JSON-RPC 2.0 §5: a response has one of them, never both.
		return &Error{Code: rpcerr.InvalidRequest, Msg: `a response has either "result" or "error"`}
	case hasMethod && nullID:
		// JSON-RPC's request with a null id, which MCP forbids; the go-sdk
		// would take it for a notification and refuse it in plain text.
		return errNullID
	case hasMethod && hasID:
		m.Kind = Request
	case hasMethod:
		m.Kind = Notification
	case hasID:
		m.Kind = Response
	default:
		return &Error{Code: rpcerr.InvalidRequest, Msg: "a JSON-RPC message needs a method or an id"}
	}
	if m.Method != "tools/call" {
		m.Tool, m.ArgsStart, m.ArgsEnd = "", 0, 0
	}
	return nil
}

// MaxMembers bounds the members of each object the reader walks key by key
// (a message, its params, their _meta): MCP defines a handful in each, and
// walking keys one by one costs far more per byte than skipping a value
// (arguments, capabilities), so that a body of a few MiB of keys would
// otherwise cost the edge a CPU-second.
const MaxMembers = 256

// keySet is the keys of one object read so far: it refuses a key that
// repeats, that differs from one of known only in case, or one beyond
// MaxMembers.
type keySet struct {
	few  [16]string // the first nf keys, on the reader's stack
	nf   int
	many map[string]bool
}

func (s *keySet) add(key string, known []string) error {
	if s.nf+len(s.many) >= MaxMembers {
		return &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("an object of a JSON-RPC message (the message, its params, their _meta) has at most %d members", MaxMembers), Limit: "members", Max: MaxMembers}
	}
	if s.many[key] || slices.Contains(s.few[:s.nf], key) {
		return &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("key %q appears twice", key)}
	}
	for _, k := range known {
		if key != k && strings.EqualFold(key, k) {
			return &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("key %q: did you mean %q?", key, k)}
		}
	}
	if s.many == nil && s.nf < len(s.few) {
		s.few[s.nf] = key
		s.nf++
		return nil
	}
	if s.many == nil {
		s.many = make(map[string]bool, 2*s.nf)
		for _, k := range s.few[:s.nf] {
			s.many[k] = true
		}
		s.nf = 0
	}
	s.many[key] = true
	return nil
}

// params reads a message's params, the reader at the value; keyEnd is
// where its key ended: the size counts the ':' and white space before the
// value. Of an object, it reads the tool name and arguments and the _meta
// this package reports.
func (r *reader) params(m *Message, keyEnd int) error {
	if r.next() != '{' {
		if _, _, err := r.value(); err != nil {
			return err
		}
		m.ParamsBytes = r.pos - keyEnd
		return nil
	}
	r.pos++
	err := r.members(paramsKeys, func(key string, _ int) error {
		switch key {
		case "name":
			v, _, err := r.stringValue()
			m.Tool = v
			return err
		case "arguments":
			var err error
			m.ArgsStart, m.ArgsEnd, err = r.value()
			return err
		case "_meta":
			return r.meta(m)
		}
		_, _, err := r.value()
		return err
	})
	if err != nil {
		return err
	}
	m.ParamsBytes = r.pos - keyEnd
	return nil
}

// meta reads params._meta: the protocol version and trace context. The
// whole value is read first (a body that is not JSON is refused as such);
// of an object, a key twice is refused like anywhere else this package
// reads (the SDK reads _meta into a map).
func (r *reader) meta(m *Message) error {
	start, end, err := r.value()
	if err != nil || r.b[start] != '{' {
		return err
	}
	sub := &reader{b: r.b[:end], pos: start + 1}
	return sub.members(nil, func(key string, _ int) error {
		if key != "io.modelcontextprotocol/protocolVersion" && key != "traceparent" && key != "tracestate" {
			_, _, err := sub.value()
			return err
		}
		v, _, err := sub.stringValue()
		switch key {
		case "io.modelcontextprotocol/protocolVersion":
			m.ProtocolVersion = v
		case "traceparent":
			m.Traceparent = v
		default:
			m.Tracestate = v
		}
		return err
	})
}

// stringValue reads a value: its text if it is a string.
func (r *reader) stringValue() (string, bool, error) {
	if r.next() != '"' {
		_, _, err := r.value()
		return "", false, err
	}
	raw, plain, err := r.str()
	if err != nil {
		return "", false, err
	}
	return text(raw, plain), true, nil
}

// text is what the string token raw (quotes included) says: plain (no
// escape, nothing but ASCII) is as written; the rest as encoding/json reads
// it (invalid UTF-8 becomes U+FFFD).
func text(raw []byte, plain bool) string {
	if plain {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	json.Unmarshal(raw, &s)
	return s
}

// str reads the string starting at pos (its '"') and returns its token,
// and whether it holds no escape and nothing but ASCII.
func (r *reader) str() (raw []byte, plain bool, err error) {
	start := r.pos
	plain = true
	for i := start + 1; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			r.pos = i + 1
			return r.b[start:r.pos], plain, nil
		case c == '\\':
			plain = false
			i++
			if i >= len(r.b) {
				break
			}
			switch r.b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for j := 1; j <= 4; j++ {
					if i+j >= len(r.b) || !isHex(r.b[i+j]) {
						r.pos = min(i+j, len(r.b))
						return nil, false, r.syntax("in \\u hexadecimal character escape")
					}
				}
				i += 4
			default:
				r.pos = i
				return nil, false, r.syntax("in string escape code")
			}
		case c < 0x20:
			r.pos = i
			return nil, false, r.syntax("in string literal")
		case c >= 0x80:
			plain = false
		}
	}
	r.pos = len(r.b)
	return nil, false, r.syntax("")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// value reads the value at pos (after white space) and returns where it
// starts and ends: any JSON value, nesting at most maxDepth deep.
func (r *reader) value() (start, end int, err error) {
	c := r.next()
	start = r.pos
	// open holds, for each container the value is inside, whether it is
	// an object.
	var open []bool
	for {
		// A value starts at pos.
		switch c {
		case '{', '[':
			if len(open) == maxDepth {
				return 0, 0, &Error{Code: rpcerr.ParseError, Msg: fmt.Sprintf("not JSON: exceeded max depth (offset %d)", r.pos)}
			}
			open = append(open, c == '{')
			r.pos++
			c = r.next()
			if c == '}' && open[len(open)-1] || c == ']' && !open[len(open)-1] {
				r.pos++
				open = open[:len(open)-1]
				break
			}
			if open[len(open)-1] {
				if err := r.key(c); err != nil {
					return 0, 0, err
				}
				c = r.next()
			}
			continue
		case '"':
			if _, _, err := r.str(); err != nil {
				return 0, 0, err
			}
		case 't':
			if err := r.literal("true"); err != nil {
				return 0, 0, err
			}
		case 'f':
			if err := r.literal("false"); err != nil {
				return 0, 0, err
			}
		case 'n':
			if err := r.literal("null"); err != nil {
				return 0, 0, err
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return 0, 0, r.syntax("looking for beginning of value")
			}
			if err := r.number(); err != nil {
				return 0, 0, err
			}
		}
		// A value ended: close what it ends, then on to the next.
		for {
			if len(open) == 0 {
				return start, r.pos, nil
			}
			c = r.next()
			obj := open[len(open)-1]
			if c == '}' && obj || c == ']' && !obj {
				r.pos++
				open = open[:len(open)-1]
				continue
			}
			if c != ',' {
				if obj {
					return 0, 0, r.syntax("after object key:value pair")
				}
				return 0, 0, r.syntax("after array element")
			}
			r.pos++
			c = r.next()
			if obj {
				if err := r.key(c); err != nil {
					return 0, 0, err
				}
				c = r.next()
			}
			break
		}
	}
}

// key reads an object's key and its ':', c the byte at pos.
func (r *reader) key(c int) error {
	if c != '"' {
		return r.syntax("looking for beginning of object key string")
	}
	if _, _, err := r.str(); err != nil {
		return err
	}
	if r.next() != ':' {
		return r.syntax("after object key")
	}
	r.pos++
	return nil
}

// literal reads the literal word at pos.
func (r *reader) literal(word string) error {
	for i := range len(word) {
		if r.pos >= len(r.b) || r.b[r.pos] != word[i] {
			return r.syntax("in literal " + word)
		}
		r.pos++
	}
	return nil
}

// number reads the number at pos: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *reader) number() error {
	digits := func() int {
		n := 0
		for r.pos < len(r.b) && '0' <= r.b[r.pos] && r.b[r.pos] <= '9' {
			r.pos++
			n++
		}
		return n
	}
	if r.b[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(r.b) && r.b[r.pos] == '0':
		r.pos++
	case digits() == 0:
		return r.syntax("in numeric literal")
	}
	if r.pos < len(r.b) && r.b[r.pos] == '.' {
		r.pos++
		if digits() == 0 {
			return r.syntax("after decimal point in numeric literal")
		}
	}
	if r.pos < len(r.b) && (r.b[r.pos] == 'e' || r.b[r.pos] == 'E') {
		r.pos++
		if r.pos < len(r.b) && (r.b[r.pos] == '+' || r.b[r.pos] == '-') {
			r.pos++
		}
		if digits() == 0 {
			return r.syntax("in exponent of numeric literal")
		}
	}
	return nil
}

// errNullID refuses a request whose id is null.
var errNullID = &Error{Code: rpcerr.InvalidRequest, Msg: "an MCP request's id must be a string or an integer, not null"}

// MaxIDBytes bounds a string id, as JSON text: an id is kept while its
// request runs (the journal of requests in flight, in Redis, which a
// session's --events-max-bytes does not count) and written in its answer,
// its audit record and its logs; clients use numbers, UUIDs and the like.
const MaxIDBytes = 256

// errIDLength refuses a string id longer than MaxIDBytes.
var errIDLength = &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("a JSON-RPC id may be at most %d bytes long", MaxIDBytes)}

// errID refuses an id the SDK would answer under another one.
var errID = &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("a JSON-RPC id must be a string or an integer of magnitude at most %d (2^53)", int64(MaxExactID))}

// canonicalID returns an id as the SDK writes it back: a string, or an
// integer written as one (the SDK reads ids through float64: 1.5 would be
// answered as 1, and 2^53+1 as 2^53). null is no id (a notification).
func canonicalID(raw json.RawMessage) (json.RawMessage, error) {
	switch {
	case string(raw) == "null":
		return nil, nil
	case raw[0] == '"':
		if !utf8.Valid(raw) {
			return nil, &Error{Code: rpcerr.InvalidRequest, Msg: "a JSON-RPC id must be valid UTF-8"}
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, parseError(err)
		}
		b, _ := json.Marshal(s)
		if len(b) > MaxIDBytes {
			return nil, errIDLength
		}
		return b, nil
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n > MaxExactID || n < -MaxExactID {
			return nil, errID
		}
		return strconv.AppendInt(nil, n, 10), nil
	}
	return nil, errID
}

// Requests counts the messages a server answers.
func (b *Body) Requests() int {
	n := 0
	for _, m := range b.Messages {
		if m.Kind == Request {
			n++
		}
	}
	return n
}

// IDs are the ids of the body's requests, in order.
func (b *Body) IDs() []json.RawMessage {
	if b == nil {
		return nil
	}
	var ids []json.RawMessage
	for _, m := range b.Messages {
		if m.Kind == Request {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// FirstID is the id of the body's first request, or null: the id of an
// error answering the whole body.
func (b *Body) FirstID() json.RawMessage {
	if b != nil {
		for _, m := range b.Messages {
			if m.Kind == Request {
				return m.ID
			}
		}
	}
	return json.RawMessage("null")
}

// Initialize is the body's initialize request (of a batch holding several,
// the one with the largest params), or nil.
func (b *Body) Initialize() *Message {
	if b == nil {
		return nil
	}
	var init *Message
	for i, m := range b.Messages {
		if m.Method == "initialize" && (init == nil || m.ParamsBytes > init.ParamsBytes) {
			init = &b.Messages[i]
		}
	}
	return init
}

// Listen is the id of the body's subscriptions/listen request when the
// body is that one request (2026-07-28, SEP-2575: its stream lasts as long
// as its client keeps it, or until the server ends the subscription), or
// nil.
func (b *Body) Listen() json.RawMessage {
	if b == nil || b.Batch || len(b.Messages) != 1 {
		return nil
	}
	if m := b.Messages[0]; m.Kind == Request && m.Method == "subscriptions/listen" {
		return m.ID
	}
	return nil
}

// First is the body's first message with a method (a request or a
// notification), or nil: what names a request in traces and metrics.
func (b *Body) First() *Message {
	if b == nil {
		return nil
	}
	for i, m := range b.Messages {
		if m.Kind != Response {
			return &b.Messages[i]
		}
	}
	return nil
}

// DecodeAsSDK decodes b into v as the go-sdk decodes a message and its
// params (segmentio/encoding): an object's keys matched to field names
// exactly (a key in another case is a field it does not know, where
// encoding/json would take it), the last of a key given twice. What pingmcp
// checks or counts of what the go-sdk acts on is read this way, so that the
// two never disagree. A value of another JSON type than v's field fails
// with a *json.UnmarshalTypeError (encoding/json's).
func DecodeAsSDK(b []byte, v any) error {
	_, err := sdkjson.Parse(b, v, sdkjson.DontMatchCaseInsensitiveStructFields)
	return err
}

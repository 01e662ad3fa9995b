// Package rpcbody is the one reader of JSON-RPC request bodies, shared by
// the edge and the actors: the edge reads a POST body once, refuses what the
// go-sdk would read differently, routes by what it read, and forwards that
// reading (a [Body]) with the bytes, so that the actor checks scopes,
// journals ids and audits tool calls from the same reading, never parsing
// the body again. Serving the MCP protocol is left to the go-sdk handler,
// which decodes the body itself.
package rpcbody

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pingmcp/pingmcp/internal/rpcerr"
)

// Kind is what a JSON-RPC message is.
type Kind uint8

const (
	Request      Kind = iota + 1 // a method and an id: answered
	Notification                 // a method, no id (or a null one, as the SDK reads it)
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
func ReadAtMost(body []byte, maxMessages int) (*Body, error) {
	r := &reader{dec: json.NewDecoder(bytes.NewReader(body))}
	r.dec.UseNumber()
	tok, err := r.dec.Token()
	if err != nil {
		return nil, parseError(err)
	}
	b := &Body{}
	switch tok {
	case json.Delim('['):
		b.Batch = true
		for r.dec.More() {
			if maxMessages > 0 && len(b.Messages) == maxMessages {
				return nil, &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("a batch holds at most %d messages (--max-batch)", maxMessages), Limit: "batch", Max: maxMessages}
			}
			m, err := r.message()
			if err != nil {
				return nil, err
			}
			b.Messages = append(b.Messages, m)
		}
		if _, err := r.dec.Token(); err != nil { // ]
			return nil, parseError(err)
		}
		if len(b.Messages) == 0 {
			return nil, &Error{Code: rpcerr.InvalidRequest, Msg: "empty batch"}
		}
	case json.Delim('{'):
		m, err := r.object()
		if err != nil {
			return nil, err
		}
		b.Messages = []Message{m}
	default:
		return nil, &Error{Code: rpcerr.InvalidRequest, Msg: "a request body is a JSON-RPC message (an object) or a batch of them (an array)"}
	}
	if _, err := r.dec.Token(); err != io.EOF {
		return nil, &Error{Code: rpcerr.ParseError, Msg: "data after the JSON-RPC message"}
	}
	return b, nil
}

type reader struct{ dec *json.Decoder }

func parseError(err error) *Error {
	return &Error{Code: rpcerr.ParseError, Msg: fmt.Sprintf("not JSON: %v", err)}
}

// message reads one element of a batch.
func (r *reader) message() (Message, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return Message{}, parseError(err)
	}
	if tok != json.Delim('{') {
		if d, ok := tok.(json.Delim); ok {
			r.skipRest(d)
		}
		return Message{}, &Error{Code: rpcerr.InvalidRequest, Msg: "a batch element is not a JSON-RPC message (an object)"}
	}
	return r.object()
}

// skipRest consumes the rest of an array or object whose opening delimiter
// was read (only to report the right error: a refused body is not read on).
func (r *reader) skipRest(d json.Delim) {
	for depth := 1; depth > 0; {
		tok, err := r.dec.Token()
		if err != nil {
			return
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

// object reads a message whose '{' was read.
func (r *reader) object() (Message, error) {
	var m Message
	seen := map[string]bool{}
	hasMethod, hasID, hasVersion := false, false, false
	for r.dec.More() {
		key, err := r.key(seen, messageKeys)
		if err != nil {
			return m, err
		}
		switch key {
		case "jsonrpc":
			var v any
			if err := r.dec.Decode(&v); err != nil {
				return m, parseError(err)
			}
			if v != "2.0" {
				return m, &Error{Code: rpcerr.InvalidRequest, Msg: `"jsonrpc" must be "2.0"`}
			}
			hasVersion = true
		case "id":
			var raw json.RawMessage
			if err := r.dec.Decode(&raw); err != nil {
				return m, parseError(err)
			}
			if m.ID, err = canonicalID(raw); err != nil {
				return m, err
			}
			hasID = m.ID != nil
		case "method":
			var v any
			if err := r.dec.Decode(&v); err != nil {
				return m, parseError(err)
			}
			s, ok := v.(string)
			if !ok && v != nil {
				return m, &Error{Code: rpcerr.InvalidRequest, Msg: `"method" must be a string`}
			}
			m.Method, hasMethod = s, true
		case "params":
			if err := r.params(&m); err != nil {
				return m, err
			}
		default:
			if err := r.skip(); err != nil {
				return m, err
			}
		}
	}
	if _, err := r.dec.Token(); err != nil { // }
		return m, parseError(err)
	}
	if !hasVersion {
		return m, &Error{Code: rpcerr.InvalidRequest, Msg: `"jsonrpc" must be "2.0"`}
	}
	switch {
	case hasMethod && hasID:
		m.Kind = Request
	case hasMethod:
		m.Kind = Notification
	case hasID:
		m.Kind = Response
	default:
		return m, &Error{Code: rpcerr.InvalidRequest, Msg: "a JSON-RPC message needs a method or an id"}
	}
	if m.Method != "tools/call" {
		m.Tool, m.ArgsStart, m.ArgsEnd = "", 0, 0
	}
	return m, nil
}

// MaxMembers bounds the members of each object the reader walks key by key
// (a message, its params, their _meta): MCP defines a handful in each, and
// walking keys one by one costs far more per byte than skipping a value
// (arguments, capabilities), so that a body of a few MiB of keys would
// otherwise cost the edge a CPU-second.
const MaxMembers = 256

// key reads an object's next key, refusing one that repeats or that
// differs from one of known only in case, or one beyond MaxMembers.
func (r *reader) key(seen map[string]bool, known []string) (string, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return "", parseError(err)
	}
	key, _ := tok.(string)
	if len(seen) >= MaxMembers {
		return "", &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("an object of a JSON-RPC message (the message, its params, their _meta) has at most %d members", MaxMembers), Limit: "members", Max: MaxMembers}
	}
	if seen[key] {
		return "", &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("key %q appears twice", key)}
	}
	for _, k := range known {
		if key != k && strings.EqualFold(key, k) {
			return "", &Error{Code: rpcerr.InvalidRequest, Msg: fmt.Sprintf("key %q: did you mean %q?", key, k)}
		}
	}
	seen[key] = true
	return key, nil
}

// skip consumes the next value.
func (r *reader) skip() error {
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return parseError(err)
	}
	return nil
}

// params reads a message's params: its size; of an object, the tool name
// and arguments and the _meta this package reports.
func (r *reader) params(m *Message) error {
	// From the end of the key: the size counts the ':' and white space
	// before the value.
	before := r.dec.InputOffset()
	tok, err := r.dec.Token()
	if err != nil {
		return parseError(err)
	}
	if tok != json.Delim('{') {
		if d, ok := tok.(json.Delim); ok {
			r.skipRest(d)
		}
		m.ParamsBytes = int(r.dec.InputOffset() - before)
		return nil
	}
	seen := map[string]bool{}
	for r.dec.More() {
		key, err := r.key(seen, paramsKeys)
		if err != nil {
			return err
		}
		switch key {
		case "name":
			var v any
			if err := r.dec.Decode(&v); err != nil {
				return parseError(err)
			}
			m.Tool, _ = v.(string)
		case "arguments":
			var raw json.RawMessage
			if err := r.dec.Decode(&raw); err != nil {
				return parseError(err)
			}
			m.ArgsEnd = int(r.dec.InputOffset())
			m.ArgsStart = m.ArgsEnd - len(raw)
		case "_meta":
			if err := r.meta(m); err != nil {
				return err
			}
		default:
			if err := r.skip(); err != nil {
				return err
			}
		}
	}
	if _, err := r.dec.Token(); err != nil { // }
		return parseError(err)
	}
	m.ParamsBytes = int(r.dec.InputOffset() - before)
	return nil
}

// meta reads params._meta: the protocol version and trace context.
func (r *reader) meta(m *Message) error {
	var meta map[string]json.RawMessage
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return parseError(err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	// _meta is small and read by the SDK into a map: a key twice there is
	// refused like anywhere else this package reads.
	sub := &reader{dec: json.NewDecoder(bytes.NewReader(raw))}
	sub.dec.Token()
	seen := map[string]bool{}
	for sub.dec.More() {
		key, err := sub.key(seen, nil)
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := sub.dec.Decode(&v); err != nil {
			return parseError(err)
		}
		if meta == nil {
			meta = map[string]json.RawMessage{}
		}
		meta[key] = v
	}
	str := func(k string) string {
		var s string
		json.Unmarshal(meta[k], &s)
		return s
	}
	m.ProtocolVersion = str("io.modelcontextprotocol/protocolVersion")
	m.Traceparent, m.Tracestate = str("traceparent"), str("tracestate")
	return nil
}

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

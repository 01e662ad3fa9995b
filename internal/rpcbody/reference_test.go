package rpcbody

// The reader as it was built on encoding/json's Decoder, token by token:
// the reference FuzzReadAgreesWithDecoder holds the one-pass reader to.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/pingmcp/pingmcp/internal/rpcerr"
)

// ReadAtMost is Read refusing a batch of more than maxMessages messages
// (no bound when zero) as soon as it meets the one beyond, so that the cost
// of reading a body the edge refuses does not grow with what follows.
func decoderReadAtMost(body []byte, maxMessages int) (*Body, error) {
	r := &decReader{dec: json.NewDecoder(bytes.NewReader(body))}
	r.dec.UseNumber()
	tok, err := r.dec.Token()
	if err != nil {
		return nil, decParseError(err)
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
			return nil, decParseError(err)
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
	if err := b.distinctIDs(); err != nil {
		return nil, err
	}
	return b, nil
}

type decReader struct{ dec *json.Decoder }

func decParseError(err error) *Error {
	return &Error{Code: rpcerr.ParseError, Msg: fmt.Sprintf("not JSON: %v", err)}
}

// message reads one element of a batch.
func (r *decReader) message() (Message, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return Message{}, decParseError(err)
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
func (r *decReader) skipRest(d json.Delim) {
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
func (r *decReader) object() (Message, error) {
	var m Message
	seen := map[string]bool{}
	hasMethod, hasID, nullID, hasVersion := false, false, false, false
	var answer responseMembers
	for r.dec.More() {
		key, err := r.key(seen, messageKeys)
		if err != nil {
			return m, err
		}
		switch key {
		case "jsonrpc":
			var v any
			if err := r.dec.Decode(&v); err != nil {
				return m, decParseError(err)
			}
			if v != "2.0" {
				return m, &Error{Code: rpcerr.InvalidRequest, Msg: `"jsonrpc" must be "2.0"`}
			}
			hasVersion = true
		case "id":
			var raw json.RawMessage
			if err := r.dec.Decode(&raw); err != nil {
				return m, decParseError(err)
			}
			if m.ID, err = canonicalID(raw); err != nil {
				return m, err
			}
			hasID, nullID = m.ID != nil, m.ID == nil
		case "method":
			var v any
			if err := r.dec.Decode(&v); err != nil {
				return m, decParseError(err)
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
			answer.note(key)
			if err := r.skip(); err != nil {
				return m, err
			}
		}
	}
	if _, err := r.dec.Token(); err != nil { // }
		return m, decParseError(err)
	}
	err := m.classify(hasVersion, hasMethod, hasID, nullID, answer)
	return m, err
}

// key reads an object's next key, refusing one that repeats or that
// differs from one of known only in case, or one beyond MaxMembers.
func (r *decReader) key(seen map[string]bool, known []string) (string, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return "", decParseError(err)
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
func (r *decReader) skip() error {
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return decParseError(err)
	}
	return nil
}

// params reads a message's params: its size; of an object, the tool name
// and arguments and the _meta this package reports.
func (r *decReader) params(m *Message) error {
	// From the end of the key: the size counts the ':' and white space
	// before the value.
	before := r.dec.InputOffset()
	tok, err := r.dec.Token()
	if err != nil {
		return decParseError(err)
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
				return decParseError(err)
			}
			m.Tool, _ = v.(string)
		case "arguments":
			var raw json.RawMessage
			if err := r.dec.Decode(&raw); err != nil {
				return decParseError(err)
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
		return decParseError(err)
	}
	m.ParamsBytes = int(r.dec.InputOffset() - before)
	return nil
}

// meta reads params._meta: the protocol version and trace context.
func (r *decReader) meta(m *Message) error {
	var meta map[string]json.RawMessage
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return decParseError(err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	// _meta is small and read by the SDK into a map: a key twice there is
	// refused like anywhere else this package reads.
	sub := &decReader{dec: json.NewDecoder(bytes.NewReader(raw))}
	sub.dec.Token()
	seen := map[string]bool{}
	for sub.dec.More() {
		key, err := sub.key(seen, nil)
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := sub.dec.Decode(&v); err != nil {
			return decParseError(err)
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

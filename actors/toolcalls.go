package actors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// toolCall is a tools/call found in a request body.
type toolCall struct {
	id   json.RawMessage
	name string
}

// toolCalls finds the tools/call requests of a JSON-RPC body (one message or
// a batch), reading keys exactly as the go-sdk does (case-sensitive). A body
// that another reader could take differently — a key that repeats, or that
// differs from method, params, name or id only in case — is an error, so that
// no scope check can be read around. Bodies that are not JSON are left to the
// SDK to refuse.
func toolCalls(body []byte) ([]toolCall, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var msgs []json.RawMessage
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if json.Unmarshal(trimmed, &msgs) != nil {
			return nil, nil
		}
	} else {
		msgs = []json.RawMessage{trimmed}
	}
	var calls []toolCall
	for _, m := range msgs {
		fields, err := exactFields(m, "jsonrpc", "id", "method", "params")
		if err != nil || fields == nil {
			return nil, err
		}
		var method string
		if json.Unmarshal(fields["method"], &method) != nil || method != "tools/call" {
			continue
		}
		params, err := exactFields(fields["params"], "name", "arguments", "_meta")
		if err != nil {
			return nil, err
		}
		var name string
		json.Unmarshal(params["name"], &name)
		calls = append(calls, toolCall{id: fields["id"], name: name})
	}
	return calls, nil
}

// exactFields returns the members of a JSON object by exact key, refusing a
// key that repeats or that matches one of known in another case. It returns
// nil, nil for anything that is not an object.
func exactFields(raw []byte, known ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, nil
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		for _, k := range known {
			if key != k && strings.EqualFold(key, k) {
				return nil, fmt.Errorf("key %q: did you mean %q?", key, k)
			}
		}
		out[key] = value
	}
	return out, nil
}

// requestIDs returns the ids of the requests (not notifications or
// responses) in a JSON-RPC body, one message or a batch, as the JSON the
// SDK writes them with: the ids its responses will carry.
func requestIDs(body []byte) []json.RawMessage {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var msgs []struct {
		ID     any    `json:"id"`
		Method string `json:"method"`
	}
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if json.Unmarshal(trimmed, &msgs) != nil {
			return nil
		}
	} else {
		msgs = msgs[:0:0]
		msgs = append(msgs, struct {
			ID     any    `json:"id"`
			Method string `json:"method"`
		}{})
		if json.Unmarshal(trimmed, &msgs[0]) != nil {
			return nil
		}
	}
	var ids []json.RawMessage
	for _, m := range msgs {
		if m.Method == "" || m.ID == nil {
			continue
		}
		if id := canonicalID(m.ID); id != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// canonicalID writes a decoded JSON-RPC id as the SDK does: a string, or
// an integer.
func canonicalID(v any) json.RawMessage {
	switch id := v.(type) {
	case string:
		b, _ := json.Marshal(id)
		return b
	case float64:
		b, _ := json.Marshal(int64(id))
		return b
	}
	return nil
}

// firstID is the id of a body's first request, or null.
func firstID(body []byte) json.RawMessage {
	if ids := requestIDs(body); len(ids) > 0 {
		return ids[0]
	}
	return json.RawMessage("null")
}

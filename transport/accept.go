package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// accepts says which of the two answers MCP gives a POST (a JSON body, an
// event stream) a request's Accept values take, as the go-sdk reads them
// (a media type's parameters ignored, application/* and text/* and */*
// counted). No Accept at all takes either (RFC 9110 §12.5.1).
//
// MCP says a client lists both; some do not. A client that takes JSON
// alone (Claude Code's HTTP client was seen sending `Accept:
// application/json`) gets its answer as JSON (jsonAnswer), one that takes
// the event stream alone the event stream: both are what each asked for,
// where the go-sdk refuses them 400.
func accepts(values []string) (jsonOK, streamOK bool) {
	if len(values) == 0 {
		return true, true
	}
	for _, value := range values {
		for raw := range strings.SplitSeq(value, ",") {
			base, _, _ := strings.Cut(raw, ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				jsonOK = true
			case "text/event-stream", "text/*":
				streamOK = true
			case "*/*":
				jsonOK, streamOK = true, true
			}
		}
	}
	return jsonOK, streamOK
}

// acceptBoth is the Accept the actor is sent for a POST whose client takes
// one of the two answers, or did not say.
const acceptBoth = "application/json, text/event-stream"

// maxJSONAnswer bounds what the edge holds of an event stream it turns
// into a JSON answer: the answers the stream carries (its notifications
// are dropped as they come). An event stream needs no such bound: it is
// relayed event by event.
const maxJSONAnswer = 32 << 20

var errJSONAnswerTooLarge = errors.New("the answer is too large to be sent as JSON: accept text/event-stream")

// jsonAnswer reads the event stream that answers a POST whose client takes
// JSON alone, and keeps the JSON-RPC responses it carries: what the client
// is sent, as one JSON body, once the stream ends. The stream's
// notifications (progress, logging) have no place in a JSON answer and are
// dropped; a request of the server's (an elicitation, a sampling request)
// would wait for an answer from a client that cannot see it.
type jsonAnswer struct {
	pending []byte   // the part of an event read so far
	answers [][]byte // the responses' JSON, in the order they came
	size    int
}

// write reads the next bytes of the stream.
func (j *jsonAnswer) write(p []byte) error {
	j.pending = append(j.pending, p...)
	for {
		i := bytes.Index(j.pending, []byte("\n\n"))
		if i < 0 {
			break
		}
		j.event(j.pending[:i])
		j.pending = j.pending[i+2:]
	}
	if len(j.pending)+j.size > maxJSONAnswer {
		return errJSONAnswerTooLarge
	}
	if len(j.pending) == 0 {
		j.pending = nil // a slice that grew keeps its room
	}
	return nil
}

// event keeps the data of one event if it is a JSON-RPC response.
func (j *jsonAnswer) event(ev []byte) {
	var data []byte
	for line := range bytes.Lines(ev) {
		line = bytes.TrimRight(line, "\r\n")
		d, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		d = bytes.TrimPrefix(d, []byte(" "))
		if data != nil {
			data = append(data, '\n')
		}
		data = append(data, d...)
	}
	var msg struct {
		Method *string         `json:"method"`
		ID     json.RawMessage `json:"id"`
	}
	if len(data) == 0 || json.Unmarshal(data, &msg) != nil || msg.Method != nil || len(msg.ID) == 0 || string(msg.ID) == "null" {
		return
	}
	j.answers = append(j.answers, bytes.Clone(data))
	j.size += len(data)
}

// body is the JSON answer: the one response, or, for a batch, the array of
// them; false if the stream carried none.
func (j *jsonAnswer) body(batch bool) ([]byte, bool) {
	switch {
	case len(j.answers) == 0:
		return nil, false
	case !batch:
		return j.answers[0], true
	}
	return append(append([]byte("["), bytes.Join(j.answers, []byte(","))...), ']'), true
}

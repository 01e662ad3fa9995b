package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
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
// dropped; a request of the server's (an elicitation, a sampling request),
// which the client cannot see, is noted in asks, for the edge to refuse on
// the client's behalf (relayed.refuse), so that the call it came from goes
// on to its answer rather than wait for good.
type jsonAnswer struct {
	pending []byte   // the part of an event read so far
	answers [][]byte // the responses' JSON, in the order they came
	asks    []json.RawMessage
	size    int
	// lastID is the id of the last event read that had one (the go-sdk's
	// priming event the first): where the stream resumes (Last-Event-ID).
	lastID string
	// resumedFrom is the lastID the stream was last resumed from, stalled
	// how many times in a row it was, and resumed the stream that resumed
	// it last (relay's own, closed by closeResumed).
	resumedFrom string
	stalled     int
	resumed     []*cluster.Stream
	// retry is the reconnection time the stream last asked for (an SSE
	// retry field: the go-sdk's close event, sent when a tool closes the
	// stream for its client to come back later, SEP-1699), at most
	// maxResumeRetry; 0 when it asked none since the last resumption.
	retry time.Duration
	// committed says the status (200) went out, with white space ahead of
	// the answer (a keep-alive).
	committed bool
}

// commit sends the answer's status, 200, once.
func (j *jsonAnswer) commit(w http.ResponseWriter) {
	if !j.committed {
		j.committed = true
		w.Header().Del("Content-Length")
		w.WriteHeader(http.StatusOK)
	}
}

// fail answers with a JSON-RPC error for id instead of the answer: with
// status, or, once the status went out, as the JSON value after the white
// space (status 200). It returns the status sent.
func (j *jsonAnswer) fail(w http.ResponseWriter, id json.RawMessage, status int, err *rpcerr.Error) int {
	if !j.committed {
		writeError(w, status, id, err)
		return status
	}
	w.Write(err.Body(id))
	return http.StatusOK
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

// event keeps the data of one event if it is a JSON-RPC response, notes
// it if it is a request. Its data is the event's bytes as they are (a
// slice of pending, which write never writes over) when it has one data
// line, as the go-sdk writes it.
func (j *jsonAnswer) event(ev []byte) {
	var data []byte
	lines := 0
	for line := range bytes.Lines(ev) {
		line = bytes.TrimRight(line, "\r\n")
		if id, ok := bytes.CutPrefix(line, []byte("id:")); ok {
			j.lastID = string(bytes.TrimPrefix(id, []byte(" ")))
			continue
		}
		if r, ok := bytes.CutPrefix(line, []byte("retry:")); ok {
			if d, ok := reconnectionTime(bytes.TrimPrefix(r, []byte(" "))); ok {
				j.retry = d
			}
			continue
		}
		d, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		d = bytes.TrimPrefix(d, []byte(" "))
		switch lines++; lines {
		case 1:
			data = d[:len(d):len(d)]
		case 2:
			data = append(bytes.Clone(data), '\n')
			fallthrough
		default:
			if lines > 2 {
				data = append(data, '\n')
			}
			data = append(data, d...)
		}
	}
	var msg struct {
		Method *string         `json:"method"`
		ID     json.RawMessage `json:"id"`
	}
	if len(data) == 0 || json.Unmarshal(data, &msg) != nil || len(msg.ID) == 0 || string(msg.ID) == "null" {
		return
	}
	if msg.Method != nil {
		j.asks = append(j.asks, bytes.Clone(msg.ID))
		return
	}
	j.answers = append(j.answers, data)
	j.size += len(data)
}

// maxResumeRetry bounds the pause a stream's retry field asks of the edge
// before it resumes a JSON answer's stream: its client waits meanwhile.
const maxResumeRetry = 30 * time.Second

// reconnectionTime reads an SSE retry field's value: ASCII digits alone, a
// count of milliseconds (anything else is ignored, as the SSE standard
// says), at most maxResumeRetry.
func reconnectionTime(v []byte) (time.Duration, bool) {
	if len(v) == 0 {
		return 0, false
	}
	ms := int64(0)
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms = ms*10 + int64(c-'0'); ms > maxResumeRetry.Milliseconds() {
			return maxResumeRetry, true
		}
	}
	return time.Duration(ms) * time.Millisecond, true
}

// closeResumed lets go of the streams that resumed the answer's.
func (j *jsonAnswer) closeResumed() {
	for _, s := range j.resumed {
		s.Close()
	}
	j.resumed = nil
}

// takeAsks returns the server's requests noted since it was last called.
func (j *jsonAnswer) takeAsks() []json.RawMessage {
	asks := j.asks
	j.asks = nil
	return asks
}

// sessionGone says whether answer, a JSON-RPC response, is the error
// "session not found" (-32001).
func sessionGone(answer []byte) bool {
	if !bytes.Contains(answer, []byte(`"error"`)) {
		return false
	}
	var r struct {
		Error *struct{ Code int }
	}
	return json.Unmarshal(answer, &r) == nil && r.Error != nil && r.Error.Code == rpcerr.SessionNotFound
}

// writeTo writes the JSON answer to w: the one response, or, for a batch,
// the array of them.
func (j *jsonAnswer) writeTo(w io.Writer, batch bool) {
	if !batch {
		w.Write(j.answers[0])
		return
	}
	io.WriteString(w, "[")
	for i, a := range j.answers {
		if i > 0 {
			io.WriteString(w, ",")
		}
		w.Write(a)
	}
	io.WriteString(w, "]")
}

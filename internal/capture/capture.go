// Package capture is an http.ResponseWriter that keeps what an MCP handler
// answered, for a caller that runs the handler itself (a task's round, the
// replayed handshake of a rehydrated session), and reads the JSON-RPC
// response out of it.
package capture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// Recorder keeps a handler's status, headers and body.
type Recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{header: http.Header{}} }

func (r *Recorder) Header() http.Header { return r.header }

func (r *Recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *Recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *Recorder) Flush() {}

// Status is the status the handler wrote, 0 if it wrote nothing.
func (r *Recorder) Status() int { return r.status }

// Body is what the handler wrote.
func (r *Recorder) Body() []byte { return r.body.Bytes() }

// Outcome is the JSON-RPC response the answer carries: its result or error
// object; ok false when there is none (the handler wrote no JSON-RPC
// response: a transport error, or a request still unanswered when its
// handler returned). Of an SSE stream, it is the last event that is a
// response.
func (r *Recorder) Outcome() (result, rpcErr json.RawMessage, ok bool) {
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	parse := func(b []byte) bool {
		resp.Result, resp.Error = nil, nil
		return json.Unmarshal(b, &resp) == nil && (len(resp.Result) > 0 || len(resp.Error) > 0)
	}
	if strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		var found bool
		sc := bufio.NewScanner(bytes.NewReader(r.body.Bytes()))
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			if data, cut := strings.CutPrefix(sc.Text(), "data:"); cut && parse([]byte(strings.TrimSpace(data))) {
				result, rpcErr, found = resp.Result, resp.Error, true
			}
		}
		return result, rpcErr, found
	}
	if parse(r.body.Bytes()) {
		return resp.Result, resp.Error, true
	}
	return nil, nil, false
}

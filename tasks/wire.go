package tasks

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/state/taskstore"
)

// message is one JSON-RPC request as the layer reads it.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// common are the params the layer looks at on every method it serves.
type common struct {
	Meta   map[string]json.RawMessage `json:"_meta"`
	TaskID *string                    `json:"taskId"`
	Name   string                     `json:"name"`
}

const (
	metaProtocol     = "io.modelcontextprotocol/protocolVersion"
	metaCapabilities = "io.modelcontextprotocol/clientCapabilities"
)

// negotiated says whether the request's client capabilities (SEP-2575
// _meta) declare the extension: the session-level declaration of the
// stateless protocol and the per-request opt-in are the same member.
func (c *common) negotiated() bool {
	raw := c.Meta[metaCapabilities]
	if len(raw) == 0 {
		return false
	}
	var caps struct {
		Extensions map[string]json.RawMessage `json:"extensions"`
	}
	if json.Unmarshal(raw, &caps) != nil {
		return false
	}
	_, ok := caps.Extensions[Extension]
	return ok
}

// stateless says whether the request follows the 2026-07-28 protocol.
func (c *common) stateless() bool { return len(c.Meta[metaProtocol]) > 0 }

// task is the Task of SEP-2663 on the wire: the members a CreateTaskResult
// (resultType "task") and a tasks/get DetailedTask (resultType "complete",
// and result, error or inputRequests by status) share. No requestState:
// SEP-2663 removed it from the task wire.
type task struct {
	ResultType     string                     `json:"resultType,omitempty"` // none in notifications/tasks
	TaskID         string                     `json:"taskId"`
	Status         string                     `json:"status"`
	StatusMessage  string                     `json:"statusMessage,omitempty"`
	CreatedAt      string                     `json:"createdAt"`
	LastUpdatedAt  string                     `json:"lastUpdatedAt"`
	TTLMs          int64                      `json:"ttlMs"`
	PollIntervalMs int64                      `json:"pollIntervalMs,omitempty"`
	Result         json.RawMessage            `json:"result,omitempty"`
	Error          json.RawMessage            `json:"error,omitempty"`
	InputRequests  map[string]json.RawMessage `json:"inputRequests,omitempty"`
}

func wireTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// created is t's CreateTaskResult.
func created(t *taskstore.Task) task {
	return task{ResultType: "task", TaskID: t.ID, Status: t.Status, StatusMessage: t.StatusMessage,
		CreatedAt: wireTime(t.CreatedAt), LastUpdatedAt: wireTime(t.UpdatedAt),
		TTLMs: t.TTL.Milliseconds(), PollIntervalMs: t.PollInterval.Milliseconds()}
}

// detailed is t's DetailedTask, the answer to tasks/get.
func detailed(t *taskstore.Task) task {
	w := created(t)
	w.ResultType = "complete"
	switch t.Status {
	case "completed":
		w.Result = t.Result
	case "failed":
		w.Error = t.Error
	case "input_required":
		w.InputRequests = t.InputRequests
	}
	return w
}

// ack is the answer to tasks/update and tasks/cancel: no task envelope.
var ack = json.RawMessage(`{"resultType":"complete"}`)

// writeResult answers id with result.
func writeResult(w http.ResponseWriter, id json.RawMessage, result any) {
	b, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result"`
	}{"2.0", id, result})
	if err != nil {
		writeError(w, id, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "encode result: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}

// methodHeader refuses a request whose Mcp-Method header is missing or
// names another method than its body's: 2026-07-28 requires the header on
// every request (-32020, HTTP 400), as the go-sdk checks it for the
// methods it serves itself.
func methodHeader(r *http.Request, method string) *jsonrpc.Error {
	switch got := r.Header.Get("Mcp-Method"); got {
	case method:
		return nil
	case "":
		return &jsonrpc.Error{Code: mcp.CodeHeaderMismatch, Message: "missing required Mcp-Method header"}
	default:
		return &jsonrpc.Error{Code: mcp.CodeHeaderMismatch, Message: "Mcp-Method header " + quote(got) + " does not match the body's method " + quote(method)}
	}
}

// writeError answers id with e, with the HTTP status SEP-2575 gives its
// code on the 2026-07-28 protocol (SEP-2243's -32020 too is a 400).
func writeError(w http.ResponseWriter, id json.RawMessage, e *jsonrpc.Error) {
	status := http.StatusOK
	switch e.Code {
	case jsonrpc.CodeMethodNotFound:
		status = http.StatusNotFound
	case jsonrpc.CodeInvalidParams, mcp.CodeMissingRequiredClientCapabilities, mcp.CodeHeaderMismatch, mcp.CodeUnsupportedProtocolVersion:
		status = http.StatusBadRequest
	}
	writeErrorStatus(w, id, e, status)
}

func writeErrorStatus(w http.ResponseWriter, id json.RawMessage, e *jsonrpc.Error, status int) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *jsonrpc.Error  `json:"error"`
	}{"2.0", id, e})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeRefusal answers id with Authorize's refusal.
func writeRefusal(w http.ResponseWriter, id json.RawMessage, r *Refusal) {
	for k, vs := range r.Header {
		w.Header()[k] = vs
	}
	writeErrorStatus(w, id, r.Error, r.Status)
}

// errorObject is e as a task's inlined error.
func errorObject(code int64, msg string, data any) json.RawMessage {
	b, _ := json.Marshal(struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}{code, msg, data})
	return b
}

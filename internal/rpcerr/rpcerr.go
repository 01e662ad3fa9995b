// Package rpcerr is the one set of JSON-RPC errors pingmcp answers with
// itself, outside the go-sdk's handler: the edge's refusals (transport) and
// the session actor's (actors). Each code is built here, with its data, so
// that a client reads one meaning for each code whichever node or layer
// answered.
//
// Codes of the JSON-RPC 2.0 specification:
//
//   - [ParseError] (-32700): the body is not JSON. No data.
//   - [InvalidRequest] (-32600): the request is refused as sent (not a
//     request the go-sdk would read as sent, a header or method refused, a
//     credential or scope refused). When a size bound refused it, data is
//     [Data] with retryable false, limit (the bound's name) and max (its
//     value): see [OverLimit].
//   - [MethodNotFound] (-32601): a session's server has no such method
//     (the go-sdk answers it with a plain-text 400 on the session
//     protocols: see [UnknownMethod]). No data.
//   - [InvalidParams] (-32602): a method's params are refused (a log level
//     MCP does not define). No data.
//   - [InternalError] (-32603): no node could serve the request now. No data.
//
// Codes of the implementation-defined server error range (-32000 to -32099):
//
//   - [SessionNotFound] (-32001): the Mcp-Session-Id names no session this
//     server serves (HTTP 404): start a new session. No data.
//   - [Interrupted] (-32003): the activation serving the request ended
//     before answering it; the request may or may not have taken effect.
//     Data: retryable true.
//   - [Moved] (-32004): the request reached an activation a newer one
//     replaced, and ran there in part (HTTP 503, Retry-After); one of
//     which nothing ran is sent on to the newer one instead. Data:
//     retryable true.
//   - [HeaderMismatch] (-32020, MCP 2026-07-28's HeaderMismatchError): a
//     request metadata header (Mcp-Method, Mcp-Name, Mcp-Param-*) is
//     malformed (sent more than once, or with a character a header value
//     must not hold), or the Mcp-Protocol-Version header does not match the
//     protocol version the body's _meta names (HTTP 400). No data.
//   - [UnsupportedVersion] (-32022, MCP 2026-07-28's
//     UnsupportedProtocolVersionError): the MCP-Protocol-Version header
//     names a revision this server does not implement (HTTP 400). Data:
//     supported (the revisions it does, newest first) and requested.
//   - [Limited] (-32005): a limit refused the request. Data: limit (the
//     limit's name, as in the pingmcp_limited_requests_total metric), and
//     either retryable true with retryAfter (seconds, as the Retry-After
//     header: see [RetryLater]), or retryable false with size and max, for
//     what would exceed a bound however long the client waits (see
//     [TooLarge]).
package rpcerr

import (
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// The codes; the package doc says what each means and what data it carries.
const (
	ParseError     = -32700
	InvalidRequest = -32600
	MethodNotFound = -32601
	InvalidParams  = -32602
	InternalError  = -32603

	SessionNotFound = -32001
	Interrupted     = -32003
	Moved           = -32004
	Limited         = -32005

	HeaderMismatch     = -32020
	UnsupportedVersion = -32022
)

// Data is an error's data member. Retryable is always present; the others
// only when set. Its members are written in this order (alphabetical).
type Data struct {
	// Limit names the limit or bound that refused the request.
	Limit string `json:"limit,omitempty"`
	// Max is the bound's value.
	Max int `json:"max,omitempty"`
	// Requested is the protocol revision the request named.
	Requested string `json:"requested,omitempty"`
	// RetryAfter is how many seconds to wait before retrying, as the
	// Retry-After header says.
	RetryAfter int `json:"retryAfter,omitempty"`
	// Retryable says whether the same request may succeed if sent again.
	Retryable bool `json:"retryable"`
	// Size is the size that would exceed Max.
	Size int `json:"size,omitempty"`
	// Supported are the protocol revisions the server implements.
	Supported []string `json:"supported,omitempty"`
}

// Error is a JSON-RPC error object.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    *Data  `json:"data,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// New is an error without data.
func New(code int, msg string) *Error { return &Error{Code: code, Message: msg} }

// UnknownMethod is the error of a request for a method the server does
// not have.
func UnknownMethod(method string) *Error {
	b, _ := json.Marshal(method)
	return New(MethodNotFound, "method not found: "+string(b))
}

// NotFound is the error of a session this server does not serve.
func NotFound() *Error { return New(SessionNotFound, "session not found") }

// Interruption is the error of a request whose activation ended before
// answering it.
func Interruption() *Error {
	return &Error{Code: Interrupted, Message: "request interrupted: the node serving this session stopped before answering; it may or may not have taken effect, retry if that is safe",
		Data: &Data{Retryable: true}}
}

// Replaced is the error of a request that reached an activation a newer one
// replaced.
func Replaced() *Error {
	return &Error{Code: Moved, Message: "session moved to another node; retry", Data: &Data{Retryable: true}}
}

// UnsupportedProtocolVersion is the error of a request naming a protocol
// revision, requested, that the server does not implement: it lists those
// it does, supported.
func UnsupportedProtocolVersion(requested string, supported []string) *Error {
	return &Error{Code: UnsupportedVersion, Message: "unsupported protocol version", Data: &Data{Requested: requested, Supported: supported}}
}

// RetryLater is the error of a request a limit refused for now: retry after
// retryAfter seconds.
func RetryLater(limit string, retryAfter int, msg string) *Error {
	return &Error{Code: Limited, Message: msg, Data: &Data{Retryable: true, RetryAfter: retryAfter, Limit: limit}}
}

// TooLarge is the error of a change refused because it would make what is
// stored size bytes, beyond max: not retryable.
func TooLarge(limit string, size, max int, msg string) *Error {
	return &Error{Code: Limited, Message: msg, Data: &Data{Limit: limit, Size: size, Max: max}}
}

// OverLimit is the error of a request body beyond a bound of its shape or
// size (max): invalid as sent, not retryable.
func OverLimit(limit string, max int, msg string) *Error {
	return &Error{Code: InvalidRequest, Message: msg, Data: &Data{Limit: limit, Max: max}}
}

// Body is Response as an HTTP body: one line, ending in a newline.
func (e *Error) Body(id json.RawMessage) []byte { return append(e.Response(id), '\n') }

// Response is the JSON-RPC response answering id (null when empty) with e,
// its members in the order jsonrpc, id, error (code, message, data).
func (e *Error) Response(id json.RawMessage) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *Error          `json:"error"`
	}{"2.0", id, e})
	return b
}

// SDK is e as a go-sdk method handler returns it, for the SDK to write in
// its answer.
func (e *Error) SDK() *jsonrpc.Error {
	je := &jsonrpc.Error{Code: int64(e.Code), Message: e.Message}
	if e.Data != nil {
		je.Data, _ = json.Marshal(e.Data)
	}
	return je
}

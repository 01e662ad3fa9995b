// Package sse is what pingmcp writes into an MCP event stream
// (text/event-stream) of its own, beside the go-sdk's events: a JSON-RPC
// message as one event, the retry hint that ends a stream cut short, and
// the end of a 2026-07-28 subscriptions/listen on the server's side.
package sse

import (
	"bytes"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// RetryHint ends a stream pingmcp cuts (a drain, a token's expiry, a
// silent path to its actor): the client reconnects after this long, and a
// session's client resumes with Last-Event-ID.
const RetryHint = "retry: 500\n\n"

// Message is the JSON-RPC message msg as one SSE event.
func Message(msg []byte) []byte {
	b := make([]byte, 0, len(msg)+24)
	b = append(b, "event: message\ndata: "...)
	b = append(b, msg...)
	return append(b, "\n\n"...)
}

// ListenEnded is how the server ends the subscriptions/listen whose
// request id is id, as two events: notifications/cancelled naming it (the
// 2026-07-28 cancellation utility: a server MUST send it when it tears a
// subscription down), then the listen's completion result (its
// subscriptions page, "Graceful Closure": the subscription ended on the
// server's side, not by a dropped connection). A client that still wants
// the notifications listens again.
func ListenEnded(id json.RawMessage, reason string) []byte {
	return append(Message(ListenCancelled(id, reason)), Message(ListenClosed(id))...)
}

// ListenCancelled is the notifications/cancelled of ListenEnded. Like every
// notification on a listen's stream, it carries the listen's id in _meta
// (mcp.MetaKeySubscriptionID).
func ListenCancelled(id json.RawMessage, reason string) []byte {
	b := []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`)
	b = append(b, id...)
	b = append(b, `,"reason":`...)
	r, _ := json.Marshal(reason)
	b = append(b, r...)
	b = append(b, `,"_meta":{"`+mcp.MetaKeySubscriptionID+`":`...)
	b = append(b, id...)
	return append(b, "}}}"...)
}

// ListenClosed is the completion result answering the listen id: what the
// go-sdk answers a listen whose handler's context ended.
func ListenClosed(id json.RawMessage) []byte {
	b := []byte(`{"jsonrpc":"2.0","id":`)
	b = append(b, id...)
	b = append(b, `,"result":{"resultType":"complete","_meta":{"`+mcp.MetaKeySubscriptionID+`":`...)
	b = append(b, id...)
	return append(b, "}}}"...)
}

// listenAcknowledged is in the event that acknowledges a listen.
var listenAcknowledged = []byte(`"method":"notifications/subscriptions/acknowledged"`)

// AcknowledgesListen says whether the event (or events) p holds a listen's
// acknowledgement, the first message of its stream, which the server MUST
// send before any other: the subscription began. (A quote inside a JSON
// string is escaped, so the pattern matches only the method itself.)
func AcknowledgesListen(p []byte) bool { return bytes.Contains(p, listenAcknowledged) }

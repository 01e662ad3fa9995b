package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/metrics"
)

// DefaultEventsBuffer bounds the event writes a session holds while its
// store is unreachable, when Config leaves EventsBuffer zero.
const DefaultEventsBuffer = 10000

// codeLimited is the JSON-RPC error (implementation-defined server error
// range) of a request refused by a limit, as the edge's (transport).
const codeLimited = -32005

// checkLimits refuses, before it runs, a request the session cannot take
// now:
//   - a GET beyond MaxStreamsPerSession open GET streams: 429. The session's
//     actor is the one place that sees all of them, whichever edges they
//     came through, so the cap holds across the cluster;
//   - a POST or GET while the session's event writes wait for an
//     unreachable store and their queue is full (EventsBuffer): 503, rather
//     than hold more. DELETE still ends the session.
func (a *SessionActor) checkLimits(req *envelope.Request) *envelope.ResponsePart {
	if a.stateless {
		return nil
	}
	if req.Method == http.MethodGet && a.cfg.MaxStreamsPerSession > 0 {
		open := 0
		for _, f := range a.flights {
			if f.get {
				open++
			}
		}
		if open >= a.cfg.MaxStreamsPerSession {
			if a.logger.Enabled(context.Background(), slog.LevelDebug) {
				a.logger.Debug("stream refused: the session has too many open", "request", req.Id, "open", open)
			}
			metrics.Limited.WithLabelValues("session_streams").Inc()
			return limited(req, http.StatusTooManyRequests, 1, "session_streams",
				fmt.Sprintf("too many open streams: at most %d per session; close one or retry", a.cfg.MaxStreamsPerSession))
		}
	}
	if req.Method != http.MethodDelete && a.events != nil && a.events.full() {
		a.logger.Warn("request refused: the session's event writes wait for the store and their queue is full", "request", req.Id)
		metrics.Limited.WithLabelValues("events_buffer").Inc()
		return limited(req, http.StatusServiceUnavailable, 5, "events_buffer",
			"the session store is unreachable and this session holds all the events it may; retry")
	}
	return nil
}

// limited is the answer to a request a limit refused: status with
// Retry-After and a JSON-RPC error marked retryable.
func limited(req *envelope.Request, status, retryAfter int, limit, msg string) *envelope.ResponsePart {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": firstID(req), "error": map[string]any{
		"code": codeLimited, "message": msg,
		"data": map[string]any{"retryable": true, "retryAfter": retryAfter, "limit": limit},
	}})
	return &envelope.ResponsePart{
		RequestId: req.Id,
		Status:    int32(status),
		Headers: []*envelope.Header{
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Retry-After", Values: []string{strconv.Itoa(retryAfter)}},
		},
		Body:  append(body, '\n'),
		Final: true,
	}
}

// limit is the bound of the write queue.
func (e *sessionEvents) limit() int {
	if e.max > 0 {
		return e.max
	}
	return DefaultEventsBuffer
}

// full says the write queue has reached its bound.
func (e *sessionEvents) full() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.backlog) >= e.limit()
}

// tooLarge is the answer to a request refused because what the session
// would store exceeds its bound: 413, a JSON-RPC error, not retryable (the
// same request would be refused again).
func tooLarge(req *envelope.Request, big *SnapshotTooLarge) *envelope.ResponsePart {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": firstID(req), "error": map[string]any{
		"code": codeLimited, "message": big.Error(), "data": big.data(),
	}})
	return &envelope.ResponsePart{
		RequestId: req.Id,
		Status:    http.StatusRequestEntityTooLarge,
		Headers:   []*envelope.Header{{Name: "Content-Type", Values: []string{"application/json"}}},
		Body:      append(body, '\n'),
		Final:     true,
	}
}

// data is the JSON-RPC error data of a refusal: not retryable, since the
// same change would be refused again.
func (e *SnapshotTooLarge) data() map[string]any {
	return map[string]any{"retryable": false, "limit": "snapshot_bytes", "size": e.Size, "max": e.Limit}
}

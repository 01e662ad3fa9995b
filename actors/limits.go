package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/metrics"
)

// DefaultEventsBuffer bounds the event writes a session holds while its
// store is unreachable, when Config leaves EventsBuffer zero.
const DefaultEventsBuffer = 10000

// checkLimits refuses, before it runs, a request the session cannot take
// now:
//   - a GET beyond MaxStreamsPerSession open GET streams: 429. The session's
//     actor is the one place that sees all of them, whichever edges they
//     came through, so the cap holds across the cluster;
//   - a POST carrying requests while the session's handlers running,
//     and those requests, would be more than MaxRunningCalls: 429. Those
//     of requests whose clients left them (closed their streams) count: a
//     client cannot start calls without bound by leaving each;
//   - a POST or GET while the session's event writes wait for an
//     unreachable store and their queue is full (EventsBuffer): 503, rather
//     than hold more. DELETE still ends the session.
func (a *SessionActor) checkLimits(req *envelope.Request, rb *rpcbody.Body) *envelope.ResponsePart {
	if req.Method == http.MethodPost && a.cfg.MaxRunningCalls > 0 && rb != nil {
		if n := rb.Requests(); n > 0 {
			if running := a.calls.count(); running+n > a.cfg.MaxRunningCalls {
				metrics.Limited.WithLabelValues("running_calls").Inc()
				return limited(req, http.StatusTooManyRequests, 1, "running_calls",
					fmt.Sprintf("too many calls running: at most %d per session, those whose streams were closed included; retry once one ends", a.cfg.MaxRunningCalls))
			}
		}
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

// checkLimits refuses a stateless subscriptions/listen beyond
// MaxListensPerPrincipal open ones: 429. The principal's actor is the one
// place that sees all of them, whichever edges they came through (each
// edge caps a principal's streams at it alone), so the cap holds across
// the cluster, as a session's on its GET streams does. A principal
// actor's other requests are limited at the edge only.
func (a *PrincipalActor) checkLimits(req *envelope.Request, rb *rpcbody.Body) *envelope.ResponsePart {
	if rb.Listen() == nil {
		return nil
	}
	if n := listenResources(req.GetBody()); n > MaxListenResources {
		metrics.Limited.WithLabelValues("listen_resources").Inc()
		return errorPart(req.Id, http.StatusBadRequest, firstID(req), rpcerr.OverLimit("listen_resources", MaxListenResources,
			fmt.Sprintf("params.notifications.resourceSubscriptions names %d resources; one listen takes at most %d: open another listen for the others", n, MaxListenResources)))
	}
	if a.cfg.MaxListensPerPrincipal <= 0 {
		return nil
	}
	open := 0
	for _, f := range a.flights {
		if f.listen != nil {
			open++
		}
	}
	if open < a.cfg.MaxListensPerPrincipal {
		return nil
	}
	if a.logger.Enabled(context.Background(), slog.LevelDebug) {
		a.logger.Debug("listen refused: the principal has too many open", "request", req.Id, "open", open)
	}
	metrics.Limited.WithLabelValues("principal_listens").Inc()
	return limited(req, http.StatusTooManyRequests, 1, "principal_listens",
		fmt.Sprintf("too many open subscriptions/listen streams: at most %d per client of a user, across the servers; close one or retry", a.cfg.MaxListensPerPrincipal))
}

// MaxListenResources bounds the resources one stateless
// subscriptions/listen may subscribe to (params.notifications.
// resourceSubscriptions, every entry counted, duplicates too): more is
// refused. The go-sdk keeps the whole list, with a deferred unsubscribe
// for each entry, as long as the stream lasts: a 4 MiB body of one URI
// repeated held 42 MiB of a node's memory, eight of them (a principal's
// listens) 338 MiB. As tasks.MaxListenTasks for notifications.taskIds.
const MaxListenResources = 100

// listenResources is how many entries a subscriptions/listen's
// params.notifications.resourceSubscriptions has (0 for none, or for what
// does not decode: the go-sdk's to refuse), read as the go-sdk reads it
// (segmentio/encoding, keys matched exactly, the last of a key twice):
// encoding/json matches keys in any case, so a "ResourceSubscriptions": []
// (or "Notifications") beside the SDK's key, which the edge lets through
// at that depth, hid every entry the SDK holds.
func listenResources(body []byte) int {
	var m struct {
		Params struct {
			Notifications struct {
				ResourceSubscriptions []json.RawMessage `json:"resourceSubscriptions"`
			} `json:"notifications"`
		} `json:"params"`
	}
	if rpcbody.DecodeAsSDK(body, &m) != nil {
		return 0
	}
	return len(m.Params.Notifications.ResourceSubscriptions)
}

// limited is the answer to a request a limit refused: status with
// Retry-After and a retryable rpcerr.Limited error, as the edge's.
func limited(req *envelope.Request, status, retryAfter int, limit, msg string) *envelope.ResponsePart {
	return errorPart(req.Id, status, firstID(req), rpcerr.RetryLater(limit, retryAfter, msg),
		&envelope.Header{Name: "Retry-After", Values: []string{strconv.Itoa(retryAfter)}})
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
// would store exceeds its bound: 413 and big's rpcerr error.
func tooLarge(req *envelope.Request, big *SnapshotTooLarge) *envelope.ResponsePart {
	return errorPart(req.Id, http.StatusRequestEntityTooLarge, firstID(req), big.rpcError())
}

// rpcError is the JSON-RPC error of a change refused because the snapshot
// would exceed its bound: not retryable, since the same change would be
// refused again.
func (e *SnapshotTooLarge) rpcError() *rpcerr.Error {
	return rpcerr.TooLarge("snapshot_bytes", e.Size, e.Limit, e.Error())
}

package actors

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/rpcerr"
)

// runningCalls are the handlers of an actor's MCP server running now,
// whatever became of the requests that began them: on the 2025-11-25
// protocol a client that closes a request's stream does not cancel it (it
// may resume the stream), so a tool runs on after its request's flight
// ended, perhaps waiting for the client's answer to an elicitation or a
// sampling request that will never come. The actor ends them as it stops:
// the go-sdk's close of a session waits for its handlers, and would wait
// for good, on the actor's goroutine, with every request sent to the actor
// stuck behind it.
//
// A request admitted holds a place from its admission (reserve) until its
// handler starts (start takes the place over) or its flight ends (release):
// POSTs that come at once are dispatched to their goroutines after the
// actor admitted them all.
type runningCalls struct {
	mu      sync.Mutex
	cancels map[uint64]context.CancelCauseFunc
	// notes are those of cancels that are notifications' handlers: ended
	// as the calls are, not counted as calls (count; a session's
	// notifications/initialized waits for its snapshot's write).
	notes   int
	next    uint64
	stopped bool
	// reserved are the places of admitted requests whose handlers have
	// not started, the sum of their flights' reserved.
	reserved int
}

// reserve holds n places for f's requests, admitted now.
func (r *runningCalls) reserve(f *flight, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reserved += n
	f.reserved += n
}

// releaseLater gives back the places f's requests hold and did not take,
// its flight ended, once saveWait passed: a request the go-sdk refused
// before its handler holds its place that long for nothing, but one it
// took and has yet to start (behind a notification whose handler waits
// for its snapshot write, up to saveWait: the go-sdk runs a session's
// notifications in order with its requests' dispatch) starts after its
// flight ended, a client having left it, and would run beyond the bound
// had its place been given back (found by a review). A handler that starts
// after its flight ended finds no flight to take a place from: it and its
// place count both, for that while.
func (r *runningCalls) releaseLater(f *flight) {
	r.mu.Lock()
	left := f.reserved
	r.mu.Unlock()
	if left > 0 {
		time.AfterFunc(saveWait, func() { r.release(f) })
	}
}

// release gives back the places f's requests hold and did not take.
func (r *runningCalls) release(f *flight) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reserved -= f.reserved
	f.reserved = 0
}

// start registers a handler about to run with ctx, a request of f (nil:
// not known, or not a request) taking one of the places it holds, or a
// notification's (note: not counted), and returns its context, which stop
// ends, and what to call when it returns. Once stopped, the context it
// returns has ended.
func (r *runningCalls) start(ctx context.Context, f *flight, note bool) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if f != nil && f.reserved > 0 {
		f.reserved--
		r.reserved--
	}
	if r.stopped {
		cancel(nil)
		return ctx, func() { cancel(nil) }
	}
	if r.cancels == nil {
		r.cancels = map[uint64]context.CancelCauseFunc{}
	}
	id := r.next
	r.next++
	r.cancels[id] = cancel
	if note {
		r.notes++
	}
	return ctx, func() {
		r.mu.Lock()
		if _, ok := r.cancels[id]; ok && note {
			r.notes--
		}
		delete(r.cancels, id)
		r.mu.Unlock()
		cancel(nil)
	}
}

// count is how many calls' handlers run now, and are about to (reserved).
func (r *runningCalls) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cancels) - r.notes + r.reserved
}

// stop ends every handler running, and those that start from now on.
func (r *runningCalls) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	r.cancelAllLocked(nil)
}

// errSessionEnded is the cause of the end of the handlers that cancelAll
// ends.
var errSessionEnded = errors.New("the session ended while the request ran")

// cancelAll ends every handler running now (the session ends): the calls
// among them are answered "session not found" (running).
func (r *runningCalls) cancelAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancelAllLocked(errSessionEnded)
}

func (r *runningCalls) cancelAllLocked(cause error) {
	for id, cancel := range r.cancels {
		cancel(cause)
		delete(r.cancels, id)
	}
	r.notes = 0
}

// running is the middleware that registers each handler of the actor's
// server with its runningCalls.
func (a *core) running(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		var f *flight
		note := strings.HasPrefix(method, "notifications/")
		if extra := req.GetExtra(); extra != nil && extra.Header != nil && !note {
			if s := a.requests.load(extra.Header.Get(forwardedHeader)); s != nil {
				f = s.flight
			}
		}
		ctx, done := a.calls.start(ctx, f, note)
		defer done()
		res, err := next(ctx, method, req)
		if err != nil && errors.Is(context.Cause(ctx), errSessionEnded) {
			// Its session ended (a DELETE) under it: answered as the
			// session's requests then are, not with the go-sdk's code 0
			// "context canceled".
			return nil, rpcerr.New(rpcerr.SessionNotFound, errSessionEnded.Error()).SDK()
		}
		return res, err
	}
}

package actors

import (
	"context"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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
type runningCalls struct {
	mu      sync.Mutex
	cancels map[uint64]context.CancelFunc
	next    uint64
	stopped bool
}

// start registers a handler about to run with ctx, and returns its context,
// which stop ends, and what to call when it returns. Once stopped, the
// context it returns has ended.
func (r *runningCalls) start(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		cancel()
		return ctx, cancel
	}
	if r.cancels == nil {
		r.cancels = map[uint64]context.CancelFunc{}
	}
	id := r.next
	r.next++
	r.cancels[id] = cancel
	return ctx, func() {
		r.mu.Lock()
		delete(r.cancels, id)
		r.mu.Unlock()
		cancel()
	}
}

// count is how many handlers run now.
func (r *runningCalls) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cancels)
}

// stop ends every handler running, and those that start from now on.
func (r *runningCalls) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	r.cancelAllLocked()
}

// cancelAll ends every handler running now (the session ends).
func (r *runningCalls) cancelAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancelAllLocked()
}

func (r *runningCalls) cancelAllLocked() {
	for id, cancel := range r.cancels {
		cancel()
		delete(r.cancels, id)
	}
}

// running is the middleware that registers each handler of the actor's
// server with its runningCalls.
func (a *core) running(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		ctx, done := a.calls.start(ctx)
		defer done()
		return next(ctx, method, req)
	}
}

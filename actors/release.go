package actors

import (
	"context"
	"sync/atomic"
	"time"
)

// releasable is a request's context as the MCP handler sees it, let go of
// once the request ends (release).
//
// The go-sdk keeps the context of the request that creates a session (the
// initialize, or the replayed one of a rehydration) as its connection's,
// for the session's whole life: every value in it, and all they reach,
// would stay for as long as the session does. That is the request's flight
// (its body, its window, its reply address), its span, its cancellation,
// about 1.5 KB per idle session (BENCHMARKS.md, "Memory per idle session,
// by owner"). Nothing later reads those values through the connection's
// context: later requests carry their own (observe.go), and the SDK
// detaches the connection's context from cancellation. After release the
// context is a background one: no values, never done.
type releasable struct {
	ctx atomic.Pointer[context.Context]
}

// releasing wraps ctx; its caller calls release when the request ended.
func releasing(ctx context.Context) *releasable {
	r := &releasable{}
	r.ctx.Store(&ctx)
	return r
}

var released = context.Background()

// release lets go of the request's context.
func (r *releasable) release() { r.ctx.Store(&released) }

func (r *releasable) load() context.Context       { return *r.ctx.Load() }
func (r *releasable) Deadline() (time.Time, bool) { return r.load().Deadline() }
func (r *releasable) Done() <-chan struct{}       { return r.load().Done() }
func (r *releasable) Err() error                  { return r.load().Err() }
func (r *releasable) Value(key any) any           { return r.load().Value(key) }

// Package retry paces the retries of an operation on a dependency that is
// away (the store, a peer, the server under load): each wait doubles, from a
// minimum up to a maximum, and a cancelled context interrupts it. What to
// retry, and when to give up, stays with the caller.
//
// Each wait is drawn between half its step and the whole of it ("equal
// jitter"): callers that failed together (every session of a node that
// died, every actor when the store went away) come back spread over the
// step rather than all at one instant, where they would fail or queue
// together again, and stay in step long after.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the pace of one run of retries: steps of Min, then twice as
// long each time, never more than Max; each wait between half its step
// and the step. Set Min (positive) and Max; the zero value of
// the rest is ready to use. A Backoff is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns how long to wait before the next retry, and doubles the
// step after it.
func (b *Backoff) Next() time.Duration {
	d := min(max(b.next, b.Min), b.Max)
	b.next = d * 2
	if half := d / 2; half > 0 {
		return half + rand.N(d-half+1)
	}
	return d
}

// Reset starts over from Min, after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Wait sleeps for Next. It returns ctx's error as soon as ctx is done, and
// at once, without sleeping, when ctx's deadline comes before the wait would
// end: a retry after the deadline would be of no use.
func (b *Backoff) Wait(ctx context.Context) error {
	d := b.Next()
	if err := ctx.Err(); err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

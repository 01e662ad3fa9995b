// Package growstack gives a goroutine about to run a deep call path the
// stack that path needs in one step.
//
// A goroutine starts with a small stack, and the runtime doubles it each
// time a call would overflow it, copying the whole stack and adjusting every
// frame on it. The go-sdk handles each request on a goroutine of its own,
// and pingmcp's part of a tools/call there (the session actor's middleware,
// the audit record, telemetry) needs 4 to 8 KiB of stack beyond where it
// starts: grown on the way, that stack was copied when the path was at its
// deepest. [Grow], called where the path starts, copies it while it is
// still shallow, to a size the runtime takes from its per-processor cache
// (16 KiB, not the 32 KiB that would come from the heap). Measured in
// BENCHMARKS.md ("A request's stack, grown once").
package growstack

// Headroom is the stack [Grow] leaves free for the calls after it.
const Headroom = 8 << 10

// at is read, never written: it keeps Grow's frame from being optimised
// away.
var at = Headroom - 1

// Grow makes the calling goroutine's stack hold at least Headroom bytes
// more than it uses now: a no-op on a stack already that large.
//
//go:noinline
func Grow() byte {
	var frame [Headroom]byte
	return frame[at]
}

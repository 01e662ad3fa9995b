package state

import "github.com/pingmcp/pingmcp/internal/redisread"

// ErrTooLarge is what a read of the Redis stores refused for its size is
// (errors.Is): a snapshot, an event replay, a request journal or the
// revocations over the bound a node reads. Such a value was not written
// by pingmcp (a writer of Redis, or a bug) and is treated as unreadable;
// it is refused in Redis, by the script that reads it, and never sent to
// the node, which would otherwise allocate it whole.
var ErrTooLarge = redisread.ErrTooLarge

// TooLarge is the error of such a read: it names the kind of value, its
// key and its size, never its content.
type TooLarge = redisread.TooLarge

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

// WrongType is the error of a read of a key that holds another type of
// value than the one pingmcp writes there (a hash where a snapshot's
// string should be): not written by pingmcp, refused as unreadable. It
// names the kind of value, its key and the type there, never its content.
type WrongType = redisread.WrongType

// ErrUnreadable is what a *TooLarge and a *WrongType are (errors.Is): a
// value that is there in Redis but that a node does not read; and what a
// stored snapshot that does not decode is (*SnapshotError). A store out of
// reach is not.
var ErrUnreadable = redisread.ErrUnreadable

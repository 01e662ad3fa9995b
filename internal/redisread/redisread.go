// Package redisread reads what pingmcp keeps in Redis within bounds: a
// value, or a collection, over the bound its reader gives is refused in
// Redis, by the script that reads it, before anything of it is sent, and
// the read fails with *TooLarge. go-redis allocates a reply whole as it
// arrives (a 512 MB string is a 512 MB buffer), so without a bound a
// writer of Redis (an attacker who reached it, or a bug) could take down
// every node that reads one key, again at each restart.
package redisread

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// ErrTooLarge is what a *TooLarge is (errors.Is): a value in Redis over the
// bound a node reads, refused as unreadable.
var ErrTooLarge = errors.New("a value in Redis is larger than a node reads")

// ErrUnreadable is what a *TooLarge and a *WrongType are (errors.Is): a
// value that is there in Redis but that a node does not read. Other errors
// of a read (Redis out of reach, say) are not.
var ErrUnreadable = errors.New("a value in Redis is not one a node reads")

// TooLarge is the error of a read refused because what Redis holds is over
// its bound. It names the kind of value, its key and its size, never its
// content.
type TooLarge struct {
	What  string // the kind of value: "session snapshot", "task record", …
	Key   string // its Redis key
	Size  int64  // how much Redis holds, in Unit
	Limit int64  // the bound, in Unit
	Unit  string // "bytes", "entries", "events", "members"
}

func (e *TooLarge) Error() string {
	return fmt.Sprintf("%s at Redis key %q holds %d %s, more than the %d this node reads: refused as unreadable", e.What, e.Key, e.Size, e.Unit, e.Limit)
}

// Is makes a *TooLarge ErrTooLarge and ErrUnreadable.
func (e *TooLarge) Is(target error) bool { return target == ErrTooLarge || target == ErrUnreadable }

// WrongType is the error of a read (Get, Values) refused because the key
// holds another type of value than the string its reader reads (a hash, a
// list…): not written by pingmcp. It names the kind of value, its key and
// the Redis type there, never its content.
type WrongType struct {
	What string // the kind of value: "session snapshot", "task record", …
	Key  string // its Redis key
	Type string // the Redis type the key holds: "hash", "list", …
}

func (e *WrongType) Error() string {
	return fmt.Sprintf("%s at Redis key %q is a Redis %s, not the string this node reads: refused as unreadable", e.What, e.Key, e.Type)
}

// Is makes a *WrongType ErrUnreadable.
func (e *WrongType) Is(target error) bool { return target == ErrUnreadable }

// Bound is the read bound of a kind of value that nodes write within a
// bound of their own, write (its flag's value), whose default is def:
// twice the larger of the two. A value pingmcp writes may pass its write
// bound by a few bytes (a snapshot's refreshed activity time and node, a
// token staged with the next write), and nodes may be configured apart
// (a bound lowered since, or during a rolling change): what any of them
// wrote within its bound, or the default's, is still read. A value beyond
// is not one pingmcp wrote.
func Bound(write, def int64) int64 { return 2 * max(write, def) }

// getScript reads the string at KEYS[1] if it is at most ARGV[1] bytes
// long (STRLEN: the value is not copied). Returns the value, nil when
// there is none, {size} when it is longer, or {'type', type} when the key
// holds another type than a string (STRLEN would fail on it).
var getScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'string' and t ~= 'none' then return {'type', t} end
local n = redis.call('STRLEN', KEYS[1])
if n > tonumber(ARGV[1]) then return {n} end
return redis.call('GET', KEYS[1])`)

// Get reads the string at key, nil when there is none, in one round trip;
// one longer than max bytes is refused in Redis (*TooLarge, naming what it
// is), and so is a key holding another type of value (*WrongType). c may
// be a transaction watching key.
func Get(ctx context.Context, c redis.Scripter, what, key string, max int64) ([]byte, error) {
	return value(getScript.Run(ctx, c, []string{key}, max), what, key, max)
}

// value reads a getScript's answer.
func value(cmd *redis.Cmd, what, key string, max int64) ([]byte, error) {
	res, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch v := res.(type) {
	case string:
		return []byte(v), nil
	case []any:
		if len(v) == 1 {
			if n, ok := v[0].(int64); ok {
				return nil, &TooLarge{What: what, Key: key, Size: n, Limit: max, Unit: "bytes"}
			}
		}
		if len(v) == 2 && v[0] == "type" {
			t, _ := v[1].(string)
			return nil, &WrongType{What: what, Key: key, Type: t}
		}
	}
	return nil, fmt.Errorf("read %s: unexpected answer %T", what, res)
}

// Values reads the strings at keys, one bounded GET (Get) per key,
// pipelined (a cluster's pipeline sends each to its key's shard): out[i] is
// keys[i]'s value, nil for a key gone since, or for one Get refuses as
// unreadable (longer than max, or not a string): refused[i] is then its
// *TooLarge or *WrongType, so that a list may leave it out or show that it
// is there. Another error of any key fails the whole read.
func Values(ctx context.Context, client redis.UniversalClient, what string, keys []string, max int64) (out [][]byte, refused []error, err error) {
	out, refused = make([][]byte, len(keys)), make([]error, len(keys))
	cmds := getAll(ctx, client, keys, func(int) int64 { return max })
	for i, k := range keys {
		v, err := value(cmds[i], what, k, max)
		switch {
		case errors.Is(err, ErrUnreadable):
			refused[i] = err
		case err != nil:
			return nil, nil, err
		default:
			out[i] = v
		}
	}
	return out, refused, nil
}

// getAll runs a bounded GET (getScript) for each of keys, bounded by
// max(i), pipelined, loading the script where a shard lacks it.
func getAll(ctx context.Context, client redis.UniversalClient, keys []string, max func(i int) int64) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(keys))
	pending, loaded := make([]int, len(keys)), true
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		pipe := client.Pipeline()
		for _, i := range pending {
			if loaded {
				cmds[i] = getScript.EvalSha(ctx, pipe, keys[i:i+1], max(i))
			} else {
				cmds[i] = getScript.Eval(ctx, pipe, keys[i:i+1], max(i))
			}
		}
		_, _ = pipe.Exec(ctx) // each command has its own error
		var unknown []int
		for _, i := range pending {
			if loaded && redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
				unknown = append(unknown, i)
			}
		}
		pending, loaded = unknown, false
	}
	return cmds
}

// Each reads the strings at keys as Values does (each over max refused
// unread), but calls fn with each, in no set order, instead of returning
// them all: fn(i, value, refused) as Values' out[i] and refused[i]. It
// holds at most about budget bytes of values at once (or one value, when
// that is larger), however many keys there are: it first asks Redis the
// size of each (no value sent), then reads them in round trips of at most
// budget bytes, each GET bounded by the size Redis gave (a value grown
// since is read again, alone, bounded by max). Values of max bytes each,
// by hundreds in a page, would otherwise all be in the node's memory at
// once. An error of fn, or another error of a key, stops it.
func Each(ctx context.Context, client redis.UniversalClient, what string, keys []string, max, budget int64, fn func(i int, value []byte, refused error) error) error {
	if len(keys) == 0 {
		return nil
	}
	// Bounded by 0, a bounded GET sends a missing or empty value, or
	// the type of a key that is not a string, and of any other value
	// only its size.
	probes := getAll(ctx, client, keys, func(int) int64 { return 0 })
	sizes := make([]int64, len(keys))
	var group []int
	var total int64
	flush := func() error {
		cmds := getAll(ctx, client, pick(keys, group), func(j int) int64 { return sizes[group[j]] })
		for j, i := range group {
			v, err := value(cmds[j], what, keys[i], sizes[i])
			if big := (*TooLarge)(nil); errors.As(err, &big) {
				// Grown since its size was asked: read alone.
				v, err = value(getScript.Run(ctx, client, keys[i:i+1], max), what, keys[i], max)
			}
			if err := deliver(i, v, err, fn); err != nil {
				return err
			}
		}
		group, total = group[:0], 0
		return nil
	}
	for i, k := range keys {
		v, err := value(probes[i], what, k, 0)
		var big *TooLarge
		if errors.As(err, &big) && big.Size <= max {
			if len(group) > 0 && total+big.Size > budget {
				if err := flush(); err != nil {
					return err
				}
			}
			sizes[i], total, group = big.Size, total+big.Size, append(group, i)
			continue
		}
		if big != nil {
			big.Limit = max
		}
		if err := deliver(i, v, err, fn); err != nil {
			return err
		}
	}
	if len(group) > 0 {
		return flush()
	}
	return nil
}

// deliver hands Each's outcome for key i to fn: a value, or a refusal
// (ErrUnreadable); another error stops Each.
func deliver(i int, v []byte, err error, fn func(int, []byte, error) error) error {
	switch {
	case errors.Is(err, ErrUnreadable):
		return fn(i, nil, err)
	case err != nil:
		return err
	}
	return fn(i, v, nil)
}

// pick is keys[i] for each i of at.
func pick(keys []string, at []int) []string {
	out := make([]string, len(at))
	for j, i := range at {
		out[j] = keys[i]
	}
	return out
}

// HashLua defines, for a script that embeds it, hashover(key, maxn, maxb):
// nil when the hash at key has at most maxn fields, and at most maxb bytes
// of field names and values together, else {unit, size} of the first bound
// it is over ('entries', then 'bytes'). It reads only lengths (HLEN, HKEYS,
// HSTRLEN): no value is copied.
const HashLua = `
local function hashover(key, maxn, maxb)
  local n = redis.call('HLEN', key)
  if n > maxn then return {'entries', n} end
  local size = 0
  for _, f in ipairs(redis.call('HKEYS', key)) do
    size = size + string.len(f) + redis.call('HSTRLEN', key, f)
  end
  if size > maxb then return {'bytes', size} end
  return nil
end
`

// hgetallScript: KEYS[1] a hash; ARGV[1] most fields, ARGV[2] most bytes.
// Returns {1, HGETALL} or {0, unit, size} (hashover).
var hgetallScript = redis.NewScript(HashLua + `
local over = hashover(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if over then return {0, over[1], over[2]} end
return {1, redis.call('HGETALL', KEYS[1])}`)

// HGetAll reads the hash at key (empty when there is none) in one round
// trip, unless it has more than maxEntries fields or more than maxBytes of
// field names and values together: then *TooLarge, and nothing of it is
// sent.
func HGetAll(ctx context.Context, c redis.Scripter, what, key string, maxEntries, maxBytes int64) (map[string]string, error) {
	res, err := hgetallScript.Run(ctx, c, []string{key}, maxEntries, maxBytes).Slice()
	if err != nil {
		return nil, err
	}
	if err := Over(res, what, key, map[string]int64{"entries": maxEntries, "bytes": maxBytes}); err != nil {
		return nil, err
	}
	pairs, _ := res[1].([]any)
	out := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		f, _ := pairs[i].(string)
		v, _ := pairs[i+1].(string)
		out[f] = v
	}
	return out, nil
}

// Over reads the head of a bounded script's answer: {1, …} when within its
// bounds, {0, unit, size} when over the bound of unit (limits, by unit):
// then a *TooLarge naming what and key.
func Over(res []any, what, key string, limits map[string]int64) error {
	if len(res) == 0 {
		return fmt.Errorf("read %s: empty answer", what)
	}
	if ok, _ := res[0].(int64); ok == 1 {
		return nil
	}
	if len(res) < 3 {
		return fmt.Errorf("read %s: unexpected answer", what)
	}
	unit, _ := res[1].(string)
	size, _ := res[2].(int64)
	return &TooLarge{What: what, Key: key, Size: size, Limit: limits[unit], Unit: unit}
}

// zrangeScript: KEYS[1] a sorted set; ARGV[1] most members, ARGV[2] most
// bytes of members. Returns {1, ZRANGE 0 -1 WITHSCORES} or {0, unit,
// size}: over ARGV[1] members (ZCARD, before reading any), or over ARGV[2]
// bytes of them (read in Redis, not sent).
var zrangeScript = redis.NewScript(`
local n = redis.call('ZCARD', KEYS[1])
if n > tonumber(ARGV[1]) then return {0, 'members', n} end
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local size = 0
for i = 1, #all, 2 do size = size + string.len(all[i]) end
if size > tonumber(ARGV[2]) then return {0, 'bytes', size} end
return {1, all}`)

// ZRangeWithScores reads the whole sorted set at key (empty when there is
// none) in one round trip, unless it has more than maxMembers members or
// more than maxBytes of them: then *TooLarge, and nothing of it is sent.
func ZRangeWithScores(ctx context.Context, c redis.Scripter, what, key string, maxMembers, maxBytes int64) ([]redis.Z, error) {
	res, err := zrangeScript.Run(ctx, c, []string{key}, maxMembers, maxBytes).Slice()
	if err != nil {
		return nil, err
	}
	if err := Over(res, what, key, map[string]int64{"members": maxMembers, "bytes": maxBytes}); err != nil {
		return nil, err
	}
	pairs, _ := res[1].([]any)
	out := make([]redis.Z, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		m, _ := pairs[i].(string)
		s, _ := pairs[i+1].(string)
		score, _ := strconv.ParseFloat(s, 64)
		out = append(out, redis.Z{Member: m, Score: score})
	}
	return out, nil
}

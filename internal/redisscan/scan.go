// Package redisscan scans the keys matching a pattern on every server that
// holds keys: the one server, or each master of a Redis Cluster, shard after
// shard, a page at a time behind a cursor of its own. The session store
// (state) and the task store (state/taskstore) list what they keep with it,
// and read the values with internal/redisread.
package redisscan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Shards is the servers a scan must visit to see every key: each master of
// a Redis Cluster, in the order of their addresses, or the one server.
func Shards(ctx context.Context, client redis.UniversalClient) ([]redis.UniversalClient, error) {
	cc, ok := client.(*redis.ClusterClient)
	if !ok {
		return []redis.UniversalClient{client}, nil
	}
	var mu sync.Mutex
	var masters []*redis.Client
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		masters = append(masters, c)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(masters, func(a, b *redis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
	out := make([]redis.UniversalClient, len(masters))
	for i, m := range masters {
		out[i] = m
	}
	return out, nil
}

// Page scans for keys matching pattern from cursor ("" at the start) until
// it has at least limit of them or has seen every shard, and returns them
// with the cursor of the next page ("" at the end). SCAN's guarantees hold:
// a key may be missed or returned twice if keys change meanwhile, or if the
// cluster's masters change between two pages. A key longer than pattern
// by more than maxKeyBytes is left out (not pingmcp's).
func Page(ctx context.Context, client redis.UniversalClient, pattern, cursor string, limit int) (keys []string, next string, err error) {
	shards, err := Shards(ctx, client)
	if err != nil {
		return nil, "", err
	}
	shard, c, err := parseCursor(cursor, len(shards))
	if err != nil {
		return nil, "", err
	}
	for shard < len(shards) && len(keys) < limit {
		batch, n, err := scan(ctx, shards[shard], c, pattern, int64(limit))
		if err != nil {
			return nil, "", err
		}
		keys, c = append(keys, batch...), n
		if c == 0 {
			shard++
		}
	}
	if shard < len(shards) {
		next = formatCursor(shard, c, len(shards))
	}
	return keys, next, nil
}

// Count counts the keys matching pattern on every shard (those longer
// than scan returns left out).
func Count(ctx context.Context, client redis.UniversalClient, pattern string) (int, error) {
	shards, err := Shards(ctx, client)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, shard := range shards {
		var c uint64
		for {
			batch, next, err := scan(ctx, shard, c, pattern, 1000)
			if err != nil {
				return 0, err
			}
			n += len(batch)
			if c = next; c == 0 {
				break
			}
		}
	}
	return n, nil
}

// scanScript is SCAN ARGV[1] MATCH ARGV[2] COUNT ARGV[3], without the keys
// longer than ARGV[4] bytes: {cursor, keys}.
var scanScript = redis.NewScript(`
local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local out = {}
for _, k in ipairs(r[2]) do
  if string.len(k) <= tonumber(ARGV[4]) then out[#out + 1] = k end
end
return {r[1], out}`)

// maxKeyBytes is how much longer than its pattern a key scan returns may
// be: pingmcp's keys hold ids of 22 bytes where their patterns have a *.
// A longer key was not written by pingmcp: left out, in Redis, since a
// node allocates what SCAN answers whole (a key's name may be 512 MB).
const maxKeyBytes = 1 << 10

// scan is SCAN on one server, run by a script that leaves out the keys
// longer than pattern by more than maxKeyBytes.
func scan(ctx context.Context, shard redis.UniversalClient, cursor uint64, pattern string, count int64) ([]string, uint64, error) {
	res, err := scanScript.Run(ctx, shard, nil, strconv.FormatUint(cursor, 10), pattern, count, len(pattern)+maxKeyBytes).Slice()
	if err != nil {
		return nil, 0, err
	}
	if len(res) != 2 {
		return nil, 0, errors.New("scan: unexpected answer")
	}
	c, _ := res[0].(string)
	next, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("scan: cursor %q: %w", c, err)
	}
	found, _ := res[1].([]any)
	keys := make([]string, 0, len(found))
	for _, k := range found {
		if s, ok := k.(string); ok {
			keys = append(keys, s)
		}
	}
	return keys, next, nil
}

// ErrBadCursor is a cursor that no page returned.
var ErrBadCursor = errors.New("bad cursor")

// A scan cursor over shards is "shard-cursor"; over one server, the
// server's own cursor.
func formatCursor(shard int, c uint64, shards int) string {
	if shards == 1 {
		return strconv.FormatUint(c, 10)
	}
	return strconv.Itoa(shard) + "-" + strconv.FormatUint(c, 10)
}

func parseCursor(cursor string, shards int) (int, uint64, error) {
	if cursor == "" {
		return 0, 0, nil
	}
	shard, c := "0", cursor
	if shards > 1 {
		var ok bool
		if shard, c, ok = strings.Cut(cursor, "-"); !ok {
			return 0, 0, fmt.Errorf("%w %q", ErrBadCursor, cursor)
		}
	}
	i, err1 := strconv.Atoi(shard)
	n, err2 := strconv.ParseUint(c, 10, 64)
	if err1 != nil || err2 != nil || i < 0 || i >= shards {
		return 0, 0, fmt.Errorf("%w %q", ErrBadCursor, cursor)
	}
	return i, n, nil
}

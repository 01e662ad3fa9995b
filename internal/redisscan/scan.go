// Package redisscan scans the keys matching a pattern on every server that
// holds keys: the one server, or each master of a Redis Cluster, shard after
// shard, a page at a time behind a cursor of its own. The session store
// (state) and the task store (state/taskstore) list what they keep with it.
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
// cluster's masters change between two pages.
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
		batch, n, err := shards[shard].Scan(ctx, c, pattern, int64(limit)).Result()
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

// Values reads the values of keys, one GET per key, pipelined (a cluster's
// pipeline sends each to its key's shard; an MGET of keys in several slots
// is refused): out[i] is keys[i]'s value, nil for a key gone since.
func Values(ctx context.Context, client redis.UniversalClient, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	pipe := client.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		gets[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i := range keys {
		if b, err := gets[i].Bytes(); err == nil {
			out[i] = b
		}
	}
	return out, nil
}

// Count counts the keys matching pattern on every shard.
func Count(ctx context.Context, client redis.UniversalClient, pattern string) (int, error) {
	shards, err := Shards(ctx, client)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, shard := range shards {
		iter := shard.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			n++
		}
		if err := iter.Err(); err != nil {
			return 0, err
		}
	}
	return n, nil
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

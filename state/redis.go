package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// OpenRedis returns a client of the Redis that raw names: one server
// (redis://host:port/db, rediss:// for TLS) or a Redis Cluster, when the URL
// names more than one address (redis://host1:port1?addr=host2:port2&…, the
// go-redis cluster URL) or cluster is set (a cluster known by one address).
// Every call is bounded by timeout: dial, each read and write, and the wait
// for a pooled connection. where describes the servers for a log line,
// without credentials. It does not connect.
func OpenRedis(raw string, cluster bool, timeout time.Duration) (client redis.UniversalClient, where string, err error) {
	cluster = cluster || isClusterURL(raw)
	if !cluster {
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return nil, "", err
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = timeout, timeout, timeout, timeout
		return redis.NewClient(opts), opts.Addr, nil
	}
	opts, err := redis.ParseClusterURL(raw)
	if err != nil {
		return nil, "", err
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = timeout, timeout, timeout, timeout
	return redis.NewClusterClient(opts), "cluster " + strings.Join(opts.Addrs, ","), nil
}

// isClusterURL says whether a Redis URL names more than one address.
func isClusterURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Query().Has("addr")
}

// CheckRedisURL says whether OpenRedis takes raw (cluster as for OpenRedis).
// Its error names what is wrong without quoting the URL, which may hold a
// password.
func CheckRedisURL(raw string, cluster bool) error {
	var err error
	if cluster || isClusterURL(raw) {
		_, err = redis.ParseClusterURL(raw)
	} else {
		_, err = redis.ParseURL(raw)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return err
}

// shardsOf is the servers a scan must visit to see every key: each master
// of a Redis Cluster, in the order of their addresses, or the one server.
func shardsOf(ctx context.Context, client redis.UniversalClient) ([]redis.UniversalClient, error) {
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
			return 0, 0, fmt.Errorf("bad cursor %q", cursor)
		}
	}
	i, err1 := strconv.Atoi(shard)
	n, err2 := strconv.ParseUint(c, 10, 64)
	if err1 != nil || err2 != nil || i < 0 || i >= shards {
		return 0, 0, fmt.Errorf("bad cursor %q", cursor)
	}
	return i, n, nil
}

package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
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
	if opts.ClusterStateReloadInterval == 0 {
		// go-redis learns that a master died (a replica took its slots)
		// only from this reload: a command to the dead one fails to dial,
		// which reloads nothing. Its default is a minute of failures.
		opts.ClusterStateReloadInterval = ClusterReload
	}
	return redis.NewClusterClient(opts), "cluster " + strings.Join(opts.Addrs, ","), nil
}

// ClusterReload is how often a Redis Cluster client reloads the cluster's
// layout while it is used (CLUSTER SLOTS on one node): after a failover,
// calls to the slots of the dead master fail for about this long.
const ClusterReload = time.Second

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

// ErrNotReplicated is the error of a write that Redis made but fewer
// replicas than asked acknowledged within the timeout: it is not
// confirmed, and a failover may lose it.
var ErrNotReplicated = errors.New("redis: the write was not acknowledged by enough replicas")

// Replication is how many replicas must hold a write before the stores
// confirm it (WAIT), and how long to wait for them. Zero replicas confirm a
// write once its master made it (Redis replicates asynchronously: a master
// that dies may take its last writes with it).
type Replication struct {
	Replicas int
	Timeout  time.Duration
}

// writer runs the stores' writes.
type writer struct {
	Replication
	// batch sends the writes made at once together (batcher).
	batch *batcher
}

// newWriter is a writer of client.
func newWriter(client redis.UniversalClient) writer {
	return writer{batch: &batcher{client: client, linger: behindLinger}}
}

// run runs script s on keys (one slot), in one pipeline with the other
// writes made at once (batcher). When Replicas is set, WAIT follows on the
// same connection in the same round trip (one for the batch): the write is
// confirmed only once that many replicas have it (ErrNotReplicated
// otherwise). On a Redis Cluster it goes to the master of the keys' slot; a
// refusal that says the slot moved (a failover) makes the client reload the
// cluster's layout, and the write is tried once more there.
func (w writer) run(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	return w.batch.run(ctx, w.Replication, s, keys, args...)
}

// moved says a cluster node refused a command for a slot it does not serve
// (it was not run).
func moved(err error) bool {
	if err == nil {
		return false
	}
	for _, p := range []string{"MOVED ", "ASK ", "CLUSTERDOWN ", "TRYAGAIN ", "READONLY "} {
		if strings.HasPrefix(err.Error(), p) {
			return true
		}
	}
	return false
}

func failed(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}

// RedisCheck is a Stores.Check of client: it pings it, and fails for a
// Redis whose maxmemory-policy may evict pingmcp's keys (ErrEvicting; the
// node's log says it once, /readyz says it while it lasts): a node refuses
// to start with one (EvictionPolicy), and this tells of one whose policy
// was changed since. The policy is read at most every policyEvery.
func RedisCheck(client redis.UniversalClient) func(context.Context) error {
	var mu sync.Mutex
	var refused error
	var read time.Time
	return func(ctx context.Context) error {
		if err := client.Ping(ctx).Err(); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if read.IsZero() || time.Since(read) >= policyEvery {
			err := evictionPolicy(ctx, client)
			if err != nil && refused == nil {
				slog.Default().Error("the session store is refused", "err", err)
			}
			refused, read = err, time.Now()
		}
		return refused
	}
}

// policyEvery is how often RedisCheck reads the maxmemory-policy.
const policyEvery = 30 * time.Second

// ErrEvicting is the error of a Redis whose maxmemory-policy may evict
// pingmcp's keys (anything but noeviction, redis-server's default): an
// evicted epoch counter starts again from 1, and hands out an epoch a live
// activation holds (two activations of one session writing); an evicted
// revocation list accepts a revoked user's tokens again; evicted
// snapshots and events lose sessions.
var ErrEvicting = errors.New("redis may evict pingmcp's keys")

// EvictionPolicy reads client's maxmemory-policy (INFO memory, of every
// master of a Redis Cluster) and fails with ErrEvicting for one that may
// evict. A Redis that does not answer INFO (one unreachable, or a managed
// one that renamed it) is taken as it is.
func EvictionPolicy(ctx context.Context, client redis.UniversalClient) error {
	return evictionPolicy(ctx, client)
}

func evictionPolicy(ctx context.Context, client redis.UniversalClient) error {
	check := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return nil // INFO refused: unknown, not refused
		}
		for line := range strings.Lines(info) {
			if policy, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok && policy != "noeviction" {
				return fmt.Errorf("%w: its maxmemory-policy is %s (an evicted epoch counter lets two activations of a session write; an evicted revocation list accepts revoked users' tokens again; evicted snapshots lose sessions): set it to noeviction, and give Redis the memory pingmcp needs", ErrEvicting, policy)
			}
		}
		return nil
	}
	switch c := client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, check)
	case *redis.Client:
		return check(ctx, c)
	}
	return nil
}

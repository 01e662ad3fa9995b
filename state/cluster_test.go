package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/internal/retry"
)

// The Redis stores keep their contracts on a Redis Cluster of three
// masters: every key one script touches shares its session's (or user's)
// hash tag, so one slot, and List and Count visit every master.
func TestRedisClusterStores(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client := openCluster(t, c)
	t.Run("snapshots", func(t *testing.T) {
		n := 0
		testSnapshots(t, func(*testing.T) Snapshots {
			n++
			return NewRedisSnapshots(client, fmt.Sprintf("s%d:", n))
		})
	})
	t.Run("events", func(t *testing.T) {
		n := 0
		testEvents(t, func() mcp.EventStore {
			n++
			return NewRedisEvents(client, fmt.Sprintf("e%d:", n), EventOptions{})
		})
	})
	t.Run("journal", func(t *testing.T) {
		testJournal(t, NewRedisSnapshots(client, "j:"), NewRedisEvents(client, "j:", EventOptions{}))
	})
	t.Run("retried writes", func(t *testing.T) {
		cut := &redistest.Cut{}
		hooked := openCluster(t, c)
		hooked.OnNewNode(func(n *redis.Client) { n.AddHook(cut) })
		testRetriedWrites(t, hooked, cut)
	})
	t.Run("user sessions", func(t *testing.T) {
		testUserSessions(t, NewRedisUserSessions(client, "u:"), time.Sleep)
	})
	t.Run("revocations", func(t *testing.T) {
		testRevocations(t, NewRedisRevocations(client, "r:"))
	})
	t.Run("list and count every shard", func(t *testing.T) {
		ctx := context.Background()
		s := NewRedisSnapshots(client, "list:")
		want := slices.Sorted(maps.Keys(saveSessions(t, ctx, s, 200)))
		var holding atomic.Int32 // ForEachMaster calls each master's at once
		if err := client.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			if keys, _ := m.Keys(ctx, "list:session:*:snap").Result(); len(keys) > 0 {
				holding.Add(1)
			}
			return nil
		}); err != nil || holding.Load() != 3 {
			t.Fatalf("the sessions are on %d masters (%v), want all 3", holding.Load(), err)
		}
		if n, err := s.Count(ctx); err != nil || n != 200 {
			t.Fatalf("Count: %d, %v; want 200", n, err)
		}
		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := s.List(ctx, cursor, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range page {
				if string(st.Snapshot) != "v"+st.Session {
					t.Errorf("%s listed with snapshot %q", st.Session, st.Snapshot)
				}
				got = append(got, st.Session)
			}
			pages++
			if cursor = next; cursor == "" {
				break
			}
			if !strings.Contains(cursor, "-") {
				t.Fatalf("cursor %q does not name its shard", cursor)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || pages < 3 {
			t.Fatalf("listed %d sessions in %d pages, want the 200, each once, over pages of every shard", len(got), pages)
		}
		if _, _, err := s.List(ctx, "3-0", 7); err == nil {
			t.Error("a cursor naming a fourth shard was taken")
		}
	})
}

// With Replication, a snapshot is confirmed only once a replica holds it:
// when the master holding some sessions dies, its replica takes over with
// every confirmed snapshot and epoch, and the sessions activate there with a
// newer epoch. The promoted replica has no replica of its own: a write to
// its slots is then refused (ErrNotReplicated), not confirmed.
func TestRedisClusterFailoverKeepsConfirmedWrites(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	client := openCluster(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := NewRedisSnapshots(client, "f:")
	s.SetReplication(Replication{Replicas: 1, Timeout: time.Second})
	epochs := saveSessions(t, ctx, s, 100)
	victim := "session-000"
	dead := c.KillMasterOf(ctx, s.keys(victim)[1])
	t.Logf("killed master %s", dead)

	// A node the client knew is gone: the first calls after a failover may
	// fail while the client reloads the cluster's layout; they are retried
	// as the actors retry them.
	again := func(what string, f func() error) {
		t.Helper()
		pace := retry.Backoff{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond}
		for {
			err := f()
			if err == nil {
				return
			}
			if pace.Wait(ctx) != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	var promoted string
	again("find the victim's new master", func() error {
		m, err := client.MasterForKey(ctx, s.keys(victim)[1])
		if err == nil && m.Options().Addr == dead {
			err = errors.New("the client still names the dead master")
		}
		if err == nil {
			promoted = m.Options().Addr
		}
		return err
	})
	// What waits in vain for a replica need not wait long here.
	s.SetReplication(Replication{Replicas: 1, Timeout: 100 * time.Millisecond})
	orphaned := 0
	for id, e := range epochs {
		var snap []byte
		again("get "+id, func() (err error) { snap, err = s.Get(ctx, id); return err })
		if string(snap) != "v"+id {
			t.Fatalf("%s after the failover: snapshot %q, want the one confirmed", id, snap)
		}
		m, err := client.MasterForKey(ctx, s.keys(id)[1])
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == promoted {
			orphaned++
			if _, _, err := s.Activate(ctx, id, false); !errors.Is(err, ErrNotReplicated) {
				t.Fatalf("%s activated on the promoted replica, which has no replica: %v, want ErrNotReplicated", id, err)
			}
			continue
		}
		var next int64
		again("activate "+id, func() (err error) { next, _, err = s.Activate(ctx, id, false); return err })
		if next <= e {
			t.Fatalf("%s activated with epoch %d after the failover, want more than %d", id, next, e)
		}
	}
	if orphaned == 0 || orphaned == len(epochs) {
		t.Fatalf("%d of %d sessions on the promoted replica, want some", orphaned, len(epochs))
	}
}

// openCluster is the client pingmcp makes of the cluster's URL.
func openCluster(t *testing.T, c *redistest.Cluster) *redis.ClusterClient {
	client, _, err := OpenRedis(c.URL(), false, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client.(*redis.ClusterClient)
}

// saveSessions creates n sessions, each with the snapshot "v" + its id, and
// returns their epochs.
func saveSessions(t *testing.T, ctx context.Context, s *RedisSnapshots, n int) map[string]int64 {
	t.Helper()
	epochs := map[string]int64{}
	for i := range n {
		id := fmt.Sprintf("session-%03d", i)
		e, _, err := s.Activate(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, id, e, []byte("v"+id), time.Hour); err != nil {
			t.Fatal(err)
		}
		epochs[id] = e
	}
	return epochs
}

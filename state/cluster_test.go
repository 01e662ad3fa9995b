package state

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// The Redis stores keep their contracts on a Redis Cluster of three
// masters: every key one script touches shares its session's (or user's)
// hash tag, so one slot, and List and Count visit every master.
func TestRedisClusterStores(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	client := c.Client()
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
	t.Run("user sessions", func(t *testing.T) {
		testUserSessions(t, NewRedisUserSessions(client, "u:"), time.Sleep)
	})
	t.Run("revocations", func(t *testing.T) {
		testRevocations(t, NewRedisRevocations(client, "r:"))
	})
	t.Run("list and count every shard", func(t *testing.T) {
		ctx := context.Background()
		s := NewRedisSnapshots(client, "list:")
		var want []string
		for i := range 200 {
			id := fmt.Sprintf("session-%03d", i)
			e, _, err := s.Activate(ctx, id, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Save(ctx, id, e, []byte("v"+id), time.Hour); err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
		holding := 0
		if err := client.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			if keys, _ := m.Keys(ctx, "list:session:*:snap").Result(); len(keys) > 0 {
				holding++
			}
			return nil
		}); err != nil || holding != 3 {
			t.Fatalf("the sessions are on %d masters (%v), want all 3", holding, err)
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

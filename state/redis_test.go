package state

import (
	"context"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// A Redis that may evict pingmcp's keys is refused by the store's check
// (the node serves no session meanwhile, and /readyz says why): an evicted
// epoch counter would let two activations of a session write, an evicted
// revocation list accept a revoked user's tokens. Found by a review of the
// deployment: nothing said Redis must not evict.
func TestRedisCheckRefusesEviction(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	if err := RedisCheck(client)(ctx); err != nil {
		t.Fatalf("redis-server's default (noeviction): %v", err)
	}
	for _, policy := range []string{"allkeys-lru", "volatile-ttl"} {
		if err := client.ConfigSet(ctx, "maxmemory-policy", policy).Err(); err != nil {
			t.Fatal(err)
		}
		err := RedisCheck(client)(ctx)
		if err == nil || !strings.Contains(err.Error(), policy) || !strings.Contains(err.Error(), "noeviction") {
			t.Errorf("maxmemory-policy %s: %v, want a refusal naming it and noeviction", policy, err)
		}
	}
}

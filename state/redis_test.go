package state

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// A Redis that may evict pingmcp's keys fails the store's check (the
// node's log says it, /readyz says "refused" while it lasts): an evicted
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

// EvictionPolicy, which a node runs at start, refuses the same; a Redis
// that does not answer is taken as it is (the node starts, and its store
// check says it is unreachable).
func TestEvictionPolicyAtStart(t *testing.T) {
	client := redistest.Start(t)
	ctx := context.Background()
	if err := EvictionPolicy(ctx, client); err != nil {
		t.Fatalf("noeviction: %v", err)
	}
	client.ConfigSet(ctx, "maxmemory-policy", "volatile-lru")
	if err := EvictionPolicy(ctx, client); !errors.Is(err, ErrEvicting) {
		t.Errorf("volatile-lru: %v, want ErrEvicting", err)
	}
	gone, _, err := OpenRedis("redis://127.0.0.1:1/0", false, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := EvictionPolicy(ctx, gone); err != nil {
		t.Errorf("a Redis that does not answer: %v, want nil (unknown)", err)
	}
}

package state

import (
	"context"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

func testRevocations(t *testing.T, r Revocations) {
	ctx := context.Background()
	now := time.Now()
	r.Revoke(ctx, RevocationKey("iss", "alice"), Revocation{At: now, Until: now.Add(time.Hour)})
	r.Revoke(ctx, RevocationKey("iss", "old"), Revocation{At: now.Add(-time.Hour), Until: now.Add(-time.Minute)})
	all, err := r.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || !all[RevocationKey("iss", "alice")].At.Equal(now) {
		t.Fatalf("revocations in force: %v", all)
	}
}

func TestMemoryRevocations(t *testing.T) { testRevocations(t, &MemoryRevocations{}) }

func TestRedisRevocations(t *testing.T) {
	testRevocations(t, NewRedisRevocations(redistest.Start(t), "r:"))
}

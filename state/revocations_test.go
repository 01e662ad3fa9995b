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

	// Revoking again (the operator re-runs after a grants failure) moves
	// the time on and keeps the later end: a 720 h revocation stays 720 h
	// when revoked again for the default 1 h, and a longer one extends it.
	long := RevocationKey("iss", "bob")
	later := now.Add(time.Minute)
	r.Revoke(ctx, long, Revocation{At: now, Until: now.Add(720 * time.Hour)})
	r.Revoke(ctx, long, Revocation{At: later, Until: later.Add(time.Hour)})
	all, _ = r.All(ctx)
	if got := all[long]; !got.At.Equal(later) || !got.Until.Equal(now.Add(720*time.Hour)) {
		t.Errorf("720h, then 1h a minute later: %+v, want at %v until %v", got, later, now.Add(720*time.Hour))
	}
	r.Revoke(ctx, RevocationKey("iss", "alice"), Revocation{At: later, Until: later.Add(2 * time.Hour)})
	all, _ = r.All(ctx)
	if got := all[RevocationKey("iss", "alice")]; !got.At.Equal(later) || !got.Until.Equal(later.Add(2*time.Hour)) {
		t.Errorf("1h, then 2h a minute later: %+v, want at %v until %v", got, later, later.Add(2*time.Hour))
	}
}

func TestMemoryRevocations(t *testing.T) { testRevocations(t, &MemoryRevocations{}) }

func TestRedisRevocations(t *testing.T) {
	testRevocations(t, NewRedisRevocations(redistest.Start(t), "r:"))
}

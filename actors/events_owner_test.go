package actors

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/state"
)

// A session's streams are opened in the store as its owner's, so that the
// memory store bounds a user's sessions together (and sessions without an
// owner as one user).
func TestEventsOpenedAsTheOwners(t *testing.T) {
	store := state.NewMemoryEvents(nil)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	alice := &sessionEvents{store: store, logger: logger}
	alice.setOwner(&auth.Principal{Issuer: "https://idp", Subject: "alice", ClientID: "client1"})
	if err := alice.Open(ctx, "s1", "post1"); err != nil {
		t.Fatal(err)
	}
	anon := &sessionEvents{store: store, logger: logger}
	anon.setOwner(nil)
	if err := anon.Open(ctx, "s2", "post1"); err != nil {
		t.Fatal(err)
	}
	key := auth.Principal{Issuer: "https://idp", Subject: "alice"}.UserKey()
	if got := store.UserBytes(key); got != state.StreamOverhead {
		t.Errorf("alice's user counts %d bytes, want her session's stream (%d)", got, state.StreamOverhead)
	}
	if got := store.UserBytes(""); got != state.StreamOverhead {
		t.Errorf("sessions without an owner count %d bytes, want one stream (%d)", got, state.StreamOverhead)
	}
}

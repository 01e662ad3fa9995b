package state

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// fixtureKeys sealed the tokens of testdata/snapshot-v1.json.
const fixtureKeys = "fixture:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// TestSnapshotV1Fixture reads a snapshot written by the release before the
// schema moved into this package (actors' record, captured as JSON): stored
// snapshots must keep loading, their sealed fields must keep opening, and
// writing the decoded snapshot again gives the same bytes.
func TestSnapshotV1Fixture(t *testing.T) {
	b, err := os.ReadFile("testdata/snapshot-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.TrimSpace(b)
	snap, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatalf("DecodeSnapshot: %v", err)
	}
	want := Snapshot{Version: 1, Issuer: "https://as.example", Subject: "alice", ClientID: "cli",
		ProtocolVersion: "2025-06-18", Initialized: true, LogLevel: "debug", Subscriptions: []string{"todo://lists/1", "todo://lists/2"},
		Node: "10.0.0.7:6330", Epoch: 42,
		Created: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Active: time.Date(2026, 12, 3, 10, 30, 0, 0, time.UTC)}
	got := snap
	got.Principal, got.Delegations, got.Initialize = "", "", nil
	if got.Version != want.Version || got.Issuer != want.Issuer || got.Subject != want.Subject || got.ClientID != want.ClientID ||
		got.ProtocolVersion != want.ProtocolVersion || got.Initialized != want.Initialized || got.LogLevel != want.LogLevel ||
		!slices.Equal(got.Subscriptions, want.Subscriptions) || got.Node != want.Node || got.Epoch != want.Epoch ||
		!got.Created.Equal(want.Created) || !got.Active.Equal(want.Active) {
		t.Errorf("decoded %+v\nwant %+v", got, want)
	}
	if snap.Principal == "" || snap.Delegations == "" || len(snap.Initialize) == 0 {
		t.Fatalf("sealed fields or initialize params lost: %+v", snap)
	}

	again, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("encoded again:\n%s\nwant the stored bytes:\n%s", again, b)
	}

	sealer, err := ParseKeys(fixtureKeys)
	if err != nil {
		t.Fatal(err)
	}
	s := &Stores{Sealer: sealer}
	p, err := s.OpenPrincipal("sess-1", snap.Principal)
	if err != nil {
		t.Fatalf("OpenPrincipal: %v", err)
	}
	if p.GetIssuer() != "https://as.example" || p.GetSubject() != "alice" || p.GetClientId() != "cli" || p.GetToken() != "user-token" ||
		!slices.Equal(p.GetScopes(), []string{"read"}) || p.GetExpiresUnix() != 1796295600 {
		t.Errorf("principal %v", p)
	}
	if _, err := s.OpenPrincipal("sess-2", snap.Principal); err == nil {
		t.Error("the principal opened for another session")
	}
	ds, err := s.OpenDelegations("sess-1", snap.Delegations)
	if err != nil {
		t.Fatalf("OpenDelegations: %v", err)
	}
	if len(ds) != 1 {
		t.Fatalf("delegations %+v, want one", ds)
	}
	d := ds[0]
	if d.Key != "https://api.example\x00read" || d.Client != "cli" || d.Token != "tok-1" || !slices.Equal(d.Scopes, []string{"read"}) ||
		!d.Expiry.Equal(time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)) || !d.Fresh.Equal(time.Date(2026, 12, 3, 10, 55, 0, 0, time.UTC)) ||
		d.Claims["jti"] != "j1" {
		t.Errorf("delegation %+v", d)
	}

	info, err := s.Describe("sess-1", b, true)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if info.ClientName != "fixture-client" || info.ClientVersion != "1.2.3" || info.Subject != "alice" || info.Epoch != 42 ||
		len(info.Delegations) != 1 || info.Delegations[0].Audience != "https://api.example" || info.Delegations[0].JTI != "j1" ||
		info.Delegations[0].Act["sub"] != "pingmcp" {
		t.Errorf("Describe: %+v", info)
	}
	tokens, err := s.Delegated("sess-1", b)
	if err != nil || !slices.Equal(tokens, []string{"tok-1"}) {
		t.Errorf("Delegated: %v, %v; want [tok-1]", tokens, err)
	}
}

// TestSnapshotSealRoundTrip: what Stores seals for a session opens for it
// alone, and nothing seals to "".
func TestSnapshotSealRoundTrip(t *testing.T) {
	s := MemoryStores(time.Hour)
	p := &envelope.Principal{Issuer: "iss", Subject: "bob", Token: "t"}
	sealed, err := s.SealPrincipal("a", p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.OpenPrincipal("a", sealed); err != nil || got.GetToken() != "t" {
		t.Errorf("OpenPrincipal: %v, %v", got, err)
	}
	if _, err := s.OpenDelegations("a", sealed); err == nil {
		t.Error("a sealed principal opened as delegations")
	}
	if none, err := s.SealPrincipal("a", nil); none != "" || err != nil {
		t.Errorf("SealPrincipal(nil) = %q, %v", none, err)
	}
	if none, err := s.SealDelegations("a", nil); none != "" || err != nil {
		t.Errorf("SealDelegations(nil) = %q, %v", none, err)
	}
}

// TestDecodeSnapshotVersion: a snapshot of another version is refused.
func TestDecodeSnapshotVersion(t *testing.T) {
	if _, err := DecodeSnapshot([]byte(`{"v":2,"created":"2026-12-03T10:00:00Z","active":"2026-12-03T10:00:00Z"}`)); err == nil {
		t.Error("version 2 decoded")
	}
	if _, err := DecodeSnapshot([]byte(`{`)); err == nil {
		t.Error("malformed JSON decoded")
	}
}

// TestStoresEnd: ending a session removes its snapshot and stops counting
// it against its user.
func TestStoresEnd(t *testing.T) {
	ctx := context.Background()
	s := MemoryStores(time.Hour)
	s.MaxSessionsPerUser = 1
	user := s.UserKey("iss", "bob")
	if ok, _, err := s.Users.Claim(ctx, user, "a", 1, time.Hour); !ok || err != nil {
		t.Fatalf("Claim: %v, %v", ok, err)
	}
	epoch, _, err := s.Snapshots.Activate(ctx, "a", true)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(Snapshot{Version: SnapshotVersion, Issuer: "iss", Subject: "bob"})
	if err := s.Snapshots.Save(ctx, "a", epoch, b, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, "a"); err != nil {
		t.Fatalf("End: %v", err)
	}
	if snap, _ := s.Snapshots.Get(ctx, "a"); snap != nil {
		t.Error("snapshot still stored")
	}
	if ok, _, err := s.Users.Claim(ctx, user, "b", 1, time.Hour); !ok || err != nil {
		t.Errorf("the user's slot was not released: %v, %v", ok, err)
	}
	if s.UserKey("", "") != "" {
		t.Error("an anonymous session is counted")
	}
}

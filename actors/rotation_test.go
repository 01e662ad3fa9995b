package actors

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/state"
)

// A session restored after the state keys rotated (a new key moved first,
// the old one kept to open what it sealed) has its tokens sealed again
// under the new key, in the snapshot its activation writes at once: its
// principal and delegations, sealed once and unchanged while its token
// was, would otherwise stay under the old key in every later write, and
// the session would be lost at its next activation once the old key was
// dropped a --session-idle-timeout after the rotation (deploy/secrets.yaml).
func TestRestoredSessionResealedUnderNewestKey(t *testing.T) {
	d := fuzzStores(t) // the old key, "fuzz", alone
	ctx := t.Context()
	epoch, _, err := d.Snapshots.Activate(ctx, fuzzSession, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Snapshots.Save(ctx, fuzzSession, epoch, fuzzSnapshot(t, d), time.Hour); err != nil {
		t.Fatal(err)
	}
	newKey := "k2:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	if d.Sealer, err = state.ParseKeys(newKey + "," + fuzzStateKey); err != nil {
		t.Fatal(err)
	}
	system, props := testSessions(t, Config{Stores: d, Authenticated: true})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	if status := fuzzForward(t, system.Root, pid, fuzzOwner, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("the owner's ping after the rotation: %d", status)
	}

	// The new key alone, as once the old one is dropped, opens what the
	// activation wrote (off its goroutine: awaited).
	only, err := state.ParseKeys(newKey)
	if err != nil {
		t.Fatal(err)
	}
	after := &state.Stores{Sealer: only}
	var rec state.Snapshot
	for deadline := time.Now().Add(forwardTimeout); ; time.Sleep(10 * time.Millisecond) {
		snap, err := d.Snapshots.Get(ctx, fuzzSession)
		if err != nil {
			t.Fatal(err)
		}
		if rec, err = state.DecodeSnapshot(snap); err != nil {
			t.Fatal(err)
		}
		if rec.Epoch != 1 || time.Now().After(deadline) {
			break // written by the activation (fuzzSnapshot's says 1)
		}
	}
	if !strings.HasPrefix(rec.Principal, "k2.") || !strings.HasPrefix(rec.Delegations, "k2.") {
		t.Fatalf("after the restore, principal %.8q… and delegations %.8q…: want both sealed under k2", rec.Principal, rec.Delegations)
	}
	p, err := after.OpenPrincipal(fuzzSession, rec.Principal)
	if err != nil || p.GetToken() != fuzzOwner.Token {
		t.Errorf("the principal under the new key alone: %v", err)
	}
	ds, err := after.OpenDelegations(fuzzSession, rec.Delegations)
	if err != nil || len(ds) != 1 || ds[0].Token != fuzzDelegations[0].Token {
		t.Errorf("the delegations under the new key alone: %d, %v", len(ds), err)
	}
}

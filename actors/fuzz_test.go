package actors

// FuzzSnapshotDecode: tampered or truncated session snapshots fail closed.
// The seed corpus is under testdata/fuzz/FuzzSnapshotDecode/; scripts/test.sh
// fuzzes the target for a bounded time.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/proto"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
)

// The fuzzed snapshots' session, and the key their tokens are sealed under:
// fixed (and made for this test only), so that the sealed values of the
// committed corpus open on every run.
const (
	fuzzSession  = "fuzz-session-0000000000"
	fuzzStateKey = "fuzz:ZnV6ei1zbmFwc2hvdC1rZXktZm9yLXRlc3RzLW9ubHk="
)

var (
	// fuzzOwner is the principal the fuzzed session belongs to.
	fuzzOwner = &envelope.Principal{
		Issuer: "https://issuer.fuzz.test", Subject: "alice", ClientId: "fuzz-client",
		Scopes: []string{"mcp:tools"}, ExpiresUnix: 4102444800, Token: "alice-access-token", TokenId: "jti-alice",
		Audience: []string{"https://mcp.fuzz.test/mcp"}, ClaimsJson: []byte(`{"sub":"alice"}`),
	}
	// fuzzDelegations are the exchanged tokens the session caches.
	fuzzDelegations = []state.Delegation{{
		Key: "https://api.fuzz.test\x00todo_api:read", Token: "delegated-token", Scopes: []string{"todo_api:read"},
		Expiry: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), Fresh: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		Claims: map[string]any{"jti": "jti-delegated", "act": map[string]any{"sub": "pingmcp"}},
	}}
	// fuzzMallory is another user's principal.
	fuzzMallory = &envelope.Principal{Issuer: "https://issuer.fuzz.test", Subject: "mallory", ClientId: "fuzz-client",
		Scopes: []string{"mcp:tools"}, ExpiresUnix: 4102444800, Token: "mallory-access-token"}
)

func fuzzStores(tb testing.TB) *state.Stores {
	sealer, err := state.ParseKeys(fuzzStateKey)
	if err != nil {
		tb.Fatal(err)
	}
	snaps := &state.MemorySnapshots{}
	return &state.Stores{Snapshots: snaps, Events: state.NewMemoryEvents(snaps), Sealer: sealer, SessionTTL: time.Hour,
		Revocations: &state.MemoryRevocations{}}
}

// fuzzSnapshot is a snapshot of fuzzSession as an actor writes it: its owner
// in clear, its principal and delegations sealed, its handshake.
func fuzzSnapshot(tb testing.TB, d *state.Stores) []byte {
	principal, err := d.SealPrincipal(fuzzSession, fuzzOwner)
	if err != nil {
		tb.Fatal(err)
	}
	delegations, err := d.SealDelegations(fuzzSession, fuzzDelegations)
	if err != nil {
		tb.Fatal(err)
	}
	rec := newSnapshot(idOf(fuzzOwner))
	rec.Principal, rec.Delegations = principal, delegations
	rec.Initialize = json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}`)
	rec.ProtocolVersion, rec.Initialized, rec.LogLevel = "2025-11-25", true, "info"
	rec.Subscriptions = []string{"test://watched-resource"}
	rec.Node, rec.Epoch = "127.0.0.1:1", 1
	b, err := json.Marshal(rec)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzSnapshotDecode feeds mutated and truncated snapshots of a session to
// what reads them: state.DecodeSnapshot, the opening of the sealed principal and
// delegations, Describe and Delegated (the operators' readers), and the
// actor's restore path (an activation of the session, asked by another user
// and by its owner). It asserts:
//   - no panic, no hang;
//   - a sealed value opens only as what was sealed (the owner's principal,
//     its delegations), and never in another session;
//   - Describe and Delegated show no token or delegation but the original's;
//   - the rehydrated session serves its owner only: another user gets 404,
//     and the owner is served only if the snapshot's clear-text owner is the
//     sealed principal's (a snapshot stripped of both restores a session
//     no authenticated user is admitted to);
//   - a snapshot that is refused is left as it was (or, if it named no
//     owner, written again still naming none).
func FuzzSnapshotDecode(f *testing.F) {
	d := fuzzStores(f)
	snap := fuzzSnapshot(f, d)
	f.Add(snap)
	f.Add(snap[:len(snap)/2])
	f.Add([]byte{})
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"initialize":{}}`))
	var rec map[string]any
	json.Unmarshal(snap, &rec)
	variant := func(change func(map[string]any)) []byte {
		m := map[string]any{}
		for k, v := range rec {
			m[k] = v
		}
		change(m)
		b, _ := json.Marshal(m)
		return b
	}
	sealed := rec["principal"].(string)
	f.Add(variant(func(m map[string]any) { m["sub"] = "mallory" }))
	f.Add(variant(func(m map[string]any) { delete(m, "principal") }))
	f.Add(variant(func(m map[string]any) {
		delete(m, "iss")
		delete(m, "sub")
		delete(m, "client_id")
		delete(m, "principal")
	}))
	f.Add(variant(func(m map[string]any) { m["principal"] = sealed[:len(sealed)-1] }))
	f.Add(variant(func(m map[string]any) { m["principal"] = strings.Replace(sealed, "fuzz.", "other.", 1) }))
	f.Add(variant(func(m map[string]any) { m["delegations"] = sealed })) // a sealed value moved to another field
	f.Add(variant(func(m map[string]any) { m["v"] = 2 }))
	f.Add(variant(func(m map[string]any) { m["initialize"] = "not params" }))
	f.Add(variant(func(m map[string]any) { m["log_level"] = "\x00" }))
	f.Add(bytes.Replace(snap, []byte(`"sub":"alice"`), []byte(`"sub":"alice","SUB":"mallory"`), 1))
	f.Add(bytes.Replace(snap, []byte(`"sub":"alice"`), []byte(`"sub":"mallory","sub":"alice"`), 1))

	// The restore path: session actors on a plain actor system, as
	// rehydrate_test.go runs them.
	system, props := testSessions(f, Config{Implementation: &mcp.Implementation{Name: "pingmcp", Version: "fuzz"}, Stores: d, Authenticated: true})
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, b []byte) {
		owner, openErr := checkSnapshotReaders(t, d, b)
		var decodeErr *decodeError
		if errors.As(openErr, &decodeErr) {
			return // restore stops at state.DecodeSnapshot too: no actor needed to see it
		}

		// Store b as the session's snapshot and activate the session.
		epoch, _, err := d.Snapshots.Activate(ctx, fuzzSession, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Snapshots.Save(ctx, fuzzSession, epoch, b, time.Hour); err != nil {
			t.Fatal(err)
		}
		pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
		defer func() {
			if err := system.Root.StopFuture(pid).Wait(); err != nil {
				t.Fatal(err)
			}
		}()
		ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
		if status := fuzzForward(t, system.Root, pid, fuzzMallory, ping); status != http.StatusNotFound {
			t.Fatalf("another user's request on the restored session: %d", status)
		}
		status := fuzzForward(t, system.Root, pid, fuzzOwner, ping)
		switch status {
		case http.StatusOK:
			// Served: the session was restored for its owner, which the
			// sealed principal vouches for.
			if openErr != nil || !owner {
				t.Fatalf("restored and served, although its principal does not open as its owner's (%v)", openErr)
			}
		case http.StatusNotFound:
			// Refused: the snapshot is left as it was, for its expiry; or
			// it had no owner at all, was restored as such (admitting no
			// authenticated user) and written again, still without one.
			got, err := d.Snapshots.Get(ctx, fuzzSession)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b) && (!ownerless(b) || !ownerless(got)) {
				t.Fatalf("a refused snapshot was changed:\n%q\n%q", b, got)
			}
		default:
			t.Fatalf("the owner's request: %d", status)
		}
	})
}

// checkSnapshotReaders runs the readers of a snapshot on b. owner says
// whether b names the sealed principal's owner in clear and its principal
// opens; openErr is why its sealed values did not open.
func checkSnapshotReaders(t *testing.T, d *state.Stores, b []byte) (owner bool, openErr error) {
	rec, err := state.DecodeSnapshot(b)
	_, derr := d.Describe(fuzzSession, b, true)
	_, gerr := d.Delegated(fuzzSession, b)
	if err != nil {
		if derr == nil || gerr == nil {
			t.Fatalf("undecodable snapshot (%v) read by Describe (%v) or Delegated (%v)", err, derr, gerr)
		}
		return false, &decodeError{err}
	}
	p, perr := d.OpenPrincipal(fuzzSession, rec.Principal)
	if perr == nil && p != nil && !proto.Equal(p, fuzzOwner) {
		t.Fatalf("the sealed principal opened as %v", p)
	}
	if rec.Principal != "" {
		if _, err := d.OpenPrincipal("another-session", rec.Principal); err == nil {
			t.Fatal("a sealed principal opened in another session")
		}
		if _, err := d.OpenDelegations(fuzzSession, rec.Principal); err == nil {
			t.Fatal("a sealed principal opened as delegations")
		}
	}
	ds, oerr := d.OpenDelegations(fuzzSession, rec.Delegations)
	if oerr == nil && len(ds) > 0 && !reflect.DeepEqual(ds, fuzzDelegationsOpened) {
		t.Fatalf("the sealed delegations opened as %+v", ds)
	}
	if info, err := d.Describe(fuzzSession, b, true); err == nil {
		for _, di := range info.Delegations {
			if di.JTI != "jti-delegated" || di.Audience != "https://api.fuzz.test" {
				t.Fatalf("Describe shows delegation %+v", di)
			}
		}
		if info.ID != fuzzSession {
			t.Fatalf("Describe names session %q", info.ID)
		}
	}
	if tokens, err := d.Delegated(fuzzSession, b); err == nil {
		for _, tok := range tokens {
			if tok != "delegated-token" {
				t.Fatalf("Delegated returns token %q", tok)
			}
		}
	}
	if perr != nil {
		return false, perr
	}
	if oerr != nil {
		return false, oerr
	}
	return p != nil && rec.Issuer == p.Issuer && rec.Subject == p.Subject && rec.ClientID == p.ClientId, nil
}

// ownerless says whether snapshot b names no owner and holds no principal.
func ownerless(b []byte) bool {
	rec, err := state.DecodeSnapshot(b)
	return err == nil && rec.Issuer == "" && rec.Subject == "" && rec.ClientID == "" && rec.Principal == ""
}

// decodeError is a snapshot state.DecodeSnapshot refused.
type decodeError struct{ error }

// fuzzDelegationsOpened is fuzzDelegations as a snapshot gives them back
// (through JSON).
var fuzzDelegationsOpened = func() []state.Delegation {
	b, _ := json.Marshal(fuzzDelegations)
	var ds []state.Delegation
	json.Unmarshal(b, &ds)
	return ds
}()

// forwardTimeout bounds one forwarded request: the actor answers or fails
// it long before.
const forwardTimeout = 15 * time.Second

// fuzzForward sends one POST to the session actor at pid as the edge does,
// from principal, and returns the status of its response.
func fuzzForward(t *testing.T, root *actor.RootContext, pid *actor.PID, principal *envelope.Principal, body string) int32 {
	t.Helper()
	req := &envelope.Request{
		Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Body: []byte(body), Window: 16, Principal: principal,
		Headers: slices.Clone(sessionHeaders),
	}
	done := make(chan int32, 1)
	receiver := root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			p := m.GetPart()
			if p.GetSeq() == 0 {
				select {
				case done <- p.GetStatus():
				default:
				}
			}
			if p.GetFinal() {
				ctx.Stop(ctx.Self())
			} else {
				ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: req.Id, Seq: p.GetSeq()}}})
			}
		}
	}))
	select {
	case status := <-done:
		return status
	case <-time.After(forwardTimeout):
		root.Stop(receiver)
		t.Fatalf("no answer within %v", forwardTimeout)
		return 0
	}
}

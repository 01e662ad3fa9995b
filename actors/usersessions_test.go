package actors

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/state"
)

// A user's sessions are capped whatever client opens them; the refusal is
// a 429 naming the limit, with Retry-After until a slot would free up; an
// operator's End frees a slot; without a cap, or without an owner, nothing
// is counted.
func TestSessionsPerUser(t *testing.T) {
	ctx := context.Background()
	d := state.MemoryStores(30 * time.Minute)
	d.MaxSessionsPerUser = 2
	alice := func(client string) *envelope.Principal {
		return &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: client}
	}
	claim := func(session string, p *envelope.Principal) *sessionCap {
		t.Helper()
		refused, err := claimSession(ctx, d, session, p)
		if err != nil {
			t.Fatal(err)
		}
		return refused
	}
	if claim("s1", alice("c1")) != nil || claim("s2", alice("c2")) != nil {
		t.Fatal("alice's first two sessions refused")
	}
	refused := claim("s3", alice("c3"))
	if refused == nil {
		t.Fatal("alice's third session, through a third client, admitted")
	}
	if claim("b1", &envelope.Principal{Issuer: "https://idp", Subject: "bob", ClientId: "c1"}) != nil {
		t.Error("bob refused")
	}
	if claim("anon", nil) != nil {
		t.Error("a session without an owner was counted")
	}

	p := refused.answer(&envelope.Request{Id: "r", Method: http.MethodPost, Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize"}`)})
	h := http.Header{}
	envelope.ToHTTP(p.Headers, h)
	var body struct {
		Error struct {
			Code int
			Data struct{ Limit string }
		}
	}
	if err := json.Unmarshal(p.Body, &body); err != nil || p.Status != http.StatusTooManyRequests || body.Error.Code != rpcerr.Limited ||
		body.Error.Data.Limit != "sessions_per_user" || h.Get("Retry-After") != "1800" {
		t.Errorf("refusal: %d %v %s", p.Status, h, p.Body)
	}

	// An operator ends s1: its slot is free.
	epoch, _, _ := d.Snapshots.Activate(ctx, "s1", true)
	rec := newSnapshot(idOf(alice("c1")))
	b, _ := json.Marshal(rec)
	if err := d.Snapshots.Save(ctx, "s1", epoch, b, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := d.End(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if claim("s3", alice("c3")) != nil {
		t.Error("a slot freed by End is still taken")
	}

	d.MaxSessionsPerUser = 0
	for _, s := range []string{"x1", "x2", "x3"} {
		if claim(s, alice("c1")) != nil {
			t.Error("refused without a cap")
		}
	}
}

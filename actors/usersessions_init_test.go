package actors

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
)

// An initialize the SDK accepts and the snapshot then refuses (its result
// makes the snapshot exceed its bound, by the protocol version the SDK
// negotiated) leaves no session behind: its slot among its user's sessions
// is freed at once, not at the idle timeout.
func TestRefusedInitializeFreesItsSlot(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	d.MaxSessionsPerUser = 1
	d.MaxSnapshotBytes = 8 << 10
	system, props := testSessions(t, Config{Stores: d, Authenticated: true})
	alice := &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: "c"}
	initialize := func(version string, pad int) (string, string) {
		id := rand.Text()
		pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(id, "session")))
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{"experimental":{"pad":{"x":%q}}},"clientInfo":{"name":"t","version":"1"}}}`,
			version, strings.Repeat("x", pad))
		return id, postInitialize(t, system.Root, pid, alice, body)
	}
	user := d.UserKey(alice.Issuer, alice.Subject)
	freed := func() bool {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if ok, _, _ := d.Users.Claim(t.Context(), user, "probe", 1, time.Hour); ok {
				d.Users.Release(t.Context(), user, "probe")
				return true
			}
		}
		return false
	}
	// The smallest padding the snapshot refuses when it names a version;
	// each try that passes is then released.
	pad := 0
	for lo, hi := 0, 8<<10; lo < hi; {
		mid := (lo + hi) / 2
		id, body := initialize("2025-11-25", mid)
		if strings.Contains(body, "snapshot_bytes") {
			hi, pad = mid, mid
			continue
		}
		lo = mid + 1
		d.Users.Release(t.Context(), user, id)
	}
	if pad == 0 {
		t.Fatal("no initialize was refused for its snapshot's size")
	}
	if !freed() {
		t.Fatal("a slot still taken before the test")
	}
	// Without a version the params fit (shorter by the version's 10 bytes,
	// and the snapshot's protocol_version, 32, left out); the result,
	// naming the version the SDK chose, does not.
	_, body := initialize("", pad+16)
	if !strings.Contains(body, "snapshot_bytes") {
		t.Fatalf("initialize whose result exceeds the bound: %.300s", body)
	}
	if !freed() {
		t.Error("a refused initialize still counts against its user")
	}
}

// postInitialize forwards a POST without a session id from principal, as
// the edge does, and returns the body answered.
func postInitialize(t *testing.T, root *actor.RootContext, pid *actor.PID, principal *envelope.Principal, body string) string {
	t.Helper()
	req := &envelope.Request{
		Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Body: []byte(body), Window: 16, Principal: principal,
		Headers: []*envelope.Header{
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
		},
	}
	done := make(chan string, 1)
	var out []byte
	receiver := root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			p := m.GetPart()
			out = append(out, p.GetBody()...)
			if p.GetFinal() {
				done <- string(out)
				ctx.Stop(ctx.Self())
			} else {
				ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: req.Id, Seq: p.GetSeq()}}})
			}
		}
	}))
	select {
	case b := <-done:
		return b
	case <-time.After(forwardTimeout):
		root.Stop(receiver)
		t.Fatalf("no answer within %v", forwardTimeout)
		return ""
	}
}

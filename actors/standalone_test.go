package actors

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

// A session used for longer than --events-ttl without a server
// notification outside its requests (nothing appended to its standalone
// stream "") loses that stream's record; every GET that opens the
// standalone stream afresh (no Last-Event-ID: a client starting, or
// reopening it after a token refresh) is then refused 400 "failed to
// replay events", for the rest of the session's life.
func TestStandaloneGETAfterEventsTTL(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	ev := d.Events.(*state.MemoryEvents)
	ev.SetOptions(state.EventOptions{TTL: time.Minute})
	var mu sync.Mutex
	now := time.Now()
	ev.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	testStandaloneAfterTTL(t, d, func() { mu.Lock(); now = now.Add(40 * time.Second); mu.Unlock() })
}

// The same in Redis (afterScript finds the standalone stream's record
// expired and answers "unknown", mcp.ErrEventsPurged).
func TestStandaloneGETAfterEventsTTLRedis(t *testing.T) {
	client := redistest.Start(t)
	key := make([]byte, 32)
	rand.Read(key)
	sealer, err := state.ParseKeys("k1:" + base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	d := &state.Stores{Snapshots: state.NewRedisSnapshots(client, ""), Events: state.NewRedisEvents(client, "", state.EventOptions{TTL: 2 * time.Second}),
		Sealer: sealer, SessionTTL: time.Hour}
	testStandaloneAfterTTL(t, d, func() { time.Sleep(1500 * time.Millisecond) })
}

func testStandaloneAfterTTL(t *testing.T, d *state.Stores, advance func()) {
	system, props := testSessions(t, Config{Stores: d, Authenticated: true})
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	alice := &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: "c1", ExpiresUnix: time.Now().Add(time.Hour).Unix(), Token: "t"}
	root := system.Root
	if body := postInitialize(t, root, pid, alice, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, root, pid, alice, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	get := func() *envelope.ResponsePart {
		req := &envelope.Request{
			Id: rand.Text(), Method: http.MethodGet, Path: "/mcp", Window: 16, Principal: alice,
			Headers: []*envelope.Header{
				{Name: "Accept", Values: []string{"text/event-stream"}},
				{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
				{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
			},
		}
		r := forwardRequest(root, pid, req)
		head := await(t, r.head, "GET")
		if head.GetStatus() != http.StatusOK {
			head.Body = []byte(await(t, r.body, "GET's body"))
		} else {
			// The client goes away: the stream ends.
			root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
			await(t, r.body, "the GET's end")
		}
		return head
	}
	if head := get(); head.GetStatus() != http.StatusOK {
		t.Fatalf("first GET: %d %s", head.GetStatus(), head.GetBody())
	}
	// The session keeps being used (a ping now and then) past
	// --events-ttl; the client's standalone stream was cut (its token
	// expired, say), and it opens a new one.
	for i := 1; i <= 3; i++ {
		advance()
		if status := fuzzForward(t, root, pid, alice, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, i)); status != http.StatusOK {
			t.Fatalf("ping: %d", status)
		}
	}
	if head := get(); head.GetStatus() != http.StatusOK {
		t.Fatalf("a new standalone GET (no Last-Event-ID) on a live session: %d %s, want 200", head.GetStatus(), head.GetBody())
	}
}

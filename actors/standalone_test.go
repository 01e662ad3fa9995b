package actors

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
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
	d := redisStores(t, state.EventOptions{TTL: 2 * time.Second})
	testStandaloneAfterTTL(t, d, func() { time.Sleep(1500 * time.Millisecond) })
}

// redisStores are the stores of a fresh Redis, its events kept as opts
// says.
func redisStores(t *testing.T, opts state.EventOptions) *state.Stores {
	client := redistest.Start(t)
	key := make([]byte, 32)
	rand.Read(key)
	sealer, err := state.ParseKeys("k1:" + base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	return &state.Stores{Snapshots: state.NewRedisSnapshots(client, ""), Events: state.NewRedisEvents(client, "", opts),
		Sealer: sealer, SessionTTL: time.Hour}
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

// A notification sent to the standalone stream while no GET was open (a
// client opens its GET a moment after initialized) reached no stream: the
// next GET without Last-Event-ID delivers it. Found by a review of the
// change that made such a GET resume from the stream's end: it skipped
// them.
func TestStandaloneGETDeliversWhatNoStreamCarried(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	root, pid, p := runningSessionOn(t, d, Config{})
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_trigger_prompt_change","arguments":{}}}`); status != http.StatusOK {
		t.Fatalf("test_trigger_prompt_change: %d", status)
	}
	// The go-sdk tells a list change a moment later: once it is stored.
	awaitStandaloneStored(t, d, 1)
	g := openGET(t, root, pid, p)
	if g.head.GetStatus() != http.StatusOK {
		t.Fatalf("GET: %d %s", g.head.GetStatus(), g.head.GetBody())
	}
	if !strings.Contains(string(g.head.GetBody()), "list_changed") && !g.until("list_changed", forwardTimeout) {
		t.Error("the list change no stream carried was never delivered")
	}
}

// A GET without Last-Event-ID reaching an activation a newer one fenced is
// answered "not served" (the edge sends it again), as is one while the
// store is away for a moment. Found by a review: the refusal was never
// sent, and the edge waited for good.
func TestStandaloneGETRefusedIsAnswered(t *testing.T) {
	t.Run("fenced", func(t *testing.T) {
		d := state.MemoryStores(time.Hour)
		system, props := testSessions(t, Config{Stores: d})
		root := system.Root
		ci := func() *protocluster.ClusterIdentity { return protocluster.NewClusterIdentity(fuzzSession, "session") }
		stale := root.Spawn(protocluster.WithClusterIdentity(props, ci()))
		p := principal("tok-a")
		if body := postInitialize(t, root, stale, p, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
			t.Fatalf("initialize: %s", body)
		}
		if status := fuzzForward(t, root, stale, p, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
			t.Fatalf("initialized: %d", status)
		}
		// No write of the stale activation's own may be left to tell it
		// first (it would stop, and the GET find it gone, which the edge
		// learns from its watch): its handshake's journal is emptied.
		journalEmpty := func() {
			t.Helper()
			for deadline := time.Now().Add(forwardTimeout); ; time.Sleep(5 * time.Millisecond) {
				if pending, err := d.Events.PendingRequests(t.Context(), fuzzSession); err == nil && len(pending) == 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("the session's journal never emptied")
				}
			}
		}
		if status := fuzzForward(t, root, stale, p, `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}`); status != http.StatusOK {
			t.Fatalf("setLevel: %d", status)
		}
		journalEmpty()
		current := root.Spawn(protocluster.WithClusterIdentity(props, ci())) // a newer epoch
		if status := fuzzForward(t, root, current, p, `{"jsonrpc":"2.0","id":2,"method":"ping"}`); status != http.StatusOK {
			t.Fatalf("ping on the current activation: %d", status)
		}
		journalEmpty()
		if head := openGET(t, root, stale, p).head; head.GetStatus() != http.StatusServiceUnavailable || !notServed(head) {
			t.Fatalf("GET on the stale activation: %d %s, want 503 not served", head.GetStatus(), head.GetBody())
		}
	})
	t.Run("store away", func(t *testing.T) {
		d := state.MemoryStores(time.Hour)
		d.Events = failingOpenLast{d.Events}
		root, pid, p := runningSessionOn(t, d, Config{})
		if head := openGET(t, root, pid, p).head; head.GetStatus() != http.StatusServiceUnavailable || !notServed(head) {
			t.Fatalf("GET: %d %s, want 503 not served", head.GetStatus(), head.GetBody())
		}
	})
}

// notServed says whether p is an answer the edge sends again.
func notServed(p *envelope.ResponsePart) bool {
	for _, h := range p.GetHeaders() {
		if h.Name == envelope.NotServedHeader {
			return true
		}
	}
	return false
}

// failingOpenLast is a store whose OpenLast fails, as Redis does when it
// is unreachable for a moment.
type failingOpenLast struct{ state.Events }

func (failingOpenLast) OpenLast(context.Context, string, string, int64) (int, int, int, error) {
	return 0, 0, 0, errors.New("redis: connection refused")
}

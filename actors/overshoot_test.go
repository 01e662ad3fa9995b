package actors

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
)

// slowSaves is a snapshot store whose saves take a second while slow (a
// Redis that lags).
type slowSaves struct {
	state.Snapshots
	slow atomic.Bool
}

func (s *slowSaves) Save(ctx context.Context, session string, epoch int64, snapshot []byte, ttl time.Duration) error {
	if s.slow.Load() {
		time.Sleep(time.Second)
	}
	return s.Snapshots.Save(ctx, session, epoch, snapshot, ttl)
}

// slowHandshake is a session actor bounded to limit running calls,
// initialized, whose handshake's end (notifications/initialized) waits for
// its snapshot's write, a second, in the go-sdk's handler queue, as the
// test goes on.
func slowHandshake(t *testing.T, limit int) (*actor.RootContext, *actor.PID, *envelope.Principal) {
	t.Helper()
	d := state.MemoryStores(time.Hour)
	slow := &slowSaves{Snapshots: d.Snapshots}
	d.Snapshots = slow
	system, props := testSessions(t, Config{Stores: d, MaxRunningCalls: limit})
	root := system.Root
	pid := root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	p := principal("tok-a")
	if body := postInitialize(t, root, pid, p, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	slow.slow.Store(true)
	t.Cleanup(func() { slow.slow.Store(false) })
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	return root, pid, p
}

// MaxRunningCalls holds for POSTs whose clients leave before their
// handlers start. The go-sdk runs a session's notifications one at a time,
// in order with its requests' dispatch (jsonrpc2's handler queue): while a
// notification's handler waits (notifications/initialized waits for its
// snapshot write, up to saveWait), the calls published after it are not
// started. A POST left then ended its flight, which gave its place back,
// though its call was still to start: every call so admitted and left
// started once the queue moved, beyond the bound (found by a review: six
// under a bound of two).
func TestRunningCallsBoundCallsLeftBeforeTheyStart(t *testing.T) {
	const limit, sent = 2, 6
	root, pid, p := slowHandshake(t, limit)
	taken := 0
	for i := range sent {
		req := elicitationCall(p, 10+i)
		r := forwardRequest(root, pid, req)
		if head := await(t, r.head, "a call's answer"); head.GetStatus() != http.StatusOK {
			continue
		}
		taken++
		// The client leaves (the edge's Cancel), its call not started;
		// its response ends.
		root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
		await(t, r.body, "the left call's response end")
	}
	if taken > limit {
		t.Fatalf("%d calls taken while the go-sdk had started none, under a bound of %d", taken, limit)
	}
}

// A notification's handler is no call: MaxRunningCalls counts calls alone.
// A session's notifications/initialized waits for its snapshot's write (a
// second here): calls sent meanwhile are taken up to the bound all the
// same (a burst of two under a bound of two had one refused 429).
func TestRunningCallsCountNoNotification(t *testing.T) {
	const limit = 2
	root, pid, p := slowHandshake(t, limit)
	for i := range limit {
		if status := fuzzForward(t, root, pid, p, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`, i+1)); status != http.StatusOK {
			t.Fatalf("call %d of %d under a bound of %d, the handshake's end waiting for its write: %d", i+1, limit, limit, status)
		}
	}
}

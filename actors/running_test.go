package actors

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcerr"
	"github.com/pingmcp/pingmcp/state"
)

// runningSession is a session actor whose client takes elicitations,
// initialized, with cfg.
func runningSession(t *testing.T, cfg Config) (*actor.RootContext, *actor.PID, *envelope.Principal) {
	t.Helper()
	return runningSessionOn(t, state.MemoryStores(time.Hour), cfg)
}

// runningSessionOn is runningSession with its stores, d.
func runningSessionOn(t *testing.T, d *state.Stores, cfg Config) (*actor.RootContext, *actor.PID, *envelope.Principal) {
	t.Helper()
	cfg.Stores = d
	system, props := testSessions(t, cfg)
	root := system.Root
	pid := root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	p := principal("tok-a")
	if body := postInitialize(t, root, pid, p, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
		t.Fatalf("initialize: %s", body)
	}
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
		t.Fatalf("initialized: %d", status)
	}
	return root, pid, p
}

// leaveElicitation calls test_elicitation as request id, waits for the
// tool's elicitation, and leaves it as a client that closes its stream
// does (the edge's Cancel): the call runs on, waiting. It returns the
// elicitation's JSON-RPC id, or the refusal's status if the call was
// refused.
func leaveElicitation(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal, id int) (json.RawMessage, int32) {
	t.Helper()
	req := elicitationCall(p, id)
	type outcome struct {
		elicit json.RawMessage
		status int32
	}
	out := make(chan outcome, 1)
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			part := m.GetPart()
			if part.GetSeq() == 0 && part.GetStatus() != http.StatusOK {
				out <- outcome{status: part.GetStatus()}
				ctx.Stop(ctx.Self())
				return
			}
			for _, line := range strings.Split(string(part.GetBody()), "\n") {
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok || !strings.Contains(data, `"elicitation/create"`) {
					continue
				}
				var msg struct{ ID json.RawMessage }
				json.Unmarshal([]byte(data), &msg)
				out <- outcome{elicit: msg.ID, status: http.StatusOK}
			}
			ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: req.Id, Seq: part.GetSeq()}}})
		}
	}))
	o := await(t, out, "the tool's elicitation")
	if o.status == http.StatusOK {
		// The client leaves: the edge tells the actor its stream closed.
		root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
	}
	return o.elicit, o.status
}

// elicitationCall is p's POST calling test_elicitation as request id.
func elicitationCall(p *envelope.Principal, id int) *envelope.Request {
	return &envelope.Request{
		Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Window: 16, Principal: p,
		Body:    []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`, id)),
		Headers: slices.Clone(sessionHeaders),
	}
}

// A call whose client left (its stream closed: on the 2025-11-25 protocol
// no cancellation) while its tool waits for the client's answer to an
// elicitation does not hold its actor's stop: the tool's context ends as
// the actor stops (passivated idle, moved, fenced), rather than the SDK's
// close waiting for an answer that will not come, with the actor's
// mailbox, and every request sent to it, stuck behind it for good.
func TestStopEndsACallWaitingOnItsClient(t *testing.T) {
	root, pid, p := runningSession(t, Config{})
	if _, status := leaveElicitation(t, root, pid, p, 1); status != http.StatusOK {
		t.Fatalf("the call: %d", status)
	}
	if err := root.StopFuture(pid).Wait(); err != nil {
		t.Fatalf("the actor did not stop, its tool waiting for an elicitation's answer: %v", err)
	}
}

// Calls whose clients left them (closed their streams) count against
// MaxRunningCalls (the node's --max-concurrent-requests, per session): a
// client cannot start calls without bound by leaving each. The client's
// answer to an elicitation (a POST of a response, no request) is taken
// whatever the count, and the call it ends frees its place. Found by an
// attack review: eight such calls ran under a limit of two, counted by no
// limit.
func TestLeftCallsCountAgainstTheLimit(t *testing.T) {
	root, pid, p := runningSession(t, Config{MaxRunningCalls: 2})
	first, status := leaveElicitation(t, root, pid, p, 1)
	if status != http.StatusOK {
		t.Fatalf("the first call: %d", status)
	}
	if _, status := leaveElicitation(t, root, pid, p, 2); status != http.StatusOK {
		t.Fatalf("the second call: %d", status)
	}
	if _, status := leaveElicitation(t, root, pid, p, 3); status != http.StatusTooManyRequests {
		t.Fatalf("a third call with two left running: %d, want 429", status)
	}
	// The client answers the first elicitation: its call ends.
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","id":`+string(first)+`,"result":{"action":"decline"}}`); status != http.StatusAccepted {
		t.Fatalf("the elicitation's answer: %d", status)
	}
	var status4 int32
	for deadline := time.Now().Add(forwardTimeout); ; {
		// The call ends on its own goroutine once it has its answer.
		if _, status4 = leaveElicitation(t, root, pid, p, 4); status4 != http.StatusTooManyRequests || time.Now().After(deadline) {
			break
		}
	}
	if status4 != http.StatusOK {
		t.Fatalf("a call once one of the two ended: %d, want it taken", status4)
	}
}

// A DELETE of a session whose client left a call waiting for an
// elicitation's answer ends the session (204), rather than wait, in the
// go-sdk's close of the session, for a handler that waits for good. Found
// by a review.
func TestDeleteWithALeftCall(t *testing.T) {
	root, pid, p := runningSession(t, Config{})
	if _, status := leaveElicitation(t, root, pid, p, 1); status != http.StatusOK {
		t.Fatalf("the call: %d", status)
	}
	req := &envelope.Request{
		Id: rand.Text(), Method: http.MethodDelete, Path: "/mcp", Window: 16, Principal: p,
		Headers: []*envelope.Header{
			{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
		},
	}
	if head := await(t, forwardRequest(root, pid, req).head, "the DELETE's answer"); head.GetStatus() != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", head.GetStatus(), head.GetBody())
	}
}

// MaxRunningCalls holds for POSTs that come at once: those admitted
// count from their admission, not from when their handlers start on
// their own goroutines (a burst overshot the bound by the POSTs not yet
// dispatched).
func TestRunningCallsBoundABurst(t *testing.T) {
	const limit, sent = 2, 8
	root, pid, p := runningSession(t, Config{MaxRunningCalls: limit})
	var rs []*response
	for i := range sent {
		rs = append(rs, forwardRequest(root, pid, elicitationCall(p, i+1)))
	}
	taken := 0
	for _, r := range rs {
		switch head := await(t, r.head, "an answer"); head.GetStatus() {
		case http.StatusOK:
			taken++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("a call: %d %s", head.GetStatus(), head.GetBody())
		}
	}
	if taken != limit {
		t.Fatalf("%d of %d calls sent at once were taken, want %d", taken, sent, limit)
	}
}

// gatedActivations holds each activation of a session until its gate is
// opened.
type gatedActivations struct {
	state.Snapshots
	gate chan struct{} // nil: activations go through
}

func (g *gatedActivations) Activate(ctx context.Context, session string, create bool) (int64, []byte, error) {
	if g.gate != nil {
		<-g.gate
	}
	return g.Snapshots.Activate(ctx, session, create)
}

// A request whose client leaves while its session is being activated
// (rehydrated from its snapshot after a move, say) is not run once the
// activation is done: its edge's Cancel finds it waiting, and it goes.
// It ran for nobody, its edge having let go of its stream, and on the
// 2025-11-25 protocol nothing else would end it.
func TestRequestLeftWhileActivatingDoesNotRun(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	gated := &gatedActivations{Snapshots: d.Snapshots}
	d.Snapshots = gated
	root, pid, p := runningSessionOn(t, d, Config{})
	if err := root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	gated.gate = make(chan struct{})
	// One call at a time: one admitted holds its place from then on.
	system, props := testSessions(t, Config{Stores: d, MaxRunningCalls: 1}) // the next activation
	root = system.Root
	pid = root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	req := elicitationCall(p, 5)
	left := make(chan struct{})
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			// The request, then its edge's Cancel: in this order in the
			// actor's mailbox.
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
			ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
			close(left)
		}
	}))
	<-left
	close(gated.gate)
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`); status != http.StatusOK {
		t.Fatalf("the call after the one left while activating: %d, want 200 (the left one was not admitted)", status)
	}
}

// An initialize whose client leaves while its session is being activated
// (dropped: TestRequestLeftWhileActivatingDoesNotRun) frees the slot its
// activation took among its user's sessions (MaxSessionsPerUser) as the
// actor ends: no session came of it, and the slot would stay taken until
// the idle timeout, each such initialize one more.
func TestInitializeLeftWhileActivatingFreesItsSlot(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	d.MaxSessionsPerUser = 1
	gated := &gatedActivations{Snapshots: d.Snapshots, gate: make(chan struct{})}
	d.Snapshots = gated
	system, props := testSessions(t, Config{Stores: d, Authenticated: true})
	root := system.Root
	pid := root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	alice := &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: "c", ExpiresUnix: time.Now().Add(time.Hour).Unix()}
	req := &envelope.Request{
		Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Window: 16, Principal: alice,
		Body: []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`),
		Headers: []*envelope.Header{
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
		},
	}
	ended := make(chan struct{})
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(pid)
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
			ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
			close(gated.gate)
		case *actor.Terminated:
			close(ended)
		}
	}))
	await(t, ended, "the end of the actor whose initialize was dropped")
	awaitSlotFreed(t, d, alice, "an initialize dropped while activating")
}

// awaitSlotFreed waits until p's user has a place among its sessions again
// (MaxSessionsPerUser 1), what having held it.
func awaitSlotFreed(t *testing.T, d *state.Stores, p *envelope.Principal, what string) {
	t.Helper()
	user := d.UserKey(p.Issuer, p.Subject)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ok, _, _ := d.Users.Claim(t.Context(), user, "probe", 1, time.Hour); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still counts against its user", what)
		}
	}
}

// An initialize refused before the SDK saw it (here a body that is not
// JSON-RPC), once its session's activation took a place among its user's
// sessions, ends the actor and frees the place, as one dropped while
// activating does: no flight began, so nothing settled the actor, which
// stayed (without an idle timeout, for good) holding its user's slot.
func TestInitializeRefusedAfterActivatingFreesItsSlot(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	d.MaxSessionsPerUser = 1
	system, props := testSessions(t, Config{Stores: d, Authenticated: true})
	root := system.Root
	pid := root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	alice := &envelope.Principal{Issuer: "https://idp", Subject: "alice", ClientId: "c", ExpiresUnix: time.Now().Add(time.Hour).Unix()}
	req := &envelope.Request{
		Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Window: 16, Principal: alice,
		Body: []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize",`),
		Headers: []*envelope.Header{
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
		},
	}
	ended := make(chan struct{})
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(pid)
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *actor.Terminated:
			close(ended)
		}
	}))
	await(t, ended, "the end of the actor whose initialize was refused")
	awaitSlotFreed(t, d, alice, "an initialize refused after its activation")
}

// A handler that its session's end (a DELETE: cancelAll) ended is
// answered "session not found" (-32001), as the session's requests then
// are, not with the go-sdk's code 0 "context canceled"; one the actor's
// stop ended keeps its error (the journal answers it "interrupted").
func TestHandlerEndedWithItsSessionIsSessionNotFound(t *testing.T) {
	for name, end := range map[string]func(*runningCalls){"the session's end": (*runningCalls).cancelAll, "the actor's stop": (*runningCalls).stop} {
		a := &core{}
		started := make(chan struct{})
		h := a.running(func(ctx context.Context, _ string, _ mcp.Request) (mcp.Result, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		errc := make(chan error, 1)
		go func() {
			_, err := h(t.Context(), "tools/call", &mcp.CallToolRequest{})
			errc <- err
		}()
		<-started
		end(&a.calls)
		err := <-errc
		var je *jsonrpc.Error
		if gone := errors.As(err, &je) && je.Code == rpcerr.SessionNotFound; gone != (name == "the session's end") {
			t.Errorf("a handler ended by %s: %v", name, err)
		}
	}
}

package actors

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/tools"
)

// hangTools is a toolset of one tool, "hang", that says it started and
// waits until its context ends, which it reports.
type hangTools struct{ started, stopped chan struct{} }

func (hangTools) Name() string                 { return "hang" }
func (hangTools) Configure(*mcp.ServerOptions) {}
func (hangTools) Scopes() map[string][]string  { return nil }
func (h hangTools) Install(s *mcp.Server, _ tools.Caller) {
	s.AddTool(&mcp.Tool{Name: "hang", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			h.started <- struct{}{}
			<-ctx.Done()
			h.stopped <- struct{}{}
			return nil, ctx.Err()
		})
}

// A 2026-07-28 (stateless) client cancels a call by closing its response
// stream: the revision's cancellation utility says the server MUST treat
// the disconnect as the request's cancellation, and no
// notifications/cancelled comes. The edge tells the actor its client left
// (Cancel); the tool's context ends.
func TestStatelessDisconnectCancelsTheCall(t *testing.T) {
	h := hangTools{started: make(chan struct{}, 1), stopped: make(chan struct{}, 1)}
	root, pid := spawnPrincipal(t, state.MemoryStores(time.Hour), "alice-principal", nil, h)
	req := statelessRequest(principal("tok-a"), "tools/call", "hang", map[string]any{"name": "hang", "arguments": map[string]any{}})
	forwardRequest(root, pid, req)
	await(t, h.started, "the tool's start")
	// The client closes its stream: the edge cancels the forwarded request.
	root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
	await(t, h.stopped, "the tool's cancellation after its client left")
}

// A stateless call still running at a drain's deadline is cut (its
// handler's context ends) and answered "request interrupted", retryable,
// as a session's client resuming on the next activation is answered from
// the journal: not with the error the cancelled handler returned.
func TestStatelessDrainInterruptsTheCall(t *testing.T) {
	h := hangTools{started: make(chan struct{}, 1), stopped: make(chan struct{}, 1)}
	root, pid := spawnPrincipal(t, state.MemoryStores(time.Hour), "alice-principal", nil, h)
	r := forwardRequest(root, pid, statelessRequest(principal("tok-a"), "tools/call", "hang", map[string]any{"name": "hang", "arguments": map[string]any{}}))
	await(t, h.started, "the tool's start")
	root.Send(pid, &drainActor{deadline: time.Now()}) // the deadline has come
	await(t, h.stopped, "the tool's cancellation by the drain")
	body := await(t, r.body, "the answer")
	if !strings.Contains(body, `"code":-32003`) || !strings.Contains(body, `"retryable":true`) || strings.Contains(body, "context canceled") ||
		strings.Contains(body, "session") {
		t.Errorf("a stateless call cut by a drain answered %q, want -32003 request interrupted, retryable", body)
	}
}

// A drain ends a stateless listen at once, as the server's end of its
// subscription (notifications/cancelled naming it, then its completion
// result), and the actor stops long before the drain's deadline: a listen
// never ends by itself, so waiting for it held every drain until then, and
// then answered it "request interrupted".
func TestDrainEndsAListen(t *testing.T) {
	h := hangTools{started: make(chan struct{}, 1), stopped: make(chan struct{}, 1)}
	local := NewLocal()
	root, pid := spawnPrincipal(t, state.MemoryStores(time.Hour), "alice-principal", local, h)
	msgs := forwardListenFor(t, root, pid, principal("tok-a"), map[string]any{"toolsListChanged": true})
	ack := await(t, msgs, "the acknowledgement")
	if n, _ := ack["params"].(map[string]any)["notifications"].(map[string]any); ack["method"] != "notifications/subscriptions/acknowledged" || n["toolsListChanged"] != true {
		t.Fatalf("first message %v, want the acknowledgement granting toolsListChanged", ack)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	left := make(chan int, 1)
	go func() { left <- local.Drain(ctx, root.ActorSystem()) }()
	awaitListenEnd(t, msgs, "the node serving the subscription is stopping; listen again to go on")
	if n := await(t, left, "the drain's end, its deadline a minute away"); n != 0 {
		t.Fatalf("%d actors still live after the drain", n)
	}
}

// A listen the server refuses ended no subscription: its error goes alone,
// with no notifications/cancelled before it.
func TestRefusedListenIsNotCancelled(t *testing.T) {
	h := hangTools{started: make(chan struct{}, 1), stopped: make(chan struct{}, 1)}
	root, pid := spawnPrincipal(t, state.MemoryStores(time.Hour), "alice-principal", nil, h)
	r := forwardRequest(root, pid, statelessRequest(principal("tok-a"), "subscriptions/listen", "", map[string]any{"notifications": nil}))
	await(t, r.head, "the refusal's head")
	body := await(t, r.body, "the refusal")
	if !strings.Contains(body, `"code":-32602`) || !strings.Contains(body, `"id":1`) || strings.Contains(body, "notifications/cancelled") {
		t.Fatalf("a listen without notifications: %q, want its -32602 error alone", body)
	}
}

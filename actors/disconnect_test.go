package actors

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/sse"
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

// subscribeTools is a toolset with resources whose subscriptions wait: the
// SubscribeHandler says it started and waits until its context ends, except
// for unknown://, which it refuses at once (-32002, resource not found).
type subscribeTools struct{ started chan struct{} }

func (subscribeTools) Name() string                      { return "subscribe" }
func (subscribeTools) Scopes() map[string][]string       { return nil }
func (subscribeTools) Install(*mcp.Server, tools.Caller) {}
func (h subscribeTools) Configure(o *mcp.ServerOptions) {
	o.HasResources = true
	o.SubscribeHandler = func(ctx context.Context, req *mcp.SubscribeRequest) error {
		if strings.HasPrefix(req.Params.URI, "unknown://") {
			return mcp.ResourceNotFoundError(req.Params.URI)
		}
		h.started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	o.UnsubscribeHandler = func(context.Context, *mcp.UnsubscribeRequest) error { return nil }
}

// listenRequest is a 2026-07-28 subscriptions/listen of alice's (id 1) for
// the resources uris.
func listenRequest(uris ...string) *envelope.Request {
	return statelessRequest(principal("tok-a"), "subscriptions/listen", "", map[string]any{"notifications": map[string]any{"resourceSubscriptions": uris}})
}

// A listen the server refuses ended no subscription: its error goes alone,
// with no notifications/cancelled (the go-sdk refuses before the stream
// begins, as JSON; an error answering a listen on its stream would go
// alone too, TestListenAnswerHook).
func TestRefusedListenIsNotCancelled(t *testing.T) {
	root, pid := spawnPrincipal(t, state.MemoryStores(time.Hour), "alice-principal", nil, subscribeTools{started: make(chan struct{}, 1)})
	r := forwardRequest(root, pid, listenRequest("unknown://nothing"))
	await(t, r.head, "the refusal's head")
	body := await(t, r.body, "the refusal")
	if !strings.Contains(body, `"error":{"code":-32602,"message":"Resource not found"`) || !strings.Contains(body, `"id":1`) ||
		strings.Contains(body, "notifications/cancelled") || strings.Contains(body, `"result"`) {
		t.Fatalf("a listen for an unknown resource: %q, want its error alone", body)
	}
}

// What a principal actor's relay makes of a listen's events
// (flight.interruptedAnswer): its acknowledgement is noted and goes as it
// is; its result, the server's end of it, goes after notifications/cancelled
// naming it; an error goes alone; and what its handler writes once a drain
// cut it before its acknowledgement is dropped (listenRefused; serveHTTP
// answers "not served").
func TestListenAnswerHook(t *testing.T) {
	ev := func(msg string) []byte { return []byte("event: message\ndata: " + msg + "\n\n") }
	ack := ev(`{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"notifications":{}}}`)
	result := ev(`{"jsonrpc":"2.0","id":"l","result":{"resultType":"complete"}}`)
	refusal := ev(`{"jsonrpc":"2.0","id":"l","error":{"code":-32603,"message":"m"}}`)

	f := &flight{listen: json.RawMessage(`"l"`)}
	if q := f.interruptedAnswer(ack); q != nil || !f.acked.Load() || f.answerSent.Load() {
		t.Fatalf("the acknowledgement: %q (acked %v, answer sent %v), want it as it is, noted", q, f.acked.Load(), f.answerSent.Load())
	}
	q := f.interruptedAnswer(result)
	if want := append(sse.Message(sse.ListenCancelled(json.RawMessage(`"l"`), "the server ended the subscription")), result...); string(q) != string(want) ||
		!f.answerSent.Load() {
		t.Errorf("the result: %q, want %q", q, want)
	}
	f = &flight{listen: json.RawMessage(`"l"`)}
	f.interruptedAnswer(ack)
	if q := f.interruptedAnswer(refusal); q != nil || !f.answerSent.Load() {
		t.Errorf("an error: %q, want it as it is", q)
	}
	f = &flight{listen: json.RawMessage(`"l"`)}
	f.stopping.Store(true)
	if !f.listenRefused() {
		t.Error("a listen a drain cut before its acknowledgement is not refused: what its handler writes would go out")
	}
	f.interruptedAnswer(ack)
	if f.listenRefused() {
		t.Error("a listen a drain ended after its acknowledgement is refused: its end would not go out")
	}
	if q := f.interruptedAnswer(result); !strings.Contains(string(q), "is stopping") || !f.answerSent.Load() {
		t.Errorf("the result of a listen a drain ended: %q, want it after the drain's notifications/cancelled", q)
	}
}

// A drain that cuts a listen before its acknowledgement (the first message
// of its stream, or none) began no subscription to end: the listen is
// answered "not served" (503), which the edge sends again to a node that
// serves, not with the SDK's error for the cancelled handler nor with a
// subscription's end that no acknowledgement began.
func TestDrainBeforeAListenBegins(t *testing.T) {
	h := subscribeTools{started: make(chan struct{}, 1)}
	local := NewLocal()
	root, pid := spawnPrincipal(t, state.MemoryStores(time.Hour), "alice-principal", local, h)
	r := forwardRequest(root, pid, listenRequest("res://waits"))
	await(t, h.started, "the subscription's start")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	left := make(chan int, 1)
	go func() { left <- local.Drain(ctx, root.ActorSystem()) }()
	head := await(t, r.head, "the answer")
	body := await(t, r.body, "the answer's body")
	if head.Status != http.StatusServiceUnavailable || header(head, envelope.NotServedHeader) == "" || strings.Contains(body, "notifications/") {
		t.Fatalf("a listen drained before its acknowledgement: %d %q (not served: %q), want 503 not served", head.Status, body, header(head, envelope.NotServedHeader))
	}
	if n := await(t, left, "the drain's end, its deadline a minute away"); n != 0 {
		t.Fatalf("%d actors still live after the drain", n)
	}
}

package actors

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
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
	cfg := Config{Implementation: &mcp.Implementation{Name: "pingmcp", Version: "test"}, SchemaCache: mcp.NewSchemaCache(),
		Logger: slog.New(slog.DiscardHandler), Stores: state.MemoryStores(time.Hour), Authenticated: true,
		Toolsets: []tools.Toolset{h}}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return cfg.Logger }))
	t.Cleanup(system.Shutdown)
	root := system.Root
	pid := root.Spawn(protocluster.WithClusterIdentity(PrincipalProps(cfg), protocluster.NewClusterIdentity("alice-principal", "principal")))

	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": "hang", "arguments": map[string]any{}, "_meta": taskMeta}})
	req := &envelope.Request{Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Body: body, Window: 16,
		Principal: principal("tok-a"), Resource: "https://mcp.example/mcp",
		Headers: []*envelope.Header{
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2026-07-28"}},
			{Name: "Mcp-Method", Values: []string{"tools/call"}},
			{Name: "Mcp-Name", Values: []string{"hang"}},
		}}
	forwardRequest(root, pid, req)
	await(t, h.started, "the tool's start")
	// The client closes its stream: the edge cancels the forwarded request.
	root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
	await(t, h.stopped, "the tool's cancellation after its client left")
}

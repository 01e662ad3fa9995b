package actors

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/tools"
)

// whoToolset's one tool, who, answers the subject of the claims its call
// acts with; it counts the servers it is installed on.
type whoToolset struct{ installs *atomic.Int32 }

func (whoToolset) Name() string                 { return "who" }
func (whoToolset) Configure(*mcp.ServerOptions) {}
func (whoToolset) Scopes() map[string][]string  { return nil }
func (w whoToolset) Install(s *mcp.Server, caller tools.Caller) {
	w.installs.Add(1)
	s.AddTool(&mcp.Tool{Name: "who", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			sub, _ := caller.Claims(ctx)["sub"].(string)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "acting for " + sub}}}, nil
		})
}

// inSession forwards a POST of body on session id as the edge does, and
// returns the answer's body.
func inSession(t *testing.T, root *actor.RootContext, pid *actor.PID, id string, p *envelope.Principal, body string) string {
	t.Helper()
	req := &envelope.Request{
		Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Body: []byte(body), Window: 16, Principal: p,
		Headers: []*envelope.Header{
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
			{Name: "Mcp-Session-Id", Values: []string{id}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
		},
	}
	return await(t, forwardRequest(root, pid, req).body, "answer on "+id)
}

// Sessions share MCP servers, sessionsPerServer to a server: 130 sessions
// opened one after another take three servers (each toolset installed
// three times, not 130); a session that ended frees its place for the next;
// and each session's tool calls act for its own user, all at once, though
// its server serves 63 other users' sessions.
func TestSessionsShareServers(t *testing.T) {
	installs := new(atomic.Int32)
	system, props := testSessions(t, Config{Toolsets: []tools.Toolset{whoToolset{installs}},
		Stores: state.MemoryStores(time.Hour), Authenticated: true})
	root := system.Root
	user := func(i int) *envelope.Principal {
		sub := fmt.Sprintf("user%d", i)
		return &envelope.Principal{Issuer: "https://idp", Subject: sub, ClientId: "c", ExpiresUnix: time.Now().Add(time.Hour).Unix(),
			Token: "token-of-" + sub, ClaimsJson: []byte(`{"sub":"` + sub + `","client_id":"c"}`)}
	}
	const n = 2*sessionsPerServer + 2
	ids := make([]string, n)
	pids := make([]*actor.PID, n)
	open := func(i int) {
		ids[i] = rand.Text()
		pids[i] = root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(ids[i], "session")))
		if body := postInitialize(t, root, pids[i], user(i), `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); !strings.Contains(body, `"result"`) {
			t.Fatalf("initialize %d: %s", i, body)
		}
	}
	for i := range n {
		open(i)
	}
	if got := installs.Load(); got != 3 {
		t.Errorf("%d sessions installed the toolset %d times, want 3 (%d sessions a server)", n, got, sessionsPerServer)
	}

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for range 3 {
				body := inSession(t, root, pids[i], ids[i], user(i), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"who","arguments":{}}}`)
				if want := fmt.Sprintf("acting for user%d\"", i); !strings.Contains(body, want) {
					t.Errorf("session %d's call: %s, want %s", i, body, want)
				}
			}
		})
	}
	wg.Wait()

	// Session 0 ends (DELETE): its place on the first server is free, and
	// the next session takes it rather than a new server.
	del := &envelope.Request{Id: rand.Text(), Method: http.MethodDelete, Path: "/mcp", Window: 16, Principal: user(0),
		Headers: []*envelope.Header{{Name: "Mcp-Session-Id", Values: []string{ids[0]}}, {Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}}}}
	if head := await(t, forwardRequest(root, pids[0], del).head, "DELETE"); head.GetStatus() != http.StatusNoContent {
		t.Fatalf("DELETE: %d", head.GetStatus())
	}
	if err := root.PoisonFuture(pids[0]).Wait(); err != nil {
		t.Fatal(err)
	}
	// The third server has two sessions: 62 more fill it, and one more
	// takes the place session 0 left.
	for range sessionsPerServer - 2 + 1 {
		ids = append(ids, "")
		pids = append(pids, nil)
		open(len(ids) - 1)
	}
	if got := installs.Load(); got != 3 {
		t.Errorf("after one session ended, %d more sessions installed the toolset %d times in all, want 3", sessionsPerServer-1, got)
	}
	i := len(ids) - 1
	if body := inSession(t, root, pids[i], ids[i], user(i), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"who","arguments":{}}}`); !strings.Contains(body, fmt.Sprintf("acting for user%d\"", i)) {
		t.Errorf("the session in session 0's place: %s", body)
	}
}

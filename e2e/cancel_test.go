package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth/authtest"
)

// TestCancelledRequestIsNotAnswered: a client that cancels a call in flight
// (notifications/cancelled, as the TypeScript SDK sends when a call is
// aborted) gets no answer to it, as the MCP cancellation utility says a
// receiver should not send one: the call's stream ends without the answer
// the go-sdk still writes (here the tool's error result; an error of code 0 for
// a handler that returns the context's error). A call not cancelled, on the
// same session, is answered.
// Through an edge-only node, so that the cancel and the call cross nodes.
func TestCancelledRequestIsNotAnswered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	is := authtest.NewIssuer(t)
	const resource = "https://pingmcp.example.test/mcp"
	common := []string{"--auth", "jwt", "--issuer", is.URL, "--resource", resource, "--tools", "conformance"}
	edge := startNode(t, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, common...)...)
	member := startNode(t, "member", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, common...)...)
	edge.awaitMembers(ctx, 2)
	member.awaitMembers(ctx, 2)
	token := is.Token(t, is.Claims("alice", resource, "todo_api:read"))
	sid := initializeWithToken(t, ctx, edge.URL(), token)

	// The tool waits for the client's answer to its elicitation, which
	// never comes: the call is in flight until it is cancelled.
	call := openSSE(t, ctx, http.MethodPost, edge.URL(), sid, token,
		`{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`)
	call.awaitLine(t, "elicitation/create", 20*time.Second)

	resp := postWithToken(t, ctx, edge.URL(), token, sid,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"call-7","reason":"the user stopped it"}}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/cancelled: %d, want 202", resp.StatusCode)
	}
	rest := call.End(t, 20*time.Second)
	// That the stream ended at all says the SDK stopped the tool, which
	// would otherwise wait for its elicitation's answer for ever. (The
	// server's withdrawal of the elicitation, notifications/cancelled,
	// races with the end of the stream: the SDK sends it on a goroutine
	// of its own, and may find the stream closed.)
	for _, l := range rest {
		if strings.Contains(l, `"id":"call-7"`) {
			t.Errorf("the cancelled call was answered: %q (its stream's end: %q)", l, rest)
		}
	}

	// Another call on the session is answered as ever.
	other := openSSE(t, ctx, http.MethodPost, edge.URL(), sid, token,
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`)
	lines := other.End(t, 20*time.Second)
	if !strings.Contains(strings.Join(lines, "\n"), `"id":8,"result"`) {
		t.Errorf("the next call's stream: %q, want its result", lines)
	}
}

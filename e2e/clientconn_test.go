package e2e

import (
	"context"
	"testing"
	"time"
)

// TestNodeClientKeepsItsConnection: the official TypeScript SDK's client,
// on Node's fetch (undici, as mcp-remote and the MCP Inspector), keeps its
// connection to the node across a pause longer than undici's own idle
// timeout (4 s), as the node's Keep-Alive header tells it to. A session's
// requests after a pause (a model thinking) thus come on the connection
// its earlier ones came on: through a connection-level balancer (a
// Kubernetes Service), to the node that holds the session, rather than on
// a new connection to any node, where each would take a hop.
func TestNodeClientKeepsItsConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodeBin := installSDKClient(t, ctx)
	d := runDev(t, "--tools", "conformance")
	c := startSDKClient(t, ctx, nodeBin, d.MCP, "alice")
	before := c.call(ctx, "test_simple_text", nil)
	// The pause is what is tested: longer than undici's 4 s default.
	c.send(map[string]any{"idle": 6000})
	c.until(ctx, "idled")
	after := c.call(ctx, "test_simple_text", nil)
	if before.Connections == 0 || after.Connections != before.Connections || after.SessionID != before.SessionID {
		t.Errorf("connections opened to the node: %d before a 6 s pause, %d after it (session %s, then %s); want the same, and some",
			before.Connections, after.Connections, before.SessionID, after.SessionID)
	}
	c.finish(ctx)
}

package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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

// TestDrainClosesKeptConnections: a node that drains closes its clients'
// idle kept-alive connections at once and answers on others with
// Connection: close, so that clients come back through their balancer to
// a node that serves, rather than keeping this one (Keep-Alive tells them
// 115 s) for as long as its drain lasts. A call whose sampling request no
// one answers holds the drain open meanwhile.
func TestDrainClosesKeptConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := startNode(t, "draining", "--drain-timeout", "60s")
	asked, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	held := connect(t, ctx, n.URL(), &mcp.ClientOptions{
		CreateMessageHandler: func(ctx context.Context, _ *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			select {
			case asked <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("released")
		},
	})
	go held.CallTool(ctx, &mcp.CallToolParams{Name: "test_sampling", Arguments: map[string]any{"prompt": "hold the drain"}})
	select {
	case <-asked:
	case <-ctx.Done():
		t.Fatal("the sampling request never came")
	}

	// A connection kept alive, idle when the drain starts.
	get := func(c net.Conn, br *bufio.Reader) *http.Response {
		t.Helper()
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + n.HTTP + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	idle, err := net.Dial("tcp", n.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idleReader := bufio.NewReader(idle)
	if resp := get(idle, idleReader); resp.Close {
		t.Fatalf("before the drain: Connection: close (%d)", resp.StatusCode)
	}

	n.cmd.Process.Signal(syscall.SIGTERM)
	n.awaitLogged(t, ctx, `"msg":"draining actors"`)
	idle.SetReadDeadline(time.Now().Add(20 * time.Second)) // the drain lasts until the call ends (60 s)
	if _, err := idleReader.ReadByte(); err != io.EOF {
		t.Errorf("the idle kept connection during the drain: %v, want it closed (EOF)", err)
	}
	fresh, err := net.Dial("tcp", n.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if resp := get(fresh, bufio.NewReader(fresh)); !resp.Close {
		t.Errorf("an answer during the drain (%d) keeps its connection, want Connection: close", resp.StatusCode)
	}
}

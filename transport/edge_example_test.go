// This example starts a node of its own, while edge_test.go's TestMain keeps
// the package's test node running: protoactor's remote sets gRPC's global
// logger when a node starts, which the race detector reports against the
// running node's server. It is left out of -race builds for that reason.

//go:build !race

package transport_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/transport"
)

// An edge serves /mcp in front of a single node that hosts the session
// actors: an initialize opens a session, whose id comes back in the
// Mcp-Session-Id header.
func ExampleNewEdge() {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := actors.Config{
		Implementation: &mcp.Implementation{Name: "example", Version: "1"},
		Logger:         logger,
	}
	node, err := cluster.Start(cluster.Config{
		Addr:     "127.0.0.1:0",
		Provider: cluster.ProviderSingle,
		Role:     cluster.RoleBoth,
		Kinds: []*protocluster.Kind{
			protocluster.NewKind(cluster.SessionKind, actors.SessionProps(cfg)),
			protocluster.NewKind(cluster.PrincipalKind, actors.PrincipalProps(cfg)),
		},
		Logger: logger,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Stop(false)

	// No Verifier: no authentication, which the edge allows on loopback only.
	srv := httptest.NewServer(transport.NewEdge(node, transport.Options{Loopback: true, Logger: logger}))
	defer srv.Close()

	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"example","version":"1"}}}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	fmt.Println("session id:", resp.Header.Get("Mcp-Session-Id") != "")
	// The result comes as an event of an SSE stream.
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		data, ok := strings.CutPrefix(line, "data: {")
		if !ok {
			continue
		}
		var msg struct {
			Result struct {
				ProtocolVersion string
				ServerInfo      struct{ Name string }
			}
		}
		if err := json.Unmarshal([]byte("{"+data), &msg); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(resp.Header.Get("Content-Type"), msg.Result.ServerInfo.Name, msg.Result.ProtocolVersion)
	}
	// Output:
	// 200 OK
	// session id: true
	// text/event-stream example 2025-11-25
}

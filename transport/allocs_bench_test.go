// The benchmark starts a node of its own, as edge_example_test.go does, and
// is left out of -race builds for the same reason.

//go:build !race

package transport_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pingmcp/pingmcp/actors"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/state"
	"github.com/pingmcp/pingmcp/tools"
	"github.com/pingmcp/pingmcp/tools/conformance"
	"github.com/pingmcp/pingmcp/transport"
)

// BenchmarkToolsCallInProcess is a tools/call of a trivial tool through
// the go-sdk's handler alone (sdk) and through an edge and a single node's
// session actor (pingmcp), both in this process on loopback, each logging
// JSON at info to nowhere with tracing off, as `pingmcp serve` does by
// default: its allocs/op and B/op (the client's included, alike in both)
// say what the request path asks of the collector, counted the same
// however noisy the machine (its ns/op is no substitute for
// BenchmarkToolsCallPaired's ratios: client and servers share a process).
//
//	go test ./transport -run '^$' -bench ToolsCallInProcess -benchmem -count 3
func BenchmarkToolsCallInProcess(b *testing.B) {
	was := otel.GetTracerProvider()
	otel.SetTracerProvider(noop.NewTracerProvider())
	b.Cleanup(func() { otel.SetTracerProvider(was) })
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	serve := func(h http.Handler) string {
		srv := httptest.NewServer(h)
		b.Cleanup(srv.Close)
		return srv.URL + "/mcp"
	}
	sdk := func() string {
		toolset := conformance.New()
		opts := &mcp.ServerOptions{Logger: logger, SchemaCache: mcp.NewSchemaCache()}
		toolset.Configure(opts)
		s := mcp.NewServer(&mcp.Implementation{Name: "pingmcp", Version: "bench"}, opts)
		toolset.Install(s, nil)
		return serve(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.StreamableHTTPOptions{Logger: logger, EventStore: mcp.NewMemoryEventStore(nil)}))
	}
	pingmcp := func() string {
		cfg := actors.Config{
			Implementation: &mcp.Implementation{Name: "pingmcp", Version: "bench"},
			Toolsets:       []tools.Toolset{conformance.New()},
			IdleTimeout:    5 * time.Minute,
			Stores:         state.MemoryStores(30 * time.Minute),
			Local:          actors.NewLocal(),
			SchemaCache:    mcp.NewSchemaCache(),
			Logger:         logger,
		}
		node, err := cluster.Start(cluster.Config{
			Addr: "127.0.0.1:0", Provider: cluster.ProviderSingle, Role: cluster.RoleBoth, Logger: logger,
			Kinds: []*protocluster.Kind{
				protocluster.NewKind(cluster.SessionKind, actors.SessionProps(cfg)),
				protocluster.NewKind(cluster.PrincipalKind, actors.PrincipalProps(cfg)),
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { node.Stop(false) })
		return serve(transport.NewEdge(node, transport.Options{Loopback: true, Logger: logger}))
	}
	for _, target := range []struct {
		name string
		url  func() string
	}{{"sdk", sdk}, {"pingmcp", pingmcp}} {
		b.Run(target.name, func(b *testing.B) {
			url := target.url()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			post := func(session, body string) (*http.Response, []byte) {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				if session != "" {
					req.Header.Set("Mcp-Session-Id", session)
					req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp, out
			}
			resp, out := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`)
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("initialize: %d %s", resp.StatusCode, out)
			}
			session := resp.Header.Get("Mcp-Session-Id")
			if resp, out := post(session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
				b.Fatalf("initialized: %d %s", resp.StatusCode, out)
			}
			const call = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`
			b.ReportAllocs()
			for b.Loop() {
				if resp, out := post(session, call); resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"result"`)) {
					b.Fatalf("tools/call: %d %s", resp.StatusCode, out)
				}
			}
		})
	}
}

package actors_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// BenchmarkIdleSession measures what one idle session actor holds: the actor
// (its process, mailbox and context), its mcp.Server with the conformance
// toolset (schemas shared through the node's SchemaCache), its
// StreamableHTTPHandler and MemoryEventStore (holding the initialize
// response), and one initialized MCP session with the goroutines it keeps.
//
// Each op spawns a session actor on a plain actor system and initializes its
// session as the edge would forward it: the initialize request, then the
// initialized notification. There is no remote and no cluster, so what a
// cluster keeps per actor (its placement entry, the edge's PID cache entry)
// is not counted; e2e's BenchmarkIdleSession sees that in the nodes' RSS.
func BenchmarkIdleSession(b *testing.B) {
	node := newSessionNode(b, nil) // a node logs JSON at info
	open := func() { node.open(b) }
	open() // fills what all sessions share: the schema cache, pools
	before := memory()
	for b.Loop() {
		open()
	}
	after := memory()
	if path := os.Getenv("IDLE_SESSION_HEAP_PROFILE"); path != "" {
		writeHeapProfile(b, path) // what the b.N idle sessions hold, by owner
	}
	n := float64(b.N)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/session")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/session")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/session")
}

// writeHeapProfile writes the heap profile (after a collection) to path;
// run with -memprofilerate 512 for a precise one.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
	g, err := os.Create(path + ".goroutines")
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	if err := pprof.Lookup("goroutine").WriteTo(g, 1); err != nil {
		b.Fatal(err)
	}
}

type memStats struct {
	runtime.MemStats
	goroutines int
}

func memory() memStats {
	var m memStats
	runtime.GC()
	runtime.ReadMemStats(&m.MemStats)
	m.goroutines = runtime.NumGoroutine()
	return m
}

// forward sends one POST to the actor at pid as the edge does (a
// per-request receiver actor is the sender; session, if set, names the MCP
// session) and returns the response's status once its final part arrived.
func forward(root *actor.RootContext, pid *actor.PID, session, body string) (int32, error) {
	status, _, err := exchange(root, pid, session, body)
	return status, err
}

// forwardBody is forward, returning the response's body.
func forwardBody(root *actor.RootContext, pid *actor.PID, session, body string) (string, error) {
	_, out, err := exchange(root, pid, session, body)
	return out, err
}

func exchange(root *actor.RootContext, pid *actor.PID, session, body string) (int32, string, error) {
	return exchangeVersion(root, pid, session, "2025-11-25", body)
}

// exchangeVersion is exchange for a session of protocol version.
func exchangeVersion(root *actor.RootContext, pid *actor.PID, session, version, body string) (int32, string, error) {
	req := &envelope.Request{
		Id:     rand.Text(),
		Method: "POST",
		Path:   "/mcp",
		Headers: []*envelope.Header{
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
		},
		Body:   []byte(body),
		Window: 16,
	}
	if session != "" {
		req.Headers = append(req.Headers,
			&envelope.Header{Name: "Mcp-Session-Id", Values: []string{session}},
			&envelope.Header{Name: "Mcp-Protocol-Version", Values: []string{version}})
	}
	type result struct {
		status int32
		body   string
	}
	done := make(chan result, 1)
	var status int32 // of the first part; the receiver handles one message at a time
	var out []byte
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			p := m.GetPart()
			if p.GetSeq() == 0 {
				status = p.GetStatus()
			}
			out = append(out, p.GetBody()...)
			if p.GetFinal() {
				done <- result{status, string(out)}
				ctx.Stop(ctx.Self())
			}
		}
	}))
	select {
	case r := <-done:
		return r.status, r.body, nil
	case <-time.After(10 * time.Second):
		return 0, "", fmt.Errorf("no response to %s", body)
	}
}

package actors

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// runElicitation calls test_elicitation as request id, as a client that
// stays for its answer, and returns the elicitation's JSON-RPC id once the
// tool asks it, and the call's whole body once it ends.
func runElicitation(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal, id int) (json.RawMessage, <-chan string) {
	t.Helper()
	req := elicitationCall(p, id)
	elicit, end := make(chan json.RawMessage, 1), make(chan string, 1)
	var out []byte
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			part := m.GetPart()
			out = append(out, part.GetBody()...)
			for _, line := range strings.Split(string(part.GetBody()), "\n") {
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok || !strings.Contains(data, `"elicitation/create"`) {
					continue
				}
				var msg struct{ ID json.RawMessage }
				json.Unmarshal([]byte(data), &msg)
				elicit <- msg.ID
			}
			if part.GetFinal() {
				end <- string(out)
				ctx.Stop(ctx.Self())
				return
			}
			ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: req.Id, Seq: part.GetSeq()}}})
		}
	}))
	return await(t, elicit, "the tool's elicitation"), end
}

// leaveJSONAlone sends body as a client that takes JSON alone and leaves
// at once (the edge's Request.JsonAlone, then its Cancel), and waits for
// the end of its answer.
func leaveJSONAlone(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal, headers []*envelope.Header, body string) {
	t.Helper()
	req := &envelope.Request{
		Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Window: 16, Principal: p, JsonAlone: true,
		Body: []byte(body), Headers: headers,
	}
	done := make(chan struct{})
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
			ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
		case *envelope.Envelope:
			if m.GetPart().GetFinal() {
				close(done)
				ctx.Stop(ctx.Self())
			}
		}
	}))
	await(t, done, "the answer of a client that left")
}

// sessionHeaders are the headers of a POST of fuzzSession's, as the edge
// forwards them for a client that takes JSON alone.
var sessionHeaders = []*envelope.Header{
	{Name: "Content-Type", Values: []string{"application/json"}},
	{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
	{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
	{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
}

// A request the go-sdk refuses, here for the id of a call in flight on the
// session ("duplicate in-flight request ID"), was never the go-sdk's: when
// its client takes JSON alone and leaves, nothing is cancelled in its
// name, least of all the call in flight whose id it took.
func TestJSONAloneRequestRefusedAsADuplicateCancelsNothing(t *testing.T) {
	root, pid, p := runningSession(t, Config{})
	elicit, end := runElicitation(t, root, pid, p, 1)
	for range 20 {
		leaveJSONAlone(t, root, pid, p, sessionHeaders, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`)
	}
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","id":`+string(elicit)+`,"result":{"action":"decline"}}`); status != http.StatusAccepted {
		t.Fatalf("the elicitation's answer: %d", status)
	}
	if body := await(t, end, "the call's answer"); !strings.Contains(body, "action=decline") {
		t.Fatalf("the call whose id a refused request took was cancelled: %q", body)
	}
}

package actors

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
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
// (the edge's Request.JsonAlone, then its Cancel) once leave is closed (nil:
// at once), and waits for the end of its answer.
func leaveJSONAlone(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal, leave <-chan struct{}, headers []*envelope.Header, body string) {
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
			if leave == nil {
				ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
				return
			}
			go func() {
				<-leave
				root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
			}()
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
// forwards them (for a client that takes JSON alone too: both Accept
// types).
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
		leaveJSONAlone(t, root, pid, p, nil, sessionHeaders, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`)
	}
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","id":`+string(elicit)+`,"result":{"action":"decline"}}`); status != http.StatusAccepted {
		t.Fatalf("the elicitation's answer: %d", status)
	}
	if body := await(t, end, "the call's answer"); !strings.Contains(body, "action=decline") {
		t.Fatalf("the call whose id a refused request took was cancelled: %q", body)
	}
}

// leftEvents is an event store whose first request stream waits, as it
// opens, until its request is cancelled (its client left), and which counts
// the opens of the standalone stream: one per session the go-sdk connects.
type leftEvents struct {
	state.Events
	held       atomic.Bool
	opening    chan struct{} // closed once the request stream is opening
	standalone atomic.Int32
}

func (e *leftEvents) OpenAppend(ctx context.Context, session, stream, user string, epoch int64, ids []json.RawMessage, write state.WriteID, data []byte) error {
	if stream != "" && e.held.CompareAndSwap(false, true) {
		close(e.opening)
		<-ctx.Done()
	}
	return e.Events.OpenAppend(ctx, session, stream, user, epoch, ids, write, data)
}

func (e *leftEvents) OpenFor(ctx context.Context, session, stream, user string, epoch int64, ids []json.RawMessage) error {
	if stream == "" {
		e.standalone.Add(1)
	}
	return e.Events.OpenFor(ctx, session, stream, user, epoch, ids)
}

// An initialize whose client takes JSON alone and leaves before its answer
// is not cancelled (MCP: the initialize request MUST NOT be cancelled):
// a notifications/cancelled without the session's id, which its client
// never learnt, would make the go-sdk connect a session of the same id
// for it, which the actor took for a newer activation (fenced: the
// activation stopped, counted as one a newer one replaced) or, the
// initialize done, which replaced the session in the go-sdk's handler and
// then ended it, its snapshot and events with it.
func TestJSONAloneInitializeLeftIsNotCancelled(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	events := &leftEvents{Events: d.Events, opening: make(chan struct{})}
	d.Events = events
	system, props := testSessions(t, Config{Stores: d})
	root := system.Root
	pid := root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(fuzzSession, "session")))
	ended := watchEnd(root, pid)
	leaveJSONAlone(t, root, pid, principal("tok-a"), events.opening, []*envelope.Header{
		{Name: "Content-Type", Values: []string{"application/json"}},
		{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
	}, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	// The actor ends once its session did (the go-sdk ends one whose
	// initialize it did not answer), or stays with the session.
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
	}
	if n := events.standalone.Load(); n != 1 {
		t.Fatalf("the go-sdk connected %d sessions for one initialize whose client left", n)
	}
}

// A call whose client takes JSON alone, and whose edge lets its response go
// to resume its event stream itself (Cancel.Resume: the stream went silent
// at the edge, the client still waiting for the answer), or whose link to
// its edge was lost (edgeGone: the edge may be alive, and resume it), is
// not cancelled as one whose client left: it runs on, and the resumed
// stream (a GET with Last-Event-ID) carries its answer.
func TestJSONAloneCallLetGoToResumeRunsOn(t *testing.T) {
	for _, mode := range []string{"left", "resume", "edge gone"} {
		resume := mode != "left"
		root, pid, p := runningSession(t, Config{})
		req := elicitationCall(p, 1)
		req.JsonAlone = true
		var out []byte
		elicit, end := make(chan json.RawMessage, 1), make(chan string, 1)
		root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *actor.Started:
				ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
			case *envelope.Envelope:
				part := m.GetPart()
				out = append(out, part.GetBody()...)
				for line := range strings.SplitSeq(string(part.GetBody()), "\n") {
					if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"elicitation/create"`) {
						var msg struct{ ID json.RawMessage }
						json.Unmarshal([]byte(data), &msg)
						elicit <- msg.ID
						if mode == "edge gone" {
							// The edge's reply router goes: the actor
							// watching it hears it terminated.
							end <- string(out)
							ctx.Stop(ctx.Self())
							return
						}
						ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id, Resume: resume}}})
					}
				}
				if part.GetFinal() {
					end <- string(out)
					ctx.Stop(ctx.Self())
				}
			}
		}))
		id := await(t, elicit, "the tool's elicitation")
		body := await(t, end, "the end of the response let go")
		lastID := ""
		for line := range strings.SplitSeq(body, "\n") {
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				lastID = v
			}
		}
		if lastID == "" {
			t.Fatalf("no event id on the call's stream: %q", body)
		}
		// The stream is resumed, and the elicitation answered once a
		// cancellation, if any, has had its time (cancelLeft: sent as
		// the POST's handler returned, just after its end went out).
		// The GET is sent again while the go-sdk refuses it 409, the
		// stream still held by the response let go (its end not yet seen
		// by the actor), as the edge does; a keep-alive is its first part.
		var resumed chan string
		for try := 1; ; try++ {
			get := &envelope.Request{
				Id: rand.Text(), Method: http.MethodGet, Path: "/mcp", Window: 16, Principal: p, KeepaliveMs: 20,
				Headers: []*envelope.Header{
					{Name: "Accept", Values: []string{"text/event-stream"}},
					{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
					{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
					{Name: "Last-Event-ID", Values: []string{lastID}},
				},
			}
			head, done := make(chan int32, 1), make(chan string, 1)
			var got []byte
			root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
				switch m := ctx.Message().(type) {
				case *actor.Started:
					ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: get}})
				case *envelope.Envelope:
					part := m.GetPart()
					if part.GetSeq() == 0 {
						head <- part.GetStatus()
					}
					got = append(got, part.GetBody()...)
					if part.GetFinal() {
						done <- string(got)
						ctx.Stop(ctx.Self())
						return
					}
					ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: get.Id, Seq: part.GetSeq()}}})
				}
			}))
			status := await(t, head, "the resumed stream's first part")
			if status != http.StatusConflict || try == 50 {
				if status != http.StatusOK {
					t.Fatalf("%s: the resuming GET: %d %s", mode, status, await(t, done, "its end"))
				}
				resumed = done
				break
			}
			await(t, done, "the refused GET's end")
			time.Sleep(10 * time.Millisecond) // as the edge paces its tries
		}
		if resume {
			// (Left, the call is cancelled and ends by itself: not
			// answered, lest the answer beat the cancellation.)
			time.Sleep(50 * time.Millisecond)
			fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","id":`+string(id)+`,"result":{"action":"decline"}}`)
		}
		answer := await(t, resumed, mode+": the resumed stream's end")
		if answered := strings.Contains(answer, "action=decline"); answered != resume {
			t.Errorf("%s: the call's answer on its resumed stream: %q", mode, answer)
		}
	}
}

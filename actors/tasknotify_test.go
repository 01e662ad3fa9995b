package actors

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
)

// forwardListen forwards a subscriptions/listen (request id 9) of p's
// asking for notifications/tasks of ids; it returns the JSON-RPC messages of
// the stream as they arrive (closed once its last part came).
func forwardListen(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal, ids ...string) <-chan map[string]any {
	t.Helper()
	return forwardListenFor(t, root, pid, p, map[string]any{"taskIds": ids})
}

// forwardListenFor is forwardListen asking for notifications.
func forwardListenFor(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal, notifications map[string]any) <-chan map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
		"params": map[string]any{"_meta": taskMeta, "notifications": notifications}})
	req := &envelope.Request{Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Body: body, Window: 16, Principal: p, Resource: "https://mcp.example/mcp",
		Headers: []*envelope.Header{
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2026-07-28"}},
			{Name: "Mcp-Method", Values: []string{"subscriptions/listen"}},
		}}
	msgs := make(chan map[string]any, 64)
	var pending string
	pidOf := root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			part := m.GetPart()
			pending += string(part.GetBody())
			for {
				end := strings.Index(pending, "\n\n")
				if end < 0 {
					break
				}
				for _, line := range strings.Split(pending[:end], "\n") {
					if data, ok := strings.CutPrefix(line, "data: "); ok {
						var msg map[string]any
						json.Unmarshal([]byte(data), &msg)
						msgs <- msg
					}
				}
				pending = pending[end+2:]
			}
			if part.GetFinal() {
				close(msgs)
				ctx.Stop(ctx.Self())
			} else {
				ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: req.Id, Seq: part.GetSeq()}}})
			}
		}
	}))
	t.Cleanup(func() {
		// The client leaves.
		root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: req.Id}}})
		root.Stop(pidOf)
	})
	return msgs
}

// nextStatus reads the listen's messages until a notifications/tasks says
// task id is status want; each must carry the listen's subscription id and
// name a task of ids.
func nextStatus(t *testing.T, msgs <-chan map[string]any, ids []string, id, want string) map[string]any {
	t.Helper()
	for {
		m := await(t, msgs, "notifications/tasks "+want)
		if m == nil {
			t.Fatalf("the listen ended before task %s was %s", id, want)
		}
		p, _ := m["params"].(map[string]any)
		meta, _ := p["_meta"].(map[string]any)
		if meta["io.modelcontextprotocol/subscriptionId"] != float64(9) {
			t.Fatalf("message without the listen's subscription id: %v", m)
		}
		if m["method"] != "notifications/tasks" {
			continue
		}
		if tid, _ := p["taskId"].(string); !containsString(ids, tid) {
			t.Fatalf("notification for task %q, not one of %v", tid, ids)
		}
		if p["taskId"] == id && p["status"] == want {
			return p
		}
	}
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// The principal actor serves a listen for its tasks through the relay: the
// acknowledgement, then notifications/tasks as a task completes (with its
// result) and as another is cancelled. Another principal's actor grants a
// listen for those tasks nothing.
func TestPrincipalActorNotifiesTaskListeners(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	root, pid := principalActor(t, d, "alice-principal")
	alice := principal("tok-a", "compute")
	start := func(seconds int) string {
		_, r := statelessCall(t, root, pid, alice, "tools/call", "slow_compute", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": seconds}})
		res, _ := r["result"].(map[string]any)
		id, _ := res["taskId"].(string)
		if id == "" {
			t.Fatalf("slow_compute: %v, want a task", r)
		}
		return id
	}
	quick, long := start(1), start(60)
	ids := []string{quick, long}
	msgs := forwardListen(t, root, pid, alice, ids...)
	ack := await(t, msgs, "acknowledgement")
	if ack["method"] != "notifications/subscriptions/acknowledged" {
		t.Fatalf("first message: %v", ack)
	}
	granted, _ := ack["params"].(map[string]any)["notifications"].(map[string]any)["taskIds"].([]any)
	if len(granted) != 2 {
		t.Fatalf("granted %v, want %v", granted, ids)
	}
	p := nextStatus(t, msgs, ids, quick, "completed")
	if res, _ := p["result"].(map[string]any); len(res["content"].([]any)) == 0 {
		t.Errorf("completed notification without the result: %v", p)
	}
	if _, r := statelessCall(t, root, pid, alice, "tasks/cancel", long, map[string]any{"taskId": long}); r["result"] == nil {
		t.Fatalf("tasks/cancel: %v", r)
	}
	nextStatus(t, msgs, ids, long, "cancelled")

	// Another principal (another actor, the same store) is granted none.
	mroot, mpid := principalActor(t, d, "mallory-principal")
	mallory := &envelope.Principal{Issuer: "https://idp", Subject: "mallory", ClientId: "c1", Token: "tok-m", ExpiresUnix: time.Now().Add(time.Hour).Unix(), Scopes: []string{"compute"}}
	mmsgs := forwardListen(t, mroot, mpid, mallory, ids...)
	mack := await(t, mmsgs, "mallory's acknowledgement")
	if n, _ := mack["params"].(map[string]any)["notifications"].(map[string]any); len(n) != 0 {
		t.Fatalf("mallory's listen for alice's tasks granted %v", n)
	}
	awaitListenEnd(t, mmsgs, "the server ended the subscription")
}

// awaitListenEnd reads the next messages of a listen (id 9): they must be
// the server's end of it, notifications/cancelled naming it for reason,
// then its completion result, and the stream's end.
func awaitListenEnd(t *testing.T, msgs <-chan map[string]any, reason string) {
	t.Helper()
	sub := func(m map[string]any) any {
		meta, _ := m["_meta"].(map[string]any)
		return meta["io.modelcontextprotocol/subscriptionId"]
	}
	c := await(t, msgs, "notifications/cancelled naming the listen")
	if p, _ := c["params"].(map[string]any); c["method"] != "notifications/cancelled" || p["requestId"] != float64(9) ||
		p["reason"] != reason || sub(p) != float64(9) {
		t.Fatalf("the listen's end began with %v, want notifications/cancelled naming it (reason %q)", c, reason)
	}
	end := await(t, msgs, "the listen's completion result")
	if r, _ := end["result"].(map[string]any); end["id"] != float64(9) || r["resultType"] != "complete" || sub(r) != float64(9) {
		t.Fatalf("after the cancellation: %v, want the listen's completion result", end)
	}
	if m := await(t, msgs, "the stream's end"); m != nil {
		t.Fatalf("after the listen's answer: %v, want the stream's end", m)
	}
}

package actors

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
)

// getStream is a GET on fuzzSession without Last-Event-ID, as the edge
// forwards it: its first part, and the bodies of its parts.
type getStream struct {
	id     string
	head   *envelope.ResponsePart
	bodies chan string
}

// openGET opens the session's standalone stream, acknowledging each part.
func openGET(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal) *getStream {
	t.Helper()
	req := &envelope.Request{
		Id: rand.Text(), Method: http.MethodGet, Path: "/mcp", Window: 16, Principal: p,
		Headers: []*envelope.Header{
			{Name: "Accept", Values: []string{"text/event-stream"}},
			{Name: "Mcp-Session-Id", Values: []string{fuzzSession}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
		},
	}
	head, bodies := make(chan *envelope.ResponsePart, 1), make(chan string, 256)
	root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}})
		case *envelope.Envelope:
			part := m.GetPart()
			if part.GetSeq() == 0 {
				head <- part
			}
			bodies <- string(part.GetBody())
			if part.GetFinal() {
				close(bodies)
				ctx.Stop(ctx.Self())
				return
			}
			ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Ack{Ack: &envelope.Ack{RequestId: req.Id, Seq: part.GetSeq()}}})
		}
	}))
	return &getStream{id: req.Id, head: await(t, head, "the GET's first part"), bodies: bodies}
}

// until reads g's bodies until one holds s, for up to d; it reports
// whether one did.
func (g *getStream) until(s string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case b, ok := <-g.bodies:
			if !ok {
				return false
			}
			if strings.Contains(b, s) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func (g *getStream) close(t *testing.T, root *actor.RootContext, pid *actor.PID) {
	t.Helper()
	root.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: g.id}}})
	deadline := time.After(forwardTimeout)
	for {
		select {
		case _, ok := <-g.bodies:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the GET never ended")
		}
	}
}

func triggerPromptChange(t *testing.T, root *actor.RootContext, pid *actor.PID, p *envelope.Principal, id int) {
	t.Helper()
	if status := fuzzForward(t, root, pid, p, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_trigger_prompt_change","arguments":{}}}`, id)); status != http.StatusOK {
		t.Fatalf("test_trigger_prompt_change: %d", status)
	}
}

func awaitStandaloneStored(t *testing.T, d *state.Stores, n int) {
	t.Helper()
	for deadline := time.Now().Add(forwardTimeout); ; time.Sleep(5 * time.Millisecond) {
		stored := 0
		for _, err := range d.Events.After(t.Context(), fuzzSession, "", -1) {
			if err == nil {
				stored++
			}
		}
		if stored >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events never stored on the standalone stream", n)
		}
	}
}

// The standalone stream expired (--events-ttl without a notification) and
// was opened anew by a GET, its numbers starting again from 0, while this
// activation still counted what it sent of the old one: a notification
// sent while no GET was open is still delivered by the next GET. Found by
// a review (it was skipped).
func TestStandaloneAfterReopenDeliversWhatNoStreamCarried(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	ev := d.Events.(*state.MemoryEvents)
	ev.SetOptions(state.EventOptions{TTL: time.Minute})
	var mu sync.Mutex
	now := time.Now()
	ev.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	root, pid, p := runningSessionOn(t, d, Config{})

	a := openGET(t, root, pid, p)
	if a.head.GetStatus() != http.StatusOK {
		t.Fatalf("GET A: %d", a.head.GetStatus())
	}
	triggerPromptChange(t, root, pid, p, 1)
	if !a.until("list_changed", forwardTimeout) {
		t.Fatal("GET A never got the list change")
	}
	a.close(t, root, pid)

	// The standalone stream expires; the session goes on.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","id":2,"method":"ping"}`); status != http.StatusOK {
		t.Fatalf("ping: %d", status)
	}
	// A GET opens it anew (index 0 next), and goes.
	b := openGET(t, root, pid, p)
	if b.head.GetStatus() != http.StatusOK {
		t.Fatalf("GET B: %d %s", b.head.GetStatus(), b.head.GetBody())
	}
	b.close(t, root, pid)

	// A notification while no GET is open: index 0 of the new stream.
	triggerPromptChange(t, root, pid, p, 3)
	awaitStandaloneStored(t, d, 1)

	c := openGET(t, root, pid, p)
	if c.head.GetStatus() != http.StatusOK {
		t.Fatalf("GET C: %d %s", c.head.GetStatus(), c.head.GetBody())
	}
	if !strings.Contains(string(c.head.GetBody()), "list_changed") && !c.until("list_changed", 2*time.Second) {
		t.Error("the list change sent while no GET was open, after the stream was opened anew, was never delivered")
	}
}

// racingOpenLast lets a standalone event land in the store right after
// OpenLast answered (another request's notification, in the moment before
// the go-sdk's replay): with the stream at MaxLen, it drops the first kept
// event OpenLast reported.
type racingOpenLast struct {
	state.Events
	once sync.Once
}

func (r *racingOpenLast) OpenLast(ctx context.Context, session, stream string, epoch int64) (int, int, int, error) {
	first, last, sent, err := r.Events.OpenLast(ctx, session, stream, epoch)
	if err == nil {
		r.once.Do(func() {
			_ = r.Events.Append(ctx, session, stream, []byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"late"}}`))
		})
	}
	return first, last, sent, err
}

// A GET without Last-Event-ID resumes from before the first kept event:
// an event that lands between the store's answer and the go-sdk's replay
// and drops that first event (MaxLen, or the session's byte budget) makes
// the go-sdk refuse the replay, 400 "failed to replay events": the actor
// asks the store again and tries once more. Found by a review (the client
// got the 400, and the go-sdk client gives its standalone stream up).
func TestStandaloneGETRacingADrop(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	inner := d.Events.(*state.MemoryEvents)
	inner.SetOptions(state.EventOptions{MaxLen: 2})
	d.Events = &racingOpenLast{Events: inner}
	root, pid, p := runningSessionOn(t, d, Config{})
	// Two notifications no GET carried: the stream is at MaxLen.
	triggerPromptChange(t, root, pid, p, 1)
	awaitStandaloneStored(t, d, 1)
	triggerPromptChange(t, root, pid, p, 2)
	awaitStandaloneStored(t, d, 2)
	g := openGET(t, root, pid, p)
	if g.head.GetStatus() != http.StatusOK {
		t.Fatalf("GET without Last-Event-ID: %d %s, want 200", g.head.GetStatus(), g.head.GetBody())
	}
}

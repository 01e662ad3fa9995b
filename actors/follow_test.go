package actors

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

// A session moves after followAfter requests in a row from one other node;
// one served where it arrived, or from another node, starts the count anew.
func TestTrail(t *testing.T) {
	var tr trail
	step := func(from string, want bool) {
		t.Helper()
		if got := tr.note(from); got != want {
			t.Fatalf("note(%q) after a run of %d: %v, want %v", from, tr.run, got, want)
		}
	}
	for range followAfter - 1 {
		step("b", false)
	}
	step("", false) // served here
	for range followAfter - 1 {
		step("b", false)
	}
	step("c", false) // from another node
	for range followAfter - 2 {
		step("c", false)
	}
	step("c", true)
	step("c", true) // still: until it has moved
}

// stalling is a Redis event store whose writes wait, while on, until
// released (or their context ends): a store that does not take a
// session's state in time.
type stalling struct {
	*state.RedisEvents
	on      atomic.Bool
	release chan struct{}
}

func (s *stalling) wait(ctx context.Context) error {
	if !s.on.Load() {
		return nil
	}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stalling) AppendFinish(ctx context.Context, session, stream string, epoch int64, write state.WriteID, data []byte) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.RedisEvents.AppendFinish(ctx, session, stream, epoch, write, data)
}

func (s *stalling) AppendAt(ctx context.Context, session, stream string, epoch int64, write state.WriteID, data []byte) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.RedisEvents.AppendAt(ctx, session, stream, epoch, write, data)
}

func (s *stalling) FinishRequests(ctx context.Context, session, stream string, epoch int64) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.RedisEvents.FinishRequests(ctx, session, stream, epoch)
}

// A session whose requests come from another node, but whose store does
// not take its state within saveTimeout as it moves, gives the move up: it
// serves on where it is, the request that came while it wrote is served
// (not refused as moved), and its writes land once the store takes them.
func TestMoveGivenUp(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Options().Addr})
	t.Cleanup(func() { client.Close() })
	sealer, err := state.ParseKeys("k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	events := &stalling{RedisEvents: state.NewRedisEvents(client, "", state.EventOptions{}), release: make(chan struct{})}
	var logs logtest.Buffer
	system, props := testSessions(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Stores: &state.Stores{
		Snapshots: state.NewRedisSnapshots(client, ""), Events: events, Sealer: sealer, SessionTTL: time.Hour, Shared: true,
	}})
	const id = "given-up"
	pid := system.Root.Spawn(protocluster.WithClusterIdentity(props, protocluster.NewClusterIdentity(id, "session")))
	request := func(body, from string) *envelope.Request {
		req := &envelope.Request{Id: rand.Text(), Method: http.MethodPost, Path: "/mcp", Body: []byte(body), Window: 16, From: from,
			Headers: []*envelope.Header{
				{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
				{Name: "Content-Type", Values: []string{"application/json"}},
			}}
		if !strings.Contains(body, `"initialize"`) {
			req.Headers = append(req.Headers, &envelope.Header{Name: "Mcp-Session-Id", Values: []string{id}},
				&envelope.Header{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}})
		}
		return req
	}
	post := func(body, from string) *response { return forwardRequest(system.Root, pid, request(body, from)) }
	served := func(r *response, what string) {
		t.Helper()
		head := await(t, r.head, what)
		body := await(t, r.body, what)
		if head.GetStatus() != http.StatusOK || !strings.Contains(body, `"result"`) {
			t.Fatalf("%s: %d %s; want it served", what, head.GetStatus(), body)
		}
	}
	served(post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, ""), "initialize")
	await(t, post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, "").body, "initialized")
	const call = `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_simple_text"}}`
	const other = "10.0.0.2:4020"
	for i := range followAfter - 1 {
		served(post(fmt.Sprintf(call, i+1), other), fmt.Sprintf("call %d from %s", i+1, other))
	}
	events.on.Store(true) // the store takes nothing more for now
	served(post(fmt.Sprintf(call, followAfter), other), "the call that makes the session move")
	awaitLogged(t, &logs, `"msg":"session moving to the node its requests come from"`)
	// Held while the session writes, and left by its client (its edge's
	// Cancel): not run when the move is given up (run, it would wait for
	// good for an elicitation's answer, and its id be refused to another
	// call as in flight).
	left := request(`{"jsonrpc":"2.0","id":100,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`, other)
	sent := make(chan struct{})
	system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			ctx.Request(pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: left}})
			ctx.Send(pid, &envelope.Envelope{Body: &envelope.Envelope_Cancel{Cancel: &envelope.Cancel{RequestId: left.Id}}})
			close(sent)
		}
	}))
	<-sent
	during := post(fmt.Sprintf(call, followAfter+1), other) // held while the session writes
	awaitLogged(t, &logs, `"msg":"session move given up`)
	close(events.release)
	served(during, "the call that came during the move")
	served(post(`{"jsonrpc":"2.0","id":100,"method":"tools/call","params":{"name":"test_simple_text"}}`, ""), "a call with the id of the one left while held")
	served(post(fmt.Sprintf(call, followAfter+2), ""), "a call after the move was given up")
	if strings.Contains(logs.String(), `"msg":"session moved`) {
		t.Error("the session moved all the same")
	}
}

// awaitLogged waits until logs hold a line with substr (forwardTimeout at
// most): the actor logs on its own goroutine.
func awaitLogged(t *testing.T, logs *logtest.Buffer, substr string) {
	t.Helper()
	for deadline := time.Now().Add(forwardTimeout); !strings.Contains(logs.String(), substr); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %s within %v:\n%s", substr, forwardTimeout, logs.String())
		}
	}
}

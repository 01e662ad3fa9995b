package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"
)

// durableArgs are the flags of a node keeping sessions in Redis at addr,
// sealed with key.
func durableArgs(addr, key string) []string {
	return []string{"--redis-url", "redis://" + addr + "/0", "--state-keys", key}
}

func newStateKey(t testing.TB) string {
	b := make([]byte, 32)
	rand.Read(b)
	return "k1:" + base64.StdEncoding.EncodeToString(b)
}

// durableClient is one MCP session driven by the go-sdk client, counting
// the log messages it receives.
type durableClient struct {
	cs   *mcp.ClientSession
	logs chan string
	// toolsChanged receives the tools/list_changed notifications, which
	// travel on the standalone stream.
	toolsChanged chan struct{}
}

// connectDurable opens a session that reconnects its streams as clients do
// (the SDK's default retries), optionally without the standalone stream.
func connectDurable(t testing.TB, ctx context.Context, url string, standalone bool, elicit func(context.Context) (*mcp.ElicitResult, error)) *durableClient {
	t.Helper()
	return connectDurableAs(t, ctx, url, "", standalone, elicit)
}

// connectDurableAs is connectDurable with token as the bearer of every
// request ("" for none).
func connectDurableAs(t testing.TB, ctx context.Context, url, token string, standalone bool, elicit func(context.Context) (*mcp.ElicitResult, error)) *durableClient {
	t.Helper()
	var hc *http.Client
	if token != "" {
		hc = &http.Client{Transport: bearerTransport{token}}
	}
	dc := &durableClient{logs: make(chan string, 64), toolsChanged: make(chan struct{}, 16)}
	opts := &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case dc.toolsChanged <- struct{}{}:
			default:
			}
		},
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			select {
			case dc.logs <- fmt.Sprint(req.Params.Data):
			default:
			}
		},
	}
	if elicit != nil {
		opts.ElicitationHandler = func(ctx context.Context, _ *mcp.ElicitRequest) (*mcp.ElicitResult, error) { return elicit(ctx) }
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e-durable", Version: "1"}, opts)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, DisableStandaloneSSE: !standalone}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() {
		start := time.Now()
		cs.Close()
		if d := time.Since(start); d > time.Second {
			t.Logf("closing session %s took %v", cs.ID(), d)
		}
	})
	dc.cs = cs
	return dc
}

// retryable says whether a failed call may be retried: the node answered
// 503 (no node could serve it yet), or the session's next activation
// answered it as interrupted.
func retryable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "503") || strings.Contains(s, "Service Unavailable") || strings.Contains(s, "interrupted")
}

// callLogging calls test_tool_with_logging, retrying retryable errors, and
// checks that the session still logs at the level it set (three messages).
// It returns how many attempts failed with a retryable error.
func (dc *durableClient) callLogging(t testing.TB, ctx context.Context) (int, error) {
	retries := 0
	for {
		res, err := dc.cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_tool_with_logging"})
		if err == nil {
			if res.IsError {
				return retries, fmt.Errorf("tool error: %+v", res.Content)
			}
			for i := range 3 {
				select {
				case <-dc.logs:
				case <-ctx.Done():
					return retries, fmt.Errorf("log message %d of 3 never came: the session lost its log level", i+1)
				}
			}
			return retries, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return retries, err
		}
		retries++
		select {
		case <-ctx.Done():
			return retries, err
		case <-time.After(100 * time.Millisecond): // a client's retry pacing
		}
	}
}

// TestSessionOutlivesItsActor: an idle session's actor passivates, and the
// session goes on from its snapshot, with its id and its log level, without
// a new initialize (memory store, one node).
func TestSessionOutlivesItsActor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startNode(t, "single", "--actor-idle-timeout", "1s", "--session-idle-timeout", "1h")
	dc := connectDurable(t, ctx, n.URL(), false, nil)
	if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	n.awaitSession(ctx, dc.cs.ID(), "passivated", func(s state.SessionInfo, found bool) bool { return found && !s.Live })
	if _, err := dc.callLogging(t, ctx); err != nil {
		t.Fatalf("call after passivation: %v", err)
	}
	if got := n.awaitMetric(ctx, rehydrated, 1); got != 1 {
		t.Fatalf("%v activations rehydrated a session, want 1 (the call after passivation)", got)
	}
	if got := n.metric(ctx, `pingmcp_activations_total{outcome="new"}`); got != 1 {
		t.Fatalf("%v activations were initializes, want 1", got)
	}
	// Ending the session ends it for good: the snapshot goes too.
	if err := dc.cs.Close(); err != nil {
		t.Fatal(err)
	}
	if code := connectRaw(t, n.URL(), dc.cs.ID()).post(ctx, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); code != http.StatusNotFound {
		t.Fatalf("ping after DELETE: %d, want 404", code)
	}
}

// sseEvent is one event of a raw SSE response.
type sseEvent struct{ id, data string }

func readSSE(t *testing.T, resp *http.Response) []sseEvent {
	t.Helper()
	defer resp.Body.Close()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 8<<20) // events of large tool results
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			cur.data += strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

// rawCall posts a tools/call on session id and reads its whole SSE answer.
func rawCall(t *testing.T, ctx context.Context, url, id, tool string) []sseEvent {
	t.Helper()
	return callEvents(t, ctx, url, id, `{"jsonrpc":"2.0","id":"raw-1","method":"tools/call","params":{"name":"`+tool+`"}}`)
}

// awaitStreamStored waits until Redis holds every event of session's
// stream that a raw call answered (events): its answer is stored behind
// its delivery. Redis holds them sealed: none of their data in the clear.
func awaitStreamStored(t *testing.T, ctx context.Context, rdb *redis.Client, session string, events []sseEvent) {
	t.Helper()
	stream, _, _ := strings.Cut(events[0].id, "_")
	store := state.NewRedisEvents(rdb, "", state.EventOptions{}) // no sealer: what Redis holds
	for {
		var stored [][]byte
		for data, err := range store.After(ctx, session, stream, -1) {
			if err != nil {
				break
			}
			if len(data) > 0 {
				stored = append(stored, data)
			}
		}
		if len(stored) >= len(events) {
			for _, data := range stored {
				for _, e := range events {
					if bytes.Contains(data, []byte(e.data)) {
						t.Errorf("Redis holds an event of session %s in the clear: %q", session, e.data)
					}
				}
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stream %s of session %s: %d of its %d events stored", stream, session, stored, len(events))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// rawResume GETs session id's events after lastEventID.
func rawResume(t *testing.T, ctx context.Context, url, id, lastEventID string) []sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Last-Event-ID", lastEventID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("resume after %s: %v %v", lastEventID, err, resp)
	}
	return readSSE(t, resp)
}

// TestKillMember is the durability proof: 50 sessions on three nodes (one
// edge-only) keeping their state in a real Redis; a member is killed with
// SIGKILL while calls are in flight and streams open. Every session goes on
// with its id and log level, without a new initialize; every call in flight
// gets its answer or a retryable error; a resumed stream misses no event.
// Then two nodes join (sessions move to them), a member is killed again
// the same way, and a node drains (SIGTERM).
func TestKillMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel) // after the clients' cleanups: they close their sessions with it
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	member := func(name string, seed string) *node {
		return startNode(t, name, append([]string{"--role", "member", "--cluster-seeds", seed}, durable...)...)
	}
	edge := startNode(t, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, durable...)...)
	m1, m2 := member("member1", edge.Cluster), member("member2", edge.Cluster)
	for _, n := range []*node{edge, m1, m2} {
		n.awaitMembers(ctx, 3)
	}

	const sessions = 50
	// Calls in flight wait in their clients' elicitation handlers until
	// released.
	var rig struct {
		mu      sync.Mutex
		release chan struct{}
		entered sync.WaitGroup
	}
	elicit := func(ctx context.Context) (*mcp.ElicitResult, error) {
		rig.mu.Lock()
		release := rig.release
		rig.mu.Unlock()
		rig.entered.Done()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &mcp.ElicitResult{Action: "decline"}, nil
	}
	var clients []*durableClient
	for i := range sessions {
		dc := connectDurable(t, ctx, edge.URL(), i%2 == 0, elicit) // half keep a standalone stream open
		if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		clients = append(clients, dc)
	}
	t.Logf("%d sessions open", sessions)
	const initialize = `pingmcp_request_duration_seconds_count{method="initialize",status="200"}`
	initializes := edge.metric(ctx, initialize)
	members := []*node{m1, m2}

	// hosted returns the sessions whose last activation is n's, as the
	// admin API lists them.
	hosted := func(n *node) (out []*durableClient, streaming []*durableClient) {
		node := map[string]string{}
		for _, s := range edge.sessions(ctx) {
			node[s.ID] = s.Node
		}
		for i, dc := range clients {
			if node[dc.cs.ID()] == n.Cluster {
				out = append(out, dc)
				if i%2 == 0 {
					streaming = append(streaming, dc)
				}
			}
		}
		return out, streaming
	}

	// kill kills victim under load and checks that every session goes on.
	kill := func(round string, victim *node, wantMembers int) {
		victims, streaming := hosted(victim)
		if len(victims) == 0 || len(victims) == sessions || len(streaming) == 0 {
			t.Fatalf("%s: %s hosts %d of %d sessions (%d streaming); the test needs some on each member", round, victim.name, len(victims), sessions, len(streaming))
		}
		// A standalone stream on the victim carries a notification before
		// the kill, and after it.
		listener := streaming[0]
		triggerToolChange := func(when string) {
			for {
				_, err := listener.cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_trigger_tool_change"})
				if err == nil {
					break
				}
				if !retryable(err) || ctx.Err() != nil {
					t.Fatalf("%s: trigger a tool change %s: %v", round, when, err)
				}
				time.Sleep(100 * time.Millisecond) // a client's retry pacing
			}
			select {
			case <-listener.toolsChanged:
			case <-ctx.Done():
				t.Fatalf("%s: tools/list_changed never arrived on the standalone stream %s", round, when)
			}
		}
		triggerToolChange("before the kill")

		// A finished stream, to resume after the kill from its first event.
		resumed := victims[0]
		before := rawCall(t, ctx, edge.URL(), resumed.cs.ID(), "test_tool_with_logging")
		if len(before) < 4 || before[0].id == "" {
			t.Fatalf("%s: raw call answered %d events (%+v); want logs and a result, with ids", round, len(before), before)
		}
		// Its answer is stored behind its delivery: the kill is to come
		// after it is (a kill before would replay the journal's answer).
		awaitStreamStored(t, ctx, rdb, resumed.cs.ID(), before)

		// Calls in flight on the victim.
		inflight := victims[:min(5, len(victims))]
		type outcome struct {
			res *mcp.CallToolResult
			err error
		}
		outcomes := make(chan outcome, len(inflight))
		rig.mu.Lock()
		rig.release = make(chan struct{})
		release := rig.release
		rig.mu.Unlock()
		rig.entered.Add(len(inflight))
		for _, dc := range inflight {
			go func() {
				res, err := dc.cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_elicitation", Arguments: map[string]any{"message": "wait"}})
				outcomes <- outcome{res, err}
			}()
		}
		rig.entered.Wait()
		// And a call of a client that takes JSON alone (it cannot resume
		// a stream: the edge resumes it for it), running when the victim
		// dies: seen running by a call with its id, which the go-sdk
		// refuses while it runs.
		jsonSession := victims[len(victims)-1].cs.ID()
		jsonID := "json-" + round
		jsonOutcome := make(chan string, 1)
		startJSON := func() {
			req := sessionPost(ctx, edge.URL(), jsonSession, "", `{"jsonrpc":"2.0","id":"`+jsonID+`","method":"tools/call","params":{"name":"slow_compute","arguments":{"seconds":120}}}`)
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				jsonOutcome <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			jsonOutcome <- fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), bytes.TrimSpace(b))
		}
		go startJSON()
		for {
			_, body := rawPost(t, ctx, edge.URL(), jsonSession, `{"jsonrpc":"2.0","id":"`+jsonID+`","method":"ping"}`)
			if strings.Contains(body, "duplicate in-flight request ID") {
				break
			}
			select {
			case o := <-jsonOutcome:
				if !strings.Contains(o, "duplicate in-flight request ID") {
					t.Fatalf("%s: the JSON-only call ended before the kill: %s", round, o)
				}
				go startJSON() // a probe reached the go-sdk first
			case <-ctx.Done():
				t.Fatalf("%s: the JSON-only call never ran: %s", round, body)
			case <-time.After(20 * time.Millisecond):
			}
		}

		rehydratedBefore := 0.0 // on the members that survive
		for _, m := range members {
			if m != victim {
				rehydratedBefore += m.metric(ctx, rehydrated)
			}
		}
		killed := time.Now()
		victim.kill()
		close(release)
		members = slices.DeleteFunc(members, func(m *node) bool { return m == victim })
		edge.awaitMembers(ctx, wantMembers)
		t.Logf("%s: %s killed; the edge saw it leave after %v", round, victim.name, time.Since(killed).Round(time.Millisecond))

		// Every session goes on; the first success of a moved session is
		// the failover time.
		var failover time.Duration
		for i, dc := range append(slices.Clone(victims), clients...) {
			if _, err := dc.callLogging(t, ctx); err != nil {
				t.Fatalf("%s: session %s after the kill: %v", round, dc.cs.ID(), err)
			}
			if i == 0 {
				failover = time.Since(killed)
			}
		}
		t.Logf("%s: failover (kill → first successful call of a moved session): %v; every session continued %v after the kill",
			round, failover.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
		interrupted := 0
		for range inflight {
			o := <-outcomes
			if o.err != nil && strings.Contains(o.err.Error(), "interrupted") {
				interrupted++
			}
			switch {
			case o.err != nil && !retryable(o.err):
				t.Errorf("%s: in-flight call failed with a non-retryable error: %v", round, o.err)
			case o.err == nil && o.res.IsError:
				t.Errorf("%s: in-flight call answered with a tool error: %+v", round, o.res.Content)
			}
		}
		if interrupted != len(inflight) {
			t.Errorf("%s: %d of %d in-flight calls were answered as interrupted by the next activation", round, interrupted, len(inflight))
		}
		// The JSON-only call: its stream resumed by the edge on the next
		// activation, which answers it as interrupted (retryable), as an
		// event stream's client is answered; not a 502.
		if o := <-jsonOutcome; !strings.HasPrefix(o, "200 application/json {") || !strings.Contains(o, `"id":"`+jsonID+`"`) || !strings.Contains(o, "interrupted") {
			t.Errorf("%s: the JSON-only call in flight on the victim: %s, want 200 and a JSON answer: interrupted", round, o)
		}
		moved := -rehydratedBefore
		for _, m := range members {
			moved += m.metric(ctx, rehydrated)
		}
		if moved < float64(len(victims)) {
			t.Errorf("%s: %v sessions rehydrated, want at least the %d of %s", round, moved, len(victims), victim.name)
		}
		triggerToolChange("after the kill")
		// The stream answered on the victim resumes, from Redis.
		if after := rawResume(t, ctx, edge.URL(), resumed.cs.ID(), before[0].id); !slices.Equal(after, before[1:]) {
			t.Errorf("%s: resumed after %s:\n got %+v\nwant %+v", round, before[0].id, after, before[1:])
		}
	}

	kill("round 1", m1, 2)

	// Scale out: two nodes join and take some sessions.
	m3, m4 := member("member3", edge.Cluster), member("member4", edge.Cluster)
	members = append(members, m3, m4)
	for _, n := range []*node{edge, m2, m3, m4} {
		n.awaitMembers(ctx, 4)
	}
	for _, dc := range clients {
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %s after scale-out: %v", dc.cs.ID(), err)
		}
	}
	if m3.metric(ctx, rehydrated)+m4.metric(ctx, rehydrated) == 0 {
		t.Error("no session moved to the nodes that joined")
	}

	// The same again, on the larger cluster.
	kill("round 2", m2, 3)

	// Drain member3: its sessions go on on member4.
	m3.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m3.done:
	case <-ctx.Done():
		t.Fatal("member3 did not exit after SIGTERM")
	}
	edge.awaitMembers(ctx, 2)
	for _, dc := range clients {
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %s after the drain: %v", dc.cs.ID(), err)
		}
	}
	if got := edge.metric(ctx, initialize); got != initializes {
		t.Errorf("%v new sessions were initialized; want none", got-initializes)
	}
	if m3.logged(`"msg":"drain timed out`) {
		t.Error("member3's drain timed out")
	}
	// Sessions end where they now live.
	if m4.metric(ctx, liveSessions) == 0 {
		t.Fatal("member4 hosts no session")
	}
	for _, dc := range clients {
		if err := dc.cs.Close(); err != nil {
			t.Errorf("closing session %s: %v", dc.cs.ID(), err)
		}
	}
	var live float64
	if !poll(ctx, func() bool { live = m4.metric(ctx, liveSessions); return live == 0 }) {
		t.Errorf("%v sessions still live on member4 after every session was closed", live)
	}
	if left := edge.sessions(ctx); len(left) != 0 {
		t.Errorf("%d sessions stored after every session was closed", len(left))
	}
}

// postOnSession posts body (JSON-RPC) on session id at url, as a 2025-11-25
// client does.
func postOnSession(ctx context.Context, url, id, body string) (*http.Response, error) {
	return http.DefaultClient.Do(sessionPost(ctx, url, id, "", body))
}

// sessionPost is a POST of body on session id at url, as a client of the
// 2025-11-25 protocol sends it, with token as its bearer if one is given.
func sessionPost(ctx context.Context, url, id, token, body string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// rawPost posts body on session id at url and returns the status and body.
func rawPost(t *testing.T, ctx context.Context, url, id, body string) (int, string) {
	t.Helper()
	resp, err := postOnSession(ctx, url, id, body)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFencing forces two activations of one session, as a split brain
// would: two nodes that do not know each other (each its own cluster) share
// one Redis, and the session is used through both. Each new activation takes
// a newer epoch; the older one, still live, cannot write: a change it is
// asked for is refused as retryable before anything runs, it stops, and
// Redis keeps the newer activation's state. At most one writer at a time.
func TestFencing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel) // after the clients' cleanups: they close their sessions with it
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	a := startNode(t, "a", durable...)
	b := startNode(t, "b", durable...)

	dc := connectDurable(t, ctx, a.URL(), false, nil)
	if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	id := dc.cs.ID()
	snapKey := "pingmcp:session:{" + id + "}:snap"
	epochKey := "pingmcp:session:{" + id + "}:epoch"
	setLevel := func(n *node, level string) (int, string) {
		return rawPost(t, ctx, n.URL(), id, setLevelBody(level))
	}
	setLevelRetrying := func(n *node, level string) (status int, body string) {
		return rawPostRetrying(t, ctx, n.URL(), id, setLevelBody(level))
	}

	// b activates the session too (epoch 2) and changes it.
	if status, body := setLevel(b, "debug"); status != http.StatusOK || strings.Contains(body, "error") {
		t.Fatalf("setLevel through b: %d %s", status, body)
	}
	if e := rdb.Get(ctx, epochKey).Val(); e != "2" {
		t.Fatalf("epoch after b's activation = %s, want 2", e)
	}
	// a's activation (epoch 1) is live, and stale. It refuses the change
	// (-32004), or, if a write of its own still queued (events are stored
	// behind the response) told it first, it has stopped: the edge answers
	// "retry" if the request reached it as it stopped (a retryable 503),
	// or, if it was gone before, sends the request to a new activation
	// (epoch 3), which serves it. Either way the fencing counts, and the
	// stale activation changed nothing.
	status, body := setLevel(a, "error")
	refused := status == http.StatusServiceUnavailable && (strings.Contains(body, `"code":-32004`) || strings.Contains(body, "retry"))
	takenBack := status == http.StatusOK && !strings.Contains(body, `"error"`) && rdb.Get(ctx, epochKey).Val() == "3"
	if !refused && !takenBack {
		t.Fatalf("the stale activation answered %d %s; want a retryable 503 ('session moved'), or the answer of a new activation", status, body)
	}
	if got := a.awaitMetric(ctx, "pingmcp_fencing_rejections_total", 1); got < 1 {
		t.Fatal("a never counted its activation fenced")
	}
	if want := map[bool]string{true: `"log_level":"debug"`, false: `"log_level":"error"`}[refused]; !strings.Contains(rdb.Get(ctx, snapKey).Val(), want) {
		t.Fatalf("the snapshot after a's answer %d: %s; want %s", status, rdb.Get(ctx, snapKey).Val(), want)
	}
	// A tool call on a stale activation does not run either (the refusal
	// comes from opening its stream, before the SDK dispatches it): b is
	// stale once a activates the session again (epoch 3).
	if status, body := setLevelRetrying(a, "info"); status != http.StatusOK || strings.Contains(body, "error") {
		t.Fatalf("setLevel through a's new activation: %d %s", status, body)
	}
	if e := rdb.Get(ctx, epochKey).Val(); e != "3" {
		t.Fatalf("epoch after a's second activation = %s, want 3", e)
	}
	// b's activation may already have learnt it is stale from a write of
	// its own still in its queue (its events are stored behind the
	// response) and stopped: the call then finds it gone. Either way the
	// answer is a retryable 503, and nothing ran.
	// (As above, a stale activation gone before the call reached it would
	// have the call served by a new one, epoch 4.)
	status, body = rawPost(t, ctx, b.URL(), id, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"test_tool_with_logging"}}`)
	switch e := rdb.Get(ctx, epochKey).Val(); {
	case status == http.StatusServiceUnavailable && (strings.Contains(body, `"code":-32004`) || strings.Contains(body, "retry")):
		if e != "3" {
			t.Fatalf("epoch after the refused call to b = %s, want 3: b took the session back", e)
		}
	case status == http.StatusOK && e == "4" && strings.Contains(body, "notifications/message"):
	default:
		t.Fatalf("a tool call on the stale activation answered %d %s (epoch %s)", status, body, e)
	}
	// The client, on a, carries on at the level a's activation set.
	if _, err := dc.callLogging(t, ctx); err != nil {
		t.Fatalf("session after the fencing: %v", err)
	}
}

// setLevelBody is a logging/setLevel request's body.
func setLevelBody(level string) string {
	return `{"jsonrpc":"2.0","id":7,"method":"logging/setLevel","params":{"level":"` + level + `"}}`
}

// rawPostRetrying is rawPost retrying, as a client does, what is answered
// 503 (an activation on its way out, a node not yet ready), for up to
// about 5 s.
func rawPostRetrying(t *testing.T, ctx context.Context, url, id, body string) (status int, answer string) {
	t.Helper()
	for range 50 {
		if status, answer = rawPost(t, ctx, url, id, body); status != http.StatusServiceUnavailable {
			return status, answer
		}
		select {
		case <-ctx.Done():
			return status, answer
		case <-time.After(100 * time.Millisecond): // a client's retry pacing
		}
	}
	return status, answer
}

// readyz returns a node's /readyz status and body.
func readyz(t *testing.T, n *node) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTP + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestRedisRestart stops Redis under load and starts it again. While it is
// away, live sessions keep serving from memory (their writes wait), /readyz
// says the store is unreachable, and a change made meanwhile is kept; once
// it is back, the held writes land: the change survives the loss of every
// node, and a stream answered during the outage resumes from Redis.
func TestRedisRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel) // after the clients' cleanups: they close their sessions with it
	srv := redistest.StartPersistent(t)
	durable := durableArgs(srv.Addr, newStateKey(t))
	edge := startNode(t, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, durable...)...)
	m1 := startNode(t, "member1", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, durable...)...)
	for _, n := range []*node{edge, m1} {
		n.awaitMembers(ctx, 2)
	}
	const sessions = 10
	var clients []*durableClient
	for i := range sessions {
		dc := connectDurable(t, ctx, edge.URL(), i%2 == 0, nil)
		if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, dc)
	}

	// Load: every session calls a tool over and over.
	load := startLoad(t, ctx, clients[1:])

	srv.Stop()
	if _, body := readyz(t, m1); body["status"] != "degraded" || !strings.Contains(fmt.Sprint(body["store"]), "unreachable") {
		t.Errorf("member1's /readyz while Redis is down: %v", body)
	}
	// A change and a stream while Redis is down: both answered from memory.
	changed := clients[0]
	if err := changed.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatalf("setLevel while Redis is down: %v", err)
	}
	during := rawCall(t, ctx, edge.URL(), changed.cs.ID(), "test_tool_with_logging")
	if len(during) < 4 {
		t.Fatalf("call while Redis is down answered %+v", during)
	}
	flushed := m1.watch(`"msg":"event store reachable again; held events written"`)
	srv.Start()
	edge.awaitSession(ctx, changed.cs.ID(), "stored with the log level set while Redis was down",
		func(s state.SessionInfo, found bool) bool { return s.LogLevel == "debug" })
	awaitLine(t, ctx, flushed, changed.cs.ID())
	load.stop(t, "the Redis restart")
	if _, body := readyz(t, m1); body["store"] != "ok" {
		t.Errorf("member1's /readyz after Redis returned: %v", body)
	}

	// Nothing was lost: with every member gone, a new one serves the
	// sessions from Redis alone, with the change made while it was down,
	// and the stream answered then resumes.
	m1.kill()
	m2 := startNode(t, "member2", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, durable...)...)
	for _, n := range []*node{edge, m2} {
		n.awaitMembers(ctx, 2)
	}
	if after := rawResume(t, ctx, edge.URL(), changed.cs.ID(), during[0].id); !slices.Equal(after, during[1:]) {
		t.Errorf("stream answered while Redis was down, resumed:\n got %+v\nwant %+v", after, during[1:])
	}
	for _, dc := range clients {
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %s on the new member: %v", dc.cs.ID(), err)
		}
	}
	if s, _ := edge.session(ctx, changed.cs.ID()); s.Node != m2.Cluster || s.LogLevel != "debug" {
		t.Errorf("the log level set while Redis was down did not survive on the new member: %+v", s)
	}
	for _, dc := range clients {
		if err := dc.cs.Close(); err != nil {
			t.Errorf("closing session %s: %v", dc.cs.ID(), err)
		}
	}
}

// BenchmarkFailover measures failover time: from the SIGKILL of the member
// hosting a session to that session's first successful tool call on
// another member, with the automanaged provider's default failure detection
// (a probe every 500 ms, 3 misses) and a tuned one (200 ms, 2 misses). Each
// op starts Redis and three nodes: run it with -benchtime 1x -count N.
func BenchmarkFailover(b *testing.B) {
	for _, tc := range []struct {
		name  string
		probe []string
	}{
		{"default", nil},
		{"tuned", []string{"--cluster-probe-interval", "200ms", "--cluster-probe-failures", "2"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += failoverOnce(b, tc.probe)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "failover-ms")
		})
	}
}

func failoverOnce(b *testing.B, probe []string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	b.Cleanup(cancel)
	rdb := redistest.Start(b)
	args := append(durableArgs(rdb.Options().Addr, newStateKey(b)), append(probe, "--log-level", "info")...)
	edge := startNode(b, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, args...)...)
	m1 := startNode(b, "member1", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, args...)...)
	m2 := startNode(b, "member2", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, args...)...)
	for _, n := range []*node{edge, m1, m2} {
		n.awaitMembers(ctx, 3)
	}
	var victim *durableClient
	for range 64 {
		dc := connectDurable(b, ctx, edge.URL(), false, nil)
		if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			b.Fatal(err)
		}
		if host(b, ctx, dc.cs.ID(), m1, m2) == m1 {
			victim = dc
			break
		}
	}
	if victim == nil {
		b.Fatal("no session landed on member1")
	}
	killed := time.Now()
	m1.kill()
	if _, err := victim.callLogging(b, ctx); err != nil {
		b.Fatalf("after the kill: %v", err)
	}
	failover := time.Since(killed)
	victim.cs.Close()
	return failover
}

// TestTodoSessionRehydrated: with real users and delegated tokens (pingmcp
// dev), a session whose actor was unloaded continues with its owner, and
// with the exchanged token it cached (sealed in the snapshot): no new
// exchange, no new login. Another user still cannot use it, and no token
// appears in the logs.
func TestTodoSessionRehydrated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := runDev(t, "--actor-idle-timeout", "1s", "--session-idle-timeout", "1h")
	const all = "openid offline_access todo_api:read todo_api:write"
	alice := login(t, ctx, d.Issuer, d.MCP, "alice", all)
	bob := login(t, ctx, d.Issuer, d.MCP, "bob", all)
	as := connectQuiet(t, ctx, d.MCP, alice)
	if out, isErr := call(t, ctx, as, "create_new_todo", map[string]any{"text": "survives"}); isErr {
		t.Fatalf("create_new_todo: %s", out)
	}
	exchanges := d.awaitMetric(ctx, exchanged, 1)
	d.awaitSession(ctx, as.ID(), "passivated", func(s state.SessionInfo, found bool) bool { return found && !s.Live })

	if out, isErr := call(t, ctx, as, "get_my_todo_list", nil); isErr || !strings.Contains(out, "survives") {
		t.Fatalf("get_my_todo_list after the actor was unloaded: %s", out)
	}
	if got := d.awaitMetric(ctx, rehydrated, 1); got != 1 {
		t.Errorf("%v activations rehydrated a session, want 1 (the call after the actor was unloaded)", got)
	}
	if got := d.metric(ctx, exchanged); got != exchanges {
		t.Errorf("%v token exchanges after rehydration; want none (the exchanged token is in the snapshot)", got-exchanges)
	}
	// Bob's token on alice's rehydrated session: not found, nothing changed.
	if status, body := rawToolCall(t, ctx, d.MCP, bob, as.ID(), "get_my_todo_list", `{}`); status != http.StatusNotFound {
		t.Errorf("bob on alice's session after rehydration: %d %s", status, body)
	}
	for _, tok := range []string{alice, bob} {
		if d.logged(tok) {
			t.Error("a bearer token appears in the logs")
		}
	}
}

// load is sessions calling a tool over and over, each call awaited.
type load struct {
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	calls int
	fails []error
}

// startLoad makes every client call test_tool_with_logging over and over
// until stop.
func startLoad(t *testing.T, ctx context.Context, clients []*durableClient) *load {
	l := &load{done: make(chan struct{})}
	for _, dc := range clients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.done:
					return
				default:
				}
				_, err := dc.callLogging(t, ctx)
				l.mu.Lock()
				l.calls++
				if err != nil {
					l.fails = append(l.fails, err)
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// stop ends the load and fails the test for every call that failed across
// what happened meanwhile (across).
func (l *load) stop(t *testing.T, across string) {
	t.Helper()
	close(l.done)
	l.wg.Wait()
	t.Logf("%d calls under load across %s, %d failed", l.calls, across, len(l.fails))
	for _, err := range l.fails {
		t.Errorf("call failed across %s: %v", across, err)
	}
}

// A tool's result, which may hold a user's data, is nowhere in Redis in the
// clear: it travels in the session's SSE events, which a node seals with
// the --state-keys (README, "What works today"). The stored stream still
// resumes, its events opened.
func TestRedisHoldsNoToolResultInTheClear(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rdb := redistest.Start(t)
	n := startNode(t, "single", durableArgs(rdb.Options().Addr, newStateKey(t))...)
	dc := connectDurable(t, ctx, n.URL(), false, nil)
	const marker = "simple text response"
	events := rawCall(t, ctx, n.URL(), dc.cs.ID(), "test_simple_text")
	if len(events) == 0 || events[0].id == "" || !strings.Contains(events[len(events)-1].data, marker) {
		t.Fatalf("the call's events: %+v", events)
	}
	awaitStreamStored(t, ctx, rdb, dc.cs.ID(), events) // and none in the clear
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("Redis's keys: %v %v", keys, err)
	}
	for _, k := range keys {
		var values []string
		switch typ, _ := rdb.Type(ctx, k).Result(); typ {
		case "string":
			v, _ := rdb.Get(ctx, k).Result()
			values = []string{v}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				values = append(values, f, v)
			}
		case "zset":
			values = rdb.ZRange(ctx, k, 0, -1).Val()
		case "set":
			values = rdb.SMembers(ctx, k).Val()
		case "list":
			values = rdb.LRange(ctx, k, 0, -1).Val()
		}
		for _, v := range values {
			if strings.Contains(v, marker) {
				t.Errorf("Redis key %s holds the tool's result in the clear", k)
			}
		}
	}
	// Resumed from its priming event (its first, index 0), the stream
	// gives the result again.
	stream, _, _ := strings.Cut(events[0].id, "_")
	again := rawResume(t, ctx, n.URL(), dc.cs.ID(), stream+"_0")
	if len(again) == 0 || !strings.Contains(again[len(again)-1].data, marker) {
		t.Errorf("the stream resumed from its priming event: %+v", again)
	}
}

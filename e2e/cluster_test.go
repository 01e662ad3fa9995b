package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/state"
)

// threeNodes starts an edge-only node and two nodes hosting actors (the
// second also serves /mcp), all joined through the first, and waits until
// each sees all three.
func threeNodes(t *testing.T, ctx context.Context) (edge, m1, m2 *node) {
	edge = startNode(t, "edge", "--role", "edge", "--cluster-provider", "automanaged")
	m1 = startNode(t, "member1", "--role", "member", "--cluster-seeds", edge.Cluster)
	m2 = startNode(t, "both2", "--role", "both", "--cluster-seeds", edge.Cluster)
	for _, n := range []*node{edge, m1, m2} {
		n.awaitMembers(ctx, 3)
	}
	return edge, m1, m2
}

func connect(t *testing.T, ctx context.Context, url string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, opts)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	return cs
}

// TestSessionsCrossNodes creates sessions through the edge-only node and
// checks that actors on the other nodes serve them, that one opened through
// a node that hosts sessions lives there, that a session can be
// continued through another node's /mcp, that an SSE stream stays open
// across nodes, and that DELETE ends the session everywhere.
func TestSessionsCrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	edge, m1, m2 := threeNodes(t, ctx)

	const sessions = 16
	var clients []*mcp.ClientSession
	logs := map[*mcp.ClientSession]chan string{} // log notifications each session received
	for i := range sessions {
		received := make(chan string, 16)
		cs := connect(t, ctx, edge.URL(), &mcp.ClientOptions{
			LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
				received <- fmt.Sprint(req.Params.Data)
			},
		})
		logs[cs] = received
		clients = append(clients, cs)
		if cs.ID() == "" {
			t.Fatalf("session %d has no id", i)
		}
	}

	// Every session is served by an actor on a member, none by the edge,
	// and both members host some.
	hosted := map[*node]int{}
	for _, cs := range clients {
		owner := host(t, ctx, cs.ID(), edge, m1, m2)
		if owner == nil || owner == edge {
			t.Fatalf("session %s: served by %v, want a member", cs.ID(), owner)
		}
		hosted[owner]++
	}
	if hosted[m1] == 0 || hosted[m2] == 0 {
		t.Errorf("placement did not spread: member1 %d, both2 %d", hosted[m1], hosted[m2])
	}
	// A session opened through a node that hosts sessions lives there, so
	// that its requests through that node take no hop (by rendezvous
	// hashing alone, each would live on member1 half the time).
	for range 8 {
		id := rawInitialize(t, ctx, m2.URL())
		if owner := host(t, ctx, id, edge, m1, m2); owner != m2 {
			name := "no node"
			if owner != nil {
				name = owner.name
			}
			t.Errorf("session %s opened through both2 lives on %s, want both2", id, name)
		}
	}

	// A tool call whose notifications stream over SSE through the edge.
	for _, cs := range clients {
		if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatalf("setLevel: %v", err)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_tool_with_logging"})
		if err != nil || res.IsError {
			t.Fatalf("call test_tool_with_logging on %s: %v %+v", cs.ID(), err, res)
		}
	}
	// The client hands notifications to their handler asynchronously, so
	// they may trail the call's result.
	for _, cs := range clients {
		for i := range 3 {
			select {
			case <-logs[cs]:
			case <-ctx.Done():
				t.Fatalf("session %s received %d log notifications, want 3", cs.ID(), i)
			}
		}
	}

	// The standalone GET stream stays open across nodes: a change published
	// by the actor outside any request reaches the client on it.
	changed := make(chan struct{}, 1)
	cs := connect(t, ctx, edge.URL(), &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	awaitStandaloneStream(t, ctx, cs.ID(), m1, m2)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_trigger_tool_change"}); err != nil {
		t.Fatalf("trigger tool change: %v", err)
	}
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("tools/list_changed never arrived over the standalone SSE stream")
	}

	// The same session continues through another node's /mcp.
	other := connectRaw(t, m2.URL(), cs.ID())
	if code := other.post(ctx, `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`); code != http.StatusOK {
		t.Fatalf("tools/list of %s through both2: status %d", cs.ID(), code)
	}

	// DELETE through the edge ends it everywhere.
	id := cs.ID()
	if err := cs.Close(); err != nil {
		t.Fatalf("close session: %v", err)
	}
	for _, n := range []*node{edge, m2} {
		if code := connectRaw(t, n.URL(), id).post(ctx, `{"jsonrpc":"2.0","id":8,"method":"tools/list"}`); code != http.StatusNotFound {
			t.Errorf("after DELETE, %s answered %d for session %s, want 404", n.name, code, id)
		}
	}
	// A raw DELETE answers 204, once, across nodes.
	raw := connectRaw(t, edge.URL(), rawInitialize(t, ctx, edge.URL()))
	if code := raw.send(ctx, http.MethodDelete, ""); code != http.StatusNoContent {
		t.Errorf("DELETE through the edge: %d, want 204", code)
	}
	if code := connectRaw(t, m2.URL(), raw.id).send(ctx, http.MethodDelete, ""); code != http.StatusNotFound {
		t.Errorf("second DELETE through both2: %d, want 404", code)
	}
	for _, c := range clients {
		c.Close()
	}
}

// awaitStandaloneStream waits until the actor owning session has the
// client's GET stream open: until then a notification sent outside a request
// could not reach the client. The admin API counts a GET stream from its
// arrival at the actor, a moment before the SDK has it; the actor's "stream
// open" line comes once the SDK wrote the stream's first bytes.
func awaitStandaloneStream(t *testing.T, ctx context.Context, session string, members ...*node) {
	t.Helper()
	want := []string{`"msg":"stream open"`, `"method":"GET"`, fmt.Sprintf(`"session":"%s"`, session)}
	lines := make(chan string, 64)
	for _, m := range members {
		go func(ch <-chan string) {
			for l := range ch {
				lines <- l
			}
		}(m.watch(session))
		if m.logged(want...) {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("no standalone stream for %s", session)
		case l := <-lines:
			if containsAll(l, want...) {
				return
			}
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// rawSession speaks plain HTTP to /mcp with a given session id.
type rawSession struct {
	t   *testing.T
	url string
	id  string
}

func connectRaw(t *testing.T, url, id string) *rawSession { return &rawSession{t, url, id} }

func (s *rawSession) post(ctx context.Context, body string) int {
	return s.send(ctx, http.MethodPost, body)
}

func (s *rawSession) send(ctx context.Context, method, body string) int {
	req, _ := http.NewRequestWithContext(ctx, method, s.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Mcp-Session-Id", s.id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", s.url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestIdleSessionsPassivate: a session with no request for the idle timeout
// passivates (and is then unknown: 404), unless it has a stream open.
func TestIdleSessionsPassivate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startNode(t, "single", "--session-idle-timeout", "3s")

	streaming := connect(t, ctx, n.URL(), nil) // the SDK client keeps a GET stream open
	n.awaitSession(ctx, streaming.ID(), "had its GET stream open", func(s state.SessionInfo, _ bool) bool { return s.Streams > 0 })

	idle := connectRaw(t, n.URL(), rawInitialize(t, ctx, n.URL()))
	// One of the two live actors passivates (the streaming one, a ping
	// below shows, does not).
	var live float64
	if !poll(ctx, func() bool { live = n.metric(ctx, liveSessions); return live == 1 }) {
		t.Fatalf("%v sessions live, want 1 (the streaming one)", live)
	}

	// The session's idle timeout is the actor's here: the session is over.
	// A request that meets the actor on its way out is answered 503, which
	// clients retry; the answer is then 404.
	code := idle.post(ctx, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	for range 20 {
		if code != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(100 * time.Millisecond) // a client's retry pacing (Retry-After)
		code = idle.post(ctx, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	}
	if code != http.StatusNotFound {
		t.Errorf("passivated session answered %d, want 404", code)
	}
	// The streaming session was idle longer than the timeout too, yet lives.
	if err := streaming.Ping(ctx, nil); err != nil {
		t.Fatalf("session with an open stream: %v", err)
	}
}

// rawInitialize opens a session with plain HTTP (no standalone stream).
func rawInitialize(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// The answer comes on an SSE stream whose headers go first: a client
	// that hangs up before the result cancels the initialize, and the
	// session with it (the SDK closes a session whose initialize it did not
	// finish).
	result, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("Mcp-Session-Id")
	if err != nil || !strings.Contains(string(result), `"result"`) {
		t.Fatalf("initialize: %d %q: %v", resp.StatusCode, result, err)
	}
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, id)
	}
	s := connectRaw(t, url, id)
	if code := s.post(ctx, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); code != http.StatusAccepted {
		t.Fatalf("initialized: %d", code)
	}
	return id
}

func awaitLine(t *testing.T, ctx context.Context, lines <-chan string, substr string) {
	t.Helper()
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, substr) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no log line mentioning %s", substr)
		}
	}
}

// TestEdgeLossCancelsRequests kills an edge node while a client's SSE
// stream runs through it: the member's actor cancels that request (it
// watches the edge) instead of keeping it, and the session, open forever.
func TestEdgeLossCancelsRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	edge := startNode(t, "edge", "--role", "edge", "--cluster-provider", "automanaged")
	member := startNode(t, "member", "--role", "member", "--cluster-seeds", edge.Cluster)
	edge.awaitMembers(ctx, 2)
	member.awaitMembers(ctx, 2)

	cs := connect(t, ctx, edge.URL(), nil) // opens the standalone GET stream
	member.awaitSession(ctx, cs.ID(), "had its GET stream open", func(s state.SessionInfo, _ bool) bool { return s.Streams == 1 })
	edge.kill()
	member.awaitSession(ctx, cs.ID(), "let go of the dead edge's GET stream", func(s state.SessionInfo, found bool) bool {
		return found && s.Live && s.Streams == 0
	})
}

// TestSeedByAnotherName: a node given its seed by another of the seed's
// names (localhost, where the seed advertises 127.0.0.1) joins it, and each
// counts the other once. protoactor sends on a message that comes in for an
// address not its node's own; for another name of that node, to itself,
// for good: the seed's CPU filled with its prober's messages going round,
// and the prober never joined. Now what comes in for another address is
// delivered (a membership probe) or dropped, never sent on.
func TestSeedByAnotherName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := startNode(t, "seed", "--cluster-provider", "automanaged")
	_, port, err := net.SplitHostPort(a.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, "prober", "--cluster-seeds", "localhost:"+port)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)
	// Each lists two nodes, the other one under the address it advertises.
	for _, n := range []*node{a, b} {
		status, body, _ := adminCall(t, ctx, http.MethodGet, "http://"+n.Admin+"/admin/v1/nodes", n.adminToken)
		var nodes struct {
			Nodes []struct{ ID, Address string }
		}
		if err := json.Unmarshal([]byte(body), &nodes); status != 200 || err != nil {
			t.Fatalf("%s: nodes: %d %s", n.name, status, body)
		}
		var addrs []string
		for _, m := range nodes.Nodes {
			addrs = append(addrs, m.Address)
		}
		slices.Sort(addrs)
		want := []string{a.Cluster, b.Cluster}
		slices.Sort(want)
		if !slices.Equal(addrs, want) {
			t.Errorf("%s lists %q, want %q", n.name, addrs, want)
		}
	}
	// The probes to localhost reached the seed's membership actor: nothing
	// was dropped, nothing came back to its sender.
	for _, n := range []*node{a, b} {
		if n.logged(cluster.DroppedMessages) || n.logged(cluster.RefusedSelfStream) {
			t.Errorf("%s dropped misaddressed messages or refused itself", n.name)
		}
	}
}

// TestSeedIsItself: one seed list given to every node names each node
// itself too, here by another of its names (localhost). Its probes to that
// seed come back as a connection from itself, which it refuses, and it stops
// probing the seed: it is alone, ready, and says why once.
func TestSeedIsItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	alias := "localhost:" + port
	a := startNode(t, "self-seeded", "--cluster-addr", addr, "--cluster-seeds", alias)
	forgotten := a.watch("no longer probed")
	a.awaitMembers(ctx, 1)
	if !a.logged("no longer probed", alias) { // else logged before the watch began
		select {
		case l := <-forgotten:
			if !strings.Contains(l, alias) {
				t.Errorf("forgot %s, want %s", l, alias)
			}
		case <-ctx.Done():
			t.Fatalf("%s still probes %s, itself", a.name, alias)
		}
	}
	if a.logged(cluster.DroppedMessages) {
		t.Errorf("%s dropped messages", a.name)
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestScaleOutMovesNoSession: a node joins, and rendezvous hashing gives
// it about a third of the sessions' identities. Their sessions live on
// where they are: each host registers its activations with their new
// owner, whose directory then lists them, rather than stopping them; a
// request reaching the new node before that finds them through their
// previous owner. The cluster keeps no state in Redis here, so a session
// stopped would be lost (with Redis it would be rehydrated on the new
// node, for nothing). Each session answers through the new node as it
// joins, then through its own node and the new one, lives where it was
// opened, and nothing was activated anew.
func TestScaleOutMovesNoSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startNode(t, "scale-a", "--cluster-provider", "automanaged")
	b := startNode(t, "scale-b", "--cluster-seeds", a.Cluster)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)

	type opened struct {
		cs *mcp.ClientSession
		on *node
	}
	var sessions []opened
	for i := range 24 {
		on := []*node{a, b}[i%2]
		sessions = append(sessions, opened{connect(t, ctx, on.URL(), nil), on})
	}

	c := startNode(t, "scale-c", "--cluster-seeds", a.Cluster)
	// Calls through scale-c as soon as it sees the others: some may come
	// before their session's host registered it there (scale-c then asks
	// the identity's previous owner).
	c.awaitMembers(ctx, 3)
	const call = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_simple_text"}}`
	for i, s := range sessions {
		if status, body := rawPost(t, ctx, c.URL(), s.cs.ID(), call); status != http.StatusOK || !containsAll(body, `"result"`) {
			t.Errorf("session %d through scale-c as it joined: %d %s", i, status, body)
		}
	}
	for _, n := range []*node{a, b} {
		n.awaitMembers(ctx, 3)
	}
	var ids []string
	for _, s := range sessions {
		ids = append(ids, s.cs.ID())
	}
	taken := awaitRegistered(t, ctx, c, ids, a, b, c)
	t.Logf("scale-c owns %d of the %d sessions' identities; it found %d with their previous owner", taken, len(sessions),
		c.count(`"msg":"activation found with the identity's previous owner"`))

	for i, s := range sessions {
		if _, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"}); err != nil {
			t.Errorf("session %d through %s after scale-c joined: %v", i, s.on.name, err)
		}
		if status, body := rawPost(t, ctx, c.URL(), s.cs.ID(), call); status != http.StatusOK || !containsAll(body, `"result"`) {
			t.Errorf("session %d through scale-c: %d %s", i, status, body)
		}
		if h := host(t, ctx, s.cs.ID(), a, b, c); h != s.on {
			t.Errorf("session %d, opened on %s, lives on %s", i, s.on.name, nameOf(h))
		}
	}
	for _, n := range []*node{a, b, c} {
		if got := n.metric(ctx, rehydrated); got != 0 {
			t.Errorf("%s activated %v sessions anew", n.name, got)
		}
	}
	if got := c.metric(ctx, liveSessions); got != 0 {
		t.Errorf("scale-c hosts %v sessions, want none", got)
	}
}

// awaitRegistered waits until joined, a node that just joined nodes,
// lists the activations of the sessions among ids whose identities it now
// owns, registered by the nodes that host them, and returns how many they
// are: it fails t if none, or if they are not all listed before ctx ends.
// Requests reaching joined before then would make new activations.
func awaitRegistered(t *testing.T, ctx context.Context, joined *node, ids []string, nodes ...*node) int {
	t.Helper()
	owners := ownership(t, nodes...)
	taken := 0
	for _, id := range ids {
		if owners(id) == joined {
			taken++
		}
	}
	if taken == 0 {
		t.Fatalf("%s owns none of the %d sessions' identities: nothing to test", joined.name, len(ids))
	}
	registered := func() int {
		return joined.count(`"msg":"activation registered by its host"`, `"identity":"session/`)
	}
	if !poll(ctx, func() bool { return registered() >= taken }) || registered() != taken {
		t.Fatalf("%s lists %d sessions' activations registered by their hosts, want the %d whose identities it owns", joined.name, registered(), taken)
	}
	return taken
}

// ownership says which of nodes owns a session's identity, as every
// member's placement computes it when they are the cluster's members:
// protoactor's rendezvous hashing over the members' addresses.
func ownership(t *testing.T, nodes ...*node) func(id string) *node {
	t.Helper()
	owners := cluster.NewRendezvous()
	var members []*cluster.Member
	byAddr := map[string]*node{}
	for _, n := range nodes {
		host, port, err := net.SplitHostPort(n.Cluster)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		members = append(members, &cluster.Member{Host: host, Port: int32(p), Id: n.name, Kinds: []string{"session"}})
		byAddr[n.Cluster] = n
	}
	owners.UpdateMembers(members)
	return func(id string) *node {
		return byAddr[owners.GetByClusterIdentity(&cluster.ClusterIdentity{Kind: "session", Identity: id})]
	}
}

// TestScaleInMovesNoSession: a node leaves, and with it its directory:
// the place of the sessions whose identities it owned, which live on other
// nodes. They stay there. A request for one that reaches the member its
// identity passed to before the session's host registered it there (here
// the host has not even seen the node leave) finds it by asking the other
// members, rather than making it anew: without Redis, an activation made
// anew would answer "session not found".
func TestScaleInMovesNoSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// in-a counts a node gone after 100 missed probes (50 s): it does not
	// see in-c leave, and registers nothing anew meanwhile.
	a := startNode(t, "in-a", "--cluster-provider", "automanaged", "--cluster-probe-failures", "100")
	a.awaitMembers(ctx, 1)
	// Sessions opened on in-a alone: each node joining takes some of
	// their identities, which in-a registers with it.
	var sessions []*mcp.ClientSession
	for range 48 {
		sessions = append(sessions, connect(t, ctx, a.URL(), nil))
	}
	b := startNode(t, "in-b", "--cluster-seeds", a.Cluster, "--cluster-probe-interval", "200ms", "--cluster-probe-failures", "2")
	b.awaitMembers(ctx, 2)
	c := startNode(t, "in-c", "--cluster-seeds", a.Cluster)
	for _, n := range []*node{a, b, c} {
		n.awaitMembers(ctx, 3)
	}
	// One whose identity in-c took from in-b, and in-b takes back.
	three, two := ownership(t, a, b, c), ownership(t, a, b)
	var cs *mcp.ClientSession
	for _, s := range sessions {
		if three(s.ID()) == c && two(s.ID()) == b {
			cs = s
			break
		}
	}
	if cs == nil {
		t.Fatalf("none of %d sessions has an identity in-c owns, and in-b without in-c", len(sessions))
	}
	identity := `"identity":"session/` + cs.ID() + `"`
	// in-c lists it, and in-b, which keeps its entry for a while for a
	// request that comes before in-c lists it, dropped that entry.
	if !poll(ctx, func() bool {
		return c.logged(`"msg":"activation registered by its host"`, identity) &&
			b.logged(`"msg":"entry kept for the identity's new owner dropped"`, identity)
	}) {
		t.Fatalf("in-c listed the session: %v; in-b dropped its entry: %v", c.logged(`"msg":"activation registered by its host"`, identity),
			b.logged(`"msg":"entry kept for the identity's new owner dropped"`, identity))
	}

	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		t.Fatal("in-c did not exit after SIGTERM")
	}
	b.awaitMembers(ctx, 2)
	const call = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_simple_text"}}`
	if status, body := rawPost(t, ctx, b.URL(), cs.ID(), call); status != http.StatusOK || !containsAll(body, `"result"`) {
		t.Fatalf("the session through in-b, in-c gone: %d %s", status, body)
	}
	if !b.logged(`"msg":"activation found with a member, its identity's owner gone"`, identity) {
		t.Error("in-b did not find the session by asking the other members")
	}
	if status, body := readyz(t, a); status != http.StatusOK || body["members"] != float64(3) {
		t.Errorf("in-a's /readyz after the request: %d %v; want 3 members (in-c not yet gone, so nothing registered anew)", status, body)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"}); err != nil {
		t.Errorf("the session through in-a, in-c gone: %v", err)
	}
	if h := host(t, ctx, cs.ID(), a, b); h != a {
		t.Errorf("the session opened on in-a lives on %s", nameOf(h))
	}
	for _, n := range []*node{a, b} {
		if got := n.metric(ctx, rehydrated); got != 0 {
			t.Errorf("%s activated %v sessions anew", n.name, got)
		}
	}
	if got := b.metric(ctx, liveSessions); got != 0 {
		t.Errorf("in-b hosts %v sessions, want none", got)
	}
}

// TestJoiningNodeWaitsForItsMembers: a node whose seed does not answer at
// once (it is stopped) is not ready, and a request for a session of the
// cluster that reaches it meanwhile waits until it knows the members, then
// reaches the session where it lives, rather than making it anew on the
// joining node, alone in its view (where, without Redis, it would not be
// found).
func TestJoiningNodeWaitsForItsMembers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startNode(t, "join-a", "--cluster-provider", "automanaged")
	a.awaitMembers(ctx, 1)
	cs := connect(t, ctx, a.URL(), nil)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGCONT) })
	// Its first probe of join-a waits for an answer up to the interval.
	b := startNode(t, "join-b", "--cluster-seeds", a.Cluster, "--cluster-probe-interval", "20s")
	if status, body := readyz(t, b); status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(body["reason"]), "joining") {
		t.Fatalf("join-b's /readyz while its seed is stopped: %d %v; want 503, joining", status, body)
	}
	waiting := b.watch(`"msg":"request waits for the cluster's members"`)
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := postOnSession(ctx, b.URL(), cs.ID(), `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_simple_text"}}`)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(body), err}
	}()
	select {
	case <-waiting:
	case r := <-answered:
		t.Fatalf("the request through join-b was answered while join-b was joining: %d %s %v", r.status, r.body, r.err)
	case <-ctx.Done():
		t.Fatal("the request through join-b did not wait for the cluster's members")
	}
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	r := <-answered
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"result"`) {
		t.Fatalf("the request through join-b, once it joined: %d %s %v; want the session's result", r.status, r.body, r.err)
	}
	if h := host(t, ctx, cs.ID(), a, b); h != a {
		t.Errorf("the session lives on %s, want join-a, where it was opened", nameOf(h))
	}
	if got := b.metric(ctx, liveSessions); got != 0 {
		t.Errorf("join-b hosts %v sessions, want none", got)
	}
}

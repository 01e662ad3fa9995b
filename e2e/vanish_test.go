package e2e

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/auth/authtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
)

// netns is a network namespace of the test's own, joined to this one by a
// veth pair: Host is this end's address, Inside the other's, both in
// 198.18.0.0/15 (RFC 2544's range for benchmarks: on no network). A node
// run inside is another host as far as TCP goes, and Cut makes that host
// vanish: its end of the link goes down, so that what is sent to it is
// dropped and nothing comes back, no FIN, no RST, while its processes run
// on, cut off (a pulled cable, a partition, a VM its hypervisor froze).
// It needs root (CAP_NET_ADMIN) and iproute2's ip, which CI has
// (scripts/test.sh installs iproute2).
type netns struct {
	name, hostIf, insideIf string
	Host, Inside           string
}

// netnsPrefix starts the name of every namespace these tests make.
const netnsPrefix = "pingmcp-e2e-"

func newNetns(t *testing.T) *netns {
	t.Helper()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s (a network namespace needs root, as CI runs, and iproute2)", strings.Join(args, " "), err, out)
		}
	}
	removeStaleNetns()
	// A block of its own: a random /30 of 198.18.0.0/15, whose number
	// names the namespace and the pair (an interface's name has 15 bytes
	// at most); taken if its namespace exists, or its address is on an
	// interface already (another run's).
	var ns *netns
	for attempt := 0; ns == nil; attempt++ {
		if attempt == 20 {
			t.Fatal("no free block of 198.18.0.0/15 for a network namespace in 20 tries")
		}
		block := mrand.IntN(1 << 15)
		prefix := fmt.Sprintf("198.%d.%d.", 18+block>>14, block>>6&255)
		try := &netns{
			name:   fmt.Sprintf("%s%d", netnsPrefix, block),
			hostIf: fmt.Sprintf("pmh%d", block), insideIf: fmt.Sprintf("pmn%d", block),
			Host: prefix + strconv.Itoa(block&63*4+1), Inside: prefix + strconv.Itoa(block&63*4+2),
		}
		if out, _ := exec.Command("ip", "-br", "addr").Output(); strings.Contains(string(out), try.Host+"/") {
			continue
		}
		if exec.Command("ip", "netns", "add", try.name).Run() == nil {
			ns = try
		}
	}
	t.Cleanup(func() {
		// The pair goes with either end; the namespace's may outlive it.
		exec.Command("ip", "link", "del", ns.hostIf).Run()
		exec.Command("ip", "netns", "del", ns.name).Run()
	})
	ip("link", "add", ns.hostIf, "type", "veth", "peer", "name", ns.insideIf)
	ip("link", "set", ns.insideIf, "netns", ns.name)
	ip("addr", "add", ns.Host+"/30", "dev", ns.hostIf)
	ip("link", "set", ns.hostIf, "up")
	ip("netns", "exec", ns.name, "ip", "addr", "add", ns.Inside+"/30", "dev", ns.insideIf)
	ip("netns", "exec", ns.name, "ip", "link", "set", ns.insideIf, "up")
	ip("netns", "exec", ns.name, "ip", "link", "set", "lo", "up")
	return ns
}

// removeStaleNetns removes what runs of these tests killed before their
// cleanup left: their namespaces with no process in them any more, made
// over 10 minutes ago (a run under way starts its nodes at once), and
// their veth pairs.
func removeStaleNetns() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		name := e.Name()
		info, err := e.Info()
		if !strings.HasPrefix(name, netnsPrefix) || err != nil || time.Since(info.ModTime()) < 10*time.Minute {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err != nil || len(strings.TrimSpace(string(pids))) > 0 {
			continue
		}
		exec.Command("ip", "link", "del", "pmh"+strings.TrimPrefix(name, netnsPrefix)).Run()
		exec.Command("ip", "netns", "del", name).Run()
	}
}

// startNode is startNode run inside the namespace (its /mcp and admin API
// on the namespace's own loopback, out of the test's reach).
func (ns *netns) startNode(t *testing.T, name string, args ...string) *node {
	t.Helper()
	all := nodeArgs(args...)
	n := &node{t: t, name: name, cmd: exec.Command("ip", append([]string{"netns", "exec", ns.name, binary}, all...)...)}
	n.launch(`"msg":"node started"`, all, 30*time.Second)
	return n
}

// Cut makes the namespace's host vanish (see netns).
func (ns *netns) Cut(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", ns.name, "ip", "link", "set", ns.insideIf, "down").CombinedOutput(); err != nil {
		t.Fatalf("cut the link: %v: %s", err, out)
	}
}

// Heal brings the namespace's host back (its end of the link up again).
func (ns *netns) Heal(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", ns.name, "ip", "link", "set", ns.insideIf, "up").CombinedOutput(); err != nil {
		t.Fatalf("bring the link back: %v: %s", err, out)
	}
}

// vanishing is a cluster of an edge and two members, one of them on a host
// of its own (a netns) that can vanish, all keeping sessions in Redis and
// authenticating with issuer's tokens for resource (off loopback, a node
// must: --auth none serves loopback only).
type vanishing struct {
	ns                    *netns
	is                    *authtest.Issuer
	edge, stays, vanishes *node
}

const vanishResource = "https://pingmcp.example.test/mcp"

// startVanishing starts it; edgeArgs go to the edge and the member that
// stays.
func startVanishing(t *testing.T, ctx context.Context, edgeArgs ...string) *vanishing {
	v := &vanishing{ns: newNetns(t), is: authtest.NewIssuer(t)}
	rdb := redistest.StartAt(t, v.ns.Host) // reached from both sides
	common := append([]string{"--auth", "jwt", "--issuer", v.is.URL, "--resource", vanishResource},
		durableArgs(rdb.Options().Addr, newStateKey(t))...)
	here := append(append([]string{"--cluster-addr", v.ns.Host + ":0"}, common...), edgeArgs...)
	v.edge = startNode(t, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, here...)...)
	v.stays = startNode(t, "member", append([]string{"--role", "member", "--cluster-seeds", v.edge.Cluster}, here...)...)
	v.vanishes = v.ns.startNode(t, "vanishing", append([]string{"--role", "member", "--cluster-seeds", v.edge.Cluster,
		"--cluster-addr", v.ns.Inside + ":0"}, common...)...)
	v.edge.awaitMembers(ctx, 3)
	v.stays.awaitMembers(ctx, 3)
	return v
}

// token is a token of user's for the cluster.
func (v *vanishing) token(t *testing.T, user string) string {
	return v.is.Token(t, v.is.Claims(user, vanishResource, "todo_api:read"))
}

// onVanishing says which of ids the vanishing member hosts.
func (v *vanishing) onVanishing(ctx context.Context, ids ...string) []bool {
	on := map[string]string{}
	for _, s := range v.edge.sessions(ctx) {
		on[s.ID] = s.Node
	}
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = on[id] == v.vanishes.Cluster
	}
	return out
}

// TestVanishedMember: the host of a member vanishes while calls on its
// sessions are in flight and streams are open: nothing it had open is
// closed, nothing it is sent is refused; it is just never heard from
// again. Unlike a killed process (TestKillMember), whose kernel closes its
// connections at once, this leaves the others' connections to it open,
// for about 15 minutes of retransmissions by the kernel's defaults.
// Membership drops the member (the automanaged provider's probes), the
// edge's data plane link to it ends, and every session goes on on the
// other member, from Redis: each call in flight is answered, interrupted
// and retryable, or fails retryably, and the session's next call
// succeeds, with its id and log level.
func TestVanishedMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	v := startVanishing(t, ctx)
	edge, stays := v.edge, v.stays
	// Calls in flight wait in their clients' elicitation handlers until
	// released.
	release, entered := make(chan struct{}), sync.WaitGroup{}
	elicit := func(ctx context.Context) (*mcp.ElicitResult, error) {
		entered.Done()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &mcp.ElicitResult{Action: "decline"}, nil
	}
	const sessions = 12
	var clients []*durableClient
	for i := range sessions {
		dc := connectDurableAs(t, ctx, edge.URL(), v.token(t, fmt.Sprintf("user%d", i)), i%2 == 0, elicit) // half keep a standalone stream open
		if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		clients = append(clients, dc)
	}
	var ids []string
	for _, dc := range clients {
		ids = append(ids, dc.cs.ID())
	}
	var victims []*durableClient
	for i, on := range v.onVanishing(ctx, ids...) {
		if on {
			victims = append(victims, clients[i])
		}
	}
	if len(victims) == 0 || len(victims) == sessions {
		t.Fatalf("the vanishing member hosts %d of %d sessions; the test needs some on each member", len(victims), sessions)
	}

	inflight := victims[:min(3, len(victims))]
	outcomes := make(chan error, len(inflight))
	entered.Add(len(inflight))
	for _, dc := range inflight {
		go func() {
			res, err := dc.cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_elicitation", Arguments: map[string]any{"message": "wait"}})
			if err == nil && res.IsError {
				err = fmt.Errorf("tool error: %+v", res.Content)
			}
			outcomes <- err
		}()
	}
	entered.Wait()

	cut := time.Now()
	v.ns.Cut(t)
	close(release) // the clients' answers go to a member that is gone

	edge.awaitMembers(ctx, 2)
	t.Logf("the edge saw the member leave %v after the cut", time.Since(cut).Round(time.Millisecond))
	for _, dc := range victims {
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %s after the cut: %v", dc.cs.ID(), err)
		}
	}
	t.Logf("every session of the vanished member went on %v after the cut", time.Since(cut).Round(time.Millisecond))
	for range inflight {
		select {
		case err := <-outcomes:
			if err != nil && !retryable(err) {
				t.Errorf("a call in flight failed with a non-retryable error: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("a call in flight on the vanished member was never answered")
		}
	}
	t.Logf("every call in flight answered %v after the cut", time.Since(cut).Round(time.Millisecond))
	// The edge's link to the member ended, by its liveness or with the
	// membership, rather than waiting out the kernel's retransmissions.
	edge.awaitLogged(t, ctx, `"msg":"data plane: link to a node closed"`, v.vanishes.Cluster)
	t.Logf("the edge's link to the vanished member closed %v after the cut", time.Since(cut).Round(time.Millisecond))
	for _, dc := range clients {
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Errorf("session %s: %v", dc.cs.ID(), err)
		}
	}
	if moved := stays.metric(ctx, rehydrated); moved < float64(len(victims)) {
		t.Errorf("%v sessions rehydrated on the member that stayed, want the vanished member's %d", moved, len(victims))
	}
}

// TestVanishedMemberStillListed: the same, but membership goes on listing
// the vanished member, as the Kubernetes provider does until the API
// server marks its pod (here the automanaged provider's probes may fail
// for hours). Then only the data plane's own liveness ends the edge's link
// to it (cluster/liveness.go: keep-alive probes after 5 s idle, three
// 5 s apart; TCP_USER_TIMEOUT 20 s for bytes in flight), and with it the
// streams on it: a call in flight ends, retryably, within about 20 s of the
// cut, where the kernel alone would keep it for 15 minutes. The edge then
// tries to reach the member (cluster/suspects.go), cannot, and places its
// sessions on the member that stays, which finds the same: the session's
// next request is served there, from Redis, while membership still lists
// the vanished member. When the host comes back, both count it a member
// again, and the session goes on.
func TestVanishedMemberStillListed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	v := startVanishing(t, ctx, "--cluster-probe-failures", "100000")

	// A session on the vanishing member, with a call in flight on it: the
	// tool waits for its elicitation's answer.
	var sid, token string
	for i := 0; sid == ""; i++ {
		if i == 20 {
			t.Fatal("20 sessions, none on the vanishing member")
		}
		tok := v.token(t, fmt.Sprintf("user%d", i))
		id := initializeWithToken(t, ctx, v.edge.URL(), tok)
		if v.onVanishing(ctx, id)[0] {
			sid, token = id, tok
		}
	}
	call := openSSE(t, ctx, http.MethodPost, v.edge.URL(), sid, token,
		`{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`)
	call.awaitLine(t, "elicitation/create", 20*time.Second)
	// And a standalone stream.
	standalone := openSSE(t, ctx, http.MethodGet, v.edge.URL(), sid, token, "")

	cut := time.Now()
	v.ns.Cut(t)
	v.edge.awaitLogged(t, ctx, `"msg":"data plane: link to a node closed"`, v.vanishes.Cluster)
	t.Logf("the edge's link to the vanished member closed %v after the cut", time.Since(cut).Round(time.Millisecond))
	rest := call.End(t, time.Minute)
	t.Logf("the call's stream ended %v after the cut: %q", time.Since(cut).Round(time.Millisecond), rest)
	for _, l := range rest {
		if strings.Contains(l, `"result"`) {
			t.Errorf("a call on a vanished member was answered with a result: %q", l)
		}
		if strings.Contains(l, `"error"`) && !strings.Contains(l, `"retryable":true`) {
			t.Errorf("a call on a vanished member was answered with an error not marked retryable: %q", l)
		}
	}
	standalone.End(t, time.Minute)
	t.Logf("the standalone stream ended %v after the cut", time.Since(cut).Round(time.Millisecond))

	// The session's next requests, while membership still lists its node:
	// served by the member that stays.
	ping := func(id int) (int, string, time.Duration) {
		t.Helper()
		start := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, time.Minute)
		defer rcancel()
		resp, err := http.DefaultClient.Do(sessionPost(rctx, v.edge.URL(), sid, token, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, id)))
		if err != nil {
			t.Fatalf("the session's request %d: %v after %v", id, err, time.Since(start))
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body), time.Since(start)
	}
	served := func(status int, body string) bool {
		return status == http.StatusOK && strings.Contains(body, `"result"`)
	}
	status, body, took := ping(2)
	t.Logf("the session's next request: %d after %v (%v after the cut): %s", status, took.Round(time.Millisecond), time.Since(cut).Round(time.Millisecond), body)
	if !served(status, body) {
		t.Fatalf("the session's next request, its node vanished but listed: %d %s; want it served by the member that stays", status, body)
	}
	v.edge.awaitMembers(ctx, 3) // (the vanished one still listed)
	if on := v.onVanishing(ctx, sid)[0]; on {
		t.Errorf("the session is still listed on the vanished member")
	}
	v.edge.awaitLogged(t, ctx, `"msg":"a member listed by membership cannot be reached`, v.vanishes.Cluster)
	v.stays.awaitLogged(t, ctx, `"msg":"a member listed by membership cannot be reached`, v.vanishes.Cluster)
	if got := v.edge.metric(ctx, "pingmcp_unreachable_members"); got != 1 {
		t.Errorf("the edge's pingmcp_unreachable_members = %v, want 1", got)
	}

	// The host comes back: the edge and the member that stays reach it
	// again, and the session goes on, wherever it is placed now.
	healed := time.Now()
	v.ns.Heal(t)
	v.edge.awaitLogged(t, ctx, `"msg":"a member found unreachable is reached again`, v.vanishes.Cluster)
	v.stays.awaitLogged(t, ctx, `"msg":"a member found unreachable is reached again`, v.vanishes.Cluster)
	t.Logf("the edge and the member that stays reached it again %v after the host came back", time.Since(healed).Round(time.Millisecond))
	if got := v.edge.metric(ctx, "pingmcp_unreachable_members"); got != 0 {
		t.Errorf("the edge's pingmcp_unreachable_members = %v after the host came back, want 0", got)
	}
	for i := 3; i < 8; i++ {
		if status, body, took := ping(i); !served(status, body) {
			t.Errorf("the session's request %d after the host came back: %d after %v: %s", i, status, took.Round(time.Millisecond), body)
		}
	}
}

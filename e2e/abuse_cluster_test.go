package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/cluster"
)

// Issue 11 item 6: the cluster port is authenticated on loopback too. A
// local process without credentials (e2e/rogue, protoactor's own API, its
// own OS process) tries to join the cluster and forward a tools/call with a
// forged Principal to a user's session, and to send an ActivationRequest
// and the forged envelope straight to the cluster port. It gets nothing
// from pingmcp dev, from a single serve, or from a loopback cluster with
// certificates of `pingmcp certs` (TestMain's, see startNode); the same
// rogue, against a cluster that chose --cluster-insecure, gets the session's
// answer (the control: the rogue works). A multi-node cluster without TLS
// or --cluster-insecure does not start.

var (
	rogueOnce sync.Once
	rogueBin  string
	rogueErr  error
)

// rogueResult is what e2e/rogue prints.
type rogueResult struct {
	Joined, Activated      bool
	Status, Hosted, Tokens int
	Sent, Ended            int
	Body, Error            string
}

// runRogue builds e2e/rogue once and runs it against a cluster address.
func runRogue(t *testing.T, mode, target, session, body string, principal ...string) rogueResult {
	t.Helper()
	return <-startRogue(t, mode, target, session, body, principal...)
}

// startRogue runs e2e/rogue in the background; its result arrives on the
// channel when it exits.
func startRogue(t *testing.T, mode, target, session, body string, principal ...string) <-chan rogueResult {
	t.Helper()
	rogueOnce.Do(func() {
		rogueBin = filepath.Join(filepath.Dir(binary), "rogue")
		out, err := exec.Command("go", "build", "-o", rogueBin, "./rogue").CombinedOutput()
		if err != nil {
			rogueErr = fmt.Errorf("build e2e/rogue: %v\n%s", err, out)
		}
	})
	if rogueErr != nil {
		t.Fatal(rogueErr)
	}
	timeout := "8s"
	if mode == "member" {
		timeout = "15s" // while the test opens sessions
	}
	args := []string{"--mode", mode, "--target", target, "--session", session, "--body", body, "--timeout", timeout}
	if len(principal) == 3 {
		args = append(args, "--issuer", principal[0], "--subject", principal[1], "--client-id", principal[2])
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(rogueBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan rogueResult, 1)
	go func() {
		var r rogueResult
		if err := cmd.Wait(); err != nil {
			r.Error = fmt.Sprintf("rogue %s: %v\n%s", mode, err, stderr.String())
		} else if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			r.Error = fmt.Sprintf("rogue %s printed %q: %v", mode, stdout.String(), err)
		}
		t.Logf("rogue %s → %s: %+v", mode, target, r)
		done <- r
	}()
	return done
}

// refusedRogue checks that the rogue got nothing in either mode.
func refusedRogue(t *testing.T, target, session, body, secret string, principal ...string) {
	t.Helper()
	for _, mode := range []string{"join", "direct", "member"} {
		r := runRogue(t, mode, target, session, body, principal...)
		if r.Joined || r.Activated || r.Status != 0 || r.Hosted != 0 || strings.Contains(r.Body, secret) {
			t.Errorf("rogue %s against %s got in: %+v", mode, target, r)
		}
	}
}

const rogueCall = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"%s","arguments":{}}}`

func TestAbuseClusterPortDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := runDev(t)
	if d.Cluster == "" {
		t.Fatal("no cluster address in the start line")
	}
	alice := login(t, ctx, d.Issuer, d.MCP, "alice", "openid todo_api:read todo_api:write")
	as := connectAs(t, ctx, d.MCP, alice)
	const secret = "alice's secret todo"
	if _, isErr := call(t, ctx, as, "create_new_todo", map[string]any{"text": secret}); isErr {
		t.Fatal("create_new_todo failed")
	}
	// Alice's Principal, as a local process could learn it (the token's
	// claims are no secret to her own processes, nor its issuer to anyone).
	claims := jwtClaims(t, alice)
	refusedRogue(t, d.Cluster, as.ID(), fmt.Sprintf(rogueCall, "get_my_todo_list"), secret, claims.Iss, claims.Sub, claims.ClientID)
	d.awaitLogged(t, ctx, fmt.Sprintf(`"msg":%q`, cluster.RefusedNoPeers))
	// Alice's session is unharmed.
	if list, isErr := call(t, ctx, as, "get_my_todo_list", nil); isErr || !strings.Contains(list, secret) {
		t.Errorf("alice's list after the attack: %s", list)
	}
}

func TestAbuseClusterPortSingleServe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startNode(t, "single")
	id := rawInitialize(t, ctx, n.URL())
	refusedRogue(t, n.Cluster, id, fmt.Sprintf(rogueCall, "test_simple_text"), "test")
	n.awaitLogged(t, ctx, fmt.Sprintf(`"msg":%q`, cluster.RefusedNoPeers))
	if !n.logged(`"msg":"single node: its cluster port accepts no connection"`) {
		t.Error("the node did not say that its cluster port accepts no connection")
	}
}

func TestAbuseClusterPortTLSCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Certificates of TestMain's `pingmcp certs` (startNode).
	a := startNode(t, "certs-a", "--cluster-provider", "automanaged")
	b := startNode(t, "certs-b", "--cluster-seeds", a.Cluster)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)
	// A rogue member waits for sessions while new ones open: none is
	// placed on it.
	rogue := startRogue(t, "member", a.Cluster, "", "")
	for range 12 {
		rawInitialize(t, ctx, b.URL())
	}
	if r := <-rogue; r.Joined || r.Hosted != 0 {
		t.Errorf("rogue member: %+v; want no membership and no session", r)
	}
	id := rawInitialize(t, ctx, a.URL())
	for _, n := range []*node{a, b} {
		refusedRogue(t, n.Cluster, id, fmt.Sprintf(rogueCall, "test_simple_text"), "test")
		n.awaitRefusals(t, ctx, "first record does not look like a TLS handshake", 1)
		n.awaitMembers(ctx, 2)
	}
	if code := connectRaw(t, b.URL(), id).post(ctx, fmt.Sprintf(rogueCall, "test_simple_text")); code != 200 {
		t.Errorf("the session through b: %d", code)
	}
}

// The control: with --cluster-insecure the rogue joins, or talks to the
// placement actor directly, and is served the session's tool call.
func TestAbuseClusterPortInsecureControl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := startNode(t, "insecure-a", "--cluster-provider", "automanaged", "--cluster-insecure")
	// b is an edge: the sessions it opens are placed by hash alone (a node
	// hosting sessions places those it opens on itself).
	b := startNode(t, "insecure-b", "--role", "edge", "--cluster-seeds", a.Cluster, "--cluster-insecure")
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)
	// A rogue member is placed some of the new sessions (first: the
	// membership counted is then the rogue's, not that of one that left).
	rogue := startRogue(t, "member", a.Cluster, "", "")
	a.awaitMembers(ctx, 3)
	b.awaitMembers(ctx, 3)
	for range 30 { // none of 30 on the rogue: (1/2)^30, one in a billion
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.URL(), strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	if r := <-rogue; !r.Joined || r.Hosted == 0 {
		t.Errorf("rogue member of a plaintext cluster: %+v; want sessions placed on it", r)
	}
	a.awaitMembers(ctx, 2) // the rogue left
	b.awaitMembers(ctx, 2)
	id := rawInitialize(t, ctx, a.URL())
	owner := host(t, ctx, id, a, b)
	if owner == nil {
		t.Fatalf("session %s is live on neither node", id)
	}
	for _, mode := range []string{"join", "direct"} {
		r := runRogue(t, mode, owner.Cluster, id, fmt.Sprintf(rogueCall, "test_simple_text"))
		if r.Status != 200 || !strings.Contains(r.Body, "test") {
			t.Errorf("rogue %s against a plaintext cluster: %+v; want the tool's answer (the rogue must work for its refusals to mean anything)", mode, r)
		}
	}
	// Without TLS there is no data plane: b's requests went through
	// protoactor's remote.
	if b.logged("data plane") || b.metric(ctx, `pingmcp_forwarded_requests_total{route="data_plane"}`) != 0 ||
		b.metric(ctx, `pingmcp_forwarded_requests_total{route="remote"}`) == 0 {
		t.Errorf("%s used a data plane without TLS", b.name)
	}
	for _, ni := range b.nodes(ctx) {
		if ni.Address == a.Cluster && ni.Route != "remote" {
			t.Errorf("%s's admin API: route to %s %q, want remote", b.name, ni.Address, ni.Route)
		}
	}
}

// A multi-node cluster without TLS does not start, on loopback too, and
// says how to make certificates.
func TestAbuseClusterPortPlaintextRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--cluster-provider", "automanaged"},
		{"--cluster-seeds", "127.0.0.1:1"},
	} {
		// A node that starts after all is stopped, and fails the test.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--auth", "none", "--addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0"}, args...)...)
		out, err := cmd.CombinedOutput()
		cancel()
		if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 ||
			!strings.Contains(string(out), "without TLS") || !strings.Contains(string(out), "pingmcp certs --dir DIR --nodes N") {
			t.Errorf("serve %v: exit %d, %s; want exit 2 pointing at pingmcp certs", args, code, out)
		}
	}
}

// jwtClaims reads a JWT's payload without verifying it.
func jwtClaims(t *testing.T, token string) (c struct {
	Iss, Sub, Scope string
	ClientID        string `json:"client_id"`
}) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatal("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Sub == "" {
		t.Fatalf("JWT claims: %v", err)
	}
	return c
}

// A process that speaks protoactor's wire to a node of a cluster that chose
// --cluster-insecure (with TLS it cannot connect: TestAbuseClusterPort*)
// sends batches protoactor by itself would panic on (a type nobody
// registered, a target the batch does not hold: the node died) or send
// round for good (for another of the node's names): the node drops each and
// logs it. Then, each on a stream of its own, messages of known types that
// made protoactor panic as it delivered them (a Terminated and a Watch
// naming no actor, pub-sub batches without a batch or with an inner type
// they do not hold): each ends its stream, not the node. It serves on.
func TestAbuseClusterPoisonBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := startNode(t, "poisoned", "--cluster-provider", "automanaged", "--cluster-insecure")
	a.awaitMembers(ctx, 1)
	dropped, panicked := a.watch(cluster.DroppedMessages), a.watch(cluster.PanicEndedStream)
	if r := runRogue(t, "poison", a.Cluster, "", ""); r.Sent != 7 || r.Ended != 4 || r.Error != "" {
		t.Fatalf("rogue poison: %+v; want 7 batches sent, 4 streams ended by the node", r)
	}
	for _, want := range []string{"rogue.NoSuchType", "names a target, sender or type its batch does not hold", `"for":"localhost:`} {
		select {
		case l := <-dropped:
			if !strings.Contains(l, want) {
				t.Errorf("dropped: %s; want it to name %s", l, want)
			}
		case <-ctx.Done():
			t.Fatalf("the node never said it dropped the batch naming %s", want)
		}
	}
	for i := range 4 {
		select {
		case <-panicked:
		case <-ctx.Done():
			t.Fatalf("the node logged %d of 4 streams ended by a panic", i)
		}
	}
	id := rawInitialize(t, ctx, a.URL())
	if code := connectRaw(t, a.URL(), id).post(ctx, fmt.Sprintf(rogueCall, "test_simple_text")); code != 200 {
		t.Errorf("a tool call after the poison: %d", code)
	}
}

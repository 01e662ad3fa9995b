package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/internal/certtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
)

// refused is the start of a node's log line for a cluster connection its
// TLS refused.
var refused = fmt.Sprintf(`"msg":%q`, cluster.RefusedConnection)

// awaitRefusals waits until the node has logged at least want refused
// connections whose line mentions why.
func (n *node) awaitRefusals(t *testing.T, ctx context.Context, why string, want int) {
	t.Helper()
	lines := n.watch(refused)
	count := func() int {
		n.mu.Lock()
		defer n.mu.Unlock()
		c := 0
		for _, l := range n.lines {
			if strings.Contains(l, refused) && strings.Contains(l, why) {
				c++
			}
		}
		return c
	}
	for count() < want {
		select {
		case <-lines:
		case <-ctx.Done():
			t.Fatalf("%s logged %d refused connections for %q, want %d", n.name, count(), why, want)
		}
	}
}

// awaitLogged waits until the node has logged a line holding every one of
// substrs.
func (n *node) awaitLogged(t *testing.T, ctx context.Context, substrs ...string) {
	t.Helper()
	lines := n.watch(substrs[0])
	for !n.logged(substrs...) {
		select {
		case <-lines:
		case <-ctx.Done():
			t.Fatalf("%s never logged a line with %q", n.name, substrs)
		}
	}
}

// TestMTLSCluster: two nodes with certificates of the cluster's CA form a
// cluster and serve sessions across it. A rogue node with a certificate of
// another CA (trusting the cluster's CA too), and a plaintext one, both
// given a good node as seed, never become members, are refused at every
// attempt, and cannot reach a session of the cluster; a good node told of
// the rogue's address refuses to talk to it. A raw connection to
// the cluster port without a client certificate, or in plaintext, reads
// nothing of the remote's protocol.
func TestMTLSCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	ca, rogueCA := certtest.NewCA(t, "cluster CA"), certtest.NewCA(t, "rogue CA")
	// b is told of the rogue's address too (as if the rogue had taken a
	// node's place): b must send it nothing.
	rogueAddr := freeAddr(t)
	a := startNode(t, "tls-a", append([]string{"--cluster-provider", "automanaged"}, ca.Node(t, "node-a").Args()...)...)
	b := startNode(t, "tls-b", append([]string{"--cluster-seeds", a.Cluster + "," + rogueAddr}, ca.Node(t, "node-b").Args()...)...)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)
	// Each links to the other as it joins, before any request, and its
	// admin API says so.
	a.awaitLogged(t, ctx, `"msg":"data plane: linked to a node"`, b.Cluster)
	b.awaitLogged(t, ctx, `"msg":"data plane: linked to a node"`, a.Cluster)
	for _, ni := range a.nodes(ctx) {
		if want := map[bool]string{true: "local", false: "data_plane"}[ni.Address == a.Cluster]; ni.Route != want {
			t.Errorf("%s's admin API: route to %s %q, want %q", a.name, ni.Address, ni.Route, want)
		}
	}
	for _, n := range []*node{a, b} {
		if !n.logged(`"msg":"cluster connections use mutual TLS"`) {
			t.Errorf("%s did not log that its cluster connections use mutual TLS", n.name)
		}
	}

	// The rogues join through a (their seed). One has a certificate of its
	// own CA and trusts both CAs (the cluster's CA certificate is no
	// secret); the other speaks plaintext.
	bundle := filepath.Join(t.TempDir(), "both-cas.crt")
	writeConcat(t, bundle, ca.File, rogueCA.File)
	rogueFiles := rogueCA.Node(t, "rogue")
	rogueFiles.CA = bundle
	rogue := startNode(t, "rogue-ca", append([]string{"--cluster-seeds", a.Cluster, "--cluster-addr", rogueAddr}, rogueFiles.Args()...)...)
	plain := startNode(t, "rogue-plaintext", "--cluster-seeds", a.Cluster, "--cluster-insecure")

	// Sessions through both nodes, served on both.
	const sessions = 16
	var ids []string
	hosted := map[*node]int{}
	for i := range sessions {
		via := []*node{a, b}[i%2]
		cs := connect(t, ctx, via.URL(), nil)
		t.Cleanup(func() { cs.Close() })
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"})
		if err != nil || res.IsError {
			t.Fatalf("session %d through %s: %v %+v", i, via.name, err, res)
		}
		ids = append(ids, cs.ID())
	}
	for _, id := range ids {
		if n := host(t, ctx, id, a, b); n != nil {
			hosted[n]++
		}
	}
	if hosted[a] == 0 || hosted[b] == 0 || hosted[a]+hosted[b] != sessions {
		t.Errorf("sessions hosted: %s %d, %s %d; want all, on both", a.name, hosted[a], b.name, hosted[b])
	}
	// Each continues through the other node: the request crosses the
	// cluster (over mutual TLS) for half of them at least.
	for i, id := range ids {
		other := []*node{b, a}[i%2]
		if code := connectRaw(t, other.URL(), id).post(ctx, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); code != http.StatusOK {
			t.Errorf("session %s through %s: %d", id, other.name, code)
		}
	}

	// Those requests and their answers crossed on the data plane (one
	// connection per node pair, the same mutual TLS), not protoactor's
	// remote.
	for _, n := range []*node{a, b} {
		if !n.logged(`"msg":"data plane: linked to a node"`) || n.logged(`"msg":"data plane: no link to a node`) {
			t.Errorf("%s forwarded requests without the data plane", n.name)
		}
		crossed := n.metric(ctx, `pingmcp_forwarded_requests_total{route="data_plane"}`)
		remote := n.metric(ctx, `pingmcp_forwarded_requests_total{route="remote"}`)
		if crossed == 0 || remote != 0 {
			t.Errorf("%s forwarded %v requests on the data plane and %v through protoactor's remote; want some, and none", n.name, crossed, remote)
		}
	}

	// a refuses each rogue at every attempt (each retries every 2 s):
	// twice each is proof they tried after membership had settled.
	a.awaitRefusals(t, ctx, "certificate signed by unknown authority", 2)
	a.awaitRefusals(t, ctx, "first record does not look like a TLS handshake", 2)
	// b, dialling the rogue, refuses its certificate before sending a
	// byte of the remote's protocol; the rogue sees b's refusal.
	b.awaitLogged(t, ctx, `"msg":"EndpointWriter failed to connect"`, rogueAddr, "certificate not accepted")
	rogue.awaitRefusals(t, ctx, "remote error: tls: bad certificate", 1)
	for _, n := range []*node{a, b} {
		n.awaitMembers(ctx, 2)
		for _, r := range []*node{rogue, plain} {
			if n == b && r == rogue {
				continue // its seed
			}
			if n.logged(r.Cluster) {
				t.Errorf("%s mentions %s's cluster address %s: it heard of it", n.name, r.name, r.Cluster)
			}
		}
	}
	// The rogues see only themselves, and know why.
	for _, r := range []*node{rogue, plain} {
		r.awaitMembers(ctx, 1)
		if !r.logged(`EndpointWriter failed`, a.Cluster) {
			t.Errorf("%s never logged its failure to connect to %s", r.name, a.Cluster)
		}
	}
	// A session of the cluster is unknown to them: they have no way to its
	// actor, nor to its snapshot.
	for _, r := range []*node{rogue, plain} {
		if code := connectRaw(t, r.URL(), ids[0]).post(ctx, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); code != http.StatusNotFound {
			t.Errorf("session %s through %s: %d, want 404", ids[0], r.name, code)
		}
	}

	// Raw connections to a's cluster port.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	// TLS, trusting the CA, without a client certificate: in TLS 1.3 the
	// client learns of the refusal on its first read.
	conn, err := tls.Dial("tcp", a.Cluster, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	got, err := exchangeH2Preface(conn)
	if err == nil || len(got) > 0 || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("TLS without a client certificate read %q, %v; want nothing and a refusal", got, err)
	}
	a.awaitRefusals(t, ctx, "didn't provide a certificate", 1)
	// Plaintext HTTP/2, as protoactor's default dialer speaks: the port
	// answers nothing (a plaintext remote answers with its SETTINGS).
	raw, err := net.Dial("tcp", a.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := exchangeH2Preface(raw); err == nil || len(got) > 0 {
		t.Errorf("plaintext read %q, %v; want nothing", got, err)
	}
	// The control: with a certificate of the CA, the remote answers a
	// connect request as it does another node's.
	good := ca.Node(t, "probe")
	tl, err := cluster.LoadTLS(good.Cert, good.Key, good.CA)
	if err != nil {
		t.Fatal(err)
	}
	if err := connectRemote(ctx, a.Cluster, credentials.NewTLS(tl.ClientConfig())); err != nil {
		t.Errorf("a peer with a certificate of the CA: %v", err)
	}
	// Without, it does not (protoactor's own Receive stream).
	bad, err := cluster.LoadTLS(rogueFiles.Cert, rogueFiles.Key, rogueFiles.CA)
	if err != nil {
		t.Fatal(err)
	}
	if err := connectRemote(ctx, a.Cluster, credentials.NewTLS(bad.ClientConfig())); err == nil {
		t.Error("a peer with a certificate of another CA was answered")
	}
}

// exchangeH2Preface writes an HTTP/2 client preface and an empty SETTINGS
// frame, and returns what the server answers within a few seconds.
func exchangeH2Preface(c net.Conn) ([]byte, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)); err != nil {
		return nil, err
	}
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c, buf, 9) // one frame header
	return buf[:n], err
}

// connectRemote opens protoactor's Receive stream to a node's cluster
// endpoint as another node would, and waits for the ConnectResponse.
func connectRemote(ctx context.Context, addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := remote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		return err
	}
	err = stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "e2e-probe", Address: "127.0.0.1:1"}},
	}}})
	if err != nil {
		return err
	}
	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	if msg.GetConnectResponse() == nil {
		return fmt.Errorf("answer %T, want a ConnectResponse", msg.MessageType)
	}
	return nil
}

func writeConcat(t *testing.T, dst string, srcs ...string) {
	t.Helper()
	var all []byte
	for _, s := range srcs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(dst, all, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMTLSRotation: certificates are read at start, so they rotate by
// restarting the nodes one at a time with new ones (of the same CA). No
// session is lost: each continues, with its id and its log level, through
// the node it was opened on, after each restart.
func TestMTLSRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel) // after the clients' cleanups: they close their sessions with it
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	ca := certtest.NewCA(t, "cluster CA")
	type slot struct {
		name        string
		http, clust string
		n           *node
	}
	a := &slot{name: "rot-a", http: freeAddr(t), clust: freeAddr(t)}
	b := &slot{name: "rot-b", http: freeAddr(t), clust: freeAddr(t)}
	a.n = startNode(t, a.name, append(append([]string{"--addr", a.http, "--cluster-addr", a.clust, "--cluster-provider", "automanaged"},
		ca.Node(t, "rot-a-1").Args()...), durable...)...)
	b.n = startNode(t, b.name, append(append([]string{"--addr", b.http, "--cluster-addr", b.clust, "--cluster-seeds", a.clust},
		ca.Node(t, "rot-b-1").Args()...), durable...)...)
	a.n.awaitMembers(ctx, 2)
	b.n.awaitMembers(ctx, 2)

	const sessions = 8
	var clients []*durableClient
	ids := map[*durableClient]string{}
	for i := range sessions {
		dc := connectDurable(t, ctx, []*slot{a, b}[i%2].n.URL(), false, nil)
		if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		clients = append(clients, dc)
		ids[dc] = dc.cs.ID()
	}

	for round, s := range []*slot{b, a} {
		other := a
		if s == a {
			other = b
		}
		cert := fmt.Sprintf("%s-%d", s.name, 2)
		s.n.kill()
		// The node comes back on its HTTP address (the clients' URLs) but
		// a new cluster address, as a restarted pod does. (A node back on
		// the very address it left, before the others noticed it was gone,
		// can stay unreachable from them: see the session notes.)
		s.clust = freeAddr(t)
		s.n = startNode(t, s.name+"-renewed", append(append([]string{"--addr", s.http, "--cluster-addr", s.clust, "--cluster-seeds", other.clust},
			ca.Node(t, cert).Args()...), durable...)...)
		if !s.n.logged(`"msg":"cluster connections use mutual TLS"`, "CN="+cert) {
			t.Fatalf("round %d: %s does not use its new certificate %s", round, s.name, cert)
		}
		s.n.awaitMembers(ctx, 2)
		// The other node counts 2 members from the start: itself and the
		// killed one, until it misses that one's probes. Calls routed by
		// that view go to the dead node; wait until its members are itself
		// and the renewed one.
		renewed := s.n.id(ctx)
		if !poll(ctx, func() bool {
			ms := other.n.nodes(ctx)
			return len(ms) == 2 && slices.ContainsFunc(ms, func(m admin.NodeInfo) bool { return m.ID == renewed })
		}) {
			t.Fatalf("round %d: %s never counted %s renewed and the old one gone: %+v", round, other.n.name, s.name, other.n.nodes(ctx))
		}
		other.n.awaitMembers(ctx, 2)
		for i, dc := range clients {
			if _, err := dc.callLogging(t, ctx); err != nil {
				t.Fatalf("round %d (%s renewed): session %d (%s): %v", round, s.name, i, ids[dc], err)
			}
			if dc.cs.ID() != ids[dc] {
				t.Fatalf("session %d changed id: %s → %s", i, ids[dc], dc.cs.ID())
			}
		}
	}
	// Sessions moved on the way: those of the node restarted last came
	// back from their snapshots on the renewed nodes.
	if a.n.metric(ctx, rehydrated)+b.n.metric(ctx, rehydrated) == 0 {
		t.Error("no session was rehydrated on a renewed node")
	}
}

package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/pingmcp/pingmcp/internal/certtest"
	"github.com/pingmcp/pingmcp/internal/logtest"
)

func loadTLS(t *testing.T, f certtest.Files) *TLS {
	t.Helper()
	tl, err := LoadTLS(f.Cert, f.Key, f.CA)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// handshake runs a TLS server with srv on loopback and dials it with cli;
// it returns the client's and the server's errors. The client writes and
// reads one byte after its handshake: in TLS 1.3 a client learns that the
// server refused its certificate only then.
func handshake(t *testing.T, srv, cli *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.(*tls.Conn).Handshake(); err != nil {
			served <- err
			return
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			served <- err
			return
		}
		_, err = c.Write(b)
		served <- err
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cli)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err = c.Write([]byte{'x'}); err == nil {
			b := make([]byte, 1)
			_, err = io.ReadFull(c, b)
			if err == nil && c.ConnectionState().Version != tls.VersionTLS13 {
				err = errors.New("not TLS 1.3")
			}
		}
	}
	return err, <-served
}

func TestTLSMutual(t *testing.T) {
	ca := certtest.NewCA(t, "cluster CA")
	a, b := loadTLS(t, ca.Node(t, "node-a")), loadTLS(t, ca.Node(t, "node-b"))
	cli := b.ClientConfig()
	// Node addresses are pod IPs that change: the name dialled is not
	// compared with the certificate's (which names 127.0.0.1).
	cli.ServerName = "10.9.8.7"
	if cerr, serr := handshake(t, a.ServerConfig(), cli); cerr != nil || serr != nil {
		t.Fatalf("two nodes of one CA: client %v, server %v", cerr, serr)
	}
	// A chain through an intermediate CA.
	in := ca.Intermediate(t, "intermediate")
	c := loadTLS(t, in.Chain(t, "node-c"))
	if cerr, serr := handshake(t, a.ServerConfig(), c.ClientConfig()); cerr != nil || serr != nil {
		t.Fatalf("client with an intermediate: client %v, server %v", cerr, serr)
	}
	if cerr, serr := handshake(t, c.ServerConfig(), a.ClientConfig()); cerr != nil || serr != nil {
		t.Fatalf("server with an intermediate: client %v, server %v", cerr, serr)
	}
}

func TestTLSRefusesOtherCA(t *testing.T) {
	ca, other := certtest.NewCA(t, "cluster CA"), certtest.NewCA(t, "rogue CA")
	good := loadTLS(t, ca.Node(t, "node"))
	// A rogue with its own CA, trusting ours: the node refuses its
	// certificate.
	rogueFiles := other.Node(t, "rogue")
	rogueFiles.CA = ca.File
	rogueCert, err := tls.LoadX509KeyPair(rogueFiles.Cert, rogueFiles.Key)
	if err != nil {
		t.Fatal(err)
	}
	// It presents its certificate whatever CAs the server names (Go's
	// client would otherwise send none).
	rogueCli := &tls.Config{
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogueCert, nil },
		InsecureSkipVerify:   true, MinVersion: tls.VersionTLS13,
	}
	cerr, serr := handshake(t, good.ServerConfig(), rogueCli)
	if cerr == nil || serr == nil || !strings.Contains(serr.Error(), "certificate signed by unknown authority") {
		t.Fatalf("rogue client: client %v, server %v; want the server to refuse an unknown authority", cerr, serr)
	}
	// A rogue server (it stole the port, or a node was told its address):
	// a node sends it nothing.
	rogue := loadTLS(t, other.Node(t, "rogue-server"))
	cerr, serr = handshake(t, rogue.ServerConfig(), good.ClientConfig())
	if cerr == nil || !strings.Contains(cerr.Error(), "certificate not accepted") {
		t.Fatalf("rogue server: client %v, server %v; want the client to refuse it", cerr, serr)
	}
}

func TestTLSRefusesNoClientCertificate(t *testing.T) {
	ca := certtest.NewCA(t, "cluster CA")
	good := loadTLS(t, ca.Node(t, "node"))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cerr, serr := handshake(t, good.ServerConfig(), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
	if cerr == nil || serr == nil || !strings.Contains(serr.Error(), "didn't provide a certificate") {
		t.Fatalf("no client certificate: client %v, server %v", cerr, serr)
	}
}

func TestTLSRefusesExpiredCertificate(t *testing.T) {
	ca := certtest.NewCA(t, "cluster CA")
	good := loadTLS(t, ca.Node(t, "node"))
	expired := ca.Issue(t, "expired", certtest.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	// Refused when loading: a node does not start with it.
	if _, err := LoadTLS(expired.Cert, expired.Key, expired.CA); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("LoadTLS of an expired certificate: %v", err)
	}
	// And by peers (a node started before it expired).
	cert, err := tls.LoadX509KeyPair(expired.Cert, expired.Key)
	if err != nil {
		t.Fatal(err)
	}
	stale := &TLS{cert: cert, leaf: mustParse(t, cert), roots: good.roots}
	if cerr, serr := handshake(t, good.ServerConfig(), stale.ClientConfig()); serr == nil || !strings.Contains(serr.Error(), "expired") || cerr == nil {
		t.Fatalf("expired client certificate: client %v, server %v", cerr, serr)
	}
	if cerr, _ := handshake(t, stale.ServerConfig(), good.ClientConfig()); cerr == nil || !strings.Contains(cerr.Error(), "expired") {
		t.Fatalf("expired server certificate: client %v", cerr)
	}
}

func TestTLSRefusesTLS12(t *testing.T) {
	ca := certtest.NewCA(t, "cluster CA")
	a, b := loadTLS(t, ca.Node(t, "a")), loadTLS(t, ca.Node(t, "b"))
	old := b.ClientConfig()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	cerr, serr := handshake(t, a.ServerConfig(), old)
	if cerr == nil || serr == nil || !strings.Contains(serr.Error(), "unsupported versions") {
		t.Fatalf("TLS 1.2 client: client %v, server %v", cerr, serr)
	}
	oldSrv := a.ServerConfig()
	oldSrv.MinVersion, oldSrv.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if cerr, _ := handshake(t, oldSrv, b.ClientConfig()); cerr == nil || !strings.Contains(cerr.Error(), "protocol version") {
		t.Fatalf("TLS 1.2 server: client %v", cerr)
	}
}

// A node's certificate must allow both usages: it accepts connections and
// makes them.
func TestTLSKeyUsages(t *testing.T) {
	ca := certtest.NewCA(t, "cluster CA")
	good := loadTLS(t, ca.Node(t, "node"))
	for _, tc := range []struct {
		name  string
		usage x509.ExtKeyUsage
	}{{"client only", x509.ExtKeyUsageClientAuth}, {"server only", x509.ExtKeyUsageServerAuth}} {
		f := ca.Issue(t, strings.ReplaceAll(tc.name, " ", "-"), certtest.Options{Usages: []x509.ExtKeyUsage{tc.usage}})
		if _, err := LoadTLS(f.Cert, f.Key, f.CA); err == nil || !strings.Contains(err.Error(), "key usage") {
			t.Errorf("%s: LoadTLS: %v, want a refusal of its key usage", tc.name, err)
		}
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		one := &TLS{cert: cert, leaf: mustParse(t, cert), roots: good.roots}
		if tc.usage == x509.ExtKeyUsageClientAuth {
			if cerr, _ := handshake(t, one.ServerConfig(), good.ClientConfig()); cerr == nil {
				t.Errorf("a server with a client-only certificate was accepted")
			}
		} else {
			if _, serr := handshake(t, good.ServerConfig(), one.ClientConfig()); serr == nil {
				t.Errorf("a client with a server-only certificate was accepted")
			}
		}
	}
}

func TestParseTLSErrors(t *testing.T) {
	ca, other := certtest.NewCA(t, "cluster CA"), certtest.NewCA(t, "other CA")
	a, b := ca.Node(t, "a"), ca.Node(t, "b")
	read := func(p string) []byte {
		bs, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	keyA := read(a.Key)
	for _, tc := range []struct {
		name           string
		cert, key, cas []byte
		want           string
	}{
		{"no CA", read(a.Cert), keyA, []byte("not pem"), "holds no PEM certificate"},
		{"key of another", read(a.Cert), read(b.Key), read(ca.File), "private key does not match"},
		{"not from the CA", read(a.Cert), keyA, read(other.File), "unknown authority"},
		{"key in place of the certificate", keyA, keyA, read(ca.File), "certificate and key"},
	} {
		_, err := ParseTLS(tc.cert, tc.key, tc.cas)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("%s: the error shows the key: %v", tc.name, err)
		}
	}
	if _, err := LoadTLS(a.Cert, a.Key+".missing", a.CA); err == nil || !strings.Contains(err.Error(), "cluster TLS key") {
		t.Errorf("missing key file: %v", err)
	}
}

func mustParse(t *testing.T, c tls.Certificate) *x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestNodeRemoteIsMutualTLS starts a node with TLS (the one protoactor
// cluster of this test binary; automanaged without seeds, as a single node
// would refuse every connection) and talks to its cluster port the way
// protoactor's endpoint writer does: open the Receive stream and send a
// ConnectRequest. Plaintext and a certificate of another CA get nothing,
// no readable byte of the remote's protocol; a certificate of the
// cluster's CA gets the ConnectResponse (the control). Each refusal is
// logged by the node.
func TestNodeRemoteIsMutualTLS(t *testing.T) {
	n, ca, logs := dataNode(t)
	other := certtest.NewCA(t, "rogue CA")
	if !strings.Contains(logs.String(), "cluster connections use mutual TLS") {
		t.Errorf("the node did not log that its cluster connections use TLS:\n%s", logs.String())
	}

	connect := func(creds credentials.TransportCredentials) (*remote.ConnectResponse, error) {
		return connectRemote(n.Address(), creds)
	}

	good := loadTLS(t, ca.Node(t, "peer"))
	if resp, err := connect(good.clientCredentials()); err != nil || resp == nil {
		t.Fatalf("a peer with a certificate of the cluster's CA: %v %v", resp, err)
	}

	// The node logs each refusal (the handshake's end on its side may
	// come a moment after the client gave up).
	refused := func(why string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, RefusedConnection) && strings.Contains(l, why) {
					return
				}
			}
		}
		t.Errorf("no refusal logged for %q:\n%s", why, logs.String())
	}
	if resp, err := connect(insecure.NewCredentials()); err == nil || resp != nil {
		t.Fatalf("plaintext: got %v, %v; want no connection", resp, err)
	}
	refused("first record does not look like a TLS handshake")
	rogue := loadTLS(t, other.Node(t, "rogue"))
	rogueCreds := rogue.ClientConfig()
	rogueCreds.VerifyConnection = nil // the rogue would accept anything
	if resp, err := connect(credentials.NewTLS(rogueCreds)); err == nil || resp != nil {
		t.Fatalf("a certificate of another CA: got %v, %v; want no connection", resp, err)
	}
	refused("certificate signed by unknown authority")
	// A client without a certificate at all.
	if resp, err := connect(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})); err == nil || resp != nil {
		t.Fatalf("no client certificate: got %v, %v; want no connection", resp, err)
	}
	refused("didn't provide a certificate")
	// protoactor's unary methods panic on the server: they are refused
	// instead, even to a peer of the cluster.
	conn, err := grpc.NewClient(n.Address(), grpc.WithTransportCredentials(good.clientCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := remote.NewRemotingClient(conn).ListProcesses(context.Background(), &remote.ListProcessesRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("ListProcesses: %v, want Unimplemented", err)
	}
	// The node still serves its peers.
	if resp, err := connect(good.clientCredentials()); err != nil || resp == nil {
		t.Fatalf("a peer after the refusals: %v %v", resp, err)
	}
}

func TestRefusalLogIsBounded(t *testing.T) {
	var logs logtest.Buffer
	l := &refusalLog{logger: slog.New(slog.NewTextHandler(&logs, nil))}
	clock := time.Now()
	l.throttle.Now = func() time.Time { return clock }
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1234}
	for range 100 {
		l.refused(addr, errors.New("tls: bad"))
	}
	if got := strings.Count(logs.String(), RefusedConnection); got != 5 {
		t.Errorf("%d lines logged for 100 refusals in a burst, want 5 (telemetry.Throttle's default)", got)
	}
	clock = clock.Add(time.Second)
	l.refused(addr, errors.New("tls: bad"))
	if !strings.Contains(logs.String(), "suppressed=95") {
		t.Errorf("the next line does not count the suppressed ones:\n%s", logs.String())
	}
}

// connectRemote opens protoactor's Receive stream to a cluster endpoint as
// another node's endpoint writer does, sends a ConnectRequest and returns
// the answer.
func connectRemote(addr string, creds credentials.TransportCredentials, opts ...grpc.DialOption) (*remote.ConnectResponse, error) {
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(creds))...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := remote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		return nil, err
	}
	err = stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "probe", Address: "127.0.0.1:1"}},
	}}})
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// On io.EOF from Send the server ended the stream first (gRPC's
	// contract): Recv tells its status.
	msg, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	return msg.GetConnectResponse(), nil
}

// A single node's remote (noPeers) completes no connection, plaintext or
// TLS with a certificate of any CA, and logs each refusal; the same gRPC
// server in plaintext answers the stream (the control: Unimplemented, as
// nothing is registered here, is an answer of gRPC's).
func TestNoPeersRefusesEveryConnection(t *testing.T) {
	serve := func(opts ...grpc.ServerOption) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer(opts...)
		go s.Serve(ln)
		t.Cleanup(s.Stop)
		return ln.Addr().String()
	}
	if _, err := connectRemote(serve(), insecure.NewCredentials()); status.Code(err) != codes.Unimplemented {
		t.Fatalf("control, a plaintext gRPC server: %v, want Unimplemented", err)
	}

	var logs logtest.Buffer
	refuse := noPeers{log: &refusalLog{logger: slog.New(slog.NewTextHandler(&logs, nil)), msg: RefusedNoPeers}}
	addr := serve(grpc.Creds(refuse))
	ca := certtest.NewCA(t, "any CA")
	peer := loadTLS(t, ca.Node(t, "peer"))
	open := peer.ClientConfig()
	open.VerifyConnection = nil
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext": insecure.NewCredentials(), "TLS": credentials.NewTLS(open),
	} {
		if resp, err := connectRemote(addr, creds); status.Code(err) != codes.Unavailable || resp != nil {
			t.Errorf("%s: %v, %v; want no connection (Unavailable)", name, resp, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); strings.Count(logs.String(), RefusedNoPeers) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("refusals not logged:\n%s", logs.String())
		}
	}
	// It dials no one either.
	if _, _, err := refuse.ClientHandshake(context.Background(), addr, nil); err == nil {
		t.Error("ClientHandshake succeeded")
	}
}

// The CA file says whom the node admits to the cluster, and the key is
// the node's own: a file another local user could have written (theirs,
// or one group or others may write) is refused, as a CA of theirs
// appended there would admit them, with every user's bearer token the
// cluster forwards. A key others may read is loaded, and KeyExposed says
// so, for the node to warn (a Docker secret is 0444).
func TestLoadTLSRefusesFilesOthersCouldChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f certtest.Files) error
		want   string
	}{
		{"the CA writable by others", func(f certtest.Files) error { return os.Chmod(f.CA, 0o646) }, "written by group or others"},
		{"the CA writable by the group", func(f certtest.Files) error { return os.Chmod(f.CA, 0o664) }, "written by group or others"},
		{"the certificate writable by others", func(f certtest.Files) error { return os.Chmod(f.Cert, 0o666) }, "written by group or others"},
		{"the key writable by others", func(f certtest.Files) error { return os.Chmod(f.Key, 0o602) }, "written by group or others"},
		{"the CA another user's", func(f certtest.Files) error {
			if os.Geteuid() != 0 {
				t.Skip("giving a file to another user takes root")
			}
			return os.Chown(f.CA, 65534, 65534)
		}, "another user (uid 65534"},
		{"the key a link another user owns", func(f certtest.Files) error {
			if os.Geteuid() != 0 {
				t.Skip("giving a file to another user takes root")
			}
			if err := os.Rename(f.Key, f.Key+".real"); err != nil {
				return err
			}
			if err := os.Symlink(f.Key+".real", f.Key); err != nil {
				return err
			}
			return os.Lchown(f.Key, 65534, 65534)
		}, "symbolic link another user owns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := certtest.NewCA(t, "cluster").Node(t, "node-1")
			if err := tc.change(f); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadTLS(f.Cert, f.Key, f.CA); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadTLS: %v, want refused: %q", err, tc.want)
			}
		})
	}

	f := certtest.NewCA(t, "cluster").Node(t, "node-2")
	if tl := loadTLS(t, f); tl.KeyExposed() {
		t.Error("a key 0600: KeyExposed")
	}
	if err := os.Chmod(f.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	if tl := loadTLS(t, f); !tl.KeyExposed() {
		t.Error("a key 0644: not KeyExposed")
	}
}

// The cluster port runs at most handshakesPerAddr TLS handshakes from one
// address and handshakesInFlight in all: a connection beyond them is
// closed before a byte of it is read, and the node's peers still connect
// from other addresses meanwhile. Before, a process opening connections it
// never finished held a goroutine and its buffers per connection for gRPC's
// ConnectionTimeout (10 s), without bound.
func TestHandshakeFloodBounded(t *testing.T) {
	n, ca, logs := dataNode(t)

	// 64 connections from 127.0.0.1 that say nothing: all but 32 are
	// closed unread, at once.
	const flood = 64
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.Dial("tcp", n.Address())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	closed := make(chan bool, flood)
	for _, c := range conns {
		go func() {
			// A closed connection reads an error at once; one held reads
			// nothing until the test closes it (the node's deadline is 10 s).
			c.SetReadDeadline(time.Now().Add(8 * time.Second))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			closed <- !(errors.As(err, &ne) && ne.Timeout())
		}()
	}
	got := 0
	for range flood - handshakesPerAddr {
		if <-closed {
			got++
		}
	}
	if got != flood-handshakesPerAddr {
		t.Fatalf("%d of the flood's connections closed by the node, want %d", got, flood-handshakesPerAddr)
	}
	inFlight := func() (all, local int) {
		n.handshakes.mu.Lock()
		defer n.handshakes.mu.Unlock()
		return n.handshakes.inFlight, n.handshakes.byAddr[netip.MustParseAddr("127.0.0.1")]
	}
	if all, local := inFlight(); all != handshakesPerAddr || local != handshakesPerAddr {
		t.Errorf("handshakes in flight: %d, %d from 127.0.0.1; want %d, all from it", all, local, handshakesPerAddr)
	}
	if !strings.Contains(logs.String(), errHandshakesBusy.Error()) {
		t.Errorf("the refusals are not logged:\n%s", logs.String())
	}

	// A peer from another address connects while the flood holds its 32;
	// one from the flood's address does not.
	peer := loadTLS(t, ca.Node(t, "peer")).clientCredentials()
	from := func(ip string) (*remote.ConnectResponse, error) {
		return connectRemote(n.Address(), peer, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			return d.DialContext(ctx, "tcp", addr)
		}))
	}
	if resp, err := from("127.0.0.2"); err != nil || resp == nil {
		t.Fatalf("a peer from 127.0.0.2 during the flood: %v %v", resp, err)
	}
	if resp, err := from("127.0.0.1"); err == nil || resp != nil {
		t.Errorf("a peer from the flood's address during the flood: %v %v, want no connection", resp, err)
	}

	// The flood gone, the node forgets it, and the address connects again.
	for _, c := range conns {
		c.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if all, _ := inFlight(); all == 0 {
			break
		}
		if time.Now().After(deadline) {
			all, local := inFlight()
			t.Fatalf("handshakes in flight after the flood closed: %d (%d from 127.0.0.1)", all, local)
		}
	}
	if resp, err := from("127.0.0.1"); err != nil || resp == nil {
		t.Fatalf("a peer from 127.0.0.1 after the flood: %v %v", resp, err)
	}
}

// The gate's bounds, per address and in all, and a release given back
// once however often it is called.
func TestHandshakeGate(t *testing.T) {
	g := newHandshakeGate(2, 3)
	addr := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1} }
	a1, err := g.enter(addr("10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.enter(addr("::ffff:10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := g.enter(addr("10.0.0.1")); !errors.Is(err, errHandshakesBusy) {
		t.Errorf("a third from one address (its IPv4-mapped form counted as it): %v", err)
	}
	b1, err := g.enter(addr("10.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.enter(addr("10.0.0.3")); !errors.Is(err, errHandshakesBusy) {
		t.Errorf("a fourth in all: %v", err)
	}
	a1()
	a1()
	b1()
	if g.inFlight != 1 || g.byAddr[netip.MustParseAddr("10.0.0.1")] != 1 || len(g.byAddr) != 1 {
		t.Errorf("after releases: %d in flight, %v", g.inFlight, g.byAddr)
	}
	if _, err := g.enter(addr("10.0.0.3")); err != nil {
		t.Errorf("after releases: %v", err)
	}
}

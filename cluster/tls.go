package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/pingmcp/pingmcp/internal/privfile"
	"github.com/pingmcp/pingmcp/telemetry"
)

// TLS is the mutual TLS of a node's cluster connections: what it presents
// (its certificate) and what it trusts (the cluster's CA).
//
// Every node-to-node connection carries forwarded requests, users' bearer
// tokens among them, and any peer that completes a connection may place
// and call actors (protoactor authenticates nothing itself): so a node
// accepts a connection only from a peer presenting a certificate of the
// cluster's CA, and sends only to a peer that does. TLS 1.3 only.
//
// Use a CA of the cluster's own: any certificate it issued, for any name,
// admits its holder to the cluster. Node certificates need both extended
// key usages, serverAuth (a node accepts connections) and clientAuth (it
// dials others).
//
// Certificates are read once, when the node starts: to rotate them (a new
// certificate, or a new CA bundle holding old and new CA), replace the
// files and restart the nodes one at a time. Sessions continue on the
// others, and their state is in Redis (see e2e TestMTLSRotation).
type TLS struct {
	cert  tls.Certificate
	leaf  *x509.Certificate
	roots *x509.CertPool
	// keyExposed: others may read the key's file (LoadTLS).
	keyExposed bool
}

// LoadTLS reads a node's certificate (PEM, optionally followed by its
// intermediate CAs), its private key and the cluster CA's certificates, and
// checks them (ParseTLS). Each file is read as privfile.ReadSecret reads
// it: one another local user could have written (theirs, or one group or
// others may write) is refused, as a CA of theirs put in the CA file would
// admit them to the cluster. A key others may read is read, and KeyExposed
// says so.
func LoadTLS(certFile, keyFile, caFile string) (*TLS, error) {
	var pems [3][]byte
	keyExposed := false
	for i, f := range []struct{ what, path string }{{"certificate", certFile}, {"key", keyFile}, {"CA", caFile}} {
		b, exposed, err := privfile.ReadSecret(f.path)
		if err != nil {
			return nil, fmt.Errorf("cluster TLS %s: %w", f.what, err)
		}
		pems[i] = b
		keyExposed = keyExposed || f.path == keyFile && exposed
	}
	t, err := ParseTLS(pems[0], pems[1], pems[2])
	if err != nil {
		return nil, fmt.Errorf("cluster TLS (certificate %s, key %s, CA %s): %w", certFile, keyFile, caFile, err)
	}
	t.keyExposed = keyExposed
	return t, nil
}

// KeyExposed says whether other users of the host may read the key's file
// LoadTLS read: any of them could join the cluster with it.
func (t *TLS) KeyExposed() bool { return t.keyExposed }

// ParseTLS checks a node's certificate, key and CA bundle (PEM) together:
// the key is the certificate's, the certificate is valid now, chains to
// the CA, and may be used both to accept and to make connections. Its
// errors never hold key material.
func ParseTLS(certPEM, keyPEM, caPEM []byte) (*TLS, error) {
	roots := x509.NewCertPool()
	n := 0
	for rest := caPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA certificate %d: %w", n+1, err)
		}
		roots.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("the CA file holds no PEM certificate")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages name the PEM block types it found, never
		// their content.
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	cert.Leaf = leaf
	t := &TLS{cert: cert, leaf: leaf, roots: roots}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := t.verify(cert.Certificate, usage); err != nil {
			return nil, fmt.Errorf("the node certificate (%s) is not one the cluster accepts: %w", leaf.Subject, err)
		}
	}
	return t, nil
}

// NotAfter is when the node's certificate expires.
func (t *TLS) NotAfter() time.Time { return t.leaf.NotAfter }

// Subject is the node certificate's subject.
func (t *TLS) Subject() string { return t.leaf.Subject.String() }

// verify checks that a peer's certificate chain (leaf first) leads to one
// of the cluster's CAs and allows usage.
func (t *TLS) verify(rawCerts [][]byte, usage x509.ExtKeyUsage) error {
	if len(rawCerts) == 0 {
		return errors.New("no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: t.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// ServerConfig is the TLS of the node's cluster listener: TLS 1.3, and a
// client certificate of the cluster's CA (with clientAuth) required.
func (t *TLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    t.roots,
	}
}

// ClientConfig is the TLS of the node's connections to other nodes: TLS
// 1.3, its certificate presented, and the peer's verified.
//
// The peer's certificate must chain to the cluster's CA and allow
// serverAuth, but its names are not compared with the address dialled.
// Nodes dial each other by the addresses they advertise, pod IPs on
// Kubernetes, which change with every pod, so a certificate cannot name
// them in advance (and a Secret shared by all pods holds one certificate).
// Trust is "issued by the cluster's CA", as on the server side for client
// certificates. Go's verification of the server's name is therefore off
// (InsecureSkipVerify) and VerifyConnection does the rest of it, the chain
// and the usage, on every handshake (resumed ones included).
func (t *TLS) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Always present ours, even when the server's list of acceptable
		// CAs names none of our chain: the server then refuses it with a
		// reason, rather than seeing no certificate.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &t.cert, nil },
		RootCAs:              t.roots,
		InsecureSkipVerify:   true, // the chain and usage are checked in VerifyConnection, the name is not (see above)
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			if err := t.verify(raw, x509.ExtKeyUsageServerAuth); err != nil {
				return fmt.Errorf("cluster peer %s: certificate not accepted: %w", cs.ServerName, err)
			}
			return nil
		},
	}
}

// serverCredentials are the gRPC credentials of the node's cluster
// listener. protoactor discards gRPC's logs, so a refused connection would
// leave no trace: they are logged here, at most a few a second.
//
// A connection that asks for the data plane (ALPN dataALPN) is taken out of
// gRPC after the handshake and given to dispatch (dataplane.go), once it is
// set.
func (t *TLS) serverCredentials(logger *slog.Logger, dispatch *atomic.Pointer[func(net.Conn)], gate *handshakeGate) credentials.TransportCredentials {
	cfg := t.ServerConfig()
	cfg.NextProtos = []string{dataALPN, "h2"} // Go picks by the server's order: the data plane when offered
	return &refusals{TransportCredentials: credentials.NewTLS(cfg), log: &refusalLog{logger: logger}, dispatch: dispatch, gate: gate}
}

// clientCredentials are the gRPC credentials the node dials others with.
func (t *TLS) clientCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(t.ClientConfig())
}

// refusals logs the connections the TLS handshake refused, and refuses at
// once those the gate does not let handshake.
type refusals struct {
	credentials.TransportCredentials
	log      *refusalLog
	dispatch *atomic.Pointer[func(net.Conn)]
	gate     *handshakeGate
}

var errNoDataPlane = errors.New("the data plane is not serving yet")

func (r *refusals) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	release, err := r.gate.enter(conn.RemoteAddr())
	if err != nil {
		r.log.refused(conn.RemoteAddr(), err)
		return nil, nil, err
	}
	c, info, err := r.TransportCredentials.ServerHandshake(conn)
	release()
	if err != nil {
		r.log.refused(conn.RemoteAddr(), err)
		return c, info, err
	}
	if ti, ok := info.(credentials.TLSInfo); ok && ti.State.NegotiatedProtocol == dataALPN {
		if r.dispatch != nil {
			if serve := r.dispatch.Load(); serve != nil {
				(*serve)(c)
				return nil, nil, credentials.ErrConnDispatched
			}
		}
		c.Close()
		return nil, nil, errNoDataPlane
	}
	return c, info, nil
}

func (r *refusals) Clone() credentials.TransportCredentials {
	return &refusals{TransportCredentials: r.TransportCredentials.Clone(), log: r.log, dispatch: r.dispatch, gate: r.gate}
}

// The handshakes a node's cluster port runs at once, from one address and
// from all. A connection that is not yet mutual TLS is anyone's: until its
// handshake ends (gRPC's ConnectionTimeout, 10 s), it holds a goroutine and
// its buffers, and its ClientHello costs the node a signature. A peer opens
// a few connections at a time (protoactor's remote, the data plane's link,
// a seed's probe), each handshaking in milliseconds, and the nodes of one
// host (tests, a laptop's cluster) share an address: 32 leaves them room.
// A process that opens
// thousands and never finishes them held as many goroutines, and the node's
// memory, for those 10 s each. Beyond these bounds a connection is closed
// before its first byte is read: a peer's is retried (protoactor's endpoint
// writer, the data plane's link), and the links already made carry on.
const (
	handshakesPerAddr  = 32
	handshakesInFlight = 256
)

// errHandshakesBusy refuses a connection beyond the gate's bounds.
var errHandshakesBusy = errors.New("too many TLS handshakes in flight (from this address, or in all); closed unread")

// handshakeGate bounds the TLS handshakes in flight, per remote IP address
// and in all.
type handshakeGate struct {
	perAddr, total int
	mu             sync.Mutex
	inFlight       int
	byAddr         map[netip.Addr]int
}

func newHandshakeGate(perAddr, total int) *handshakeGate {
	return &handshakeGate{perAddr: perAddr, total: total, byAddr: make(map[netip.Addr]int)}
}

// enter admits a handshake from addr, or says why not; release, once the
// handshake has ended, frees its place.
func (g *handshakeGate) enter(addr net.Addr) (release func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	var ip netip.Addr
	if tcp, ok := addr.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(tcp.IP)
		ip = ip.Unmap()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight >= g.total || g.byAddr[ip] >= g.perAddr {
		return nil, errHandshakesBusy
	}
	g.inFlight++
	g.byAddr[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.inFlight--
			if g.byAddr[ip]--; g.byAddr[ip] == 0 {
				delete(g.byAddr, ip)
			}
		})
	}, nil
}

// RefusedConnection is the message of the log line of a refused cluster
// connection.
const RefusedConnection = "cluster connection refused: TLS handshake failed"

// RefusedNoPeers is the message of the log line of a connection to a
// single node's cluster port.
const RefusedNoPeers = "cluster connection refused: a single node has no peers"

// noPeers are the transport credentials of a node with the single
// provider (pingmcp dev, serve --cluster-provider single): they complete no
// handshake, either way.
//
// A cluster of one has no peer: every PID it uses is its own (placement,
// its actors, its reply router), which protoactor delivers in process. But
// protoactor's remote always listens (remote.Start calls net.Listen; there
// is no option to run without it), and protoactor authenticates nothing: a
// process that reached the port could activate actors and send them
// envelopes with any Principal. Refusing every connection before gRPC reads
// a byte closes that with nothing to configure or leak; mutual TLS with a
// CA made in memory at start would do the same at the cost of key
// generation and more code.
type noPeers struct{ log *refusalLog }

var errNoPeers = errors.New("a single node accepts no cluster connection and makes none")

func (p noPeers) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	p.log.refused(conn.RemoteAddr(), errNoPeers)
	return nil, nil, errNoPeers
}

func (noPeers) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errNoPeers
}

func (noPeers) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "none"}
}

func (p noPeers) Clone() credentials.TransportCredentials { return p }
func (noPeers) OverrideServerName(string) error           { return nil }

// refusalLog logs refused connections at Warn, at most a few a
// second (a scanner must not flood the log), counting those it left out.
type refusalLog struct {
	logger   *slog.Logger
	msg      string // RefusedConnection when empty
	throttle telemetry.Throttle
}

func (l *refusalLog) refused(addr net.Addr, err error) {
	level := slog.LevelWarn
	if errors.Is(err, io.EOF) {
		level = slog.LevelDebug // connected and left without a word: a port check
	}
	msg := l.msg
	if msg == "" {
		msg = RefusedConnection
	}
	l.throttle.Log(l.logger, level, msg, "peer", addr.String(), "err", err)
}

package e2e

import (
	"context"
	"crypto/tls"
	be "encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/mem"

	"github.com/pingmcp/pingmcp/cluster"
)

// BenchmarkHopFloor is the floor of any hop between two nodes on this
// machine: the round trip of a message the size of a forwarded tools/call
// (hopMessage bytes each way) between this process and another, one at a
// time, over the cluster's mutual TLS (a node certificate of `pingmcp
// certs`, cluster.TLS's configurations), against which to set what a
// cross-node call adds to a single node's (`ToolsCall` cross − single):
//
//	mtls  length-prefixed frames on one TLS connection, each written by the
//	      sending goroutine and read by the one waiting for it: a data plane
//	      with no hand-off of its own
//	grpc  one gRPC bidirectional stream with the nodes' fixed windows: what
//	      protoactor's remote is built on, without protoactor
//
// Both ends run as separate processes (the echo is this test binary run
// again with hopEchoEnv set). It reports p50 and p99 of the round trip and
// the CPU each process spends on one.
func BenchmarkHopFloor(b *testing.B) {
	for _, kind := range []string{"mtls", "grpc"} {
		b.Run(kind, func(b *testing.B) {
			tlsConf, err := clusterTLSConfig(certsDir())
			if err != nil {
				b.Fatal(err)
			}
			addr, pid := startHopEcho(b, kind)
			msg := make([]byte, hopMessage)
			var trip func() error
			switch kind {
			case "mtls":
				conn, err := tls.Dial("tcp", addr, tlsConf.ClientConfig())
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				framed := be.BigEndian.AppendUint32(nil, uint32(len(msg)))
				framed = append(framed, msg...)
				buf := make([]byte, len(framed))
				trip = func() error {
					if _, err := conn.Write(framed); err != nil {
						return err
					}
					_, err := readFrame(conn, buf)
					return err
				}
			case "grpc":
				cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf.ClientConfig())),
					grpc.WithStaticStreamWindowSize(hopWindow), grpc.WithStaticConnWindowSize(hopWindow),
					grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
				if err != nil {
					b.Fatal(err)
				}
				defer cc.Close()
				st, err := cc.NewStream(context.Background(), &hopStream, "/pingmcp.bench.Echo/Echo")
				if err != nil {
					b.Fatal(err)
				}
				defer st.CloseSend()
				trip = func() error {
					out := rawMessage(msg)
					if err := st.SendMsg(&out); err != nil {
						return err
					}
					var in rawMessage
					return st.RecvMsg(&in)
				}
			}
			for range 200 { // the connection's first messages (handshake, windows)
				if err := trip(); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, 0, b.N)
			echoCPU := processCPU(b, pid)
			ownCPU := processCPU(b, os.Getpid())
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := trip(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			echoCPU = processCPU(b, pid) - echoCPU
			ownCPU = processCPU(b, os.Getpid()) - ownCPU
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
			b.ReportMetric(float64(echoCPU.Nanoseconds())/1e3/float64(b.N), "echo-cpu-µs/trip")
			b.ReportMetric(float64(ownCPU.Nanoseconds())/1e3/float64(b.N), "sender-cpu-µs/trip")
		})
	}
}

// hopMessage is about what a forwarded tools/call weighs between nodes:
// the request's envelope (its body, headers and principal) one way, the
// answer's part the other.
const hopMessage = 600

// hopWindow is the nodes' fixed gRPC window (cluster's wireWindow).
const hopWindow = 4 << 20

// hopEchoEnv, set to mtls or grpc, makes this test binary echo every
// message it is sent (TestMain), with the node certificate of the
// directory hopCertsEnv names, instead of running tests.
const (
	hopEchoEnv  = "PINGMCP_BENCH_HOP_ECHO"
	hopCertsEnv = "PINGMCP_BENCH_HOP_CERTS"
)

var hopStream = grpc.StreamDesc{StreamName: "Echo", ServerStreams: true, ClientStreams: true}

// certsDir is where TestMain had `pingmcp certs` write the node
// certificate (clusterTLS's files).
func certsDir() string { return filepath.Dir(clusterTLS[1]) }

func clusterTLSConfig(dir string) (*cluster.TLS, error) {
	return cluster.LoadTLS(filepath.Join(dir, "e2e-node.crt"), filepath.Join(dir, "e2e-node.key"), filepath.Join(dir, cluster.CACertFile))
}

// startHopEcho runs the echo of kind in a process of its own and returns
// its address and pid.
func startHopEcho(b *testing.B, kind string) (string, int) {
	return startChild(b, "the echo's process", hopEchoEnv+"="+kind, hopCertsEnv+"="+certsDir())
}

// serveHopEcho echoes until killed (see hopEchoEnv).
func serveHopEcho() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "hop echo:", err)
		os.Exit(1)
	}
	conf, err := clusterTLSConfig(os.Getenv(hopCertsEnv))
	if err != nil {
		fail(err)
	}
	ln := listenForParent()
	switch os.Getenv(hopEchoEnv) {
	case "mtls":
		for {
			conn, err := ln.Accept()
			if err != nil {
				fail(err)
			}
			go func() {
				c := tls.Server(conn, conf.ServerConfig())
				defer c.Close()
				buf := make([]byte, 4+maxHopMessage)
				for {
					n, err := readFrame(c, buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:4+n]); err != nil {
						return
					}
				}
			}()
		}
	case "grpc":
		s := grpc.NewServer(grpc.Creds(credentials.NewTLS(conf.ServerConfig())),
			grpc.StaticStreamWindowSize(hopWindow), grpc.StaticConnWindowSize(hopWindow), grpc.ForceServerCodecV2(rawCodec{}),
			grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
				for {
					var m rawMessage
					if err := st.RecvMsg(&m); err != nil {
						return nil
					}
					if err := st.SendMsg(&m); err != nil {
						return err
					}
				}
			}))
		fail(s.Serve(ln))
	}
	fail(fmt.Errorf("%s=%q: want mtls or grpc", hopEchoEnv, os.Getenv(hopEchoEnv)))
}

const maxHopMessage = 1 << 20

// readFrame reads one length-prefixed frame into buf (which has room for
// the largest) and returns its length.
func readFrame(r io.Reader, buf []byte) (int, error) {
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		return 0, err
	}
	n := int(be.BigEndian.Uint32(buf[:4]))
	if n > len(buf)-4 {
		return 0, fmt.Errorf("frame of %d bytes", n)
	}
	_, err := io.ReadFull(r, buf[4:4+n])
	return n, err
}

// rawMessage is a gRPC message sent as its bytes (rawCodec): the echo's
// messages need no encoding of their own.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*rawMessage))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*rawMessage) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "raw" }

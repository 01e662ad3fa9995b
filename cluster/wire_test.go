package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// recordingConn keeps a copy of what went each way.
type recordingConn struct {
	net.Conn
	mu             sync.Mutex
	sent, received bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.received.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.sent.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// record returns copies of what was sent and received so far.
func (c *recordingConn) record() (sent, received []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.sent.Bytes()), bytes.Clone(c.received.Bytes())
}

// wireFrames is what one side of a connection between nodes said in its
// HTTP/2 frames: the initial stream window of its SETTINGS, the window it
// gave the whole connection, and the PINGs it asked (not those it answered).
type wireFrames struct {
	streamWindow, connWindow uint32
	pings                    int
}

// readFrames reads the HTTP/2 frames in b up to its end (a frame cut short
// there is left out).
func readFrames(t *testing.T, b []byte) wireFrames {
	t.Helper()
	w := wireFrames{streamWindow: 65535, connWindow: 65535}
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return w
		}
		if err != nil {
			t.Fatalf("frames between nodes: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok && !f.IsAck() {
				w.streamWindow = v
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				w.connWindow += f.Increment
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				w.pings++
			}
		}
	}
}

// A node's connections to other nodes have fixed flow-control windows
// (wireWindow), on the side that serves (a node's gRPC server, the test's
// connection to it) and on the side that dials (wireDialOptions, which the
// test's connection uses, as a node's endpoint writer does): no window
// estimated from pings, which gRPC would otherwise ask of its peer on each
// message that arrives while none is outstanding.
func TestWireWindowsAreFixed(t *testing.T) {
	n, err := Start(Config{Addr: "127.0.0.1:0", Provider: ProviderAutomanaged, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(false) })

	conns := make(chan *recordingConn, 1) // one connection: gRPC's dial
	client, err := grpc.NewClient(n.Address(), append(wireDialOptions(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			conn := &recordingConn{Conn: c}
			conns <- conn
			return conn, nil
		}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := remote.NewRemotingClient(client).Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The node reads the request's frame before it answers: a ping it
	// asks on that frame's arrival is written before the answer.
	if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
		ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "probe", Address: "127.0.0.1:1"}},
	}}}); err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil || msg.GetConnectResponse() == nil {
		t.Fatalf("connect: %v, %v", msg, err)
	}
	sent, received := (<-conns).record()
	if !bytes.HasPrefix(sent, []byte(http2.ClientPreface)) {
		t.Fatalf("the dialing side began with %q, not HTTP/2's preface", sent)
	}
	for _, side := range []struct {
		name   string
		frames []byte
	}{{"dialing", sent[len(http2.ClientPreface):]}, {"serving", received}} {
		got := readFrames(t, side.frames)
		if got.streamWindow != wireWindow || got.connWindow != wireWindow || got.pings != 0 {
			t.Errorf("the %s side's frames: stream window %d, connection window %d, %d pings asked; want %d, %d, none",
				side.name, got.streamWindow, got.connWindow, got.pings, wireWindow, wireWindow)
		}
	}
}

package cluster

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	_ "github.com/pingmcp/pingmcp/cluster/envelope" // registers pingmcp.envelope.v1.Envelope
)

// TestKeepAddressedHere: of a batch, what is for this node's address stays;
// a membership probe for another address is delivered here; anything else
// for another address, what names a target, sender or type the batch does
// not hold, and what is of a type this node does not know or not protobuf,
// is dropped.
func TestKeepAddressedHere(t *testing.T) {
	const here = "10.0.0.5:7000"
	b := &remote.MessageBatch{
		TypeNames: []string{"pingmcp.envelope.v1.Envelope", "pingmcp.envelope.v2.Envelope"},
		Targets: []*actor.PID{
			{Address: here, Id: "partition-activator"},           // 0: here
			{Address: "localhost:7000", Id: membershipActorName}, // 1: a probe, another name
			{Address: "10.0.0.6:7000", Id: "session/abc"},        // 2: another node's
			{Address: "nonhost", Id: "session/abc"},              // 3: no node's
			nil,                                                  // 4
		},
		Senders: []*actor.PID{{Address: "10.0.0.7:7000", Id: "future$1"}},
	}
	env := func(name string, target, sender, typ int32) *remote.MessageEnvelope {
		return &remote.MessageEnvelope{Target: target, Sender: sender, TypeId: typ, MessageData: []byte(name)}
	}
	b.Envelopes = []*remote.MessageEnvelope{
		env("here", 0, 0, 0),
		env("probe", 1, 1, 0),
		env("elsewhere", 2, 1, 0),
		env("nonhost", 3, 0, 0),
		env("nil target", 4, 0, 0),
		env("target past the end", 5, 0, 0),
		env("negative target", -1, 0, 0),
		env("sender past the end", 0, 2, 0),
		env("type past the end", 0, 0, 2),
		env("a type unknown here", 0, 0, 1),
		{Target: 0, TypeId: 0, SerializerId: 1, MessageData: []byte("json")},
		{Target: 0, TypeId: 0, SerializerId: 7, MessageData: []byte("no such serializer")},
		nil,
		env("here again", 0, 1, 0),
	}
	dropped, why, what := keepAddressedHere(b, here)
	var kept []string
	for _, e := range b.Envelopes {
		kept = append(kept, string(e.MessageData))
	}
	if want := []string{"here", "probe", "here again"}; !slices.Equal(kept, want) {
		t.Errorf("kept %q, want %q", kept, want)
	}
	if dropped != 11 || why != dropElsewhere || what != "10.0.0.6:7000" {
		t.Errorf("dropped %d, the first %s (%q); want 11, the first for another address, 10.0.0.6:7000", dropped, why, what)
	}
	if b.Targets[1].Address != here {
		t.Errorf("the probe's target is %v, want it at %s", b.Targets[1], here)
	}
	if b.Targets[2].Address != "10.0.0.6:7000" {
		t.Errorf("another node's target was changed: %v", b.Targets[2])
	}

	// A batch all for here is left as it is.
	b = &remote.MessageBatch{TypeNames: []string{"pingmcp.envelope.v1.Envelope"}, Targets: []*actor.PID{{Address: here, Id: "x"}},
		Envelopes: []*remote.MessageEnvelope{env("a", 0, 0, 0), env("b", 0, 0, 0)}}
	if dropped, _, _ := keepAddressedHere(b, here); dropped != 0 || len(b.Envelopes) != 2 {
		t.Errorf("a batch for here: dropped %d, %d left", dropped, len(b.Envelopes))
	}
}

// lines is an io.Writer of log lines that hands each to whoever awaits it.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // nobody reads: dropped, as a test awaits only what it asked for
	}
	return len(p), nil
}

// await waits for a line containing substr.
func (l lines) await(t *testing.T, ctx context.Context, substr string) string {
	t.Helper()
	for {
		select {
		case s := <-l:
			if strings.Contains(s, substr) {
				return s
			}
		case <-ctx.Done():
			t.Fatalf("never logged %q", substr)
			return ""
		}
	}
}

// TestAddressedHereOnTheWire: a node's cluster server, spoken to over
// protoactor's own stream, drops a message for another address and says
// so, survives a message that makes protoactor panic (the stream ends, the
// node serves the next), and refuses a connection from itself, naming the
// address that led back to it.
func TestAddressedHereOnTheWire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := make(lines, 256)
	n, err := Start(Config{Addr: "127.0.0.1:0", Provider: ProviderAutomanaged, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(false)
	_, port, _ := net.SplitHostPort(n.Address())
	// send connects as systemID to the node (by alias), sends batch if any,
	// and returns how the node ended the stream (nil: it read everything).
	send := func(alias, systemID string, batch *remote.MessageBatch) error {
		conn, err := grpc.NewClient(alias, wireDialOptions(insecure.NewCredentials())...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stream, err := remote.NewRemotingClient(conn).Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hello := &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{
			ServerConnection: &remote.ServerConnection{SystemId: systemID, Address: "127.0.0.1:1"}}}
		if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: hello}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			return err
		}
		if batch != nil {
			if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: batch}}); err != nil {
				t.Fatal(err)
			}
		}
		stream.CloseSend()
		for {
			if _, err := stream.Recv(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	one := func(typeName string, target *actor.PID) *remote.MessageBatch {
		return &remote.MessageBatch{TypeNames: []string{typeName}, Targets: []*actor.PID{target},
			Envelopes: []*remote.MessageEnvelope{{TypeId: 0, Target: 0}}}
	}

	if err := send(n.Address(), "peer", one("pingmcp.envelope.v1.Envelope", &actor.PID{Address: "10.9.9.9:7000", Id: "x"})); err != nil {
		t.Errorf("a message for another address: the stream ended %v, want it read to its end", err)
	}
	if l := log.await(t, ctx, DroppedMessages); !strings.Contains(l, "10.9.9.9:7000") || !strings.Contains(l, dropElsewhere) {
		t.Errorf("logged %s", l)
	}

	// actor.Terminated naming no actor: protoactor dereferences its Who.
	if err := send(n.Address(), "peer", one("actor.Terminated", &actor.PID{Address: n.Address(), Id: "x"})); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a message that makes protoactor panic: the stream ended %v, want InvalidArgument", err)
	}
	log.await(t, ctx, PanicEndedStream)
	if err := send(n.Address(), "peer", nil); err != nil {
		t.Errorf("after the panic, a connection ended %v: the node no longer serves", err)
	}

	if err := send(n.Address(), n.System.ID, nil); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a connection from the node itself: %v, want FailedPrecondition", err)
	}
	// Dialled by another name, the refusal names it (what the seeds
	// provider is then told; its own probes to such a seed are e2e's,
	// TestSeedIsItself: the node's endpoint writer would outlive this test,
	// and grpclog is shared by the tests of this process).
	alias := "localhost:" + port
	if err := send(alias, n.System.ID, nil); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a connection from the node itself, by another name: %v, want FailedPrecondition", err)
	}
	if l := log.await(t, ctx, "dialled="+alias); !strings.Contains(l, RefusedSelfStream) {
		t.Errorf("logged %s, want %q", l, RefusedSelfStream)
	}
}

// BenchmarkKeepAddressedHere: what the check costs a batch as a forwarded
// request's travels (one message, for here).
func BenchmarkKeepAddressedHere(b *testing.B) {
	const here = "10.0.0.5:7000"
	targets := []*actor.PID{{Address: here, Id: "partition-activator/session/abc$1"}}
	envelopes := []*remote.MessageEnvelope{{TypeId: 0, Target: 0, Sender: 1}}
	batch := &remote.MessageBatch{TypeNames: []string{"pingmcp.envelope.v1.Envelope"},
		Senders: []*actor.PID{{Address: "10.0.0.6:7000", Id: "replies"}}}
	b.ReportAllocs()
	for b.Loop() {
		batch.Targets, batch.Envelopes = targets, envelopes
		if n, _, _ := keepAddressedHere(batch, here); n != 0 {
			b.Fatal("dropped")
		}
	}
}

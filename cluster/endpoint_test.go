package cluster

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/logtest"
)

// A message to a node that is gone (nothing listens at its address) makes
// the endpoint writer try to connect once, then report the endpoint
// terminated: not five tries two seconds apart, each leaving a gRPC
// connection redialing the gone node.
func TestEndpointWriterTriesOnce(t *testing.T) {
	var logs logtest.Buffer
	n, err := Start(Config{Addr: "127.0.0.1:0", Provider: ProviderAutomanaged,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(false) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close()
	terminated := make(chan struct{}, 1)
	sub := n.System.EventStream.Subscribe(func(evt any) {
		if e, ok := evt.(*remote.EndpointTerminatedEvent); ok && e.Address == gone {
			select {
			case terminated <- struct{}{}:
			default:
			}
		}
	})
	defer n.System.EventStream.Unsubscribe(sub)
	n.System.Root.Send(actor.NewPID(gone, "nobody"), &envelope.Envelope{})
	select {
	case <-terminated:
	case <-time.After(30 * time.Second):
		t.Fatalf("the endpoint %s was not reported terminated:\n%s", gone, logs.String())
	}
	tries := 0
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "EndpointWriter failed to connect") && strings.Contains(line, gone) {
			tries++
		}
	}
	if tries != 1 {
		t.Fatalf("the endpoint writer tried %d times to connect to %s, want 1:\n%s", tries, gone, logs.String())
	}
}

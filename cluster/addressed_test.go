package cluster

import (
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

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
	dropped, to := keepAddressedHere(b, here)
	var kept []string
	for _, e := range b.Envelopes {
		kept = append(kept, string(e.MessageData))
	}
	if want := []string{"here", "probe", "here again"}; !slices.Equal(kept, want) {
		t.Errorf("kept %q, want %q", kept, want)
	}
	if dropped != 11 || to == "" {
		t.Errorf("dropped %d (for %q), want 11", dropped, to)
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
	if dropped, _ := keepAddressedHere(b, here); dropped != 0 || len(b.Envelopes) != 2 {
		t.Errorf("a batch for here: dropped %d, %d left", dropped, len(b.Envelopes))
	}
}

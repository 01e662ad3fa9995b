package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// stream returns a Stream fed by hand, without actors, for testing ordering.
func stream(window uint64) *Stream {
	return &Stream{id: "r", window: window, events: make(chan any, window+2), pending: map[uint64]*envelope.ResponsePart{}}
}

func part(seq uint64, final bool) *envelope.ResponsePart {
	return &envelope.ResponsePart{RequestId: "r", Seq: seq, Final: final}
}

func TestStreamReorders(t *testing.T) {
	s := stream(4)
	s.events <- part(1, false)
	s.events <- part(0, false)
	s.events <- part(2, true)
	for want := range uint64(3) {
		p, err := s.await(context.Background())
		if err != nil || p.Seq != want {
			t.Fatalf("part %d: got %v, %v", want, p, err)
		}
	}
}

func TestStreamRejectsReplayAndOverflow(t *testing.T) {
	s := stream(4)
	s.events <- part(0, false)
	if _, err := s.await(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.events <- part(0, false) // a duplicate
	if _, err := s.await(context.Background()); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("duplicate part: %v", err)
	}

	s = stream(2) // a gap never filled: more parts pending than the window allows
	for _, seq := range []uint64{1, 2, 3, 4} {
		s.events <- part(seq, false)
	}
	if _, err := s.await(context.Background()); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("gap: %v", err)
	}
}

func TestStreamActorGone(t *testing.T) {
	s := stream(4)
	s.events <- &actor.Terminated{}
	if _, err := s.await(context.Background()); !errors.Is(err, ErrActorGone) {
		t.Fatalf("got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := stream(4).await(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

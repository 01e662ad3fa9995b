package cluster

import (
	"cmp"
	"context"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pingmcp/pingmcp/telemetry"
)

// MisaddressedDropped is logged (at most five times a second) when a node
// drops messages a peer sent it for another address.
const MisaddressedDropped = "cluster messages for another address dropped"

// addressedHere is the stream interceptor of a node's cluster server: it
// sees each batch of messages a peer sends before protoactor's endpoint
// reader does, and keeps only what is addressed to this node.
//
// protoactor delivers a message that comes in for an address other than
// its node's own by sending it on to that address, as if it had been sent
// here. When that address is another name of this node (a seed given as
// localhost:7001 to a node that advertises 127.0.0.1:7001, a host name, an
// address behind NAT), the node sends the message to itself, receives it
// again for the same address, and so on for good: each membership probe to
// such a seed started one more message going round, and the node's CPU
// filled up while the seed never answered. So:
//
//   - a membership probe (the seeds provider's, to membershipActorName) for
//     any address is delivered here: whoever receives a probe is the node
//     that the address dialled reaches, and it answers as itself, under the
//     address it advertises, which the prober then learns;
//   - every other message for an address not this node's is dropped, and
//     logged (MisaddressedDropped): nothing is sent on;
//   - a batch that names a target, a sender or a type that it does not
//     hold loses the messages that do (protoactor would index out of its
//     arrays, and the panic would end the node), and so do messages of a
//     type this node does not know (a node of a later version, in a
//     rolling upgrade) or not encoded as protobuf (protoactor would
//     dereference the type it did not find, or index past its serializers);
//   - a connection from this node itself (the same actor system) is
//     refused: whatever name led it back here, nothing it carries is for
//     sending on.
func addressedHere(system *actor.ActorSystem, logger *slog.Logger) grpc.StreamServerInterceptor {
	dropped := &telemetry.Throttle{}
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &hereStream{ServerStream: ss, system: system, logger: logger, dropped: dropped})
	}
}

type hereStream struct {
	grpc.ServerStream
	system  *actor.ActorSystem
	logger  *slog.Logger
	dropped *telemetry.Throttle
}

func (s *hereStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	msg, ok := m.(*remote.RemoteMessage)
	if !ok {
		return nil
	}
	switch t := msg.MessageType.(type) {
	case *remote.RemoteMessage_ConnectRequest:
		if sc := t.ConnectRequest.GetServerConnection(); sc != nil && sc.SystemId == s.system.ID {
			s.logger.Warn("cluster connection from this node itself refused: another of its addresses led back here", "address", sc.Address)
			return status.Error(codes.FailedPrecondition, "a node does not connect to itself")
		}
	case *remote.RemoteMessage_MessageBatch:
		if n, to := keepAddressedHere(t.MessageBatch, s.system.Address()); n > 0 {
			if ok, suppressed := s.dropped.Allow(); ok {
				attrs := []any{"dropped", n, "for", to, "here", s.system.Address()}
				if suppressed > 0 {
					attrs = append(attrs, "suppressed", suppressed)
				}
				s.logger.Log(context.Background(), slog.LevelWarn, MisaddressedDropped, attrs...)
			}
		}
	}
	return nil
}

// protoSerializer is protoactor's serializer id of protobuf, the one every
// message between nodes is encoded with.
const protoSerializer = 0

// keepAddressedHere removes from b the messages not for here (this node's
// address), and those protoactor could not read without panicking,
// delivering membership probes here whatever their address; it returns how
// many it dropped and what one of them was for.
func keepAddressedHere(b *remote.MessageBatch, here string) (dropped int, to string) {
	ours := make([]bool, len(b.Targets))
	for i, t := range b.Targets {
		switch {
		case t == nil:
		case t.Address == here:
			ours[i] = true
		case t.Id == membershipActorName:
			t.Address, ours[i] = here, true
		default:
			to = t.Address
		}
	}
	known := make([]bool, len(b.TypeNames))
	for i, name := range b.TypeNames {
		_, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
		known[i] = err == nil
	}
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		switch {
		case e == nil, e.Target < 0 || int(e.Target) >= len(b.Targets), e.Sender < 0 || int(e.Sender) > len(b.Senders),
			e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames):
			dropped++
			to = cmp.Or(to, "(a batch that does not hold what it names)")
		case !known[e.TypeId] || e.SerializerId != protoSerializer:
			dropped++
			to = cmp.Or(to, "(a message of a type this node does not know: "+b.TypeNames[e.TypeId]+")")
		case !ours[e.Target]:
			dropped++
		default:
			kept = append(kept, e)
		}
	}
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
	return dropped, to
}

package cluster

import (
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pingmcp/pingmcp/telemetry"
)

// Lines a node logs (each at most five times a second) about what a peer
// sent it: messages it dropped (with the reason, and what they were for),
// a stream it ended because a message made protoactor panic, and a
// connection from itself it refused.
const (
	DroppedMessages   = "cluster messages dropped"
	PanicEndedStream  = "cluster stream ended: a message made protoactor panic"
	RefusedSelfStream = "cluster connection from this node itself refused"
)

// Why a message was dropped (DroppedMessages' reason).
const (
	dropElsewhere = "for another address"
	dropMalformed = "names a target, sender or type its batch does not hold"
	dropUnknown   = "of a type this node does not know, or not protobuf"
)

// addressedHere is the stream interceptor of a node's cluster server: it
// sees each batch of messages a peer sends before protoactor's endpoint
// reader does, and keeps only what is addressed to this node and what
// protoactor can take.
//
// protoactor delivers a message that comes in for an address other than
// its node's own by sending it on to that address, as if it had been sent
// here. When that address is another name of this node (a seed given as
// localhost:7001 to a node that advertises 127.0.0.1:7001, a host name, an
// address behind NAT), the node sends the message to itself, receives it
// again for the same address, and so on for good: each membership probe to
// such a seed started one more message going round, and the node's CPU
// filled up while the seed never answered. And it panics, ending the node,
// on messages it cannot read. So:
//
//   - a membership probe (the seeds provider's, to membershipActorName) for
//     any address is delivered here: whoever receives a probe is the node
//     that the address dialled reaches, and it answers as itself, under the
//     address it advertises, which the prober then learns;
//   - every other message for an address not this node's is dropped, and
//     logged (DroppedMessages): nothing is sent on;
//   - so are the messages of a batch that names a target, a sender or a
//     type that it does not hold (protoactor would index out of its
//     arrays), of a type this node does not know (a node of a later
//     version, in a rolling upgrade) or not encoded as protobuf (protoactor
//     would dereference the type it did not find, or index past its
//     serializers);
//   - a message of a known type that still makes protoactor panic as it
//     delivers it (a Terminated naming no actor, say) ends the stream, not
//     the node (PanicEndedStream): the peer's writer connects again;
//   - a connection from this node itself (the same actor system) is
//     refused (RefusedSelfStream), and onSelf, if set, is told the address
//     that led back here (the seeds provider stops probing it): nothing it
//     carries is for sending on.
func addressedHere(system *actor.ActorSystem, logger *slog.Logger, onSelf func(alias string)) grpc.StreamServerInterceptor {
	l := &wireLog{logger: logger}
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				l.log(&l.panics, PanicEndedStream, "panic", fmt.Sprint(p))
				err = status.Error(codes.InvalidArgument, "a message this node cannot take")
			}
		}()
		return handler(srv, &hereStream{ServerStream: ss, system: system, log: l, onSelf: onSelf})
	}
}

// wireLog throttles each kind of line of addressedHere's.
type wireLog struct {
	logger                  *slog.Logger
	dropped, panics, selves telemetry.Throttle
}

func (l *wireLog) log(t *telemetry.Throttle, msg string, attrs ...any) {
	t.Log(l.logger, slog.LevelWarn, msg, attrs...)
}

type hereStream struct {
	grpc.ServerStream
	system *actor.ActorSystem
	log    *wireLog
	onSelf func(alias string)
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
			var alias string
			if md, ok := metadata.FromIncomingContext(s.Context()); ok && len(md.Get(":authority")) > 0 {
				alias = md.Get(":authority")[0]
			}
			s.log.log(&s.log.selves, RefusedSelfStream, "dialled", alias, "here", s.system.Address())
			if s.onSelf != nil && alias != "" {
				s.onSelf(alias)
			}
			return status.Error(codes.FailedPrecondition, "a node does not connect to itself")
		}
	case *remote.RemoteMessage_MessageBatch:
		if n, why, what := keepAddressedHere(t.MessageBatch, s.system.Address()); n > 0 {
			s.log.log(&s.log.dropped, DroppedMessages, "dropped", n, "reason", why, "for", what, "here", s.system.Address())
		}
	}
	return nil
}

// protoSerializer is protoactor's serializer id of protobuf, the one every
// message between nodes is encoded with.
const protoSerializer = 0

// keepAddressedHere removes from b the messages not for here (this node's
// address), and those protoactor could not read without panicking,
// delivering membership probes here whatever their address. It returns
// how many it dropped, and why and what for the first of them.
func keepAddressedHere(b *remote.MessageBatch, here string) (dropped int, why, what string) {
	var oursBuf, knownBuf [8]bool // a batch names few targets and types
	ours, known := oursBuf[:0], knownBuf[:0]
	for _, t := range b.Targets {
		switch {
		case t == nil:
			ours = append(ours, false)
		case t.Address == here:
			ours = append(ours, true)
		case t.Id == membershipActorName:
			t.Address = here
			ours = append(ours, true)
		default:
			ours = append(ours, false)
		}
	}
	for _, name := range b.TypeNames {
		_, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
		known = append(known, err == nil)
	}
	drop := func(reason, about string) {
		if dropped == 0 {
			why, what = reason, about
		}
		dropped++
	}
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		switch {
		case e == nil, e.Target < 0 || int(e.Target) >= len(b.Targets), e.Sender < 0 || int(e.Sender) > len(b.Senders),
			e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames):
			drop(dropMalformed, "")
		case !known[e.TypeId] || e.SerializerId != protoSerializer:
			drop(dropUnknown, b.TypeNames[e.TypeId])
		case !ours[e.Target]:
			drop(dropElsewhere, b.Targets[e.Target].GetAddress())
		default:
			kept = append(kept, e)
		}
	}
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
	return dropped, why, what
}

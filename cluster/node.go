package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/pingmcp/pingmcp/internal/enum"
	"github.com/pingmcp/pingmcp/internal/loopback"
	"github.com/pingmcp/pingmcp/telemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Kinds of actors pingmcp places on the cluster.
const (
	// SessionKind is the actor of one MCP session (2025-03-26 … 2025-11-25),
	// keyed by its Mcp-Session-Id.
	SessionKind = "session"
	// PrincipalKind is the actor of one user (issuer, subject, client) for the
	// stateless 2026-07-28 protocol, keyed by a hash of the three.
	PrincipalKind = "principal"
)

// Role is what a node does in the cluster (--role).
type Role string

// Roles a node can take, in the order help and errors list them.
const (
	RoleBoth   Role = "both"   // serves /mcp and hosts actors
	RoleEdge   Role = "edge"   // serves /mcp, hosts no actors
	RoleMember Role = "member" // hosts actors, serves no /mcp
)

// Roles lists every Role.
var Roles = []Role{RoleBoth, RoleEdge, RoleMember}

func (r Role) String() string { return string(r) }

// ParseRole returns the Role named s, or an error listing the roles.
func ParseRole(s string) (Role, error) { return enum.Parse(s, Roles) }

// Provider is how a node learns the cluster's members (--cluster-provider).
type Provider string

// Providers of membership, in the order help and errors list them.
const (
	ProviderSingle      Provider = "single"      // a cluster of this node alone
	ProviderAutomanaged Provider = "automanaged" // seed addresses, probed (seeds.go)
	ProviderK8s         Provider = "k8s"         // the Kubernetes API (protoactor's k8s provider)
)

// Providers lists every Provider.
var Providers = []Provider{ProviderSingle, ProviderAutomanaged, ProviderK8s}

func (p Provider) String() string { return string(p) }

// ParseProvider returns the Provider named s, or an error listing the
// providers.
func ParseProvider(s string) (Provider, error) { return enum.Parse(s, Providers) }

// ErrNoMember means no member of the cluster can host the actor right now
// (none has joined yet, or all have left). It is transient: the edge answers
// 503 with Retry-After.
var ErrNoMember = errors.New("no cluster member can host the actor")

// ErrJoining means the node does not know its cluster's members yet: it
// serves nothing meanwhile, lest it place an actor where membership, once
// known, does not (a session lives on another node).
var ErrJoining = errors.New("joining the cluster: its members are not all known yet")

// Config is what a node needs to join the cluster.
type Config struct {
	// Name of the cluster; nodes with different names ignore each other.
	Name string
	// Addr is host:port the node's remote listens on. Port 0 picks one.
	Addr string
	// AdvertisedAddr is the host:port other nodes dial (a pod IP on
	// Kubernetes); Addr when empty.
	AdvertisedAddr string
	// Provider is how the node finds the others; empty is ProviderSingle.
	Provider Provider
	// Seeds are the cluster addresses of other nodes (ProviderAutomanaged).
	Seeds []string
	// Role is what the node does; empty is RoleBoth.
	Role Role
	// Kinds are the actor kinds this node hosts; empty for an edge.
	Kinds []*cluster.Kind
	// HTTPAddr is the node's HTTP listen address, reported to other nodes.
	HTTPAddr string
	// SharedStores says the actors' state outlives them in stores every
	// node reads (Redis): a member that serves no /mcp (RoleMember) then
	// hands back the activations whose identities membership gives to
	// another member, which rehydrates them, so that the members share
	// the load by identity. Every other node keeps them, registered with
	// the new owner (placement.go).
	SharedStores bool
	// ProbeInterval is how often the seeds provider asks each known node for
	// its view; a node that misses ProbeFailures answers in a row has left.
	ProbeInterval time.Duration
	ProbeFailures int
	// TLS, when set, makes every connection of the node's remote (to it and
	// from it) mutual TLS with the cluster's CA; nil is plaintext (config
	// refuses it without --cluster-insecure). A single node (ProviderSingle)
	// ignores it: it accepts no connection at all.
	TLS    *TLS
	Logger *slog.Logger
}

// Node is this process's place in the cluster.
type Node struct {
	cfg     Config
	System  *actor.ActorSystem
	Cluster *cluster.Cluster
	logger  *slog.Logger
	seeds   *seedsProvider // nil unless ProviderAutomanaged
	kube    *kubeRejoin    // nil unless ProviderK8s
	// stopping is closed as Stop begins.
	stopping chan struct{}
	stopOnce sync.Once
	replies  *replyRouter // sender of every request this node forwards through protoactor
	data     *dataPlane   // requests to other nodes and their answers; nil without TLS
	// place is the node's identity lookup; nil where a benchmark put
	// protoactor's in its place.
	place *placement
	// reach is what the node knows of members it had a sign are gone
	// (suspects.go).
	reach reachability

	mu   sync.Mutex
	pids *pidCache // kind/identity → activation, dropped when it terminates
	// topology is closed (and replaced) when membership changes.
	topology chan struct{}
	// members is our copy of the membership, taken from each topology
	// event: protoactor's MemberList hands out slices it keeps sorting.
	members []*cluster.Member
	// hosts lists, by kind, the addresses of the members hosting it,
	// taken with members (NewIdentity).
	hosts map[string][]string
	// handshakes bounds the cluster port's TLS handshakes in flight; nil
	// without TLS.
	handshakes *handshakeGate
}

// hostsByKind lists, by kind, the addresses of the members hosting it.
func hostsByKind(members []*cluster.Member) map[string][]string {
	hosts := map[string][]string{}
	for _, m := range members {
		for _, k := range m.Kinds {
			hosts[k] = append(hosts[k], m.Address())
		}
	}
	return hosts
}

// Addresses lists the members' cluster addresses.
func Addresses(ms []*cluster.Member) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Address())
	}
	return out
}

// gossipOff is a gossip interval so long that protoactor's gossip loop
// never ticks (about 146 years).
const gossipOff = time.Duration(math.MaxInt64)

// maxWireMessage bounds one gRPC message between nodes (a batch of envelopes).
const maxWireMessage = 256 << 20

// wireWindow is the flow-control window of each gRPC connection between
// nodes, and of its stream: fixed, so that gRPC does not estimate it from
// pings, which it asks of its peer on each message that arrives while none
// is outstanding. At one request at a time that is every message (the
// request, the part back): a ping and its answer, each written by one node
// and read by the other, waking it. 4 MiB holds the largest forwarded body
// (--max-body-bytes' default) and is below what gRPC's estimate may grow to
// (16 MiB).
const wireWindow = 4 << 20

// wireDialOptions are the options of a node's gRPC connections to other
// nodes (protoactor's endpoint writers), with creds.
func wireDialOptions(creds credentials.TransportCredentials) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithStaticStreamWindowSize(wireWindow), grpc.WithStaticConnWindowSize(wireWindow),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxWireMessage), grpc.MaxCallSendMsgSize(maxWireMessage))}
}

// Start starts the actor system and remoting and joins the cluster. It
// returns once the node is a member; other nodes may join later.
func Start(cfg Config) (*Node, error) {
	if cfg.Name == "" {
		cfg.Name = "pingmcp"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 500 * time.Millisecond
	}
	if cfg.ProbeFailures <= 0 {
		cfg.ProbeFailures = 3
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cluster address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("cluster address %q: port: %w", cfg.Addr, err)
	}

	// protoactor logs every topology change and activation at Info; keep
	// only its warnings, under our node's attributes.
	internal := slog.New(telemetry.Floor(cfg.Logger.Handler(), slog.LevelWarn)).With("component", "protoactor")
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return internal }))

	// A forwarded request carries a body of up to 4 MiB, and protoactor
	// batches messages into one gRPC message: gRPC's default 4 MiB limit
	// would drop the whole link to a node. The limits here bound one batch.
	//
	// Transport security: protoactor dials every other node in one place
	// (its endpoint writer, with these dial options, which replace its
	// default of plaintext) and serves on one gRPC server (with these
	// server options). Everything between nodes travels on those: cluster
	// gossip, placement, our membership probes (seeds.go) and forwarded
	// requests. So with cfg.TLS every connection is mutual TLS.
	//
	// protoactor's remote has two unary methods, ListProcesses and
	// GetProcessDiagnostics, whose server side is panic("implement me"):
	// one call would crash the node (gRPC does not recover handler
	// panics). Nodes only use the Receive stream; unary calls are refused.
	//
	// forgetSelf, set once the provider is known and before the server
	// starts, drops a seed that turned out to be this node (seeds.go).
	var forgetSelf func(alias string)
	serverOpts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxWireMessage), grpc.ConnectionTimeout(10 * time.Second),
		grpc.UnaryInterceptor(func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			return nil, status.Error(codes.Unimplemented, "not served")
		}),
		// What a peer sends is delivered here or dropped, never sent on
		// (addressed.go).
		grpc.StreamInterceptor(addressedHere(system, cfg.Logger.With("component", "cluster"), func(alias string) {
			if forgetSelf != nil {
				forgetSelf(alias)
			}
		}))}
	//
	// A single node has no peers: its remote refuses every connection
	// (noPeers), TLS files or not.
	var dialCreds credentials.TransportCredentials = insecure.NewCredentials()
	// dispatch takes the connections of the data plane (dataplane.go) once
	// the node is made.
	var dispatch atomic.Pointer[func(net.Conn)]
	var handshakes *handshakeGate
	single := cfg.Provider == ProviderSingle || cfg.Provider == ""
	switch {
	case single:
		refused := noPeers{log: &refusalLog{logger: cfg.Logger.With("component", "cluster"), msg: RefusedNoPeers}}
		serverOpts = append(serverOpts, grpc.Creds(refused))
		dialCreds = refused
	case cfg.TLS != nil:
		handshakes = newHandshakeGate(handshakesPerAddr, handshakesInFlight)
		serverOpts = append(serverOpts, grpc.Creds(cfg.TLS.serverCredentials(cfg.Logger.With("component", "cluster-tls"), &dispatch, handshakes)))
		dialCreds = cfg.TLS.clientCredentials()
	}
	serverOpts = append(serverOpts, grpc.StaticStreamWindowSize(wireWindow), grpc.StaticConnWindowSize(wireWindow))
	remoteOpts := []remote.ConfigOption{
		remote.WithServerOptions(serverOpts...),
		remote.WithDialOptions(wireDialOptions(dialCreds)...),
		remote.WithEndpointWriterBatchSize(32),
	}
	if cfg.AdvertisedAddr != "" {
		remoteOpts = append(remoteOpts, remote.WithAdvertisedHost(cfg.AdvertisedAddr))
	}
	remoteCfg := remote.Configure(host, port, remoteOpts...)
	// An endpoint writer that cannot connect tries once: protoactor's
	// writer sleeps 2 s between tries, holding every message to that
	// node meanwhile, and dials a new gRPC connection each try without
	// closing the one before (each left redialing a gone node for the
	// life of the process). Given up, the writer reports the endpoint
	// terminated (senders see their target gone at once, and membership
	// decides about the node) and closes its connection; the next message
	// to the node starts a new writer.
	remoteCfg.MaxRetryCount = 1

	n := &Node{cfg: cfg, System: system, logger: cfg.Logger, pids: newPIDCache(maxCachedPIDs), topology: make(chan struct{}), stopping: make(chan struct{}), handshakes: handshakes}
	if !single && cfg.TLS != nil {
		n.data = newDataPlane(n, cfg.TLS, cfg.Logger.With("component", "data-plane"))
		serve := n.data.serve
		dispatch.Store(&serve)
	}
	var provider cluster.ClusterProvider
	switch cfg.Provider {
	case ProviderSingle, "":
		provider = singleProvider{}
	case ProviderAutomanaged:
		n.seeds = newSeedsProvider(cfg)
		provider, forgetSelf = n.seeds, n.seeds.forgetSelf
	case ProviderK8s:
		p, err := k8s.New()
		if err != nil {
			return nil, fmt.Errorf("kubernetes provider: %w", err)
		}
		provider = p
		if n.kube, err = newKubeRejoin(cfg.Logger.With("component", "cluster"), n.stopping); err != nil {
			return nil, fmt.Errorf("kubernetes provider: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown cluster provider %q", cfg.Provider)
	}

	lookup := identityLookup()
	if n.place, _ = lookup.(*placement); n.place != nil {
		n.place.logger = cfg.Logger.With("component", "placement")
		n.place.handBack = cfg.Role == RoleMember && cfg.SharedStores
		n.place.suspect, n.place.tryingToReach = n.suspect, n.tryingToReach
	}
	clusterCfg := cluster.Configure(cfg.Name, provider, lookup, remoteCfg,
		cluster.WithKinds(cfg.Kinds...),
		cluster.WithRequestTimeout(10*time.Second),
	)
	// protoactor's gossip stays silent. Nothing here uses what it carries
	// (no pub-sub, no topology consensus); membership is the provider's. And
	// it would block, for good, every member whose gossip heartbeat it
	// missed for 20 s (HeartbeatExpiration), so that a node stalled that
	// long could never join again (membership takes such a node back:
	// seeds.go and kube.go).
	// Its graceful-leave notice is set as the actor system stops, too late
	// to be sent. Its loop ticks every GossipInterval: never, here.
	clusterCfg.GossipInterval = gossipOff
	n.Cluster = cluster.New(system, clusterCfg)
	// Subscribed before joining, so that the first topology is seen too.
	// Activations on a node that left are gone: forget them at once, so
	// that the next request asks the cluster for a new one.
	system.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*cluster.ClusterTopology); ok {
			if len(t.Left) > 0 {
				n.forgetNodes(t.Left, t.Members)
				if n.kube != nil {
					n.kube.topology(t, system.Address())
				}
			}
			if len(t.Joined) > 0 || len(t.Left) > 0 {
				// Operators see membership move (and a failure detector
				// suspecting live nodes under load).
				// (cfg.Logger: n.logger is set once the member started.)
				cfg.Logger.Info("cluster membership changed", "joined", Addresses(t.Joined), "left", Addresses(t.Left), "members", len(t.Members))
			}
			members := make([]*cluster.Member, 0, len(t.Members))
			for _, m := range t.Members {
				members = append(members, proto.Clone(m).(*cluster.Member))
			}
			hosts := hostsByKind(members)
			if n.data != nil && cfg.Role != RoleMember {
				// Linked as members join, so that the first request
				// forwarded to one (after a failover, say) waits for no
				// handshake.
				// (Here, not on a goroutine of its own: a member that
				// leaves later has its link closed after this.)
				for _, m := range t.Joined {
					if m.HasKind(SessionKind) && m.Address() != system.Address() {
						n.data.dialAhead(m.Address())
					}
				}
			}
			n.mu.Lock()
			n.members, n.hosts = members, hosts
			close(n.topology)
			n.topology = make(chan struct{})
			n.mu.Unlock()
		}
	})
	var afterStart func()
	if n.kube != nil {
		afterStart = n.kube.forgetMemberID()
	}
	if err := startMember(n.Cluster); err != nil {
		return nil, err
	}
	if afterStart != nil {
		afterStart()
	}
	n.logger = cfg.Logger.With("node", system.Address())
	switch {
	case single:
		n.logger.Info("single node: its cluster port accepts no connection")
	case cfg.TLS != nil:
		n.logger.Info("cluster connections use mutual TLS", "certificate", cfg.TLS.Subject(), "expires", cfg.TLS.NotAfter())
	case !loopback.Is(host) || (cfg.AdvertisedAddr != "" && !loopback.Is(cfg.AdvertisedAddr)):
		n.logger.Warn("cluster connections are plaintext on a non-loopback address: forwarded requests, bearer tokens included, cross the network unencrypted, and anyone who reaches the cluster port can join")
	default:
		n.logger.Warn("cluster connections are plaintext and unauthenticated (--cluster-insecure): any process on this host can join the cluster, act as any user and receive users' bearer tokens")
	}
	// An activation that terminated is not asked again: the next request
	// goes to the cluster for a new one instead of failing once first.
	n.replies, err = newReplyRouter(system, n.logger, func(w *watch) { n.forget(w.kind, w.identity, w.pid) })
	if err != nil {
		if n.data != nil {
			n.data.stop()
		}
		n.Cluster.Shutdown(false)
		return nil, err
	}
	return n, nil
}

// identityLookup makes the node's identity lookup (placement.go);
// benchmarks compare it with protoactor's disthash.
var identityLookup = func() cluster.IdentityLookup { return newPlacement() }

// startMember turns protoactor's panics on a failed start (a port in use,
// say) into an error.
func startMember(c *cluster.Cluster) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("start cluster member: %v", r)
		}
	}()
	c.StartMember()
	return nil
}

// Address is the node's cluster address, as other nodes dial it.
func (n *Node) Address() string { return n.System.Address() }

// Logger is the node's logger, with its address attached.
func (n *Node) Logger() *slog.Logger { return n.logger }

// Members lists the members of the cluster as this node sees them.
func (n *Node) Members() []*cluster.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members
}

// Ready reports why the node cannot serve yet, or nil. A node that forwards
// requests (edge or both) is ready once it knows the cluster's members
// (joined) and some member hosts sessions.
func (n *Node) Ready() error {
	if n.cfg.Role == RoleMember {
		return nil
	}
	if !n.joined() {
		return ErrJoining
	}
	for _, m := range n.Members() {
		if m.HasKind(SessionKind) {
			return nil
		}
	}
	return ErrNoMember
}

// joined says whether the node knows its cluster's members: with seeds,
// once it probed every node they named (seeds.go); with another provider,
// at once (protoactor's Kubernetes provider says nothing of a first full
// listing).
func (n *Node) joined() bool {
	if n.seeds == nil {
		return true
	}
	select {
	case <-n.seeds.known:
		return true
	default:
		return false
	}
}

// Stop leaves the cluster. Graceful stops let other nodes learn of the
// departure before the remote closes.
func (n *Node) Stop(graceful bool) {
	n.Drain()
	n.stopOnce.Do(func() { close(n.stopping) })
	if n.seeds != nil {
		n.seeds.stop()
	}
	n.replies.close()
	n.Cluster.Shutdown(graceful)
	// After the cluster's shutdown, which stops the node's actors: until
	// then its peers' requests still reach them (and those that are
	// stopping say so, so that they are sent again elsewhere).
	if n.data != nil {
		n.data.stop()
	}
	if !graceful {
		// The gossip loop (gossipOff) ends when told to, which only a
		// graceful shutdown does.
		n.Cluster.Gossip.Shutdown()
	}
}

// Drain tells the cluster's placement that this node is on its way out: it
// makes no more activations for other members, and asks for none here (its
// own identities' are still made here, to be refused retryably by the
// actors: see actors.Local).
func (n *Node) Drain() {
	if n.place != nil {
		n.place.refuse.Store(true)
	}
}

// StoreReachable says whether the node reaches the stores that keep its
// sessions (polled by its caller): while it does not, it takes no session
// it does not own (placement.go), nor draws sessions to it (Request.From),
// since it could not activate them.
func (n *Node) StoreReachable(ok bool) {
	if n.place != nil {
		n.place.noStore.Store(!ok)
	}
}

// activation returns the PID of the actor of kind/identity, activating it on
// its owner if needed. PIDs are cached until the actor terminates, so that a
// request costs no placement round trip.
//
// gone, if set, is an activation of kind/identity that a request found
// gone: the identity's owner is told, in case it still lists it.
func (n *Node) activation(ctx context.Context, kind, identity string, gone *actor.PID) (*actor.PID, error) {
	key := kind + "/" + identity
	n.mu.Lock()
	pid := n.pids.get(key)
	n.mu.Unlock()
	if pid != nil {
		return pid, nil
	}
	// The placement asks the owner's placement actor, with a 5 s timeout;
	// retry briefly while membership settles (a node just joined or left),
	// but not forever: a node cut off from every member answers 503.
	if !n.joined() {
		// Placed now, with this node alone in its view, the actor of a
		// session that lives on another node would be made here.
		n.logger.Debug("request waits for the cluster's members", "kind", kind)
		t := time.NewTimer(memberWait)
		select {
		case <-n.seeds.known:
		case <-ctx.Done():
		case <-n.stopping:
		case <-t.C:
		}
		t.Stop()
		if !n.joined() {
			return nil, ErrNoMember
		}
	}
	deadline := time.Now().Add(memberWait)
	for {
		pid = n.lookup(ctx, kind, identity, gone, deadline)
		if pid != nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, ErrNoMember
		}
		select {
		case <-ctx.Done():
			return nil, ErrNoMember
		case <-time.After(100 * time.Millisecond):
		}
	}
	n.mu.Lock()
	n.pids.put(key, pid)
	n.mu.Unlock()
	return pid, nil
}

// NewIdentity returns a new identity of kind made by mint (random), one
// that this node owns where it can: its activation, made where its first
// request arrived (here, placement.go), then has its directory entry here
// too, so that the session depends on this node alone, and its activation
// is made with no request to another member. Its owner is the member
// rendezvous hashing picks (placement.go): the identity is chosen to hash
// here, by drawing up to mintTries per member of kind (a miss is about
// e^-8 likely; the last one drawn is kept). A node that hosts no actor of
// kind (an edge) returns mint's first.
func (n *Node) NewIdentity(kind string, mint func() string) string {
	me := n.System.Address()
	n.mu.Lock()
	hosts := n.hosts[kind]
	n.mu.Unlock()
	id := mint()
	if len(hosts) < 2 || !slices.Contains(hosts, me) {
		return id
	}
	for range min(mintTries*len(hosts), maxMintTries) {
		if ownedHere(id, me, hosts) {
			return id
		}
		id = mint()
	}
	return id
}

// ownedHere says whether rendezvous hashing over hosts (me among them)
// puts id on me, as protoactor's cluster.Rendezvous does (each member's score the
// 32-bit FNV-1a of the identity then the member's address; the highest
// wins), without hashing for every member once one beats me: a draw that
// loses costs about two hashes, so that NewIdentity costs O(members), not
// O(members²). A tie counts as lost (protoactor breaks it by order).
func ownedHere(id, me string, hosts []string) bool {
	mine := rendezvousScore(id, me)
	if mine == 0 {
		return false // protoactor's highest score starts at 0
	}
	for _, h := range hosts {
		if h != me && rendezvousScore(id, h) >= mine {
			return false
		}
	}
	return true
}

// rendezvousScore is protoactor's rendezvous score of identity on the
// member at addr: FNV-1a (32 bits) of the identity's bytes then addr's.
func rendezvousScore(identity, addr string) uint32 {
	const prime = 16777619
	h := uint32(2166136261)
	for i := 0; i < len(identity); i++ {
		h = (h ^ uint32(identity[i])) * prime
	}
	for i := 0; i < len(addr); i++ {
		h = (h ^ uint32(addr[i])) * prime
	}
	return h
}

// Bounds of NewIdentity's draws: mintTries per member, at most maxMintTries
// (a cluster of more than 128 members places some new sessions elsewhere).
const (
	mintTries    = 8
	maxMintTries = 1024
)

// maxCachedPIDs bounds a generation of the PID cache (pidCache): an edge
// keeps at most twice as many activations.
const maxCachedPIDs = 1 << 16

// lookup asks the cluster for the activation of kind/identity. The
// placement (placement.go) asks the owner's placement actor and waits up to 5 s for an answer; when
// the owner is a node that just died, that is 5 s lost. So if membership
// changes while the question is out, lookup asks again under the new
// membership (the abandoned question ends by itself). It returns nil when
// there is no answer yet.
func (n *Node) lookup(ctx context.Context, kind, identity string, gone *actor.PID, deadline time.Time) *actor.PID {
	n.mu.Lock()
	changed := n.topology
	n.mu.Unlock()
	answer := make(chan *actor.PID, 1)
	go func() { answer <- n.get(kind, identity, gone) }()
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	select {
	case pid := <-answer:
		return pid
	case <-changed:
	case <-ctx.Done():
	case <-timeout.C:
	}
	return nil
}

// get asks the identity's owner for its activation. A node that hosts
// sessions asks for a session's to be made here if there is none
// (placement.go): the requests of the client that reached it then take no
// hop.
func (n *Node) get(kind, identity string, gone *actor.PID) *actor.PID {
	if n.place == nil {
		return n.Cluster.Get(identity, kind)
	}
	return n.place.get(cluster.NewClusterIdentity(identity, kind), n.hostsHere(kind), gone)
}

// hostsHere says whether this node would take the activation of an
// identity of kind that it does not own: a session's, on a node that hosts
// sessions and is not draining.
func (n *Node) hostsHere(kind string) bool {
	if kind != SessionKind || n.place == nil || n.place.declines() {
		return false
	}
	_, ok := n.Cluster.TryGetClusterKind(kind)
	return ok
}

// memberWait bounds how long a request waits for a node that can host its
// actor.
const memberWait = 10 * time.Second

func (n *Node) forget(kind, identity string, pid *actor.PID) {
	key := kind + "/" + identity
	n.mu.Lock()
	n.pids.forget(key, pid)
	n.mu.Unlock()
}

// forgetNodes drops the cached activations hosted by members that left, and
// closes the data plane's connections to those that left for good (not a
// node restarted at the same address, a member again).
func (n *Node) forgetNodes(left, members []*cluster.Member) {
	gone := map[string]bool{}
	for _, m := range left {
		gone[m.Address()] = true
	}
	n.mu.Lock()
	n.pids.forgetAddresses(gone)
	n.mu.Unlock()
	if n.data != nil {
		for _, m := range members {
			delete(gone, m.Address())
		}
		n.data.left(gone)
	}
}

// memberOf describes this node as a cluster member.
func memberOf(c *cluster.Cluster) (*cluster.Member, error) {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return nil, err
	}
	return &cluster.Member{Id: c.ActorSystem.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds()}, nil
}

// singleProvider is a cluster of one: this node.
type singleProvider struct{}

func (p singleProvider) StartMember(c *cluster.Cluster) error {
	self, err := memberOf(c)
	if err != nil {
		return err
	}
	c.MemberList.UpdateClusterTopology(cluster.Members{self})
	return nil
}
func (p singleProvider) StartClient(*cluster.Cluster) error { return errNoClients }
func (p singleProvider) Shutdown(bool) error                { return nil }

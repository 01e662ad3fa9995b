package cluster

import (
	"math/bits"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster/envelope"
)

// membershipActorName is the well-known actor every node of the seeds
// provider runs, answering MemberQuery on the cluster's own port.
const membershipActorName = "pingmcp-membership"

// seedsProvider is the "automanaged" membership: each node is given the
// cluster addresses of some others (its seeds), asks each node it knows for
// its view every ProbeInterval, and counts a node gone after ProbeFailures
// missed answers in a row.
//
// protoactor's own automanaged provider was not used: it needs a second HTTP
// port per node, bound to every interface whatever the cluster address, and
// polls with a fixed 2 s HTTP timeout. This one asks the same question over
// the remote the cluster already has, in an Envelope like every other message.
//
// protoactor's MemberList blocks, for good, the id of every member that
// leaves the topology a provider reports, and its remote then refuses every
// connection from that id. A node counted gone while alive (stopped, or
// starved of CPU, for a few probe intervals) would never be taken back, and
// would soon count this one gone too: two halves, until one restarts. So a
// peer is reported under an admission id, its process's id and a number
// this node draws each time it counts the peer in (MemberID undoes it):
// what protoactor blocks when the peer leaves is that admission, never the
// process, and a peer that answers again is admitted anew.
//
// Each admission that ends stays on protoactor's block list for the life of
// the process (about 50 bytes, and walked at every topology change), so a
// process that keeps being counted gone and back is damped: its first
// return within flapWindow is admitted at its first answer, each later one
// only after twice as many answers in a row as the last (capped at
// maxHoldAnswers: about a minute at the default probe interval). A restart
// is a new process, admitted at once.
type seedsProvider struct {
	cfg  Config
	done chan struct{}
	once sync.Once
	now  func() time.Time
	// known is closed once every node this one knows of was probed: its
	// seeds, and the nodes they named (see run).
	known chan struct{}

	mu         sync.Mutex
	self       *cluster.Member
	peers      map[string]*peer // by cluster address
	admissions uint64           // admission ids drawn so far
	flaps      map[string]flap  // by process id: its admissions that ended lately
}

type peer struct {
	member   *cluster.Member // as it last answered, under its own id; nil until then
	admitted string          // the id it is reported under while counted in; "" when not
	failures int             // probes missed in a row
	answers  int             // probes answered in a row while not counted in
	seed     bool
}

// flap is a process's admissions that ended within flapWindow of each
// other, and when the last one ended.
type flap struct {
	ends int
	last time.Time
}

const (
	// flapWindow is how long a process must stay counted in (or away)
	// for its earlier ends to be forgotten.
	flapWindow = 10 * time.Minute
	// maxHoldAnswers bounds the answers in a row a flapping process must
	// give before it is admitted again.
	maxHoldAnswers = 128
)

// admissionSep separates a process's id from the number of its admission
// in the ids the seeds provider reports; protoactor's ids (short UUIDs)
// never contain it.
const admissionSep = "#"

// MemberID is the id of the member's process: the id a provider reports,
// less the seeds provider's admission number.
func MemberID(m *cluster.Member) string {
	id, _, _ := strings.Cut(m.Id, admissionSep)
	return id
}

func newSeedsProvider(cfg Config) *seedsProvider {
	return &seedsProvider{cfg: cfg, done: make(chan struct{}), known: make(chan struct{}), now: time.Now, peers: map[string]*peer{},
		flaps: map[string]flap{}}
}

func (p *seedsProvider) StartMember(c *cluster.Cluster) error {
	self, err := memberOf(c)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.self = self
	for _, s := range p.cfg.Seeds {
		if s != "" && s != self.Address() {
			p.peers[s] = &peer{seed: true}
		}
	}
	p.mu.Unlock()

	props := actor.PropsFromFunc(func(ctx actor.Context) {
		if env, ok := ctx.Message().(*envelope.Envelope); ok && env.GetMemberQuery() != nil {
			p.heardOf(env.GetMemberQuery().GetFrom())
			ctx.Respond(&envelope.Envelope{Body: &envelope.Envelope_MemberInfo{MemberInfo: p.info()}})
		}
	})
	if _, err := c.ActorSystem.Root.SpawnNamed(props, membershipActorName); err != nil {
		return err
	}
	c.MemberList.UpdateClusterTopology(p.alive())
	go p.run(c)
	return nil
}

// joinRounds bounds the probe rounds a joining node makes at once, each
// asking nodes the last one learned of.
const joinRounds = 5

// probedAll says whether every node this one knows of is in probed.
func (p *seedsProvider) probedAll(probed map[string]bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a := range p.peers {
		if !probed[a] {
			return false
		}
	}
	return true
}

func (p *seedsProvider) StartClient(*cluster.Cluster) error {
	return errNoClients
}

func (p *seedsProvider) Shutdown(bool) error {
	p.stop()
	return nil
}

func (p *seedsProvider) stop() { p.once.Do(func() { close(p.done) }) }

func (p *seedsProvider) run(c *cluster.Cluster) {
	t := time.NewTicker(p.cfg.ProbeInterval)
	defer t.Stop()
	var reported string
	probed := map[string]bool{} // while joining
	waited := false
	for round := 1; ; round++ {
		asked := p.probeAll(c)
		// Only a change is reported: protoactor's MemberList goes through
		// its whole block list at each report, changed or not, and that list
		// only grows (an id for each admission that ended).
		ms := p.alive()
		if key := membersKey(ms); key != reported {
			c.MemberList.UpdateClusterTopology(ms)
			reported = key
		}
		// Joining, the node probes at once the nodes its seeds named, until
		// it probed every node it knows of (or joinRounds): its members are
		// then known, and it is ready (Node.Ready), not before. Alone then
		// (no seeds, or none answered), it waits one more interval: a
		// cluster that runs without it, which it restarted into, probes it
		// within that.
		select {
		case <-p.known:
		default:
			for _, a := range asked {
				probed[a] = true
			}
			switch {
			case !p.probedAll(probed) && round < joinRounds:
				select {
				case <-p.done:
					return
				default:
					continue
				}
			case len(ms) == 1 && !waited:
				waited = true
			default:
				close(p.known)
				clear(probed)
			}
		}
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
}

// probeAll asks every known node for its view, concurrently, each with the
// probe interval as its deadline, merges the answers, and returns the
// nodes it asked.
func (p *seedsProvider) probeAll(c *cluster.Cluster) []string {
	p.mu.Lock()
	p.forgetFlapsLocked()
	addrs := make([]string, 0, len(p.peers))
	for a := range p.peers {
		addrs = append(addrs, a)
	}
	p.mu.Unlock()

	type answer struct {
		addr string
		info *envelope.MemberInfo
	}
	answers := make(chan answer, len(addrs))
	query := &envelope.Envelope{Body: &envelope.Envelope_MemberQuery{MemberQuery: &envelope.MemberQuery{From: p.info().Self}}}
	for _, a := range addrs {
		go func() {
			res, err := c.ActorSystem.Root.RequestFuture(actor.NewPID(a, membershipActorName), query, p.cfg.ProbeInterval).Result()
			env, _ := res.(*envelope.Envelope)
			if err != nil || env.GetMemberInfo().GetSelf() == nil {
				answers <- answer{a, nil}
				return
			}
			answers <- answer{a, env.GetMemberInfo()}
		}()
	}
	for range addrs {
		ans := <-answers
		p.merge(ans.addr, ans.info)
	}
	return addrs
}

func (p *seedsProvider) merge(addr string, info *envelope.MemberInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.peers[addr]
	if pr == nil {
		return
	}
	if info == nil {
		pr.failures++
		pr.answers = 0
		if pr.admitted != "" && pr.failures >= p.cfg.ProbeFailures {
			pr.admitted = ""
			if p.countedLocked(pr.member.Id) == nil { // not still counted under another of its addresses
				p.endedLocked(pr.member.Id)
			}
		}
		if pr.failures >= p.cfg.ProbeFailures && !pr.seed {
			delete(p.peers, addr) // learned from others; they will tell us if it returns
		}
		return
	}
	returning := pr.member != nil && pr.member.Id == info.Self.Id
	if pr.member != nil && !returning {
		p.cfg.Logger.Info("cluster node restarted", "addr", addr, "old", pr.member.Id, "new", info.Self.Id)
		pr.admitted, pr.answers = "", 0
	}
	pr.member = toMember(info.Self)
	pr.failures = 0
	if pr.admitted == "" {
		if other := p.countedLocked(pr.member.Id); other != nil {
			// Counted in under another of its addresses: under the same
			// admission, so that what is reported does not change.
			pr.admitted, pr.answers = other.admitted, 0
		}
	}
	if pr.admitted == "" {
		pr.answers++
		switch hold := p.holdLocked(pr.member.Id); {
		case pr.answers >= hold:
			if returning {
				p.cfg.Logger.Info("cluster node answers again after counting as gone; admitted anew", "addr", addr, "id", pr.member.Id, "answers", pr.answers)
			}
			p.admissions++
			pr.admitted = pr.member.Id + admissionSep + strconv.FormatUint(p.admissions, 10)
			pr.answers = 0
		case pr.answers == 1:
			p.cfg.Logger.Warn("cluster node flaps: held out until it answers enough probes in a row", "addr", addr, "id", pr.member.Id, "answers", hold, "ends", p.flaps[pr.member.Id].ends)
		}
	}
	for _, m := range info.Members {
		p.addPeerLocked(m)
	}
}

// endedLocked records that the admission of the process id ended.
func (p *seedsProvider) endedLocked(id string) {
	now := p.now()
	f := p.flaps[id]
	if now.Sub(f.last) >= flapWindow {
		f.ends = 0
	}
	p.flaps[id] = flap{ends: f.ends + 1, last: now}
}

// holdLocked is how many answers in a row the process id must give to be
// admitted: 1, or after ends within flapWindow, 2^(ends-1) up to
// maxHoldAnswers.
func (p *seedsProvider) holdLocked(id string) int {
	f, ok := p.flaps[id]
	if !ok || p.now().Sub(f.last) >= flapWindow {
		return 1
	}
	return 1 << min(f.ends-1, bits.Len(maxHoldAnswers)-1)
}

// forgetFlapsLocked drops the records of processes that ended no admission
// within flapWindow.
func (p *seedsProvider) forgetFlapsLocked() {
	now := p.now()
	for id, f := range p.flaps {
		if now.Sub(f.last) >= flapWindow {
			delete(p.flaps, id)
		}
	}
}

// heardOf adds a node that asked for our view: it will be probed, and counted
// once it answers, like any other.
func (p *seedsProvider) heardOf(m *envelope.Member) {
	if m == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addPeerLocked(m)
}

func (p *seedsProvider) addPeerLocked(m *envelope.Member) {
	a := net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port)))
	if a == p.self.Address() {
		return
	}
	if _, known := p.peers[a]; !known {
		p.peers[a] = &peer{}
	}
}

// countedInLocked tells whether the peer is counted in: admitted, and it
// answered its last probes.
func (p *seedsProvider) countedInLocked(pr *peer) bool {
	return pr.admitted != "" && pr.failures < p.cfg.ProbeFailures
}

// countedLocked is a peer under which the process id is counted in, nil
// if none. A process reached under two addresses (a seed given as a name,
// then the address it advertises, learned from its answer) is two peers,
// probed each, counted in under one admission (the second adopts the
// first's) and reported once: what is reported does not change while
// either address answers, and the process's going is one end.
func (p *seedsProvider) countedLocked(id string) *peer {
	for _, pr := range p.peers {
		if p.countedInLocked(pr) && pr.member.Id == id {
			return pr
		}
	}
	return nil
}

// forgetSelf stops probing alias, an address that led back to this node
// (addressedHere saw the connection): a seed list given to every node
// names each node itself too.
func (p *seedsProvider) forgetSelf(alias string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, known := p.peers[alias]; known {
		delete(p.peers, alias)
		p.cfg.Logger.Info("cluster seed is this node itself: no longer probed", "addr", alias)
	}
}

// alive is what this node reports to protoactor: itself and, under their
// admission ids, the peers that answered their last probes, each process
// once.
func (p *seedsProvider) alive() cluster.Members {
	p.mu.Lock()
	defer p.mu.Unlock()
	ms := cluster.Members{p.self}
	reported := map[string]bool{}
	for _, pr := range p.peers {
		if p.countedInLocked(pr) && !reported[pr.admitted] {
			reported[pr.admitted] = true
			ms = append(ms, &cluster.Member{Id: pr.admitted, Host: pr.member.Host, Port: pr.member.Port, Kinds: pr.member.Kinds})
		}
	}
	slices.SortFunc(ms, func(a, b *cluster.Member) int { return strings.Compare(a.Address(), b.Address()) })
	return ms
}

// membersKey tells member lists apart: their ids and addresses, in order.
func membersKey(ms cluster.Members) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString(m.Id)
		b.WriteByte(' ')
		b.WriteString(m.Address())
		b.WriteByte('\n')
	}
	return b.String()
}

// info is this node's answer to a probe: itself and the members it counts,
// under their processes' ids (each node draws its own admissions).
func (p *seedsProvider) info() *envelope.MemberInfo {
	info := &envelope.MemberInfo{}
	for _, m := range p.alive() {
		em := fromMember(m)
		em.Id = MemberID(m)
		if m.Id == p.self.Id {
			em.Role = string(p.cfg.Role)
			em.HttpAddr = p.cfg.HTTPAddr
			info.Self = em
		}
		info.Members = append(info.Members, em)
	}
	return info
}

func toMember(m *envelope.Member) *cluster.Member {
	return &cluster.Member{Id: m.Id, Host: m.Host, Port: m.Port, Kinds: m.Kinds}
}

func fromMember(m *cluster.Member) *envelope.Member {
	return &envelope.Member{Id: m.Id, Host: m.Host, Port: m.Port, Kinds: m.Kinds}
}

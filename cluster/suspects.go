package cluster

import (
	"net"
	"sync"
	"time"
)

// A member whose host vanished (a pulled cable, a partition, a VM its
// hypervisor froze) stays listed while membership has not noticed: the
// automanaged provider drops it after its probes fail, within about 2 s;
// the Kubernetes provider only once the API server marks its pod unready,
// 40 to 50 s for a node that stops reporting. Meanwhile the identities it
// owns, and the activations it hosts, are where every request for them
// goes, and none is answered.
//
// So a node that has a sign that a member is gone (its data plane link to
// it ended without a goodbye or failed to be made, its placement actor did
// not answer, or another member says it finds it unreachable) tries to
// reach it: a TCP connection to its cluster port within reachTimeout. A
// host that is there answers that from its kernel, however busy its
// process; one that vanished does not (nor does a port nothing listens on:
// the process is gone). A member not reached counts, in this node's
// placement alone, as one that left (placement.setUnreachable): the
// identities it owned go to the other members, which make their
// activations anew from the shared stores. The node tells the other
// members, which each see for themselves. It tries again every reachAgain
// and counts the member back once reached; membership dropping the member
// ends it too.
//
// A wrong guess costs no state: a session's new activation takes a newer
// epoch, and the old one, should its host be alive after all, has its next
// write refused by the store and stops (actors/activation.go). It is done
// only with shared stores (Config.SharedStores): with each node's own
// memory there is nothing to activate anew from, and nothing to fence.
const (
	reachTimeout = 2 * time.Second
	reachAgain   = 5 * time.Second
)

// reachability is what the node knows of the reach of the members it had a
// sign of: the watch of each member being tried, or retried while counted
// unreachable (by generation: a watch whose member membership counts a
// member again, joined anew, is replaced by the next sign's), whose first
// try is under way, and when each was last reached (not tried again sooner
// than reachAgain).
type reachability struct {
	mu       sync.Mutex
	watching map[string]uint64
	first    map[string]bool
	reached  map[string]time.Time
	gen      uint64
}

// suspect tries to reach the member at addr, which this node has a sign is
// gone, unless its first try is under way, it is counted unreachable, or
// it was reached within reachAgain; it does not wait.
func (n *Node) suspect(addr string) {
	if n.place == nil || !n.cfg.SharedStores || addr == n.System.Address() {
		return
	}
	select {
	case <-n.stopping:
		return
	default:
	}
	if listed, unreachable := n.place.listedMember(addr); !listed || unreachable {
		return
	}
	r := &n.reach
	r.mu.Lock()
	if r.first[addr] || time.Since(r.reached[addr]) < reachAgain {
		r.mu.Unlock()
		return
	}
	if r.watching == nil {
		r.watching, r.first, r.reached = map[string]uint64{}, map[string]bool{}, map[string]time.Time{}
	}
	r.gen++
	gen := r.gen
	r.watching[addr], r.first[addr] = gen, true
	r.mu.Unlock()
	go n.watchReach(addr, gen)
}

// tryingToReach says whether this node is trying to reach the member at
// addr, having had a sign that it is gone, and has not found it
// unreachable yet.
func (n *Node) tryingToReach(addr string) bool {
	r := &n.reach
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first[addr]
}

// watchReach tries to reach addr, and if it cannot, counts it unreachable
// until it can, or membership no longer lists it or lists it anew, or the
// node stops, or a newer watch replaced this one (gen).
func (n *Node) watchReach(addr string, gen uint64) {
	r := &n.reach
	current := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.watching[addr] == gen
	}
	reached := func() {
		r.mu.Lock()
		r.reached[addr] = time.Now()
		for a, at := range r.reached {
			if time.Since(at) >= reachAgain {
				delete(r.reached, a)
			}
		}
		r.mu.Unlock()
	}
	defer func() {
		r.mu.Lock()
		if r.watching[addr] == gen {
			delete(r.watching, addr)
		}
		r.mu.Unlock()
	}()
	err := reach(addr)
	counted := err != nil && n.place.setUnreachable(addr, true)
	r.mu.Lock()
	delete(r.first, addr)
	r.mu.Unlock()
	if err == nil {
		reached()
		return
	}
	if !counted {
		return // left meanwhile
	}
	logger := n.cfg.Logger.With("node", n.System.Address())
	logger.Warn("a member listed by membership cannot be reached: this node places its sessions elsewhere until it can (fencing stops its activations should it be alive)",
		"member", addr, "err", err, "retry_every", reachAgain)
	// The others first: a lookup this wakes may reach another member
	// before word of it would, which would make an activation that the
	// member still owning the identity, as it sees membership, hands
	// back (messages from one node to another arrive in order).
	n.place.tellUnreachable(addr)
	n.mu.Lock()
	n.pids.forgetAddresses(map[string]bool{addr: true})
	n.mu.Unlock()
	n.membershipMoved()
	t := time.NewTicker(reachAgain)
	defer t.Stop()
	for {
		select {
		case <-n.stopping:
			return
		case <-t.C:
		}
		if listed, unreachable := n.place.listedMember(addr); !listed || !unreachable || !current() {
			return // left, or joined anew, or watched anew
		}
		if reach(addr) == nil {
			if n.place.setUnreachable(addr, false) {
				logger.Info("a member found unreachable is reached again: it places its sessions as membership does", "member", addr)
				n.membershipMoved()
			}
			reached()
			return
		}
	}
}

// reach makes a TCP connection to addr within reachTimeout, and closes it.
func reach(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, reachTimeout)
	if err != nil {
		return err
	}
	return conn.Close()
}

// membershipMoved wakes the lookups waiting for an answer (Node.lookup):
// they ask again as this node now sees membership.
func (n *Node) membershipMoved() {
	n.mu.Lock()
	close(n.topology)
	n.topology = make(chan struct{})
	n.mu.Unlock()
}

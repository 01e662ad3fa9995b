package admin

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	clusterpkg "github.com/asynkron/protoactor-go/cluster"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/state"
)

// nodeTimeout bounds how long the admin API waits for one node's answer.
const nodeTimeout = 2 * time.Second

// NodeInfo is one node of the cluster as the admin API shows it.
type NodeInfo struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Kinds   []string `json:"kinds"`
	Self    bool     `json:"self"`
	// From the node itself; Error says why they are missing.
	Role       string    `json:"role,omitempty"`
	Version    string    `json:"version,omitempty"`
	HTTPAddr   string    `json:"http_addr,omitempty"`
	Sessions   int       `json:"sessions"`
	Principals int       `json:"principals"`
	Draining   bool      `json:"draining"`
	Started    time.Time `json:"started,omitzero"`
	Error      string    `json:"error,omitempty"`
	// Route is how the node answering forwards requests to this one (see
	// cluster.RouteTo): local, data_plane, dialing, remote or none.
	Route string `json:"route"`
}

// ask sends q to every member at once and returns their answers (or
// errors) by address, waiting for them at most within.
func (a *api) ask(ctx context.Context, within time.Duration, addrs []string, q func(addr string) *envelope.NodeQuery) (map[string]*envelope.NodeStatus, map[string]error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	answers, errs := map[string]*envelope.NodeStatus{}, map[string]error{}
	for _, addr := range addrs {
		wg.Go(func() {
			st, err := a.opts.Node.Control(ctx, addr, q(addr))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[addr] = err
				return
			}
			answers[addr] = st
		})
	}
	wg.Wait()
	return answers, errs
}

// memberAddrs are the addresses of the cluster's members now.
func (a *api) memberAddrs() []string { return cluster.Addresses(a.members()) }

// members are the cluster's members now: none when the API serves no node
// (an embedder's, a test's).
func (a *api) members() []*clusterpkg.Member {
	if a.opts.Node == nil {
		return nil
	}
	return a.opts.Node.Members()
}

func (a *api) listNodes(w http.ResponseWriter, r *http.Request) {
	members := a.members()
	answers, errs := a.ask(r.Context(), nodeTimeout, cluster.Addresses(members), func(string) *envelope.NodeQuery { return &envelope.NodeQuery{} })
	out := []NodeInfo{}
	for _, m := range members {
		addr := m.Address()
		n := NodeInfo{ID: cluster.MemberID(m), Address: addr, Kinds: m.Kinds, Self: addr == a.opts.Node.Address(), Route: a.opts.Node.RouteTo(addr)}
		if st := answers[addr]; st != nil {
			n.Role, n.Version, n.HTTPAddr, n.Draining = st.Role, st.Version, st.HttpAddr, st.Draining
			n.Sessions, n.Principals = int(st.Sessions), int(st.Principals)
			n.Started = time.Unix(st.StartedUnix, 0).UTC()
		} else if err := errs[addr]; err != nil {
			n.Error = err.Error()
		}
		out = append(out, n)
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

// drainNode asks a member to drain: it refuses new work, hands its sessions
// over (they continue on the other nodes) and exits, as on SIGTERM.
func (a *api) drainNode(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	if !slices.Contains(a.memberAddrs(), addr) {
		writeError(w, http.StatusNotFound, "no such node: "+addr+" is not a member of the cluster (see GET /admin/v1/nodes)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
	defer cancel()
	st, err := a.opts.Node.Control(ctx, addr, &envelope.NodeQuery{Drain: true})
	if err != nil {
		writeError(w, http.StatusBadGateway, "the node could not be told to drain: "+err.Error())
		return
	}
	a.opts.Logger.Info("admin: node drain asked", "node", addr, "sessions", st.Sessions, "operator", OperatorOf(r.Context()).String())
	writeJSON(w, http.StatusAccepted, map[string]any{"address": addr, "draining": true, "sessions": st.Sessions, "principals": st.Principals})
}

// markLive tells which of the sessions have a live actor, on the node that
// last activated them (one question per node), with its epoch, open streams
// and requests in flight. A session whose node left is passivated.
func (a *api) markLive(ctx context.Context, sessions []state.SessionInfo) {
	if a.opts.Node == nil {
		return
	}
	byNode := map[string][]string{}
	for _, s := range sessions {
		if s.Node != "" {
			byNode[s.Node] = append(byNode[s.Node], s.ID)
		}
	}
	var addrs []string
	for _, m := range a.memberAddrs() {
		if byNode[m] != nil {
			addrs = append(addrs, m)
		}
	}
	if len(addrs) == 0 {
		return
	}
	answers, errs := a.ask(ctx, nodeTimeout, addrs, func(addr string) *envelope.NodeQuery { return &envelope.NodeQuery{Sessions: byNode[addr]} })
	for addr, err := range errs {
		a.opts.Logger.Warn("admin: a node did not say which sessions it hosts", "node", addr, "err", err)
	}
	for i := range sessions {
		s := &sessions[i]
		if st := answers[s.Node].GetLive()[s.ID]; st != nil {
			s.Live, s.Epoch, s.Streams, s.InFlight = true, st.Epoch, int(st.Streams), int(st.InFlight)
		}
	}
}

// stopSubject asks every member to stop the user's live actors; it returns
// how many stopped and the nodes that could not be asked.
func (a *api) stopSubject(ctx context.Context, issuer, subject string) (stopped int, unreached []string) {
	if a.opts.Node == nil {
		return 0, nil
	}
	q := &envelope.NodeQuery{StopSubject: &envelope.Subject{Issuer: issuer, Subject: subject}}
	answers, errs := a.ask(ctx, nodeTimeout, a.memberAddrs(), func(string) *envelope.NodeQuery { return q })
	for _, st := range answers {
		stopped += int(st.Stopped)
	}
	for addr, err := range errs {
		a.opts.Logger.Warn("admin: a node could not be told to stop a revoked user's actors", "node", addr, "err", err)
		unreached = append(unreached, addr)
	}
	return stopped, unreached
}

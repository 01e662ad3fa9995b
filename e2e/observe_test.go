package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/state"
)

// What the tests observe of a node, as an operator would: its admin API's
// sessions and nodes, and its Prometheus metrics. Every node startNode or
// runDev starts has an admin API with the token of adminTokenFile.

// noteAdmin records the node's admin API: the address its start line
// gives, and the token of the last --admin-token-file of args.
func (n *node) noteAdmin(args []string) {
	var rec struct{ Admin string }
	if json.Unmarshal([]byte(n.line(`"msg":"admin API started"`)), &rec) != nil || rec.Admin == "" {
		return
	}
	n.Admin = rec.Admin
	for i := len(args) - 2; i >= 0; i-- {
		if args[i] == "--admin-token-file" {
			b, err := os.ReadFile(args[i+1])
			if err != nil {
				n.t.Fatalf("%s: admin token: %v", n.name, err)
			}
			n.adminToken = strings.TrimSpace(string(b))
			return
		}
	}
}

// metric reads one sample of the node's /metrics, named as Prometheus'
// text format writes it (`pingmcp_activations_total{outcome="new"}`); 0
// when absent.
func (n *node) metric(ctx context.Context, name string) float64 {
	n.t.Helper()
	if n.Admin == "" {
		n.t.Fatalf("%s has no admin API to read %s from", n.name, name)
	}
	return scrape(n.t, ctx, "http://"+n.Admin+"/metrics", n.adminToken, name)
}

// awaitMetric waits until the node's metric is at least want, and returns
// its value then (less than want if ctx ended first): a metric may be
// counted just after the response that a test saw.
func (n *node) awaitMetric(ctx context.Context, name string, want float64) float64 {
	n.t.Helper()
	var got float64
	poll(ctx, func() bool {
		got = n.metric(ctx, name)
		return got >= want
	})
	return got
}

// session is what the node's admin API says of session id (found false
// for a 404): its owner, its node and epoch, whether it is live and its
// open GET streams.
func (n *node) session(ctx context.Context, id string) (info state.SessionInfo, found bool) {
	n.t.Helper()
	info, status, body := n.describe(ctx, id)
	if status != http.StatusOK && status != http.StatusNotFound {
		n.t.Fatalf("%s: session %s: %d %s", n.name, id, status, body)
	}
	return info, status == http.StatusOK
}

// describe asks the node's admin API for session id, and returns its
// answer.
func (n *node) describe(ctx context.Context, id string) (info state.SessionInfo, status int, body string) {
	n.t.Helper()
	if n.Admin == "" {
		n.t.Fatalf("%s has no admin API to describe session %s", n.name, id)
	}
	status, body, _ = adminCall(n.t, ctx, http.MethodGet, "http://"+n.Admin+"/admin/v1/sessions/"+id, n.adminToken)
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			n.t.Fatalf("%s: session %s: %v", n.name, id, err)
		}
	}
	return info, status, body
}

// sessions lists every session the node's admin API lists (at most 500).
func (n *node) sessions(ctx context.Context) []state.SessionInfo {
	n.t.Helper()
	return adminGet[struct{ Sessions []state.SessionInfo }](ctx, n, "/admin/v1/sessions?limit=500").Sessions
}

// nodes lists the cluster's members as the node's admin API shows them.
func (n *node) nodes(ctx context.Context) []admin.NodeInfo {
	n.t.Helper()
	return adminGet[struct{ Nodes []admin.NodeInfo }](ctx, n, "/admin/v1/nodes").Nodes
}

// adminGet reads the JSON answer to GET path of the node's admin API; an
// answer other than 200 fails the test.
func adminGet[T any](ctx context.Context, n *node, path string) T {
	n.t.Helper()
	if n.Admin == "" {
		n.t.Fatalf("%s has no admin API to GET %s from", n.name, path)
	}
	status, body, _ := adminCall(n.t, ctx, http.MethodGet, "http://"+n.Admin+path, n.adminToken)
	var out T
	if err := json.Unmarshal([]byte(body), &out); status != http.StatusOK || err != nil {
		n.t.Fatalf("%s: GET %s: %d %s", n.name, path, status, body)
	}
	return out
}

// id is the node's member id in the cluster: one per process, so a node
// restarted on the same address has a new one. It waits for the node to
// be a member of its cluster.
func (n *node) id(ctx context.Context) string {
	n.t.Helper()
	var id string
	if !poll(ctx, func() bool {
		for _, m := range n.nodes(ctx) {
			if m.Self {
				id = m.ID
			}
		}
		return id != ""
	}) {
		n.t.Fatalf("%s never was a member of its cluster", n.name)
	}
	return id
}

// host returns the one of nodes whose admin API shows session id live on
// itself: its actor is there. A session's snapshot may be written just
// after the answer a test saw, so it waits for one; nil if ctx ends first.
// It fails the test if several show it.
func host(t testing.TB, ctx context.Context, id string, nodes ...*node) *node {
	t.Helper()
	var found []*node
	poll(ctx, func() bool {
		found = nil
		for _, n := range nodes {
			if s, ok := n.session(ctx, id); ok && s.Live && s.Node == n.Cluster {
				found = append(found, n)
			}
		}
		return len(found) > 0
	})
	switch len(found) {
	case 0:
		return nil
	case 1:
		return found[0]
	}
	t.Errorf("session %s is live on both %s and %s", id, found[0].name, found[1].name)
	return found[0]
}

// Metrics the tests read.
const (
	// rehydrated counts the activations that rehydrated a session from
	// its snapshot.
	rehydrated = `pingmcp_activations_total{outcome="rehydrated"}`
	// liveSessions is the number of session actors live on a node.
	liveSessions = `pingmcp_live_actors{kind="session"}`
)

// awaitSession waits until what the node's admin API says of session id
// satisfies cond (found false for a 404; an answer that is neither, such
// as a 503 while the store is unreachable, is waited out), and returns it
// then; it fails the test, saying what, if ctx ends first.
func (n *node) awaitSession(ctx context.Context, id, what string, cond func(info state.SessionInfo, found bool) bool) state.SessionInfo {
	n.t.Helper()
	var info state.SessionInfo
	var status int
	var body string
	if !poll(ctx, func() bool {
		info, status, body = n.describe(ctx, id)
		return (status == http.StatusOK || status == http.StatusNotFound) && cond(info, status == http.StatusOK)
	}) {
		n.t.Fatalf("%s: session %s never %s (last: %d %s)", n.name, id, what, status, body)
	}
	return info
}

// scrape reads one sample of a node's /metrics (0 when absent).
func scrape(t testing.TB, ctx context.Context, url, token, name string) float64 {
	t.Helper()
	_, body, _ := adminCall(t, ctx, http.MethodGet, url, token)
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

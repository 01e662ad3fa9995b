package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// A cluster of pingmcp nodes keeps its sessions in a Redis Cluster of three
// masters with a replica each, writes confirmed by a replica
// (--redis-replicas 1). Under load, the master holding one session's keys
// is killed: its replica takes over, the killed node comes back as a
// replica, and no call fails. Nothing was lost: with the member that served
// the sessions killed too, a new member serves every one of them from the
// Redis Cluster, with its log level.
func TestRedisClusterFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	rc := redistest.StartCluster(t, 3, 1)
	durable := []string{"--redis-url", rc.URL(), "--redis-replicas", "1", "--state-keys", newStateKey(t)}
	edge := startNode(t, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, durable...)...)
	m1 := startNode(t, "member1", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, durable...)...)
	for _, n := range []*node{edge, m1} {
		n.awaitMembers(ctx, 2)
	}
	const sessions = 12
	var clients []*durableClient
	for range sessions {
		dc := connectDurable(t, ctx, edge.URL(), false, nil)
		if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, dc)
	}

	load := startLoad(t, ctx, clients)
	dead := rc.KillMasterOf(ctx, "pingmcp:session:{"+clients[0].cs.ID()+"}:snap")
	rc.Restart(ctx, dead)
	// Calls after the cluster healed: each session is served again.
	for i, dc := range clients {
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %d after the failover: %v", i, err)
		}
	}
	load.stop(t, "the failover of "+dead)

	m1.kill()
	m2 := startNode(t, "member2", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, durable...)...)
	for _, n := range []*node{edge, m2} {
		n.awaitMembers(ctx, 2)
	}
	for i, dc := range clients {
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Errorf("session %d on a new member after the failover: %v", i, err)
		}
		// Ended while member2 runs (its cleanup, registered last, runs first).
		if err := dc.cs.Close(); err != nil {
			t.Errorf("session %d: DELETE: %v", i, err)
		}
	}
}

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// TestConformanceThroughCluster runs the official MCP conformance suite
// (scripts/conformance.sh: 0.1.16, and 0.2.0-alpha.12 for both 2025-11-25 and
// 2026-07-28) against an edge-only node whose actors all live on another
// process, so that every request crosses nodes, with sessions and their
// events kept in Redis as in production (resumption replays from Redis). One
// URL serves both the session revisions and the stateless one. The tasks
// extension's scenarios (tasks-*), which the suite runs unscored, must pass
// too (scripts/conformance.sh).
func TestConformanceThroughCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	edge := startNode(t, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged", "--tools", "conformance", "--log-level", "info"}, durable...)...)
	member := startNode(t, "member", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster, "--tools", "conformance", "--log-level", "info"}, durable...)...)
	edge.awaitMembers(ctx, 2)
	member.awaitMembers(ctx, 2)

	results := os.Getenv("PINGMCP_CONFORMANCE_RESULTS")
	if results == "" {
		results = filepath.Join(t.TempDir(), "conformance")
	}
	script, err := filepath.Abs("../scripts/conformance.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", script, edge.URL(), results)
	out, err := cmd.CombinedOutput()
	t.Logf("conformance suite through %s → %s:\n%s", edge.name, member.name, out)
	if err != nil {
		t.Fatalf("conformance suite failed: %v (results in %s)", err, results)
	}
}

package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pingmcp/pingmcp/admin"
	"github.com/pingmcp/pingmcp/internal/certtest"
	"github.com/pingmcp/pingmcp/internal/redistest"
)

// TestRestartOnSameAddress: a member killed and started again at once on
// the same cluster address (a VM or StatefulSet restart) serves its sessions
// again: the others must not keep the dead incarnation's connection.
func TestRestartOnSameAddress(t *testing.T) {
	t.Run("plaintext", func(t *testing.T) { restartOnSameAddress(t, func() []string { return []string{"--cluster-insecure"} }) })
	t.Run("mtls", func(t *testing.T) {
		ca := certtest.NewCA(t, "cluster CA")
		n := 0
		restartOnSameAddress(t, func() []string { n++; return ca.Node(t, fmt.Sprintf("node-%d", n)).Args() })
	})
}

func restartOnSameAddress(t *testing.T, certs func() []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	rdb := redistest.Start(t)
	durable := durableArgs(rdb.Options().Addr, newStateKey(t))
	aHTTP, aClust, bHTTP, bClust := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	a := startNode(t, "same-a", append(append([]string{"--addr", aHTTP, "--cluster-addr", aClust, "--cluster-provider", "automanaged"}, certs()...), durable...)...)
	b := startNode(t, "same-b", append(append([]string{"--addr", bHTTP, "--cluster-addr", bClust, "--cluster-seeds", aClust}, certs()...), durable...)...)
	a.awaitMembers(ctx, 2)
	b.awaitMembers(ctx, 2)
	var clients []*durableClient
	for i := range 8 {
		dc := connectDurable(t, ctx, []*node{a, b}[i%2].URL(), false, nil)
		if err := dc.cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.callLogging(t, ctx); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		clients = append(clients, dc)
	}
	// a counts 2 members throughout when it never saw b leave: what says
	// it has taken in b's new incarnation is its list of nodes naming b's
	// new member id. Until then a request through a may be cut when a
	// drops the dead incarnation's endpoint, which has b's address too.
	for round := range 2 {
		b.kill()
		b = startNode(t, "same-b-again", append(append([]string{"--addr", bHTTP, "--cluster-addr", bClust, "--cluster-seeds", aClust}, certs()...), durable...)...)
		incarnation := b.id(ctx)
		if !poll(ctx, func() bool {
			return slices.ContainsFunc(a.nodes(ctx), func(m admin.NodeInfo) bool { return m.ID == incarnation })
		}) {
			t.Fatalf("round %d: a never saw b's new incarnation join", round)
		}
		a.awaitMembers(ctx, 2)
		b.awaitMembers(ctx, 2)
		for i, dc := range clients {
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			_, err := dc.callLogging(t, cctx)
			ccancel()
			if err != nil {
				t.Fatalf("round %d: session %d after b came back on its address: %v", round, i, err)
			}
		}
	}
}

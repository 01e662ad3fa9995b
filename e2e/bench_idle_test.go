package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkIdleCluster measures what a cluster with no client costs each
// node: membership probes and whatever else runs between nodes. One
// iteration is a second of idleness; it reports each node's CPU
// (cpu-ms/s/node) and read and write system calls (io-calls/s/node) per
// second, summed over the nodes and divided by their number.
//
//	go test -c -o e2e.test ./e2e && cd e2e && ../e2e.test -test.run '^$' -test.bench IdleCluster -test.benchtime 20x
func BenchmarkIdleCluster(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("n%d", n), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			first := startNode(b, "idle-0", slices.Concat([]string{"--cluster-insecure", "--cluster-provider", "automanaged"}, benchLogLevel)...)
			s := &benchServer{nodes: []*node{first}}
			for i := 1; i < n; i++ {
				s.nodes = append(s.nodes, startNode(b, fmt.Sprintf("idle-%d", i), slices.Concat([]string{"--cluster-insecure", "--cluster-seeds", first.Cluster}, benchLogLevel)...))
			}
			for _, nd := range s.nodes {
				nd.awaitMembers(ctx, n)
			}
			before := s.usage(b)
			start := time.Now()
			b.ResetTimer()
			for range b.N {
				time.Sleep(time.Second) // what is measured: a second of idleness
			}
			b.StopTimer()
			elapsed := time.Since(start).Seconds()
			all := sumUsage(s.usedSince(b, before))
			perNode := func(v float64) float64 { return v / elapsed / float64(n) }
			b.ReportMetric(perNode(float64(all.cpu)/float64(time.Millisecond)), "cpu-ms/s/node")
			b.ReportMetric(perNode(float64(all.ioCalls)), "io-calls/s/node")
			b.ReportMetric(0, "ns/op")
		})
	}
}

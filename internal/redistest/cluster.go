package redistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of redis-server processes on loopback: masters
// sharing the 16384 slots evenly, each with its replicas, and a short node
// timeout so that a replica takes over a dead master within seconds.
type Cluster struct {
	t     testing.TB
	nodes []*clusterNode
}

type clusterNode struct {
	addr string
	port int
	dir  string
	bin  string
	proc *process
}

// NodeTimeout is how long the cluster waits for a silent master before a
// replica of it takes over.
const NodeTimeout = 2 * time.Second

// StartCluster runs a Redis Cluster of masters masters with replicas
// replicas each, built with the CLUSTER commands (no redis-cli), and waits
// until every node says the cluster is ok. It stops with the test.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; the Redis store tests run a real one. Install it (Debian: apt-get install -y redis-server). %v", err)
	}
	c := &Cluster{t: t}
	for range masters * (1 + replicas) {
		c.nodes = append(c.nodes, startClusterNode(t, bin))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clients := make([]*redis.Client, len(c.nodes))
	ids := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.addr})
		defer clients[i].Close()
		if ids[i], err = clients[i].ClusterMyID(ctx).Result(); err != nil {
			t.Fatalf("cluster node %s: %v", n.addr, err)
		}
	}
	for i := 1; i < len(c.nodes); i++ {
		host, port, _ := net.SplitHostPort(c.nodes[i].addr)
		if err := clients[0].ClusterMeet(ctx, host, port).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", c.nodes[i].addr, err)
		}
	}
	const slots = 16384
	for m := range masters {
		lo, hi := m*slots/masters, (m+1)*slots/masters-1
		if err := clients[m].ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", c.nodes[m].addr, err)
		}
	}
	// A replica can follow its master once it knows it.
	for i := masters; i < len(c.nodes); i++ {
		master := (i - masters) % masters
		await(t, ctx, fmt.Sprintf("%s to know its master %s", c.nodes[i].addr, c.nodes[master].addr), func() bool {
			nodes, err := clients[i].ClusterNodes(ctx).Result()
			return err == nil && strings.Contains(nodes, ids[master])
		})
		if err := clients[i].ClusterReplicate(ctx, ids[master]).Err(); err != nil {
			t.Fatalf("CLUSTER REPLICATE on %s: %v", c.nodes[i].addr, err)
		}
	}
	for i, cl := range clients {
		await(t, ctx, c.nodes[i].addr+" to see the cluster ok", func() bool {
			info, err := cl.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.nodes))+"\r\n")
		})
	}
	for i := masters; i < len(c.nodes); i++ {
		await(t, ctx, c.nodes[i].addr+" to be in sync with its master", func() bool {
			info, err := clients[i].Info(ctx, "replication").Result()
			return err == nil && strings.Contains(info, "master_link_status:up")
		})
	}
	return c
}

// await polls cond until it holds, failing the test when ctx ends first.
func await(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("redis cluster: waited in vain for %s", what)
		case <-tick.C:
		}
	}
}

// startClusterNode runs one cluster-enabled redis-server on a free port
// whose cluster bus port (port+10000) is free too.
func startClusterNode(t testing.TB, bin string) *clusterNode {
	t.Helper()
	var lastLog string
	for range 10 {
		port := 20000 + rand.IntN(25000)
		if !free(port) || !free(port+10000) {
			continue
		}
		n := &clusterNode{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, dir: t.TempDir(), bin: bin}
		p, log, ok := n.run(t)
		if ok {
			n.proc = p
			t.Cleanup(func() {
				if n.proc != nil {
					n.proc.kill()
				}
			})
			return n
		}
		lastLog = log
	}
	t.Fatalf("cluster redis-server did not start; its output:\n%s", lastLog)
	return nil
}

// run starts the node's redis-server, from its cluster configuration file
// if it ran before.
func (n *clusterNode) run(t testing.TB) (*process, string, bool) {
	return run(t, n.bin, n.port, n.dir, false, "--cluster-enabled", "yes", "--cluster-config-file", n.dir+"/nodes.conf",
		"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout.Milliseconds())))
}

// Restart starts a node that was killed again, on its address: it rejoins
// the cluster from its configuration file (a master that lost its slots
// meanwhile as a replica of the one that took them), and Restart waits
// until it is in sync with its master.
func (c *Cluster) Restart(ctx context.Context, addr string) {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.addr != addr || n.proc != nil {
			continue
		}
		p, log, ok := n.run(c.t)
		if !ok {
			c.t.Fatalf("cluster node %s did not start again:\n%s", addr, log)
		}
		n.proc = p
		cl := redis.NewClient(&redis.Options{Addr: addr})
		defer cl.Close()
		await(c.t, ctx, addr+" to be a replica in sync again", func() bool {
			info, err := cl.Info(ctx, "replication").Result()
			return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up")
		})
		return
	}
	c.t.Fatalf("no stopped cluster node at %s", addr)
}

func free(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Addrs are the addresses of every node, masters first.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// URL is the cluster's go-redis URL, naming every node.
func (c *Cluster) URL() string {
	u := "redis://" + c.nodes[0].addr
	for i, n := range c.nodes[1:] {
		if i == 0 {
			u += "?"
		} else {
			u += "&"
		}
		u += "addr=" + n.addr
	}
	return u
}

// Client is a cluster client of the test, closed with it.
func (c *Cluster) Client() *redis.ClusterClient {
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	c.t.Cleanup(func() { client.Close() })
	return client
}

// KillMasterOf kills the master serving key (SIGKILL: nothing of it is
// written) and waits until a replica has taken its slots over and every
// other node sees the cluster ok again. It returns the dead master's
// address.
func (c *Cluster) KillMasterOf(ctx context.Context, key string) string {
	c.t.Helper()
	probe := c.Client()
	master, err := probe.MasterForKey(ctx, key)
	if err != nil {
		c.t.Fatalf("master of %q: %v", key, err)
	}
	dead := master.Options().Addr
	for _, n := range c.nodes {
		if n.addr == dead {
			n.proc.kill()
			n.proc = nil
		}
	}
	for _, n := range c.nodes {
		if n.proc == nil {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.addr})
		await(c.t, ctx, n.addr+" to see the cluster ok after "+dead+" died", func() bool {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			slots, err := cl.ClusterSlots(ctx).Result()
			if err != nil {
				return false
			}
			for _, s := range slots {
				if len(s.Nodes) > 0 && s.Nodes[0].Addr == dead {
					return false
				}
			}
			return true
		})
		cl.Close()
	}
	return dead
}

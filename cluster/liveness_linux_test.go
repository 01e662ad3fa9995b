package cluster

import (
	"crypto/tls"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sockopts reads the liveness options of conn's socket.
func sockopts(t *testing.T, conn net.Conn) map[string]int {
	t.Helper()
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	raw.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{
			"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
			"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
			"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
			"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
			"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
		} {
			v, err := unix.GetsockoptInt(int(fd), opt[0], opt[1])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got[name] = v
		}
	})
	return got
}

// Both ends of a link carry its liveness: keep-alive probes after 5 s idle,
// every 5 s, 3 unanswered; and 20 s for sent bytes to be acknowledged.
func TestDataPlaneLinkLiveness(t *testing.T) {
	n, _, _ := dataNode(t)
	l := selfLink(t, n)
	n.data.mu.Lock()
	var peer *edgePeer
	for p := range n.data.peers {
		peer = p
	}
	n.data.mu.Unlock()
	if peer == nil {
		t.Fatal("the member's end of the link is not among its peers")
	}
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 5, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 20000}
	for end, conn := range map[string]net.Conn{"the edge's": l.conn, "the member's": peer.conn} {
		got := sockopts(t, conn)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s end of the link: %s = %d, want %d", end, k, got[k], v)
			}
		}
	}
}

package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"syscall"
	"time"
)

// A data plane link's TCP connection says, on both ends, when its peer is
// gone although nothing closed it: the peer's host vanished, or the path
// between drops everything (a partition, a middlebox that forgot the
// connection). Membership may list the node for a while yet (the
// Kubernetes provider, until the API server marks its pod), and without
// these the kernel keeps the connection for about 15 minutes of
// retransmissions: the streams on it, and the requests sent on it, wait
// as long. With them the link ends within about 20 s, its streams end
// as when their actors terminate (the edge answers or cuts them, their
// clients retry or resume), and the next request makes a new link.
//   - Idle: keep-alive probes after dataKeepAlive.Idle, every
//     dataKeepAlive.Interval, dataKeepAlive.Count unanswered ones.
//   - Data in flight: TCP_USER_TIMEOUT, how long sent bytes may stay
//     unacknowledged.
//
// Both are set by their Linux names (liveness_linux.go); elsewhere the
// kernel's defaults stand.
//
// Both count the peer's kernel, not its process: a busy node acknowledges
// in time. Neither puts a byte of the data plane's own on the wire, so
// nodes of older builds take part unchanged.
var (
	dataKeepAlive   = net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 3}
	dataUserTimeout = 20 * time.Second
)

// keepLive sets a data plane connection's liveness (dataKeepAlive,
// dataUserTimeout), on the socket under its TLS (and under gRPC's wrapper,
// on a member's end).
func keepLive(conn net.Conn) error {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("a %T has no socket to set", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	return setLiveness(raw, dataKeepAlive, dataUserTimeout)
}

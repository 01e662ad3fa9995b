package cluster

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// setLiveness sets keep-alive probes as ka says, and TCP_USER_TIMEOUT (how
// long bytes sent may stay unacknowledged before the kernel ends the
// connection) to user, on the socket of raw.
func setLiveness(raw syscall.RawConn, ka net.KeepAliveConfig, user time.Duration) error {
	opts := [][3]int{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(ka.Idle / time.Second)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(ka.Interval / time.Second)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, ka.Count},
		{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(user / time.Millisecond)},
	}
	var serr error
	err := raw.Control(func(fd uintptr) {
		for _, o := range opts {
			if serr = unix.SetsockoptInt(int(fd), o[0], o[1], o[2]); serr != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

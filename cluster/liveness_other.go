//go:build !linux

package cluster

import (
	"net"
	"syscall"
	"time"
)

// setLiveness does nothing here: the options are set by their Linux
// names, and pingmcp's clusters run on Linux. (A laptop's cluster of
// processes on loopback has no path to lose.)
func setLiveness(syscall.RawConn, net.KeepAliveConfig, time.Duration) error { return nil }

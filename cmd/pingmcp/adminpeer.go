package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// tokenReaders are the users who may read the admin token the CLI holds
// anyway, so that a process of theirs may be sent it: this user, root
// (who reads every file and every process's memory), and the owner of the
// file the token was read from (who may chmod it and read it).
type tokenReaders struct {
	self uint32
	// file is the token's file and its owner's uid (file "": the token
	// came from the environment).
	file  string
	owner int64
}

func (t tokenReaders) allow(uid uint32) bool {
	return uid == 0 || uid == t.self || t.file != "" && t.owner >= 0 && int64(uid) == t.owner
}

// peerRefused is a connection the CLI opened and closed without sending
// anything on it: the process at its other end, on this host, is not one
// of tokenReaders', or cannot be told.
type peerRefused struct {
	addr    netip.AddrPort
	uid     uint32
	readers tokenReaders
	err     error // why the owner cannot be told (uid is then unset)
}

func (e *peerRefused) Error() string {
	if e.err != nil {
		return fmt.Sprintf("the admin token was not sent to %s: who holds that address on this host cannot be told (%v); "+
			"a node behind a NAT rule is reached at its own address", e.addr, e.err)
	}
	who := fmt.Sprintf("not this user's (uid %d) nor root's", e.readers.self)
	if e.readers.file != "" && e.readers.owner >= 0 {
		who = fmt.Sprintf("not this user's (uid %d), root's, nor that of the owner of %s (uid %d)", e.readers.self, e.readers.file, e.readers.owner)
	}
	return fmt.Sprintf("the admin token was not sent to %s: the process that holds that address is another local user's (uid %d), %s. "+
		"Where no node listens, any local user may take its port and be handed the token: check that the node runs there; "+
		"if it runs as another user, run this command as that user, or give --admin-token-file a file that user owns", e.addr, e.uid, who)
}

// guardedTransport is the transport of the admin CLI's calls to a plain
// http URL: each connection it opens to a process of this host (on a
// loopback address, or on one of the host's own) is checked to be held
// by one of readers' before anything is sent on it (checkPeer). An https
// URL authenticates its server, and needs no such check. A URL of this
// host is never reached through the environment's HTTP proxy
// (directProxy): the proxy would hand the token on to whoever holds the
// address, and the check would see only the proxy.
func guardedTransport(readers tokenReaders) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if peerOwnersChecked {
		t.Proxy = directProxy
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := readers.checkPeer(conn); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	return t
}

// directProxy is http.ProxyFromEnvironment, but for a URL whose host is
// this host (servedHere), which is dialled directly so that checkPeer sees
// the process holding its address. Go's own rule leaves out loopback
// addresses and "localhost" alone, not the host's other addresses, nor a
// name of it.
func directProxy(r *http.Request) (*url.URL, error) {
	if servedHere(r.Context(), r.URL.Hostname()) {
		return nil, nil
	}
	return http.ProxyFromEnvironment(r)
}

// servedHere reports whether host (an address, or a name as it resolves
// here) is one of this host's: a loopback or unspecified address, or an
// address of one of its interfaces. A name that does not resolve here is
// not.
func servedHere(ctx context.Context, host string) bool {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	} else if addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
		return false
	}
	own, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if a.IsLoopback() || a.IsUnspecified() {
			return true
		}
		for _, o := range own {
			if n, ok := o.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
					return true
				}
			}
		}
	}
	return false
}

// checkPeer refuses conn unless the process at its other end, if it is
// one of this host's, is one of readers' (on Linux, by /proc/net/tcp:
// peerOwners; elsewhere it is not checked). A connection to another host
// is not looked at.
func (readers tokenReaders) checkPeer(conn net.Conn) error {
	if !peerOwnersChecked {
		return nil
	}
	l, lok := conn.LocalAddr().(*net.TCPAddr)
	r, rok := conn.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		return nil
	}
	local, remote := unmapAddrPort(l.AddrPort()), unmapAddrPort(r.AddrPort())
	// A connection to an address of this host comes from that address.
	if !remote.Addr().IsLoopback() && remote.Addr() != local.Addr() {
		return nil
	}
	uids, err := peerOwners(local, remote)
	if err != nil {
		return &peerRefused{addr: remote, readers: readers, err: err}
	}
	for _, uid := range uids {
		if !readers.allow(uid) {
			return &peerRefused{addr: remote, uid: uid, readers: readers}
		}
	}
	return nil
}

func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// selfReaders are the token's readers for a token from the environment.
func selfReaders() tokenReaders {
	return tokenReaders{self: uint32(os.Geteuid()), owner: -1}
}

package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// peerOwnersChecked says whether this system tells who holds a local
// connection's other end (peerOwners).
const peerOwnersChecked = true

// procNetTCP are the kernel's tables of this network namespace's TCP
// sockets, IPv4 and IPv6 (variables for the tests).
var procNetTCP = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// TCP states of /proc/net/tcp's st column (include/net/tcp_states.h).
const (
	tcpTimeWait = 0x06
	tcpListen   = 0x0A
)

// peerOwners returns the uids of the sockets of this host that may hold
// the other end of a TCP connection from local to remote, an address of
// this host, as /proc/net/tcp and /proc/net/tcp6 tell: the socket
// connected to local (its listener's owner until a process accepts it,
// then the accepting process's user), or, if the kernel keeps none for it
// yet, every socket listening on remote's port that could have taken the
// connection (on remote's address, or on every address). None found: an
// error, as when the tables cannot be read.
func peerOwners(local, remote netip.AddrPort) ([]uint32, error) {
	local, remote = unmapAddrPort(local), unmapAddrPort(remote)
	var listeners []uint32
	for i, path := range procNetTCP {
		f, err := os.Open(path)
		if i > 0 && errors.Is(err, fs.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			s, ok := parseSocketLine(sc.Text())
			if !ok {
				continue
			}
			switch {
			case s.state == tcpListen:
				if s.local.Port() == remote.Port() && (s.local.Addr() == remote.Addr() || s.local.Addr().IsUnspecified()) {
					listeners = append(listeners, s.uid)
				}
			case s.state == tcpTimeWait:
				// What a closed socket left: no process, and uid 0.
			case s.local == remote && s.remote == local:
				f.Close()
				return []uint32{s.uid}, nil
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if len(listeners) == 0 {
		return nil, fmt.Errorf("no socket of this host's network namespace holds the other end of the connection to %s in %s", remote, strings.Join(procNetTCP, " or "))
	}
	return listeners, nil
}

// socketLine is what peerOwners reads of a line of /proc/net/tcp(6).
type socketLine struct {
	local, remote netip.AddrPort
	state         int
	uid           uint32
}

// parseSocketLine reads a line of /proc/net/tcp or /proc/net/tcp6:
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode …
//	0: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 …
//
// An address is the hex of its 32-bit words as the kernel holds them (in
// this machine's byte order), a port the hex of its number; the uid is
// the socket's owner as this process's user namespace sees it.
func parseSocketLine(line string) (socketLine, bool) {
	f := strings.Fields(line)
	if len(f) < 8 {
		return socketLine{}, false
	}
	local, ok1 := parseSocketAddr(f[1])
	remote, ok2 := parseSocketAddr(f[2])
	state, err1 := strconv.ParseUint(f[3], 16, 8)
	uid, err2 := strconv.ParseUint(f[7], 10, 32)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return socketLine{}, false
	}
	return socketLine{local: local, remote: remote, state: int(state), uid: uint32(uid)}, true
}

// parseSocketAddr reads an address of /proc/net/tcp(6): ADDR:PORT in hex.
func parseSocketAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(h)
	port, perr := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || perr != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

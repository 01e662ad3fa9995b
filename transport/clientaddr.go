package transport

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddress is the address a request came from, for the budget of
// refused credentials (limits.go): the direct peer, unless the peer is one
// of the trusted proxies. Then the forwarding header names the client: its
// entries are walked from the right (the hop the trusted proxy appended
// last) past every trusted proxy, and the first untrusted one is the
// client. Entries to the left of it are whatever the client chose to send,
// so a spoofed X-Forwarded-For gains an attacker nothing: the proxy's own
// entry stands to its right.
//
// X-Forwarded-For is read when present, else Forwarded (RFC 7239): a proxy
// that writes only Forwarded must drop a client's X-Forwarded-For, or the
// client picks its own address.
func clientAddress(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := remoteAddr(r)
	if !isTrusted(peer, trusted) {
		return peer
	}
	var hops []string
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, v := range xff {
			hops = append(hops, strings.Split(v, ",")...)
		}
	} else {
		for _, v := range r.Header.Values("Forwarded") {
			for elem := range strings.SplitSeq(v, ",") {
				hops = append(hops, forwardedFor(elem))
			}
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			// An entry no proxy would write: what is left of it cannot
			// be told from the client's own inventions.
			return client
		}
		client = a
		if !isTrusted(a, trusted) {
			return a
		}
	}
	return client
}

// remoteAddr is the direct peer's address (unspecified if unreadable).
func remoteAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(r.RemoteAddr)
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor is the for= parameter of one Forwarded element ("" if none).
func forwardedFor(elem string) string {
	for pair := range strings.SplitSeq(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "for") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// parseHop reads one hop: an IP, with or without a port, IPv6 in brackets
// or not.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

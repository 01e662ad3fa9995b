// Package loopback decides whether an address names the loopback interface
// only. Listen addresses (a development server refuses any other), Host and
// Origin headers (the edge's DNS-rebinding guard), redirect URIs and
// telemetry endpoints are all checked here, so they agree on every spelling.
package loopback

import (
	"net"
	"strings"
)

// Is reports whether addr names the loopback interface only. addr is a
// host or a host:port as written in a listen address, a URL's Host or a
// Host header: an IP address (brackets optional for IPv6), or a name.
//
// Every address in 127.0.0.0/8, ::1, and those IPv4 ones written as
// IPv4-mapped IPv6 (::ffff:127.0.0.1) are loopback. Of names, only
// localhost is, in any case and with or without its trailing dot; other
// names are not, whatever they resolve to now. An empty host (":8080"),
// 0.0.0.0 and :: bind every interface and are not.
func Is(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Package rawtest serves answers written as they are, HTTP or not, for
// tests of what a client makes of a server that misbehaves: a malformed
// status or header line, bytes that reflect the request.
package rawtest

import (
	"bufio"
	"net"
	"net/http"
	"testing"
)

// Server listens on loopback, until the test ends, and answers each
// request on a connection with what reply makes of it, written as is; it
// returns the server's base URL (http://127.0.0.1:port).
func Server(t testing.TB, reply func(req *http.Request) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(reply(req))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

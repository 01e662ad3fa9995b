package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/state"
)

// foreignListenerEnv makes the test binary serveForeignListener instead of
// running tests (TestMain).
const foreignListenerEnv = "PINGMCP_TEST_FOREIGN_LISTENER"

// foreignListenAddrEnv, if set, is the address serveForeignListener
// listens on (127.0.0.1:0 otherwise).
const foreignListenAddrEnv = "PINGMCP_TEST_FOREIGN_LISTEN_ADDR"

// adminCLIEnv makes the test binary run its arguments as pingmcp's command
// line (TestMain): the admin CLI in a process of its own, whose
// environment (an HTTP proxy's) Go reads afresh.
const adminCLIEnv = "PINGMCP_TEST_ADMIN_CLI"

// serveForeignListener listens on a loopback port, prints "listening
// ADDRESS", then serves any request as an empty session list, printing
// "request authorization=true|false" for each, and "closed" for each
// connection that ends: another local user's process posing as a node's
// admin API.
func serveForeignListener() {
	addr := "127.0.0.1:0"
	if a := os.Getenv(foreignListenAddrEnv); a != "" {
		addr = a
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("listening", ln.Addr())
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("request authorization=%t\n", r.Header.Get("Authorization") != "")
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"sessions":[],"next":""}`)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				fmt.Println("closed")
			}
		},
	}
	srv.Serve(ln)
}

// The admin CLI sends its token to a listener of its own user's, on
// loopback, by any address: the socket connected to it is found in
// /proc/net/tcp(6) (accepted or not yet), and so is a listener on every
// address reached through 127.0.0.1.
func TestAdminCLIAcceptsOwnListener(t *testing.T) {
	if !peerOwnersChecked {
		t.Skip("the owner of a local connection's other end is told on Linux only")
	}
	readers := selfReaders()
	for _, c := range []struct{ listen, dial string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::1]:0", "::1"},
		{"[::]:0", "127.0.0.1"}, // an IPv6 socket taking IPv4: /proc/net/tcp6, ::ffff:127.0.0.1
	} {
		ln, err := net.Listen("tcp", c.listen)
		if err != nil {
			t.Logf("%s: %v (no IPv6 here?)", c.listen, err)
			continue
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		conn, err := net.Dial("tcp", net.JoinHostPort(c.dial, port))
		if err != nil {
			t.Fatal(err)
		}
		if err := readers.checkPeer(conn); err != nil {
			t.Errorf("%s, dialled at %s, not yet accepted: %v", c.listen, c.dial, err)
		}
		accepted, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if err := readers.checkPeer(conn); err != nil {
			t.Errorf("%s, dialled at %s, accepted: %v", c.listen, c.dial, err)
		}
		accepted.Close()
		conn.Close()
		ln.Close()
	}

	// And the CLI against a node's admin API of its own user's.
	env := adminFor(t, state.MemoryStores(time.Minute))
	var out, errOut bytes.Buffer
	if code := adminCLI(context.Background(), "sessions", []string{"ls"}, func(k string) string { return env[k] }, &out, &errOut); code != 0 {
		t.Errorf("sessions ls against this user's admin API: exit %d: %s", code, errOut.String())
	}
}

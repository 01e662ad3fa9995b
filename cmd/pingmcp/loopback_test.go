package main

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/config"
)

// The edge holds the other loopback family's address on its port: a
// process holding it makes pingmcp refuse to start, and connections to
// either address reach the edge. Where the host has no IPv6 loopback, the
// [::1] resource is dropped instead.
func TestListenEdgeHoldsLoopbackTwin(t *testing.T) {
	squat, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		// No IPv6 loopback: nobody can squat [::1]; it is no resource.
		cfg := parseDev(t, "--addr", "127.0.0.1:0")
		ln, err := listenEdge(cfg)
		if err != nil {
			t.Fatalf("listenEdge without IPv6 loopback: %v", err)
		}
		defer ln.Close()
		cfg.Rebind(ln.Addr().String(), cfg.IdPAddr, cfg.TodoAPIAddr)
		for _, r := range cfg.Resources() {
			if strings.Contains(r, "[::1]") {
				t.Errorf("resources %v name [::1], which this host lacks", cfg.Resources())
			}
		}
		return
	}
	port := squat.Addr().(*net.TCPAddr).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if _, err := listenEdge(parseDev(t, "--addr", addr)); err == nil || !strings.Contains(err.Error(), "[::1]:"+strconv.Itoa(port)) ||
		!strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "--public-url") {
		t.Errorf("listenEdge on %s while [::1]:%d is taken: %v, want a refusal naming it and --public-url", addr, port, err)
	}
	if ln, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("the refused start still holds %s: %v", addr, err)
	} else {
		ln.Close()
	}
	// Given by the name localhost, the URL clients are told still needs
	// both addresses: refused as well, with the way out named.
	for _, args := range [][]string{{"--public-url", "http://localhost:" + strconv.Itoa(port)}, {"--resource", "http://localhost:" + strconv.Itoa(port) + "/mcp"}} {
		if _, err := listenEdge(parseDev(t, append([]string{"--addr", addr}, args...)...)); err == nil || !strings.Contains(err.Error(), "[::1]:"+strconv.Itoa(port)) ||
			!strings.Contains(err.Error(), "--public-url http://"+addr) {
			t.Errorf("listenEdge on %s with %v while [::1]:%d is taken: %v, want a refusal naming it and the IP literal", addr, args, port, err)
		}
	}
	// So does the authorization server, or the Todo API, run alone with a
	// localhost URL (--addr localhost:PORT derives one).
	twins := func(bound string) []string {
		return config.LocalhostTwins(bound, "http://localhost:"+strconv.Itoa(port))
	}
	if _, err := listenHolding(addr, twins, nil); err == nil || !strings.Contains(err.Error(), "[::1]:"+strconv.Itoa(port)) {
		t.Errorf("a server alone on %s, told as localhost, while [::1]:%d is taken: %v, want a refusal", addr, port, err)
	}
	squat.Close()
	if ln, err := listenHolding(addr, twins, nil); err != nil {
		t.Errorf("a server alone on %s, told as localhost: %v", addr, err)
	} else {
		if _, ok := ln.(*listeners); !ok {
			t.Errorf("a server alone told as localhost listens on %T, want both addresses", ln)
		}
		ln.Close()
	}

	// --public-url: only that URL is a resource, and no twin is held.
	if ln, err := listenEdge(parseDev(t, "--addr", addr, "--public-url", "http://"+addr)); err != nil {
		t.Errorf("with --public-url: %v", err)
	} else {
		if _, ok := ln.(*net.TCPListener); !ok {
			t.Errorf("with --public-url the edge listens on %T, want %s alone", ln, addr)
		}
		ln.Close()
	}

	cfg := parseDev(t, "--addr", "127.0.0.1:0")
	ln, err := listenEdge(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(c.LocalAddr().String()))
			c.Close()
		}
	}()
	port = ln.Addr().(*net.TCPAddr).Port
	for _, host := range []string{"127.0.0.1", "::1"} {
		to := net.JoinHostPort(host, strconv.Itoa(port))
		c, err := net.Dial("tcp", to)
		if err != nil {
			t.Errorf("dial %s: %v", to, err)
			continue
		}
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) != to {
			t.Errorf("dial %s: answered by %q", to, got)
		}
	}
	ln.Close()
	if c, err := net.Dial("tcp", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
		c.Close()
		t.Errorf("[::1]:%d still accepts after Close", port)
	}
}

func parseDev(t *testing.T, args ...string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("dev", args, func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

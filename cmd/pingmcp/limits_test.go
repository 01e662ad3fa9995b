package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/config"
)

// Outbound HTTP calls take --upstream-timeout (its default for commands
// without the flag).
func TestUpstreamClient(t *testing.T) {
	if c := upstream(&config.Config{UpstreamTimeout: 3 * time.Second}); c.Timeout != 3*time.Second {
		t.Errorf("timeout %v, want 3s", c.Timeout)
	}
	if c := upstream(&config.Config{}); c.Timeout != config.DefaultUpstreamTimeout {
		t.Errorf("timeout %v, want the default", c.Timeout)
	}
}

// A Redis that accepts connections and never answers fails the store's
// calls within --redis-timeout (and go-redis' retries), not never.
func TestRedisTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	})
	const timeout = 200 * time.Millisecond
	cfg := &config.Config{Command: "dev", RedisURL: "redis://" + ln.Addr().String() + "/0", RedisPrefix: "t:", RedisTimeout: timeout,
		EventsMax: 10, EventsTTL: time.Minute, SessionIdleTimeout: time.Minute}
	d, closeStore, err := newStores(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	for name, op := range map[string]func(context.Context) error{
		"ping":  d.Check,
		"count": func(ctx context.Context) error { _, err := d.Snapshots.Count(ctx); return err },
	} {
		start := time.Now()
		err := op(context.Background()) // no deadline of the caller's
		if took := time.Since(start); err == nil || took > 20*timeout {
			t.Errorf("%s against a hung Redis: %v after %v, want an error within about %v", name, err, took, timeout)
		}
	}
}

// The HTTP servers bound header size (431 beyond), the time to read
// headers and idle keep-alive connections; /mcp's listener takes
// --max-header-bytes.
func TestHTTPServerLimits(t *testing.T) {
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if srv.ReadHeaderTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes != config.DefaultMaxHeaderBytes {
		t.Errorf("server limits: read header %v, idle %v, header bytes %d", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	srv.MaxHeaderBytes = 4096
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	status := func(header int) int {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", header))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(1000); s != http.StatusOK {
		t.Errorf("small header: %d", s)
	}
	if s := status(16 << 10); s != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("16 KiB header with a 4 KiB limit: %d, want 431", s)
	}
}

// Every HTTP/1.1 answer tells the client to keep its idle connection for
// less than the server keeps it (keepAliveHint): 115 s of 120.
func TestHTTPServerKeepAliveHint(t *testing.T) {
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	get := func(header, value string) string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Keep-Alive")
	}
	if got := get("", ""); got != "timeout=115" || srv.IdleTimeout != 120*time.Second {
		t.Errorf("Keep-Alive %q with an idle timeout of %v, want timeout=115 with 2m0s", got, srv.IdleTimeout)
	}
	// To a client closing the connection, none.
	if got := get("Connection", "close"); got != "" {
		t.Errorf("a request with Connection: close: Keep-Alive %q, want none", got)
	}
	// Through a proxy, none: the proxy keeps its own connections.
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "Via"} {
		if got := get(h, "1.1 proxy"); got != "" {
			t.Errorf("a request with %s: Keep-Alive %q, want none", h, got)
		}
	}
	// Once a drain turned keep-alives off, none.
	stopKeepAlives(srv)
	if got := get("", ""); got != "" {
		t.Errorf("with keep-alives off: Keep-Alive %q, want none", got)
	}
}

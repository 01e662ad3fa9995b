// Package redistest runs real redis-server processes for tests: private,
// on a free loopback port, without persistence, stopped when the test ends.
package redistest

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Start runs a private redis-server (no persistence) for the test and
// stops it when the test ends. A missing redis-server fails the test: nothing
// that needs Redis goes untested silently (scripts/test.sh installs it).
func Start(t testing.TB) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; the Redis store tests run a real one. Install it (Debian: apt-get install -y redis-server). %v", err)
	}
	// redis-server cannot take port 0: take a free port and hand it over.
	// Another process may grab it in between, hence the retries.
	var lastLog string
	for range 3 {
		addr, log, ok := tryStart(t, bin)
		if ok {
			client := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { client.Close() })
			if err := client.Ping(context.Background()).Err(); err != nil {
				t.Fatalf("redis-server at %s is up but does not answer PING: %v", addr, err)
			}
			return client
		}
		lastLog = log
	}
	t.Fatalf("redis-server did not start; its output:\n%s", lastLog)
	return nil
}

func tryStart(t testing.TB, bin string) (addr, log string, ok bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	out := &readyWriter{ready: make(chan struct{})}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
		"--daemonize", "no", "--logfile", "")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	select {
	case <-out.ready:
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "", true
	case <-exited:
		return "", out.String(), false
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("redis-server did not get ready in 20 s; its output:\n%s", out.String())
	}
	return "", "", false
}

// readyWriter collects redis-server's log and closes ready once the server
// says it accepts connections.
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "Ready to accept connections") {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

package todoapi

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedis runs a private redis-server (no persistence) for the test and
// stops it when the test ends. A missing redis-server fails the test: the
// Redis store must not go untested silently.
func startRedis(t *testing.T) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; the Redis store tests run a real one. Install it (Debian: apt-get install -y redis-server). %v", err)
	}
	// redis-server cannot take port 0: take a free port and hand it over.
	// Another process may grab it in between, hence the retries.
	var lastLog string
	for range 3 {
		addr, log, ok := tryStartRedis(t, bin)
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

func tryStartRedis(t *testing.T, bin string) (addr, log string, ok bool) {
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

func TestRedisStore(t *testing.T) {
	client := startRedis(t)
	n := 0
	testStore(t, func(t *testing.T) Store {
		n++
		return NewRedisStore(client, "test"+strconv.Itoa(n)+":")
	})
}

func TestConcurrentCreatesRedis(t *testing.T) {
	testConcurrentCreates(t, NewRedisStore(startRedis(t), ""))
}

// TestRedisKeys: one hash per user, named by a hash of the user key, under
// the prefix.
func TestRedisKeys(t *testing.T) {
	client := startRedis(t)
	ctx := context.Background()
	s := NewRedisStore(client, "")
	users := []string{"alice", "bob*", "carol:todo"}
	for _, u := range users {
		for i := range 2 {
			if _, err := s.Create(ctx, u, Todo{ID: newID(), Text: "t" + strconv.Itoa(i)}, 10); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(users) {
		t.Fatalf("keys %q, want one per user", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "todoapi:user:") || len(k) != len("todoapi:user:")+43 {
			t.Errorf("key %q is not todoapi:user:<sha-256>", k)
		}
		for _, u := range users {
			if strings.Contains(k, u) {
				t.Errorf("key %q contains the user key %q", k, u)
			}
		}
		if typ := client.Type(ctx, k).Val(); typ != "hash" {
			t.Errorf("key %q is a %s", k, typ)
		}
	}
}

// TestStoreFailure: a store that fails answers 500, and says nothing of why.
func TestStoreFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()

	is := newTestIssuer(t)
	api := newTestAPI(t, is, Options{Store: NewRedisStore(client, "")})
	alice := is.token(t, "alice")
	for name, resp := range map[string]response{
		"list":   api.list(t, alice),
		"create": api.create(t, alice, "x"),
		"update": api.setCompleted(t, alice, newID(), true),
		"delete": api.remove(t, alice, newID()),
	} {
		if resp.status != http.StatusInternalServerError {
			t.Errorf("%s: status %d, want 500; body %s", name, resp.status, resp.body)
			continue
		}
		if e := resp.errorBody(t); e.Error != "server_error" || strings.Contains(e.Description, addr) {
			t.Errorf("%s: error %+v", name, e)
		}
	}
	if logs := api.logs.String(); !strings.Contains(logs, "todo store failed") || strings.Contains(logs, alice) {
		t.Errorf("log does not report the failure, or holds the token:\n%s", logs)
	}
}

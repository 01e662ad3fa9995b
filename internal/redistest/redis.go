// Package redistest runs real redis-server processes for tests: private,
// on a free loopback port, without persistence, stopped when the test ends.
package redistest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/logtest"
)

// Start runs a private redis-server (no persistence) for the test and
// stops it when the test ends. A missing redis-server fails the test: nothing
// that needs Redis goes untested silently (scripts/test.sh installs it).
func Start(t testing.TB) *redis.Client {
	t.Helper()
	return StartAt(t, "127.0.0.1")
}

// StartAt is Start with redis-server listening on host (an address of this
// machine) rather than loopback: for nodes in a network namespace of their
// own.
func StartAt(t testing.TB, host string) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; the Redis store tests run a real one. Install it (Debian: apt-get install -y redis-server). %v", err)
	}
	// redis-server cannot take port 0: take a free port and hand it over.
	// Another process may grab it in between, hence the retries.
	var lastLog string
	for range 3 {
		addr, log, ok := tryStart(t, bin, host)
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

func tryStart(t testing.TB, bin, host string) (addr, log string, ok bool) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// The last --bind wins; off loopback, Redis's protected mode would
	// refuse every client of a server without a password.
	p, log, ok := run(t, bin, port, t.TempDir(), false, "--bind", host, "--protected-mode", "no")
	if !ok {
		return "", log, false
	}
	t.Cleanup(p.kill)
	return net.JoinHostPort(host, strconv.Itoa(port)), "", true
}

// RedisCPUsEnv, when set (benchmarks), names the CPUs every redis-server
// runs on, as taskset takes them ("1"): with the benchmark itself run on
// the others (taskset --cpu-list 0 …), Redis has cores of its own, as in a
// deployment, instead of sharing the node's.
const RedisCPUsEnv = "PINGMCP_BENCH_REDIS_CPUS"

// process is one redis-server run.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// run starts redis-server on port with its files in dir (persisting every
// write to an append-only file if persist is set) and waits until it
// accepts connections.
func run(t testing.TB, bin string, port int, dir string, persist bool, extra ...string) (*process, string, bool) {
	out := logtest.NewAwaiting("Ready to accept connections")
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir,
		"--daemonize", "no", "--logfile", ""}
	if persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, extra...)
	if cpus := os.Getenv(RedisCPUsEnv); cpus != "" {
		args = append([]string{"--cpu-list", cpus, bin}, args...)
		bin = "taskset" // it execs redis-server: the same process
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-out.Seen():
		return p, "", true
	case <-p.exited:
		return nil, out.String(), false
	case <-time.After(20 * time.Second):
		p.kill()
		t.Fatalf("redis-server did not get ready in 20 s; its output:\n%s", out.String())
	}
	return nil, "", false
}

// Server is a redis-server that persists every write (an append-only file,
// fsync always) and can be restarted on the same address, keeping its data:
// for tests of what happens while Redis is away.
type Server struct {
	Addr string

	t    testing.TB
	bin  string
	port int
	dir  string
	mu   sync.Mutex
	proc *process
}

// StartPersistent runs a persistent redis-server for the test.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; the Redis store tests run a real one. Install it (Debian: apt-get install -y redis-server). %v", err)
	}
	dir := t.TempDir()
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p, _, ok := run(t, bin, port, dir, true); ok {
			s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t, bin: bin, port: port, dir: dir, proc: p}
			t.Cleanup(func() { s.Stop() })
			return s
		}
	}
	t.Fatal("redis-server did not start")
	return nil
}

// Stop shuts the server down as an operator would (SIGTERM): it finishes
// writing its files and exits.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.cmd.Process.Signal(syscall.SIGTERM)
	<-s.proc.exited
	s.proc = nil
}

// Start runs the server again on its address, from its files.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return
	}
	p, log, ok := run(s.t, s.bin, s.port, s.dir, true)
	if !ok {
		s.t.Fatalf("redis-server did not restart on %s:\n%s", s.Addr, log)
	}
	s.proc = p
}

// StartReplica runs a private redis-server replicating the one at master
// (host:port) for the test, and waits until it is in sync: a write WAITing
// for one replica is then acknowledged.
func StartReplica(t testing.TB, master string) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; the Redis store tests run a real one. Install it (Debian: apt-get install -y redis-server). %v", err)
	}
	host, port, err := net.SplitHostPort(master)
	if err != nil {
		t.Fatal(err)
	}
	// The master waits 5 s (repl-diskless-sync-delay) for more replicas
	// before it sends the first one its data.
	m := redis.NewClient(&redis.Options{Addr: master})
	err = m.ConfigSet(context.Background(), "repl-diskless-sync-delay", "0").Err()
	m.Close()
	if err != nil {
		t.Fatalf("configure the master %s: %v", master, err)
	}
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		mine := l.Addr().(*net.TCPAddr).Port
		l.Close()
		p, _, ok := run(t, bin, mine, t.TempDir(), false, "--replicaof", host, port)
		if !ok {
			continue
		}
		t.Cleanup(p.kill)
		client := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(mine))})
		t.Cleanup(func() { client.Close() })
		deadline := time.Now().Add(20 * time.Second)
		for {
			info, err := client.Info(context.Background(), "replication").Result()
			if err == nil && strings.Contains(info, "master_link_status:up") {
				return client
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica of %s not in sync after 20 s: %v\n%s", master, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Fatal("redis-server (replica) did not start")
	return nil
}

// CPU is the CPU time the redis-server behind client has used (INFO cpu:
// user and system, its main thread and the others).
func CPU(tb testing.TB, client *redis.Client) time.Duration {
	tb.Helper()
	fields := Info(tb, client, "cpu")
	var total float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, ok := fields[k]
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			tb.Fatalf("INFO cpu %s: %v", k, err)
		}
		total += f
	}
	return time.Duration(total * float64(time.Second))
}

// Info reads one section of INFO from the redis-server behind client, as
// its fields ("process_id": "1234").
func Info(tb testing.TB, client *redis.Client, section string) map[string]string {
	tb.Helper()
	text, err := client.Info(context.Background(), section).Result()
	if err != nil {
		tb.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			fields[k] = v
		}
	}
	return fields
}

// A CommandStat is what redis-server counts of one command since its last
// CONFIG RESETSTAT (INFO commandstats): its calls, and the time they took
// in it, not counting reading them and writing their answers. A script's
// time includes the commands it ran, which are counted under their own
// names too.
type CommandStat struct {
	Calls int64
	Time  time.Duration
}

// Commands reads INFO commandstats, by command name ("evalsha", "hset",
// "config|resetstat", …).
func Commands(tb testing.TB, client *redis.Client) map[string]CommandStat {
	tb.Helper()
	out := map[string]CommandStat{}
	for k, rest := range Info(tb, client, "commandstats") {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		var s CommandStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			switch {
			case k != "calls" && k != "usec":
				continue
			case err != nil:
				tb.Fatalf("INFO commandstats %s: %q: %v", name, rest, err)
			case k == "calls":
				s.Calls = n
			default:
				s.Time = time.Duration(n) * time.Microsecond
			}
		}
		out[name] = s
	}
	return out
}

// ScriptTime is the time redis-server has spent running scripts (EVAL,
// EVALSHA) since its last CONFIG RESETSTAT, from stats as Commands reads
// them.
func ScriptTime(stats map[string]CommandStat) time.Duration {
	var d time.Duration
	for name, st := range stats {
		if strings.HasPrefix(name, "eval") {
			d += st.Time
		}
	}
	return d
}

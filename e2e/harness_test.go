// Package e2e holds the end-to-end tests: each starts real pingmcp processes
// (cluster nodes on loopback) from the binary built in TestMain, and talks to
// them as an MCP client would. protoactor cannot run two clusters in one
// process safely, so every node here is its own OS process.
package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var binary string

// clusterTLS are the --cluster-tls-* flags of a node certificate that
// `pingmcp certs` wrote in TestMain: every node startNode runs has it, so
// the e2e clusters are mutual TLS, as production's are.
var clusterTLS []string

// adminTokenFile holds the static admin token of the admin API that every
// node startNode runs, and every runDev, has: its /metrics and sessions are
// what the tests observe of a node, as an operator would.
var adminTokenFile string

func TestMain(m *testing.M) {
	if os.Getenv(sdkProcessEnv) != "" {
		serveSDKProcess() // a benchmark's baseline (bench_test.go)
	}
	if os.Getenv(proxyEnv) != "" {
		serveProxy() // in front of one (bench_test.go)
	}
	if os.Getenv(spliceEnv) != "" {
		serveSplice() // or that
	}
	if os.Getenv(hopEchoEnv) != "" {
		serveHopEcho() // the other end of BenchmarkHopFloor
	}
	dir, err := os.MkdirTemp("", "pingmcp-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pingmcp")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/pingmcp")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build pingmcp:", err)
		os.Exit(1)
	}
	certs := exec.Command(binary, "certs", "--dir", filepath.Join(dir, "cluster-certs"), "--names", "e2e-node")
	certs.Stderr = os.Stderr
	if err := certs.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "pingmcp certs:", err)
		os.Exit(1)
	}
	clusterTLS = []string{"--cluster-tls-cert", filepath.Join(dir, "cluster-certs", "e2e-node.crt"),
		"--cluster-tls-key", filepath.Join(dir, "cluster-certs", "e2e-node.key"), "--cluster-tls-ca", filepath.Join(dir, "cluster-certs", "ca.crt")}
	adminTokenFile = filepath.Join(dir, "admin-token")
	if err := os.WriteFile(adminTokenFile, []byte("e2e-admin-token-"+rand.Text()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "admin token:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one running pingmcp process.
type node struct {
	t       testing.TB
	name    string
	HTTP    string // host:port of its HTTP listener
	Cluster string // host:port of its cluster endpoint
	// Admin is the host:port of its admin API ("" without one) and
	// adminToken the static token its --admin-token-file holds.
	Admin      string
	adminToken string
	cmd        *exec.Cmd
	logStdout  bool          // its standard output is logged too (see startLogged)
	done       chan struct{} // closed when the process has exited

	mu    sync.Mutex
	lines []string
	subs  []chan string
}

// startNode runs `pingmcp serve` on loopback with free ports and returns once
// it has logged that it started. Extra args follow the defaults, so they win.
// Its cluster connections are mutual TLS with the certificate of TestMain's
// CA (clusterTLS), unless args give other --cluster-tls-* files or
// --cluster-insecure (a plaintext node); a single node (no seeds, no
// provider) accepts no cluster connection either way.
func startNode(t testing.TB, name string, args ...string) *node {
	t.Helper()
	return startProcess(t, name, `"msg":"node started"`, nodeArgs(args...)...)
}

// nodeArgs are startNode's command line: its defaults, then args.
func nodeArgs(args ...string) []string {
	all := []string{"serve", "--auth", "none", "--tools", "conformance", "--addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "debug", "--admin-addr", "127.0.0.1:0", "--admin-token-file", adminTokenFile}
	if !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--cluster-tls-") || strings.HasPrefix(a, "--cluster-insecure")
	}) {
		all = append(all, clusterTLS...)
	}
	return append(all, args...)
}

// startProcess runs the pingmcp binary with args and returns once it has
// logged ready (a node's start line carries its addresses, and its admin
// API's start line comes before).
func startProcess(t testing.TB, name, ready string, args ...string) *node {
	t.Helper()
	n := &node{t: t, name: name, cmd: exec.Command(binary, args...)}
	n.launch(ready, args, 30*time.Second)
	return n
}

// launch starts n's command (the pingmcp binary, perhaps wrapped), stops it
// when the test ends (failing the test for the data races the detector
// reported), and returns once it has logged ready, reading its addresses
// from that line; args are the binary's, for its admin API's token file.
func (n *node) launch(ready string, args []string, within time.Duration) {
	t := n.t
	t.Helper()
	line := n.startLogged(ready, within)
	var rec struct{ HTTP, Cluster string }
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("%s: parse start line %q: %v", n.name, line, err)
	}
	n.HTTP, n.Cluster = rec.HTTP, rec.Cluster
	n.noteAdmin(args)
}

// startLogged starts n's command, stops it when the test ends (failing the
// test for the data races the detector reported), and returns once it has
// logged a line containing ready (at once when ready is ""), with that line.
// Its standard error is its log, and its standard output too when
// n.logStdout (a container's log holds both).
func (n *node) startLogged(ready string, within time.Duration) string {
	t := n.t
	t.Helper()
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stdout = io.Discard
	if n.logStdout {
		n.cmd.Stdout = n.cmd.Stderr // the pipe's writing end
	}
	var started <-chan string
	if ready != "" {
		started = n.watch(ready)
	}
	n.start()
	go n.read(stderr)
	t.Cleanup(func() {
		n.kill()
		// The race detector reports in the node's output and lets it run.
		if races := n.races(); len(races) > 0 {
			t.Errorf("%s: the race detector found %d data races:\n%s", n.name, len(races), strings.Join(races, "\n"))
		} else if t.Failed() {
			n.dump(60)
		}
	})
	if ready == "" {
		return ""
	}
	select {
	case line := <-started:
		return line
	case <-n.done:
		n.dump(60)
		t.Fatalf("%s exited: %v", n.name, n.cmd.ProcessState)
	case <-time.After(within):
		n.dump(60)
		t.Fatalf("%s did not start in %v", n.name, within)
	}
	return ""
}

// start runs the process and notes when it exits.
func (n *node) start() {
	n.t.Helper()
	n.done = make(chan struct{})
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() {
		n.cmd.Wait()
		close(n.done)
	}()
}

// dump logs the node's last lines, for a failed test.
func (n *node) dump(lines int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.t.Logf("--- logs of %s (last %d lines)", n.name, lines)
	for _, l := range n.lines[max(0, len(n.lines)-lines):] {
		n.t.Log(l)
	}
}

// races returns the race detector's reports in the node's output, but those
// inside protoactor (modules github.com/asynkron/...): reports where both
// racing accesses are made by its code (the first frame that is either its
// or ours is its), on its memory. It has several
// (BlockList reads its set without the lock its writer takes; disthash
// swaps its rendezvous table while Get reads it; MemberList.Members and
// UpdateClusterTopology; the endpoint reader's suspended flag on Shutdown).
// They are recorded in the closing note; a race with a frame of ours on
// top of either access counts.
func (n *node) races() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var races []string
	var report []string
	var tops []string // the top frame of each access of the current report
	in, next := false, false
	for _, l := range n.lines {
		l = strings.TrimSpace(l)
		switch {
		case strings.Contains(l, "WARNING: DATA RACE"):
			in, tops, report = true, nil, nil
		case in && strings.HasPrefix(l, "=================="):
			in = false
			upstream := len(tops) > 0
			for _, f := range tops {
				if !strings.HasPrefix(f, "github.com/asynkron/") {
					upstream = false
				}
			}
			if !upstream {
				races = append(races, strings.Join(report, "\n"))
			}
		}
		if in {
			report = append(report, l)
		}
		switch {
		case in && (strings.HasPrefix(l, "Write at") || strings.HasPrefix(l, "Read at") ||
			strings.HasPrefix(l, "Previous write at") || strings.HasPrefix(l, "Previous read at")):
			next = true
		case in && next && (strings.HasPrefix(l, "github.com/asynkron/") || strings.HasPrefix(l, "github.com/pingmcp/")):
			// Whose code made the access: the first frame of ours or
			// protoactor's (below runtime and library helpers).
			tops = append(tops, l)
			next = false
		}
	}
	return races
}

// line returns the first log line that contains substr, or "".
func (n *node) line(substr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.lines {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// count is how many log lines so far contain every one of substrs.
func (n *node) count(substrs ...string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, l := range n.lines {
		if containsAll(l, substrs...) {
			c++
		}
	}
	return c
}

// awaitCount waits until at least want log lines contain substr, and
// returns how many do then: log lines travel through a pipe, so they may
// trail the responses they accompany.
func (n *node) awaitCount(ctx context.Context, substr string, want int) int {
	lines := n.watch(substr)
	for {
		if got := n.count(substr); got >= want {
			return got
		}
		select {
		case <-lines:
		case <-ctx.Done():
			return n.count(substr)
		}
	}
}

func (n *node) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		n.mu.Lock()
		n.lines = append(n.lines, line)
		subs := n.subs
		n.mu.Unlock()
		for _, ch := range subs {
			select {
			case ch <- line:
			default:
			}
		}
	}
}

// watch returns a channel that receives the log lines containing substr,
// from now on.
func (n *node) watch(substr string) <-chan string {
	all := make(chan string, 1024)
	out := make(chan string, 64)
	n.mu.Lock()
	n.subs = append(n.subs, all)
	n.mu.Unlock()
	go func() {
		for l := range all {
			if strings.Contains(l, substr) {
				out <- l
			}
		}
	}()
	return out
}

// logged reports whether any log line so far contains every one of substrs.
func (n *node) logged(substrs ...string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.lines {
		if containsAll(l, substrs...) {
			return true
		}
	}
	return false
}

func (n *node) kill() {
	if n.done != nil {
		n.cmd.Process.Kill()
		<-n.done
	}
}

// URL is the node's /mcp endpoint.
func (n *node) URL() string { return "http://" + n.HTTP + "/mcp" }

// awaitMembers waits until the node's /readyz reports it ready with want
// members. Membership is converged by periodic probes, so this polls.
func (n *node) awaitMembers(ctx context.Context, want int) {
	n.t.Helper()
	var last string
	if !poll(ctx, func() bool {
		resp, err := http.Get("http://" + n.HTTP + "/readyz")
		if err != nil {
			return false
		}
		var body struct {
			Status  string
			Members int
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %+v", resp.StatusCode, body)
		return resp.StatusCode == 200 && body.Members == want
	}) {
		n.t.Fatalf("%s: never saw %d members ready (last: %s)", n.name, want, last)
	}
}

// poll calls done every 50 ms until it returns true (then poll does) or
// ctx ends (then false): for a state the tests can observe but not be
// told of, as an operator's dashboard polls.
func poll(ctx context.Context, done func() bool) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			if ctx.Err() != nil {
				return false
			}
		}
	}
	return true
}

// The race filter counts a report unless both accesses are protoactor's.
func TestRaceFilter(t *testing.T) {
	n := &node{lines: strings.Split(`==================
WARNING: DATA RACE
Write at 0x00c000066148 by goroutine 92:
  github.com/asynkron/protoactor-go/remote.(*BlockList).Block()
      /x/blocklist.go:37 +0x444
Previous read at 0x00c000066148 by goroutine 23:
  github.com/asynkron/protoactor-go/remote.(*BlockList).BlockedMembers()
      /x/blocklist.go:28 +0xd9
  github.com/pingmcp/pingmcp/cluster.(*seedsProvider).run()
==================
==================
WARNING: DATA RACE
Read at 0x00c000066148 by goroutine 7:
  runtime.raceread()
      <autogenerated>:1 +0x1e
  github.com/pingmcp/pingmcp/actors.(*SessionActor).serve()
      /x/session.go:1
Previous write at 0x00c000066148 by goroutine 8:
  github.com/asynkron/protoactor-go/actor.(*actorContext).Receive()
      /x/a.go:1
==================`, "\n")}
	if got := len(n.races()); got != 1 {
		t.Fatalf("races() = %d, want 1 (the report with a frame of ours on top)", got)
	}
}

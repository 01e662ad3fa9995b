// Package e2e holds the end-to-end tests: each starts real pingmcp processes
// (cluster nodes on loopback) from the binary built in TestMain, and talks to
// them as an MCP client would. protoactor cannot run two clusters in one
// process safely, so every node here is its own OS process.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
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
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one running pingmcp process.
type node struct {
	t       *testing.T
	name    string
	HTTP    string // host:port of its HTTP listener
	Cluster string // host:port of its cluster endpoint
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited

	mu    sync.Mutex
	lines []string
	subs  []chan string
}

// startNode runs `pingmcp serve` on loopback with free ports and returns once
// it has logged that it started. Extra args follow the defaults, so they win.
func startNode(t *testing.T, name string, args ...string) *node {
	t.Helper()
	all := append([]string{"serve", "--auth", "none", "--tools", "conformance", "--addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "debug"}, args...)
	n := &node{t: t, name: name, cmd: exec.Command(binary, all...)}
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stdout = io.Discard
	started := n.watch(`"msg":"node started"`)
	n.start()
	go n.read(stderr)
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			n.dump(60)
		}
	})
	select {
	case line := <-started:
		var rec struct{ HTTP, Cluster string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%s: parse start line %q: %v", name, line, err)
		}
		n.HTTP, n.Cluster = rec.HTTP, rec.Cluster
	case <-n.done:
		t.Fatalf("%s exited: %v", name, n.cmd.ProcessState)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start", name)
	}
	return n
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

// count is how many log lines so far contain substr.
func (n *node) count(substr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, l := range n.lines {
		if strings.Contains(l, substr) {
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
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		resp, err := http.Get("http://" + n.HTTP + "/readyz")
		if err == nil {
			var body struct {
				Status  string
				Members int
			}
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %+v", resp.StatusCode, body)
			if resp.StatusCode == 200 && body.Members == want {
				return
			}
		}
		select {
		case <-ctx.Done():
			n.t.Fatalf("%s: never saw %d members ready (last: %s)", n.name, want, last)
		case <-tick.C:
		}
	}
}

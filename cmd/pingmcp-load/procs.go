package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pingmcp/pingmcp/internal/procstat"
)

// proc is one process of the loopback cluster: its output goes to a log
// file of its own, and the line that says it is ready is kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	// HTTP and Cluster are a node's addresses, from its start line.
	HTTP, Cluster string
}

// startProc runs bin with args, writes its output to dir/name.log, and
// returns once a line containing ready appears (or fails after a minute or
// when the process exits first).
func startProc(ctx context.Context, dir, name, ready, bin string, args ...string) (*proc, error) {
	return startProcEnv(ctx, dir, name, ready, bin, nil, args...)
}

// startProcEnv is startProc with env added to this process's environment:
// where secrets go (a command line is readable by every local user).
func startProcEnv(ctx context.Context, dir, name, ready, bin string, env []string, args ...string) (*proc, error) {
	logFile, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	out, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout = p.cmd.Stderr // redis-server logs to stdout
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	found := make(chan string, 1)
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if ready != "" && strings.Contains(line, ready) {
				select {
				case found <- line:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	select {
	case line := <-found:
		var rec struct{ HTTP, Cluster string }
		json.Unmarshal([]byte(line), &rec)
		p.HTTP, p.Cluster = rec.HTTP, rec.Cluster
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (see %s)", name, filepath.Join(dir, name+".log"))
	case <-time.After(time.Minute):
		p.kill()
		return nil, fmt.Errorf("%s was not ready within a minute", name)
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

// kill ends the process at once (SIGKILL) and waits for it.
func (p *proc) kill() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// rss is the process's resident memory now, in bytes (0 once it exited).
func (p *proc) rss() int64 {
	n, _ := procstat.RSS(p.cmd.Process.Pid)
	return n
}

// members asks a node's /readyz how many members it sees (-1: not ready).
func (p *proc) members() int {
	resp, err := http.Get("http://" + p.HTTP + "/readyz")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var body struct{ Members int }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return -1
	}
	return body.Members
}

// awaitMembers polls every node until each sees want members.
func awaitMembers(ctx context.Context, want int, nodes ...*proc) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		all := true
		for _, n := range nodes {
			all = all && n.members() == want
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the nodes never all saw %d members", want)
		case <-tick.C:
		}
	}
}

// freeAddr returns a loopback address free now. The kernel may hand a
// closed port out again at once, so it never returns one it returned
// before: two servers started one after the other (the IdP and the Todo
// API) are not given the same address.
func freeAddr() (string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free loopback address")
}

var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// group tracks the cluster's processes so that all are killed at exit.
type group struct {
	mu    sync.Mutex
	procs []*proc
}

func (g *group) add(p *proc) *proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.procs = append(g.procs, p)
	return p
}

// list is the processes started, killed ones included.
func (g *group) list() []*proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*proc(nil), g.procs...)
}

func (g *group) killAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.procs {
		p.kill()
	}
}

// cpuTime is procstat.CPU, false once the process exited.
func cpuTime(pid int) (time.Duration, bool) {
	d, err := procstat.CPU(pid)
	return d, err == nil
}

// cpuMeter sums what each process of the group, and this one, used while
// the sessions called: each process's time from the meter's start (or its
// own, for one started later), as last seen by sample; a process killed
// loses at most what it used since the sample before.
type cpuMeter struct {
	mu    sync.Mutex
	g     *group
	start map[*proc]time.Duration
	last  map[*proc]time.Duration
	self  [2]time.Duration // this process at the start, and last seen
}

func newCPUMeter(g *group) *cpuMeter {
	m := &cpuMeter{g: g, start: map[*proc]time.Duration{}, last: map[*proc]time.Duration{}}
	m.self[0], _ = cpuTime(os.Getpid())
	for _, p := range g.list() {
		if t, ok := cpuTime(p.cmd.Process.Pid); ok {
			m.start[p], m.last[p] = t, t
		}
	}
	return m
}

func (m *cpuMeter) sample() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.g.list() {
		if t, ok := cpuTime(p.cmd.Process.Pid); ok {
			m.last[p] = t
		}
	}
	m.self[1], _ = cpuTime(os.Getpid())
}

// byRole is each role's CPU (node1…nodeN count as "nodes"), and this
// process's as "pingmcp-load".
func (m *cpuMeter) byRole() map[string]time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]time.Duration{"pingmcp-load": m.self[1] - m.self[0]}
	for p, t := range m.last {
		role := p.name
		if strings.HasPrefix(role, "node") {
			role = "nodes"
		}
		out[role] += t - m.start[p]
	}
	return out
}

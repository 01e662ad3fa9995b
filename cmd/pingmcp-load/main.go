// Command pingmcp-load runs pingmcp under load on loopback and checks that
// it holds: a cluster of `pingmcp serve` nodes sharing a Redis, with the
// development authorization server and the Todo API in processes of their
// own; many MCP sessions, each a user signed in through the authorization
// code flow, calling the Todo tools for a while; and a member killed
// (SIGKILL) and restarted a number of times meanwhile.
//
// It reports calls per second, latency percentiles (of all calls, of each
// session's first, which exchanges its user's token, and of the others
// outside every kill window and overlapping one), errors by kind, split
// into those inside a kill window (from the kill until the restarted node
// is a member again plus --settle) and those outside, the memory of each
// node, and whether every todo created was stored exactly once (creates
// carry an idempotency key and are retried until they succeed). It exits 1
// when an error happened outside a kill window, when an error inside one
// was not retryable, or when a todo is missing or doubled.
//
//	go run ./cmd/pingmcp-load --sessions 1000 --duration 5m --kills 2
//
// Everything listens on 127.0.0.1 and ends with the command.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pingmcp/pingmcp/internal/retry"
)

type options struct {
	binary   string
	sessions int
	nodes    int
	duration time.Duration
	kills    int
	down     time.Duration
	settle   time.Duration
	think    time.Duration
	jitter   float64
	writes   float64
	dir      string
	logLevel string
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "the pingmcp binary (default: built from this checkout into the work folder)")
	flag.IntVar(&o.sessions, "sessions", 1000, "concurrent MCP sessions, each of its own user (1 … 10000)")
	flag.IntVar(&o.nodes, "nodes", 3, "cluster nodes (2 … 9)")
	flag.DurationVar(&o.duration, "duration", 5*time.Minute, "how long the sessions call tools (≤ 1h)")
	flag.IntVar(&o.kills, "kills", 2, "times the last node is killed (SIGKILL) and restarted, evenly spread")
	flag.DurationVar(&o.down, "down", 5*time.Second, "how long a killed node stays down")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "how long after a restarted node rejoined errors still count as the kill's")
	flag.DurationVar(&o.think, "think", time.Second, "pause between two calls of a session")
	flag.Float64Var(&o.jitter, "think-jitter", 0, "each pause drawn within ± this share of --think (0 … 1); 0: every pause is --think, and sessions that retried together after a kill stay in step")
	flag.Float64Var(&o.writes, "writes", 0.5, "share of calls that create a todo (the others list them)")
	flag.StringVar(&o.dir, "dir", "", "work folder for logs (default: a new temporary one, kept)")
	flag.StringVar(&o.logLevel, "log-level", "info", "the processes' log level (debug logs every request)")
	flag.Parse()
	if o.sessions < 1 || o.sessions > 10000 || o.nodes < 2 || o.nodes > 9 || o.duration <= 0 || o.duration > time.Hour ||
		o.kills < 0 || o.writes < 0 || o.writes > 1 || o.think < 0 || o.jitter < 0 || o.jitter > 1 {
		fmt.Fprintln(os.Stderr, "pingmcp-load: a flag is out of range (see -h)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pingmcp-load:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// cluster is what run started.
type cluster struct {
	o        options
	dir      string
	bin      string
	g        group
	nodeArgs []string
	// nodeEnv holds the nodes' secrets (PINGMCP_<FLAG>): never in their
	// command lines, which every local user may read in /proc.
	nodeEnv []string
	certs   string // directory of the nodes' certificates, by pingmcp certs
	nodes   []*proc
	issuer  string
	lb      balancer
	cpu     *cpuMeter // while the sessions call
}

func (c *cluster) urls() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, "http://"+n.HTTP+"/mcp")
	}
	return out
}

func (c *cluster) startNode(ctx context.Context, i int) (*proc, error) {
	// Node i (and whatever replaces it) has certificate node-(i+1).
	name := "node-" + strconv.Itoa(i+1)
	args := append(slices.Clone(c.nodeArgs), "--cluster-tls-cert", filepath.Join(c.certs, name+".crt"),
		"--cluster-tls-key", filepath.Join(c.certs, name+".key"), "--cluster-tls-ca", filepath.Join(c.certs, "ca.crt"))
	if i > 0 {
		args = append(args, "--cluster-seeds", c.nodes[0].Cluster)
	}
	p, err := startProcEnv(ctx, c.dir, "node"+strconv.Itoa(i+1), `"msg":"node started"`, c.bin, c.nodeEnv, args...)
	if err != nil {
		return nil, err
	}
	return c.g.add(p), nil
}

func run(ctx context.Context, o options, out io.Writer) (bool, error) {
	c := &cluster{o: o, dir: o.dir}
	var err error
	if c.dir == "" {
		c.dir, err = os.MkdirTemp("", "pingmcp-load-")
	} else {
		err = os.MkdirAll(c.dir, 0o700)
	}
	if err != nil {
		return false, err
	}
	fmt.Fprintf(out, "pingmcp-load: logs in %s\n", c.dir)
	defer c.g.killAll()
	if err := c.start(ctx); err != nil {
		return false, err
	}

	// Sign the users in and open their sessions.
	oa, err := newOAuth(ctx, c.issuer, resource)
	if err != nil {
		return false, err
	}
	start := time.Now()
	clients := make([]*mcpClient, o.sessions)
	httpClient := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0}}
	if err := parallel(ctx, o.sessions, 32, func(i int) error {
		tok, err := oa.login(ctx, "user"+strconv.Itoa(i+1), "openid todo_api:read todo_api:write")
		if err != nil {
			return err
		}
		cl := &mcpClient{token: tok, lb: &c.lb, home: uint64(i), http: httpClient}
		if err := cl.connect(ctx); err != nil {
			return fmt.Errorf("session of user%d: %w", i+1, err)
		}
		clients[i] = cl
		return nil
	}); err != nil {
		return false, err
	}
	fmt.Fprintf(out, "pingmcp-load: %d users signed in, %d sessions open in %v\n", o.sessions, o.sessions, time.Since(start).Round(time.Millisecond))

	// Load, with kills.
	st := newStats()
	loadCtx, endLoad := context.WithTimeout(ctx, o.duration)
	defer endLoad()
	var wg sync.WaitGroup
	created := make([][]string, o.sessions) // each session's acknowledged creates
	for i, cl := range clients {
		wg.Go(func() { created[i] = session(loadCtx, ctx, o, i, cl, st) })
	}
	memory := make([]int64, o.nodes) // peak RSS per node slot
	var memMu sync.Mutex
	c.cpu = newCPUMeter(&c.g)
	sampleMemory := func() {
		c.cpu.sample()
		memMu.Lock()
		defer memMu.Unlock()
		for i, n := range c.nodes {
			memory[i] = max(memory[i], n.rss())
		}
	}
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			sampleMemory()
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var windows []window
	for k := range o.kills {
		at := st.start.Add(time.Duration(float64(o.duration) * float64(k+1) / float64(o.kills+1)))
		if !sleepUntil(loadCtx, at) {
			break
		}
		w, err := c.killAndRestart(loadCtx)
		if err != nil {
			endLoad()
			wg.Wait()
			return false, err
		}
		windows = append(windows, w)
		if w.problem != "" {
			fmt.Fprintf(out, "pingmcp-load: killed node%d at %v: %s\n", o.nodes, w.from.Sub(st.start).Round(time.Millisecond), w.problem)
		} else {
			fmt.Fprintf(out, "pingmcp-load: killed node%d at %v, it rejoined %v later\n", o.nodes, w.from.Sub(st.start).Round(time.Millisecond), w.rejoined.Sub(w.from).Round(time.Millisecond))
		}
	}
	wg.Wait()
	sampleMemory()
	elapsed := time.Since(st.start)

	// Every create acknowledged must be in its user's list exactly once.
	missing, doubled, unchecked := 0, 0, 0
	verifyCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	parallel(verifyCtx, o.sessions, 32, func(i int) error {
		text, err := untilDone(verifyCtx, func() (string, error) { return clients[i].callTool(verifyCtx, "get_my_todo_list", nil) }, nil)
		if err != nil {
			st.mu.Lock()
			unchecked++
			st.mu.Unlock()
			return nil
		}
		var list struct{ Todos []struct{ Text string } }
		json.Unmarshal([]byte(text), &list)
		seen := map[string]int{}
		for _, t := range list.Todos {
			seen[t.Text]++
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, want := range created[i] {
			switch seen[want] {
			case 0:
				missing++
			case 1:
			default:
				doubled++
			}
		}
		for _, n := range seen {
			if n > 1 {
				doubled += n - 1
			}
		}
		return nil
	})
	fmt.Fprintf(out, "pingmcp-load: %d requests found their node refusing connections and went to the next (as behind a load balancer)\n", c.lb.skipped.Load())
	return st.report(out, o, elapsed, windows, memory, c.cpu.byRole(), missing, doubled, unchecked), nil
}

const resource = "https://pingmcp-load.example/mcp"

// start runs Redis, the authorization server, the Todo API and the nodes.
func (c *cluster) start(ctx context.Context) error {
	o := c.o
	c.bin = o.binary
	if c.bin == "" {
		c.bin = filepath.Join(c.dir, "pingmcp")
		build := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "./cmd/pingmcp")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build pingmcp (run from the checkout's root, or give --binary): %w", err)
		}
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server is not installed (Debian: apt-get install -y redis-server)")
	}
	redisAddr, err := freeAddr()
	if err != nil {
		return err
	}
	// Any local user may connect to a loopback port: Redis asks for a
	// password, which reaches redis-server in a file only this user reads
	// and the nodes through their environment, never a command line.
	_, redisPort, _ := strings.Cut(redisAddr, ":")
	redisPass := rand.Text()
	redisConf := filepath.Join(c.dir, "redis.conf")
	conf := fmt.Sprintf("port %s\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir %q\nrequirepass %s\n", redisPort, c.dir, redisPass)
	if err := os.WriteFile(redisConf, []byte(conf), 0o600); err != nil {
		return err
	}
	p, err := startProc(ctx, c.dir, "redis", "Ready to accept connections", redisBin, redisConf)
	if err != nil {
		return err
	}
	c.g.add(p)
	redisURL := func(db int) string {
		return fmt.Sprintf("PINGMCP_REDIS_URL=redis://:%s@%s/%d", redisPass, redisAddr, db)
	}

	idpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	todoAddr, err := freeAddr()
	if err != nil {
		return err
	}
	c.issuer = "http://" + idpAddr
	todoURL := "http://" + todoAddr
	secret := rand.Text()
	logArgs := []string{"--log-format", "json", "--log-level", o.logLevel}
	secretEnv := "PINGMCP_CLIENT_SECRET=" + secret
	if p, err = startProcEnv(ctx, c.dir, "idp", `"msg":"development authorization server started"`, c.bin, []string{secretEnv},
		append([]string{"idp", "--addr", idpAddr, "--resource", resource, "--todo-api-url", todoURL,
			"--test-users", strconv.Itoa(o.sessions)}, logArgs...)...); err != nil {
		return err
	}
	c.g.add(p)
	if p, err = startProcEnv(ctx, c.dir, "todo-api", `"msg":"todo api started"`, c.bin, []string{redisURL(1)},
		append([]string{"todo-api", "--addr", todoAddr, "--issuer", c.issuer, "--resource", todoURL}, logArgs...)...); err != nil {
		return err
	}
	c.g.add(p)

	// The cluster's mutual TLS, made as README says.
	if c.certs, err = os.MkdirTemp(c.dir, "certs-"); err != nil {
		return err
	}
	certs := exec.CommandContext(ctx, c.bin, "certs", "--dir", c.certs, "--nodes", strconv.Itoa(o.nodes))
	if out, err := certs.CombinedOutput(); err != nil {
		return fmt.Errorf("pingmcp certs: %w\n%s", err, out)
	}

	key := make([]byte, 32)
	rand.Read(key)
	c.nodeArgs = append([]string{"serve", "--addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--cluster-provider", "automanaged",
		"--auth", "jwt", "--issuer", c.issuer, "--resource", resource, "--client-id", "pingmcp",
		"--todo-api-url", todoURL, "--tools", "todo"}, logArgs...)
	c.nodeEnv = []string{secretEnv, redisURL(0), "PINGMCP_STATE_KEYS=k1:" + base64.StdEncoding.EncodeToString(key)}
	for i := range o.nodes {
		n, err := c.startNode(ctx, i)
		if err != nil {
			return err
		}
		c.nodes = append(c.nodes, n)
	}
	awaitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := awaitMembers(awaitCtx, o.nodes, c.nodes...); err != nil {
		return err
	}
	c.lb.set(c.urls())
	return nil
}

// window is a kill's: from the kill until the restarted node rejoined,
// plus the settle time.
type window struct {
	from, rejoined, until time.Time
	problem               string // why the kill went wrong, if it did
}

func (w window) holds(t time.Time) bool { return !t.Before(w.from) && !t.After(w.until) }

// killAndRestart kills the last node, waits --down, starts it again and
// waits until every node sees it.
func (c *cluster) killAndRestart(ctx context.Context) (window, error) {
	o := c.o
	last := len(c.nodes) - 1
	w := window{from: time.Now()}
	if c.cpu != nil {
		c.cpu.sample() // what the node used up to its kill
	}
	c.nodes[last].kill()
	if !sleepUntil(ctx, w.from.Add(o.down)) {
		return w, ctx.Err()
	}
	n, err := c.startNode(context.WithoutCancel(ctx), last)
	if err != nil {
		return w, err
	}
	c.nodes[last] = n
	c.lb.set(c.urls())
	awaitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err = awaitMembers(awaitCtx, len(c.nodes), c.nodes...)
	w.rejoined = time.Now()
	w.until = w.rejoined.Add(o.settle)
	if err != nil {
		// The run goes on (and fails): what happened meanwhile is in the
		// report.
		w.problem = fmt.Sprintf("node%d did not rejoin within a minute", len(c.nodes))
	}
	return w, nil
}

// session is one session's load: from a moment within the first --think,
// a create (with an idempotency key) or a list, a pause, again, until ctx
// ends. A failed call is retried while
// pingmcp says it may be (or the node is unreachable); a create is retried
// with its key until it succeeds, so that it is stored exactly once. It
// returns the texts of the creates acknowledged.
func session(ctx, outer context.Context, o options, i int, cl *mcpClient, st *stats) []string {
	var created []string
	pick := uint64(i) * 2654435761
	// Sessions start at moments spread over one --think, as independent
	// clients would: started together, they would call in waves.
	pick = pick*6364136223846793005 + 1442695040888963407
	if !sleepUntil(ctx, time.Now().Add(time.Duration(float64(pick>>11)/float64(1<<53)*float64(o.think)))) {
		return nil
	}
	for n := 0; ctx.Err() == nil; n++ {
		pick = pick*6364136223846793005 + 1442695040888963407
		write := float64(pick>>11)/float64(1<<53) < o.writes
		var err error
		began := time.Now()
		if write {
			text := fmt.Sprintf("load %d %d", i+1, n)
			args := map[string]any{"text": text, "requestKey": fmt.Sprintf("s%d-%d", i+1, n)}
			// A create is finished even past the deadline: it may have
			// been stored, and only its retries can tell.
			_, err = untilDone(outer, func() (string, error) { return cl.callTool(outer, "create_new_todo", args) }, st)
			if err == nil {
				created = append(created, text)
			}
		} else {
			_, err = untilDone(ctx, func() (string, error) { return cl.callTool(ctx, "get_my_todo_list", nil) }, st)
		}
		if err == nil {
			st.ok(time.Since(began), n == 0)
		} else if ctx.Err() == nil {
			st.fail(err)
		}
		pause := o.think
		if o.jitter > 0 {
			pick = pick*6364136223846793005 + 1442695040888963407
			pause = time.Duration(float64(o.think) * (1 + o.jitter*(2*float64(pick>>11)/float64(1<<53)-1)))
		}
		if !sleepUntil(ctx, time.Now().Add(pause)) {
			break
		}
	}
	return created
}

// untilDone runs call until it succeeds, fails for good, or ctx ends; each
// retryable failure is counted in st (if set) and waited out.
func untilDone(ctx context.Context, call func() (string, error), st *stats) (string, error) {
	pace := retry.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	for {
		out, err := call()
		var f *failure
		if err == nil || ctx.Err() != nil || !errors.As(err, &f) || !f.retryable {
			return out, err
		}
		if st != nil {
			st.fail(err)
		}
		if pace.Wait(ctx) != nil {
			return "", err
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// parallel runs f(0 … n-1), width at a time; the first error stops it.
func parallel(ctx context.Context, n, width int, f func(int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(width, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// stats are the load's outcomes.
type stats struct {
	start time.Time
	mu    sync.Mutex
	lat   []sample
	errs  []errorAt
}

// sample is a successful call: when it ended, how long it took, and
// whether it was its session's first (which exchanges the user's token for
// the Todo API's: all sessions start together, so their first calls queue
// at the authorization server).
type sample struct {
	end   time.Time
	d     time.Duration
	first bool
}

// during says whether the call overlapped a kill window.
func (c sample) during(windows []window) bool {
	start := c.end.Add(-c.d)
	return slices.ContainsFunc(windows, func(w window) bool { return !c.end.Before(w.from) && !start.After(w.until) })
}

type errorAt struct {
	at        time.Time
	kind      string
	retryable bool
	detail    string
}

func newStats() *stats { return &stats{start: time.Now()} }

func (s *stats) ok(d time.Duration, first bool) {
	s.mu.Lock()
	s.lat = append(s.lat, sample{time.Now(), d, first})
	s.mu.Unlock()
}

func (s *stats) fail(err error) {
	e := errorAt{at: time.Now(), kind: "other", detail: err.Error()}
	var f *failure
	if errors.As(err, &f) {
		e.kind, e.retryable, e.detail = f.kind, f.retryable, f.detail
	}
	s.mu.Lock()
	s.errs = append(s.errs, e)
	s.mu.Unlock()
}

// latencies describes d's p50, p99 and max (d is sorted).
func latencies(d []time.Duration) string {
	slices.Sort(d)
	return fmt.Sprintf("p50 %v, p99 %v, max %v", percentile(d, .5).Round(10*time.Microsecond),
		percentile(d, .99).Round(10*time.Microsecond), percentile(d, 1).Round(time.Millisecond))
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(math.Ceil(p*float64(len(sorted))))-1]
}

// report prints the outcome and says whether the run held.
func (s *stats) report(out io.Writer, o options, elapsed time.Duration, windows []window, memory []int64,
	cpu map[string]time.Duration, missing, doubled, unchecked int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(out, "\n%d sessions on %d nodes for %v, %d kills of node%d (down %v each)\n", o.sessions, o.nodes, elapsed.Round(time.Second), len(windows), o.nodes, o.down)
	var all, first, inside, outside []time.Duration
	for _, c := range s.lat {
		all = append(all, c.d)
		switch {
		case c.first:
			first = append(first, c.d)
		case c.during(windows):
			inside = append(inside, c.d)
		default:
			outside = append(outside, c.d)
		}
	}
	fmt.Fprintf(out, "calls: %d succeeded, %.1f/s; latency %s\n", len(all), float64(len(all))/elapsed.Seconds(), latencies(all))
	// A session's first call exchanges its user's token (all at once, at
	// the start); a call overlapping a kill window (from the kill until the
	// restarted node rejoined, plus --settle) may wait for a moved
	// session's failover; the others measure the cluster at rest (issue
	// 16's tails).
	fmt.Fprintf(out, "  each session's first (token exchange): %d calls, latency %s\n", len(first), latencies(first))
	fmt.Fprintf(out, "  the others, outside the kill windows: %d calls, latency %s\n", len(outside), latencies(outside))
	fmt.Fprintf(out, "  the others, overlapping a kill window: %d calls, latency %s\n", len(inside), latencies(inside))
	// What a call costs the machine (every process shares its cores): the
	// CPU each used while the sessions called, over the calls.
	if n := len(all); n > 0 {
		var total time.Duration
		parts := []string{}
		for _, role := range []string{"nodes", "todo-api", "redis", "idp", "pingmcp-load"} {
			total += cpu[role]
			parts = append(parts, fmt.Sprintf("%s %.2f", role, cpu[role].Seconds()*1e3/float64(n)))
		}
		fmt.Fprintf(out, "CPU per call, ms: %s; all %.2f\n", strings.Join(parts, ", "), total.Seconds()*1e3/float64(n))
	}
	type key struct {
		kind      string
		retryable bool
		inWindow  bool
	}
	counts := map[key]int{}
	examples := map[key]string{}
	held := true
	for _, e := range s.errs {
		in := slices.ContainsFunc(windows, func(w window) bool { return w.holds(e.at) })
		k := key{e.kind, e.retryable, in}
		counts[k]++
		examples[k] = e.detail
		if !in || !e.retryable {
			held = false
		}
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	fmt.Fprintln(out, "errors (every attempt that failed, retried ones included):")
	if len(keys) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, k := range keys {
		where := "outside the kill windows"
		if k.inWindow {
			where = "in a kill window"
		}
		fmt.Fprintf(out, "  %-14s retryable=%-5v %-24s %6d  e.g. %.120s\n", k.kind, k.retryable, where, counts[k], examples[k])
	}
	for i := range memory {
		fmt.Fprintf(out, "node%d: peak RSS %.1f MiB\n", i+1, float64(memory[i])/(1<<20))
	}
	fmt.Fprintf(out, "todos: %d acknowledged creates missing, %d stored more than once, %d sessions unchecked\n", missing, doubled, unchecked)
	held = held && missing == 0 && doubled == 0 && unchecked == 0
	for _, w := range windows {
		if w.problem != "" {
			fmt.Fprintln(out, "kill:", w.problem)
			held = false
		}
	}
	if held {
		fmt.Fprintln(out, "HELD: every error was retryable and inside a kill window; every todo stored exactly once")
	} else {
		fmt.Fprintln(out, "FAILED: see the errors and todos above")
	}
	return held
}

package e2e

// Benchmarks of the request path: tools/call of a trivial tool, and
// initialize, at 1 and 32 concurrent clients, through
//
//	sdk          go-sdk's StreamableHTTPHandler served by this process, no
//	             edge, no cluster;
//	sdk-process  the same handler in a process of its own (this test
//	             binary run again): the baseline the nodes, also processes
//	             of their own, are measured against (issue 16's hop targets);
//	sdk-shared-process  the same, all sessions on one mcp.Server (the
//	             SDK's own way to serve many sessions): what opening a
//	             session costs the SDK when no server is built for it;
//	sdk-proxied  sdk-process behind the standard library's reverse proxy
//	             in a process of its own: forwarding done the ordinary way
//	             (cross forwards too);
//	sdk-spliced  sdk-process behind a TCP relay in a process of its own:
//	             what a process in between costs at the least;
//	sdk-relayed  sdk-process serving each request on a worker goroutine,
//	             its answer relayed back: an edge in front of an actor in
//	             one process at the least (single is one, with the actor's
//	             mailbox turn between the two);
//	sdk-journalled  sdk-process writing to Redis what a node in Redis mode
//	             writes for each request, one round trip before it, the
//	             straightforward way (unbatched, unfenced);
//	single  one pingmcp node (role both, provider single);
//	cross   an edge-only node forwarding to the session actors of a member;
//
// and what an idle live session costs in memory on each. One client drives
// every target, so that only the server side differs. They run only with
// -bench; the command and the figures are in BENCHMARKS.md.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/procstat"
	"github.com/pingmcp/pingmcp/internal/redistest"
	"github.com/pingmcp/pingmcp/state"

	"github.com/pingmcp/pingmcp/tools/conformance"
)

// benchRound bounds the sessions the initialize benchmark keeps open: once
// each client has opened this many, the clock stops while they are deleted.
const benchRound = 32

var benchConcurrency = []int{1, 32}

// benchTargets are the servers under test, each started by its
// sub-benchmark and stopped when it ends.
var benchTargets = []struct {
	name  string
	start func(*testing.B) *benchServer
}{
	{"sdk", sdkServer},
	{"sdk-process", sdkProcessServer},
	{"sdk-shared-process", sdkSharedProcessServer},
	{"sdk-proxied", sdkProxiedServer},
	{"sdk-spliced", sdkSplicedServer},
	{"sdk-relayed", sdkRelayedServer},
	{"sdk-journalled", sdkJournalledServer},
	{"single", singleServer},
	{"single-redis", singleRedisServer},
	{"cross", crossServer},
	{"pair", pairServer},
	{"cross-redis", crossRedisServer},
	{"cross-redis-baseline", crossRedisBaseline},
}

// BenchmarkToolsCall times tools/call of test_simple_text, each client on a
// session of its own opened beforehand, the whole response read.
func BenchmarkToolsCall(b *testing.B) {
	for _, target := range benchTargets {
		b.Run(target.name, func(b *testing.B) {
			srv := target.start(b)
			c := newBenchClient(b, srv.url)
			sessions := make([]*benchSession, slices.Max(benchConcurrency))
			parallel(b, len(sessions), func(w int) error {
				sessions[w] = &benchSession{c: c}
				return sessions[w].open()
			})
			for _, n := range benchConcurrency {
				b.Run(fmt.Sprintf("c%d", n), func(b *testing.B) {
					before := srv.usage(b)
					profiled := srv.cpuProfiles(b)
					measure(b, n, func(w int) error { return sessions[w].callTool() }, nil)
					profiled()
					srv.reportUsage(b, before)
				})
			}
		})
	}
}

// benchPairs are the targets BenchmarkToolsCallPaired measures against
// each other: issue 16's ratios, each a target over its baseline.
var benchPairs = [][2]string{
	{"single", "sdk-process"},
	{"cross", "sdk-process"},
	{"sdk-proxied", "sdk-process"},
	{"cross", "sdk-proxied"},
	{"sdk-spliced", "sdk-process"},
	{"cross", "sdk-spliced"},
	{"sdk-relayed", "sdk-process"},
	{"single", "sdk-relayed"},
	{"single-redis", "single"},
	{"cross-redis", "cross"},
	{"sdk-journalled", "sdk-process"},
}

// pairedTurn is how many calls a target makes in one turn of
// BenchmarkToolsCallPaired at n clients: a fraction of a second here.
func pairedTurn(n int) int { return max(250, 25*n) }

// BenchmarkToolsCallPaired is BenchmarkToolsCall for two targets running
// at once, called in turns (pairedTurn calls on one, then as many on the
// other, each going first every other turn, until each made b.N): a
// machine whose speed drifts over seconds (a VM's neighbours, its host's
// clock) slows both alike, so their ratios hold still where those of
// targets measured one after another swing. It reports each target's p50 and calls/s over all its turns, and
// the medians over the turns of the ratios within each: ratio-p50 (the
// target's p50 over its baseline's) and ratio-calls/s.
func BenchmarkToolsCallPaired(b *testing.B) {
	for _, pair := range benchPairs {
		b.Run(pair[0]+"-vs-"+pair[1], func(b *testing.B) {
			var srvs [2]*benchServer
			var sessions [2][]*benchSession
			for i, name := range pair {
				srvs[i] = benchTarget(b, name)(b)
				c := newBenchClient(b, srvs[i].url)
				sessions[i] = make([]*benchSession, slices.Max(benchConcurrency))
				parallel(b, len(sessions[i]), func(w int) error {
					sessions[i][w] = &benchSession{c: c}
					return sessions[i][w].open()
				})
			}
			for _, n := range benchConcurrency {
				b.Run(fmt.Sprintf("c%d", n), func(b *testing.B) {
					var all [2][]time.Duration
					var elapsed [2]time.Duration
					var ratioP50, ratioRate []float64
					b.ResetTimer()
					for done, turn := 0, 0; done < b.N; done, turn = done+pairedTurn(n), turn+1 {
						calls := min(pairedTurn(n), b.N-done)
						var p50, rate [2]float64
						for k := range srvs {
							i := k ^ turn&1 // each goes first every other turn
							latencies := make([][]time.Duration, n)
							start := time.Now()
							timedCalls(b, n, calls, func(w int) error { return sessions[i][w].callTool() }, latencies)
							took := time.Since(start)
							elapsed[i] += took
							lat := slices.Concat(latencies...)
							all[i] = append(all[i], lat...)
							slices.Sort(lat)
							p50[i], rate[i] = quantile(lat, 0.5), float64(calls)/took.Seconds()
						}
						ratioP50 = append(ratioP50, p50[0]/p50[1])
						ratioRate = append(ratioRate, rate[0]/rate[1])
					}
					b.StopTimer()
					for i, name := range pair {
						slices.Sort(all[i])
						b.ReportMetric(quantile(all[i], 0.5), name+"-p50-µs")
						b.ReportMetric(float64(b.N)/elapsed[i].Seconds(), name+"-calls/s")
					}
					b.ReportMetric(median(ratioP50), "ratio-p50")
					b.ReportMetric(median(ratioRate), "ratio-calls/s")
					b.ReportMetric(float64(len(ratioP50)), "turns")
				})
			}
		})
	}
}

// benchTarget is the start function of the target named name.
func benchTarget(b *testing.B, name string) func(*testing.B) *benchServer {
	for _, t := range benchTargets {
		if t.name == name {
			return t.start
		}
	}
	b.Fatalf("no benchmark target %q", name)
	return nil
}

// median is the median of xs (which it sorts).
func median(xs []float64) float64 {
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// BenchmarkInitialize times the initialize request of a fresh session alone
// (no initialized notification). Each time every client has opened
// benchRound sessions, the clock stops while they are deleted.
func BenchmarkInitialize(b *testing.B) {
	for _, target := range benchTargets {
		b.Run(target.name, func(b *testing.B) {
			c := newBenchClient(b, target.start(b).url)
			for _, n := range benchConcurrency {
				b.Run(fmt.Sprintf("c%d", n), func(b *testing.B) {
					sessions := make([]*benchSession, n)
					opened := make([][]string, n) // by client, since the last round
					for w := range sessions {
						sessions[w] = &benchSession{c: c}
					}
					measure(b, n, func(w int) error {
						s := sessions[w]
						if err := s.initialize(); err != nil {
							return err
						}
						opened[w] = append(opened[w], s.id)
						return nil
					}, func() {
						parallel(b, n, func(w int) error {
							for _, id := range opened[w] {
								sessions[w].id = id
								if err := sessions[w].delete(); err != nil {
									return err
								}
							}
							opened[w] = opened[w][:0]
							return nil
						})
					})
				})
			}
		})
	}
}

// BenchmarkIdleSession opens b.N sessions (initialize, then the initialized
// notification) one after another and leaves them idle, then reports the
// memory they added per session: the live heap and goroutine stacks of this
// process for sdk, after a GC; the resident set (VmRSS) of each process
// for sdk-process, single and cross, which includes the Go runtime's slack (garbage not
// yet collected, memory not yet returned to the OS). Under a GOMEMLIMIT
// (in bytes) it also reports each node's peak anonymous memory while the
// sessions opened, as a fraction of the limit (watchAnon).
func BenchmarkIdleSession(b *testing.B) {
	for _, target := range benchTargets {
		b.Run(target.name, func(b *testing.B) {
			srv := target.start(b)
			c := newBenchClient(b, srv.url)
			// A first session and call fill what every session shares
			// (schema cache, pools, connections).
			warm := &benchSession{c: c}
			if err := warm.open(); err != nil {
				b.Fatal(err)
			}
			if err := warm.callTool(); err != nil {
				b.Fatal(err)
			}
			before := srv.memory(b)
			peaks := srv.watchAnon(b)
			for b.Loop() {
				s := &benchSession{c: c}
				if err := s.open(); err != nil {
					b.Fatal(err)
				}
			}
			for role, peak := range peaks() {
				b.ReportMetric(peak, role+"-peak-anon/limit")
			}
			after := srv.memory(b)
			for unit, v := range after {
				b.ReportMetric(float64(v-before[unit])/float64(b.N), unit)
			}
			// Under a GOMEMLIMIT a node may passivate idle actors (memory
			// pressure): then not every session measured was live. Reported
			// as a count, not per session.
			for i, n := range srv.nodes {
				b.ReportMetric(n.metric(context.Background(), "pingmcp_memory_passivations_total"), srv.roles[i]+"-passivated")
			}
		})
	}
}

// benchServer is a running target.
type benchServer struct {
	url string
	// nodes are the pingmcp processes; none for sdk, which runs here.
	nodes []*node
	// roles name the nodes in memory metrics.
	roles []string
	// pid is the process of sdk-process, and of the SDK behind
	// sdk-proxied.
	pid int
	// proxy is sdk-proxied's proxy process (role proxy; the SDK's is sdk).
	proxy *childProcess
}

// memory returns what the target holds now, by metric unit.
func (s *benchServer) memory(b *testing.B) map[string]int64 {
	if s.pid != 0 {
		return map[string]int64{"sdk-RSS-B/session": vmRSS(b, s.pid)}
	}
	if len(s.nodes) == 0 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return map[string]int64{"heap-B/session": int64(ms.HeapAlloc), "stack-B/session": int64(ms.StackInuse)}
	}
	out := map[string]int64{}
	for i, n := range s.nodes {
		out[s.roles[i]+"-RSS-B/session"] = vmRSS(b, n.cmd.Process.Pid)
	}
	return out
}

// watchAnon samples each node's anonymous resident memory (procstat.Anon:
// what GOMEMLIMIT bounds, without the binary's pages) every 100 ms while
// the sessions open, when the benchmark's environment sets GOMEMLIMIT (in
// bytes; the nodes inherit it); the function it returns stops it and gives
// each role's peak as a fraction of the limit. A node at its limit should
// stay at or under 1.
func (s *benchServer) watchAnon(b *testing.B) func() map[string]float64 {
	limit, err := strconv.ParseInt(os.Getenv("GOMEMLIMIT"), 10, 64)
	if err != nil || limit <= 0 || len(s.nodes) == 0 {
		return func() map[string]float64 { return nil }
	}
	peaks := make([]int64, len(s.nodes))
	sample := func() {
		for i, n := range s.nodes {
			if a, err := procstat.Anon(n.cmd.Process.Pid); err == nil {
				peaks[i] = max(peaks[i], a)
			}
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() map[string]float64 {
		close(stop)
		<-done
		sample()
		out := map[string]float64{}
		for i, p := range peaks {
			out[s.roles[i]] = float64(p) / float64(limit)
		}
		return out
	}
}

// usage is what one of a target's processes has used so far: CPU time
// (user and system, all its threads) and read and write system calls.
type usage struct {
	cpu     time.Duration
	ioCalls int64
}

// benchProfileEnv names a folder: with it set, BenchmarkToolsCall saves
// there the CPU profile of each pingmcp node of a target while its calls
// run (<benchmark>-<role>.prof), taken through the node's admin API
// (/debug/pprof/profile), and the SDK's process's (role sdk) beside its
// /mcp, for benchProfileSecondsEnv seconds (8 unless set)
// from the first call on. A profile covers the calls only if the benchmark
// runs that long (-test.benchtime); the sub-benchmark waits for them. The
// testing package's first run of one call (b.N 1) is not profiled.
const (
	benchProfileEnv        = "PINGMCP_BENCH_CPUPROFILE"
	benchProfileSecondsEnv = "PINGMCP_BENCH_CPUPROFILE_SECONDS"
	// benchProfileKindEnv "trace" takes each process's execution trace
	// (/debug/pprof/trace, <benchmark>-<role>.trace) instead.
	benchProfileKindEnv = "PINGMCP_BENCH_PROFILE_KIND"
)

// cpuProfiles starts the CPU profiles benchProfileEnv asks for, and
// returns what waits for them to be saved.
func (s *benchServer) cpuProfiles(b *testing.B) (wait func()) {
	dir := os.Getenv(benchProfileEnv)
	if dir == "" || b.N == 1 {
		return func() {}
	}
	seconds := cmp.Or(os.Getenv(benchProfileSecondsEnv), "8")
	kind := cmp.Or(os.Getenv(benchProfileKindEnv), "profile")
	type profiled struct{ role, base, token string }
	var targets []profiled
	for i, n := range s.nodes {
		targets = append(targets, profiled{s.roles[i], "http://" + n.Admin, n.adminToken})
	}
	if s.proxy != nil { // each process serves its profile beside /mcp
		if s.proxy.profiled {
			targets = append(targets, profiled{"proxy", "http://" + s.proxy.addr, ""})
		}
		targets = append(targets, profiled{"sdk", "http://" + s.proxy.upstream, ""})
	} else if s.pid != 0 {
		targets = append(targets, profiled{"sdk", strings.TrimSuffix(s.url, "/mcp"), ""})
	}
	var wg sync.WaitGroup
	for _, t := range targets {
		path := filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "_")+"-"+t.role+map[string]string{"profile": ".prof"}[kind]+map[string]string{"trace": ".trace"}[kind])
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodGet, t.base+"/debug/pprof/"+kind+"?seconds="+seconds, nil)
			if err != nil {
				b.Error(err)
				return
			}
			if t.token != "" {
				req.Header.Set("Authorization", "Bearer "+t.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			defer resp.Body.Close()
			profile, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s: %s %s", req.URL, resp.Status, profile)
			}
			if err == nil {
				err = os.WriteFile(path, profile, 0o644)
			}
			if err != nil {
				b.Error(err)
			}
		})
	}
	return wg.Wait
}

// usage returns each of the target's processes' usage so far, none for sdk,
// which runs in this process beside the client.
func (s *benchServer) usage(b *testing.B) []usage {
	pids := []int{s.pid}
	if s.proxy != nil {
		pids = []int{s.proxy.pid, s.pid}
	}
	if s.pid == 0 {
		pids = pids[:0]
		for _, n := range s.nodes {
			pids = append(pids, n.cmd.Process.Pid)
		}
	}
	var used []usage
	for _, pid := range pids {
		reads, writes, err := procstat.IOCalls(pid)
		if err != nil {
			b.Fatal(err)
		}
		used = append(used, usage{cpu: processCPU(b, pid), ioCalls: reads + writes})
	}
	return used
}

// reportUsage reports what the target's processes used per call since
// before (usage's): CPU (server-cpu-µs/call) and read and write system calls
// (server-io-calls/call; unlike CPU time, the machine's changing speed does
// not move them), in all and, with more than one node, each node's by its
// role (edge-cpu-µs/call, member-io-calls/call, ...): only the member's work
// differs between memory and Redis modes.
func (s *benchServer) reportUsage(b *testing.B, before []usage) {
	if len(before) == 0 {
		return
	}
	perCall := func(n float64) float64 { return n / float64(b.N) }
	used := s.usedSince(b, before)
	if len(used) > 1 {
		for i, u := range used {
			b.ReportMetric(perCall(float64(u.cpu)/float64(time.Microsecond)), s.roles[i]+"-cpu-µs/call")
			b.ReportMetric(perCall(float64(u.ioCalls)), s.roles[i]+"-io-calls/call")
		}
	}
	all := sumUsage(used)
	b.ReportMetric(perCall(float64(all.cpu)/float64(time.Microsecond)), "server-cpu-µs/call")
	b.ReportMetric(perCall(float64(all.ioCalls)), "server-io-calls/call")
}

// usedSince is what each of the target's processes used since before
// (usage's).
func (s *benchServer) usedSince(b *testing.B, before []usage) []usage {
	now := s.usage(b)
	for i := range now {
		now[i].cpu -= before[i].cpu
		now[i].ioCalls -= before[i].ioCalls
	}
	return now
}

// sumUsage adds up the processes' usage.
func sumUsage(us []usage) usage {
	var all usage
	for _, u := range us {
		all.cpu += u.cpu
		all.ioCalls += u.ioCalls
	}
	return all
}

// processCPU is procstat.CPU, failing b when it cannot be read.
func processCPU(b testing.TB, pid int) time.Duration {
	d, err := procstat.CPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// vmRSS is procstat.RSS, failing b when it cannot be read.
func vmRSS(b testing.TB, pid int) int64 {
	n, err := procstat.RSS(pid)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// sdkServer serves go-sdk's handler from this process on a loopback
// listener, an mcp.Server per session with the conformance toolset and a
// shared schema cache, its session id chosen before the server is built
// (as the edge mints it), and a memory event store; stateful.
func sdkServer(b *testing.B) *benchServer {
	srv := httptest.NewServer(sdkHandler(false))
	b.Cleanup(srv.Close)
	return &benchServer{url: srv.URL + "/mcp"}
}

// sdkHandler serves the conformance toolset with go-sdk's
// StreamableHTTPHandler alone: the bare SDK, with a server per session, or
// (shared) one server for all.
func sdkHandler(shared bool) http.Handler {
	cache := mcp.NewSchemaCache()
	toolset := conformance.New()
	// The nodes log JSON at info; so does this, to nowhere.
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if shared {
		opts := &mcp.ServerOptions{Logger: logger, SchemaCache: cache}
		toolset.Configure(opts)
		s := mcp.NewServer(&mcp.Implementation{Name: "pingmcp", Version: "bench"}, opts)
		toolset.Install(s, nil)
		return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.StreamableHTTPOptions{Logger: logger, EventStore: mcp.NewMemoryEventStore(nil)})
	}
	var servers sync.Map // session id → *mcp.Server
	type newServer struct{}
	handler := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		if s, ok := r.Context().Value(newServer{}).(*mcp.Server); ok {
			return s
		}
		if s, ok := servers.Load(r.Header.Get("Mcp-Session-Id")); ok {
			return s.(*mcp.Server)
		}
		return nil
	}, &mcp.StreamableHTTPOptions{Logger: logger, EventStore: mcp.NewMemoryEventStore(nil)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Mcp-Session-Id")
		if id == "" && r.Method == http.MethodPost {
			id = rand.Text()
			opts := &mcp.ServerOptions{Logger: logger, SchemaCache: cache, GetSessionID: func() string { return id }}
			toolset.Configure(opts)
			s := mcp.NewServer(&mcp.Implementation{Name: "pingmcp", Version: "bench"}, opts)
			toolset.Install(s, nil)
			servers.Store(id, s)
			r = r.WithContext(context.WithValue(r.Context(), newServer{}, s))
		}
		handler.ServeHTTP(w, r)
		if r.Method == http.MethodDelete {
			servers.Delete(id)
		}
	})
}

// sdkProcessEnv, set, makes this test binary serve sdkHandler (one server
// for all sessions when it is "shared") on a loopback port instead of
// running tests (TestMain): the bare SDK in a process of its own, as a node
// is, so that the process boundary the nodes pay is paid by the baseline
// too.
const sdkProcessEnv = "PINGMCP_BENCH_SDK_PROCESS"

// listenForParent listens on a loopback port for a child startChild
// started, and tells the parent where ("listening ADDR", the first line of
// its output); it exits if it cannot.
func listenForParent() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening " + ln.Addr().String())
	return ln
}

// serveSDKProcess serves sdkHandler until killed; it prints the address
// it listens on, once it does, for the parent to read.
func serveSDKProcess() {
	ln := listenForParent()
	mux := http.NewServeMux()
	mode := os.Getenv(sdkProcessEnv)
	handler := sdkHandler(mode == "shared")
	switch mode {
	case "relayed":
		handler = relayed(handler)
	case "journalled":
		client := redis.NewClient(&redis.Options{Addr: os.Getenv(sdkRedisEnv)})
		handler = journalled(handler, state.NewRedisEvents(client, "bench:", state.EventOptions{}))
	}
	mux.Handle("/mcp", handler)
	// Its CPU profile, for benchProfileEnv: loopback, this test binary only.
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Fprintln(os.Stderr, http.Serve(ln, mux))
	os.Exit(1)
}

// sdkProcessServer is sdk in a process of its own: this test binary run
// again with sdkProcessEnv set.
func sdkProcessServer(b *testing.B) *benchServer { return sdkProcess(b, "1") }

// sdkSharedProcessServer is sdkProcessServer with one server for all
// sessions.
func sdkSharedProcessServer(b *testing.B) *benchServer { return sdkProcess(b, "shared") }

// sdkRelayedServer is sdkProcessServer with each request served as a node
// serves it, without anything of a node's own: the body read first, the
// SDK's handler run on another goroutine (a worker, as a session actor
// runs a request), what it writes relayed back to the request's own
// goroutine, which writes it out. Those two handoffs and the copy are an
// edge in front of an actor, in one process, at the least (a node has a
// third handoff, the actor's mailbox turn).
func sdkRelayedServer(b *testing.B) *benchServer { return sdkProcess(b, "relayed") }

// sdkRedisEnv names the Redis of the SDK's process in mode journalled.
const sdkRedisEnv = "PINGMCP_BENCH_SDK_REDIS"

// sdkJournalledServer is sdkProcessServer writing, for each request, what
// a node in Redis mode writes, with the node's own code (state.RedisEvents)
// and nothing else of a node's: the stream's open with its journal entry
// and priming event, one script, before the SDK serves the request; the
// answer with the entry's removal behind it, on a goroutine of its own.
// It is the durability's writes done the straightforward way, not their
// floor: unlike a node it does not batch writes, nor send an answer's with
// the next open, and it runs unfenced (epoch 0).
func sdkJournalledServer(b *testing.B) *benchServer {
	rdb := redistest.Start(b)
	addr, pid := startChild(b, "the SDK's process", sdkProcessEnv+"=journalled", sdkRedisEnv+"="+rdb.Options().Addr)
	return &benchServer{url: "http://" + addr + "/mcp", pid: pid}
}

// journalled serves next as sdkJournalledServer describes: each request of
// a session (a JSON-RPC request, not a notification) is opened first.
func journalled(next http.Handler, ev *state.RedisEvents) http.Handler {
	// What the tool answers, to stand for the answer the SDK writes.
	answer := []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"This is a simple text response for testing."}]}}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session := r.Header.Get("Mcp-Session-Id")
		if r.Method != http.MethodPost || session == "" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			Method string          `json:"method"`
			ID     json.RawMessage `json:"id"`
		}
		// A request alone (the benchmarks send no batch); its initialize
		// has no session yet, and is not journalled.
		if err := json.Unmarshal(body, &msg); err != nil || msg.Method == "" || msg.ID == nil || string(msg.ID) == "null" {
			next.ServeHTTP(w, r)
			return
		}
		stream := rand.Text()
		if err := ev.OpenAppend(r.Context(), session, stream, "", 0, []json.RawMessage{msg.ID}, state.NewWriteID(), nil); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
		go ev.AppendFinish(context.Background(), session, stream, 0, state.NewWriteID(), answer)
	})
}

// relayed serves next as sdkRelayedServer describes.
func relayed(next http.Handler) http.Handler {
	type job struct {
		r     *http.Request
		parts chan relayedPart
	}
	jobs := make(chan job)
	for range 64 {
		go func() {
			for j := range jobs {
				w := &partWriter{header: http.Header{}, parts: j.parts}
				next.ServeHTTP(w, j.r)
				w.Flush()
				close(j.parts)
			}
		}()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		parts := make(chan relayedPart, 8)
		select {
		case jobs <- job{r, parts}:
		case <-r.Context().Done():
			return
		}
		for p := range parts {
			if p.header != nil {
				maps.Copy(w.Header(), p.header)
				w.WriteHeader(p.status)
			}
			w.Write(p.data)
			w.(http.Flusher).Flush()
		}
	})
}

// relayedPart is what partWriter relays at a flush: the status and header
// first, and the bytes written since the last.
type relayedPart struct {
	status int
	header http.Header
	data   []byte
}

// partWriter is the http.ResponseWriter of relayed's worker: each Flush
// (the SDK flushes each event) relays what was written since.
type partWriter struct {
	header http.Header
	status int
	sent   bool
	buf    []byte
	parts  chan relayedPart
}

func (w *partWriter) Header() http.Header { return w.header }

func (w *partWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *partWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *partWriter) Flush() {
	w.WriteHeader(http.StatusOK)
	p := relayedPart{status: w.status, data: w.buf}
	if !w.sent {
		p.header, w.sent = w.header.Clone(), true
	} else if len(w.buf) == 0 {
		return
	}
	w.buf = nil
	w.parts <- p
}

func sdkProcess(b *testing.B, mode string) *benchServer {
	addr, pid := startChild(b, "the SDK's process", sdkProcessEnv+"="+mode)
	return &benchServer{url: "http://" + addr + "/mcp", pid: pid}
}

// proxyEnv, set to an address, makes this test binary forward every
// request to that address (TestMain) instead of running tests: a plain
// reverse proxy in a process of its own.
const proxyEnv = "PINGMCP_BENCH_PROXY"

// childProcess is a process startChild started.
type childProcess struct {
	addr     string // it listens on
	upstream string // it forwards to
	pid      int
	profiled bool // it serves its CPU profile beside what it forwards
}

// sdkProxiedServer is sdk-process behind the standard library's reverse
// proxy in a process of its own: what an edge in front of the SDK costs
// when it does nothing but forward, over kept-alive HTTP/1.1 without TLS.
// It is what forwarding costs done the ordinary way ("cross" does it
// with TLS between the nodes and its own work besides); sdk-spliced is
// the least a process in between can cost. Its memory figures are the
// SDK's process's alone.
func sdkProxiedServer(b *testing.B) *benchServer {
	sdk := sdkProcess(b, "1")
	upstream := strings.TrimPrefix(strings.TrimSuffix(sdk.url, "/mcp"), "http://")
	addr, pid := startChild(b, "the proxy's process", proxyEnv+"="+upstream)
	sdk.url, sdk.roles = "http://"+addr+"/mcp", []string{"proxy", "sdk"}
	sdk.proxy = &childProcess{addr: addr, upstream: upstream, pid: pid, profiled: true}
	return sdk
}

// spliceEnv, set to an address, makes this test binary relay every TCP
// connection it accepts to that address, byte for byte (TestMain), instead
// of running tests.
const spliceEnv = "PINGMCP_BENCH_SPLICE"

// sdkSplicedServer is sdk-process behind a TCP relay in a process of its
// own: each connection's bytes copied both ways as they come (io.Copy
// between TCP connections, which Linux does with splice(2)), nothing read
// as HTTP. It is what a process between the client and the SDK costs at
// the least: its reads, writes and wake-ups, on this machine.
func sdkSplicedServer(b *testing.B) *benchServer {
	sdk := sdkProcess(b, "1")
	upstream := strings.TrimPrefix(strings.TrimSuffix(sdk.url, "/mcp"), "http://")
	addr, pid := startChild(b, "the relay's process", spliceEnv+"="+upstream)
	sdk.url, sdk.roles = "http://"+addr+"/mcp", []string{"relay", "sdk"}
	sdk.proxy = &childProcess{addr: addr, upstream: upstream, pid: pid}
	return sdk
}

// serveSplice relays to the address spliceEnv names until killed; it
// prints the address it listens on, once it does, for the parent to read.
func serveSplice() {
	ln := listenForParent()
	upstream := os.Getenv(spliceEnv)
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				return
			}
			defer u.Close()
			go func() {
				io.Copy(u, c)
				u.(*net.TCPConn).CloseWrite()
			}()
			io.Copy(c, u)
		}()
	}
}

// serveProxy forwards to the address proxyEnv names until killed; it
// prints the address it listens on, once it does, for the parent to read.
// Its own CPU profile is at /debug/pprof/profile (loopback, this test
// binary only); everything else goes upstream.
func serveProxy() {
	ln := listenForParent()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: os.Getenv(proxyEnv)})
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	proxy.FlushInterval = -1 // an event goes out as it comes, as an edge's do
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The body is read before it is forwarded, as an edge does (and
		// because the transport's check for a body longer than its
		// length can read the client's after the response ended, which
		// closes the upstream connection in the middle of the next one).
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Fprintln(os.Stderr, http.Serve(ln, mux))
	os.Exit(1)
}

// startChild runs this test binary again with env added (which makes
// TestMain serve something instead of running tests), until b ends, and
// returns the address it says it listens on ("listening ADDR", its first
// line) and its pid; what names it in a failure.
func startChild(b *testing.B, what string, env ...string) (string, int) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		b.Fatalf("%s: %q, %v", what, line, err)
	}
	return addr, cmd.Process.Pid
}

// benchLogLevel overrides the harness's debug level: the nodes log as they
// would in production.
var benchLogLevel = []string{"--log-level", "info"}

func singleServer(b *testing.B) *benchServer {
	ns := benchNodes(b, func(t *testing.T) []*node {
		return []*node{startNode(t, "single", benchLogLevel...)}
	})
	return &benchServer{url: ns[0].URL(), nodes: ns, roles: []string{"node"}}
}

// singleRedisServer is singleServer keeping sessions and events in Redis:
// a cluster's node serving a session it opened (cluster.Node.NewIdentity).
func singleRedisServer(b *testing.B) *benchServer {
	rdb := redistest.Start(b)
	n := startNode(b, "single", append(durableArgs(rdb.Options().Addr, newStateKey(b)), benchLogLevel...)...)
	return &benchServer{url: n.URL(), nodes: []*node{n}, roles: []string{"node"}}
}

func crossServer(b *testing.B) *benchServer {
	return joinedPair(b, [2]string{"edge", "member"}, []string{"--role", "edge"}, []string{"--role", "member"})
}

// pairServer is two nodes that both serve /mcp and host sessions, the
// client talking to the first: a session opened there lives there
// (cluster.Node.NewIdentity), so its requests take no hop, as in single.
func pairServer(b *testing.B) *benchServer {
	return joinedPair(b, [2]string{"first", "second"}, nil, nil)
}

// joinedPair starts two nodes (named, and their memory metrics, by roles),
// the second joining the first, with their own arguments, and waits until
// each sees both; the client talks to the first.
func joinedPair(b *testing.B, roles [2]string, firstArgs, secondArgs []string) *benchServer {
	ns := benchNodes(b, func(t *testing.T) []*node {
		first := startNode(t, roles[0], slices.Concat([]string{"--cluster-provider", "automanaged"}, firstArgs, benchLogLevel)...)
		second := startNode(t, roles[1], slices.Concat([]string{"--cluster-seeds", first.Cluster}, secondArgs, benchLogLevel)...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		first.awaitMembers(ctx, 2)
		second.awaitMembers(ctx, 2)
		return []*node{first, second}
	})
	return &benchServer{url: ns[0].URL(), nodes: ns, roles: roles[:]}
}

// crossRedisServer is crossServer keeping sessions and events in Redis, as
// a production cluster does.
func crossRedisServer(b *testing.B) *benchServer {
	rdb := redistest.Start(b)
	args := append(durableArgs(rdb.Options().Addr, newStateKey(b)), benchLogLevel...)
	edge := startNode(b, "edge", append([]string{"--role", "edge", "--cluster-provider", "automanaged"}, args...)...)
	member := startNode(b, "member", append([]string{"--role", "member", "--cluster-seeds", edge.Cluster}, args...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	edge.awaitMembers(ctx, 2)
	member.awaitMembers(ctx, 2)
	return &benchServer{url: edge.URL(), nodes: []*node{edge, member}, roles: []string{"edge", "member"}}
}

// crossRedisBaseline is crossRedisServer run by another pingmcp binary,
// named by PINGMCP_BENCH_BASELINE (say, main's before a change): its figures
// and this tree's come from one run. Skipped without it.
func crossRedisBaseline(b *testing.B) *benchServer {
	bin := os.Getenv("PINGMCP_BENCH_BASELINE")
	if bin == "" {
		b.Skip("PINGMCP_BENCH_BASELINE names no baseline binary")
	}
	// startNode runs binary; benchmarks run one at a time.
	mine := binary
	binary = bin
	defer func() { binary = mine }()
	return crossRedisServer(b)
}

// benchNodes starts pingmcp nodes with the e2e harness and stops them when b
// ends. startNode and awaitMembers fail a *testing.T, which a benchmark does
// not have, so start runs as a test of its own (testing.RunTests) that stays
// open until b's cleanup; if it fails, its output (with the nodes' logs) is
// printed and b fails. Once the harness takes a testing.TB, this goes.
func benchNodes(b *testing.B, start func(*testing.T) []*node) []*node {
	b.Helper()
	procs := runtime.GOMAXPROCS(0)
	up := make(chan []*node, 1)
	release := make(chan struct{})
	ended := make(chan struct{})
	var started atomic.Bool
	go func() {
		defer close(ended)
		testing.RunTests(func(string, string) (bool, error) { return true, nil },
			[]testing.InternalTest{{Name: "benchNodes", F: func(t *testing.T) {
				// RunTests runs it again for each -count and -cpu value,
				// after the release: the nodes start once.
				if !started.CompareAndSwap(false, true) {
					return
				}
				up <- start(t)
				<-release
			}}})
	}()
	b.Cleanup(func() {
		close(release)
		<-ended
		runtime.GOMAXPROCS(procs) // RunTests sets it from -cpu
	})
	select {
	case ns := <-up:
		runtime.GOMAXPROCS(procs)
		return ns
	case <-ended:
		b.Fatal("pingmcp nodes did not start; see the test output above")
		return nil
	}
}

// benchClient speaks the streamable HTTP transport to one /mcp URL as an MCP
// client does, over kept-alive connections (one per concurrent session).
type benchClient struct {
	url  string
	http *http.Client
}

func newBenchClient(b *testing.B, url string) *benchClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * slices.Max(benchConcurrency), DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchClient{url: url, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// benchSession is one MCP session of a client, used by one goroutine at a
// time.
type benchSession struct {
	c    *benchClient
	id   string
	next int          // JSON-RPC id of the next request
	msg  []byte       // the next request, reused
	body bytes.Buffer // the last response, read in full
}

const (
	initializeMsg  = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`
	initializedMsg = `{"jsonrpc":"2.0","method":"notifications/initialized"}`
)

// open initializes a new session, as a client does before anything else.
func (s *benchSession) open() error {
	if err := s.initialize(); err != nil {
		return err
	}
	return s.send(http.MethodPost, []byte(initializedMsg), http.StatusAccepted)
}

// initialize starts a new session with the initialize request alone.
func (s *benchSession) initialize() error {
	s.id = ""
	if err := s.send(http.MethodPost, []byte(initializeMsg), http.StatusOK); err != nil {
		return err
	}
	if s.id == "" {
		return fmt.Errorf("initialize: no Mcp-Session-Id in the response: %s", s.body.Bytes())
	}
	return s.result("initialize")
}

func (s *benchSession) callTool() error {
	s.next++
	s.msg = fmt.Appendf(s.msg[:0], `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`, s.next)
	if err := s.send(http.MethodPost, s.msg, http.StatusOK); err != nil {
		return err
	}
	return s.result("tools/call")
}

// delete ends the session.
func (s *benchSession) delete() error {
	return s.send(http.MethodDelete, nil, http.StatusNoContent)
}

// result checks that the last response carried a result, not an error.
func (s *benchSession) result(method string) error {
	if !bytes.Contains(s.body.Bytes(), []byte(`"result":`)) || bytes.Contains(s.body.Bytes(), []byte(`"isError":true`)) {
		return fmt.Errorf("%s of session %s: no result in %s", method, s.id, s.body.Bytes())
	}
	return nil
}

// send makes one request of the session and reads the whole response (JSON
// or an SSE stream, which the server ends after the response). The status
// must be one of want.
func (s *benchSession) send(method string, msg []byte, want ...int) error {
	req, err := http.NewRequest(method, s.c.url, bytes.NewReader(msg))
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, s.c.url, err)
	}
	s.body.Reset()
	_, err = s.body.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, s.c.url, err)
	}
	if !slices.Contains(want, resp.StatusCode) {
		return fmt.Errorf("%s %s (session %q): status %d, want %v: %s", method, s.c.url, s.id, resp.StatusCode, want, s.body.Bytes())
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		s.id = id
	}
	return nil
}

// measure runs b.N ops on n goroutines (op(w) on goroutine w, which owns
// session w) and reports the p50 and p99 latency of an op and ops per second.
// If between is set, the clock stops each time every goroutine has done
// about benchRound ops, and between runs.
func measure(b *testing.B, n int, op func(w int) error, between func()) {
	latencies := make([][]time.Duration, n)
	round := b.N
	if between != nil {
		round = benchRound * n
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		timedCalls(b, n, min(round, b.N-done), op, latencies)
		if between != nil {
			b.StopTimer()
			between()
			b.StartTimer()
		}
	}
	b.StopTimer()

	all := slices.Concat(latencies...)
	slices.Sort(all)
	b.ReportMetric(quantile(all, 0.50), "p50-µs")
	b.ReportMetric(quantile(all, 0.99), "p99-µs")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// timedCalls makes calls ops, op(w) on n clients at once, appending
// each one's latency to latencies[w].
func timedCalls(b *testing.B, n, calls int, op func(w int) error, latencies [][]time.Duration) {
	var next atomic.Int64
	parallel(b, n, func(w int) error {
		for next.Add(1) <= int64(calls) {
			start := time.Now()
			if err := op(w); err != nil {
				return err
			}
			latencies[w] = append(latencies[w], time.Since(start))
		}
		return nil
	})
}

// quantile is the q quantile of sorted, in µs.
func quantile(sorted []time.Duration, q float64) float64 {
	i := max(int(math.Ceil(q*float64(len(sorted))))-1, 0)
	return float64(sorted[i]) / float64(time.Microsecond)
}

// parallel runs f(0) … f(n-1) on n goroutines and fails b with the first
// error.
func parallel(b *testing.B, n int, f func(w int) error) {
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			if err := f(w); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

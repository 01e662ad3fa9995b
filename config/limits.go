package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/state"
)

// Defaults of the limit flags (see README, "Limits").
const (
	DefaultRateLimit              = 20.0
	DefaultRateBurst              = 40
	DefaultMaxConcurrentRequests  = 16
	DefaultMaxStreamsPerPrincipal = 8
	// A user's limits, whatever clients the user's tokens come through:
	// twice a client's, so that a user may run two clients at full pace
	// (an IDE and a desktop app), while registering more clients (DCR is
	// open) buys nothing more.
	DefaultUserRateLimit      = 2 * DefaultRateLimit
	DefaultUserRateBurst      = 2 * DefaultRateBurst
	DefaultUserMaxConcurrent  = 2 * DefaultMaxConcurrentRequests
	DefaultUserMaxStreams     = 2 * DefaultMaxStreamsPerPrincipal
	DefaultMaxSessionsPerUser = 100
	DefaultMaxTasksPerUser    = 100
	// A session's client holds its standalone GET stream and, for each
	// request whose POST stream was cut (a drain cuts them all at once), a
	// GET resuming it: the go-sdk client gives its session up when such a
	// resumption is refused, so the cap leaves room for a few.
	DefaultMaxStreamsPerSession = 4
	DefaultEventsBuffer         = 10000
	// A batch of N costs N tokens of --rate-burst and N slots of
	// --max-concurrent-requests: a larger default batch could never pass.
	DefaultMaxBatch            = DefaultMaxConcurrentRequests
	DefaultMaxBatchConcurrency = 4
	// DefaultPassivateAbove is the share of the Go soft memory limit (GOMEMLIMIT, or what --memory-limit sets)
	// the node's retained memory (live heap, goroutine stacks, the runtime's
	// metadata) may reach before idle actors passivate.
	DefaultPassivateAbove     = 0.85
	DefaultMaxInitializeBytes = 64 << 10
	DefaultMaxHeaderBytes     = 64 << 10
	DefaultUpstreamTimeout    = 10 * time.Second
	DefaultRedisTimeout       = 2 * time.Second
	DefaultMaxSnapshotBytes   = state.DefaultMaxSnapshotBytes
	// What a session's SSE events may keep for resumption (all its
	// streams), and all sessions' in a node's memory.
	DefaultEventsMaxBytes      = state.DefaultEventsMaxBytes
	DefaultEventsMaxTotalBytes = state.DefaultEventsMaxTotalBytes
)

// limitFlags defines the flags of the edge's and the actors' limits and of
// the timeouts of outbound calls (dev and serve).
func limitFlags(fs *flag.FlagSet, c *Config) {
	fs.Float64Var(&c.RateLimit, "rate-limit", DefaultRateLimit, "requests per second each principal (user and client) may make through one edge; beyond, 429 with Retry-After (0: no limit)")
	fs.IntVar(&c.RateBurst, "rate-burst", DefaultRateBurst, "requests a principal may make at once before --rate-limit paces it")
	fs.IntVar(&c.MaxConcurrentRequests, "max-concurrent-requests", DefaultMaxConcurrentRequests, "POST and DELETE requests a principal may have in flight at one edge; beyond, 429 (0: no limit)")
	fs.IntVar(&c.MaxStreamsPerPrincipal, "max-streams-per-principal", DefaultMaxStreamsPerPrincipal, "GET (SSE) and subscriptions/listen streams a principal may hold open at one edge; beyond, 429 (0: no limit)")
	fs.Float64Var(&c.UserRateLimit, "user-rate-limit", DefaultUserRateLimit, "requests per second each user (issuer, subject) may make through one edge, all the user's clients together; beyond, 429 (0: no limit)")
	fs.IntVar(&c.UserRateBurst, "user-rate-burst", DefaultUserRateBurst, "requests a user may make at once before --user-rate-limit paces it")
	fs.IntVar(&c.UserMaxConcurrent, "user-max-concurrent-requests", DefaultUserMaxConcurrent, "POST and DELETE requests a user may have in flight at one edge, all clients together; beyond, 429 (0: no limit)")
	fs.IntVar(&c.UserMaxStreams, "user-max-streams", DefaultUserMaxStreams, "GET (SSE) and subscriptions/listen streams a user may hold open at one edge, all clients together; beyond, 429 (0: no limit)")
	fs.IntVar(&c.MaxSessionsPerUser, "max-sessions-per-user", DefaultMaxSessionsPerUser, "sessions a user (issuer, subject) may have at once in the whole cluster, all clients together; a new initialize beyond gets 429 (0: no limit; must be 0 with --session-idle-timeout 0)")
	fs.IntVar(&c.MaxTasksPerUser, "max-tasks-per-user", DefaultMaxTasksPerUser, "live tasks (working or waiting for input; MCP tasks extension) a user (issuer, subject) may have at once in the whole cluster, all clients together; a call that would start one more gets 429 (0: no limit)")
	fs.Func("trusted-proxies", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For (else Forwarded) names the client, for the budget of invalid credentials per address; empty: the peer is the client", func(v string) error {
		ps, err := ParsePrefixes(v)
		c.TrustedProxies = ps
		return err
	})
	fs.IntVar(&c.MaxStreamsPerSession, "max-streams-per-session", DefaultMaxStreamsPerSession, "GET (SSE) streams one session may hold open, wherever they arrive; beyond, 429 (0: no limit)")
	fs.IntVar(&c.MaxBatch, "max-batch", DefaultMaxBatch, "JSON-RPC messages one batch (protocol 2025-03-26 and older) may hold; beyond, 400. Each counts against --rate-burst and --max-concurrent-requests")
	fs.IntVar(&c.MaxBatchConcurrency, "max-batch-concurrency", DefaultMaxBatchConcurrency, "tool calls of one batch that run at once; the others wait their turn (0: no bound)")
	fs.Float64Var(&c.PassivateAbove, "passivate-above", DefaultPassivateAbove, "when the node's retained memory (its live heap, plus the goroutine stacks and runtime metadata the limit also counts) passes this share of the Go soft memory limit (GOMEMLIMIT, or 90 % of --memory-limit or of the cgroup's), passivate a tenth of the idle actors, least recently active first, every second until it is below (0: never; without a soft limit: never)")
	fs.IntVar(&c.MaxInitializeBytes, "max-initialize-bytes", DefaultMaxInitializeBytes, "largest params of an initialize (what a session keeps for its life); beyond, 400")
	fs.IntVar(&c.EventsBuffer, "events-buffer", DefaultEventsBuffer, "event writes a session holds in memory while Redis is unreachable; once full, its new requests get 503 until the store takes them")
	fs.IntVar(&c.MaxSnapshotBytes, "max-snapshot-bytes", DefaultMaxSnapshotBytes, "largest snapshot a session may have (its handshake, log level, subscriptions, sealed tokens); a change that would exceed it is refused with a JSON-RPC error (an initialize: no session) and the last snapshot stays")
	fs.Int64Var(&c.EventsMaxBytes, "events-max-bytes", DefaultEventsMaxBytes, fmt.Sprintf("bytes of SSE events one session keeps for resumption, all its streams together (each event counts its data and %d bytes, each stream %d bytes); beyond, its oldest events are dropped, a stream going with its last one once its requests are answered, and a stream is bounded by its session's budget. An event larger than the whole budget is delivered but not kept; a resumption from before a dropped event gets an error", state.EventOverhead, state.StreamOverhead))
	fs.Int64Var(&c.EventsMaxTotalBytes, "events-max-total-bytes", DefaultEventsMaxTotalBytes, "without --redis-url: bytes of SSE events all sessions keep in this process's memory; beyond, the user keeping the most (all its sessions together) drops its oldest events, its largest session's first, never the others")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", DefaultMaxHeaderBytes, "largest request header section (431 beyond)")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", DefaultUpstreamTimeout, "bound on each call to the authorization server (discovery, keys, introspection, token exchange, revocation), to the Todo API and to --apis' APIs (and each fetch of their documents)")
	fs.DurationVar(&c.RedisTimeout, "redis-timeout", DefaultRedisTimeout, "bound on dialing Redis and on each read and write")
}

// validateLimits checks the limit flags: caps and rates may be zero (off),
// never negative; sizes and timeouts must be positive.
func (c *Config) validateLimits() []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"user-max-concurrent-requests", c.UserMaxConcurrent}, {"user-max-streams", c.UserMaxStreams}, {"max-sessions-per-user", c.MaxSessionsPerUser}, {"max-tasks-per-user", c.MaxTasksPerUser},
		{"max-batch-concurrency", c.MaxBatchConcurrency}, {"max-concurrent-requests", c.MaxConcurrentRequests}, {"max-streams-per-principal", c.MaxStreamsPerPrincipal}, {"max-streams-per-session", c.MaxStreamsPerSession}} {
		if f.v < 0 {
			errs = append(errs, errors.New("--"+f.name+" must not be negative (0: no limit)"))
		}
	}
	if c.RateLimit < 0 {
		errs = append(errs, errors.New("--rate-limit must not be negative (0: no limit)"))
	}
	if c.PassivateAbove < 0 || c.PassivateAbove > 1 {
		errs = append(errs, errors.New("--passivate-above is a share of the memory limit: between 0 (never) and 1"))
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		errs = append(errs, errors.New("--rate-burst must be at least 1 with a --rate-limit"))
	}
	if c.UserRateLimit < 0 {
		errs = append(errs, errors.New("--user-rate-limit must not be negative (0: no limit)"))
	}
	if c.UserRateLimit > 0 && c.UserRateBurst < 1 {
		errs = append(errs, errors.New("--user-rate-burst must be at least 1 with a --user-rate-limit"))
	}
	if c.SessionIdleTimeout == 0 && c.MaxSessionsPerUser > 0 {
		// Sessions that never expire would count forever once abandoned
		// (a client gone without its DELETE): the user would be locked out
		// for good once --max-sessions-per-user of them pile up.
		errs = append(errs, errors.New("--max-sessions-per-user needs a --session-idle-timeout: with sessions that never expire, those a client abandons without a DELETE would count forever and lock their user out; set --max-sessions-per-user 0 with --session-idle-timeout 0"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, errors.New("--max-batch must be positive"))
	}
	if c.MaxInitializeBytes < 1<<10 {
		errs = append(errs, errors.New("--max-initialize-bytes must be at least 1024"))
	}
	if c.EventsBuffer < 1 {
		errs = append(errs, errors.New("--events-buffer must be positive"))
	}
	if c.MaxSnapshotBytes < 4<<10 {
		errs = append(errs, errors.New("--max-snapshot-bytes must be at least 4096"))
	}
	if c.EventsMaxBytes < 4*state.StreamOverhead {
		errs = append(errs, fmt.Errorf("--events-max-bytes must be at least %d (four streams)", 4*state.StreamOverhead))
	}
	if c.EventsMaxTotalBytes < c.EventsMaxBytes {
		errs = append(errs, errors.New("--events-max-total-bytes must be at least --events-max-bytes"))
	}
	if c.MaxHeaderBytes < 4<<10 {
		errs = append(errs, errors.New("--max-header-bytes must be at least 4096"))
	}
	if c.UpstreamTimeout <= 0 {
		errs = append(errs, errors.New("--upstream-timeout must be positive"))
	}
	if c.RedisTimeout <= 0 {
		errs = append(errs, errors.New("--redis-timeout must be positive"))
	}
	return errs
}

// ParsePrefixes reads comma-separated CIDRs (a bare address is a /32 or
// /128); an IPv4-mapped one (::ffff:10.0.0.0/104) is read as the IPv4 CIDR
// it maps (10.0.0.0/8).
func ParsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(v) {
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or an address", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", f)
		}
		if p.Addr().Is4In6() {
			// Peers are compared unmapped (an IPv4 client of a dual-stack
			// listener is an IPv4 address), so the prefix must be too.
			if p.Bits() < 96 {
				return nil, fmt.Errorf("%q covers IPv6 addresses besides IPv4-mapped ones; give the IPv4 and the IPv6 CIDRs apart", f)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

package config

import (
	"errors"
	"flag"
	"time"

	"github.com/pingmcp/pingmcp/state"
)

// Defaults of the limit flags (see README, "Limits").
const (
	DefaultRateLimit              = 20.0
	DefaultRateBurst              = 40
	DefaultMaxConcurrentRequests  = 16
	DefaultMaxStreamsPerPrincipal = 8
	// A session's client holds its standalone GET stream and, for each
	// request whose POST stream was cut (a drain cuts them all at once), a
	// GET resuming it: the go-sdk client gives its session up when such a
	// resumption is refused, so the cap leaves room for a few.
	DefaultMaxStreamsPerSession = 4
	DefaultEventsBuffer         = 10000
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultUpstreamTimeout      = 10 * time.Second
	DefaultRedisTimeout         = 2 * time.Second
	// A session's snapshot is a few KiB; its initialize parameters, the
	// largest part, are bounded at the edge far below this.
	DefaultMaxSnapshotBytes = 256 << 10
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
	fs.IntVar(&c.MaxStreamsPerPrincipal, "max-streams-per-principal", DefaultMaxStreamsPerPrincipal, "GET (SSE) streams a principal may hold open at one edge; beyond, 429 (0: no limit)")
	fs.IntVar(&c.MaxStreamsPerSession, "max-streams-per-session", DefaultMaxStreamsPerSession, "GET (SSE) streams one session may hold open, wherever they arrive; beyond, 429 (0: no limit)")
	fs.IntVar(&c.EventsBuffer, "events-buffer", DefaultEventsBuffer, "event writes a session holds in memory while Redis is unreachable; once full, its new requests get 503 until the store takes them")
	fs.IntVar(&c.MaxSnapshotBytes, "max-snapshot-bytes", DefaultMaxSnapshotBytes, "largest snapshot a session may have (its handshake, log level, subscriptions, sealed tokens); a change that would exceed it is refused with a JSON-RPC error (an initialize: no session) and the last snapshot stays")
	fs.Int64Var(&c.EventsMaxBytes, "events-max-bytes", DefaultEventsMaxBytes, "bytes of SSE events one session keeps for resumption, all its streams together (each event counts its data and 64 bytes); beyond, its oldest events are dropped, and a stream is bounded by its session's budget. An event larger than the whole budget is delivered but not kept; a resumption from before a dropped event gets an error")
	fs.Int64Var(&c.EventsMaxTotalBytes, "events-max-total-bytes", DefaultEventsMaxTotalBytes, "without --redis-url: bytes of SSE events all sessions keep in this process's memory; beyond, the session keeping the most drops its oldest events, never the others")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", DefaultMaxHeaderBytes, "largest request header section (431 beyond)")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", DefaultUpstreamTimeout, "bound on each call to the authorization server (discovery, keys, introspection, token exchange) and to the Todo API")
	fs.DurationVar(&c.RedisTimeout, "redis-timeout", DefaultRedisTimeout, "bound on dialing Redis and on each read and write")
}

// validateLimits checks the limit flags: caps and rates may be zero (off),
// never negative; sizes and timeouts must be positive.
func (c *Config) validateLimits() []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"max-concurrent-requests", c.MaxConcurrentRequests}, {"max-streams-per-principal", c.MaxStreamsPerPrincipal}, {"max-streams-per-session", c.MaxStreamsPerSession}} {
		if f.v < 0 {
			errs = append(errs, errors.New("--"+f.name+" must not be negative (0: no limit)"))
		}
	}
	if c.RateLimit < 0 {
		errs = append(errs, errors.New("--rate-limit must not be negative (0: no limit)"))
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		errs = append(errs, errors.New("--rate-burst must be at least 1 with a --rate-limit"))
	}
	if c.EventsBuffer < 1 {
		errs = append(errs, errors.New("--events-buffer must be positive"))
	}
	if c.MaxSnapshotBytes < 4<<10 {
		errs = append(errs, errors.New("--max-snapshot-bytes must be at least 4096"))
	}
	if c.EventsMaxBytes < 4<<10 {
		errs = append(errs, errors.New("--events-max-bytes must be at least 4096"))
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

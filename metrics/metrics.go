// Package metrics holds pingmcp's Prometheus metrics, served on /metrics of
// the admin listener (behind its token).
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every pingmcp metric, and the Go and process collectors.
var Registry = prometheus.NewRegistry()

var (
	// SessionMoves counts the sessions that moved to the node their
	// requests came from (actors/follow.go).
	SessionMoves = counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pingmcp_session_moves_total", Help: "Sessions that moved to the node their requests came from.",
	}))
	// Activations counts session actor activations by outcome: new (an
	// initialize), rehydrated (from a snapshot), unknown (no such session),
	// failed (the store could not be reached), refused (the user has as many
	// sessions as --max-sessions-per-user allows).
	Activations = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_activations_total", Help: "Session actor activations, by outcome.",
	}, []string{"outcome"}))
	// Failovers counts sessions rehydrated on another node than their last
	// activation's.
	Failovers = counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pingmcp_failovers_total", Help: "Sessions rehydrated on a node other than their last activation's (that node failed, drained or passivated them).",
	}))
	// Interrupted counts journalled requests a new activation answered as
	// interrupted (their node died first).
	Interrupted = counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pingmcp_interrupted_requests_total", Help: "Requests answered as interrupted by the next activation of their session.",
	}))
	// Fenced counts activations that found a newer one owned their session.
	Fenced = counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pingmcp_fencing_rejections_total", Help: "Activations stopped because a newer activation owns their session.",
	}))
	// Requests times the requests the edge answered, by MCP method and
	// HTTP status.
	Requests = counter(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pingmcp_request_duration_seconds", Help: "Requests answered by the edge, by MCP method and HTTP status (streams: until they end).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
	}, []string{"method", "status"}))
	// OpenStreams is the number of SSE responses the edge is relaying.
	OpenStreams = counter(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pingmcp_open_streams", Help: "SSE responses the edge is relaying now.",
	}))
	// StreamsEnded counts the SSE streams the edge ended itself, by reason:
	// token_expired (the token that opened it is no longer accepted: the
	// client reconnects with a fresh one and resumes), silent (nothing came
	// from the actor for three keep-alive intervals: a dead path, which the
	// client's reconnection replaces).
	StreamsEnded = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_streams_ended_total", Help: "SSE streams the edge ended itself, by reason (token_expired, silent); their clients resume them.",
	}, []string{"reason"}))
	// JSONResumes counts the event streams the edge resumed for clients
	// that take JSON alone (transport.Edge.resumeJSON).
	JSONResumes = counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pingmcp_json_answers_resumed_total", Help: "Event streams cut before their answers (a drain, a node lost, a tool that closed them) that the edge resumed (GET with Last-Event-ID) for clients that take JSON alone.",
	}))
	// UnreachableMembers is the number of members this node finds
	// unreachable while membership lists them (cluster/suspects.go).
	UnreachableMembers = counter(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pingmcp_unreachable_members", Help: "Members listed by membership that this node cannot reach (a TCP connection to their cluster port is not answered); it places their sessions elsewhere meanwhile.",
	}))
	// Forwarded counts the requests the edge sent to an actor, by route:
	// local (the actor is on this node), data_plane (another node, on the
	// data plane's connection), remote (another node, through protoactor's
	// remote: no TLS, or a node that does not offer the data plane).
	Forwarded = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_forwarded_requests_total", Help: "Requests the edge sent to an actor, by route: local (this node), data_plane (another node, on its data-plane connection), remote (another node, through protoactor's remote).",
	}, []string{"route"}))
	// StoreErrors counts failed writes to the session store, by kind.
	StoreErrors = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_store_errors_total", Help: "Session store operations that failed (they are retried), by kind.",
	}, []string{"kind"}))
	// Limited counts requests refused by a limit, by limit: rate,
	// concurrency, streams (per principal at an edge), user_rate,
	// user_concurrency, user_streams (per user at an edge), address
	// (invalid credentials from one address), admin_address (the same, at
	// the admin API, which shares the edge's budget), tracked, user_tracked (the
	// edge tracks too many principals, users), sessions_per_user (a user's
	// sessions in the cluster), session_streams (per session, at its
	// actor), running_calls (a session's calls running, at its actor),
	// principal_listens (a principal's subscriptions/listen streams, at its
	// actor), listen_resources, listen_tasks (the resources, the tasks one
	// subscriptions/listen names, 400),
	// events_buffer (the session's event writes wait for an unreachable
	// store), batch (a batch beyond --max-batch, 400), members (an object
	// of a message beyond rpcbody.MaxMembers, 400), initialize_bytes (an
	// initialize beyond --max-initialize-bytes, 400), snapshot_bytes (a
	// change that would make a session's snapshot exceed its bound),
	// tasks_per_user (a user's live tasks in the cluster, 429),
	// task_request_bytes (a call too large to keep as a task, 413).
	Limited = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_limited_requests_total", Help: "Requests refused by a limit (mostly 429; 503 for a full event buffer; 400 or 413 for what is too large or too many), by limit.",
	}, []string{"limit"}))
	// EventsTrimmed and EventsTrimmedBytes count the SSE events dropped
	// from the event store to keep within a bound, and their bytes, by
	// bound: count (--events-max, per stream), bytes (--events-max-bytes,
	// per session), total (the memory store's bound for all sessions).
	// A client resuming from before them gets "data purged".
	EventsTrimmed = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_events_trimmed_total", Help: "SSE events dropped from the event store to keep within a bound, by bound: count, bytes, total.",
	}, []string{"bound"}))
	EventsTrimmedBytes = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_events_trimmed_bytes_total", Help: "Bytes of the SSE events dropped from the event store to keep within a bound (data plus a fixed overhead per event), by bound.",
	}, []string{"bound"}))
	// EventStreamsTrimmed counts the event streams (one per POST carrying
	// calls) a session's store dropped to keep within --events-max-bytes:
	// each counts a fixed cost while kept, and goes once its events went and
	// its requests were answered.
	EventStreamsTrimmed = counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pingmcp_event_streams_trimmed_total", Help: "Event streams dropped from the event store to keep a session within --events-max-bytes.",
	}))
	// Passivated counts idle actors passivated because the node's heap
	// neared its memory limit (actors.Pressure).
	Passivated = counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pingmcp_memory_passivations_total", Help: "Idle actors passivated because the node's heap neared its Go soft memory limit (GOMEMLIMIT, or 90 % of --memory-limit).",
	}))
	// Tasks counts the changes of tasks (the tasks extension, package
	// tasks) by the status they moved to: created (working),
	// input_required, working (answered, resumed), completed, failed,
	// cancelled; and resumed (taken over after their node was lost).
	Tasks = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_tasks_total", Help: "Task status changes, by the status moved to (created, working, input_required, completed, failed, cancelled) and resumed.",
	}, []string{"status"}))
	// Exchanges counts token exchanges by result, and cache hits.
	Exchanges = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_token_exchanges_total", Help: "Delegated tokens asked for, by result: exchanged, failed, cached.",
	}, []string{"result"}))
	// APIsReloads counts reloads of the --apis toolset (SIGHUP, or an
	// operator's POST /admin/v1/apis/reload), by result: reloaded (the new
	// tools are offered), refused (a document or an operation could not
	// become tools, or a tool name is taken: the tools stay as they were).
	APIsReloads = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_apis_reloads_total", Help: "Reloads of the --apis file and its documents, by result: reloaded, refused (the tools stay as they were).",
	}, []string{"result"}))
)

func counter[C prometheus.Collector](c C) C {
	Registry.MustRegister(c)
	return c
}

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// LiveActors reports the session and principal actors live on this node
// (passivated sessions live only in the store), read when scraped.
func LiveActors(f func() (sessions, principals int)) {
	for _, kind := range []string{"session", "principal"} {
		Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pingmcp_live_actors", Help: "Actors live on this node, by kind: session, principal (stateless protocol).",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 {
			s, p := f()
			if kind == "session" {
				return float64(s)
			}
			return float64(p)
		}))
	}
}

// StoredSessions reports the sessions of the whole cluster in the shared
// store, live or passivated, counted when scraped but at most once every
// interval (counting scans the store).
func StoredSessions(count func(context.Context) (int, error), every time.Duration) {
	var mu sync.Mutex
	var last float64
	var at time.Time
	Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pingmcp_sessions_stored", Help: "Sessions of the cluster in the session store, live or passivated (counted at most every " + every.String() + ").",
	}, func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) < every {
			return last
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			StoreErrors.WithLabelValues("count").Inc()
			return last
		}
		last, at = float64(n), time.Now()
		return last
	}))
}

// StoredTasks reports the durable tasks of the whole cluster in the shared
// store by status (pingmcp_tasks_stored{status}, each of statuses, zero
// included), counted when scraped but at most once every interval:
// counting reads every stored task (their status is sealed with the rest
// of the record), a cost that grows with the tasks kept (each at most its
// TTL after its last change). A count that fails keeps the last one and
// counts a store error (kind count_tasks). Every node reports the same
// cluster-wide figure: aggregate with max, not sum.
func StoredTasks(count func(context.Context) (map[string]int, error), statuses []string, every time.Duration) {
	stored = &storedTasks{count: count, statuses: statuses, every: every,
		desc: prometheus.NewDesc("pingmcp_tasks_stored",
			"Durable tasks of the cluster in the task store, by status (counted at most every "+every.String()+"; each node reports the whole cluster's).",
			[]string{"status"}, nil)}
	Registry.MustRegister(stored)
}

// stored is the registered StoredTasks (for its test).
var stored *storedTasks

type storedTasks struct {
	count    func(context.Context) (map[string]int, error)
	statuses []string
	every    time.Duration
	desc     *prometheus.Desc

	mu   sync.Mutex
	last map[string]int
	at   time.Time
}

func (s *storedTasks) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *storedTasks) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.at) >= s.every {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := s.count(ctx)
		cancel()
		if err != nil {
			StoreErrors.WithLabelValues("count_tasks").Inc()
		} else {
			s.last, s.at = n, time.Now()
		}
	}
	for _, status := range s.statuses {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(s.last[status]), status)
	}
}

// Handler serves the registry in Prometheus' text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
}

// Package metrics holds pingmcp's Prometheus metrics, served on /metrics of
// the admin listener (behind its token).
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every pingmcp metric, and the Go and process collectors.
var Registry = prometheus.NewRegistry()

var (
	// Activations counts session actor activations by outcome: new (an
	// initialize), rehydrated (from a snapshot), unknown (no such session),
	// failed (the store could not be reached).
	Activations = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_activations_total", Help: "Session actor activations, by outcome.",
	}, []string{"outcome"}))
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
	// StoreErrors counts failed writes to the session store, by kind.
	StoreErrors = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_store_errors_total", Help: "Session store operations that failed (they are retried), by kind.",
	}, []string{"kind"}))
	// Exchanges counts token exchanges by result, and cache hits.
	Exchanges = counter(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pingmcp_token_exchanges_total", Help: "Delegated tokens asked for, by result: exchanged, failed, cached.",
	}, []string{"result"}))
)

func counter[C prometheus.Collector](c C) C {
	Registry.MustRegister(c)
	return c
}

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// LiveActors reports the actors live on this node (passivated sessions live
// only in the store), read when scraped.
func LiveActors(f func() float64) {
	Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pingmcp_live_actors", Help: "Session and principal actors live on this node.",
	}, f))
}

// Handler serves the registry in Prometheus' text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
}

package telemetry_test

// These tests install tracer providers of their own through Setup. They
// run after chain_test.go's (tests run in file order): libraries that keep
// a tracer from the global provider (zitadel's client) bind to the first
// provider installed, which must be the chain test's.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pingmcp/pingmcp/telemetry"
)

// otlpReceiver is a minimal OTLP/HTTP collector: it decodes each export
// request's protobuf body.
type otlpReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*collectortrace.ExportTraceServiceRequest
	paths    []string
}

func newReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var m collectortrace.ExportTraceServiceRequest
		if req.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &m) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests = append(r.requests, &m)
		r.paths = append(r.paths, req.URL.Path)
		r.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

// spans returns every span received, with its resource's attributes.
func (r *otlpReceiver) spans() (out []*tracepb.Span, resource map[string]string, paths []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	resource = map[string]string{}
	for _, req := range r.requests {
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.GetAttributes() {
				resource[a.Key] = a.Value.GetStringValue()
			}
			for _, ss := range rs.ScopeSpans {
				out = append(out, ss.Spans...)
			}
		}
	}
	return out, resource, append([]string(nil), r.paths...)
}

func TestSetupExportsOverOTLPHTTP(t *testing.T) {
	rcv := newReceiver(t)
	shutdown, err := telemetry.Setup(t.Context(), telemetry.Config{
		OTLPEndpoint: rcv.URL, Node: "127.0.0.1:7001", Version: "v1.2.3",
		Getenv: func(string) string { return "" },
	})
	if err != nil {
		t.Fatal(err)
	}
	// A request arriving with a traceparent: the span continues it.
	h := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	_, span := telemetry.Start(telemetry.Extract(context.Background(), h), "mcp tools/call", trace.WithSpanKind(trace.SpanKindServer))
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans, res, paths := rcv.spans()
	if len(spans) != 1 || spans[0].Name != "mcp tools/call" {
		t.Fatalf("received %v", spans)
	}
	if got := trace.TraceID(spans[0].TraceId).String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %s", got)
	}
	if got := trace.SpanID(spans[0].ParentSpanId).String(); got != "00f067aa0ba902b7" {
		t.Errorf("parent span id %s", got)
	}
	if res["service.name"] != "pingmcp" || res["service.version"] != "v1.2.3" || res["pingmcp.node"] != "127.0.0.1:7001" {
		t.Errorf("resource %v", res)
	}
	if paths[0] != "/v1/traces" {
		t.Errorf("exported to %s, want /v1/traces", paths[0])
	}
}

// Off, nothing is recorded, but a client's trace context still reaches the
// downstream calls.
func TestSetupOffPassesTraceContextThrough(t *testing.T) {
	shutdown, err := telemetry.Setup(t.Context(), telemetry.Config{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t.Context())
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var got string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("Traceparent") }))
	defer api.Close()
	ctx, span := telemetry.Start(telemetry.Extract(context.Background(), http.Header{"Traceparent": {tp}}), "mcp tools/call")
	defer span.End()
	if span.IsRecording() {
		t.Error("a span is recorded with tracing off")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api.URL, nil)
	resp, err := telemetry.Client(nil, "todo-api").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != tp {
		t.Errorf("downstream traceparent %q, want %q", got, tp)
	}
}

func TestEnabled(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tt := range []struct {
		cfg  telemetry.Config
		want bool
	}{
		{telemetry.Config{Getenv: env()}, false},
		{telemetry.Config{OTLPEndpoint: "http://c:4318", Getenv: env()}, true},
		{telemetry.Config{Getenv: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")}, true},
		{telemetry.Config{Getenv: env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")}, true},
		{telemetry.Config{OTLPEndpoint: "http://c:4318", Getenv: env("OTEL_SDK_DISABLED", "true")}, false},
		{telemetry.Config{OTLPEndpoint: "http://c:4318", Getenv: env("OTEL_TRACES_EXPORTER", "none")}, false},
	} {
		if got := telemetry.Enabled(tt.cfg); got != tt.want {
			t.Errorf("Enabled(%+v) = %v", tt.cfg.OTLPEndpoint, got)
		}
	}
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://c:4318":              "http://c:4318/v1/traces",
		"http://c:4318/":             "http://c:4318/v1/traces",
		"c:4318":                     "http://c:4318/v1/traces",
		"https://c/otlp/v1/traces":   "https://c/otlp/v1/traces",
		"https://c:4318/custom/path": "https://c:4318/custom/path",
	} {
		if got, err := telemetry.EndpointURL(in); err != nil || got != want {
			t.Errorf("EndpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://c", "http://", "://x"} {
		if _, err := telemetry.EndpointURL(bad); err == nil {
			t.Errorf("EndpointURL(%q) accepted", bad)
		}
	}
}

func TestExtractMeta(t *testing.T) {
	ctx := telemetry.ExtractMeta(context.Background(), map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if sc := trace.SpanContextFromContext(ctx); !sc.IsValid() || !sc.IsRemote() || sc.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("ExtractMeta: %v", sc)
	}
	if sc := trace.SpanContextFromContext(telemetry.ExtractMeta(context.Background(), map[string]any{"traceparent": 3})); sc.IsValid() {
		t.Error("a non-string traceparent was taken")
	}
}

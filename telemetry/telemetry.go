// Package telemetry sets up pingmcp's OpenTelemetry tracing and holds the
// small helpers the edge, the actors and the HTTP clients use to make spans
// and carry W3C trace context (traceparent, tracestate) from one hop to the
// next: HTTP headers, the envelope forwarded to an actor, MCP params._meta.
//
// Tracing is off unless an OTLP endpoint is configured (--otlp-endpoint, or
// OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): spans
// are then exported over OTLP/HTTP in batches. Off, no span is recorded but
// the trace context a client sent still passes through to the downstream
// calls.
//
// Spans never carry a token: no Authorization header, no request or
// response body, no query string.
//
// Throttle (throttle.go) bounds the log lines an outsider can cause at will
// (refused connections and tokens).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of pingmcp's spans.
const ScopeName = "github.com/pingmcp/pingmcp"

// Config configures Setup.
type Config struct {
	// OTLPEndpoint is the OTLP/HTTP collector: a base URL such as
	// http://collector:4318 (/v1/traces is added when the URL has no
	// path), or the full URL of the traces endpoint. Empty: the standard
	// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variables, and if neither is
	// set, tracing is off.
	OTLPEndpoint string
	// Node names this node in the resource (pingmcp.node): its cluster
	// address, or what is known of it at start.
	Node string
	// Version is service.version; empty: the module version of the build.
	Version string
	// Logger receives exporter errors.
	Logger *slog.Logger
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
}

// Propagator is the W3C TraceContext propagator Setup installs.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Enabled says whether cfg turns tracing on.
func Enabled(cfg Config) bool {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return cfg.OTLPEndpoint != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs the process's tracer provider and the W3C TraceContext
// propagator. shutdown flushes the spans not yet exported and stops the
// exporter; it is safe to call when tracing is off.
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator)
	if !Enabled(cfg) {
		otel.SetTracerProvider(noop.NewTracerProvider())
		return func(context.Context) error { return nil }, nil
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var opts []otlptracehttp.Option
	if cfg.OTLPEndpoint != "" {
		u, err := EndpointURL(cfg.OTLPEndpoint)
		if err != nil {
			return nil, err
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	version := cfg.Version
	if version == "" {
		version = BuildVersion()
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", "pingmcp"),
		attribute.String("service.version", version),
	}
	if cfg.Node != "" {
		attrs = append(attrs, attribute.String("pingmcp.node", cfg.Node))
	}
	// Ours over the SDK's defaults; the environment's
	// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) over ours.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err == nil {
		res, err = resource.Merge(res, resource.Environment())
	}
	if err != nil {
		logger.Warn("tracing resource", "err", err)
		res = resource.NewSchemaless(attrs...)
	}
	// The sampler is the SDK's default: parent-based, always on, unless
	// OTEL_TRACES_SAMPLER says otherwise.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing", "err", err)
	}))
	logger.Info("tracing on: spans exported over OTLP/HTTP", "endpoint", redactURL(cfg.OTLPEndpoint))
	return func(ctx context.Context) error {
		err := tp.Shutdown(ctx)
		otel.SetTracerProvider(noop.NewTracerProvider())
		return err
	}, nil
}

// EndpointURL turns --otlp-endpoint into the traces endpoint's URL: a URL
// without a path (or with "/") gets /v1/traces, like
// OTEL_EXPORTER_OTLP_ENDPOINT; host:port alone means http://host:port.
func EndpointURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", errors.New("--otlp-endpoint: want http(s)://host:port[/path]")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

func redactURL(s string) string {
	if s == "" {
		return "(from the environment)"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// BuildVersion is the main module's version from the build info ("dev" for
// a build from a work tree).
func BuildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Tracer is pingmcp's tracer from the current global provider. It is looked
// up on each use, never kept, so that spans follow the provider installed
// last (Setup, or a test's).
func Tracer() trace.Tracer { return otel.GetTracerProvider().Tracer(ScopeName) }

// Start starts a span with pingmcp's tracer.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return Tracer().Start(ctx, name, opts...)
}

// Tracing says whether spans are recorded: a tracer provider other than
// the no-op one Setup installs when tracing is off is current. A span's
// name and attributes are built only then (Start when Tracing, else
// Untraced): when tracing is off they were several microseconds of a
// request's CPU for nothing.
func Tracing() bool {
	_, off := otel.GetTracerProvider().(noop.TracerProvider)
	return !off
}

// Untraced is what Start returns when tracing is off: ctx as it is and its
// parent's span, which records nothing (or one that does nothing), so that
// the parent's context travels on (Inject) as it would through a span.
func Untraced(ctx context.Context) (context.Context, trace.Span) {
	if sp := trace.SpanFromContext(ctx); !sp.IsRecording() {
		// Nothing to hide from an End: ctx as it is (no allocation).
		return ctx, sp
	}
	return noop.Tracer{}.Start(ctx, "")
}

// propagator is the global one (Setup's, or a test's).
func propagator() propagation.TextMapPropagator { return otel.GetTextMapPropagator() }

// Extract returns ctx with the remote span context h carries, if any.
func Extract(ctx context.Context, h http.Header) context.Context {
	return propagator().Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes ctx's span context into h (traceparent, tracestate),
// replacing what h had.
func Inject(ctx context.Context, h http.Header) {
	h.Del("Traceparent")
	h.Del("Tracestate")
	propagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// HasParent says whether h carries a valid traceparent.
func HasParent(h http.Header) bool {
	return trace.SpanContextFromContext(Extract(context.Background(), h)).IsValid()
}

// ExtractMeta returns ctx with the remote span context of an MCP request's
// params._meta (its "traceparent" and "tracestate" keys), if valid.
func ExtractMeta(ctx context.Context, meta map[string]any) context.Context {
	tp, _ := meta["traceparent"].(string)
	ts, _ := meta["tracestate"].(string)
	return ExtractMetaStrings(ctx, tp, ts)
}

// ExtractMetaStrings is ExtractMeta for values already read.
func ExtractMetaStrings(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator().Extract(ctx, propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
}

// StatusOf sets a span's status from an HTTP status code: an error from 500
// on for servers, from 400 on for clients.
func StatusOf(span trace.Span, status int, client bool) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 || (client && status >= 400) {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// knownMethods are the MCP methods spans and metrics are named after;
// any other is "other", so that clients cannot grow span names or metric
// labels without bound.
var knownMethods = map[string]bool{}

func init() {
	for _, m := range strings.Fields(`initialize ping tools/list tools/call resources/list resources/read
		resources/templates/list resources/subscribe resources/unsubscribe prompts/list prompts/get
		completion/complete logging/setLevel server/discover subscriptions/listen tasks/get tasks/list
		tasks/result tasks/cancel notifications/initialized notifications/cancelled notifications/progress
		notifications/roots/list_changed`) {
		knownMethods[m] = true
	}
}

// MethodName is m if it is a known MCP method, else "other".
func MethodName(m string) string {
	if knownMethods[m] {
		return m
	}
	return "other"
}

// maxAttr bounds attribute values a client chooses.
const maxAttr = 128

// Clip cuts a client-chosen value (a span's attribute, an audit record's)
// longer than 128 bytes to its first 128 or fewer, between two characters,
// and marks the cut with "…": a request cannot make what records it as
// large as itself.
func Clip(s string) string { return ClipTo(s, maxAttr) }

// ClipTo is Clip to max bytes.
func ClipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return Cut(s, max) + "…"
}

// Printable is s with each character that a terminal or a viewer acts on,
// or does not show (a control character: an escape sequence's ESC, a
// carriage return, a tab; a formatting one: a right-to-left override, a
// zero-width space; a line or paragraph separator), written as a Go escape
// (\x1b, \r, \u202e). Clients choose some of what operators read (their
// names and versions, tool names, a task's message): it must not redraw an
// operator's screen, nor reorder a log line in a viewer.
func Printable(s string) string {
	if !strings.ContainsFunc(s, hidden) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !hidden(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r) // '\x1b', '\r', '\u202e'
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// hidden reports a character a terminal acts on or a viewer does not show.
func hidden(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

// PrintableStrings is a slog.HandlerOptions.ReplaceAttr for JSON: slog's
// JSON handler escapes the C0 control characters (a newline stays \n, so a
// panic's stack stays readable) but writes the others a viewer acts on as
// they are: a right-to-left override (U+202E) would reorder the rest of
// the line. Those it writes as Go escapes (\u202e). (A value that held
// that text reads the same: nothing a viewer acts on.)
func PrintableStrings(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindString {
		if s := a.Value.String(); strings.ContainsFunc(s, unescapedInJSON) {
			var b strings.Builder
			for _, r := range s {
				if unescapedInJSON(r) {
					q := strconv.QuoteRune(r)
					b.WriteString(q[1 : len(q)-1])
					continue
				}
				b.WriteRune(r)
			}
			a.Value = slog.StringValue(b.String())
		}
	}
	return a
}

// unescapedInJSON reports a character hidden reports that encoding/json
// writes as it is: all but C0's.
func unescapedInJSON(r rune) bool { return r >= 0x20 && hidden(r) }

// Cut returns the longest start of s of at most n bytes that ends between
// two characters.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

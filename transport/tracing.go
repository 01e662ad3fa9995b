package transport

import (
	"context"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/pingmcp/pingmcp/cluster"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/telemetry"
)

// edgeSpan is the span of one /mcp request: started once the body is read
// (its _meta may name the parent), or at the end for a request refused
// before that.
type edgeSpan struct {
	start time.Time
	span  trace.Span
}

func (t *edgeSpan) begin(r *http.Request, rb *rpcbody.Body) context.Context {
	ctx := telemetry.Extract(r.Context(), r.Header)
	first := rb.First()
	if first != nil && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = telemetry.ExtractMetaStrings(ctx, first.Traceparent, first.Tracestate)
	}
	if !telemetry.Tracing() {
		ctx, t.span = telemetry.Untraced(ctx)
		return ctx
	}
	name := r.Method
	attrs := []attribute.KeyValue{attribute.String("http.request.method", r.Method)}
	if r.Method == http.MethodPost {
		name = "response"
		if first != nil && first.Method != "" {
			name = telemetry.MethodName(first.Method)
			attrs = append(attrs, attribute.String("mcp.method.name", telemetry.Clip(first.Method)))
		}
		if first != nil && first.Tool != "" {
			attrs = append(attrs, attribute.String("gen_ai.tool.name", telemetry.Clip(first.Tool)))
		}
	}
	if sid := r.Header.Get(headerSessionID); sid != "" {
		attrs = append(attrs, attribute.String("mcp.session.id", telemetry.Clip(sid)))
	}
	if v := r.Header.Get(headerProtocolVersion); v != "" {
		attrs = append(attrs, attribute.String("mcp.protocol.version", telemetry.Clip(v)))
	}
	ctx, t.span = telemetry.Start(ctx, "mcp "+name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(t.start), trace.WithAttributes(attrs...))
	return ctx
}

// routed notes where the request goes: the session id the edge minted for
// an initialize.
func (t *edgeSpan) routed(rt route) {
	if t.span == nil || rt.kind == "" {
		return
	}
	t.span.SetAttributes(attribute.String("pingmcp.actor.kind", rt.kind))
	if rt.minted && rt.kind == cluster.SessionKind {
		t.span.SetAttributes(attribute.String("mcp.session.id", rt.identity))
	}
}

func (t *edgeSpan) end(r *http.Request, w *telemetry.ResponseWriter) {
	if t.span == nil {
		if !telemetry.Tracing() {
			return
		}
		// Refused before the body was read (Host, Origin, method, token).
		_, t.span = telemetry.Start(telemetry.Extract(r.Context(), r.Header), "mcp "+r.Method,
			trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(t.start),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
	}
	telemetry.StatusOf(t.span, w.Status(), false)
	t.span.End()
}

// traceHeaders replaces the trace context among forwarded headers by ctx's.
func traceHeaders(ctx context.Context, hs []*envelope.Header) []*envelope.Header {
	hs = slices.DeleteFunc(hs, func(h *envelope.Header) bool {
		return h.Name == "Traceparent" || h.Name == "Tracestate"
	})
	h := http.Header{}
	telemetry.Inject(ctx, h)
	for name, values := range h {
		hs = append(hs, &envelope.Header{Name: name, Values: values})
	}
	return hs
}

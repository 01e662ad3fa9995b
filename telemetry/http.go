package telemetry

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Transport wraps base (nil: http.DefaultTransport) so that each request
// gets a client span named peer + " " + method, whose context goes out in
// the request's traceparent header. The span records the method, host,
// path and status: never a header's value, a query or a body.
func Transport(base http.RoundTripper, peer string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if t, ok := base.(*transport); ok && t.peer == peer {
		return t
	}
	return &transport{base: base, peer: peer}
}

// Client returns a copy of c (nil: a new client) whose transport is
// wrapped by Transport.
func Client(c *http.Client, peer string) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	out.Transport = Transport(out.Transport, peer)
	return &out
}

type transport struct {
	base http.RoundTripper
	peer string
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, span := Start(r.Context(), t.peer+" "+r.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("server.address", r.URL.Hostname()),
			attribute.String("url.path", Clip(r.URL.Path)),
			attribute.String("peer.service", t.peer),
		))
	defer span.End()
	r2 := r.Clone(ctx) // a RoundTripper must not change the caller's request
	Inject(ctx, r2.Header)
	resp, err := t.base.RoundTrip(r2)
	if err != nil {
		span.SetStatus(codes.Error, "request failed")
		return nil, err
	}
	StatusOf(span, resp.StatusCode, true)
	return resp, nil
}

// Handler wraps h with a server span per request, named name + " " +
// method (and the route pattern, when a ServeMux matched one), parented by
// the request's traceparent.
func Handler(h http.Handler, name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := Extract(r.Context(), r.Header)
		ctx, span := Start(ctx, name+" "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", Clip(r.URL.Path)),
			))
		defer span.End()
		rw := NewResponseWriter(w)
		r2 := r.WithContext(ctx)
		h.ServeHTTP(rw, r2)
		if r2.Pattern != "" {
			span.SetName(name + " " + r2.Pattern)
			span.SetAttributes(attribute.String("http.route", r2.Pattern))
		}
		StatusOf(span, rw.Status(), false)
	})
}

// ResponseWriter remembers the status written through it. It unwraps, so
// that http.ResponseController reaches the writer beneath.
type ResponseWriter struct {
	http.ResponseWriter
	status int
}

// NewResponseWriter wraps w.
func NewResponseWriter(w http.ResponseWriter) *ResponseWriter {
	return &ResponseWriter{ResponseWriter: w}
}

func (w *ResponseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *ResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush flushes the writer beneath, if it can.
func (w *ResponseWriter) Flush() { w.FlushError() }

// FlushError flushes the writer beneath and says whether it could: what
// http.ResponseController.Flush asks first, so that a client gone away is
// seen through the wrapper.
func (w *ResponseWriter) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *ResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the status written, 0 if none yet.
func (w *ResponseWriter) Status() int { return w.status }

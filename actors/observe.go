package actors

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pingmcp/pingmcp/audit"
	"github.com/pingmcp/pingmcp/cluster/envelope"
	"github.com/pingmcp/pingmcp/internal/rpcbody"
	"github.com/pingmcp/pingmcp/tasks"
	"github.com/pingmcp/pingmcp/telemetry"
	"github.com/pingmcp/pingmcp/tools"
)

// forwardedHeader names, in the request the actor hands to the MCP handler,
// the forwarded request it came from, so that the middleware (which sees
// the HTTP headers but not the envelope) finds the request's principal and
// JSON-RPC id. The actor sets it on every request, whatever the client sent.
const forwardedHeader = "X-Pingmcp-Forwarded"

// served is what the middleware may know of a forwarded request.
type served struct {
	principal *envelope.Principal
	// scopes are the scopes each tool needs, as the actor knew them when
	// it took the request; resource the MCP resource the request was made
	// to (for the challenge of a refusal): a task's round started by the
	// request checks them (authorizeRound).
	scopes   map[string][]string
	resource string
	calls    *toolCallIDs // the JSON-RPC ids of its tool calls, for their audit records
	// flight is the request's (nil for a request not forwarded here).
	flight *flight
	// batch bounds the tool calls of the request running at once (nil: no
	// bound). The SDK runs each call of a batch on a goroutine of its own as
	// soon as it reads it, all of a batch at once (jsonrpc2.Async in
	// ServerSession.handle): without it, one POST would run --max-batch
	// tools together.
	batch chan struct{}
}

// requestsOf is the table of an actor's requests being served, for the
// middleware; it is used off the actor's goroutine. An idle actor keeps no
// map (a map, like a sync.Map, keeps its room once grown).
type requestsOf struct {
	mu sync.Mutex
	m  map[string]*served // forwarded id → what it carries
}

func (r *requestsOf) store(id string, s *served) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]*served{}
	}
	r.m[id] = s
}

func (r *requestsOf) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
	if len(r.m) == 0 {
		r.m = nil
	}
}

func (r *requestsOf) load(id string) *served {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// observe starts the actor's span of one forwarded request ("actor " + the
// JSON-RPC method), a child of the edge's, and prepares hr for the MCP
// handler: the span's context in its traceparent, the forwarded id in its
// headers. end finishes the span with the response's status.
func (a *core) observe(hr *http.Request, req *envelope.Request, rb *rpcbody.Body) (*http.Request, func(w *relayWriter)) {
	ctx := telemetry.Extract(hr.Context(), hr.Header)
	var span trace.Span
	if !telemetry.Tracing() {
		ctx, span = telemetry.Untraced(ctx)
	} else {
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", req.Method),
			attribute.String("pingmcp.node", a.node),
		}
		if a.sessionID == "" {
			attrs = append(attrs, attribute.String("pingmcp.actor.kind", "principal"))
		} else {
			attrs = append(attrs, attribute.String("mcp.session.id", a.sessionID), attribute.String("pingmcp.actor.kind", "session"))
		}
		ctx, span = telemetry.Start(ctx, "actor "+req.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	}

	s := &served{principal: req.Principal, calls: newToolCallIDs(rb, req.Body), resource: req.Resource}
	s.flight, _ = hr.Context().Value(flightKey{}).(*flight)
	if s.flight != nil {
		s.scopes = s.flight.scopes
	}
	if rb != nil && rb.Batch && a.cfg.MaxBatchConcurrency > 0 {
		s.batch = make(chan struct{}, a.cfg.MaxBatchConcurrency)
	}
	if m := rb.First(); m != nil && m.Method != "" && span.IsRecording() {
		span.SetName("actor " + telemetry.MethodName(m.Method))
		span.SetAttributes(attribute.String("mcp.method.name", telemetry.Clip(m.Method)))
	}
	a.requests.store(req.Id, s)
	hr = hr.WithContext(ctx)
	hr.Header.Set(forwardedHeader, req.Id)
	telemetry.Inject(ctx, hr.Header)
	return hr, func(w *relayWriter) {
		a.requests.remove(req.Id)
		w.mu.Lock()
		status := w.status
		w.mu.Unlock()
		telemetry.StatusOf(span, status, false)
		span.End()
	}
}

// ready runs before a request is dispatched (only checkRequest and
// recordChanges run before it, outside it): the
// open of its stream is stored (the fencing check and the journal entry),
// unless an event took it along already; a request of an activation a newer
// one fenced is refused, not run (see sessionEvents.ready).
func (a *core) ready(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if a.events != nil && a.events.replaying.Load() {
			return next(ctx, method, req)
		}
		var f *flight
		if extra := req.GetExtra(); extra != nil && extra.Header != nil {
			if v := a.requests.load(extra.Header.Get(forwardedHeader)); v != nil {
				f = v.flight
			}
		}
		if a.events != nil {
			if err := a.events.ready(ctx, a.id, f); err != nil {
				return nil, err
			}
		}
		if f != nil {
			f.ran.Store(true)
			if f.accepted != nil {
				f.accepted()
			}
		}
		return next(ctx, method, req)
	}
}

// auditToolCalls is the middleware around each tools/call: a span for the
// call (a child of the actor's request span), and its audit record, with the
// delegations the tool used (see credentials.Delegate).
func (a *core) auditToolCalls(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		params, ok := req.GetParams().(*mcp.CallToolParamsRaw)
		if method != "tools/call" || !ok || (a.events != nil && a.events.replaying.Load()) {
			return next(ctx, method, req)
		}
		var hdr http.Header
		if extra := req.GetExtra(); extra != nil {
			hdr = extra.Header
		}
		var s *served
		if hdr != nil {
			s = a.requests.load(hdr.Get(forwardedHeader))
		}
		if s != nil && s.batch != nil {
			select {
			case s.batch <- struct{}{}:
				defer func() { <-s.batch }()
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		start := time.Now()
		// The parent: the actor's span, through the traceparent it put in
		// the request; else what the client put in _meta.
		if hdr != nil && telemetry.HasParent(hdr) {
			ctx = telemetry.Extract(ctx, hdr)
		} else {
			ctx = telemetry.ExtractMeta(ctx, params.GetMeta())
		}
		var span trace.Span
		if !telemetry.Tracing() {
			ctx, span = telemetry.Untraced(ctx)
		} else {
			name := "tools/call"
			if validToolName(params.Name) {
				name += " " + params.Name
			}
			ctx, span = telemetry.Start(ctx, name, trace.WithAttributes(
				attribute.String("mcp.method.name", "tools/call"),
				attribute.String("gen_ai.tool.name", telemetry.Clip(params.Name)),
				attribute.String("pingmcp.node", a.node),
			))
		}
		defer span.End()
		ctx, used := audit.Collect(ctx)
		if s != nil {
			// The tool acts with the token of the request that made the
			// call: another client of the user may be using the session at
			// the same time (credentials.Delegate).
			ctx = withRequestPrincipal(ctx, s.principal)
		}

		var rpcID string
		if s != nil {
			rpcID = s.calls.claim(params.Name, params.Arguments)
			if a.sessionID != "" && rpcID != "" {
				ctx = tools.WithCallKey(ctx, a.sessionID+" "+rpcID)
			}
		}

		res, err := next(ctx, method, req)

		rec := audit.ToolCallRecord{
			Node:        a.node,
			Tool:        params.Name,
			Delegations: used(),
			Calls:       audit.Calls(ctx),
			Duration:    time.Since(start),
			TraceID:     traceIDOf(span),
		}
		rec.Session = a.sessionID
		if call, ok := req.(*mcp.CallToolRequest); ok {
			rec.Task = tasks.Of(call)
		}
		if s != nil {
			if p := s.principal; p != nil {
				rec.Principal = *idOf(p)
			}
			rec.RequestID = rpcID
		}
		if a.cfg.Audit.ToolArgs() {
			rec.Arguments = params.Arguments
		}
		switch {
		case err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)):
			rec.Outcome = audit.OutcomeCancelled
			span.SetStatus(codes.Error, "cancelled")
		case err != nil:
			rec.Outcome = audit.OutcomeError
			rec.ErrorCode = jsonrpc.CodeInternalError
			var werr *jsonrpc.Error
			if errors.As(err, &werr) {
				rec.ErrorCode = werr.Code
			}
			if a.cfg.Audit.ToolArgs() {
				// A protocol error may quote the arguments.
				rec.Error = err.Error()
			}
			span.SetStatus(codes.Error, "protocol error")
			span.SetAttributes(attribute.Int64("rpc.jsonrpc.error_code", rec.ErrorCode))
		default:
			rec.Outcome = audit.OutcomeOK
			if r, ok := res.(*mcp.CallToolResult); ok && r.IsError {
				rec.Outcome = audit.OutcomeToolError
				span.SetStatus(codes.Error, "tool error")
			}
		}
		span.SetAttributes(attribute.String("pingmcp.outcome", rec.Outcome))
		a.cfg.Audit.ToolCall(ctx, rec)
		return res, err
	}
}

func traceIDOf(span trace.Span) string {
	if sc := span.SpanContext(); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

// validToolName says whether a tool name may name a span: the MCP rule
// (1 to 128 of A-Z a-z 0-9 _ - .).
func validToolName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// delegated ends the span of a credentials.Delegate call, and notes the
// token it handed out (described, never the token) for the audit record of
// the tool call it serves.
func delegated(ctx context.Context, span trace.Span, audience string, scopes []string, how string, out *tools.Delegation, err error) {
	defer span.End()
	span.SetAttributes(attribute.Bool("pingmcp.exchange.cached", how == "cached"))
	if how != "" {
		span.SetAttributes(attribute.String("pingmcp.exchange.how", how))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attribute.String("pingmcp.exchange.outcome", "error"))
		audit.Record(ctx, audit.Delegation{Audience: audience, Scopes: scopes, Error: err.Error()})
		return
	}
	d := audit.DelegationOf(audience, out.Scopes, out.Claims, how == "cached")
	span.SetAttributes(attribute.String("pingmcp.exchange.outcome", "ok"),
		attribute.StringSlice("pingmcp.exchange.granted_scopes", out.Scopes))
	if d.JTI != "" {
		span.SetAttributes(attribute.String("pingmcp.exchange.jti", d.JTI))
	}
	if len(d.Act) > 0 {
		span.SetAttributes(attribute.StringSlice("pingmcp.exchange.act", d.Act))
	}
	audit.Record(ctx, d)
}

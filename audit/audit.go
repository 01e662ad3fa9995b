// Package audit writes pingmcp's audit log: one structured record per MCP
// tool call and per admin action, saying who did what, for whom, where, with
// what outcome and how long it took.
//
// A record never holds a token value. A tool call's arguments are recorded
// only when the Logger was made with ToolArgs set (--audit-tool-args).
//
// Records go to the process log (marked "log":"audit") or, with a path, to a
// file of JSON lines of their own. They are written whatever the process
// log's level. A nil *Logger writes nothing, so callers need not check.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/logwriter"
	"github.com/pingmcp/pingmcp/internal/privfile"
	"github.com/pingmcp/pingmcp/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Tool call outcomes.
const (
	OutcomeOK        = "ok"         // the tool returned a result
	OutcomeToolError = "tool_error" // the tool returned a result with isError
	OutcomeError     = "error"      // a JSON-RPC (protocol) error; see ErrorCode
	OutcomeCancelled = "cancelled"  // the request was cancelled or cut
	OutcomeDenied    = "denied"     // admin: refused (e.g. not found, bad input)
)

// Delegation describes a downstream token a tool call used: never the token
// itself.
type Delegation struct {
	Audience string   `json:"audience"`
	Scopes   []string `json:"scopes,omitempty"`
	// Act is the RFC 8693 act chain of the exchanged token, outermost
	// (current) actor first: each actor's sub, or its client_id.
	Act []string `json:"act,omitempty"`
	// JTI is the exchanged token's id.
	JTI string `json:"jti,omitempty"`
	// Cached says the token came from the session's cache, not a new
	// exchange.
	Cached bool `json:"cached"`
	// Error is why no token was obtained, if none was.
	Error string `json:"error,omitempty"`
}

// ToolCallRecord is one tools/call.
type ToolCallRecord struct {
	Principal auth.Principal
	Session   string // Mcp-Session-Id; empty for stateless requests
	Node      string // the cluster address of the node that ran it
	Tool      string
	RequestID string // the JSON-RPC id, as JSON text
	// Task is the id of the task (MCP tasks extension) the call ran as,
	// one record per round; empty for a synchronous call.
	Task string
	// Delegations the call used; filled from the context by Middleware
	// users through Collect.
	Delegations []Delegation
	// Calls the tool made to downstream APIs (--apis), from the context
	// too (Calls).
	Calls   []Call
	Outcome string
	// ErrorCode is the JSON-RPC error code when Outcome is OutcomeError.
	ErrorCode int64
	// Error is a short description of a protocol error (never arguments).
	Error    string
	Duration time.Duration
	// TraceID, if empty, is taken from the span in the context.
	TraceID string
	// Arguments are written only if the Logger records tool arguments.
	Arguments json.RawMessage
}

// AdminRecord is one admin API action.
type AdminRecord struct {
	// Operator is who called: e.g. "admin-token", or a subject.
	Operator string
	// Action: "sessions.list", "sessions.kill", "users.revoke", ...
	Action string
	// Target: a session id, a subject, a node.
	Target string
	// Outcome: OutcomeOK, OutcomeDenied, OutcomeError.
	Outcome string
	// Error is a short reason for a failed action.
	Error    string
	Duration time.Duration
	// Details are extra attributes (e.g. "for": "1h"); never secrets.
	Details map[string]any
	// TraceID, if empty, is taken from the span in the context.
	TraceID string
}

// Logger writes audit records. Its zero value and nil write nothing.
type Logger struct {
	h        slog.Handler
	toolArgs bool
	close    func() error // of the file Open opened
}

// Options configure Open.
type Options struct {
	// Path is a file to append JSON lines to (created 0600); empty writes
	// into the process log.
	Path string
	// ToolArgs records tool call arguments.
	ToolArgs bool
}

// Open returns the audit Logger opts describe; process is the process log,
// used when opts.Path is empty.
func Open(opts Options, process *slog.Logger) (*Logger, error) {
	if opts.Path == "" {
		if process == nil {
			process = slog.Default()
		}
		return NewHandler(process.Handler(), opts.ToolArgs), nil
	}
	// Not through a link another user planted, nor into a file they own or
	// may write: they could read the records, or change them.
	f, err := privfile.Open(opts.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	// Records written at once go out in one write (logwriter); each
	// caller still waits for its own (Logger.write).
	lw := logwriter.New(f)
	l := New(lw, opts.ToolArgs)
	l.close = func() error { return errors.Join(lw.Close(), f.Close()) }
	return l, nil
}

// New returns a Logger writing JSON lines to w.
func New(w io.Writer, toolArgs bool) *Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: telemetry.PrintableStrings}
	if lw, ok := w.(*logwriter.Writer); ok { // safe for concurrent Writes itself
		return NewHandler(logwriter.Handler(slog.NewJSONHandler(lw, opts), lw), toolArgs)
	}
	return NewHandler(slog.NewJSONHandler(&lockedWriter{w: w}, opts), toolArgs)
}

// NewHandler returns a Logger writing to h, each record marked log=audit.
func NewHandler(h slog.Handler, toolArgs bool) *Logger {
	return &Logger{h: h.WithAttrs([]slog.Attr{slog.String("log", "audit")}), toolArgs: toolArgs}
}

// ToolArgs says whether tool call arguments are recorded.
func (l *Logger) ToolArgs() bool { return l != nil && l.toolArgs }

// Close closes the file the Logger writes to, if it opened one.
func (l *Logger) Close() error {
	if l == nil || l.close == nil {
		return nil
	}
	return l.close()
}

// ToolCall writes the record of one tool call.
func (l *Logger) ToolCall(ctx context.Context, r ToolCallRecord) {
	if l == nil || l.h == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("event", "tool_call"),
		principalAttr(r.Principal),
		slog.String("session", telemetry.Clip(r.Session)),
		slog.String("node", r.Node),
		slog.String("tool", telemetry.Clip(r.Tool)),
		slog.String("request_id", telemetry.Clip(r.RequestID)),
	}
	if r.Task != "" {
		attrs = append(attrs, slog.String("task", r.Task))
	}
	if len(r.Delegations) > 0 {
		attrs = append(attrs, slog.Any("delegations", r.Delegations))
	}
	if len(r.Calls) > 0 {
		attrs = append(attrs, slog.Any("calls", r.Calls))
	}
	attrs = append(attrs, slog.String("outcome", r.Outcome))
	if r.ErrorCode != 0 {
		attrs = append(attrs, slog.Int64("error_code", r.ErrorCode))
	}
	if r.Error != "" {
		attrs = append(attrs, slog.String("error", telemetry.ClipTo(r.Error, maxError)))
	}
	attrs = append(attrs, durationAttr(r.Duration))
	if t := traceID(ctx, r.TraceID); t != "" {
		attrs = append(attrs, slog.String("trace_id", t))
	}
	if l.toolArgs && len(r.Arguments) > 0 {
		attrs = append(attrs, slog.Any("arguments", r.Arguments))
	}
	l.write(ctx, "tool call", attrs)
}

// Admin writes the record of one admin action.
func (l *Logger) Admin(ctx context.Context, r AdminRecord) {
	if l == nil || l.h == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("event", "admin"),
		slog.String("operator", r.Operator),
		slog.String("action", r.Action),
		slog.String("target", r.Target),
		slog.String("outcome", r.Outcome),
	}
	if r.Error != "" {
		attrs = append(attrs, slog.String("error", telemetry.ClipTo(r.Error, maxError)))
	}
	attrs = append(attrs, durationAttr(r.Duration))
	if len(r.Details) > 0 {
		attrs = append(attrs, slog.Any("details", r.Details))
	}
	if t := traceID(ctx, r.TraceID); t != "" {
		attrs = append(attrs, slog.String("trace_id", t))
	}
	l.write(ctx, "admin action", attrs)
}

// write hands the record to the handler whatever its level: an audit record
// is not filtered by --log-level. A handler that writes through a
// logwriter (logwriter.Syncer) is waited for: the record is out (in the
// file, or the process log's pipe) before the call it records is answered,
// so that a crash right after cannot lose it; records written at once share
// one write.
func (l *Logger) write(ctx context.Context, msg string, attrs []slog.Attr) {
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
	rec.AddAttrs(attrs...)
	if s, ok := l.h.(logwriter.Syncer); ok {
		_ = s.HandleSync(context.WithoutCancel(ctx), rec)
		return
	}
	_ = l.h.Handle(context.WithoutCancel(ctx), rec)
}

// maxError bounds a record's error: it may quote what the request held (an
// unknown tool's name).
const maxError = 1024

func principalAttr(p auth.Principal) slog.Attr {
	return slog.Group("principal", slog.String("iss", p.Issuer), slog.String("sub", p.Subject), slog.String("client_id", p.ClientID))
}

func durationAttr(d time.Duration) slog.Attr {
	return slog.Float64("duration_ms", float64(d.Microseconds())/1000)
}

func traceID(ctx context.Context, given string) string {
	if given != "" {
		return given
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

// lockedWriter makes one Write per record safe across goroutines for
// writers that are not (slog's handlers lock per handler, and WithAttrs
// copies share that lock, but a writer may be shared with others).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// ActChain returns the RFC 8693 act chain of a token's claims, the current
// actor first: each actor's sub, else its client_id.
func ActChain(claims map[string]any) []string {
	var out []string
	act, _ := claims["act"].(map[string]any)
	for depth := 0; act != nil && depth < 16; depth++ {
		name, _ := act["sub"].(string)
		if name == "" {
			name, _ = act["client_id"].(string)
		}
		out = append(out, name)
		act, _ = act["act"].(map[string]any)
	}
	return out
}

// DelegationOf describes an exchanged token by its claims.
func DelegationOf(audience string, scopes []string, claims map[string]any, cached bool) Delegation {
	jti, _ := claims["jti"].(string)
	return Delegation{Audience: audience, Scopes: scopes, Act: ActChain(claims), JTI: jti, Cached: cached}
}

// A Call is one call a tool made to a downstream API described by an
// OpenAPI document (--apis): which API and operation, and the answer's
// status; never its arguments or its answer.
type Call struct {
	API       string `json:"api"`
	Operation string `json:"operation"` // its operationId, else "METHOD /path"
	Method    string `json:"method"`
	// Status is the answer's HTTP status; 0 when none came.
	Status int `json:"status"`
}

// collector gathers the delegations and downstream calls of one tool call.
type collector struct {
	mu    sync.Mutex
	ds    []Delegation
	calls []Call
}

type collectorKey struct{}

// Collect returns a context under which Record adds to the delegations the
// returned function reports.
func Collect(ctx context.Context) (context.Context, func() []Delegation) {
	c := &collector{}
	return context.WithValue(ctx, collectorKey{}, c), func() []Delegation {
		c.mu.Lock()
		defer c.mu.Unlock()
		return append([]Delegation(nil), c.ds...)
	}
}

// Record notes a delegation used under ctx, if ctx is collecting (see
// Collect); otherwise it does nothing.
func Record(ctx context.Context, d Delegation) {
	collecting(ctx, func(c *collector) { c.ds = append(c.ds, d) })
}

// RecordCall notes a downstream call made under ctx, if ctx is collecting
// (see Collect); otherwise it does nothing.
func RecordCall(ctx context.Context, call Call) {
	collecting(ctx, func(c *collector) { c.calls = append(c.calls, call) })
}

// Calls are the downstream calls recorded under ctx (a context of
// Collect) so far.
func Calls(ctx context.Context) (out []Call) {
	collecting(ctx, func(c *collector) { out = append(out, c.calls...) })
	return out
}

// collecting runs f on ctx's collector, locked, if ctx has one.
func collecting(ctx context.Context, f func(*collector)) {
	if c, _ := ctx.Value(collectorKey{}).(*collector); c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		f(c)
	}
}

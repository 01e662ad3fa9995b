package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pingmcp/pingmcp/auth"
	"github.com/pingmcp/pingmcp/internal/logwriter"
	"go.opentelemetry.io/otel/trace"
)

func TestNilLoggerWritesNothing(t *testing.T) {
	var l *Logger
	l.ToolCall(context.Background(), ToolCallRecord{Tool: "x"})
	l.Admin(context.Background(), AdminRecord{Action: "sessions.kill"})
	if l.ToolArgs() || l.Close() != nil {
		t.Error("nil logger")
	}
	(&Logger{}).ToolCall(context.Background(), ToolCallRecord{})
}

func decode(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestToolCallRecord(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: 1})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	rec := ToolCallRecord{
		Principal: auth.Principal{Issuer: "https://pf", Subject: "alice", ClientID: "claude"},
		Session:   "s1", Node: "10.0.0.1:7001", Tool: "create_new_todo", RequestID: "7",
		Delegations: []Delegation{DelegationOf("https://api", []string{"todo_api:write"},
			map[string]any{"jti": "j1", "act": map[string]any{"sub": "pingmcp", "act": map[string]any{"client_id": "gw"}}}, true)},
		Outcome: OutcomeOK, Duration: 1500 * time.Microsecond,
		Arguments: json.RawMessage(`{"text":"private"}`),
	}
	for _, withArgs := range []bool{false, true} {
		var b bytes.Buffer
		New(&b, withArgs).ToolCall(ctx, rec)
		m := decode(t, b.Bytes())[0]
		want := map[string]any{"log": "audit", "event": "tool_call", "session": "s1", "node": "10.0.0.1:7001", "tool": "create_new_todo",
			"request_id": "7", "outcome": "ok", "duration_ms": 1.5, "trace_id": sc.TraceID().String()}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
		p := m["principal"].(map[string]any)
		if p["iss"] != "https://pf" || p["sub"] != "alice" || p["client_id"] != "claude" {
			t.Errorf("principal %v", p)
		}
		d := m["delegations"].([]any)[0].(map[string]any)
		if d["audience"] != "https://api" || d["jti"] != "j1" || d["cached"] != true || len(d["act"].([]any)) != 2 || d["act"].([]any)[1] != "gw" {
			t.Errorf("delegation %v", d)
		}
		args, has := m["arguments"]
		if has != withArgs || (withArgs && args.(map[string]any)["text"] != "private") {
			t.Errorf("toolArgs %v: arguments %v", withArgs, args)
		}
	}
}

// A tool call's record holds what its request chose (the tool's name, the
// JSON-RPC id, an error quoting them) cut to a bound: a request of
// megabytes makes a record of a few hundred bytes, its values still valid
// UTF-8 and marked as cut.
func TestToolCallRecordBounded(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, false)
	name := strings.Repeat("é", 1<<20)
	l.ToolCall(context.Background(), ToolCallRecord{Tool: name, RequestID: `"` + strings.Repeat("1", 1<<20) + `"`,
		Outcome: OutcomeError, ErrorCode: -32602, Error: "unknown tool " + name})
	if buf.Len() > 2048 {
		t.Fatalf("a record of %d bytes", buf.Len())
	}
	rec := decode(t, buf.Bytes())[0]
	for _, k := range []string{"tool", "request_id", "error"} {
		if v, _ := rec[k].(string); !strings.HasSuffix(v, "…") || strings.ContainsRune(v, '\uFFFD') {
			t.Errorf("%s: %q", k, v)
		}
	}
}

func TestAdminRecord(t *testing.T) {
	var b bytes.Buffer
	New(&b, false).Admin(context.Background(), AdminRecord{Operator: "admin-token", Action: "users.revoke", Target: "alice",
		Outcome: OutcomeOK, Duration: time.Millisecond, Details: map[string]any{"for": "1h"}})
	m := decode(t, b.Bytes())[0]
	for k, v := range map[string]any{"log": "audit", "event": "admin", "operator": "admin-token", "action": "users.revoke", "target": "alice", "outcome": "ok", "duration_ms": 1.0} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if m["details"].(map[string]any)["for"] != "1h" {
		t.Errorf("details %v", m["details"])
	}
	if _, ok := m["trace_id"]; ok {
		t.Error("trace id without a span")
	}
}

// In the process log, records are marked and written whatever the level.
func TestProcessLog(t *testing.T) {
	var b bytes.Buffer
	process := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelError}))
	l, err := Open(Options{}, process)
	if err != nil {
		t.Fatal(err)
	}
	l.ToolCall(context.Background(), ToolCallRecord{Tool: "who_am_I", Outcome: OutcomeOK})
	if out := b.String(); !strings.Contains(out, "log=audit") || !strings.Contains(out, "tool=who_am_I") {
		t.Errorf("process log: %q", out)
	}
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for i := range 2 {
		l, err := Open(Options{Path: path}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l.Admin(context.Background(), AdminRecord{Action: "sessions.kill", Target: string(rune('a' + i)), Outcome: OutcomeOK})
		l.Close()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if recs := decode(t, b); len(recs) != 2 || recs[0]["target"] != "a" || recs[1]["target"] != "b" {
		t.Errorf("records %v", recs) // appended, not truncated
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if _, err := Open(Options{Path: filepath.Join(t.TempDir(), "no", "such", "dir")}, nil); err == nil {
		t.Error("unwritable path accepted")
	}
}

func TestCollect(t *testing.T) {
	Record(context.Background(), Delegation{Audience: "x"}) // not collecting: nothing happens
	ctx, used := Collect(context.Background())
	Record(ctx, Delegation{Audience: "a"})
	Record(ctx, Delegation{Audience: "b", Error: "refused"})
	if ds := used(); len(ds) != 2 || ds[0].Audience != "a" || ds[1].Error != "refused" {
		t.Errorf("collected %v", ds)
	}
}

func TestActChain(t *testing.T) {
	if got := ActChain(map[string]any{"sub": "alice"}); got != nil {
		t.Errorf("no act: %v", got)
	}
	got := ActChain(map[string]any{"act": map[string]any{"sub": "pingmcp", "act": map[string]any{"sub": "gateway"}}})
	if strings.Join(got, ",") != "pingmcp,gateway" {
		t.Errorf("chain %v", got)
	}
}

// A tool's downstream calls (--apis) are collected with its delegations and
// written as calls: the API, the operation, the status.
func TestCalls(t *testing.T) {
	RecordCall(context.Background(), Call{API: "x"}) // not collecting: nothing happens
	ctx, _ := Collect(context.Background())
	RecordCall(ctx, Call{API: "todo", Operation: "createTodo", Method: "POST", Status: 200})
	calls := Calls(ctx)
	if len(calls) != 1 || calls[0].Operation != "createTodo" {
		t.Fatalf("collected %v", calls)
	}
	var b bytes.Buffer
	New(&b, false).ToolCall(ctx, ToolCallRecord{Tool: "todo_createTodo", Calls: calls, Outcome: OutcomeOK})
	c := decode(t, b.Bytes())[0]["calls"].([]any)[0].(map[string]any)
	if c["api"] != "todo" || c["operation"] != "createTodo" || c["method"] != "POST" || c["status"] != 200.0 {
		t.Errorf("call %v", c)
	}
}

// gatedWriter holds each Write until gate is closed.
type gatedWriter struct {
	gate chan struct{}
	buf  bytes.Buffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.gate
	return g.buf.Write(p)
}

// A record written through a logwriter (the process log's, or the file's)
// is out before ToolCall returns, that is before the call is answered;
// other lines of the process log are not waited for.
func TestRecordWrittenBeforeReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &gatedWriter{gate: make(chan struct{})}
		lw := logwriter.New(sink)
		process := slog.New(logwriter.Handler(slog.NewJSONHandler(lw, nil), lw))
		l, err := Open(Options{}, process)
		if err != nil {
			t.Fatal(err)
		}
		process.Info("an ordinary line") // returns while the sink holds it
		recorded := make(chan struct{})
		go func() {
			l.ToolCall(context.Background(), ToolCallRecord{Tool: "who_am_I", Outcome: OutcomeOK})
			close(recorded)
		}()
		synctest.Wait()
		select {
		case <-recorded:
			t.Fatal("ToolCall returned before its record was written")
		default:
		}
		close(sink.gate)
		<-recorded
		if out := sink.buf.String(); !strings.Contains(out, "an ordinary line") || !strings.Contains(out, `"tool":"who_am_I"`) {
			t.Fatalf("sink has %q", out)
		}
		lw.Close()
	})
}

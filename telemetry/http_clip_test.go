package telemetry_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/pingmcp/pingmcp/telemetry"
)

// Found by an attack review: the client span of an outbound call (telemetry.Transport: the
// Todo API, every --apis API) and the Todo API's server span
// (telemetry.Handler) record url.path whole. A path parameter of an --apis
// tool is the caller's argument (url.PathEscape'd, not bounded unless the
// document says maxLength): a tool call of 100 KB makes a 100 KB span
// attribute. Every other client-chosen attribute is cut by telemetry.Clip.
func TestOutboundSpanPathBounded(t *testing.T) {
	tp, spans := recorded()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	from := len(spans.GetSpans())
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }))
	defer api.Close()
	id := strings.Repeat("x", 100<<10) // an --apis tool's {id} argument
	resp, err := telemetry.Client(nil, "items").Get(api.URL + "/v1/items/" + url.PathEscape(id))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, s := range spans.GetSpans()[from:] {
		for _, a := range s.Attributes {
			if n := len(a.Value.Emit()); n > 1024 {
				t.Errorf("span %q: attribute %s is %d bytes", s.Name, a.Key, n)
			}
		}
	}
}

// JSON log lines keep their newlines (JSON escapes them: a panic's stack
// stays readable) and get formatting characters escaped. Found by a review:
// every control character was rewritten, a stack trace to one line.
func TestPrintableStringsInJSON(t *testing.T) {
	var b strings.Builder
	logger := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: telemetry.PrintableStrings}))
	logger.Info("m", "stack", "a\n\tb", "tool", "x\u202ey\u0085")
	line := b.String()
	for _, want := range []string{`"stack":"a\n\tb"`, `"tool":"x\\u202ey\\u0085"`} {
		if !strings.Contains(line, want) {
			t.Errorf("the line lacks %s: %s", want, line)
		}
	}
	if strings.ContainsAny(line, "\u202e\u0085") {
		t.Errorf("the line holds a formatting or control character as is: %q", line)
	}
}

package audit

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode"

	"github.com/pingmcp/pingmcp/auth"
)

// Found by an attack review: what a client chooses reaches a JSON audit record (the --audit-log
// file, or the process log with --log-format json) with its Unicode
// formatting characters as they are: slog's JSON handler escapes C0
// controls (ESC, CR, LF) but writes U+202E RIGHT-TO-LEFT OVERRIDE, U+2066..9
// isolates, U+200B..F etc. raw. A terminal or viewer with bidi support
// (`tail -f audit.log`, less, an editor, a log UI) then shows the rest of the
// line reordered: the tool name, the request id and the outcome that
// follow can be made to read as something else. The CLI escapes exactly
// these (cmd/pingmcp printable: Cc and Cf); the audit log does not.
func TestAuditRecordEscapesFormattingCharacters(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, false)
	// A tool name the edge and the SDK pass on: an unknown tool is still
	// audited (outcome error), its name clipped to 128 bytes but otherwise
	// as sent.
	tool := "get_my_todo_list\u202e\u2066 }\"ko\":\"emoctuo\"{ \u2069"
	l.ToolCall(context.Background(), ToolCallRecord{
		Principal: auth.Principal{Issuer: "https://pf", Subject: "mallory", ClientID: "c"},
		Session:   "s1", Tool: tool, RequestID: "1", Outcome: OutcomeError, ErrorCode: -32602,
	})
	line := buf.String()
	if i := strings.IndexFunc(line, func(r rune) bool { return unicode.Is(unicode.Cf, r) }); i >= 0 {
		t.Errorf("the audit record holds a raw formatting character %U at byte %d:\n%q", []rune(line[i:])[0], i, line)
	}
}

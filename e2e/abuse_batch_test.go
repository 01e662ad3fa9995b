package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// whoAmIBatch is a JSON-RPC batch of n who_am_I calls with ids "<prefix>1"
// … "<prefix>n", and those ids as JSON.
func whoAmIBatch(prefix string, n int) (string, []string) {
	var msgs, ids []string
	for i := range n {
		id := fmt.Sprintf(`"%s%d"`, prefix, i+1)
		ids = append(ids, id)
		msgs = append(msgs, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"who_am_I","arguments":{}}}`)
	}
	return "[" + strings.Join(msgs, ",") + "]", ids
}

// auditedIDs are the request ids of the who_am_I records in an audit log.
func auditedIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Event, Tool string
			RequestID   string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Event == "tool_call" && rec.Tool == "who_am_I" {
			ids = append(ids, rec.RequestID)
		}
	}
	return ids
}

// checkInvalid checks a refusal of the body itself: 400 and a JSON-RPC
// invalid-request error whose message holds want.
func checkInvalid(t *testing.T, a limitsAnswer, want string) {
	t.Helper()
	var m struct {
		JSONRPC string
		ID      any
		Error   struct {
			Code    int
			Message string
		}
	}
	if a.status != http.StatusBadRequest || json.Unmarshal([]byte(a.body), &m) != nil || m.JSONRPC != "2.0" ||
		m.Error.Code != -32600 || !strings.Contains(m.Error.Message, want) {
		t.Fatalf("refusal: %d %s; want 400 and a JSON-RPC -32600 error saying %q", a.status, a.body, want)
	}
}

// TestAbuseBatch (issue 11, item 1 and the initialize half of item 2) runs
// `pingmcp dev` with --max-batch 20 and a burst of 30: a 2025-03-26
// session's batch beyond --max-batch is refused with 400 and runs nothing; a
// batch within it runs every call, each answered and audited under its own
// id; a batch whose messages exceed the tokens left is refused with 429 (each
// message costs one); an initialize beyond --max-initialize-bytes is refused
// with 400 and opens no session; an id the SDK would answer under another id
// (1.5, 2^53+1) is refused with 400.
func TestAbuseBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	// One token per 100 s: the burst is all alice has during the test.
	d := runDev(t, "--max-batch", "20", "--rate-limit", "0.01", "--rate-burst", "30", "--max-concurrent-requests", "30",
		"--max-initialize-bytes", "65536", "--audit-log", auditPath)
	alice := login(t, ctx, d.Issuer, d.MCP, "alice", allScopes)
	a := &limitsClient{t: t, ctx: ctx, url: d.MCP, token: alice, version: "2025-03-26"}
	a.open() // 2 tokens: 28 left

	t.Run("beyond max-batch", func(t *testing.T) {
		body, _ := whoAmIBatch("x", 21)
		checkInvalid(t, a.do(http.MethodPost, body), "at most 20 messages (--max-batch)")
		checkInvalid(t, a.do(http.MethodPost, `[]`), "empty batch")
	})

	t.Run("within max-batch", func(t *testing.T) { // 12 tokens: 16 left
		body, ids := whoAmIBatch("b", 12)
		r := a.do(http.MethodPost, body)
		if r.status != http.StatusOK {
			t.Fatalf("batch of 12: %d %s", r.status, r.body)
		}
		for _, id := range ids {
			if n := strings.Count(r.body, `"id":`+id+`,`) + strings.Count(r.body, `"id":`+id+`}`); n != 1 {
				t.Errorf("%d answers with id %s in %s", n, id, r.body)
			}
		}
		if n := strings.Count(r.body, `"isError":true`); n != 0 {
			t.Errorf("%d calls failed: %s", n, r.body)
		}
		// Each call's audit record carries its own id (not the first
		// one's); the refused batches ran nothing.
		got := auditedIDs(t, auditPath)
		slices.Sort(got)
		if want := slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
			t.Errorf("audit records' ids = %v, want %v", got, want)
		}
	})

	t.Run("messages beyond the rate", func(t *testing.T) {
		body, _ := whoAmIBatch("r", 20) // 20 > 16 tokens left
		checkRefusal(t, a.do(http.MethodPost, body), "rate")
		if n := len(auditedIDs(t, auditPath)); n != 12 {
			t.Errorf("%d who_am_I records after a refused batch, want the 12 of before", n)
		}
	})

	t.Run("initialize too large", func(t *testing.T) {
		b := &limitsClient{t: t, ctx: ctx, url: d.MCP, token: alice, version: "2025-03-26"}
		big := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","clientInfo":{"name":"e2e","version":"1"},` +
			`"capabilities":{"experimental":{"pad":{"x":"` + strings.Repeat("x", 70_000) + `"}}}}}`
		r := b.do(http.MethodPost, big)
		checkInvalid(t, r, "at most 65536 bytes (--max-initialize-bytes)")
		if sid := r.header.Get("Mcp-Session-Id"); sid != "" {
			t.Errorf("a refused initialize opened session %s", sid)
		}
	})

	t.Run("ids the SDK would change", func(t *testing.T) {
		for _, id := range []string{"1.5", "9007199254740993", "true"} {
			checkInvalid(t, a.do(http.MethodPost, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"who_am_I","arguments":{}}}`), "2^53")
		}
		if n := len(auditedIDs(t, auditPath)); n != 12 {
			t.Errorf("%d who_am_I records, want the 12 of before", n)
		}
	})
}

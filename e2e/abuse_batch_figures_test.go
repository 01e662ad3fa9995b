package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestAbuseBatchFigures measures, for BENCHMARKS.md ("Abuse"), the time of
// one POST holding a batch of n who_am_I calls (a 2025-03-26 session) and
// the resident set of `pingmcp dev` after ten sessions whose initialize
// carries a 3.9 MB capabilities.experimental. It only reports (t.Log), and
// runs only with PINGMCP_ABUSE_FIGURES=1:
//
//	PINGMCP_ABUSE_FIGURES=1 go test -count=1 -timeout 30m -v -run TestAbuseBatchFigures ./e2e/
//
// Rate and concurrency limits are off (PINGMCP_RATE_LIMIT=0,
// PINGMCP_MAX_CONCURRENT_REQUESTS=0), so that the batch's own cost is
// measured; PINGMCP_ABUSE_MAX_BATCH, if set, is passed as PINGMCP_MAX_BATCH.
// It uses only what the harness had at 03bb1f8, so that the same file
// measures that commit.
func TestAbuseBatchFigures(t *testing.T) {
	if os.Getenv("PINGMCP_ABUSE_FIGURES") != "1" {
		t.Skip("set PINGMCP_ABUSE_FIGURES=1 to measure")
	}
	t.Setenv("PINGMCP_RATE_LIMIT", "0")
	t.Setenv("PINGMCP_MAX_CONCURRENT_REQUESTS", "0")
	if v := os.Getenv("PINGMCP_ABUSE_MAX_BATCH"); v != "" {
		t.Setenv("PINGMCP_MAX_BATCH", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	d := runDev(t)
	token := login(t, ctx, d.Issuer, d.MCP, "alice", allScopes)
	post := func(sid, body string) (int, string, http.Header, time.Duration) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.MCP, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("Mcp-Protocol-Version", "2025-03-26")
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), resp.Header, time.Since(start)
	}
	initialize := func(experimental string) (int, string) {
		status, body, h, _ := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26",`+
			`"capabilities":{"experimental":{"pad":{"x":"`+experimental+`"}}},"clientInfo":{"name":"figures","version":"1"}}}`)
		sid := h.Get("Mcp-Session-Id")
		if status == http.StatusOK {
			if s, b, _, _ := post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); s != http.StatusAccepted {
				t.Fatalf("initialized: %d %s", s, b)
			}
		}
		return status, sid + " " + body[:min(len(body), 160)]
	}
	status, sid := initialize("")
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, sid)
	}
	sid = strings.Fields(sid)[0]
	for _, n := range []int{16, 1000, 2000} {
		body, _ := whoAmIBatch(fmt.Sprintf("n%d-", n), n)
		status, out, _, took := post(sid, body)
		t.Logf("batch of %d who_am_I (%d bytes): %d in %v, %d results; %.200s", n, len(body), status, took.Round(time.Millisecond),
			strings.Count(out, `"result":`), out)
	}

	pid := d.cmd.Process.Pid
	before := vmRSS(t, pid)
	pad := strings.Repeat("x", 3_900_000)
	for i := range 10 {
		status, answer := initialize(pad)
		if i == 0 || i == 9 {
			t.Logf("initialize %d with a 3.9 MB capabilities.experimental: %d %s", i+1, status, answer)
		}
	}
	after := vmRSS(t, pid)
	t.Logf("RSS of pingmcp dev: %d MB before ten 3.9 MB initializes, %d MB after (+%d MB)", before>>20, after>>20, (after-before)>>20)
}

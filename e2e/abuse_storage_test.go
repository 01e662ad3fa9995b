package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pingmcp/pingmcp/internal/redistest"
)

// Issue 11, item 2 and 5: what a session stores has a byte bound.

// floodBytes is the size of the results of TestAbuseStorageEvents' burst:
// json_schema_2020_12_tool of the conformance toolset echoes its arguments.
const floodBytes = 200 << 10

// TestAbuseStorageEvents: a session calls a tool returning ~200 KB a
// hundred times (a stream per POST, kept for resumption). Its oldest stream
// can no longer be resumed (400, the go-sdk's answer to a purged replay),
// and another session's events stay resumable with Last-Event-ID all along,
// with Redis and in memory. The events Redis keeps for the flooding session
// stay within --events-max-bytes (default 4 MiB; 22 MB at 03bb1f8). In
// memory, with 250 calls, the other session keeps its events (at 03bb1f8
// the node's one 10 MiB budget dropped every session's oldest events
// alike, each time the flood filled it).
//
// It logs the figures of BENCHMARKS.md "What a session stores": run it with
// -v (it takes no flag, so it runs against older binaries too).
func TestAbuseStorageEvents(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		client := redistest.Start(t)
		floodEvents(t, client, startNode(t, "single", durableArgs(client.Options().Addr, newStateKey(t))...), 100)
	})
	t.Run("memory", func(t *testing.T) {
		floodEvents(t, nil, startNode(t, "single"), 250)
	})
}

// floodEvents floods a session of n with calls large results while another
// resumes its stream; client is n's Redis (nil: n keeps events in memory).
func floodEvents(t *testing.T, client *redis.Client, n *node, calls int) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	quiet := connectDurable(t, ctx, n.URL(), false, nil).cs.ID()
	flood := connectDurable(t, ctx, n.URL(), false, nil).cs.ID()
	// test_tool_with_logging answers with three log messages, then its
	// result: four events in its stream.
	logging := func(session string) []sseEvent {
		if code, body := rawPost(t, ctx, n.URL(), session, `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}`); code != http.StatusOK {
			t.Fatalf("setLevel: %d %s", code, body)
		}
		events := rawCall(t, ctx, n.URL(), session, "test_tool_with_logging")
		if len(events) < 2 || events[0].id == "" {
			t.Fatalf("test_tool_with_logging: %d events", len(events))
		}
		return events
	}
	quietEvents := logging(quiet)
	floodFirst := logging(flood)[0].id
	resumeQuiet := func() error {
		got, code, err := resume(t, ctx, n.URL(), quiet, quietEvents[0].id)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("resume: %d, %v", code, err)
		}
		if len(got) != len(quietEvents)-1 {
			return fmt.Errorf("resumed %d events, want %d", len(got), len(quietEvents)-1)
		}
		for i, e := range got {
			if e.data != quietEvents[i+1].data {
				return fmt.Errorf("resumed event %d differs", i)
			}
		}
		return nil
	}
	if err := resumeQuiet(); err != nil {
		t.Fatalf("before the flood: %v", err)
	}

	var before int64
	if client != nil {
		before = usedMemory(t, ctx, client)
	}
	done := make(chan struct{})
	var resumes int
	var resumeErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		// The quiet session resumes while the other floods.
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := resumeQuiet(); err != nil && resumeErr == nil {
				resumeErr = err
			}
			resumes++
		}
	}()
	payload := strings.Repeat("x", floodBytes)
	start := time.Now()
	for i := range calls {
		events := callEvents(t, ctx, n.URL(), flood, `{"jsonrpc":"2.0","id":`+strconv.Itoa(i+10)+`,"method":"tools/call","params":{"name":"json_schema_2020_12_tool","arguments":{"name":"`+payload+`"}}}`)
		if len(events) == 0 || len(events[len(events)-1].data) < floodBytes {
			t.Fatalf("flood call %d: %d events", i, len(events))
		}
	}
	close(done)
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d calls of a tool returning %d KB took %v; %d resumptions of the other session meanwhile", calls, floodBytes>>10, elapsed.Round(time.Millisecond), resumes)
	if client != nil {
		after := usedMemory(t, ctx, client)
		kept := keyBytes(t, ctx, client, "pingmcp:events:{"+flood+"}:*")
		t.Logf("after %d calls of a tool returning %d KB: Redis used_memory grew by %.1f MB; the flooding session's event keys take %.1f MB (MEMORY USAGE)",
			calls, floodBytes>>10, float64(after-before)/(1<<20), float64(kept)/(1<<20))
		const bound = 4 << 20 // --events-max-bytes' default
		if kept > bound+bound/4 {
			t.Errorf("Redis keeps %d bytes of the flooding session's events, beyond --events-max-bytes (%d)", kept, bound)
		}
		if after-before > 2*bound {
			t.Errorf("Redis grew by %d bytes during the flood (bound per session %d)", after-before, bound)
		}
	}
	if resumeErr != nil || resumes == 0 {
		t.Errorf("the quiet session's events while the other flooded: %v (%d resumptions)", resumeErr, resumes)
	}
	if err := resumeQuiet(); err != nil {
		t.Errorf("after the flood: %v", err)
	}
	// The flooding session's oldest stream was dropped: resuming it is
	// refused, never answered with part of it.
	if _, code, err := resume(t, ctx, n.URL(), flood, floodFirst); err != nil || code != http.StatusBadRequest {
		t.Errorf("resuming the flood's dropped first stream: %d, want 400", code)
	}
}

// TestAbuseStorageSnapshot: an initialize whose snapshot would exceed
// --max-snapshot-bytes is refused with a JSON-RPC error, creates no
// session (no snapshot in Redis, the id unknown), and is logged with its
// size and the bound.
func TestAbuseStorageSnapshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := redistest.Start(t)
	n := startNode(t, "single", append(durableArgs(client.Options().Addr, newStateKey(t)), "--max-snapshot-bytes", "16384")...)
	refused := n.watch(`"msg":"session change refused: its snapshot would exceed the bound"`)

	big := strings.Repeat("x", 32<<10)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL(), strings.NewReader(
		`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"experimental":{"big":{"x":"`+big+`"}}},"clientInfo":{"name":"big","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("Mcp-Session-Id")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if !strings.Contains(body, `"code":-32005`) || !strings.Contains(body, `"limit":"snapshot_bytes"`) || !strings.Contains(body, `"retryable":false`) {
		t.Fatalf("initialize beyond --max-snapshot-bytes answered %d: %.300s", resp.StatusCode, body)
	}
	awaitLine(t, ctx, refused, `"limit":16384`)
	if line := n.line(`"msg":"session change refused`); !strings.Contains(line, `"size":`) || !strings.Contains(line, `"session":`) {
		t.Errorf("the refusal's log line lacks the size or the session: %s", line)
	}
	if id != "" {
		if code, _ := rawPost(t, ctx, n.URL(), id, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); code != http.StatusNotFound {
			t.Errorf("the refused session answers %d, want 404", code)
		}
	}
	if keys, _ := client.Keys(ctx, "pingmcp:session:*:snap").Result(); len(keys) != 0 {
		t.Errorf("a refused initialize left snapshots: %v", keys)
	}
	// A session within the bound is created as usual.
	cs := connectDurable(t, ctx, n.URL(), false, nil).cs
	if err := cs.Ping(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := client.Exists(ctx, "pingmcp:session:{"+cs.ID()+"}:snap").Result(); n != 1 {
		t.Error("a normal session has no snapshot")
	}
}

// callEvents posts body on session id and reads its whole SSE answer.
func callEvents(t *testing.T, ctx context.Context, url, id, body string) []sseEvent {
	t.Helper()
	resp, err := postOnSession(ctx, url, id, body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("tool call: %v %v", err, resp)
	}
	return readSSE(t, resp)
}

// resume GETs session id's events after lastEventID: them, and the status.
// It may run on any goroutine.
func resume(t *testing.T, ctx context.Context, url, id, lastEventID string) ([]sseEvent, int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", id)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	req.Header.Set("Last-Event-ID", lastEventID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, resp.StatusCode, nil
	}
	return readSSE(t, resp), resp.StatusCode, nil
}

// usedMemory is Redis' used_memory.
func usedMemory(t *testing.T, ctx context.Context, client *redis.Client) int64 {
	t.Helper()
	info, err := client.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// keyBytes sums MEMORY USAGE of the keys matching pattern.
func keyBytes(t *testing.T, ctx context.Context, client *redis.Client, pattern string) int64 {
	t.Helper()
	keys, err := client.Keys(ctx, pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, k := range keys {
		n, _ := client.MemoryUsage(ctx, k, 0).Result()
		sum += n
	}
	return sum
}

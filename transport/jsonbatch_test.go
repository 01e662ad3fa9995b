package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/metrics"
)

// A batch taking JSON alone is answered in full or refused: a stream cut
// before some of its answers (a tool that closes its stream, SEP-1699; a
// drain; the actor gone) is 502 for a single request, but for a batch the
// answers that came are sent, 200, and the others silently missing.
func TestJSONOnlyBatchCutShortIsNotAnsweredInPart(t *testing.T) {
	srv := newEdge(t, Options{})
	h := initialize20250326(t, srv.URL)
	batch := `[{"jsonrpc":"2.0","id":1,"method":"ping"},` +
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow_compute","arguments":{"seconds":1}}},` +
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_reconnection","arguments":{}}}]`
	for try := range 5 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(batch))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		var answers []json.RawMessage
		if r.StatusCode == http.StatusOK && json.Unmarshal(b, &answers) == nil && len(answers) < 3 {
			t.Fatalf("try %d: a batch of 3 answered 200 with %d answers: %s", try, len(answers), b)
		}
		t.Logf("try %d: %d %s", try, r.StatusCode, b)
	}
}

// initialize20250326 opens a session on the 2025-03-26 protocol, whose
// event streams the go-sdk gives no priming event: one its tool closes
// before any event cannot be resumed. It returns the session's headers.
func initialize20250326(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, body := call{method: http.MethodPost, body: strings.Replace(initBody, "2025-11-25", "2025-03-26", 1)}.do(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	h := map[string]string{"Mcp-Session-Id": resp.Header.Get("Mcp-Session-Id"), "Mcp-Protocol-Version": "2025-03-26"}
	if resp, body := (call{http.MethodPost, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`}).do(t, url); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", resp.StatusCode, body)
	}
	return h
}

// The edge's JSON error for a single request taking JSON alone, whose
// stream ended before its answer and cannot be resumed (no event id came),
// names the request's id (known: the body was read), as every other error
// the edge writes for a request does (forwardFailed: rb.FirstID()); "id":
// null matches no request of the client's.
func TestJSONOnlyCutShortNamesTheRequest(t *testing.T) {
	srv := newEdge(t, Options{})
	h := initialize20250326(t, srv.URL)
	h["Accept"] = "application/json"
	resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"test_reconnection","arguments":{}}}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a call whose stream its tool closed, taking JSON alone: %d %q", resp.StatusCode, body)
	}
	var e struct{ ID json.RawMessage }
	if json.Unmarshal([]byte(body), &e) != nil || string(e.ID) != `"x"` {
		t.Errorf("the 502's id: %s, want \"x\" (%q)", e.ID, body)
	}
}

// A client that takes JSON alone cannot resume an event stream; the edge
// does it for it: a call whose tool closes its stream before its answer
// (SEP-1699: the client is to resume it) is answered 200 all the same,
// the edge having resumed the stream from its last event (a GET with
// Last-Event-ID).
func TestJSONOnlyAnswerResumedAfterItsStreamClosed(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	before := counterValue(t, metrics.JSONResumes)
	resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"test_reconnection","arguments":{}}}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("a call whose stream its tool closed, taking JSON alone: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var answer struct {
		ID     json.RawMessage
		Result struct{ Content []struct{ Text string } }
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || string(answer.ID) != `"x"` || len(answer.Result.Content) != 1 ||
		!strings.Contains(answer.Result.Content[0].Text, "Reconnection test completed") {
		t.Fatalf("the answer: %q (%v)", body, err)
	}
	if got := counterValue(t, metrics.JSONResumes) - before; got != 1 {
		t.Errorf("pingmcp_json_answers_resumed_total rose by %v, want 1", got)
	}
}

// A tool that closes its stream for its client to come back later
// (SEP-1699) sets the pace with the close event's retry field: the edge
// waits that long before it resumes a JSON-only client's stream, and
// resumes it however many times the tool closes it, since a stream that
// asked to be resumed did not stall.
func TestJSONOnlyAnswerResumedAsItsStreamAsked(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	for _, c := range []struct {
		times, retryMS int
	}{
		{1, 400},                   // paced: waited for
		{maxStalledResumes + 2, 1}, // closed again and again without an event between
	} {
		start := time.Now()
		resp, body := call{http.MethodPost, h, fmt.Sprintf(`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"close_often","arguments":{"times":%d,"retry_ms":%d}}}`, c.times, c.retryMS)}.do(t, srv.URL)
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, fmt.Sprintf("closed %d times", c.times)) {
			t.Fatalf("a call whose tool closed its stream %d times asking %d ms: %d %q", c.times, c.retryMS, resp.StatusCode, body)
		}
		if min := time.Duration(c.times*c.retryMS) * time.Millisecond; took < min {
			t.Errorf("a call whose tool closed its stream %d times asking %d ms took %v: the edge did not wait as asked (at least %v)", c.times, c.retryMS, took, min)
		}
	}
}

// The retry field is read as the SSE standard says: digits alone, in
// milliseconds; anything else is ignored; bounded by maxResumeRetry.
func TestJSONAnswerReadsRetryField(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"retry: 250\n\n":                     250 * time.Millisecond,
		"retry:7\n\n":                        7 * time.Millisecond,
		"retry: 25x\n\n":                     0,
		"retry: -5\n\n":                      0,
		"retry: \n\n":                        0,
		"retry: 1e3\n\n":                     0,
		"retry: 99999999999999999999999\n\n": maxResumeRetry,
		"event: close\nretry: 10\n\n":        10 * time.Millisecond,
	} {
		var j jsonAnswer
		if err := j.write([]byte(in)); err != nil {
			t.Fatal(err)
		}
		if j.retry != want {
			t.Errorf("%q: retry %v, want %v", in, j.retry, want)
		}
	}
}

// A client that takes JSON alone and leaves while the edge relays its
// answer from a resumed stream (its tool closed the first) has its call
// cancelled all the same: its actor saw only the resumed stream end.
func TestJSONOnlyClientThatLeavesAResumedStreamCancelsItsCall(t *testing.T) {
	// (The resumed stream's first part, which ends the edge's wait for it,
	// is the actor's first keep-alive: the go-sdk writes nothing of a
	// resumed stream until it has an event.)
	srv := newEdge(t, Options{SSEKeepAlive: 50 * time.Millisecond})
	sid := initialize(t, srv.URL)
	ctx, leave := context.WithCancel(context.Background())
	defer leave()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(
		`{"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"close_then_wait","arguments":{}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	before := counterValue(t, metrics.JSONResumes)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); counterValue(t, metrics.JSONResumes) == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call's stream was never resumed")
		}
	}
	leave()
	<-done
	select {
	case <-waitEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("the call left by its client on a resumed stream runs on")
	}
}

// A JSON answer's stream that cannot be resumed because its session is gone
// (deleted while the edge resumed the stream its tool closed) is answered
// as the session's other requests then are: 404, session not found (the
// client initializes anew), not 502.
func TestJSONOnlyAnswerOfASessionGoneIsNotFound(t *testing.T) {
	srv := newEdge(t, Options{SSEKeepAlive: 50 * time.Millisecond})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	before := counterValue(t, metrics.JSONResumes)
	type answered struct {
		status int
		body   string
	}
	done := make(chan answered, 1)
	go func() {
		resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":"g","method":"tools/call","params":{"name":"close_then_wait","arguments":{}}}`}.do(t, srv.URL)
		done <- answered{resp.StatusCode, body}
	}()
	for deadline := time.Now().Add(10 * time.Second); counterValue(t, metrics.JSONResumes) == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call's stream was never resumed")
		}
	}
	if resp, body := (call{http.MethodDelete, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}, ""}).do(t, srv.URL); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	select {
	case a := <-done:
		var e struct {
			ID    json.RawMessage
			Error struct{ Code int }
		}
		// (200 once a keep-alive's space went out: the status was sent.)
		committed := strings.HasPrefix(a.body, " ")
		if a.status != http.StatusNotFound && !(committed && a.status == http.StatusOK) ||
			json.Unmarshal([]byte(a.body), &e) != nil || string(e.ID) != `"g"` || e.Error.Code != -32001 {
			t.Errorf("the answer of a call whose session was deleted: %d %q, want 404 (200 after a keep-alive) and -32001 for \"g\"", a.status, a.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
	}
	<-waitEnded // the call, ended with its session
}

package transport

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A client that takes JSON alone cannot see a request of the server's (an
// elicitation, a sampling request): the stream that would carry it is
// turned into one JSON body, its requests dropped. A tool that asks the
// client something must not leave such a POST waiting for good, its call
// running on after the client gives up, for an answer to a request whose
// id the client was never shown.
func TestJSONOnlyCallThatAsksTheClientIsAnswered(t *testing.T) {
	srv := newEdge(t, Options{SSEKeepAlive: 100 * time.Millisecond})
	resp, body := call{method: http.MethodPost, body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	if resp, body := (call{http.MethodPost, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`}).do(t, srv.URL); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"who?"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	start := time.Now()
	r, err := http.DefaultClient.Do(req)
	if err == nil {
		b, rerr := io.ReadAll(r.Body)
		r.Body.Close()
		err = rerr
		if err == nil {
			t.Logf("answered after %v: %d %s", time.Since(start), r.StatusCode, b)
			return
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a JSON-only call whose tool elicits got no answer in %v (keep-alives hold it open for good): %v", time.Since(start), err)
	}
	t.Fatal(err)
}

// A subscriptions/listen (2026-07-28) whose client takes JSON alone has no
// JSON answer: its stream never ends. It is refused, as the go-sdk refused
// it before the edge rewrote Accept, rather than sent an endless event
// stream its client said it cannot read.
func TestJSONOnlyListenIsRefused(t *testing.T) {
	srv := newEdge(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(listenBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range listenHeaders(nil) {
		req.Header.Set(k, v)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("a listen taking JSON alone: %d %s, want 400", r.StatusCode, r.Header.Get("Content-Type"))
	}
}

// A client that takes JSON alone and leaves before its answer (its request
// timed out, its user gave up) cannot resume it, as an event stream's
// client may: the edge cancels its requests for it (notifications/
// cancelled), rather than leave its calls running for nobody, holding
// their places among the session's running calls. Seen through the
// request's id: the go-sdk refuses another request with the id of one in
// flight.
func TestJSONOnlyClientThatLeavesCancelsItsCall(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	ctx, leave := context.WithCancel(context.Background())
	defer leave()
	left := make(chan error, 1)
	// start sends the call; it is sent again if it was answered before the
	// probes below saw it in flight (a probe with its id reached the
	// go-sdk first, which refused it as a duplicate).
	start := func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(
			`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow_compute","arguments":{"seconds":600}}}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		req.Header.Set("Content-Type", "application/json")
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			left <- err
		}()
	}
	start()
	again := func() string {
		_, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`}.do(t, srv.URL)
		return body
	}
	await := func(what string, done func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for body := again(); !done(body); body = again() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q", what, body)
			}
			select {
			case err := <-left:
				if err != nil {
					t.Fatalf("the call: %v", err)
				}
				start()
			default:
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	await("the call never ran", func(body string) bool { return strings.Contains(body, "duplicate in-flight request ID") })
	leave()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Fatalf("the client's leaving: %v", err)
	}
	await("the call left by its client runs on", func(body string) bool { return strings.Contains(body, `"result"`) })
}

// A JSON-only client may leave at any moment: while its request is on its
// way to the actor, or once the actor has it but before its answer's first
// part has come back to the edge. Its call is cancelled all the same.
func TestJSONOnlyClientThatLeavesEarlyCancelsItsCall(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	for i := range 20 {
		id := strconv.Itoa(100 + i)
		ctx, leave := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			// Left a little later each time: from before the edge has the
			// request to after its actor has it.
			WroteRequest: func(httptrace.WroteRequestInfo) { time.AfterFunc(time.Duration(i)*200*time.Microsecond, leave) },
		}), http.MethodPost, srv.URL, strings.NewReader(
			`{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"slow_compute","arguments":{"seconds":600}}}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		leave()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}`}.do(t, srv.URL)
			if strings.Contains(body, `"result"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("left %d: the call runs on: %q", i, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// A long call's JSON answer is not silent until it comes: each keep-alive
// of the actor's sends white space ahead of it (JSON allows it before a
// value), so that a load balancer's idle timeout does not cut the call;
// the body still reads as the one JSON answer.
func TestJSONOnlyLongCallKeepsItsConnectionAlive(t *testing.T) {
	srv := newEdge(t, Options{SSEKeepAlive: 100 * time.Millisecond})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"slow_compute","arguments":{"seconds":1,"label":"x"}}}`}.do(t, srv.URL)
	var answer struct {
		ID     int `json:"id"`
		Result struct {
			Content []struct{ Text string } `json:"content"`
		} `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal([]byte(body), &answer) != nil || answer.ID != 8 || len(answer.Result.Content) != 1 {
		t.Fatalf("a long call taking JSON alone: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if !strings.HasPrefix(body, " ") {
		t.Errorf("a call of a second under keep-alives of 100 ms: no white space ahead of its answer: %q", body)
	}
}

package transport

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/auth/authtest"
)

// notifyPromptChange calls test_trigger_prompt_change on session h: its
// notifications/prompts/list_changed goes to the session's standalone
// stream.
func notifyPromptChange(t *testing.T, url string, h map[string]string, id string) {
	t.Helper()
	resp, b := call{method: http.MethodPost, headers: h,
		body: `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"test_trigger_prompt_change","arguments":{}}}`}.do(t, url)
	if resp.StatusCode != http.StatusOK || !strings.Contains(b, `"result"`) {
		t.Fatalf("test_trigger_prompt_change: %d %s", resp.StatusCode, b)
	}
}

// A GET without Last-Event-ID opens the session's standalone stream anew:
// nothing an earlier GET carried is replayed on it (the revision: a server
// MUST NOT replay messages that would have been delivered on a different
// stream), and its events are numbered on from the stream's last one, as
// the store numbers them, so that a resumption finds them. Found by an
// attack review: each plain GET replayed the stream's whole history.
func TestStandaloneGETReplaysNothing(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	var ids []string
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		get := readStream(t, ctx, http.MethodGet, srv.URL, h, "")
		get.Await(t, 5*time.Second, "the stream's opening comment", func(l string) bool { return l == ": ok" })
		// What a replay would send comes before anything new.
		notifyPromptChange(t, srv.URL, h, string(rune('2'+i)))
		lines := get.Await(t, 5*time.Second, "the new list_changed", func(l string) bool { return strings.Contains(l, "list_changed") })
		cancel()
		awaitServing(t, sid, "the actor let go of the GET", 0, 0)
		var id string
		for _, l := range lines {
			if after, ok := strings.CutPrefix(l, "id: "); ok {
				id = after
			}
		}
		if n := strings.Count(strings.Join(lines, "\n"), "list_changed"); n != 1 {
			t.Errorf("plain GET %d: %d list_changed before the new one's end, want the new one alone: %q", i, n, lines)
		}
		ids = append(ids, id)
	}
	if want := []string{"_0", "_1", "_2"}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("the new events' ids on successive plain GETs: %q, want %q (numbered on, as stored)", ids, want)
	}
	// A resumption from the first of them gets the two after it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resume := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Last-Event-ID": ids[0]}
	get := readStream(t, ctx, http.MethodGet, srv.URL, resume, "")
	get.Await(t, 5*time.Second, "the replay of _1", func(l string) bool { return l == "id: _1" })
	get.Await(t, 5*time.Second, "the replay of _2", func(l string) bool { return l == "id: _2" })
}

// Once the standalone stream's oldest event was dropped (the session's
// byte budget, --events-max-bytes, drops its oldest events whatever their
// stream), a GET without Last-Event-ID is still a new standalone stream.
// Found by an attack review: the store was asked for the events after -1,
// "purged", and every new standalone stream of the session was refused 400
// from then on.
func TestStandaloneGETAfterTrim(t *testing.T) {
	srv := newEdge(t, Options{MaxBodyBytes: 1 << 20})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	notifyPromptChange(t, srv.URL, h, "9")
	// 5 MiB of ordinary tool results: more than the session's 4 MiB.
	pad := strings.Repeat("x", 256<<10)
	for range 20 {
		resp, b := call{method: http.MethodPost, headers: h,
			body: `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"json_schema_2020_12_tool","arguments":{"email":"` + pad + `"}}}`}.do(t, srv.URL)
		if resp.StatusCode != http.StatusOK || !strings.Contains(b, `"result"`) {
			t.Fatalf("echo: %d %.300s", resp.StatusCode, b)
		}
	}
	if status := getStatus(t, srv.URL, h); status != http.StatusOK {
		t.Fatalf("GET without Last-Event-ID: %d, want 200 and a new standalone stream", status)
	}
}

// getStatus is the status of a GET on /mcp with headers h (its stream, if
// one opens, is closed at once).
func getStatus(t *testing.T, url string, h map[string]string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A Last-Event-ID past the stream's end (beyond the one after its last
// event: an answer a dead node sent and did not store) names no event the
// stream issued: 400, as for one of another stream. Found by an attack
// review: it was taken, the SDK numbered the next events from it, apart
// from the store, and from the largest int the next id overflowed.
func TestForgedLastEventIDPastTheEnd(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	// The standalone stream's event _0, sent on a GET (a list change is
	// told a moment after it, to the GET open then).
	ctx, cancel := context.WithCancel(context.Background())
	get := readStream(t, ctx, http.MethodGet, srv.URL, h, "")
	get.Await(t, 5*time.Second, "the stream's opening comment", func(l string) bool { return l == ": ok" })
	notifyPromptChange(t, srv.URL, h, "9")
	get.Await(t, 5*time.Second, "the list change's event", func(l string) bool { return l == "id: _0" })
	cancel()
	awaitServing(t, sid, "the actor let go of the GET", 0, 0)
	for _, id := range []string{"_9223372036854775806", "_9223372036854775807", "_2"} {
		resume := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Last-Event-ID": id}
		if status := getStatus(t, srv.URL, resume); status != http.StatusBadRequest {
			t.Errorf("Last-Event-ID %s on a stream of one event: %d, want 400", id, status)
		}
	}
	// Its last event, and the one after it, are taken.
	for _, id := range []string{"_0", "_1"} {
		ctx, cancel := context.WithCancel(context.Background())
		resume := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Last-Event-ID": id}
		get := readStream(t, ctx, http.MethodGet, srv.URL, resume, "")
		get.Await(t, 5*time.Second, "the resumed stream's opening comment", func(l string) bool { return l == ": ok" })
		cancel()
		awaitServing(t, sid, "the actor let go of the GET", 0, 0)
	}
}

// A GET the go-sdk would refuse whatever the session holds (an Accept
// without text/event-stream, a Last-Event-ID that is no event id), and a
// POST with a Last-Event-ID, are refused 400 at the edge, with a JSON-RPC
// error, and change nothing: each
// reached the session's actor, which admitted it first, so that one through
// another client of the session's user took the session to that client
// (the token it holds, the snapshot's client, its exchanged tokens gone)
// and ended the streams of the client it was used through; and a plain GET
// had the actor open the standalone stream in the store. Found by a review
// playing a second client.
func TestRefusedGETChangesNothing(t *testing.T) {
	is := authtest.NewIssuer(t)
	url := authEdge(t, is)
	token := func(client string) string {
		c := is.Claims("alice", mcpResource, "mcp:tools")
		c["client_id"] = client
		return is.Token(t, c)
	}
	desktop, cli := token("desktop"), token("cli")
	sid := initializeWith(t, url, initBody, bearer(desktop, nil))
	h := func(tok string, more ...string) map[string]string {
		out := bearer(tok, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"})
		for i := 0; i+1 < len(more); i += 2 {
			out[more[i]] = more[i+1]
		}
		return out
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	get := readStream(t, ctx, http.MethodGet, url, h(desktop), "")
	get.Await(t, 5*time.Second, "desktop's stream's opening comment", func(l string) bool { return l == ": ok" })
	switches := func() int { return records.count("session now used through another client", sid) }
	before := switches()
	for _, c := range []struct{ name, header, value string }{
		{"Accept without the event stream", "Accept", "application/json"},
		{"Accept of another type", "Accept", "text/html"},
		{"no underscore", "Last-Event-ID", "garbage"},
		{"two underscores", "Last-Event-ID", "a_b_1"},
		{"negative index", "Last-Event-ID", "_-1"},
		{"index not a number", "Last-Event-ID", "_one"},
		{"index beyond an int", "Last-Event-ID", "_99999999999999999999"},
		{"empty", "Last-Event-ID", ""},
	} {
		resp, body := call{method: http.MethodGet, headers: h(cli, c.header, c.value)}.do(t, url)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":-32600`) {
			t.Errorf("%s (%s %q): %d %s, want 400 with JSON-RPC -32600", c.name, c.header, c.value, resp.StatusCode, body)
		}
	}
	// A POST that names an event to resume from: the go-sdk's refusal.
	resp, body := call{method: http.MethodPost, headers: h(cli, "Last-Event-ID", "_0"), body: `{"jsonrpc":"2.0","id":5,"method":"ping"}`}.do(t, url)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"id":5,"error":{"code":-32600`) {
		t.Errorf("POST with Last-Event-ID: %d %s, want 400 with JSON-RPC -32600 for its id", resp.StatusCode, body)
	}
	if n := switches() - before; n != 0 {
		t.Errorf("refused requests of another client took the session to it (%d switches logged)", n)
	}
	// desktop's stream carries on: a list change told now reaches it.
	notifyPromptChange(t, url, h(desktop), "7")
	get.Await(t, 5*time.Second, "the list change on desktop's stream", func(l string) bool { return strings.Contains(l, "list_changed") })
}

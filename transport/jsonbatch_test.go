package transport

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A batch taking JSON alone is answered in full or refused: a stream cut
// before some of its answers (a tool that closes its stream, SEP-1699; a
// drain; the actor gone) is 502 for a single request, but for a batch the
// answers that came are sent, 200, and the others silently missing.
func TestJSONOnlyBatchCutShortIsNotAnsweredInPart(t *testing.T) {
	srv := newEdge(t, Options{})
	resp, body := call{method: http.MethodPost, body: strings.Replace(initBody, "2025-11-25", "2025-03-26", 1)}.do(t, srv.URL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	h := map[string]string{"Mcp-Session-Id": resp.Header.Get("Mcp-Session-Id"), "Mcp-Protocol-Version": "2025-03-26"}
	if resp, body := (call{http.MethodPost, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`}).do(t, srv.URL); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", resp.StatusCode, body)
	}
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

// The edge's JSON error for a single request taking JSON alone, whose
// stream ended before its answer, names the request's id (known: the body
// was read), as every other error the edge writes for a request does
// (forwardFailed: rb.FirstID()); "id": null matches no request of the
// client's.
func TestJSONOnlyCutShortNamesTheRequest(t *testing.T) {
	srv := newEdge(t, Options{})
	sid := initialize(t, srv.URL)
	h := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25", "Accept": "application/json"}
	resp, body := call{http.MethodPost, h, `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"test_reconnection","arguments":{}}}`}.do(t, srv.URL)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a call whose stream its tool closed, taking JSON alone: %d %q", resp.StatusCode, body)
	}
	var e struct{ ID json.RawMessage }
	if json.Unmarshal([]byte(body), &e) != nil || string(e.ID) != `"x"` {
		t.Errorf("the 502's id: %s, want \"x\" (%q)", e.ID, body)
	}
}

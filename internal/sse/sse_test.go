package sse

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The end of a listen is two events, each a JSON-RPC message a client can
// read: the cancellation naming the listen, then its completion result,
// both carrying the listen's id as their subscription id, whatever the id's
// type and the reason's characters.
func TestListenEnded(t *testing.T) {
	for _, id := range []string{`9`, `"listen-1"`, `"a\"b\\c"`, `-1.5e3`} {
		reason := "the node is stopping: \"listen\" again <now>\n\u00e9"
		b := ListenEnded(json.RawMessage(id), reason)
		events := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
		if len(events) != 2 {
			t.Fatalf("id %s: %d events, want 2: %q", id, len(events), b)
		}
		var msgs []map[string]any
		for _, e := range events {
			data, ok := strings.CutPrefix(e, "event: message\ndata: ")
			if !ok || strings.Contains(data, "\n") {
				t.Fatalf("id %s: event %q is not one message event", id, e)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatalf("id %s: %q: %v", id, data, err)
			}
			msgs = append(msgs, m)
		}
		var want any
		json.Unmarshal([]byte(id), &want)
		cancel, closed := msgs[0], msgs[1]
		p, _ := cancel["params"].(map[string]any)
		if cancel["jsonrpc"] != "2.0" || cancel["method"] != "notifications/cancelled" || cancel["id"] != nil ||
			!reflect.DeepEqual(p["requestId"], want) || p["reason"] != reason ||
			!reflect.DeepEqual(p["_meta"], map[string]any{mcp.MetaKeySubscriptionID: want}) {
			t.Errorf("id %s: first event %v, want notifications/cancelled naming the listen", id, cancel)
		}
		r, _ := closed["result"].(map[string]any)
		if closed["jsonrpc"] != "2.0" || !reflect.DeepEqual(closed["id"], want) || closed["error"] != nil ||
			!reflect.DeepEqual(r, map[string]any{"resultType": "complete", "_meta": map[string]any{mcp.MetaKeySubscriptionID: want}}) {
			t.Errorf("id %s: second event %v, want the listen's completion result", id, closed)
		}
	}
}

package transport

import (
	"net/http"
	"testing"
)

// A client's request reaches the actor without credentials, hop-by-hop
// headers or pingmcp's own headers (the actor's forwarded id, the tasks
// layer's run id), whatever their case; the MCP headers go through.
func TestForwardHeadersDropsInternalOnes(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "Bearer secret")
	h.Set("Mcp-Session-Id", "abc")
	h.Set("Mcp-Protocol-Version", "2025-11-25")
	h.Set("X-Pingmcp-Task-Run", "0123456789abcdef")
	h.Set("X-Pingmcp-Forwarded", "forged")
	h["x-pingmcp-anything"] = []string{"raw, not canonical"}
	got := map[string]bool{}
	for _, fh := range forwardHeaders(h) {
		got[fh.GetName()] = true
	}
	for _, name := range []string{"Authorization", "X-Pingmcp-Task-Run", "X-Pingmcp-Forwarded", "x-pingmcp-anything"} {
		if got[name] {
			t.Errorf("%s was forwarded", name)
		}
	}
	for _, name := range []string{"Mcp-Session-Id", "Mcp-Protocol-Version"} {
		if !got[name] {
			t.Errorf("%s was not forwarded", name)
		}
	}
}

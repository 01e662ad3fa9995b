package actors_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/state"
)

// The tasks extension is not defined on the 2025-11-25 protocol (SEP-2663,
// "Backward Compatibility": servers MUST NOT treat the capability as
// enabling tasks there; requests proceed as if the client had declared no
// task capability). A session whose client declares it anyway: initialize
// does not advertise it, a task-capable tool answers synchronously, nothing
// is stored as a task, and tasks/* are unknown methods.
func TestNoTasksOnSessions(t *testing.T) {
	d := state.MemoryStores(time.Hour)
	n := newSessionNode(t, d)
	id := rand.Text()
	pid := n.spawn(id)
	init := call(t, n, pid, "", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
		`"capabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}},"tasks":{"requests":{"tools":{"call":{}}}}},"clientInfo":{"name":"t","version":"1"}}}`)
	if !strings.Contains(init, `"protocolVersion":"2025-11-25"`) || strings.Contains(init, "io.modelcontextprotocol/tasks") || strings.Contains(init, `"tasks"`) {
		t.Fatalf("initialize: %s; want 2025-11-25 and no task capability", init)
	}
	n.post(t, pid, id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, 202)

	// slow_compute is task-capable (optional) on the 2026-07-28 protocol;
	// here it runs and answers in the call, the legacy params.task hint
	// ignored.
	out := call(t, n, pid, id, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow_compute","arguments":{"seconds":0},"task":{"ttl":60000}}}`)
	if !strings.Contains(out, `"content"`) || strings.Contains(out, `"taskId"`) || strings.Contains(out, `"resultType":"task"`) {
		t.Fatalf("slow_compute on a session: %s; want its result, no task", out)
	}
	// The go-sdk answers a method it does not have with a plain-text 400;
	// a client reads the JSON-RPC error instead (200, its id, -32601).
	for _, m := range []string{"tasks/get", "tasks/cancel", "tasks/update", "tasks/result", "tasks/list"} {
		status, out, err := exchange(n.system.Root, pid, id, `{"jsonrpc":"2.0","id":"q-2","method":"`+m+`","params":{"taskId":"x"}}`)
		want := `{"jsonrpc":"2.0","id":"q-2","error":{"code":-32601,"message":"method not found: \"` + m + `\""}}`
		if err != nil || status != 200 || strings.TrimSpace(out) != want {
			t.Errorf("%s on a session: %d %s %v; want 200 %s", m, status, out, err, want)
		}
	}
	// A notification gets no JSON-RPC answer: the SDK's 400 stays.
	n.post(t, pid, id, `{"jsonrpc":"2.0","method":"notifications/tasks","params":{"taskId":"x"}}`, 400)
}

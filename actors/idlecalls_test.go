package actors

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/internal/logtest"
	"github.com/pingmcp/pingmcp/state"
)

// A call whose client left (closed its stream: on the 2025-11-25 protocol
// the client may resume it) keeps its idle actor: passivation would end
// the call, and the answer the client would resume to. The client's
// answer to the call's elicitation, long after the idle timeout, reaches
// the same actor; once the call ended, the actor passivates. Found by a
// review: since running calls were ended as their actor stops, idle
// passivation cut them at --actor-idle-timeout.
func TestIdleKeepsALeftCall(t *testing.T) {
	var logs logtest.Buffer
	root, pid, p := runningSession(t, Config{IdleTimeout: 20 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	elicit, status := leaveElicitation(t, root, pid, p, 1)
	if status != http.StatusOK {
		t.Fatalf("the call: %d", status)
	}
	// The idle timeout passed: kept, or passivated.
	awaitLogged(t, &logs, `idle actor`)
	if strings.Contains(logs.String(), `"msg":"passivating idle actor"`) {
		t.Fatalf("passivated with a call running:\n%s", logs.String())
	}
	if status := fuzzForward(t, root, pid, p, `{"jsonrpc":"2.0","id":`+string(elicit)+`,"result":{"action":"decline"}}`); status != http.StatusAccepted {
		t.Fatalf("the elicitation's answer, after the idle timeout: %d", status)
	}
	awaitLogged(t, &logs, `"msg":"passivating idle actor"`)
}

// A left call keeps its actor no longer than the session lives (its idle
// timeout since its last request): a call that waits for good does not
// hold a node's memory for good.
func TestIdlePassivatesALeftCallOnceTheSessionIsOver(t *testing.T) {
	var logs logtest.Buffer
	d := state.MemoryStores(300 * time.Millisecond)
	root, pid, p := runningSessionOn(t, d, Config{IdleTimeout: 20 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if _, status := leaveElicitation(t, root, pid, p, 1); status != http.StatusOK {
		t.Fatalf("the call: %d", status)
	}
	awaitLogged(t, &logs, `"msg":"passivating idle actor"`)
	if err := root.StopFuture(pid).Wait(); err != nil {
		t.Fatalf("the actor: %v", err)
	}
}

// With sessions that never end (--session-idle-timeout 0, which needs
// --max-sessions-per-user 0: no cap on a user's sessions), a left call
// keeps its actor leftCallsKeep at most, not for the node's life (found by
// a review: a call waiting for an elicitation's answer pinned its actor).
func TestIdleLeftCallBoundedWithoutSessionTimeout(t *testing.T) {
	was := leftCallsKeep
	leftCallsKeep = 200 * time.Millisecond
	t.Cleanup(func() { leftCallsKeep = was })
	var logs logtest.Buffer
	d := state.MemoryStores(0)
	root, pid, p := runningSessionOn(t, d, Config{IdleTimeout: 20 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if _, status := leaveElicitation(t, root, pid, p, 1); status != http.StatusOK {
		t.Fatalf("the call: %d", status)
	}
	awaitLogged(t, &logs, `"msg":"passivating idle actor"`)
}

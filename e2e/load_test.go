package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestLoadHolds runs the load command (cmd/pingmcp-load) small: 30
// sessions on three nodes for 15 s while the last node is killed and
// restarted once. It must report that it held: every error retryable and
// inside the kill window, every todo created stored exactly once. The full
// run (1,000 sessions, five minutes, two kills) is in BENCHMARKS.md.
func TestLoadHolds(t *testing.T) {
	load := filepath.Join(t.TempDir(), "pingmcp-load")
	if out, err := exec.Command("go", "build", "-o", load, "../cmd/pingmcp-load").CombinedOutput(); err != nil {
		t.Fatalf("build pingmcp-load: %v\n%s", err, out)
	}
	cmd := exec.Command(load, "--binary", binary, "--sessions", "30", "--duration", "15s", "--kills", "1",
		"--think", "200ms", "--down", "2s", "--settle", "5s", "--dir", t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("pingmcp-load:\n%s", out)
	if err != nil || !strings.Contains(string(out), "HELD:") {
		t.Fatalf("the load run did not hold: %v", err)
	}
	if !strings.Contains(string(out), "0 acknowledged creates missing, 0 stored more than once, 0 sessions unchecked") {
		t.Error("the todo check is not in the report")
	}
	// What a call cost each process, measured: the nodes, Redis and the
	// load client itself all worked for every call.
	m := regexp.MustCompile(`CPU per call, ms: nodes ([0-9.]+), todo-api ([0-9.]+), redis ([0-9.]+), idp [0-9.]+, pingmcp-load ([0-9.]+); all ([0-9.]+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatal("no CPU per call in the report")
	}
	for i, role := range []string{"nodes", "todo-api", "redis", "pingmcp-load", "all"} {
		if v, _ := strconv.ParseFloat(m[i+1], 64); v <= 0 {
			t.Errorf("CPU per call of %s: %s ms, want more than 0", role, m[i+1])
		}
	}
}

package redistest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// With RedisCPUsEnv set, redis-server runs on those CPUs only; without it,
// on the test's own.
func TestRedisCPUs(t *testing.T) {
	own := cpusAllowed(t, os.Getpid())
	// The last CPU this process may run on ("0-1", "2,4-7").
	last := own[strings.LastIndexAny(own, ",-")+1:]
	if got := cpusAllowed(t, serverPID(t, Start(t))); got != own {
		t.Errorf("without %s, redis-server may run on CPUs %s, want this process's %s", RedisCPUsEnv, got, own)
	}
	t.Setenv(RedisCPUsEnv, last)
	if got := cpusAllowed(t, serverPID(t, Start(t))); got != last {
		t.Errorf("with %s=%s, redis-server may run on CPUs %s", RedisCPUsEnv, last, got)
	}
}

// serverPID is the process id of client's redis-server.
func serverPID(t *testing.T, client *redis.Client) int {
	t.Helper()
	pid, err := strconv.Atoi(Info(t, client, "server")["process_id"])
	if err != nil {
		t.Fatalf("INFO server process_id: %v", err)
	}
	return pid
}

// cpusAllowed is the list of CPUs process pid may run on (/proc/PID/status).
func cpusAllowed(t *testing.T, pid int) string {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no Cpus_allowed_list", pid)
	return ""
}

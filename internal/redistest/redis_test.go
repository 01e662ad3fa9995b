package redistest

import (
	"context"
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
	info, err := client.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("INFO server process_id: %v", err)
			}
			return pid
		}
	}
	t.Fatalf("INFO server has no process_id:\n%s", info)
	return 0
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

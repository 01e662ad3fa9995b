package main

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/pingmcp/pingmcp/config"
)

// The tests of this package that run a node in process read no cgroup of
// the machine running them.
func init() { selfCgroup = filepath.Join(os.TempDir(), "pingmcp-test-no-such-cgroup") }

// fakeCgroup writes a cgroup v2 hierarchy under a temporary root with the
// given memory.max files (by cgroup path; "" writes none), and the
// process's /proc/self/cgroup naming group.
func fakeCgroup(t *testing.T, group string, maxes map[string]string) (root, self string) {
	t.Helper()
	root = t.TempDir()
	for dir, v := range maxes {
		d := filepath.Join(root, filepath.FromSlash(dir))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "memory.max"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self = filepath.Join(t.TempDir(), "cgroup")
	if err := os.WriteFile(self, []byte("0::"+group+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, self
}

// The soft limit is 90 % of --memory-limit (PINGMCP_MEMORY_LIMIT, the
// downward API's limits.memory on Kubernetes), rounded down; else of the
// lowest memory.max of the process's cgroup and its parents; an explicit
// GOMEMLIMIT wins over both; none without a limit ("max", no cgroup v2, 0);
// a memory.max that is not a number is an error, and no limit.
func TestMemorySoftLimit(t *testing.T) {
	noEnv := func(string) string { return "" }
	goMemLimit := func(name string) string {
		if name == "GOMEMLIMIT" {
			return "400MiB"
		}
		return ""
	}
	none, noneSelf := fakeCgroup(t, "/", nil)
	limited, limitedSelf := fakeCgroup(t, "/", map[string]string{"/": "1073741824"})
	nested, nestedSelf := fakeCgroup(t, "/system.slice/pingmcp.service", map[string]string{
		"/system.slice": "2147483648", "/system.slice/pingmcp.service": "max"})
	lowerChild, lowerChildSelf := fakeCgroup(t, "/a/b", map[string]string{"/a": "2147483648", "/a/b": "1073741824"})
	unlimited, unlimitedSelf := fakeCgroup(t, "/", map[string]string{"/": "max"})
	bad, badSelf := fakeCgroup(t, "/", map[string]string{"/": "lots"})
	missing := filepath.Join(t.TempDir(), "no-cgroup")
	for _, c := range []struct {
		name        string
		getenv      func(string) string
		flag        int64
		root, self  string
		soft, limit int64
		from        string
		err         bool
	}{
		{"unset, no cgroup", noEnv, 0, none, missing, 0, 0, "", false},
		{"unset, cgroup without memory.max", noEnv, 0, none, noneSelf, 0, 0, "", false},
		{"unset, memory.max max", noEnv, 0, unlimited, unlimitedSelf, 0, 0, "", false},
		{"set: 512Mi", noEnv, 536870912, none, missing, 483183820, 536870912, "--memory-limit (PINGMCP_MEMORY_LIMIT)", false},
		{"set: rounded down", noEnv, 11, none, missing, 9, 11, "--memory-limit (PINGMCP_MEMORY_LIMIT)", false},
		{"set: near the largest", noEnv, math.MaxInt64, none, missing, math.MaxInt64/10*9 + 7*9/10, math.MaxInt64, "--memory-limit (PINGMCP_MEMORY_LIMIT)", false},
		{"set, over the cgroup's", noEnv, 536870912, limited, limitedSelf, 483183820, 536870912, "--memory-limit (PINGMCP_MEMORY_LIMIT)", false},
		{"GOMEMLIMIT explicit, over the flag", goMemLimit, 536870912, limited, limitedSelf, 0, 0, "GOMEMLIMIT", false},
		{"GOMEMLIMIT explicit, over the cgroup", goMemLimit, 0, limited, limitedSelf, 0, 0, "GOMEMLIMIT", false},
		{"unset or zero: the cgroup's", noEnv, 0, limited, limitedSelf, 966367641, 1073741824, filepath.Join(limited, "memory.max"), false},
		{"cgroup's parent", noEnv, 0, nested, nestedSelf, 1932735283, 2147483648, filepath.Join(nested, "system.slice", "memory.max"), false},
		{"cgroup below its parent", noEnv, 0, lowerChild, lowerChildSelf, 966367641, 1073741824, filepath.Join(lowerChild, "a", "b", "memory.max"), false},
		{"cgroup invalid", noEnv, 0, bad, badSelf, 0, 0, "", true},
	} {
		soft, limit, from, err := memorySoftLimit(c.getenv, c.flag, c.root, c.self)
		if soft != c.soft || limit != c.limit || from != c.from || (err != nil) != c.err {
			t.Errorf("%s: %d of %d from %q, %v; want %d of %d from %q, error %v", c.name, soft, limit, from, err, c.soft, c.limit, c.from, c.err)
		}
	}
}

// The flag, from its environment variable: a negative or non-numeric value
// is refused at start, as other bad values are; 0 is the default.
func TestMemoryLimitFlag(t *testing.T) {
	for _, c := range []struct {
		env   string
		limit int64
		err   string
	}{{"536870912", 536870912, ""}, {"0", 0, ""}, {"-1", 0, "--memory-limit -1"}, {"512Mi", 0, "PINGMCP_MEMORY_LIMIT"}} {
		cfg, err := config.Parse("dev", []string{"--auth", "none"}, func(name string) string {
			if name == "PINGMCP_MEMORY_LIMIT" {
				return c.env
			}
			return ""
		}, new(bytes.Buffer))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("PINGMCP_MEMORY_LIMIT=%s: %v, want an error naming %s", c.env, err, c.err)
			}
		} else if err != nil || cfg.MemoryLimit != c.limit {
			t.Errorf("PINGMCP_MEMORY_LIMIT=%s: --memory-limit %v, %v; want %d", c.env, cfg, err, c.limit)
		}
	}
}

// setMemoryLimit sets the runtime's soft limit and logs it once, saying
// from what.
func TestSetMemoryLimit(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set for this test process")
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	var out bytes.Buffer
	setMemoryLimit(&config.Config{MemoryLimit: 1 << 40}, slog.New(slog.NewTextHandler(&out, nil)))
	if got := debug.SetMemoryLimit(-1); got != 1<<40/10*9+(1<<40)%10*9/10 {
		t.Errorf("soft limit %d, want 90 %% of 1 TiB", got)
	}
	if log := out.String(); strings.Count(log, "\n") != 1 || !strings.Contains(log, "level=INFO") ||
		!strings.Contains(log, "gomemlimit=989560464998") || !strings.Contains(log, "memory_limit=1099511627776") || !strings.Contains(log, "PINGMCP_MEMORY_LIMIT") {
		t.Errorf("log %q, want one info line naming the soft limit, the limit and where it came from", log)
	}
}

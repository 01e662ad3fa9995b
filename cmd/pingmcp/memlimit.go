package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/pingmcp/pingmcp/config"
)

// Where the cgroup v2 hierarchy is mounted, and the file naming this
// process's cgroup in it; variables for the tests.
var (
	cgroupRoot = "/sys/fs/cgroup"
	selfCgroup = "/proc/self/cgroup"
)

// softMemoryShare is the share of the memory limit the Go runtime's soft
// limit takes: the rest is for what it does not bound (memory the container
// is charged for outside the runtime, and its overshoot at the limit;
// README, "Kubernetes").
const (
	softMemoryNum = 9
	softMemoryDen = 10
)

// memorySoftLimit is the Go runtime's soft memory limit at start, when this
// process should set one: soft is 90 % of limit, the memory limit it runs
// under, from --memory-limit (on Kubernetes the downward API's limits.memory,
// so that it follows the container's limit however that is changed), or
// else the cgroup's memory.max (docker run --memory, systemd's MemoryMax). An
// explicit GOMEMLIMIT wins: then, and without a limit, soft is 0 and
// nothing is to be set. from says where the limit came from; err is a
// memory.max that could not be read, which leaves no limit.
func memorySoftLimit(getenv func(string) string, flagLimit int64, root, self string) (soft, limit int64, from string, err error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, 0, "GOMEMLIMIT", nil
	}
	if flagLimit > 0 {
		limit, from = flagLimit, "--memory-limit ("+config.EnvName("memory-limit")+")"
	} else {
		limit, from, err = cgroupMemoryMax(root, self)
		if err != nil || limit <= 0 {
			return 0, 0, "", err
		}
	}
	// 90 %, rounded down, without overflowing near math.MaxInt64.
	soft = limit/softMemoryDen*softMemoryNum + limit%softMemoryDen*softMemoryNum/softMemoryDen
	return soft, limit, from, nil
}

// cgroupMemoryMax is the lowest memory.max of this process's cgroup (v2)
// and its parents, and the file it is in; 0 when none is set ("max"), the
// hierarchy is not cgroup v2, or this process's cgroup is not known.
func cgroupMemoryMax(root, self string) (int64, string, error) {
	f, err := os.Open(self)
	if err != nil {
		return 0, "", nil
	}
	defer f.Close()
	group := ""
	s := bufio.NewScanner(f)
	for s.Scan() {
		if p, ok := strings.CutPrefix(s.Text(), "0::"); ok {
			group = path.Clean("/" + p)
		}
	}
	if group == "" {
		return 0, "", nil
	}
	var lowest int64
	var file string
	for dir := group; ; dir = path.Dir(dir) {
		name := filepath.Join(root, filepath.FromSlash(dir), "memory.max")
		b, err := os.ReadFile(name)
		switch v := strings.TrimSpace(string(b)); {
		case errors.Is(err, fs.ErrNotExist), err == nil && v == "max":
		case err != nil:
			return 0, "", err
		default:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return 0, "", fmt.Errorf("%s: %q is not a number of bytes", name, v)
			}
			if lowest == 0 || n < lowest {
				lowest, file = n, name
			}
		}
		if dir == "/" {
			return lowest, file, nil
		}
	}
}

// setMemoryLimit sets the Go runtime's soft memory limit from the memory
// limit the process runs under (memorySoftLimit), before the node starts,
// and logs what it set and from what, or that GOMEMLIMIT gave it.
func setMemoryLimit(cfg *config.Config, logger *slog.Logger) {
	soft, limit, from, err := memorySoftLimit(os.Getenv, cfg.MemoryLimit, cgroupRoot, selfCgroup)
	switch {
	case err != nil:
		logger.Warn("no Go soft memory limit: the cgroup's memory limit is unreadable; give it with --memory-limit, or set GOMEMLIMIT", "err", err)
	case from == "GOMEMLIMIT":
		attrs := []any{"gomemlimit", debug.SetMemoryLimit(-1)}
		if cfg.MemoryLimit > 0 {
			attrs = append(attrs, "memory_limit_not_applied", cfg.MemoryLimit)
		}
		logger.Info("Go soft memory limit from GOMEMLIMIT", attrs...)
	case soft > 0:
		debug.SetMemoryLimit(soft)
		logger.Info("Go soft memory limit set to 90 % of the memory limit", "gomemlimit", soft, "memory_limit", limit, "from", from)
	}
}

// Package procstat reads what Linux says a process has used (/proc): its
// CPU time and its resident memory, for benchmarks and the load test.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CPU is the CPU time (user and system) process pid has used: utime and
// stime of /proc/PID/stat, in clock ticks of 10 ms (USER_HZ is 100 on
// Linux). It fails once the process is gone.
func CPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after its last closing parenthesis start at field 3.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %q: %w", pid, f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// RSS is process pid's resident memory now, in bytes (VmRSS of
// /proc/PID/status). It fails once the process is gone.
func RSS(pid int) (int64, error) { return statusBytes(pid, "VmRSS") }

// Anon is the anonymous part of process pid's resident memory now, in
// bytes (RssAnon): its own memory, without the pages of the files it maps
// (its binary's), which the kernel may drop under pressure and which a Go
// memory limit does not count.
func Anon(pid int) (int64, error) { return statusBytes(pid, "RssAnon") }

// Mapped is process pid's address space now, in bytes (VmSize): what
// RLIMIT_AS bounds.
func Mapped(pid int) (int64, error) { return statusBytes(pid, "VmSize") }

// statusBytes reads field of /proc/PID/status, in kB there, as bytes.
func statusBytes(pid int, field string) (int64, error) {
	kb, err := fields(pid, "status", field)
	if err != nil {
		return 0, err
	}
	return kb[0] << 10, nil
}

// IOCalls is how many read and write system calls process pid has made
// (syscr and syscw of /proc/PID/io: read, write and their kin, on files,
// pipes and sockets alike). Unlike CPU time, it does not move with how fast
// the machine runs. It fails once the process is gone.
func IOCalls(pid int) (reads, writes int64, err error) {
	n, err := fields(pid, "io", "syscr", "syscw")
	if err != nil {
		return 0, 0, err
	}
	return n[0], n[1], nil
}

// fields reads the named integer fields ("name: value", a " kB" unit left
// out) of /proc/PID/file, in the order named; each must be there.
func fields(pid int, file string, names ...string) ([]int64, error) {
	path := fmt.Sprintf("/proc/%d/%s", pid, file)
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	found := map[string]int64{}
	for line := range strings.Lines(string(text)) {
		name, v, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		found[name] = n
	}
	out := make([]int64, len(names))
	for i, name := range names {
		n, ok := found[name]
		if !ok {
			return nil, fmt.Errorf("no %s in %s", name, path)
		}
		out[i] = n
	}
	return out, nil
}

package openapi

import (
	"os"
	"syscall"

	"github.com/pingmcp/pingmcp/internal/procstat"
)

// boundMemory bounds the process's address space (RLIMIT_AS) to max bytes
// more than it maps now (the Go runtime's reservations, the binary).
func boundMemory(max int64) error {
	mapped, err := procstat.Mapped(os.Getpid())
	if err != nil {
		return err
	}
	lim := syscall.Rlimit{Cur: uint64(mapped + max), Max: uint64(mapped + max)}
	return syscall.Setrlimit(syscall.RLIMIT_AS, &lim)
}

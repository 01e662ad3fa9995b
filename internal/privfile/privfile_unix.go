//go:build unix

package privfile

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

const (
	noFollow = syscall.O_NOFOLLOW
	// nonBlock: opening a FIFO to read it does not wait for a writer.
	nonBlock = syscall.O_NONBLOCK
	// posixModes: a file's permission bits are its owner's, group's and
	// others'.
	posixModes = true
)

// isLoop says whether err is open's refusal of a symbolic link (O_NOFOLLOW).
func isLoop(err error) bool { return errors.Is(err, syscall.ELOOP) }

// OwnedBySelf says whether this process's effective user owns fi's file.
func OwnedBySelf(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// ownedByRoot says whether root owns fi's file.
func ownedByRoot(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == 0
}

// links is how many hard links fi's file has (1 if unknown).
func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// Owner is the uid of fi's file's owner, -1 if unknown.
func Owner(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Uid)
	}
	return -1
}

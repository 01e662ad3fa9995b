//go:build unix

package privfile

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

const noFollow = syscall.O_NOFOLLOW

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

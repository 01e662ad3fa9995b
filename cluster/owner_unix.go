//go:build unix

package cluster

import (
	"io/fs"
	"os"
	"syscall"
)

// ownedBySelf says whether this process's effective user owns fi's file.
func ownedBySelf(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

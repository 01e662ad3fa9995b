//go:build !unix

package privfile

import "io/fs"

const (
	noFollow = 0
	nonBlock = 0
	// posixModes: outside Unix, Go makes a file's permission bits up (from
	// Windows' read-only attribute: a directory is always 0777); there are
	// none to check.
	posixModes = false
)

func isLoop(error) bool { return false }

// OwnedBySelf: no owner to compare outside Unix.
func OwnedBySelf(fs.FileInfo) bool { return true }

func ownedByRoot(fs.FileInfo) bool { return false }

// Owner: no owner outside Unix.
func Owner(fs.FileInfo) int64 { return -1 }

func links(fs.FileInfo) uint64 { return 1 }

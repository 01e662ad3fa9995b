//go:build !unix

package devidp

import (
	"io/fs"
	"os"
)

// lockFile: no file locks outside Unix; two processes on one state file
// are not detected there.
func lockFile(*os.File) error { return nil }

// ownedBySelf: no owner to compare outside Unix.
func ownedBySelf(fs.FileInfo) bool { return true }

//go:build !unix

package devidp

import "os"

// lockFile: no file locks outside Unix; two processes on one state file
// are not detected there.
func lockFile(*os.File) error { return nil }

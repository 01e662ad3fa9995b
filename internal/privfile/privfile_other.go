//go:build !unix

package privfile

import "io/fs"

const noFollow = 0

func isLoop(error) bool { return false }

// OwnedBySelf: no owner to compare outside Unix.
func OwnedBySelf(fs.FileInfo) bool { return true }

func ownedByRoot(fs.FileInfo) bool { return false }

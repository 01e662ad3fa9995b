// Package privfile opens and reads the files a node keeps to itself (the
// audit log, a lock, the admin token) so that another local user cannot
// plant, redirect or change them: no symbolic link where the node creates
// the file, no file of another user's, none that group or others may write.
package privfile

import (
	"fmt"
	"io/fs"
	"os"
)

// Open opens path as os.OpenFile does (flag, and perm if it creates it),
// without following a symbolic link at its last element, and refuses what
// it opened unless it is a regular file this process's user owns that
// group and others may not write: what the node writes there (audit
// records, its pid) goes nowhere else, and no one else may change it.
func Open(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|noFollow, perm)
	if err != nil {
		if isLoop(err) {
			return nil, fmt.Errorf("%s is a symbolic link: refused (give the file's own path)", path)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = check(path, fi, 0o022, "written")
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadSecret reads a secret another process provisioned (Kubernetes mounts
// a Secret's file through symbolic links, owned by root, readable by the
// pod's group: defaultMode 0440): it refuses a file that is not regular,
// or that others may read or write, or group may write.
func ReadSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	perm := fi.Mode().Perm()
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file: refused", path)
	case perm&0o027 != 0:
		return nil, fmt.Errorf("%s may be read by others or written by group or others (%v): refused, it holds a secret (chmod 600, or 640 for a group; and make a new one if others may have read it)", path, perm)
	}
	return os.ReadFile(path)
}

// check refuses fi (path's) unless it is a regular file this process's user
// owns that no one else may access as mask says ("written", say).
func check(path string, fi fs.FileInfo, mask fs.FileMode, access string) error {
	perm := fi.Mode().Perm()
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file: refused", path)
	case !OwnedBySelf(fi):
		return fmt.Errorf("%s belongs to another user: refused (they could read or change what it holds)", path)
	case perm&mask != 0:
		return fmt.Errorf("%s may be %s by group or others (%v): refused (chmod go-w)", path, access, perm)
	}
	return nil
}

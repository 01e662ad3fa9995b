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

// Open opens path as os.OpenFile does (flag, and perm if it creates it)
// for a file the node writes to itself (the audit log, a lock), so that no
// other local user chooses where what it writes goes, or changes it:
//   - a symbolic link at path is followed only when it is this process's
//     user's or root's (/dev/stdout): one another user planted, in a shared
//     directory, is refused;
//   - a pipe or a terminal (a log shipper's FIFO, /dev/stdout) is taken as
//     it is: nothing is kept there to be read or changed later;
//   - anything else must be a regular file this process's user owns; if
//     group or others may write it (a Kubernetes volume with fsGroup makes
//     its files group-writable on each mount), that permission is taken
//     away.
func Open(path string, flag int, perm fs.FileMode) (*os.File, error) {
	follow := false
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if !OwnedBySelf(fi) && !ownedByRoot(fi) {
			return nil, fmt.Errorf("%s is a symbolic link another user owns: refused (give the file's own path)", path)
		}
		follow = true
	}
	if !follow {
		flag |= noFollow
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		if isLoop(err) { // a link appeared since Lstat
			return nil, fmt.Errorf("%s is a symbolic link another user owns: refused (give the file's own path)", path)
		}
		return nil, err
	}
	if err := own(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// own checks the file f opened, path's (see Open).
func own(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	mode := fi.Mode()
	switch {
	case mode&(fs.ModeNamedPipe|fs.ModeCharDevice) != 0:
		return nil
	case !mode.IsRegular():
		return fmt.Errorf("%s is not a regular file, a pipe or a terminal: refused", path)
	case !OwnedBySelf(fi):
		return fmt.Errorf("%s belongs to another user: refused (they could read or change what it holds)", path)
	case mode.Perm()&0o022 != 0:
		if err := f.Chmod(mode.Perm() &^ 0o022); err != nil {
			return fmt.Errorf("%s may be written by group or others (%v), and that could not be taken away: %w", path, mode.Perm(), err)
		}
	}
	return nil
}

// ReadSecret reads a secret another process provisioned (Kubernetes mounts
// a Secret's file through symbolic links, owned by root, 0644 unless its
// defaultMode says otherwise; Docker's secrets are 0444). It refuses a
// file that is not regular, or that group or others may write (they could
// put their own token there). One that others may read is read, and
// exposed says so (the caller warns: chmod 600, or 640 for a group).
func ReadSecret(path string) (secret []byte, exposed bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	perm := fi.Mode().Perm()
	switch {
	case !fi.Mode().IsRegular():
		return nil, false, fmt.Errorf("%s is not a regular file: refused", path)
	case perm&0o022 != 0:
		return nil, false, fmt.Errorf("%s may be written by group or others (%v): refused, anyone of them could put a token of theirs there (chmod go-w)", path, perm)
	}
	b, err := os.ReadFile(path)
	return b, perm&0o004 != 0, err
}

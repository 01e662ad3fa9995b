// Package privfile opens and reads the files a node keeps to itself (the
// audit log, a lock, the admin token, the cluster's TLS files) so that
// another local user cannot plant, redirect or change them: no symbolic
// link where the node creates the file, no file of another user's, none
// that group or others may write.
package privfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Open opens path as os.OpenFile does (flag, and perm if it creates it)
// for a file the node writes to itself (the audit log, a lock), so that no
// other local user chooses where what it writes goes, or changes it:
//   - a symbolic link at path is followed only when it is this process's
//     user's or root's (/dev/stdout): one another user planted, in a shared
//     directory, is refused;
//   - a pipe or a terminal (a log shipper's FIFO, /dev/stdout) is taken as
//     it is: nothing is kept there to be read or changed later; but a FIFO
//     at path itself (not behind such a link) must be this user's or
//     root's, and another user's is refused before it is waited on: they
//     would read what is written, and stall the writer at will;
//   - anything else must be a regular file this process's user owns; if
//     group or others may write it (a Kubernetes volume with fsGroup makes
//     its files group-writable on each mount), that permission is taken
//     away.
func Open(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, linked, err := open(path, flag, perm, true)
	if err != nil {
		return nil, err
	}
	if err := own(f, path, linked); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenRead opens path to read it, refusing a symbolic link at path (it is
// never followed, O_NOFOLLOW), and without waiting for a writer when it is
// a FIFO. The caller checks the opened file's own Stat and reads from it:
// what was checked is then what is read, even if path is replaced between
// the two.
func OpenRead(path string) (*os.File, error) {
	f, _, err := open(path, os.O_RDONLY|nonBlock, 0, false)
	return f, err
}

// open opens path with flag and perm, not through a symbolic link at path
// unless ownLinks is set and the link is this process's user's or root's
// (then linked); never a FIFO another user owns at path, which opening to
// write would wait on.
func open(path string, flag int, perm fs.FileMode, ownLinks bool) (f *os.File, linked bool, err error) {
	follow := false
	if fi, err := os.Lstat(path); ownLinks && err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if !OwnedBySelf(fi) && !ownedByRoot(fi) {
			return nil, false, fmt.Errorf("%s is a symbolic link another user owns (uid %d): refused (give the file's own path)", path, Owner(fi))
		}
		follow = true
	} else if err == nil && fi.Mode()&fs.ModeNamedPipe != 0 && !OwnedBySelf(fi) && !ownedByRoot(fi) {
		return nil, false, anotherUsers(path, fi)
	}
	if !follow {
		flag |= noFollow
	}
	f, err = os.OpenFile(path, flag, perm)
	if err != nil {
		// O_NOFOLLOW's refusal (ELOOP on Linux, EMLINK or EFTYPE on some
		// BSDs), or a link that appeared since Lstat.
		if fi, lerr := os.Lstat(path); !follow && (isLoop(err) || lerr == nil && fi.Mode()&fs.ModeSymlink != 0) {
			if ownLinks {
				return nil, false, fmt.Errorf("%s is a symbolic link another user owns: refused (give the file's own path)", path)
			}
			return nil, false, fmt.Errorf("%s is a symbolic link: refused (give the file's own path)", path)
		}
		return nil, false, err
	}
	return f, follow, nil
}

// own checks the file f opened, path's, reached through a link of this
// user's or root's if linked (see Open).
func own(f *os.File, path string, linked bool) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	mode := fi.Mode()
	switch {
	case mode&fs.ModeNamedPipe != 0 && !linked && !OwnedBySelf(fi) && !ownedByRoot(fi):
		// Made at path since open's Lstat.
		return anotherUsers(path, fi)
	case mode&(fs.ModeNamedPipe|fs.ModeCharDevice) != 0:
		return nil
	case !mode.IsRegular():
		return fmt.Errorf("%s is not a regular file, a pipe or a terminal: refused", path)
	case !OwnedBySelf(fi):
		return anotherUsers(path, fi)
	case links(fi) > 1:
		// A hard link another user made, in a directory they may write
		// (a sticky /tmp), to a file of this user's: writing here would
		// write there.
		return fmt.Errorf("%s has other hard links (%d): refused (it may be another file of yours, linked there by someone else)", path, links(fi))
	case mode.Perm()&0o022 != 0:
		if err := f.Chmod(mode.Perm() &^ 0o022); err != nil {
			return fmt.Errorf("%s may be written by group or others (%v), and that could not be taken away: %w", path, mode.Perm(), err)
		}
	}
	return nil
}

// anotherUsers is Open's refusal of path, fi's, another user's.
func anotherUsers(path string, fi fs.FileInfo) error {
	return fmt.Errorf("%s belongs to another user (uid %d): refused (they could read or change what it holds)", path, Owner(fi))
}

// ReadSecret reads a secret another process provisioned (Kubernetes mounts
// a Secret's file through symbolic links, owned by root, 0644 unless its
// defaultMode says otherwise, group fsGroup's; Docker's secrets are 0444,
// root's). It refuses a file that is not regular, that another user owns
// (neither this process's user nor root: they could put a token of theirs
// there), or that group or others may write (they could too); and a
// symbolic link at path that another user owns. One that others may read
// is read, and exposed says so (the caller warns: chmod 600, or 640 for a
// group). What is checked is the file opened, and what is read is that
// file.
func ReadSecret(path string) (secret []byte, exposed bool, err error) {
	f, _, err := open(path, os.O_RDONLY|nonBlock, 0, true)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	perm := fi.Mode().Perm()
	switch {
	case !fi.Mode().IsRegular():
		return nil, false, fmt.Errorf("%s is not a regular file: refused", path)
	case !OwnedBySelf(fi) && !ownedByRoot(fi):
		return nil, false, fmt.Errorf("%s belongs to another user (uid %d; this process runs as uid %d): refused, that user could put a token of theirs there "+
			"(chown it to uid %d or to root, and chmod 600 it, or 640 for a group)", path, Owner(fi), os.Geteuid(), os.Geteuid())
	case perm&0o022 != 0:
		return nil, false, fmt.Errorf("%s may be written by group or others (%v): refused, anyone of them could put a token of theirs there (chmod go-w)", path, perm)
	}
	b, err := io.ReadAll(f)
	return b, perm&0o004 != 0, err
}

// Check refuses path, a directory or a file kept in one, when a local user
// other than this process's and root could have put it there or could
// change it: a symbolic link (not followed); a file or directory another
// user owns; or one that group or others may write, but for a directory
// with its sticky bit set (as /tmp has it: they may add their own files to
// it, but not remove or rename anyone else's). With secret, it also
// refuses one that group or others may read. It never changes the mode: an
// operator's file or directory is left as it is, and the error says what
// to do. fs.ErrNotExist if path does not exist.
func Check(path string, secret bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	return check(path, fi, secret)
}

// Exclusive is Check of a directory, and refuses one group or others may
// write even with its sticky bit (as /tmp): one whose files no other local
// user may create, for a caller that checks a file in it by its path
// before it reads it.
func Exclusive(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if err := check(dir, fi, false); err != nil {
		return err
	}
	if posixModes && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (%v): refused, any of them could put files of theirs in it (chmod go-w %s, or use a directory of your own)", dir, fi.Mode(), dir)
	}
	return nil
}

func check(path string, fi fs.FileInfo, secret bool) error {
	mode, perm := fi.Mode(), fi.Mode().Perm()
	what, could := "file", "could change what it holds"
	if fi.IsDir() {
		what, could = "directory", "could put files of theirs in it, or swap or remove yours"
	}
	switch {
	case mode&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link: refused (give the %s's own path)", path, what)
	case !OwnedBySelf(fi) && !ownedByRoot(fi):
		return fmt.Errorf("%s belongs to another user (uid %d; this process runs as uid %d): refused, that user %s (use a %s of your own)",
			path, Owner(fi), os.Geteuid(), could, what)
	case !posixModes: // nothing more to check
	case perm&0o022 != 0 && !(fi.IsDir() && mode&fs.ModeSticky != 0):
		return fmt.Errorf("%s is writable by group or others (%v): refused, any of them %s (chmod go-w %s, or use a %s of your own)",
			path, mode, could, path, what)
	case secret && perm&0o077 != 0:
		return fmt.Errorf("%s is readable by group or others (%v): refused (chmod 600 it; if others may have read it, make a new one)", path, perm)
	}
	return nil
}

// PrivateDir makes the directory dir, 0700, if it is missing (and any
// directory missing above it), and returns its path with every symbolic
// link resolved, for the caller to use from then on, once it has checked
// (Check) that neither that directory nor any directory above it could be
// changed by a local user other than this process's and root: none is
// another user's, none may be written by group or others without its
// sticky bit. Above it too: whoever may rename a directory on the way may
// swap the whole tree below it for one of theirs. An existing directory
// that fails is refused, never changed; nothing is made below one that
// fails.
func PrivateDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	// The deepest directory on the way that exists, its links resolved;
	// missing is what is to be made below it.
	have, missing := abs, []string(nil)
	for {
		resolved, err := filepath.EvalSymlinks(have)
		if err == nil {
			have = resolved
			break
		}
		parent := filepath.Dir(have)
		if !errors.Is(err, fs.ErrNotExist) || parent == have {
			return "", err
		}
		missing = append([]string{filepath.Base(have)}, missing...)
		have = parent
	}
	var above []string
	for p := have; ; p = filepath.Dir(p) {
		above = append(above, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(above) - 1; i >= 0; i-- { // from the root down: the first one to fix
		if err := checkDir(above[i]); err != nil {
			return "", err
		}
	}
	for _, name := range missing {
		have = filepath.Join(have, name)
		if err := os.Mkdir(have, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		if err := checkDir(have); err != nil {
			return "", err
		}
	}
	return have, nil
}

func checkDir(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if err := check(path, fi, false); err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", path)
	}
	return nil
}

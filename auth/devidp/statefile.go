package devidp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pingmcp/pingmcp/internal/privfile"
)

// ErrStateInUse is returned by OpenStateFile when another process holds
// the state file.
var ErrStateInUse = errors.New("the state file is in use by another process")

// StateFile is a Store in a file of this user's: written whole to a
// temporary file beside it and renamed over it (mode 0600; a missing
// directory is made 0700), and refused when someone else could have
// written or read it, or could swap it: its directory, and every one above
// it, must be this user's or root's and not writable by group or others
// (but for a sticky one, as /tmp). One process at a time uses it:
// OpenStateFile locks it until Close. (Without file locks, outside Unix,
// the lock is not taken.)
type StateFile struct {
	path string // as given, for messages
	// resolved is path in its directory with every link resolved, as checked:
	// what is read and written, the lock too.
	resolved string
	lock     *os.File
}

// OpenStateFile locks the state file at path, making its directory if
// needed. The file itself may not exist yet. It refuses a directory (the
// file's, or one above it) that another user owns or that group or others
// may write without its sticky bit (privfile.PrivateDir): whoever could
// change it could swap the file, or the directory, for one of theirs. Such
// a directory is left as it is, never chmod-ed: the error says what to do.
func OpenStateFile(path string) (*StateFile, error) {
	if path == "" {
		return nil, errors.New("devidp: no state file path")
	}
	dir, err := privfile.PrivateDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("devidp: state file %s: %w", path, err)
	}
	resolved := filepath.Join(dir, filepath.Base(path))
	lockPath := resolved + ".lock"
	// Never another user's file, nor one a link leads to: the lock is
	// truncated and written (the pid) below.
	lock, err := privfile.Open(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("devidp: state file lock: %w", err)
	}
	// A regular file only (privfile.Open takes a pipe or a terminal, as a
	// log may be): what someone else put there is no lock of ours.
	if fi, err := lock.Stat(); err != nil || !fi.Mode().IsRegular() {
		lock.Close()
		return nil, fmt.Errorf("devidp: state file lock %s is not a regular file: refused (remove it)", lockPath)
	}
	if err := lockFile(lock); err != nil {
		defer lock.Close()
		if !errors.Is(err, ErrStateInUse) {
			return nil, fmt.Errorf("devidp: lock %s: %w", lockPath, err)
		}
		// Who holds it, read from the file opened, not the path again.
		holder := "another process"
		b := make([]byte, 32)
		if n, _ := lock.ReadAt(b, 0); n > 0 {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil {
				holder = "process " + strconv.Itoa(pid)
			}
		}
		return nil, fmt.Errorf("devidp: state file %s: %w (%s holds %s)", path, ErrStateInUse, holder, lockPath)
	}
	// Who holds it, for the message above; the lock is what counts.
	if err := lock.Truncate(0); err == nil {
		lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StateFile{path: path, resolved: resolved, lock: lock}, nil
}

// Path is the state file's path.
func (f *StateFile) Path() string { return f.path }

// Close releases the lock.
func (f *StateFile) Close() error { return f.lock.Close() }

// Load reads the state file; nil when there is none yet. It refuses a file
// that is a symbolic link or not a regular file, that another user owns,
// or that group or others may read or write: it holds the signing key. The
// file is opened once, never through a link (O_NOFOLLOW), and what is
// checked is that open file, which is then what is read (read): no file
// swapped in at the path between the check and the read is read.
func (f *StateFile) Load() ([]byte, error) {
	file, err := privfile.OpenRead(f.resolved)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return f.read(file)
}

// read checks file, the state file opened, on its own Stat, and reads it.
func (f *StateFile) read(file *os.File) ([]byte, error) {
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	perm := fi.Mode().Perm()
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file: refused", f.path)
	case !privfile.OwnedBySelf(fi):
		return nil, fmt.Errorf("%s belongs to another user: refused (its signing key and clients could be anyone's)", f.path)
	case perm&0o077 != 0:
		return nil, fmt.Errorf("%s may be read or written by group or others (%v): refused, it holds the signing key. "+
			"chmod 600 it; if others may have read it, delete it instead (a new key is made, and every client registers and logs in again)", f.path, perm)
	}
	return io.ReadAll(file)
}

// Save writes doc to a temporary file in the same directory, flushes it to
// disk, and renames it over the state file.
func (f *StateFile) Save(doc []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.resolved), "."+filepath.Base(f.resolved)+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	_, err = tmp.Write(doc)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.resolved)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

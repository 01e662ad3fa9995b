//go:build unix

package devidp

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A state file whose directory, or a directory above it, another local
// user could change is refused before anything is made or written there
// (another user pre-creating /tmp/pingmcp, 0777 or theirs, could swap the
// file or the whole directory for theirs), with an error naming that
// directory and what to do; the directory is left as it is. A sticky one
// (as /tmp) and a link to a directory of one's own are taken.
func TestOpenStateFileRefusesSharedDirectory(t *testing.T) {
	type refusal struct {
		setup func(t *testing.T, base string) (path, culprit string)
		want  string
	}
	refusals := map[string]refusal{
		"its directory writable by others": {func(t *testing.T, base string) (string, string) {
			dir := mkdir(t, filepath.Join(base, "pingmcp"), 0o777)
			return filepath.Join(dir, "state.json"), dir
		}, "writable by group or others"},
		"its directory group-writable": {func(t *testing.T, base string) (string, string) {
			dir := mkdir(t, filepath.Join(base, "pingmcp"), 0o770)
			return filepath.Join(dir, "state.json"), dir
		}, "writable by group or others"},
		"a directory above it writable by others, its own missing": {func(t *testing.T, base string) (string, string) {
			shared := mkdir(t, filepath.Join(base, "pingmcp"), 0o777)
			return filepath.Join(shared, "dev", "state.json"), shared
		}, "writable by group or others"},
	}
	if os.Geteuid() == 0 { // only root can give a directory away (CI runs as root)
		refusals["its directory another user's"] = refusal{func(t *testing.T, base string) (string, string) {
			dir := mkdir(t, filepath.Join(base, "pingmcp"), 0o755)
			chown(t, dir)
			return filepath.Join(dir, "state.json"), dir
		}, "another user (uid 65534"}
		refusals["a directory above it another user's"] = refusal{func(t *testing.T, base string) (string, string) {
			theirs := mkdir(t, filepath.Join(base, "pingmcp"), 0o755)
			mkdir(t, filepath.Join(theirs, "dev"), 0o700) // this user's, in theirs
			chown(t, theirs)
			return filepath.Join(theirs, "dev", "state.json"), theirs
		}, "another user (uid 65534"}
		refusals["a link to another user's directory"] = refusal{func(t *testing.T, base string) (string, string) {
			theirs := mkdir(t, filepath.Join(base, "theirs"), 0o755)
			chown(t, theirs)
			link := filepath.Join(base, "cache")
			if err := os.Symlink(theirs, link); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(link, "state.json"), theirs
		}, "another user (uid 65534"}
	}
	for name, tc := range refusals {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			path, culprit := tc.setup(t, base)
			before := modeOf(t, culprit)
			_, missing := os.Lstat(filepath.Dir(path))
			f, err := OpenStateFile(path)
			if err == nil {
				f.Close()
				t.Fatalf("OpenStateFile(%s): taken, want refused (%s)", path, tc.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || !strings.Contains(msg, culprit+" ") ||
				!strings.Contains(msg, path) || !strings.Contains(msg, "of your own") {
				t.Errorf("err = %v, want one naming %s and %s, saying %q and what to do", err, path, culprit, tc.want)
			}
			t.Log(err)
			if _, err := os.Lstat(filepath.Join(filepath.Dir(path), "state.json.lock")); err == nil {
				t.Error("the lock file was made in the refused directory")
			}
			if _, err := os.Lstat(filepath.Dir(path)); missing != nil && err == nil {
				t.Errorf("%s was made, below the refused directory", filepath.Dir(path))
			}
			if after := modeOf(t, culprit); after != before {
				t.Errorf("the refused directory was changed: %v, was %v", after, before)
			}
		})
	}

	t.Run("sticky, or a link of one's own", func(t *testing.T) {
		base := t.TempDir()
		sticky := mkdir(t, filepath.Join(base, "tmp"), 0o777|os.ModeSticky)
		elsewhere := mkdir(t, filepath.Join(base, "elsewhere"), 0o700)
		link := filepath.Join(base, "cache")
		if err := os.Symlink(elsewhere, link); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{filepath.Join(sticky, "state.json"), filepath.Join(link, "pingmcp", "dev", "state.json")} {
			f, err := OpenStateFile(path)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if f.Path() != path {
				t.Errorf("Path() = %s, want %s as given", f.Path(), path)
			}
			if err := f.Save([]byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			if b, err := f.Load(); err != nil || string(b) != `{}` {
				t.Errorf("%s: Load = %q, %v", path, b, err)
			}
			f.Close()
		}
		if fi, err := os.Lstat(filepath.Join(elsewhere, "pingmcp", "dev", "state.json")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("the state file is not in the link's directory: %v", err)
		}
		if fi, err := os.Stat(filepath.Join(elsewhere, "pingmcp")); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("the directory made: %v, want 0700", err)
		}
	})
}

// Load opens the state file once, never through a link, and checks and
// reads that one open file: a file swapped in at the path between the two
// is not what is read, and a file refused when opened is refused even if
// a good one is at the path by the time it would be read.
func TestStateFileChecksWhatItReads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f, err := OpenStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write := func(name, content string, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The operator's file opened; then the attacker's renamed over it.
	write("state.json", "operator's", 0o600)
	opened, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(write("theirs", "attacker's", 0o644), path); err != nil {
		t.Fatal(err)
	}
	if b, err := f.read(opened); err != nil || string(b) != "operator's" {
		t.Errorf("read after a swap: %q, %v; want the file opened and checked, the operator's", b, err)
	}
	opened.Close()

	// A file others may read opened (refused); then a good one renamed
	// over it.
	opened, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(write("good", "good", 0o600), path); err != nil {
		t.Fatal(err)
	}
	if b, err := f.read(opened); err == nil || !strings.Contains(err.Error(), "group or others") {
		t.Errorf("read of a 0644 file a 0600 one replaced since: %q, %v; want refused (the file opened is what is checked)", b, err)
	}
	opened.Close()

	// Through Load: a link at the path is refused, not followed, even to a
	// file of this user's that would pass; a dangling one too; and a file
	// another user owns.
	target := write("target", "operator's too", 0o600)
	os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if b, err := f.Load(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Load through a link: %q, %v; want refused", b, err)
	}
	os.Remove(target)
	if b, err := f.Load(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Load through a dangling link: %q, %v; want refused", b, err)
	}
	if os.Geteuid() == 0 {
		os.Remove(path)
		write("state.json", "theirs", 0o600)
		chown(t, path)
		if b, err := f.Load(); err == nil || !strings.Contains(err.Error(), "another user") {
			t.Errorf("Load of another user's file: %q, %v; want refused", b, err)
		}
	}
	os.Remove(path)
	if b, err := f.Load(); err != nil || b != nil {
		t.Errorf("Load of no file: %q, %v; want nil, nil", b, err)
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return dir
}

// chown gives path to nobody (65534), as a local attacker's: root only.
func chown(t *testing.T, path string) {
	t.Helper()
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
}

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// In a sticky directory (as /tmp) another user may put files of theirs
// where the state file's lock goes: a hard link to a file of this user's
// (which writing the lock would destroy), or a FIFO they hold locked
// (reading who holds it would wait for ever). Both are refused, and the
// linked file is left as it was.
func TestStateFileLockPlantedInSharedDirectory(t *testing.T) {
	base := t.TempDir()
	shared := filepath.Join(base, "tmp")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, os.ModeSticky|0o777)
	home := filepath.Join(base, "home")
	os.Mkdir(home, 0o700)
	precious := filepath.Join(home, ".profile")
	if err := os.WriteFile(precious, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(shared, "state.json")
	if err := os.Link(precious, state+".lock"); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenStateFile(state); err == nil {
		f.Close()
		t.Error("a lock hard-linked to another file was taken")
	} else if !strings.Contains(err.Error(), "hard links") {
		t.Errorf("refused, but not saying why: %v", err)
	}
	if b, _ := os.ReadFile(precious); string(b) != "precious\n" {
		t.Errorf("the file the lock was linked to now holds %q", b)
	}
	os.Remove(state + ".lock")

	if err := syscall.Mkfifo(state+".lock", 0o600); err != nil {
		t.Fatal(err)
	}
	theirs, err := os.OpenFile(state+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	syscall.Flock(int(theirs.Fd()), syscall.LOCK_EX)
	done := make(chan error, 1)
	go func() {
		f, err := OpenStateFile(state)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a FIFO as the lock: %v, want a refusal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OpenStateFile still waits 10 s on a FIFO planted as its lock")
	}
}

//go:build unix

package privfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const token = "secret-token-0123456789"

// nobody gives path (not followed) to uid 65534, as a local attacker's.
// Only root can: CI runs as root; elsewhere the test is skipped.
func nobody(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user takes root")
	}
	if err := os.Lchown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, perm os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// A secret another user owns is refused, whatever its mode: they could
// put a token of theirs there. The error names the file, its owner and
// what to do.
func TestReadSecretRefusesAnotherUsers(t *testing.T) {
	for _, perm := range []os.FileMode{0o600, 0o640, 0o644, 0o444} {
		p := writeFile(t, filepath.Join(t.TempDir(), "token"), perm)
		nobody(t, p)
		b, _, err := ReadSecret(p)
		if err == nil {
			t.Errorf("%v, another user's: read %q, want refused", perm, b)
			continue
		}
		for _, want := range []string{p, "another user", "uid 65534", "chown"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v, another user's: %v, want it to say %q", perm, err, want)
			}
		}
	}
}

// A Kubernetes Secret volume: NAME is a link to ..data/NAME, ..data a link
// to a timestamped directory holding the file, all root's (the file's
// group fsGroup's, 0644 or the defaultMode). It is read, through root's
// links; a link another user owns at the path, or a file of theirs at the
// end of root's links, is refused.
func TestReadSecretKubernetesVolume(t *testing.T) {
	mount := func(t *testing.T, perm os.FileMode) (vol, file string) {
		vol = t.TempDir()
		ts := filepath.Join(vol, "..2025_01_02_03_04_05.123456789")
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		file = writeFile(t, filepath.Join(ts, "token"), perm)
		if err := os.Symlink(filepath.Base(ts), filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(vol, "token")); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 { // as the kubelet makes them: root's, group fsGroup
			for _, p := range []string{ts, file} {
				if err := os.Chown(p, 0, 65532); err != nil {
					t.Fatal(err)
				}
			}
		}
		return vol, file
	}
	for perm, wantExposed := range map[os.FileMode]bool{0o644: true, 0o440: false, 0o400: false} {
		vol, _ := mount(t, perm)
		b, exposed, err := ReadSecret(filepath.Join(vol, "token"))
		if err != nil || string(b) != token || exposed != wantExposed {
			t.Errorf("defaultMode %v: %q, exposed %v, %v; want read, exposed %v", perm, b, exposed, err, wantExposed)
		}
	}

	t.Run("a link another user owns", func(t *testing.T) {
		vol, _ := mount(t, 0o440)
		nobody(t, filepath.Join(vol, "token"))
		if b, _, err := ReadSecret(filepath.Join(vol, "token")); err == nil || !strings.Contains(err.Error(), "symbolic link another user owns") {
			t.Errorf("%q, %v; want refused", b, err)
		}
	})
	t.Run("a file another user owns behind root's links", func(t *testing.T) {
		vol, file := mount(t, 0o440)
		nobody(t, file)
		if b, _, err := ReadSecret(filepath.Join(vol, "token")); err == nil || !strings.Contains(err.Error(), "uid 65534") {
			t.Errorf("%q, %v; want refused", b, err)
		}
	})
}

// A FIFO at the path is refused at once, not waited on for a writer.
func TestReadSecretFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "token")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := ReadSecret(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%v, want refused: not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		os.WriteFile(fifo, nil, 0) // let it go
		t.Fatal("ReadSecret waits on a FIFO")
	}
}

// OpenRead never follows a link at the path (of this user's or not),
// opens a FIFO without waiting, and says fs.ErrNotExist for no file.
func TestOpenRead(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "file"), 0o600)
	f, err := OpenRead(file)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenRead(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		if f != nil {
			f.Close()
		}
		t.Errorf("OpenRead(a link of one's own): %v, want refused", err)
	}
	if _, err := OpenRead(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenRead(no file): %v, want fs.ErrNotExist", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := OpenRead(fifo)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("OpenRead waits on a FIFO")
	}
}

// Check takes a directory or file of this user's (or root's) that no one
// else may write, and a sticky directory others may write (as /tmp);
// refuses a link, another user's, one others may write, and with secret
// one others may read. It changes nothing.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, p := range []string{mk("own", 0o755), mk("sticky", 0o777|os.ModeSticky), writeFile(t, filepath.Join(dir, "key"), 0o600)} {
		if err := Check(p, strings.HasSuffix(p, "key")); err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
	link := filepath.Join(dir, "link")
	os.Symlink(mk("target", 0o700), link)
	refused := map[string]string{
		mk("shared", 0o777): "writable by group or others",
		mk("group", 0o770):  "writable by group or others",
		link:                "symbolic link",
		writeFile(t, filepath.Join(dir, "file"), 0o646): "writable by group or others",
	}
	for p, want := range refused {
		if err := Check(p, false); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want refused: %s", filepath.Base(p), err, want)
		}
	}
	if err := Check(writeFile(t, filepath.Join(dir, "readable"), 0o640), true); err == nil || !strings.Contains(err.Error(), "readable by group or others") {
		t.Errorf("a secret others may read: %v, want refused", err)
	}
	if err := Check(filepath.Join(dir, "none"), false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no file: %v, want fs.ErrNotExist", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "shared")); fi.Mode().Perm() != 0o777 {
		t.Errorf("a refused directory was changed: %v", fi.Mode())
	}
	if os.Geteuid() == 0 {
		theirs := mk("theirs", 0o755|os.ModeSticky)
		nobody(t, theirs)
		if err := Check(theirs, false); err == nil || !strings.Contains(err.Error(), "another user (uid 65534") {
			t.Errorf("another user's directory, sticky: %v, want refused", err)
		}
	}
}

// PrivateDir makes what is missing 0700, and returns the directory's path
// without links; it refuses a directory, or one above it, that another
// user could change, making nothing below it.
func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "real")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	got, err := PrivateDir(filepath.Join(link, "a", "b"))
	if err != nil || got != filepath.Join(target, "a", "b") {
		t.Fatalf("PrivateDir = %s, %v; want %s", got, err, filepath.Join(target, "a", "b"))
	}
	for _, p := range []string{filepath.Join(target, "a"), got} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode() != os.ModeDir|0o700 {
			t.Errorf("%s: %v, %v; want a directory 0700", p, fi.Mode(), err)
		}
	}
	if again, err := PrivateDir(got); err != nil || again != got {
		t.Errorf("again: %s, %v", again, err)
	}

	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(shared, 0o777)
	if _, err := PrivateDir(filepath.Join(shared, "x", "y")); err == nil || !strings.Contains(err.Error(), shared+" is writable by group or others") {
		t.Errorf("below a directory others may write: %v, want refused naming it", err)
	}
	if _, err := os.Lstat(filepath.Join(shared, "x")); err == nil {
		t.Error("a directory was made below the refused one")
	}
	dangling := filepath.Join(base, "dangling")
	os.Symlink(filepath.Join(base, "nowhere"), dangling)
	if _, err := PrivateDir(dangling); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a dangling link: %v, want refused", err)
	}
	if _, err := PrivateDir(writeFile(t, filepath.Join(base, "file"), 0o600)); err == nil {
		t.Error("a file: taken as a directory")
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		if err := os.Mkdir(theirs, 0o755); err != nil {
			t.Fatal(err)
		}
		nobody(t, theirs)
		if _, err := PrivateDir(filepath.Join(theirs, "mine")); err == nil || !strings.Contains(err.Error(), "another user") {
			t.Errorf("below another user's directory: %v, want refused", err)
		}
	}
}

// A file with other hard links is refused by Open: in a directory another
// user may write (a sticky /tmp) it may be a file of this user's they
// linked there, which writing would change.
func TestOpenRefusesHardLinks(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine")
	if err := os.WriteFile(mine, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(dir, "audit.log")
	if err := os.Link(mine, linked); err != nil {
		t.Fatal(err)
	}
	if f, err := Open(linked, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
		f.Close()
		t.Error("a file with another hard link was opened")
	} else if !strings.Contains(err.Error(), "hard links") {
		t.Errorf("refused, not saying why: %v", err)
	}
	if err := Exclusive(dir); err != nil {
		t.Errorf("Exclusive(a private directory): %v", err)
	}
	os.Chmod(dir, os.ModeSticky|0o777)
	defer os.Chmod(dir, 0o700)
	if err := Exclusive(dir); err == nil {
		t.Error("Exclusive took a sticky directory others may write")
	}
}

// A FIFO another user made at the path (in a directory they may write, a
// sticky /tmp) is refused by Open, and before it waits for a reader:
// writing there handed them what is written (the audit records), and
// stalled each writer whenever they stopped reading. One of this user's,
// or one reached through a link of this user's or root's (/dev/stdout, a
// log shipper's pipe), is taken as before.
func TestOpenRefusesAnotherUsersFIFO(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine.fifo")
	if err := syscall.Mkfifo(mine, 0o600); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "audit.log")
	if err := syscall.Mkfifo(theirs, 0o622); err != nil {
		t.Fatal(err)
	}
	nobody(t, theirs)
	linked := filepath.Join(dir, "stdout")
	if err := os.Symlink(theirs, linked); err != nil { // this user's link: their choice
		t.Fatal(err)
	}
	// A reader on each, as the one who made it keeps: opening to write
	// does not wait.
	for _, p := range []string{mine, theirs} {
		r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
	}
	for path, want := range map[string]string{mine: "", linked: "", theirs: "another user (uid 65534"} {
		f, err := Open(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			f.Close()
		}
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", filepath.Base(path), err, want)
		}
	}

	// With no reader, refused at once, not waited on.
	lone := filepath.Join(dir, "lone.fifo")
	if err := syscall.Mkfifo(lone, 0o622); err != nil {
		t.Fatal(err)
	}
	nobody(t, lone)
	done := make(chan error, 1)
	go func() {
		f, err := Open(lone, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "another user") {
			t.Errorf("another user's FIFO without a reader: %v, want refused", err)
		}
	case <-time.After(5 * time.Second):
		r, _ := os.OpenFile(lone, os.O_RDONLY|syscall.O_NONBLOCK, 0) // let it go
		defer r.Close()
		t.Fatal("Open waits on another user's FIFO")
	}
}

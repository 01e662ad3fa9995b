//go:build unix

package privfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Open creates and opens a file of the process's own; refuses a link at
// its path that another user owns (never writing through it), another
// user's file and a directory; follows the process's own link and takes a
// pipe; and takes away group's and others' write permission from a file
// of its own (as a Kubernetes fsGroup volume leaves it).
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	flag := os.O_WRONLY | os.O_APPEND | os.O_CREATE
	f, err := Open(filepath.Join(dir, "audit.log"), flag, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("operator data"), 0o600); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(dir, "planted")
	if err := os.Symlink(victim, planted); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{dir: "not a regular file"}
	if os.Geteuid() == 0 {
		// As root, what another user planted and owns.
		if err := os.Lchown(planted, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases[planted] = "symbolic link another user owns"
		theirs := filepath.Join(dir, "theirs")
		if err := os.WriteFile(theirs, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases[theirs] = "another user"
	}
	for path, want := range cases {
		fl := flag
		if path == dir {
			fl = os.O_RDONLY
		}
		if f, err := Open(path, fl, 0o600); err == nil || !strings.Contains(err.Error(), want) {
			if f != nil {
				f.Close()
			}
			t.Errorf("%s: %v, want refused (%s)", filepath.Base(path), err, want)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "operator data" {
		t.Errorf("the link's target was changed: %q", b)
	}

	shared := filepath.Join(dir, "shared")
	if err := os.WriteFile(shared, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(shared, 0o666) // past the umask
	own := filepath.Join(dir, "own-link")
	if err := os.Symlink(shared, own); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() { // the FIFO's reader, so that opening it for writing returns
		if r, err := os.Open(fifo); err == nil {
			r.Close()
		}
	}()
	for _, path := range []string{own, fifo} {
		f, err := Open(path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(path), err)
		}
		f.Close()
	}
	if fi, err := os.Stat(shared); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("a file of its own, group- and world-writable: left %v, %v", fi.Mode().Perm(), err)
	}
}

// ReadSecret reads a secret group or others may not write (also through
// links, as Kubernetes mounts a Secret), saying whether others may read
// it; it refuses one group or others may write, and a directory.
func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("secret-token-0123456789"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mounted := write("data", 0o440)
	link := filepath.Join(dir, "token")
	if err := os.Symlink(mounted, link); err != nil {
		t.Fatal(err)
	}
	for p, wantExposed := range map[string]bool{write("own", 0o600): false, write("group", 0o640): false, link: false,
		write("world", 0o644): true, write("docker", 0o444): true} {
		if b, exposed, err := ReadSecret(p); err != nil || string(b) != "secret-token-0123456789" || exposed != wantExposed {
			t.Errorf("%s: %q, exposed %v, %v", filepath.Base(p), b, exposed, err)
		}
	}
	for _, p := range []string{write("groupw", 0o660), write("otherw", 0o602), dir} {
		if _, _, err := ReadSecret(p); err == nil {
			t.Errorf("%s: read, want refused", filepath.Base(p))
		}
	}
}

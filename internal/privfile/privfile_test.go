//go:build unix

package privfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Open creates and opens a file of the process's own, and refuses a link
// at its path (never writing through it), a file group or others may
// write, another user's, and a directory.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(filepath.Join(dir, "audit.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("operator data"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "planted")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.WriteFile(shared, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(shared, 0o666) // past the umask
	cases := map[string]string{link: "symbolic link", shared: "written by group or others", dir: "not a regular file"}
	if os.Geteuid() == 0 {
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
		flag := os.O_WRONLY | os.O_APPEND | os.O_CREATE
		if path == dir {
			flag = os.O_RDONLY
		}
		if f, err := Open(path, flag, 0o600); err == nil || !strings.Contains(err.Error(), want) {
			if f != nil {
				f.Close()
			}
			t.Errorf("%s: %v, want refused (%s)", filepath.Base(path), err, want)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "operator data" {
		t.Errorf("the link's target was changed: %q", b)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(link, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Errorf("the link was replaced: %v", err)
	}
}

// ReadSecret reads a secret only the process's user, or its group, may
// read (also through links, as Kubernetes mounts a Secret), and refuses
// one others may read, or group or others may write.
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
	for _, p := range []string{write("own", 0o600), write("group", 0o640), link} {
		if b, err := ReadSecret(p); err != nil || string(b) != "secret-token-0123456789" {
			t.Errorf("%s: %q, %v", filepath.Base(p), b, err)
		}
	}
	for _, p := range []string{write("world", 0o644), write("groupw", 0o660), write("otherw", 0o602), dir} {
		if _, err := ReadSecret(p); err == nil {
			t.Errorf("%s: read, want refused", filepath.Base(p))
		}
	}
}

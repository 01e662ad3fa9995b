package cluster

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// WriteCerts makes a CA and node certificates that LoadTLS accepts, keys
// readable by their owner only; a second run issues with the same CA and
// overwrites nothing.
func TestWriteCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	opts := CertsOptions{Nodes: []string{"node-1", "node-2"}, Hosts: []string{"localhost", "127.0.0.1", "pingmcp-0.example"},
		Validity: 30 * 24 * time.Hour, CAValidity: 365 * 24 * time.Hour}
	files, info, err := WriteCerts(dir, opts)
	if err != nil || !info.Made || len(files) != 2 {
		t.Fatalf("WriteCerts: %v, %v, %v", files, info, err)
	}
	for _, f := range files {
		tl, err := LoadTLS(f.Cert, f.Key, f.CA)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if tl.Subject() != "CN="+f.Name+",O=pingmcp cluster" {
			t.Errorf("subject %q", tl.Subject())
		}
		if d := time.Until(tl.NotAfter()); d < 29*24*time.Hour || d > 31*24*time.Hour {
			t.Errorf("%s expires in %s, want 30 days", f.Name, d)
		}
		if !slices.Equal(tl.leaf.DNSNames, []string{"localhost", "pingmcp-0.example"}) || len(tl.leaf.IPAddresses) != 1 || !tl.leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("names %v %v", tl.leaf.DNSNames, tl.leaf.IPAddresses)
		}
		if !slices.Equal(tl.leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
			t.Errorf("usages %v", tl.leaf.ExtKeyUsage)
		}
	}
	for name, want := range map[string]os.FileMode{"ca.key": 0o600, "node-1.key": 0o600, "node-2.key": 0o600, "ca.crt": 0o644, "node-1.crt": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", name, fi.Mode().Perm(), err, want)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v %v, want 0700", fi.Mode().Perm(), err)
	}

	// Again: a node added with the same CA; an existing node refused.
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	more, again, err := WriteCerts(dir, CertsOptions{Nodes: []string{"node-3"}, Validity: time.Hour, CAValidity: time.Hour})
	if err != nil || again.Made || len(more) != 1 {
		t.Fatalf("second run: %v %v %v", more, again, err)
	}
	if again.Fingerprint != info.Fingerprint || len(info.Fingerprint) != 32*3-1 {
		t.Errorf("fingerprints %q, then %q", info.Fingerprint, again.Fingerprint)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); string(again) != string(ca) {
		t.Error("the CA was replaced")
	}
	if _, err := LoadTLS(more[0].Cert, more[0].Key, files[0].CA); err != nil {
		t.Errorf("node-3 with the first CA: %v", err)
	}
	key1, _ := os.ReadFile(files[0].Key)
	if _, _, err := WriteCerts(dir, CertsOptions{Nodes: []string{"node-1"}, Validity: time.Hour}); err == nil || !strings.Contains(err.Error(), "not overwritten") {
		t.Errorf("existing node: %v", err)
	}
	if after, _ := os.ReadFile(files[0].Key); string(after) != string(key1) {
		t.Error("node-1's key was overwritten")
	}
}

func TestWriteCertsRefusals(t *testing.T) {
	ok := CertsOptions{Nodes: []string{"a"}, Validity: time.Hour, CAValidity: 24 * time.Hour}
	for _, tc := range []struct {
		name  string
		setup func(dir string) CertsOptions
		want  string
	}{
		{"no nodes", func(string) CertsOptions { return CertsOptions{Validity: time.Hour} }, "no node"},
		{"path in a name", func(string) CertsOptions { o := ok; o.Nodes = []string{"../x"}; return o }, "node name"},
		{"the CA's name", func(string) CertsOptions { o := ok; o.Nodes = []string{"ca"}; return o }, "node name"},
		{"a name twice", func(string) CertsOptions { o := ok; o.Nodes = []string{"a", "a"}; return o }, "node name"},
		{"node outlives the CA", func(string) CertsOptions { o := ok; o.Validity = 48 * time.Hour; return o }, "outlive the CA"},
		{"CA certificate without key", func(dir string) CertsOptions {
			os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("x"), 0o600)
			return ok
		}, "needs both"},
		{"CA of garbage", func(dir string) CertsOptions {
			os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("x"), 0o600)
			os.WriteFile(filepath.Join(dir, "ca.key"), []byte("x"), 0o600)
			return ok
		}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := WriteCerts(dir, tc.setup(dir)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

type plantedCase struct {
	name  string
	setup func(t *testing.T, dir string) string // returns the --dir
	want  string
}

// A CA found in the directory is trusted by every node: one that someone
// else may have planted or may change is refused, and no node certificate
// is issued with it (a local user pre-creating the directory, a link to
// their files, a key others may read).
func TestWriteCertsRefusesPlantedCA(t *testing.T) {
	opts := CertsOptions{Nodes: []string{"node-1"}, Validity: time.Hour, CAValidity: 24 * time.Hour}
	theirs := filepath.Join(t.TempDir(), "theirs")
	if _, _, err := WriteCerts(theirs, CertsOptions{Nodes: []string{"x"}, Validity: time.Hour, CAValidity: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	copyCA := func(t *testing.T, dir string) {
		t.Helper()
		for _, f := range []string{CACertFile, CAKeyFile} {
			b, err := os.ReadFile(filepath.Join(theirs, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []plantedCase{
		{"the directory a link", func(t *testing.T, dir string) string {
			link := dir + "-link"
			if err := os.Symlink(theirs, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "symbolic link"},
		{"the key a link", func(t *testing.T, dir string) string {
			copyCA(t, dir)
			os.Remove(filepath.Join(dir, CAKeyFile))
			if err := os.Symlink(filepath.Join(theirs, CAKeyFile), filepath.Join(dir, CAKeyFile)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "symbolic link"},
		{"the directory writable by others", func(t *testing.T, dir string) string {
			copyCA(t, dir)
			os.Chmod(dir, 0o777)
			return dir
		}, "writable by group or others"},
		{"the directory sticky and writable by others, as /tmp", func(t *testing.T, dir string) string {
			copyCA(t, dir)
			os.Chmod(dir, os.ModeSticky|0o777)
			return dir
		}, "writable by group or others"},
		{"the key readable by others", func(t *testing.T, dir string) string {
			copyCA(t, dir)
			os.Chmod(filepath.Join(dir, CAKeyFile), 0o644)
			return dir
		}, "readable by group or others"},
		// Whoever may rename the directory in its parent may swap it,
		// once checked, for one of theirs holding their CA.
		{"the parent writable by others", func(t *testing.T, dir string) string {
			os.Chmod(filepath.Dir(dir), 0o777)
			return dir
		}, "writable by group or others"},
		{"a directory above writable by others, the directory to make", func(t *testing.T, dir string) string {
			os.Chmod(dir, 0o777)
			return filepath.Join(dir, "a", "certs")
		}, "is writable by group or others"},
	}
	if os.Geteuid() == 0 { // only root can give files away
		cases = append(cases,
			plantedCase{"the directory another user's", func(t *testing.T, dir string) string {
				copyCA(t, dir)
				os.Chown(dir, 65534, 65534)
				return dir
			}, "another user"},
			plantedCase{"the key another user's", func(t *testing.T, dir string) string {
				copyCA(t, dir)
				os.Chown(filepath.Join(dir, CAKeyFile), 65534, 65534)
				return dir
			}, "another user"},
			plantedCase{"the parent another user's", func(t *testing.T, dir string) string {
				os.Chown(filepath.Dir(dir), 65534, 65534)
				return dir
			}, "another user"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			d := tc.setup(t, dir)
			files, info, err := WriteCerts(d, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if len(files) != 0 || info.Fingerprint != "" {
				t.Errorf("issued %v with the CA %s", files, info.Fingerprint)
			}
			if _, err := os.Lstat(filepath.Join(d, "node-1.key")); err == nil {
				t.Error("node-1.key was written")
			}
		})
	}
}

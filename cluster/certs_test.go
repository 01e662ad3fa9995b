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
	files, madeCA, err := WriteCerts(dir, opts)
	if err != nil || !madeCA || len(files) != 2 {
		t.Fatalf("WriteCerts: %v, %v, %v", files, madeCA, err)
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
	more, madeCA, err := WriteCerts(dir, CertsOptions{Nodes: []string{"node-3"}, Validity: time.Hour, CAValidity: time.Hour})
	if err != nil || madeCA || len(more) != 1 {
		t.Fatalf("second run: %v %v %v", more, madeCA, err)
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

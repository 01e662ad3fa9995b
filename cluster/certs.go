package cluster

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pingmcp/pingmcp/cluster/pki"
	"github.com/pingmcp/pingmcp/internal/privfile"
)

// CertsOptions say what WriteCerts makes.
type CertsOptions struct {
	// Nodes are the names of the node certificates (file names too).
	Nodes []string
	// Hosts are the DNS names and IP addresses each node certificate names.
	Hosts []string
	// Validity of the node certificates, and of the CA when one is made.
	Validity, CAValidity time.Duration
}

// NodeFiles are one node's files, as --cluster-tls-cert, --cluster-tls-key
// and --cluster-tls-ca take them.
type NodeFiles struct {
	Name, Cert, Key, CA string
}

// Args are the serve flags of these files.
func (f NodeFiles) Args() []string {
	return []string{"--cluster-tls-cert", f.Cert, "--cluster-tls-key", f.Key, "--cluster-tls-ca", f.CA}
}

// Files a certificates directory holds besides NAME.crt and NAME.key of
// each node.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CAInfo says which CA issued: made by this run or found, and its
// fingerprint.
type CAInfo struct {
	Made bool
	// Fingerprint is the SHA-256 of its certificate, as
	// `openssl x509 -noout -fingerprint -sha256` writes it.
	Fingerprint string
}

// WriteCerts writes a cluster's certificates into dir (made 0700 if
// missing, and the directories missing above it): the CA (ca.crt, and
// ca.key 0600), unless dir has one already, which then issues; and for
// each node NAME.crt and NAME.key (0600). It never overwrites a file. It
// refuses a dir, a directory above it, or a CA in it, that someone else may
// have planted or may change (privfile.Check, privfile.PrivateDir): a CA
// found there is trusted by every node.
func WriteCerts(dir string, o CertsOptions) (files []NodeFiles, info CAInfo, err error) {
	if len(o.Nodes) == 0 {
		return nil, info, errors.New("no node to issue a certificate for")
	}
	seen := map[string]bool{}
	for _, n := range o.Nodes {
		if !nodeName.MatchString(n) || n == "ca" || seen[n] {
			return nil, info, fmt.Errorf("node name %q: want letters, digits, '.', '_' or '-' (at most 64), each name once, and not \"ca\"", n)
		}
		seen[n] = true
	}
	// The directories above it too (privfile.PrivateDir): whoever may
	// rename one on the way may swap dir, once checked, for a directory of
	// theirs holding their CA. In, is what is read and written: dir with
	// its parents' links resolved; the files are named by dir.
	clean := filepath.Clean(dir)
	parent, err := privfile.PrivateDir(filepath.Dir(clean))
	if err != nil {
		return nil, info, err
	}
	in := filepath.Join(parent, filepath.Base(clean))
	if err := os.Mkdir(in, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, info, err
	}
	caCert, caKey := filepath.Join(in, CACertFile), filepath.Join(in, CAKeyFile)
	// Not even a sticky one (as /tmp): others could make ca.crt and ca.key
	// in it between their check and their reading below.
	if err := privfile.Exclusive(in); err != nil {
		return nil, info, err
	}
	for _, p := range []string{caCert, caKey} {
		if err := privfile.Check(p, p == caKey); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, info, err
		}
	}
	ca, err := loadCA(caCert, caKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ca, err = pki.NewCA("pingmcp cluster CA", o.CAValidity); err != nil {
			return nil, info, err
		}
		keyPEM, err := ca.KeyPEM()
		if err != nil {
			return nil, info, err
		}
		// The key first: a directory with ca.crt alone is one a later run
		// refuses, not one it half-trusts.
		if err := writeNew(caKey, keyPEM, 0o600); err != nil {
			return nil, info, err
		}
		if err := writeNew(caCert, ca.CertPEM(), 0o644); err != nil {
			return nil, info, err
		}
		info.Made = true
	case err != nil:
		return nil, info, fmt.Errorf("the CA in %s: %w", dir, err)
	}
	info.Fingerprint = Fingerprint(ca.Cert)
	for _, n := range o.Nodes {
		f := NodeFiles{Name: n, Cert: filepath.Join(dir, n+".crt"), Key: filepath.Join(dir, n+".key"), CA: filepath.Join(dir, CACertFile)}
		cert, key := filepath.Join(in, n+".crt"), filepath.Join(in, n+".key")
		for _, p := range []string{cert, key} {
			if _, err := os.Lstat(p); err == nil {
				return files, info, fmt.Errorf("%s exists: not overwritten (choose other node names for new certificates, or remove the old files)", p)
			}
		}
		node, err := ca.IssueNode(n, o.Hosts, o.Validity)
		if err != nil {
			return files, info, fmt.Errorf("node %s: %w", n, err)
		}
		keyPEM, err := node.KeyPEM()
		if err != nil {
			return files, info, err
		}
		// What the nodes will check at start, checked now.
		if _, err := ParseTLS(node.CertPEM(), keyPEM, ca.CertPEM()); err != nil {
			return files, info, fmt.Errorf("node %s: %w", n, err)
		}
		if err := writeNew(key, keyPEM, 0o600); err != nil {
			return files, info, err
		}
		if err := writeNew(cert, node.CertPEM(), 0o644); err != nil {
			return files, info, err
		}
		files = append(files, f)
	}
	return files, info, nil
}

// Fingerprint is the SHA-256 of cert as `openssl x509 -noout -fingerprint
// -sha256` writes it: upper-case hex bytes joined by ':'.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hex, ":")
}

// loadCA reads the CA of a certificates directory; fs.ErrNotExist if it
// has none at all.
func loadCA(certFile, keyFile string) (*pki.CA, error) {
	certPEM, cerr := os.ReadFile(certFile)
	keyPEM, kerr := os.ReadFile(keyFile)
	if errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist) {
		return nil, fs.ErrNotExist
	}
	if err := errors.Join(cerr, kerr); err != nil {
		// %v, not %w: one file missing is no "no CA" to make one anew.
		return nil, fmt.Errorf("%v (a CA needs both %s and %s)", err, CACertFile, CAKeyFile)
	}
	return pki.ParseCA(certPEM, keyPEM)
}

// writeNew writes a file that must not exist yet, with perm.
func writeNew(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

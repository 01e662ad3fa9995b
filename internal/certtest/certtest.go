// Package certtest makes certificate authorities and the certificates they
// issue, as PEM files in a test's temporary directory: the cluster's mutual
// TLS is tested with them (good nodes, rogue nodes from another CA, expired
// or wrongly used certificates). Keys and signatures are cluster/pki's, the
// production code of `pingmcp certs`; what is here only writes files and
// shapes odd certificates. Nothing here is for production.
package certtest

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pingmcp/pingmcp/cluster/pki"
)

// CA is a certificate authority of a test.
type CA struct {
	Name string
	Cert *x509.Certificate
	ca   *pki.CA
	dir  string
	// File is the CA's certificate, PEM: what --cluster-tls-ca names.
	File string
}

// Files are the PEM files a node is given: its certificate, its key and
// the certificate of the CA it trusts.
type Files struct {
	Cert, Key, CA string
}

// Args are the serve flags of these files.
func (f Files) Args() []string {
	return []string{"--cluster-tls-cert", f.Cert, "--cluster-tls-key", f.Key, "--cluster-tls-ca", f.CA}
}

// Options shape a certificate. The zero value is a node certificate valid
// from an hour ago for a day, for both TLS server and client use, naming
// 127.0.0.1 and localhost.
type Options struct {
	NotBefore, NotAfter time.Time
	// Usages are its extended key usages; nil: server and client auth.
	Usages []x509.ExtKeyUsage
	// IsCA makes it an intermediate CA.
	IsCA bool
}

// NewCA makes a CA (pki.NewCA, valid for a day) in a directory of its own
// under t.TempDir().
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	c, err := pki.NewCA(name, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := &CA{Name: name, Cert: c.Cert, ca: c, dir: dir, File: filepath.Join(dir, "ca.crt")}
	write(t, ca.File, c.CertPEM())
	return ca
}

// Node issues a node certificate with the default Options.
func (ca *CA) Node(t testing.TB, name string) Files {
	t.Helper()
	return ca.Issue(t, name, Options{})
}

// Issue makes a certificate and key for name, signed by ca, and writes
// them as name.crt and name.key (0600) next to the CA's certificate.
func (ca *CA) Issue(t testing.TB, name string, o Options) Files {
	t.Helper()
	issued := ca.issue(t, name, o)
	f := Files{Cert: filepath.Join(ca.dir, name+".crt"), Key: filepath.Join(ca.dir, name+".key"), CA: ca.File}
	write(t, f.Cert, issued.CertPEM())
	key, err := issued.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	write(t, f.Key, key)
	return f
}

// Intermediate makes an intermediate CA under ca. Certificates it issues
// are written with the intermediate's certificate after theirs (a chain),
// and their Files name the root as the CA.
func (ca *CA) Intermediate(t testing.TB, name string) *CA {
	t.Helper()
	issued := ca.issue(t, name, Options{IsCA: true})
	return &CA{Name: name, Cert: issued.Cert, ca: &pki.CA{Issued: issued}, dir: t.TempDir(), File: ca.File}
}

// Chain issues a node certificate under an intermediate CA and appends the
// intermediate's certificate to the certificate file.
func (ca *CA) Chain(t testing.TB, name string) Files {
	t.Helper()
	f := ca.Issue(t, name, Options{})
	b, err := os.ReadFile(f.Cert)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	if err := os.WriteFile(f.Cert, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (ca *CA) issue(t testing.TB, name string, o Options) pki.Issued {
	t.Helper()
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(24 * time.Hour)
	}
	if o.Usages == nil {
		o.Usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"pingmcp tests"}},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           o.Usages,
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if o.IsCA {
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
		tmpl.DNSNames, tmpl.IPAddresses = nil, nil
	}
	issued, err := ca.ca.Sign(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return issued
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Package pki makes a cluster's certificate authority and the node
// certificates it issues (ECDSA P-256), for the cluster's mutual TLS:
// `pingmcp certs` writes them with cluster.WriteCerts, and tests make odd
// ones (expired, wrong usages) with Sign. Checking certificates is left to
// cluster.TLS.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Issued is a certificate and its private key (ECDSA P-256).
type Issued struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// CertPEM is the certificate, PEM.
func (i Issued) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.Cert.Raw})
}

// KeyPEM is the private key, PEM (PKCS #8).
func (i Issued) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(i.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CA is a certificate authority of a cluster: every certificate it issues
// admits its holder to the cluster (see cluster.TLS), so its key belongs with
// whoever may add nodes, not on the nodes.
type CA struct{ Issued }

// NewCA makes a self-signed CA valid from now for validity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"pingmcp cluster"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	self := Issued{Key: key}
	if self.Cert, err = create(tmpl, tmpl, key); err != nil {
		return nil, fmt.Errorf("make the cluster CA: %w", err)
	}
	return &CA{self}, nil
}

// ParseCA reads a CA's certificate and private key (PEM).
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", cert.Subject)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, errors.New("private key: not a PKCS #8 key") // never the key's bytes
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("the private key is not the CA certificate's")
	}
	return &CA{Issued{Cert: cert, Key: key}}, nil
}

// Sign issues a certificate of tmpl (its serial number is filled in) for a
// new key.
func (ca *CA) Sign(tmpl *x509.Certificate) (Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, err
	}
	cert, err := create(tmpl, ca.Cert, ca.Key, key)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Cert: cert, Key: key}, nil
}

// IssueNode issues a node certificate: usable both to accept cluster
// connections (serverAuth) and to make them (clientAuth), named name,
// with hosts (DNS names or IP addresses) as subject alternative names,
// valid from now for validity but never beyond the CA.
//
// Nodes do not compare the names with the address they dial (see
// cluster.TLS.ClientConfig): the names serve other tools (openssl s_client, say).
func (ca *CA) IssueNode(name string, hosts []string, validity time.Duration) (Issued, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: ca.Cert.Subject.Organization},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		return Issued{}, fmt.Errorf("a node certificate valid for %s would outlive the CA (it expires %s): make a new CA, or a shorter validity",
			validity, ca.Cert.NotAfter.Format(time.DateOnly))
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.Sign(tmpl)
}

// clockSkew is how far back certificates are valid from, for nodes whose
// clocks are a little behind the one that made them.
const clockSkew = 5 * time.Minute

func create(tmpl, parent *x509.Certificate, signer *ecdsa.PrivateKey, key ...*ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	t := *tmpl
	t.SerialNumber = serial
	pub := &signer.PublicKey
	if len(key) > 0 {
		pub = &key[0].PublicKey
	}
	der, err := x509.CreateCertificate(rand.Reader, &t, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

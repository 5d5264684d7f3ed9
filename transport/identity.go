package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/grits-cdn/grits/tree"
)

// NodeID names a node: its ed25519 public key. The TLS certificate a node
// presents carries that key, so after the handshake both sides know whom
// they talk to without any CA: the key is the identity.
type NodeID = tree.PublicKey

// ErrNoPeerID is returned when a connection's peer presented no usable
// certificate (read-only clients need none).
var ErrNoPeerID = errors.New("peer presented no node certificate")

// Certificate makes a self-signed TLS certificate for a node key. Its
// validity window is wide because nothing checks it: identity is the key
// itself, and admission (membership) decides what a key may do.
func Certificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	pub := key.Public().(ed25519.PublicKey)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: tree.PublicKeyOf(key).String()},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// peerIDFromCerts extracts the node ID from a peer's certificate chain.
// TLS 1.3 has already proven possession of the key in the handshake's
// CertificateVerify, so the certificate's public key is the peer's.
func peerIDFromCerts(certs []*x509.Certificate) (NodeID, error) {
	if len(certs) == 0 {
		return NodeID{}, ErrNoPeerID
	}
	pub, ok := certs[0].PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return NodeID{}, fmt.Errorf("peer certificate key is %T, not ed25519", certs[0].PublicKey)
	}
	var id NodeID
	copy(id[:], pub)
	return id, nil
}

// PeerID returns the node ID the peer proved in the handshake.
func PeerID(cs tls.ConnectionState) (NodeID, error) {
	return peerIDFromCerts(cs.PeerCertificates)
}

// verifyAnyNodeCert accepts any well-formed ed25519 certificate: which
// keys are welcome is the Authorize hook's decision, made with the
// membership state, not the TLS library's.
func verifyAnyNodeCert(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return nil
	}
	c, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	_, err = peerIDFromCerts([]*x509.Certificate{c})
	return err
}

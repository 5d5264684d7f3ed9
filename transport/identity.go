package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
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

// MaxCredentialSize is the largest credential a node certificate may
// carry (CertificateWithCredential).
const MaxCredentialSize = 1024

// oidCredential names the certificate extension that carries a node's
// credential: a DER OCTET STRING of the credential's bytes, non-critical.
var oidCredential = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 59999, 7433, 1}

// Certificate makes a self-signed TLS certificate for a node key. Its
// validity window is wide because nothing checks it: identity is the key
// itself, and admission (membership) decides what a key may do.
func Certificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	return CertificateWithCredential(key, nil)
}

// CertificateWithCredential is Certificate with credential embedded in a
// non-critical extension (OID 1.3.6.1.4.1.59999.7433.1), for the peer to
// read with PeerCredential. The credential is opaque to the transport
// (membership puts a site-signed node certificate there) and at most
// MaxCredentialSize bytes; an empty one embeds nothing.
func CertificateWithCredential(key ed25519.PrivateKey, credential []byte) (tls.Certificate, error) {
	if len(key) != ed25519.PrivateKeySize {
		return tls.Certificate{}, fmt.Errorf("node certificate: private key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if len(credential) > MaxCredentialSize {
		return tls.Certificate{}, fmt.Errorf("node certificate: credential of %d bytes exceeds MaxCredentialSize = %d", len(credential), MaxCredentialSize)
	}
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
	if len(credential) > 0 {
		val, err := asn1.Marshal(credential)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("node certificate: credential: %w", err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidCredential, Value: val}}
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

// PeerCredential returns the credential embedded in the peer's
// certificate (CertificateWithCredential), or nil if it has none. The
// handshake refuses a certificate whose credential extension is
// malformed or too large, so nil means none. The transport does not
// interpret the bytes, and the certificate's key proves only who
// presents them: what they are worth is for the caller to check.
func PeerCredential(cs tls.ConnectionState) []byte {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	cred, err := credentialFromCert(cs.PeerCertificates[0])
	if err != nil {
		return nil
	}
	return cred
}

// credentialFromCert reads the credential extension of c: nil without
// one, an error for one that is malformed or over MaxCredentialSize.
// (The X.509 parser has already refused duplicate extensions.)
func credentialFromCert(c *x509.Certificate) ([]byte, error) {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidCredential) {
			continue
		}
		// Bound the DER before decoding it: an OCTET STRING of the
		// largest credential has a 4-byte header.
		if len(ext.Value) > MaxCredentialSize+4 {
			return nil, fmt.Errorf("credential extension of %d bytes exceeds MaxCredentialSize = %d", len(ext.Value), MaxCredentialSize)
		}
		var cred []byte
		rest, err := asn1.Unmarshal(ext.Value, &cred)
		switch {
		case err != nil:
			return nil, fmt.Errorf("credential extension: %w", err)
		case len(rest) != 0:
			return nil, fmt.Errorf("credential extension: %d trailing bytes", len(rest))
		case len(cred) > MaxCredentialSize:
			return nil, fmt.Errorf("credential of %d bytes exceeds MaxCredentialSize = %d", len(cred), MaxCredentialSize)
		case len(cred) == 0:
			return nil, nil
		}
		return cred, nil
	}
	return nil, nil
}

// verifyAnyNodeCert accepts any well-formed ed25519 certificate whose
// credential, if any, is well-formed: which keys and credentials are
// welcome is the Authorize hook's decision, made with the membership
// state, not the TLS library's.
func verifyAnyNodeCert(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return nil
	}
	c, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	if _, err := peerIDFromCerts([]*x509.Certificate{c}); err != nil {
		return err
	}
	if _, err := credentialFromCert(c); err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	return nil
}

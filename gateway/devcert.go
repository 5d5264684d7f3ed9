package gateway

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Development certificates for a swarm: a node that joins asks the
// origin, over the authenticated grits/1 connection (GetTLSCert), for a
// certificate from the origin's development CA for its own TLS key and
// host names, so that trusting the origin's CA trusts every node of a
// development swarm. The request is a PKCS#10 certificate request
// (proof that the asker holds the key); the answer a DevCertChain
// record. The CA key never leaves the origin, and the origin signs
// only development names (DevHostAllowed), so a member cannot get a
// certificate for someone else's public name from it.

// Limits of the exchange, checked before anything is parsed further.
const (
	// MaxDevHosts bounds the names one certificate covers.
	MaxDevHosts = 16
	// maxDevCertDER bounds each certificate of a chain record.
	maxDevCertDER = 8 << 10
	devChainTag   = 'X'
	devChainVer   = 1
)

// ErrDevHost is returned for a host name the origin does not certify.
var ErrDevHost = errors.New("not a development host name")

// DevHostAllowed reports whether host may appear in a certificate the
// origin's development CA signs for another node: loopback, private,
// link-local and unique-local addresses, and names that cannot be
// public: localhost, single labels, and the reserved or local domains
// (.localhost, .test, .example, .invalid, .local, .internal,
// .home.arpa, .lan).
func DevHostAllowed(host string) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "" || len(h) > 253 || !validDNSName(h) {
		return false
	}
	if !strings.Contains(h, ".") {
		return true
	}
	for _, suffix := range []string{".localhost", ".test", ".example", ".invalid", ".local", ".internal", ".home.arpa", ".lan"} {
		if strings.HasSuffix(h, suffix) {
			return true
		}
	}
	return false
}

// validDNSName checks letters, digits and hyphens in labels of 1..63.
func validDNSName(h string) bool {
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// NewDevKey makes a TLS key for a node (ECDSA P-256, as the CA issues).
func NewDevKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("gateway: TLS key: %w", err)
	}
	return k, nil
}

// NewCertRequest makes the request a node sends: a PKCS#10 certificate
// request signed with key for hosts (addresses or DNS names).
func NewCertRequest(key crypto.Signer, hosts []string) ([]byte, error) {
	dns, ips, err := splitHosts(hosts)
	if err != nil {
		return nil, fmt.Errorf("gateway: certificate request: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: dns, IPAddresses: ips}, key)
	if err != nil {
		return nil, fmt.Errorf("gateway: certificate request: %w", err)
	}
	return der, nil
}

// CertRequest is a parsed, checked certificate request.
type CertRequest struct {
	Key   *ecdsa.PublicKey
	Hosts []string
}

// ParseCertRequest reads a request as the origin does: a PKCS#10
// request whose signature verifies, for an ECDSA P-256 key, naming 1 to
// MaxDevHosts hosts, every one DevHostAllowed (else ErrDevHost), and
// nothing else (no subject, no other extensions are used).
func ParseCertRequest(der []byte) (CertRequest, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return CertRequest{}, fmt.Errorf("gateway: certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return CertRequest{}, fmt.Errorf("gateway: certificate request: %w", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return CertRequest{}, errors.New("gateway: certificate request: want an ECDSA P-256 key")
	}
	var hosts []string
	for _, ip := range csr.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	hosts = append(hosts, csr.DNSNames...)
	if len(hosts) == 0 || len(hosts) > MaxDevHosts || len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return CertRequest{}, fmt.Errorf("gateway: certificate request: want 1 to %d host names and nothing else", MaxDevHosts)
	}
	for _, h := range hosts {
		if !DevHostAllowed(h) {
			return CertRequest{}, fmt.Errorf("gateway: certificate request for %q: %w (development certificates cover loopback and private addresses and local names; use --tls-cert or --acme-domain for public ones)", clipForLog(h), ErrDevHost)
		}
	}
	return CertRequest{Key: pub, Hosts: hosts}, nil
}

func splitHosts(hosts []string) (dns []string, ips []net.IP, err error) {
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" {
			return nil, nil, errors.New("empty host name")
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, strings.ToLower(h))
		}
	}
	return dns, ips, nil
}

// EncodeDevCertChain is the answer to a request: tag 'X', version 1,
// then the leaf's DER and the CA's DER, each as a uvarint length and
// the bytes.
func EncodeDevCertChain(leaf, ca []byte) []byte {
	b := []byte{devChainTag, devChainVer}
	for _, der := range [][]byte{leaf, ca} {
		b = binary.AppendUvarint(b, uint64(len(der)))
		b = append(b, der...)
	}
	return b
}

// DecodeDevCertChain reads an answer: the framing (canonical lengths,
// each certificate at most 8 KiB, nothing after), then both
// certificates. It checks no trust: see CheckDevCert.
func DecodeDevCertChain(b []byte) (leaf, ca *x509.Certificate, err error) {
	if len(b) < 2 || b[0] != devChainTag || b[1] != devChainVer {
		return nil, nil, errors.New("gateway: certificate chain: not a version-1 chain record")
	}
	rest := b[2:]
	var ders [2][]byte
	for i := range ders {
		n, k := binary.Uvarint(rest)
		if k <= 0 || k != uvarintLen(n) || n == 0 || n > maxDevCertDER || uint64(len(rest)-k) < n {
			return nil, nil, fmt.Errorf("gateway: certificate chain: certificate %d: bad length", i)
		}
		ders[i], rest = rest[k:k+int(n)], rest[k+int(n):]
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("gateway: certificate chain: %d trailing bytes", len(rest))
	}
	if leaf, err = x509.ParseCertificate(ders[0]); err != nil {
		return nil, nil, fmt.Errorf("gateway: certificate chain: leaf: %w", err)
	}
	if ca, err = x509.ParseCertificate(ders[1]); err != nil {
		return nil, nil, fmt.Errorf("gateway: certificate chain: CA: %w", err)
	}
	return leaf, ca, nil
}

func uvarintLen(n uint64) int {
	return len(binary.AppendUvarint(nil, n))
}

// CheckDevCert checks an issued certificate before a node serves with
// it: the CA is a CA, the leaf is signed by it for server
// authentication, valid now, for exactly this key and covering every
// host.
func CheckDevCert(leaf, ca *x509.Certificate, key crypto.PublicKey, hosts []string, now time.Time) error {
	if !ca.BasicConstraintsValid || !ca.IsCA {
		return errors.New("gateway: issued certificate: the issuer is not a CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("gateway: issued certificate: %w", err)
	}
	pub, ok := key.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return errors.New("gateway: issued certificate: for another key")
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			return fmt.Errorf("gateway: issued certificate: %w", err)
		}
	}
	return nil
}

// IssueFor signs a server certificate for someone else's key (a
// request the caller has checked) for hosts, valid from an hour ago for
// ttl (bounded as Issue's). It returns the leaf's DER.
func (ca *DevCA) IssueFor(pub crypto.PublicKey, hosts []string, ttl time.Duration) ([]byte, error) {
	der, _, err := ca.issue(pub, hosts, ttl)
	return der, err
}

// IssueWith is Issue for a key the caller keeps (so that the node's
// public key, and a browser's pin of it, survive a new certificate).
func (ca *DevCA) IssueWith(key crypto.Signer, hosts []string, ttl time.Duration) (tls.Certificate, error) {
	der, leaf, err := ca.issue(key.Public(), hosts, ttl)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ChainPEM is a certificate chain in PEM, leaf first.
func ChainPEM(chain [][]byte) []byte {
	var b bytes.Buffer
	for _, der := range chain {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return b.Bytes()
}

// KeyPEM is a private key in PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("gateway: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

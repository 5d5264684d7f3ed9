package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names of a development CA inside its directory.
const (
	devCACertFile = "ca.pem"
	devCAKeyFile  = "ca.key"
)

const (
	devCAValidity = 10 * 365 * 24 * time.Hour
	// maxLeafValidity is the longest validity browsers accept for a TLS
	// server certificate (CA/Browser Forum, enforced by Chrome and Safari).
	maxLeafValidity = 397 * 24 * time.Hour
	// leafBackdate tolerates clocks of clients that run slightly behind.
	leafBackdate = time.Hour
)

// defaultDevHosts are the names a leaf gets when Issue is given none.
var defaultDevHosts = []string{"localhost", "127.0.0.1", "::1"}

// DevCA is a local certificate authority for development: it issues
// short-lived TLS server certificates for localhost and test names, so a
// gateway can serve HTTPS (and HTTP/3, which has no plaintext mode)
// without a public CA. Trust it only on development machines.
type DevCA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// CreateDevCA creates a new development CA (ECDSA P-256, valid for 10
// years) and writes it to dir/ca.pem (0644) and dir/ca.key (PKCS#8,
// 0600), each atomically. It refuses to replace an existing ca.pem;
// load that with LoadDevCA instead.
func CreateDevCA(dir string, name string) (*DevCA, error) {
	certPath := filepath.Join(dir, devCACertFile)
	if _, err := os.Lstat(certPath); err == nil {
		return nil, fmt.Errorf("gateway: create dev CA: %s already exists (use LoadDevCA, or remove it first)", certPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("gateway: create dev CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("gateway: create dev CA directory: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("gateway: create dev CA key: %w", err)
	}
	serial, err := devcaSerial()
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("gateway: create dev CA: %w", err)
	}
	skid := sha256.Sum256(spki)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   fmt.Sprintf("grits development CA (%s)", name),
			Organization: []string{"grits development"},
		},
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              now.Add(devCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaves only
		SubjectKeyId:          skid[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("gateway: create dev CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("gateway: create dev CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("gateway: create dev CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	// Key first: a ca.pem on disk always has its key next to it.
	if err := devcaWriteFile(filepath.Join(dir, devCAKeyFile), keyPEM, 0o600, true); err != nil {
		return nil, fmt.Errorf("gateway: write dev CA key: %w", err)
	}
	if err := devcaWriteFile(certPath, certPEM, 0o644, false); err != nil {
		return nil, fmt.Errorf("gateway: write dev CA certificate: %w", err)
	}
	return &DevCA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// LoadDevCA reads the development CA CreateDevCA wrote to dir.
func LoadDevCA(dir string) (*DevCA, error) {
	certPath := filepath.Join(dir, devCACertFile)
	keyPath := filepath.Join(dir, devCAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("gateway: no dev CA in %s (create one first): %w", dir, err)
		}
		return nil, fmt.Errorf("gateway: load dev CA: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("gateway: dev CA in %s has no private key: %w", dir, err)
		}
		return nil, fmt.Errorf("gateway: load dev CA key: %w", err)
	}

	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("gateway: load dev CA: %s holds no PEM certificate", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("gateway: load dev CA: parse %s: %w", certPath, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("gateway: load dev CA: %s is not a CA certificate", certPath)
	}

	kblock, _ := pem.Decode(keyPEM)
	if kblock == nil || kblock.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("gateway: load dev CA: %s holds no PKCS#8 PEM private key", keyPath)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("gateway: load dev CA: parse %s: %w", keyPath, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("gateway: load dev CA: %s: unsupported key type %T", keyPath, parsed)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("gateway: load dev CA: %s does not match the certificate in %s", keyPath, certPath)
	}
	return &DevCA{Cert: cert, Key: signer, CertPEM: certPEM}, nil
}

// Issue creates a TLS server certificate (ECDSA P-256) for hosts, DNS
// names or IP addresses (default: localhost, 127.0.0.1 and ::1), valid
// from an hour ago for ttl (at most 397 days, the browsers' limit, and
// never past the CA's own expiry; ttl <= 0 means the maximum). The chain
// holds the leaf and the CA certificate, and Leaf is set.
func (ca *DevCA) Issue(hosts []string, ttl time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("gateway: issue dev certificate: %w", err)
	}
	return ca.IssueWith(key, hosts, ttl)
}

// issue signs a server certificate for pub and returns its DER and the
// parsed leaf.
func (ca *DevCA) issue(pub crypto.PublicKey, hosts []string, ttl time.Duration) ([]byte, *x509.Certificate, error) {
	if len(hosts) == 0 {
		hosts = defaultDevHosts
	}
	dnsNames, ips, err := splitHosts(hosts)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: issue dev certificate: %w", err)
	}

	now := time.Now()
	notBefore := now.Add(-leafBackdate)
	if ttl <= 0 {
		ttl = maxLeafValidity
	}
	notAfter := now.Add(ttl)
	if limit := notBefore.Add(maxLeafValidity); notAfter.After(limit) {
		notAfter = limit
	}
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("gateway: issue dev certificate: CA expired at %s", ca.Cert.NotAfter.Format(time.RFC3339))
	}
	serial, err := devcaSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"grits development"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: issue dev certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: issue dev certificate: %w", err)
	}
	return der, leaf, nil
}

// TrustHint returns a one-line shell command that makes this machine
// trust the CA stored at caPath: the system store (Debian/Ubuntu: curl,
// Go, most tools) and the NSS database Chromium uses on Linux.
func (ca *DevCA) TrustHint(caPath string) string {
	p := devcaShellQuote(caPath)
	return "sudo cp " + p + " /usr/local/share/ca-certificates/grits-dev.crt && sudo update-ca-certificates; " +
		"certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n grits-dev -i " + p
}

// SPKIHash returns the base64 (standard encoding) SHA-256 of cert's
// SubjectPublicKeyInfo: the pin format Chromium's
// --ignore-certificate-errors-spki-list flag takes.
func SPKIHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func devcaSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("gateway: certificate serial: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

// devcaWriteFile writes data to a temporary file in path's directory,
// syncs it and moves it to path. With replace false it fails if path
// exists (a hard link cannot overwrite).
func devcaWriteFile(path string, data []byte, perm os.FileMode, replace bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	} else {
		if err := os.Link(tmp, path); err != nil {
			return err
		}
		os.Remove(tmp)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// devcaShellQuote quotes s for a POSIX shell unless it needs no quoting.
func devcaShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

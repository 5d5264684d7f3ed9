package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

func TestDevCACreateLoad(t *testing.T) {
	dir := t.TempDir()
	ca, err := CreateDevCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ca.Cert.Subject.CommonName, "grits development CA (test)"; got != want {
		t.Errorf("CN = %q, want %q", got, want)
	}
	if !ca.Cert.IsCA {
		t.Error("not a CA")
	}
	if v := ca.Cert.NotAfter.Sub(ca.Cert.NotBefore); v < 9*365*24*time.Hour {
		t.Errorf("validity %v, want about 10 years", v)
	}
	for name, want := range map[string]fs.FileMode{"ca.pem": 0o644, "ca.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Error("ca.key is not a PKCS#8 PEM key")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2 (temporary files left?)", len(entries))
	}

	loaded, err := LoadDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !bytes.Equal(loaded.CertPEM, ca.CertPEM) {
		t.Error("loaded certificate differs")
	}
	if !ca.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(loaded.Key.Public()) {
		t.Error("loaded key differs")
	}
	// The loaded CA issues certificates the original's pool accepts.
	leaf, err := loaded.Issue(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool}); err != nil {
		t.Error(err)
	}

	if !strings.Contains(ca.TrustHint(filepath.Join(dir, "ca.pem")), "update-ca-certificates") {
		t.Error("trust hint lacks update-ca-certificates")
	}
	if h := ca.TrustHint("/tmp/my dir/ca.pem"); !strings.Contains(h, "'/tmp/my dir/ca.pem'") || strings.Contains(h, "\n") {
		t.Errorf("trust hint does not quote the path or spans lines: %s", h)
	}
}

func TestDevCARefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	ca, err := CreateDevCA(dir, "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateDevCA(dir, "two"); err == nil {
		t.Fatal("second CreateDevCA succeeded")
	}
	loaded, err := LoadDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Error("CA was replaced")
	}
}

func TestDevCALoadErrors(t *testing.T) {
	if _, err := LoadDevCA(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing CA: %v, want ErrNotExist", err)
	}

	a, b := t.TempDir(), t.TempDir()
	if _, err := CreateDevCA(a, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateDevCA(b, "b"); err != nil {
		t.Fatal(err)
	}
	keyB, _ := os.ReadFile(filepath.Join(b, "ca.key"))
	if err := os.WriteFile(filepath.Join(a, "ca.key"), keyB, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDevCA(a); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}

	// A leaf certificate is not a CA.
	c := t.TempDir()
	ca, err := CreateDevCA(c, "c")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	tlsTestWritePair(t, filepath.Join(d, "ca.pem"), filepath.Join(d, "ca.key"), leaf)
	if _, err := LoadDevCA(d); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf as CA: %v", err)
	}
}

func TestDevCAIssue(t *testing.T) {
	ca, err := CreateDevCA(t.TempDir(), "issue")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(nil, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf == nil || len(cert.Certificate) != 2 || !bytes.Equal(cert.Certificate[1], ca.Cert.Raw) {
		t.Fatal("chain is not leaf + CA, or Leaf unset")
	}
	if !slices.Contains(cert.Leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Error("no serverAuth")
	}
	if d := time.Until(cert.Leaf.NotBefore); d > -59*time.Minute || d < -61*time.Minute {
		t.Errorf("NotBefore %v from now, want -1h", d)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	for _, host := range []string{"example.com", "10.0.0.1", "foo.localhost"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err == nil {
			t.Errorf("%s verified", host)
		}
	}
	// Only the CA's pool trusts it.
	other, _ := CreateDevCA(t.TempDir(), "other")
	otherPool := x509.NewCertPool()
	otherPool.AddCert(other.Cert)
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: otherPool}); err == nil {
		t.Error("verified against another CA")
	}

	// Explicit hosts, and the validity cap.
	cert, err = ca.Issue([]string{"grits.test", "[fe80::1]", "192.0.2.7"}, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if v := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore); v > 397*24*time.Hour {
		t.Errorf("validity %v over 397 days", v)
	}
	if !slices.Equal(cert.Leaf.DNSNames, []string{"grits.test"}) || len(cert.Leaf.IPAddresses) != 2 {
		t.Errorf("names %v %v", cert.Leaf.DNSNames, cert.Leaf.IPAddresses)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "192.0.2.7", Roots: pool}); err != nil {
		t.Error(err)
	}
	if _, err := ca.Issue([]string{""}, time.Hour); err == nil {
		t.Error("empty host accepted")
	}
}

func TestSPKIHash(t *testing.T) {
	ca, err := CreateDevCA(t.TempDir(), "spki")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Independently: marshal the public key ourselves.
	spki, err := x509.MarshalPKIXPublicKey(cert.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	want := base64.StdEncoding.EncodeToString(sum[:])
	if got := SPKIHash(cert.Leaf); got != want {
		t.Errorf("SPKIHash = %s, want %s", got, want)
	}
	if len(want) != 44 {
		t.Errorf("hash length %d", len(want))
	}
}

func TestTLSConfig(t *testing.T) {
	get := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }
	c := TLSConfig(get)
	if c.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x", c.MinVersion)
	}
	if !slices.Equal(c.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("NextProtos %v", c.NextProtos)
	}
	if c.GetCertificate == nil {
		t.Error("GetCertificate unset")
	}
}

func TestACMECertificates(t *testing.T) {
	dir := t.TempDir()
	m := ACMECertificates(dir, []string{"grits.example"}, "ops@grits.example")
	if m.Email != "ops@grits.example" || m.Prompt == nil || !m.Prompt("https://tos") {
		t.Error("email or terms prompt")
	}
	if err := m.HostPolicy(context.Background(), "grits.example"); err != nil {
		t.Error(err)
	}
	if err := m.HostPolicy(context.Background(), "evil.example"); err == nil {
		t.Error("host outside the whitelist allowed")
	}
	if !slices.Contains(m.TLSConfig().NextProtos, acme.ALPNProto) {
		t.Error("manager TLS config lacks acme-tls/1")
	}
	// No network: an unlisted name is refused before any ACME traffic.
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example"}); err == nil {
		t.Error("certificate for unlisted host")
	}
}

func TestFileCertificatesReload(t *testing.T) {
	old := certPollInterval
	certPollInterval = 20 * time.Millisecond
	t.Cleanup(func() { certPollInterval = old })

	ca, err := CreateDevCA(t.TempDir(), "reload")
	if err != nil {
		t.Fatal(err)
	}
	certA, err := ca.Issue(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certB, err := ca.Issue(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if certA.Leaf.SerialNumber.Cmp(certB.Leaf.SerialNumber) == 0 {
		t.Fatal("same serial")
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	tlsTestWritePair(t, certFile, keyFile, certA)

	logs := &tlsTestLogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	get, err := FileCertificates(ctx, certFile, keyFile, logger)
	if err != nil {
		t.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", TLSConfig(get))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	served := func() *big.Int {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
			&tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	waitServed := func(want *big.Int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for served().Cmp(want) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("still not serving serial %v", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if served().Cmp(certA.Leaf.SerialNumber) != 0 {
		t.Fatal("not serving A")
	}
	tlsTestWritePair(t, certFile, keyFile, certB)
	waitServed(certB.Leaf.SerialNumber)
	if !strings.Contains(logs.String(), "reloaded") {
		t.Error("reload not logged")
	}

	// A broken pair: the key no longer matches, and then garbage.
	keyA := tlsTestPEMKey(t, certA)
	if err := os.WriteFile(keyFile, keyA, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsTestWaitLog(t, logs, "reload failed", 1)
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tlsTestWaitLog(t, logs, "reload failed", 2)
	for range 3 {
		if served().Cmp(certB.Leaf.SerialNumber) != 0 {
			t.Fatal("broken pair replaced B")
		}
	}

	// A good pair again is picked up.
	tlsTestWritePair(t, certFile, keyFile, certA)
	waitServed(certA.Leaf.SerialNumber)

	if _, err := FileCertificates(ctx, filepath.Join(dir, "missing.crt"), keyFile, logger); err == nil {
		t.Error("missing certificate file accepted")
	}
}

func tlsTestWaitLog(t *testing.T, logs *tlsTestLogBuffer, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log has not %d × %q:\n%s", n, s, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tlsTestWritePair writes cert's chain and key as PEM files, each by rename.
func tlsTestWritePair(t *testing.T, certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, chain}, {keyFile, tlsTestPEMKey(t, cert)}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

func tlsTestPEMKey(t *testing.T, cert tls.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

type tlsTestLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tlsTestLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *tlsTestLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package gateway

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDevHostAllowed(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "::1", "10.1.2.3", "192.168.0.9", "172.16.5.5", "fd00::1", "fe80::1", "169.254.1.1",
		"localhost", "LOCALHOST", "volunteer1", "a.localhost", "v1.test", "node.example", "x.invalid", "pi.local", "db.internal",
		"nas.home.arpa", "box.lan", "trailing.test."} {
		if !DevHostAllowed(h) {
			t.Errorf("DevHostAllowed(%q) = false", h)
		}
	}
	for _, h := range []string{"8.8.8.8", "2001:4860::8888", "example.com", "grits.example.org", "bank.com", "test.com", "localhost.com",
		"", "-bad.test", "under_score.test", "a..test", "é.test", strings.Repeat("a", 64) + ".test", "0.0.0.0"} {
		if DevHostAllowed(h) {
			t.Errorf("DevHostAllowed(%q) = true", h)
		}
	}
}

// TestDevCertExchange: a node's request, parsed and signed by the CA,
// comes back as a chain the node accepts for its key and names; any
// mismatch is refused.
func TestDevCertExchange(t *testing.T) {
	ca, err := CreateDevCA(t.TempDir(), "exchange")
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewDevKey()
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"127.0.0.1", "localhost", "v1.test"}
	csr, err := NewCertRequest(key, hosts)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseCertRequest(csr)
	if err != nil {
		t.Fatal(err)
	}
	if !req.Key.Equal(key.Public()) || len(req.Hosts) != 3 {
		t.Fatalf("parsed request: %+v", req)
	}
	der, err := ca.IssueFor(req.Key, req.Hosts, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body := EncodeDevCertChain(der, ca.Cert.Raw)
	leaf, gotCA, err := DecodeDevCertChain(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckDevCert(leaf, gotCA, key.Public(), hosts, time.Now()); err != nil {
		t.Fatalf("a good certificate refused: %v", err)
	}
	other, _ := NewDevKey()
	if err := CheckDevCert(leaf, gotCA, other.Public(), hosts, time.Now()); err == nil {
		t.Error("a certificate for another key accepted")
	}
	if err := CheckDevCert(leaf, gotCA, key.Public(), []string{"v2.test"}, time.Now()); err == nil {
		t.Error("a certificate without one of the names accepted")
	}
	otherCA, _ := CreateDevCA(t.TempDir(), "other")
	if err := CheckDevCert(leaf, otherCA.Cert, key.Public(), hosts, time.Now()); err == nil {
		t.Error("a certificate checked against another CA accepted")
	}
	if err := CheckDevCert(leaf, gotCA, key.Public(), hosts, time.Now().Add(100*24*time.Hour)); err == nil {
		t.Error("an expired certificate accepted")
	}

	// Requests the origin refuses.
	public, _ := NewCertRequest(key, []string{"127.0.0.1", "bank.com"})
	if _, err := ParseCertRequest(public); !errors.Is(err, ErrDevHost) {
		t.Errorf("a request for a public name: %v, want ErrDevHost", err)
	}
	tampered := bytes.Clone(csr)
	tampered[len(tampered)-5] ^= 1
	if _, err := ParseCertRequest(tampered); err == nil {
		t.Error("a request with a broken signature accepted")
	}
	many := make([]string, MaxDevHosts+1)
	for i := range many {
		many[i] = "h" + strings.Repeat("x", i) + ".test"
	}
	tooMany, _ := NewCertRequest(key, many)
	if _, err := ParseCertRequest(tooMany); err == nil {
		t.Error("a request for too many names accepted")
	}

	// Chain records that do not decode.
	for name, b := range map[string][]byte{
		"empty":          nil,
		"wrong tag":      append([]byte{'Y'}, body[1:]...),
		"version 2":      append([]byte{'X', 2}, body[2:]...),
		"trailing byte":  append(bytes.Clone(body), 0),
		"truncated":      body[:len(body)-1],
		"zero length":    {'X', 1, 0},
		"non-minimal":    append([]byte{'X', 1, 0x80 | byte(len(der)&0x7f), byte(len(der) >> 7), 0}, der...),
		"leaf not X.509": EncodeDevCertChain([]byte("not a certificate"), ca.Cert.Raw),
	} {
		if _, _, err := DecodeDevCertChain(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// IssueWith keeps the caller's key: a new certificate, the same SPKI.
func TestIssueWithKeepsTheKey(t *testing.T) {
	ca, _ := CreateDevCA(t.TempDir(), "keep")
	key, _ := NewDevKey()
	a, err := ca.IssueWith(key, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.IssueWith(key, []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if SPKIHash(a.Leaf) != SPKIHash(b.Leaf) || bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Fatal("IssueWith: want two certificates with one public key")
	}
}

func FuzzParseCertRequest(f *testing.F) {
	key, _ := NewDevKey()
	for _, hosts := range [][]string{{"127.0.0.1"}, {"localhost", "::1", "v1.test"}, {"bank.com"}} {
		csr, err := NewCertRequest(key, hosts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(csr)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := ParseCertRequest(der)
		if err != nil {
			return
		}
		if req.Key == nil || len(req.Hosts) == 0 || len(req.Hosts) > MaxDevHosts {
			t.Fatalf("accepted %+v", req)
		}
		for _, h := range req.Hosts {
			if !DevHostAllowed(h) {
				t.Fatalf("accepted a request for %q", h)
			}
		}
	})
}

func FuzzDecodeDevCertChain(f *testing.F) {
	ca, err := CreateDevCA(f.TempDir(), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	key, _ := NewDevKey()
	der, err := ca.IssueFor(key.Public(), []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(EncodeDevCertChain(der, ca.Cert.Raw))
	f.Add([]byte{'X', 1, 1, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		leaf, c, err := DecodeDevCertChain(b)
		if err != nil {
			return
		}
		if re := EncodeDevCertChain(leaf.Raw, c.Raw); !bytes.Equal(re, b) {
			t.Fatalf("accepted a non-canonical chain record")
		}
	})
}

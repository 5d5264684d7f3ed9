package main_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
)

// TestDevCertificatesComeFromTheOriginAndSurviveRestarts: without
// --tls-cert or ACME, a volunteer's certificate comes from the origin's
// development CA (asked for over grits/1), so one CA trusts the whole
// swarm; every node's key and certificate survive a restart, so a pin of
// its public key (Chromium's SPKI list, as gritsd demo --open uses)
// keeps working; and a stranger gets no certificate from the origin.
func TestDevCertificatesComeFromTheOriginAndSurviveRestarts(t *testing.T) {
	o, keyStr := newOriginWithKey(t)
	o.importTree(t, newSource(t, []entry{{path: "index.html", data: []byte("<!doctype html><html><body><h1>pinned</h1></body></html>")}}))
	// Both nodes restart on their addresses later: ports below the
	// ephemeral range, so that nothing takes them meanwhile.
	fixed := func() string { return fmt.Sprintf("127.0.0.1:%d", fixedPort(t)) }
	osrv := startServe(t, o, append(gwGossip, "--listen", fixed(), "--https", fixed())...)
	oaddr, _ := gwHTTPS(t, osrv)
	v := gwEnrolWith(t, o, osrv.addr, "--https", fixed()) // its clients trust the origin's CA alone
	originCA := gwCAPool(t, o.path("ca.pem"))
	c := gwNewH2(t, originCA, nil)

	// leaf is the certificate a node serves, reached trusting only the
	// origin's CA.
	leaf := func(addr string) *x509.Certificate {
		t.Helper()
		var cert *x509.Certificate
		eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
			resp, _, err := c.try(http.MethodGet, "https://"+addr+"/grits/v1/peers", nil)
			if err != nil {
				return err
			}
			cert = resp.TLS.PeerCertificates[0]
			return nil
		})
		return cert
	}
	oLeaf, vLeaf := leaf(oaddr), leaf(v.addr)
	if vLeaf.Issuer.String() != oLeaf.Issuer.String() || !strings.Contains(vLeaf.Issuer.CommonName, "grits development CA") {
		t.Fatalf("the volunteer's certificate is issued by %q, the origin's by %q: want the origin's development CA for both", vLeaf.Issuer, oLeaf.Issuer)
	}
	for _, hc := range v.clients { // HTTP/3 too
		if resp, body := hc.get(t, v.base+"/grits/v1/root"); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s to the volunteer, trusting the origin's CA: %s %q", hc.name, resp.Status, body)
		}
	}

	// Both restart, on the same addresses.
	osrv.stop(t, syscall.SIGINT)
	v.srv.stop(t, syscall.SIGINT)
	osrv = startServe(t, o, append(gwGossip, "--listen", osrv.addr, "--https", oaddr)...)
	v.srv = startServe(t, v.d, append(gwGossip, "--https", v.addr)...)
	c = gwNewH2(t, originCA, nil)
	oLeaf2, vLeaf2 := leaf(oaddr), leaf(v.addr)
	for _, n := range []struct {
		name          string
		before, after *x509.Certificate
	}{{"origin", oLeaf, oLeaf2}, {"volunteer", vLeaf, vLeaf2}} {
		if gateway.SPKIHash(n.before) != gateway.SPKIHash(n.after) || !n.before.Equal(n.after) {
			t.Errorf("the %s serves another certificate after a restart (SPKI %s, was %s)", n.name, gateway.SPKIHash(n.after), gateway.SPKIHash(n.before))
		}
	}

	// A browser pinned to the origin's key before the restart still
	// loads the site.
	page, log := chromiumDump(t, t.TempDir(), []string{"--ignore-certificate-errors-spki-list=" + gateway.SPKIHash(oLeaf)}, "https://"+oaddr+"/")
	if !strings.Contains(page, "pinned") {
		t.Errorf("Chromium pinned to the origin's key before its restart did not load the page:\n%.1000s\n%.2000s", page, log)
	}

	// Pinned to the CA instead (as gritsd demo --open does), a browser
	// accepts every node the CA certified.
	caPEM, err := os.ReadFile(o.path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	caCert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	page, log = chromiumDump(t, t.TempDir(), []string{"--ignore-certificate-errors-spki-list=" + gateway.SPKIHash(caCert)}, "https://"+oaddr+"/")
	if !strings.Contains(page, "pinned") {
		t.Errorf("Chromium pinned to the origin's CA did not load the page:\n%.1000s\n%.2000s", page, log)
	}

	// Someone who is no member asks the origin for a certificate.
	_, stranger, _ := ed25519.GenerateKey(nil)
	ident, err := transport.Certificate(stranger)
	if err != nil {
		t.Fatal(err)
	}
	client, err := transport.NewClient(transport.ClientConfig{SiteKey: gwParseKey(t, keyStr), Identity: &ident, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	key, _ := gateway.NewDevKey()
	req, _ := gateway.NewCertRequest(key, []string{"127.0.0.1"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.TLSCert(ctx, osrv.addr, req); !errors.Is(err, proto.ErrUnauthorized) {
		t.Errorf("a stranger asked the origin for a development certificate: %v; want Unauthorized", err)
	}
}

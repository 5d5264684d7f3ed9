package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
)

// Files of a node's development TLS identity: its key, kept for good so
// that a browser's pin of it (SPKI) survives restarts and renewals, and
// the certificate chain it serves.
const (
	DevTLSKeyFile  = "tls-dev.key"
	DevTLSCertFile = "tls-dev.pem"
)

const (
	// devCertTTL is the life of a development certificate, and
	// devCertRenew how long before its end a node gets the next one.
	devCertTTL   = 90 * 24 * time.Hour
	devCertRenew = 30 * 24 * time.Hour
	// devCertWait bounds the first request to the origin at start: the
	// node serves with a certificate of its own CA meanwhile.
	devCertWait = 5 * time.Second
)

// devTLS is the certificate of a node that has neither --tls-cert nor
// ACME: on the origin, from its development CA; on other nodes, from
// the origin's development CA, asked for over grits/1 (GetTLSCert), so
// that trusting one CA trusts the whole development swarm. Until the
// origin has answered (the first start, the origin down) a node serves
// with a certificate its own CA issued for the same key.
type devTLS struct {
	n     *Node
	key   *ecdsa.PrivateKey
	hosts []string
	cur   atomic.Pointer[tls.Certificate]
	// fromSwarm: the current certificate is the origin CA's (always
	// true on the origin).
	fromSwarm atomic.Bool
}

func newDevTLS(n *Node, hosts []string) (*devTLS, string, error) {
	key, err := loadDevKey(n)
	if err != nil {
		return nil, "", err
	}
	if !n.origin {
		// The origin's CA certifies development names only.
		var dev []string
		for _, h := range hosts {
			if gateway.DevHostAllowed(h) {
				dev = append(dev, h)
			} else {
				n.log.Warn("a development certificate cannot cover a public name: use --tls-cert or --acme-domain for it", "host", h)
			}
		}
		hosts = dev
	}
	t := &devTLS{n: n, key: key, hosts: hosts}
	if cert, ca, ok := t.stored(); ok {
		t.cur.Store(cert)
		t.fromSwarm.Store(true)
		return t, t.describe(ca), nil
	}
	ca, err := DevCA(n.dir)
	if err != nil {
		return nil, "", err
	}
	cert, err := ca.IssueWith(key, hosts, devCertTTL)
	if err != nil {
		return nil, "", err
	}
	t.cur.Store(&cert)
	if n.origin {
		t.fromSwarm.Store(true)
		if err := t.save(&cert); err != nil {
			return nil, "", err
		}
		return t, t.describe(ca.Cert), nil
	}
	// Not saved: the origin's certificate replaces it as soon as it can.
	return t, "development CA " + n.dir.FilePath("ca.pem") + " until the origin's development CA issues one", nil
}

func (t *devTLS) describe(ca *x509.Certificate) string {
	if t.n.origin {
		return "development CA " + t.n.dir.FilePath("ca.pem") + " (key " + t.n.dir.FilePath(DevTLSKeyFile) + "; trust the CA: " +
			(&gateway.DevCA{Cert: ca}).TrustHint(t.n.dir.FilePath("ca.pem")) + ")"
	}
	return "the origin's development CA (" + ca.Subject.CommonName + ")"
}

// getCertificate is the TLS config's.
func (t *devTLS) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return t.cur.Load(), nil
}

// loadDevKey reads the node's TLS key, making it on first use.
func loadDevKey(n *Node) (*ecdsa.PrivateKey, error) {
	raw, err := n.dir.ReadFile(DevTLSKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		key, err := gateway.NewDevKey()
		if err != nil {
			return nil, err
		}
		b, err := gateway.KeyPEM(key)
		if err != nil {
			return nil, err
		}
		if err := n.dir.WriteFile(DevTLSKeyFile, b, 0o600); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(raw)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PKCS#8 PEM key (remove it and a new key is made)", n.dir.FilePath(DevTLSKeyFile))
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.dir.FilePath(DevTLSKeyFile), err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", n.dir.FilePath(DevTLSKeyFile))
	}
	return key, nil
}

// stored is the saved certificate if it still serves: for this key and
// every host, from the right CA (the origin's own on the origin), and
// not due for renewal.
func (t *devTLS) stored() (*tls.Certificate, *x509.Certificate, bool) {
	raw, err := t.n.dir.ReadFile(DevTLSCertFile)
	if err != nil {
		return nil, nil, false
	}
	var ders [][]byte
	for {
		var blk *pem.Block
		blk, raw = pem.Decode(raw)
		if blk == nil {
			break
		}
		ders = append(ders, blk.Bytes)
	}
	if len(ders) != 2 {
		return nil, nil, false
	}
	leaf, err1 := x509.ParseCertificate(ders[0])
	ca, err2 := x509.ParseCertificate(ders[1])
	if err1 != nil || err2 != nil || gateway.CheckDevCert(leaf, ca, t.key.Public(), t.hosts, time.Now().Add(devCertRenew)) != nil {
		return nil, nil, false
	}
	if t.n.origin {
		own, err := gateway.LoadDevCA(t.n.dir.Path)
		if err != nil || !own.Cert.Equal(ca) {
			return nil, nil, false
		}
	}
	return &tls.Certificate{Certificate: ders, PrivateKey: t.key, Leaf: leaf}, ca, true
}

func (t *devTLS) save(c *tls.Certificate) error {
	return t.n.dir.WriteFile(DevTLSCertFile, gateway.ChainPEM(c.Certificate), 0o644)
}

// start gets the origin's certificate before the node serves browsers,
// if it has none yet (waiting at most devCertWait), and then keeps the
// certificate current in the background.
func (t *devTLS) start(ctx context.Context) {
	if !t.n.origin && !t.fromSwarm.Load() {
		wctx, cancel := context.WithTimeout(ctx, devCertWait)
		if err := t.fromOrigin(wctx); err != nil {
			t.n.log.Warn("no development certificate from the origin yet; serving with this node's own CA's meanwhile", "err", err)
		}
		cancel()
	}
	t.n.Go(t.keep)
}

// keep renews the certificate before it ends, and on other nodes keeps
// asking the origin (with backoff) while it has none from it.
func (t *devTLS) keep(ctx context.Context) {
	wait := 2 * time.Second
	for {
		next := time.Hour
		due := time.Until(t.cur.Load().Leaf.NotAfter) < devCertRenew
		switch {
		case t.n.origin && due:
			if err := t.reissue(); err != nil {
				t.n.log.Error("renewing the development certificate failed", "err", err)
			}
		case !t.n.origin && (due || !t.fromSwarm.Load()):
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := t.fromOrigin(rctx)
			cancel()
			if err != nil {
				t.n.log.Warn("asking the origin for a development certificate", "err", err, "retry in", wait)
				next, wait = wait, min(2*wait, 5*time.Minute)
			} else {
				wait = 2 * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// reissue signs the origin's next certificate with its own CA, same key.
func (t *devTLS) reissue() error {
	ca, err := DevCA(t.n.dir)
	if err != nil {
		return err
	}
	cert, err := ca.IssueWith(t.key, t.hosts, devCertTTL)
	if err != nil {
		return err
	}
	if err := t.save(&cert); err != nil {
		return err
	}
	t.cur.Store(&cert)
	return nil
}

// fromOrigin asks the origin for a certificate for this node's key and
// development names, checks it, saves it and serves with it.
func (t *devTLS) fromOrigin(ctx context.Context) error {
	origin := t.n.dir.Config.OriginAddr
	if origin == "" {
		return errors.New("this node does not know its origin's address (join again)")
	}
	hosts := t.hosts
	req, err := gateway.NewCertRequest(t.key, hosts)
	if err != nil {
		return err
	}
	body, err := t.n.client.TLSCert(ctx, origin, req)
	if err != nil {
		return fmt.Errorf("GetTLSCert from %s: %w", origin, err)
	}
	leaf, ca, err := gateway.DecodeDevCertChain(body)
	if err != nil {
		return err
	}
	if err := gateway.CheckDevCert(leaf, ca, t.key.Public(), hosts, time.Now()); err != nil {
		return err
	}
	cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Raw}, PrivateKey: t.key, Leaf: leaf}
	if err := t.save(cert); err != nil {
		return err
	}
	t.cur.Store(cert)
	t.fromSwarm.Store(true)
	t.n.log.Info("serving a development certificate from the origin's CA", "ca", ca.Subject.CommonName, "hosts", hosts, "expires", leaf.NotAfter)
	return nil
}

// issueTLSCert answers a member's GetTLSCert on the origin: a
// certificate from its development CA for the member's key and names.
func (n *Node) issueTLSCert(_ context.Context, p transport.Peer, raw []byte) ([]byte, error) {
	if !p.HasID {
		return nil, fmt.Errorf("%w: development certificates are for members", proto.ErrUnauthorized)
	}
	if err := n.swarm.VerifyServer(p.ID, p.Credential); err != nil {
		n.log.Warn("refused a development certificate to a non-member", "node", p.ID.String()[:16], "remote", p.Addr, "err", err)
		return nil, fmt.Errorf("%w: %w", proto.ErrUnauthorized, err)
	}
	req, err := gateway.ParseCertRequest(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", proto.ErrBadRequest, err)
	}
	ca, err := DevCA(n.dir)
	if err != nil {
		return nil, err
	}
	der, err := ca.IssueFor(req.Key, req.Hosts, devCertTTL)
	if err != nil {
		return nil, err
	}
	n.log.Info("issued a development certificate", "node", p.ID.String()[:16], "hosts", slices.Clone(req.Hosts))
	return gateway.EncodeDevCertChain(der, ca.Cert.Raw), nil
}

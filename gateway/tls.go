package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// certPollInterval is how often FileCertificates checks its files.
// Tests shorten it before calling FileCertificates.
var certPollInterval = time.Second

// FileCertificates loads a PEM certificate chain and key from certFile
// and keyFile and returns a tls.Config.GetCertificate function serving
// them. A background poll, which stops when ctx ends, checks the files
// once a second and reloads the pair when either changed (modification
// time, size or the file itself, as after a rename). A reload that fails,
// such as a certificate written before its key, is logged and the
// previous pair stays in service; it is retried on the next change.
func FileCertificates(ctx context.Context, certFile, keyFile string, logger *slog.Logger) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	if logger == nil {
		logger = slog.Default()
	}
	certStat, keyStat := certStatPair(certFile, keyFile)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway: load TLS certificate %s / %s: %w", certFile, keyFile, err)
	}
	var current atomic.Pointer[tls.Certificate]
	current.Store(&pair)

	interval := certPollInterval
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			newCert, newKey := certStatPair(certFile, keyFile)
			if certSameStat(certStat, newCert) && certSameStat(keyStat, newKey) {
				continue
			}
			// Remember what was seen even if loading fails, so a broken
			// pair is reported once rather than every poll.
			certStat, keyStat = newCert, newKey
			p, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				logger.Error("gateway: TLS certificate reload failed; keeping the previous certificate",
					"cert", certFile, "key", keyFile, "err", err)
				continue
			}
			current.Store(&p)
			attrs := []any{"cert", certFile}
			if p.Leaf != nil {
				attrs = append(attrs, "subject", p.Leaf.Subject.String(), "not_after", p.Leaf.NotAfter)
			}
			logger.Info("gateway: TLS certificate reloaded", attrs...)
		}
	}()

	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return current.Load(), nil
	}, nil
}

func certStatPair(certFile, keyFile string) (os.FileInfo, os.FileInfo) {
	c, _ := os.Stat(certFile)
	k, _ := os.Stat(keyFile)
	return c, k
}

// certSameStat reports whether a and b (either may be nil for a missing
// file) describe the same unchanged file.
func certSameStat(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// ACMECertificates returns an ACME (Let's Encrypt) certificate manager
// for domains, caching account key and certificates in dir and accepting
// the CA's terms of service; email is the contact for expiry notices
// (may be empty).
//
// The manager proves control of a domain with the TLS-ALPN-01 challenge,
// so the node must be reachable from the internet on port 443 (TCP) under
// every listed name. The challenge arrives as a TLS handshake offering
// only the "acme-tls/1" protocol: a tls.Config built with
// TLSConfig(m.GetCertificate) must also list acme.ALPNProto in NextProtos,
// which the manager's own TLSConfig() does. (HTTP-01 would instead need
// m.HTTPHandler on port 80.)
func ACMECertificates(dir string, domains []string, email string) *autocert.Manager {
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(dir),
		HostPolicy: autocert.HostWhitelist(domains...),
		Email:      email,
	}
}

// TLSConfig returns the TLS configuration for the gateway's TCP listener:
// TLS 1.2 or newer (TLS 1.3 is chosen whenever the client offers it),
// ALPN h2 then http/1.1. The HTTP/3 server derives its own configuration
// from it, replacing NextProtos with h3.
func TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

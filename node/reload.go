package node

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"sync/atomic"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/datadir"
)

// Reloadable is what a running node can change without a restart (the
// settings datadir.Settings marks Reload, but log_level, which the
// command's logger owns).
type Reloadable struct {
	// Web: RateLimit, TrustedProxies, SW, Upstream, UpstreamHost,
	// ProxyPrefixes, InjectSW, InjectSWTree and the TLS files are taken;
	// the rest stays.
	Web WebConfig
	// Seeds are joined through if they are new.
	Seeds []string
}

// fileCerts is the certificate pair in service when TLS comes from
// files; a reload swaps it.
type fileCerts struct {
	get    func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	cancel context.CancelFunc // stops its change poll
}

// loadFileCerts reads a certificate pair (checking the key's mode) and
// starts its change poll; swap puts it in service.
func (n *Node) loadFileCerts(cert, key string) (*fileCerts, error) {
	if err := datadir.CheckTLSKey(key); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(n.ctx)
	get, err := gateway.FileCertificates(ctx, cert, key, n.log.With("component", "tls"))
	if err != nil {
		cancel()
		return nil, err
	}
	return &fileCerts{get: get, cancel: cancel}, nil
}

// certSlot serves whichever fileCerts is current.
type certSlot struct{ cur atomic.Pointer[fileCerts] }

func (s *certSlot) get(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load().get(h) }

func (s *certSlot) swap(fc *fileCerts) {
	if old := s.cur.Swap(fc); old != nil {
		old.cancel()
	}
}

// Reload applies r: the browser-facing handler is rebuilt with the new
// settings and swapped in (requests in flight finish on the old one),
// TLS files are read again even under the same names (a renewed
// certificate serves at once), new seeds are joined. Nothing changes if
// any of it is invalid.
func (n *Node) Reload(r Reloadable) error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	if n.web != nil {
		old := n.cfg.Web
		w := old
		w.RateLimit, w.TrustedProxies, w.SW = r.Web.RateLimit, r.Web.TrustedProxies, r.Web.SW
		w.Upstream, w.ProxyPrefixes, w.InjectSW = r.Web.Upstream, r.Web.ProxyPrefixes, r.Web.InjectSW
		w.InjectSWTree = r.Web.InjectSWTree
		w.UpstreamHost = r.Web.UpstreamHost
		var fc *fileCerts
		switch {
		case (r.Web.TLSCert == "") != (old.TLSCert == ""):
			return errors.New("switching between certificate files and another source needs a restart")
		case r.Web.TLSCert != "":
			var err error
			if fc, err = n.loadFileCerts(r.Web.TLSCert, r.Web.TLSKey); err != nil {
				return err
			}
			w.TLSCert, w.TLSKey = r.Web.TLSCert, r.Web.TLSKey
		}
		n.cfg.Web = w
		if err := n.web.start(n); err != nil {
			n.cfg.Web = old
			if fc != nil {
				fc.cancel()
			}
			return err
		}
		if fc != nil {
			n.certs.swap(fc)
		}
	}
	var fresh []string
	for _, s := range r.Seeds {
		if !slices.Contains(n.seeds, s) {
			fresh = append(fresh, s)
		}
	}
	n.seeds = slices.Clone(r.Seeds)
	if len(fresh) > 0 {
		// The swarm may be whole without them: a seed that does not
		// answer is reported, not fatal.
		if k, err := n.swarm.JoinSeeds(fresh); err != nil {
			n.log.Warn("reload: no new seed answered", "seeds", fresh, "err", err)
		} else {
			n.log.Info("reload: joined through new seeds", "seeds", fresh, "answered", k)
		}
	}
	return nil
}

package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/sw"
	"github.com/grits-cdn/grits/tree"
)

// tlsFor picks the certificate source: files, ACME, or the data
// directory's development CA (created on first use).
func tlsFor(ctx context.Context, n *Node, hosts []string) (*tls.Config, string, error) {
	w := n.cfg.Web
	switch {
	case (w.TLSCert == "") != (w.TLSKey == ""):
		return nil, "", configErrorf("--tls-cert and --tls-key go together")
	case w.TLSCert != "" && len(w.ACMEDomains) > 0:
		return nil, "", configErrorf("--tls-cert and --acme-domain exclude each other")
	case w.TLSCert != "":
		fc, err := n.loadFileCerts(w.TLSCert, w.TLSKey)
		if err != nil {
			return nil, "", err
		}
		n.certs.swap(fc)
		return gateway.TLSConfig(n.certs.get), "certificate from " + w.TLSCert, nil
	case len(w.ACMEDomains) > 0:
		m := gateway.ACMECertificates(n.dir.FilePath("acme"), w.ACMEDomains, w.ACMEEmail)
		cfg := gateway.TLSConfig(m.GetCertificate)
		cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
		return cfg, "ACME certificates for " + strings.Join(w.ACMEDomains, ","), nil
	}
	dt, source, err := newDevTLS(n, hosts)
	if err != nil {
		return nil, "", err
	}
	n.devTLS = dt
	return gateway.TLSConfig(dt.getCertificate), source, nil
}

// DevCA loads the data directory's development CA, creating it for data
// directories made before it existed.
func DevCA(d *datadir.Dir) (*gateway.DevCA, error) {
	ca, err := gateway.LoadDevCA(d.Path)
	if err == nil {
		return ca, nil
	}
	if _, serr := os.Stat(d.FilePath("ca.pem")); !errors.Is(serr, os.ErrNotExist) {
		return nil, err
	}
	return gateway.CreateDevCA(d.Path, tree.PublicKeyOf(d.NodeKey).String()[:16])
}

// registerTag is the registration script as it is inserted into pages.
const registerTag = `<script src="` + sw.RegisterPath + `" defer></script>`

// lateHandler lets the HTTPS sockets be bound (so the URL is known when
// the swarm starts) before the handler that needs the swarm exists.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "starting", http.StatusServiceUnavailable)
}

// web is a node's browser-facing server.
type web struct {
	srv      *gateway.Server
	gw       *gateway.Handler // set by start
	late     *lateHandler
	url      string
	requests atomic.Int64
	bytes    atomic.Int64
	h3       atomic.Int64 // requests that came over HTTP/3
	// Answers by gateway kind ("block", "lookup", "site", "root"): how
	// an operator (and the tests) tell pages from swarm traffic.
	kinds sync.Map // kind → *kindCount

	reports   reportBook
	reportKey []byte // signs the report tokens; one per process, kept across reloads

	// With sw_paths unset, the worker's paths are the tree's top-level
	// names (followTreePaths): swBase is its settings, swTree the tree
	// its paths were read from.
	swMu     sync.Mutex
	swFollow bool
	swTree   blockstore.Hash
	swBase   sw.Settings
}

// report takes a browser's report (its token already checked): kept, and
// logged, only about a volunteer of the swarm and within the reporter's
// quota.
func (wb *web) report(n *Node, client string, r gateway.Report) bool {
	isPeer := func(url string) bool {
		for _, m := range n.swarm.Members() {
			if m.Role != membership.RoleOrigin && m.Meta.URL == url {
				return true
			}
		}
		return false
	}
	if !wb.reports.add(time.Now(), client, r, isPeer) {
		n.log.Debug("a browser's report dropped: not a volunteer's URL, or its reporter's quota is spent", "peer", clip(r.Peer), "client", client)
		return false
	}
	n.log.Warn("a browser reports a volunteer", "peer", r.Peer, "reason", r.Reason, "hash", r.Hash, "client", client)
	return true
}

// clip bounds what a client wrote before it reaches a log line.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

type kindCount struct{ requests, bytes atomic.Int64 }

func (wb *web) count(kind string, n int64) {
	v, ok := wb.kinds.Load(kind)
	if !ok {
		v, _ = wb.kinds.LoadOrStore(kind, new(kindCount))
	}
	k := v.(*kindCount)
	k.requests.Add(1)
	k.bytes.Add(n)
}

// byKind is the counters by kind, for status.
func (wb *web) byKind() map[string]KindStats {
	out := map[string]KindStats{}
	wb.kinds.Range(func(key, v any) bool {
		k := v.(*kindCount)
		out[key.(string)] = KindStats{Requests: k.requests.Load(), Bytes: k.bytes.Load()}
		return true
	})
	return out
}

func (wb *web) reportList() []StatusReport { return wb.reports.list(time.Now()) }

func listenWeb(ctx context.Context, n *Node, advertise, publicURL string) (*web, error) {
	addr := first(n.cfg.Web.HTTPS, n.dir.Config.HTTPSListen, DefaultHTTPS)
	if addr == "off" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, configErrorf("--https %q: want HOST:PORT or off", addr)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h := first(advertise, specificHost(addr)); h != "" && h != "localhost" && h != "127.0.0.1" && h != "::1" {
		hosts = append(hosts, h)
	}
	tlsCfg, source, err := tlsFor(ctx, n, hosts)
	if err != nil {
		return nil, err
	}
	wb := &web{late: &lateHandler{}, reportKey: make([]byte, 32)}
	if _, err := rand.Read(wb.reportKey); err != nil {
		return nil, fmt.Errorf("report token key: %w", err)
	}
	dc := n.dir.Config
	wb.srv, err = gateway.Listen(gateway.ServerConfig{Addr: addr, Handler: wb.late, TLS: tlsCfg, HTTP2: n.cfg.Web.HTTP2,
		WriteTimeout: dc.HTTPWriteTimeout.Duration, BodyTimeout: dc.HTTPBodyTimeout.Duration, BodyMinRate: dc.HTTPBodyMinRate,
		Logger: n.log.With("component", "https")})
	if err != nil {
		return nil, fmt.Errorf("https on %s: %w", addr, err)
	}
	_, port, _ := net.SplitHostPort(wb.srv.Addr())
	wb.url = publicURL
	if wb.url == "" {
		wb.url = "https://" + net.JoinHostPort(first(advertise, specificHost(addr), "localhost"), port)
	}
	if _, err := url.Parse(wb.url); err != nil {
		return nil, configErrorf("--url %q: %v", wb.url, err)
	}
	n.log.Info("https and http/3 for browsers", "addr", wb.srv.Addr(), "url", wb.url, "tls", source)
	return wb, nil
}

// start installs the handler: the grits endpoints on every node, and on
// the origin the site itself, the service worker and the proxy.
func (wb *web) start(n *Node) error {
	w := n.cfg.Web
	swarm := n.swarm
	var (
		followTree bool
		fromTree   blockstore.Hash // the tree the worker's paths were read from
		swBase     sw.Settings
	)
	cfg := gateway.Config{
		Store:     n.store,
		Latest:    n.roots.Latest,
		Site:      n.origin,
		Logger:    n.log.With("component", "gateway"),
		RateLimit: w.RateLimit,
		RateBurst: int(2 * w.RateLimit),
		Peers: func() []gateway.Peer {
			var ps []gateway.Peer
			for _, m := range swarm.Alive() {
				if m.Role != membership.RoleOrigin && m.Meta.URL != "" {
					ps = append(ps, gateway.Peer{URL: m.Meta.URL, Load: int(m.Meta.Load)})
				}
			}
			return ps
		},
		OnServe: func(kind string, size int64) {
			wb.requests.Add(1)
			wb.bytes.Add(size)
			wb.count(kind, size)
		},
	}
	if n.origin {
		cfg.OnReport = func(client string, r gateway.Report) {
			if wb.report(n, client, r) {
				n.metrics.Report()
			}
		}
		cfg.ReportKey = wb.reportKey
		settings := w.SW
		settings.SiteKey = n.dir.Config.SiteKey.String()
		if w.InjectSWTree {
			// The worker's pages from the tree get it too (sw.Settings.Inject).
			cfg.InjectScript = registerTag
			settings.Inject = registerTag
		}
		if err := settings.Validate(); err != nil {
			return configErrorf("--sw-*: %v", err)
		}
		// sw_paths unset: a static site's every path is the tree's (and
		// with the origin down the worker answers even absent paths, with
		// the tree's 404); behind an app only the tree's own names go to
		// volunteers, so the app's routes (private URLs) never do.
		if len(settings.Paths) == 0 && w.Upstream == "" {
			settings.Paths = []string{"/"}
		}
		followTree = len(settings.Paths) == 0
		if followTree {
			// sw_paths unset: the tree's top-level names, kept current
			// by followTreePaths.
			settings.FromTree = true
			settings.Paths, fromTree = n.treePaths(context.Background())
			swBase = settings
		}
		scripts, err := sw.Scripts(settings)
		if err != nil {
			return err
		}
		cfg.Scripts = scripts
		for _, h := range settings.Hosts {
			if cfg.Hosts == nil {
				cfg.Hosts = map[string]string{}
			}
			cfg.Hosts[h.HostName()] = h.Prefix
		}
	}
	var proxy http.Handler
	if w.Upstream != "" {
		if !n.origin {
			return configErrorf("--upstream is for the origin")
		}
		u, err := url.Parse(w.Upstream)
		if err != nil {
			return configErrorf("--upstream %q: %v", w.Upstream, err)
		}
		inject := ""
		if w.InjectSW {
			inject = registerTag
		}
		host := w.UpstreamHost
		if host == "" {
			if pu, err := url.Parse(wb.url); err == nil {
				host = pu.Host
			}
		}
		if proxy, err = gateway.NewProxy(gateway.ProxyConfig{Upstream: u, Host: host, InjectScript: inject, Logger: n.log.With("component", "proxy")}); err != nil {
			return configErrorf("--upstream: %v", err)
		}
		cfg.Fallback = proxy
		// Behind the rate limit like every other path.
		cfg.FallbackPrefixes = w.ProxyPrefixes
	} else if len(w.ProxyPrefixes) > 0 || w.InjectSW {
		return configErrorf("--proxy-prefix and --inject-sw need --upstream")
	}
	for _, p := range w.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return configErrorf("--trusted-proxy %q: want an address or CIDR", p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, pfx)
	}
	h, err := gateway.NewHandler(cfg)
	if err != nil {
		return err
	}
	wb.swMu.Lock()
	wb.gw = h
	wb.swFollow, wb.swTree, wb.swBase = followTree, fromTree, swBase
	wb.swMu.Unlock()
	var handler http.Handler = h
	inner := handler
	handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 3 {
			wb.h3.Add(1)
		}
		inner.ServeHTTP(rw, r)
	})
	handler = n.metrics.HTTP(handler)
	wb.late.h.Store(&handler)
	return nil
}

// CacheStats are the block cache's figures of the handler serving now.
func (wb *web) CacheStats() gateway.CacheStats {
	wb.swMu.Lock()
	h := wb.gw
	wb.swMu.Unlock()
	if h == nil {
		return gateway.CacheStats{}
	}
	return h.CacheStats()
}

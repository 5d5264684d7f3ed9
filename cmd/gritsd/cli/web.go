package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/sw"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// DefaultHTTPS is where gritsd serve answers browsers (TCP for HTTPS,
// UDP for HTTP/3).
const DefaultHTTPS = ":8443"

// webFlags are serve's flags for the browser side.
type webFlags struct {
	https, tlsCert, tlsKey, acmeDomains, acmeEmail, upstream, watch *string
	proxyPrefixes, trustedProxies                                   stringList
	injectSW                                                        *bool
	watchQuiet                                                      *time.Duration
	rateLimit                                                       *float64
	// The service worker the origin serves.
	swScope    *string
	swPaths    *string
	swNavigate *bool
	swCacheMB  *int64
	swRoot     *time.Duration
}

func addWebFlags(c *cmdContext) *webFlags {
	w := &webFlags{
		https:       c.flags.String("https", "", "address for browsers: HTTPS on TCP and HTTP/3 on UDP, same port (default: config https_listen, else "+DefaultHTTPS+"); off disables"),
		tlsCert:     c.flags.String("tls-cert", "", "certificate chain PEM for HTTPS (reloaded when it changes); with --tls-key"),
		tlsKey:      c.flags.String("tls-key", "", "private key PEM for --tls-cert"),
		acmeDomains: c.flags.String("acme-domain", "", "get certificates from Let's Encrypt for these comma-separated names (needs TCP 443 reachable)"),
		acmeEmail:   c.flags.String("acme-email", "", "contact address for ACME"),
		upstream:    c.flags.String("upstream", "", "origin: the site's app server (http://HOST:PORT); paths not in the tree are proxied to it"),
		injectSW:    c.flags.Bool("inject-sw", false, "origin with --upstream: add the service worker's registration script to the app's HTML pages"),
		watch:       c.flags.String("watch", "", "origin: re-import this directory into the tree whenever it changes"),
		watchQuiet:  c.flags.Duration("watch-quiet", 2*time.Second, "with --watch: how long changes must pause before an import"),
		rateLimit:   c.flags.Float64("rate-limit", 0, fmt.Sprintf("HTTP requests per second per client address (burst twice that; default %d; negative: no limit)", gateway.DefaultRateLimit)),
	}
	w.swScope = c.flags.String("sw-scope", "", "origin: the URL path the service worker controls (default /, the whole site)")
	w.swPaths = c.flags.String("sw-paths", "", "origin: comma-separated URL path prefixes the service worker serves from volunteers (default /); other requests go to the network untouched")
	w.swNavigate = c.flags.Bool("sw-navigate", false, "origin: the service worker serves pages (navigations) from volunteers too, the origin only when they cannot (default: pages from the origin, volunteers when it is unreachable)")
	w.swRoot = c.flags.Duration("sw-root-check", 0, fmt.Sprintf("origin: how long a page left open may read an old root before its service worker asks for a newer one (default %v; volunteers' answers bring newer roots sooner)", sw.DefaultRootCheck))
	w.swCacheMB = c.flags.Int64("sw-cache-mb", 0, fmt.Sprintf("origin: MiB of verified blocks the service worker keeps in each browser (default %d)", sw.DefaultCacheBytes>>20))
	c.flags.Var(&w.trustedProxies, "trusted-proxy", "address or CIDR of a reverse proxy in front of this node whose X-Forwarded-For is believed for rate limits (repeatable); others' is ignored")
	c.flags.Var(&w.proxyPrefixes, "proxy-prefix", "origin with --upstream: always proxy paths under this prefix (repeatable), e.g. /api/")
	return w
}

// swSettings are the service worker's settings from the --sw-* flags.
func (w *webFlags) swSettings(siteKey string) (sw.Settings, error) {
	s := sw.Settings{SiteKey: siteKey, Scope: *w.swScope, Navigate: *w.swNavigate, RootCheck: *w.swRoot}
	if s.RootCheck < 0 || s.RootCheck != 0 && (s.RootCheck < sw.MinRootCheck || s.RootCheck > sw.MaxRootCheck) {
		return s, usagef("--sw-root-check %v: want %v to %v", s.RootCheck, sw.MinRootCheck, sw.MaxRootCheck)
	}
	if v := *w.swPaths; v != "" {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				s.Paths = append(s.Paths, p)
			}
		}
		if len(s.Paths) == 0 {
			return s, usagef("--sw-paths %q: no path prefix", v)
		}
	}
	if mb := *w.swCacheMB; mb != 0 {
		if mb < 0 || mb > sw.MaxCacheBytes>>20 {
			return s, usagef("--sw-cache-mb %d: want 1 to %d", mb, sw.MaxCacheBytes>>20)
		}
		s.CacheBytes = mb << 20
	}
	if err := s.Validate(); err != nil {
		return s, usagef("--sw-*: %v", err)
	}
	return s, nil
}

// tlsFor picks the certificate source: files, ACME, or the data
// directory's development CA (created on first use).
func tlsFor(ctx context.Context, c *cmdContext, d *datadir.Dir, w *webFlags, hosts []string) (*tls.Config, string, error) {
	switch {
	case (*w.tlsCert == "") != (*w.tlsKey == ""):
		return nil, "", usagef("--tls-cert and --tls-key go together")
	case *w.tlsCert != "" && *w.acmeDomains != "":
		return nil, "", usagef("--tls-cert and --acme-domain exclude each other")
	case *w.tlsCert != "":
		get, err := gateway.FileCertificates(ctx, *w.tlsCert, *w.tlsKey, c.logger.With("component", "tls"))
		if err != nil {
			return nil, "", err
		}
		return gateway.TLSConfig(get), "certificate from " + *w.tlsCert, nil
	case *w.acmeDomains != "":
		domains := strings.Split(*w.acmeDomains, ",")
		m := gateway.ACMECertificates(d.FilePath("acme"), domains, *w.acmeEmail)
		cfg := gateway.TLSConfig(m.GetCertificate)
		cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
		return cfg, "ACME certificates for " + *w.acmeDomains, nil
	}
	ca, err := devCA(d)
	if err != nil {
		return nil, "", err
	}
	cert, err := ca.Issue(hosts, 90*24*time.Hour)
	if err != nil {
		return nil, "", err
	}
	return gateway.TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }),
		"development CA " + d.FilePath("ca.pem") + " (" + ca.TrustHint(d.FilePath("ca.pem")) + ")", nil
}

// devCA loads the data directory's development CA, creating it for data
// directories made before it existed.
func devCA(d *datadir.Dir) (*gateway.DevCA, error) {
	ca, err := gateway.LoadDevCA(d.Path)
	if err == nil {
		return ca, nil
	}
	if _, serr := os.Stat(d.FilePath("ca.pem")); !errors.Is(serr, os.ErrNotExist) {
		return nil, err
	}
	return gateway.CreateDevCA(d.Path, tree.PublicKeyOf(d.NodeKey).String()[:16])
}

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
	late     *lateHandler
	url      string
	requests atomic.Int64
	bytes    atomic.Int64
	h3       atomic.Int64 // requests that came over HTTP/3
	// Answers by gateway kind ("block", "lookup", "site", "root"): how
	// an operator (and the tests) tell pages from swarm traffic.
	kinds sync.Map // kind → *kindCount

	mu      sync.Mutex
	reports map[string]*StatusReport // by volunteer URL
}

// maxReported bounds the volunteers the origin keeps reports about.
const maxReported = 256

func (wb *web) report(c *cmdContext, client string, r gateway.Report) {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if wb.reports == nil {
		wb.reports = map[string]*StatusReport{}
	}
	rep, ok := wb.reports[r.Peer]
	if !ok {
		if len(wb.reports) >= maxReported {
			return
		}
		rep = &StatusReport{Peer: r.Peer}
		wb.reports[r.Peer] = rep
	}
	rep.Count++
	rep.Last, rep.Reason, rep.Hash = time.Now(), r.Reason, r.Hash
	c.logger.Warn("a browser reports a volunteer", "peer", r.Peer, "reason", r.Reason, "hash", r.Hash, "client", client)
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

func (wb *web) reportList() []StatusReport {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	var out []StatusReport
	for _, r := range wb.reports {
		out = append(out, *r)
	}
	return out
}

func listenWeb(ctx context.Context, c *cmdContext, d *datadir.Dir, w *webFlags, advertise, publicURL string) (*web, error) {
	addr := first(*w.https, d.Config.HTTPSListen, DefaultHTTPS)
	if addr == "off" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usagef("--https %q: want HOST:PORT or off", addr)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h := first(advertise, specificHost(addr)); h != "" && h != "localhost" && h != "127.0.0.1" && h != "::1" {
		hosts = append(hosts, h)
	}
	tlsCfg, source, err := tlsFor(ctx, c, d, w, hosts)
	if err != nil {
		return nil, err
	}
	wb := &web{late: &lateHandler{}}
	wb.srv, err = gateway.Listen(gateway.ServerConfig{Addr: addr, Handler: wb.late, TLS: tlsCfg, Logger: c.logger.With("component", "https")})
	if err != nil {
		return nil, fmt.Errorf("https on %s: %w", addr, err)
	}
	_, port, _ := net.SplitHostPort(wb.srv.Addr())
	wb.url = publicURL
	if wb.url == "" {
		wb.url = "https://" + net.JoinHostPort(first(advertise, specificHost(addr), "localhost"), port)
	}
	if _, err := url.Parse(wb.url); err != nil {
		return nil, usagef("--url %q: %v", wb.url, err)
	}
	c.logger.Info("https and http/3 for browsers", "addr", wb.srv.Addr(), "url", wb.url, "tls", source)
	return wb, nil
}

// start installs the handler: the grits endpoints on every node, and on
// the origin the site itself, the service worker and the proxy.
func (wb *web) start(c *cmdContext, d *datadir.Dir, w *webFlags, store tree.Getter, roots transport.Roots, swarm *membership.Swarm) error {
	origin := d.Config.Role == datadir.RoleOrigin
	cfg := gateway.Config{
		Store:     store,
		Latest:    roots.Latest,
		Site:      origin,
		Logger:    c.logger.With("component", "gateway"),
		RateLimit: *w.rateLimit,
		RateBurst: int(2 * *w.rateLimit),
		Peers: func() []gateway.Peer {
			var ps []gateway.Peer
			for _, m := range swarm.Alive() {
				if m.Role != membership.RoleOrigin && m.Meta.URL != "" {
					ps = append(ps, gateway.Peer{URL: m.Meta.URL, Load: int(m.Meta.Load)})
				}
			}
			return ps
		},
		OnServe: func(kind string, n int64) {
			wb.requests.Add(1)
			wb.bytes.Add(n)
			wb.count(kind, n)
		},
	}
	if origin {
		cfg.OnReport = func(client string, r gateway.Report) { wb.report(c, client, r) }
		settings, err := w.swSettings(d.Config.SiteKey.String())
		if err != nil {
			return err
		}
		scripts, err := sw.Scripts(settings)
		if err != nil {
			return err
		}
		cfg.Scripts = scripts
	}
	var proxy http.Handler
	if *w.upstream != "" {
		if !origin {
			return usagef("--upstream is for the origin")
		}
		u, err := url.Parse(*w.upstream)
		if err != nil {
			return usagef("--upstream %q: %v", *w.upstream, err)
		}
		inject := ""
		if *w.injectSW {
			inject = `<script src="` + sw.RegisterPath + `" defer></script>`
		}
		if proxy, err = gateway.NewProxy(gateway.ProxyConfig{Upstream: u, InjectScript: inject, Logger: c.logger.With("component", "proxy")}); err != nil {
			return usagef("--upstream: %v", err)
		}
		cfg.Fallback = proxy
	} else if len(w.proxyPrefixes) > 0 || *w.injectSW {
		return usagef("--proxy-prefix and --inject-sw need --upstream")
	}
	for _, p := range w.trustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return usagef("--trusted-proxy %q: want an address or CIDR", p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, pfx)
	}
	h, err := gateway.NewHandler(cfg)
	if err != nil {
		return err
	}
	var handler http.Handler = h
	if proxy != nil && len(w.proxyPrefixes) > 0 {
		prefixes := w.proxyPrefixes
		handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			for _, p := range prefixes {
				if strings.HasPrefix(r.URL.Path, p) {
					proxy.ServeHTTP(rw, r)
					return
				}
			}
			h.ServeHTTP(rw, r)
		})
	}
	inner := handler
	handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 3 {
			wb.h3.Add(1)
		}
		inner.ServeHTTP(rw, r)
	})
	wb.late.h.Store(&handler)
	return nil
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

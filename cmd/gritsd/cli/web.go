package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/node"
	"github.com/grits-cdn/grits/sw"
)

// DefaultHTTPS is where gritsd serve answers browsers (TCP for HTTPS,
// UDP for HTTP/3).
const DefaultHTTPS = node.DefaultHTTPS

// webFlags are serve's flags for the browser side.
type webFlags struct {
	https, tlsCert, tlsKey, acmeDomains, acmeEmail, upstream, watch *string
	http2, upstreamHost                                             *string
	proxyPrefixes, trustedProxies, mediaHosts                       stringList
	injectSW, injectSWTree                                          *bool
	watchQuiet                                                      *time.Duration
	rateLimit                                                       *float64
	// The service worker the origin serves.
	swScope    *string
	swPaths    *string
	swNavigate optBool
	swCacheMB  *int64
	swRoot     *time.Duration
}

func addWebFlags(c *cmdContext) *webFlags {
	w := &webFlags{
		https:        c.flags.String("https", "", "address for browsers: HTTPS on TCP and HTTP/3 on UDP, same port (default: config https_listen, else "+DefaultHTTPS+"); off disables"),
		tlsCert:      c.flags.String("tls-cert", "", "certificate chain PEM for HTTPS (reloaded when it changes); with --tls-key"),
		tlsKey:       c.flags.String("tls-key", "", "private key PEM for --tls-cert"),
		acmeDomains:  c.flags.String("acme-domain", "", "get certificates from Let's Encrypt for these comma-separated names (needs TCP 443 reachable)"),
		acmeEmail:    c.flags.String("acme-email", "", "contact address for ACME"),
		upstream:     c.flags.String("upstream", "", "origin: the site's app server (http://HOST:PORT); paths not in the tree are proxied to it"),
		upstreamHost: c.flags.String("upstream-host", "", "origin with --upstream: the Host the app receives (default: the host of this node's public URL); never the browser's"),
		injectSW:     c.flags.Bool("inject-sw", false, "origin with --upstream: add the service worker's registration script to the app's HTML pages"),
		injectSWTree: c.flags.Bool("inject-sw-tree", false, "origin: add the service worker's registration script to the HTML pages served from the tree"),
		watch:        c.flags.String("watch", "", "origin: re-import this directory into the tree whenever it changes"),
		watchQuiet:   c.flags.Duration("watch-quiet", 2*time.Second, "with --watch: how long changes must pause before an import"),
		http2:        c.flags.String("http2", "", "HTTP/2 server: grits (the gateway's own, default) or go (Go's net/http server)"),
		rateLimit:    c.flags.Float64("rate-limit", 0, fmt.Sprintf("HTTP requests per second per client address (burst twice that; default %d; negative: no limit)", gateway.DefaultRateLimit)),
	}
	w.swScope = c.flags.String("sw-scope", "", "origin: the URL path the service worker controls (default /, the whole site)")
	w.swPaths = c.flags.String("sw-paths", "", "origin: comma-separated URL path prefixes the service worker serves from volunteers (default /); other requests go to the network untouched")
	c.flags.Var(&w.swNavigate, "sw-navigate", "origin: the service worker serves pages (navigations) from its cache and volunteers too, the origin only when they cannot (default: true for a static site, false with --upstream: pages from the origin, volunteers when it is unreachable)")
	w.swRoot = c.flags.Duration("sw-root-check", 0, fmt.Sprintf("origin: how long a page left open may read an old root before its service worker asks for a newer one (default %v; volunteers' answers bring newer roots sooner)", sw.DefaultRootCheck))
	w.swCacheMB = c.flags.Int64("sw-cache-mb", 0, fmt.Sprintf("origin: MiB of verified blocks the service worker keeps in each browser (default %d)", sw.DefaultCacheBytes>>20))
	c.flags.Var(&w.trustedProxies, "trusted-proxy", "address or CIDR of a reverse proxy in front of this node whose X-Forwarded-For is believed for rate limits (repeatable); others' is ignored")
	c.flags.Var(&w.mediaHosts, "media-host", "origin: another host name the tree is served under, https://HOST[:PORT]=/TREE/PATH (repeatable); the worker serves its URLs from volunteers")
	c.flags.Var(&w.proxyPrefixes, "proxy-prefix", "origin with --upstream: always proxy paths under this prefix (repeatable), e.g. /api/")
	return w
}

// swSettings are the service worker's settings from the --sw-* flags.
func (w *webFlags) swSettings() (sw.Settings, error) {
	var paths []string
	if v := *w.swPaths; v != "" {
		paths = strings.Split(v, ",")
		for i := range paths {
			paths[i] = strings.TrimSpace(paths[i])
		}
	}
	return swSettingsOf(*w.swScope, paths, navigateOf(w.swNavigate.v, *w.upstream), *w.swCacheMB, *w.swRoot, w.mediaHosts)
}

// optBool is a boolean flag that may be left unset, where unset has a
// default of its own (--sw-navigate's depends on --upstream).
type optBool struct{ v *bool }

func (o *optBool) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.FormatBool(*o.v)
}

func (o *optBool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	o.v = &b
	return nil
}

func (o *optBool) IsBoolFlag() bool { return true }

package cli

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/sdnotify"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/node"
)

// DefaultListen is where gritsd serve answers grits/1 (UDP); gossip
// defaults to the next port.
const DefaultListen = node.DefaultListen

func runServe(ctx context.Context, c *cmdContext) error {
	listenFlag := c.flags.String("listen", "", "UDP address for the grits/1 protocol (default: config listen, else "+DefaultListen+")")
	gossipFlag := c.flags.String("gossip", "", "address for swarm gossip, TCP and UDP (default: config gossip, else the listen port + 1)")
	advertiseFlag := c.flags.String("advertise", "", "host other nodes reach this one at (default: config advertise, else the listen host)")
	urlFlag := c.flags.String("url", "", "public HTTPS base URL of this node for browsers (default: config public_url)")
	profileFlag := c.flags.String("gossip-profile", "", "gossip timers: lan, wan or local (default: config gossip_profile, else lan)")
	mountFlag := c.flags.String("mount", "", "mount the tree here: read-write on the origin, read-only and lazy elsewhere")
	mountAt := c.flags.String("mount-at", "/", "origin: the tree path --mount shows")
	mountQuiet := c.flags.Duration("mount-quiet", time.Second, "origin: commit the mount's changes once it has been quiet this long")
	publish := c.flags.String("publish", "", "origin: which entries of the mount are published: world-readable (default) or all")
	mountOwner := c.flags.String("mount-owner", "", "USER[:GROUP] the mount's entries belong to (default: yours)")
	noReaddirplus := c.flags.Bool("no-readdirplus", false, "read-only mount: list directories by name only (for huge directories)")
	adminFlag := c.flags.String("admin", "", "TCP address for metrics, /healthz, /readyz and the dashboard (default: config admin_listen, else 127.0.0.1 at the listen port + 2); off disables")
	wflags := addWebFlags(c)
	if err := c.parse(0, 0); err != nil {
		return err
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	// gritsd.toml fills in the flags the command line left out.
	given := explicitFlags(c.flags)
	if err := applyConfig(c.flags, &d.Config); err != nil {
		return err
	}
	eff, err := effectiveConfig(c.flags, d.Config, given)
	if err != nil {
		return usagef("%v", err)
	}
	// After gritsd.toml filled the flags in.
	mc, err := mountConfig(*mountFlag, *mountAt, *mountQuiet, *publish, *mountOwner)
	if err != nil {
		return err
	}
	mc.ReadDirPlus = !*noReaddirplus
	settings, err := wflags.swSettings()
	if err != nil {
		return err
	}
	if err := c.setLogging("info"); err != nil {
		return err
	}
	if h := *wflags.http2; h != "" && h != gateway.HTTP2Grits && h != gateway.HTTP2Go {
		return usagef("--http2 %q: want %s or %s", h, gateway.HTTP2Grits, gateway.HTTP2Go)
	}
	cfg := node.Config{Dir: d, Listen: *listenFlag, Gossip: *gossipFlag, Advertise: *advertiseFlag, URL: *urlFlag,
		Profile: membership.Profile(*profileFlag), Admin: *adminFlag, Watch: *wflags.watch, WatchQuiet: *wflags.watchQuiet, Logger: c.logger,
		Web: node.WebConfig{HTTPS: *wflags.https, TLSCert: *wflags.tlsCert, TLSKey: *wflags.tlsKey, ACMEEmail: *wflags.acmeEmail,
			Upstream: *wflags.upstream, UpstreamHost: *wflags.upstreamHost, ProxyPrefixes: wflags.proxyPrefixes, InjectSW: *wflags.injectSW, InjectSWTree: *wflags.injectSWTree,
			TrustedProxies: wflags.trustedProxies, RateLimit: *wflags.rateLimit, SW: settings, HTTP2: *wflags.http2}, Mount: mc}
	if v := *wflags.acmeDomains; v != "" {
		cfg.Web.ACMEDomains = strings.Split(v, ",")
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return nodeErr(err)
	}
	defer n.Close()
	// Scripts and tests wait for these lines to know the ports.
	c.errorf("gossip on %s\n", n.GossipAddr())
	if a := n.HTTPSAddr(); a != "" {
		c.errorf("https on %s (%s)\n", a, n.URL())
	}
	if m := n.Mount(); m != nil {
		mode := "read-only"
		if n.IsOrigin() {
			mode = "read-write"
		}
		c.errorf("mounted %s at %s (%s)\n", mc.At, m.Dir(), mode)
	}
	if a := n.AdminAddr(); a != "" {
		c.errorf("admin on %s (http://%s/)\n", a, a)
	}
	c.errorf("listening on %s\n", n.ListenAddr())

	// systemd (Type=notify) learns that the node serves, reloads and
	// stops; SIGHUP re-reads gritsd.toml.
	log := c.logger.With("component", "service")
	notify(c, log, sdnotify.Ready)
	// STOPPING=1 as soon as a signal asks us to stop, or when we stop on
	// our own: once either way.
	stopping := context.AfterFunc(ctx, func() { notify(c, log, sdnotify.Stopping) })
	defer func() {
		if stopping() {
			notify(c, log, sdnotify.Stopping)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.Hangup != nil {
		r := &reloader{c: c, n: n, dir: d.Path, fs: c.flags, given: given, cur: eff, log: c.logger.With("component", "reload")}
		done := make(chan struct{})
		go func() { defer close(done); r.run(ctx, c.Hangup) }()
		defer func() { cancel(); <-done }()
	}
	return nodeErr(n.Serve(ctx))
}

// nodeErr turns the node's complaints about settings into usage errors.
func nodeErr(err error) error {
	var ce *node.ConfigError
	if errors.As(err, &ce) {
		return usagef("%s", ce.Msg)
	}
	return err
}

package node

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/sw"
)

// Defaults for the addresses a node listens on.
const (
	// DefaultListen is where a node answers grits/1 (UDP); gossip
	// defaults to the next port.
	DefaultListen = ":7433"
	// DefaultHTTPS is where a node answers browsers (TCP for HTTPS, UDP
	// for HTTP/3).
	DefaultHTTPS = ":8443"
	// DefaultGrits1RateLimit is grits/1 requests per second per client
	// address outside the swarm, as the HTTP side's default.
	DefaultGrits1RateLimit = 200
)

// Config is what Start needs beyond the data directory's own config.
// Empty fields take the data directory's setting, then the default; the
// command line fills them from its flags, which therefore win.
type Config struct {
	// Dir is the open data directory. The caller closes it after the
	// node is closed.
	Dir *datadir.Dir
	// Listen is the UDP address for grits/1.
	Listen string
	// Gossip is the TCP and UDP address for memberlist (default: the
	// listen port + 1).
	Gossip string
	// Advertise is the host other nodes reach this one at.
	Advertise string
	// URL is this node's public HTTPS base URL for browsers.
	URL string
	// Profile picks the gossip timers.
	Profile membership.Profile
	// Admin is the TCP address of the admin listener (metrics, health,
	// the dashboard); "off" disables it. Default: loopback at the
	// grits/1 port + 2 (127.0.0.1:7435).
	Admin string
	Web   WebConfig
	// Watch, on the origin, is a directory re-imported whenever it
	// changes, once it has been quiet for WatchQuiet.
	Watch      string
	WatchQuiet time.Duration
	// Mount, if its Dir is set, mounts the tree: read-write on the
	// origin, read-only and lazy elsewhere.
	Mount  MountConfig
	Logger *slog.Logger
}

// WebConfig is the browser-facing side.
type WebConfig struct {
	// HTTPS is the address for HTTPS (TCP) and HTTP/3 (UDP); "off"
	// disables both.
	HTTPS string
	// TLSCert and TLSKey name PEM files (reloaded when they change);
	// ACMEDomains gets certificates from Let's Encrypt instead; with
	// neither, the data directory's development CA issues one.
	TLSCert, TLSKey string
	ACMEDomains     []string
	ACMEEmail       string
	// Upstream, on the origin, is the site's app: paths not in the tree
	// are proxied to it. ProxyPrefixes are always proxied; InjectSW adds
	// the worker's registration script to the app's HTML.
	Upstream      string
	ProxyPrefixes []string
	// UpstreamHost is the Host the app receives; "" is the host of the
	// node's public URL.
	UpstreamHost string
	InjectSW     bool
	// InjectSWTree, on the origin, adds the registration script to the
	// HTML pages it serves from the tree.
	InjectSWTree bool
	// TrustedProxies are addresses or CIDRs whose X-Forwarded-For is
	// believed for rate limits.
	TrustedProxies []string
	// RateLimit is HTTP requests per second per client (0: the
	// gateway's default, negative: none).
	RateLimit float64
	// SW holds the service worker's settings (the origin fills in its
	// site key).
	SW sw.Settings
	// HTTP2 picks the HTTP/2 server (gateway.HTTP2Grits, the default, or
	// gateway.HTTP2Go).
	HTTP2 string
}

// ConfigError is a setting the caller gave that cannot work; the command
// line reports it as a usage error.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

func configErrorf(format string, args ...any) error {
	return &ConfigError{fmt.Sprintf(format, args...)}
}

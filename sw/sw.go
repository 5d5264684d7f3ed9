// Package sw holds the service worker that browsers run for a grits
// site, and the small script a page includes to register it. Both are
// plain JavaScript embedded in gritsd; the origin serves them. The
// worker's logic is one ES module (sw-lib.js, LibPath) that grits' own
// worker and an app's own worker import alike; its public API is typed
// in types/sw-lib.d.ts (LibTypesPath).
package sw

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

//go:embed grits-sw.js sw-lib.js types/sw-lib.d.ts register.js js/blake3.js js/grits.js js/peers.js js/cache.js js/types.js js/respond.js
var files embed.FS

// modules are the worker's ES modules, served under ModulePath.
var modules = []string{"blake3.js", "grits.js", "peers.js", "cache.js", "types.js", "respond.js"}

// Paths the origin serves the scripts at. The worker's path decides its
// maximum scope: at the root it may control the whole site.
const (
	WorkerPath   = "/grits-sw.js"
	RegisterPath = "/grits/v1/register.js"
	// LibPath is the worker's logic as an ES module, the origin's
	// settings written in: /grits-sw.js imports it, and so does an app's
	// own module worker (docs/integrations/mastodon.md).
	LibPath = "/grits/v1/sw-lib.js"
	// LibTypesPath is LibPath's TypeScript declarations.
	LibTypesPath = "/grits/v1/sw-lib.d.ts"
	// ModulePath is where the worker's modules (BLAKE3, verification,
	// peer scoring, block cache, media types) are served from; the worker imports
	// them by these paths.
	ModulePath = "/grits/v1/js/"
)

// Limits on Settings.
const (
	DefaultCacheBytes = 256 << 20
	MinCacheBytes     = 1 << 20
	MaxCacheBytes     = 64 << 30
	MaxPaths          = 64
	// MaxTreePaths bounds the paths taken from the tree's top level
	// (TreePaths); a tree with more top-level names serves "/" instead.
	MaxTreePaths = 256

	// DefaultRootCheck is how long an open page may keep reading an old
	// root: a worker that has heard nothing newer from the origin for
	// that long asks (one conditional request, a 304 when nothing
	// changed); volunteers' answers bring newer roots for free.
	DefaultRootCheck = 10 * time.Second
	MinRootCheck     = time.Second
	MaxRootCheck     = 24 * time.Hour
)

// MaxHosts bounds Settings.Hosts.
const MaxHosts = 16

// Host is another name the site's files are served under, such as a
// media host (Mastodon's S3_ALIAS_HOST): pages name its URLs, the origin
// serves them from a subtree, and the worker answers them from
// volunteers like the site's own.
type Host struct {
	// Origin is how pages name it: https://HOST or https://HOST:PORT.
	Origin string `json:"origin"`
	// Prefix is the tree path its URL paths start from: /system makes
	// ORIGIN/a/b.png the tree's /system/a/b.png. Default /.
	Prefix string `json:"prefix"`
}

// ParseHost reads a host setting, "https://HOST[:PORT]" or
// "https://HOST[:PORT]=/TREE/PATH".
func ParseHost(s string) (Host, error) {
	origin, prefix, _ := strings.Cut(s, "=")
	h := Host{Origin: strings.TrimSpace(origin), Prefix: strings.TrimSpace(prefix)}
	if h.Prefix == "" {
		h.Prefix = "/"
	}
	return h, h.validate()
}

// HostName is the Host header value browsers send to h: the host, with
// the port unless it is 443, lower case.
func (h Host) HostName() string {
	u, err := url.Parse(h.Origin)
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(u.Host, ":443"))
}

func (h Host) validate() error {
	u, err := url.Parse(h.Origin)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil ||
		strings.ContainsAny(h.Origin, unsafeChars) {
		return fmt.Errorf("media host %q: want https://HOST or https://HOST:PORT", h.Origin)
	}
	if !strings.HasPrefix(h.Prefix, "/") || strings.ContainsAny(h.Prefix, unsafeChars+"?#") || strings.Contains(h.Prefix+"/", "/../") {
		return fmt.Errorf("media host %s: tree path %q: want a path starting with /", h.Origin, h.Prefix)
	}
	return nil
}

// Settings are written into the worker the origin serves.
type Settings struct {
	SiteKey string // "ed25519-<hex>"
	Scope   string // default "/"
	// Paths are the URL path prefixes the worker serves from the swarm
	// (default ["/"]); other requests go to the network untouched, such
	// as an app's dynamic routes.
	Paths []string
	// FromTree says Paths are the tree's top-level names (TreePaths,
	// when no paths were configured): an empty list then serves nothing
	// from the swarm (no tree yet), rather than "/".
	FromTree bool
	// Navigate serves navigations (pages) from the swarm too, the origin
	// only when the swarm cannot. Without it pages come from the origin,
	// and from the swarm only when the origin is unreachable.
	Navigate bool
	// CacheBytes bounds the worker's cache of verified blocks (default
	// DefaultCacheBytes).
	CacheBytes int64
	// RootCheck is how often the worker asks the origin for a newer root
	// while pages are open (default DefaultRootCheck).
	RootCheck time.Duration
	// Hosts are other names the site's files are served under (media
	// hosts); the worker serves their URLs from volunteers too.
	Hosts []Host
	// Inject, if set, is the tag the origin inserts into the HTML pages
	// it serves from the tree (inject_sw_tree); the worker inserts it
	// into the pages it serves from the tree the same way, so a page is
	// the same whoever answers.
	Inject string
}

// unsafeChars may not appear in the values written into the scripts.
const unsafeChars = "'\"\\\n\r<>` \t"

// Validate checks the settings; Scripts calls it.
func (s Settings) Validate() error {
	if s.Scope != "" && (!strings.HasPrefix(s.Scope, "/") || strings.ContainsAny(s.Scope, unsafeChars)) {
		return fmt.Errorf("service worker scope %q: want a URL path starting with /", s.Scope)
	}
	// The site key lands inside JavaScript string literals.
	if strings.ContainsAny(s.SiteKey, unsafeChars) {
		return fmt.Errorf("site key %q: not a key", s.SiteKey)
	}
	maxPaths := MaxPaths
	if s.FromTree {
		maxPaths = MaxTreePaths
	}
	if len(s.Paths) > maxPaths {
		return fmt.Errorf("service worker paths: %d, at most %d", len(s.Paths), maxPaths)
	}
	for _, p := range s.Paths {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, unsafeChars+"?#") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
			return fmt.Errorf("service worker path prefix %q: want a URL path starting with /", p)
		}
	}
	if s.RootCheck != 0 && (s.RootCheck < MinRootCheck || s.RootCheck > MaxRootCheck) {
		return fmt.Errorf("service worker root check every %v: want %v to %v", s.RootCheck, MinRootCheck, MaxRootCheck)
	}
	if len(s.Hosts) > MaxHosts {
		return fmt.Errorf("media hosts: %d, at most %d", len(s.Hosts), MaxHosts)
	}
	for _, h := range s.Hosts {
		if err := h.validate(); err != nil {
			return err
		}
	}
	if s.CacheBytes != 0 && (s.CacheBytes < MinCacheBytes || s.CacheBytes > MaxCacheBytes) {
		return fmt.Errorf("service worker cache of %d bytes: want %d MiB to %d GiB", s.CacheBytes, MinCacheBytes>>20, MaxCacheBytes>>30)
	}
	return nil
}

// TopName is a name at the top of a site's tree.
type TopName struct {
	Name string
	Dir  bool
}

// TreePaths are the URL path prefixes of a tree's top-level names, for a
// worker whose paths were not configured: a directory as "/name/", a
// file as "/name", spelled as a browser's URL.pathname spells them (the
// WHATWG path percent-encode set), so that an app's dynamic routes
// beside the tree (its /api/, /@user pages) never reach volunteers as
// lookups. ok is false (use "/") when there are more than MaxTreePaths.
// A name whose URL the worker could not hold ("'", "\\") is left to the
// origin.
func TreePaths(names []TopName) (paths []string, ok bool) {
	paths = []string{}
	for _, n := range names {
		if strings.ContainsAny(n.Name, "'\\") {
			continue
		}
		p := "/" + pathnameEscape(n.Name)
		if n.Dir {
			p += "/"
		}
		paths = append(paths, p)
	}
	if len(paths) > MaxTreePaths {
		return []string{"/"}, false
	}
	return paths, true
}

// pathnameEscape percent-encodes what a browser's URL parser encodes in
// a path: controls, space, non-ASCII bytes and "#<>?`{}.
func pathnameEscape(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte("\"#<>?`{}", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// config is GRITS_CONFIG, the settings as the worker reads them.
type config struct {
	SiteKey    string   `json:"siteKey"`
	Scope      string   `json:"scope"`
	Paths      []string `json:"paths"`
	Navigate   bool     `json:"navigate"`
	CacheBytes int64    `json:"cacheBytes"`
	// RootCheckMs is Settings.RootCheck in milliseconds.
	RootCheckMs int64 `json:"rootCheckMs"`
	// Hosts: the media hosts, origins without a trailing slash.
	Hosts []Host `json:"hosts,omitempty"`
	// Inject: Settings.Inject.
	Inject string `json:"inject,omitempty"`
	// Version names the embedded scripts and these settings: any change
	// to either changes the worker's bytes, so browsers install the new
	// worker, and the worker can say which one it is.
	Version string `json:"version,omitempty"`
}

// Version is a hash of every embedded script, the worker's version.
func Version() string {
	h := sha256.New()
	for _, name := range append([]string{"grits-sw.js", "sw-lib.js", "types/sw-lib.d.ts", "register.js"}, prefixed(modules)...) {
		b, err := files.ReadFile(name)
		if err != nil {
			panic(err) // embedded: cannot happen
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func prefixed(ms []string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = "js/" + m
	}
	return out
}

// Scripts returns the routes and bodies to serve: the worker library
// with the settings written in, the standalone worker (which names the
// same version, so a change of settings changes its bytes too and
// browsers update it), the registration script, the library's types and
// the worker's modules.
func Scripts(s Settings) (map[string][]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Scope == "" {
		s.Scope = "/"
	}
	switch {
	case s.FromTree && s.Paths == nil:
		s.Paths = []string{} // nothing: the worker reads null as "/"
	case len(s.Paths) == 0 && !s.FromTree:
		s.Paths = []string{"/"}
	}
	if s.CacheBytes == 0 {
		s.CacheBytes = DefaultCacheBytes
	}
	if s.RootCheck == 0 {
		s.RootCheck = DefaultRootCheck
	}
	w, err := files.ReadFile("grits-sw.js")
	if err != nil {
		return nil, err
	}
	lib, err := files.ReadFile("sw-lib.js")
	if err != nil {
		return nil, err
	}
	types, err := files.ReadFile("types/sw-lib.d.ts")
	if err != nil {
		return nil, err
	}
	r, err := files.ReadFile("register.js")
	if err != nil {
		return nil, err
	}
	// JSON is a JavaScript expression (json.Marshal escapes <, > and &).
	cf := config{SiteKey: s.SiteKey, Scope: s.Scope, Paths: s.Paths, Navigate: s.Navigate, CacheBytes: s.CacheBytes,
		RootCheckMs: s.RootCheck.Milliseconds(), Inject: s.Inject}
	for _, h := range s.Hosts {
		// As a browser's URL.origin names it: lower case, no :443.
		cf.Hosts = append(cf.Hosts, Host{Origin: "https://" + h.HostName(), Prefix: h.Prefix})
	}
	settings, err := json.Marshal(cf)
	if err != nil {
		return nil, err
	}
	v := sha256.Sum256(append([]byte(Version()+"\n"), settings...))
	cf.Version = hex.EncodeToString(v[:16])
	c, err := json.Marshal(cf)
	if err != nil {
		return nil, err
	}
	cfg := fmt.Appendf(nil, "const GRITS_CONFIG = %s;\n", c)
	r = bytes.ReplaceAll(r, []byte("__GRITS_SCOPE__"), []byte(s.Scope))
	out := map[string][]byte{
		WorkerPath:   append(fmt.Appendf(nil, "// grits service worker, version %s\n", cf.Version), w...),
		LibPath:      append(cfg, lib...),
		LibTypesPath: types,
		RegisterPath: r,
	}
	for _, m := range modules {
		b, err := files.ReadFile("js/" + m)
		if err != nil {
			return nil, err
		}
		out[ModulePath+m] = b
	}
	return out, nil
}

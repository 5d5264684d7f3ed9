package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/sw"
)

// applyConfig gives every flag the command line left out the value its
// setting has in gritsd.toml: the code behind the flags then sees the
// effective configuration, and a flag given on the command line wins.
func applyConfig(fs *flag.FlagSet, cfg *datadir.Config) error {
	given := explicitFlags(fs)
	for _, s := range datadir.Settings() {
		fl := fs.Lookup(s.Flag)
		if s.Flag == "" || fl == nil || given[s.Flag] {
			continue
		}
		vals := cfg.Text(s.Key)
		if vals == nil {
			continue
		}
		if _, repeated := fl.Value.(*stringList); !repeated {
			vals = []string{strings.Join(vals, ",")}
		}
		for _, v := range vals {
			if err := fl.Value.Set(v); err != nil {
				return fmt.Errorf("%s: %s = %q: %w", datadir.ConfigFile, s.Key, v, err)
			}
		}
	}
	return nil
}

// explicitFlags are the flags given on the command line.
func explicitFlags(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// effectiveConfig is cfg with the command line's flags applied over it:
// what serve runs with, and what a reload compares.
func effectiveConfig(fs *flag.FlagSet, cfg datadir.Config, given map[string]bool) (datadir.Config, error) {
	for _, s := range datadir.Settings() {
		if s.Flag == "" || !given[s.Flag] {
			continue
		}
		if err := cfg.Set(s.Key, fs.Lookup(s.Flag).Value.String()); err != nil {
			return cfg, fmt.Errorf("--%s: %w", s.Flag, err)
		}
	}
	return cfg, nil
}

func runConfig(ctx context.Context, c *cmdContext) error {
	asJSON := c.flags.Bool("json", false, "print the effective configuration as JSON")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	if c.args[0] != "check" {
		return usagef("unknown subcommand %q: want check", c.args[0])
	}
	p, err := c.dir()
	if err != nil {
		return err
	}
	file := filepath.Join(p, datadir.ConfigFile)
	cfg, err := datadir.LoadConfig(p, c.logger)
	if err != nil {
		return &exitError{code: ExitFailure, msg: strings.ReplaceAll(err.Error(), "\n", "\n  ")}
	}
	src, _ := os.ReadFile(file)
	var problems []string
	for _, err := range checkServeSettings(&cfg) {
		var ke *datadir.KeyError
		if errors.As(err, &ke) {
			err = &datadir.ConfigError{File: file, Line: datadir.KeyLine(src, ke.Key), Key: ke.Key, Err: ke.Err}
		}
		problems = append(problems, err.Error())
	}
	if err := datadir.CheckSecrets(p); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return &exitError{code: ExitFailure, msg: strings.Join(problems, "\n  ")}
	}
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cfg); err != nil {
			return err
		}
	} else {
		printConfig(c, &cfg, src)
	}
	c.errorf("%s: valid\n", file)
	return nil
}

// printConfig prints every setting with its effective value and where
// it comes from.
func printConfig(c *cmdContext, cfg *datadir.Config, src []byte) {
	tw := tabwriter.NewWriter(c.Stdout, 0, 8, 2, ' ', 0)
	for _, s := range datadir.Settings() {
		vals := cfg.Text(s.Key)
		origin := "default"
		if line := datadir.KeyLine(src, s.Key); line > 0 {
			origin = fmt.Sprintf("%s line %d", datadir.ConfigFile, line)
		}
		v := s.Default
		if s.Key == "sw_navigate" && vals == nil {
			v = strconv.FormatBool(navigateOf(nil, cfg.Upstream)) // its default depends on upstream
		}
		if vals != nil {
			if tv, err := datadir.TOMLValue(cfg, s.Key); err == nil {
				v = tv
			}
		}
		fmt.Fprintf(tw, "%s = %s\t# %s\n", s.Key, v, origin)
	}
	tw.Flush()
}

// checkServeSettings checks what gritsd serve would refuse at start
// beyond Config.Validate: addresses, URLs, the service worker's
// settings, TLS files. Each error is a *datadir.KeyError.
func checkServeSettings(cfg *datadir.Config) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &datadir.KeyError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	for key, v := range map[string]string{"listen": cfg.Listen, "gossip": cfg.Gossip, "origin_addr": cfg.OriginAddr} {
		if v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad(key, "%q: want HOST:PORT", v)
		}
	}
	for key, v := range map[string]string{"https_listen": cfg.HTTPSListen, "admin_listen": cfg.AdminListen} {
		if v == "" || v == "off" {
			continue
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad(key, "%q: want HOST:PORT or off", v)
		}
	}
	for _, s := range cfg.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad("seeds", "%q: want HOST:PORT", s)
		}
	}
	for key, v := range map[string]string{"public_url": cfg.PublicURL, "upstream": cfg.Upstream} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad(key, "%q: want an http:// or https:// URL", v)
		}
	}
	for key, d := range map[string]time.Duration{"http_write_timeout": cfg.HTTPWriteTimeout.Duration, "http_body_timeout": cfg.HTTPBodyTimeout.Duration} {
		if d < 0 {
			bad(key, "%v: want a positive duration", d)
		}
	}
	if cfg.HTTPBodyMinRate < 0 {
		bad("http_body_min_rate", "%d: want bytes per second, at least 1", cfg.HTTPBodyMinRate)
	}
	if h := cfg.UpstreamHost; h != "" && (strings.ContainsAny(h, "/ \t@?#") || !httpguts.ValidHostHeader(h)) {
		bad("upstream_host", "%q: want a host name, optionally with :PORT", h)
	}
	for _, p := range cfg.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("trusted_proxies", "%q: want an address or CIDR", p)
			}
		}
	}
	s := sw.Settings{Scope: cfg.SWScope, Paths: cfg.SWPaths, Navigate: navigateOf(cfg.SWNavigate, cfg.Upstream), CacheBytes: cfg.SWCacheMB << 20, RootCheck: cfg.SWRootCheck.Duration}
	if cfg.SWCacheMB > sw.MaxCacheBytes>>20 {
		bad("sw_cache_mb", "%d: at most %d", cfg.SWCacheMB, sw.MaxCacheBytes>>20)
	} else if err := s.Validate(); err != nil {
		key := "sw_paths"
		if strings.Contains(err.Error(), "scope") {
			key = "sw_scope"
		}
		bad(key, "%v", err)
	}
	if cfg.Watch != "" {
		if st, err := os.Stat(cfg.Watch); err != nil || !st.IsDir() {
			bad("watch", "%q: not a directory", cfg.Watch)
		}
	}
	if cfg.TLSCert != "" {
		if _, err := os.Stat(cfg.TLSCert); err != nil {
			bad("tls_cert", "%v", err)
		}
		if err := datadir.CheckTLSKey(cfg.TLSKey); err != nil {
			bad("tls_key", "%v", err)
		}
	}
	return errs
}

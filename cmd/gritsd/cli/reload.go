package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"log/slog"
	"slices"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/internal/sdnotify"
	"github.com/grits-cdn/grits/node"
	"github.com/grits-cdn/grits/sw"
)

// reloader applies gritsd.toml again when serve gets SIGHUP: what can
// change in a running node changes (datadir.Settings marks it), the
// rest is logged as waiting for a restart. Flags given on the command
// line keep winning over the file.
type reloader struct {
	c     *cmdContext
	n     *node.Node
	dir   string
	fs    *flag.FlagSet
	given map[string]bool
	cur   datadir.Config // the effective settings in force
	log   *slog.Logger
}

func (r *reloader) run(ctx context.Context, hangup <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hangup:
		}
		r.notify(sdnotify.Reloading())
		r.reload()
		r.notify(sdnotify.Ready)
	}
}

func (r *reloader) notify(state string) { notify(r.c, r.log, state) }

// notify tells systemd, when it started us, how the service is doing.
func notify(c *cmdContext, log *slog.Logger, state string) {
	if err := sdnotify.Notify(c.Getenv, state); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		log.Warn("cannot notify the service manager", "err", err)
	}
}

// reload reads the file again and applies what it can; on any error the
// node runs on exactly as it was.
func (r *reloader) reload() {
	file, err := datadir.LoadConfig(r.dir, r.log)
	if err != nil {
		r.log.Error("reload: gritsd.toml has errors; nothing changed", "err", err)
		return
	}
	next, err := effectiveConfig(r.fs, file, r.given)
	if err == nil {
		err = errors.Join(checkServeSettings(&next)...)
	}
	if err != nil {
		r.log.Error("reload: gritsd.toml has errors; nothing changed", "err", err)
		return
	}
	var applied, restart []string
	applying := r.cur
	for _, s := range datadir.Settings() {
		if r.cur.Equal(&next, s.Key) {
			continue
		}
		tlsSwitch := (s.Key == "tls_cert" || s.Key == "tls_key") && (next.TLSCert == "") != (r.cur.TLSCert == "")
		if !s.Reload || tlsSwitch {
			restart = append(restart, s.Key)
			continue
		}
		applied = append(applied, s.Key)
		applying.CopySetting(&next, s.Key)
	}
	re, err := reloadableFrom(&applying)
	if err == nil {
		// TLS files are read again even when unchanged: a renewed
		// certificate serves at once.
		err = r.n.Reload(re)
	}
	if err != nil {
		r.log.Error("reload failed; nothing changed", "err", err)
		return
	}
	r.cur = applying
	// Said before a new log level can hide it.
	r.log.Info("reloaded gritsd.toml", "changed", applied, "need_restart", restart)
	if len(restart) > 0 {
		r.log.Warn("these settings changed in gritsd.toml and take effect at the next restart", "settings", restart)
	}
	if slices.Contains(applied, "log_level") {
		var lv slog.Level
		if lv.UnmarshalText([]byte(cmp.Or(applying.LogLevel, "info"))) == nil {
			r.c.logs.SetLevel(lv)
		}
	}
}

// reloadableFrom is what a running node takes from the settings.
func reloadableFrom(c *datadir.Config) (node.Reloadable, error) {
	s, err := swSettingsOf(c.SWScope, c.SWPaths, navigateOf(c.SWNavigate, c.Upstream), c.SWCacheMB, c.SWRootCheck.Duration, c.MediaHosts)
	if err != nil {
		return node.Reloadable{}, err
	}
	return node.Reloadable{Seeds: c.Seeds, Web: node.WebConfig{RateLimit: c.RateLimit, TrustedProxies: c.TrustedProxies, SW: s,
		Upstream: c.Upstream, UpstreamHost: c.UpstreamHost, ProxyPrefixes: c.ProxyPrefixes, InjectSW: c.InjectSW, InjectSWTree: c.InjectSWTree, TLSCert: c.TLSCert, TLSKey: c.TLSKey}}, nil
}

// navigateOf is sw_navigate's value, or its default when unset: pages
// from the worker for a static site, whose pages are the tree's and the
// same for everyone; from the origin behind an app, which renders its
// pages per user.
func navigateOf(set *bool, upstream string) bool {
	if set != nil {
		return *set
	}
	return upstream == ""
}

// swSettingsOf checks the service worker's settings.
func swSettingsOf(scope string, paths []string, navigate bool, cacheMB int64, rootCheck time.Duration, hosts []string) (sw.Settings, error) {
	s := sw.Settings{Scope: scope, Navigate: navigate, RootCheck: rootCheck}
	for _, v := range hosts {
		h, err := sw.ParseHost(v)
		if err != nil {
			return s, usagef("--media-host: %v", err)
		}
		s.Hosts = append(s.Hosts, h)
	}
	if rootCheck < 0 || rootCheck != 0 && (rootCheck < sw.MinRootCheck || rootCheck > sw.MaxRootCheck) {
		return s, usagef("--sw-root-check %v: want %v to %v", rootCheck, sw.MinRootCheck, sw.MaxRootCheck)
	}
	for _, p := range paths {
		if p != "" {
			s.Paths = append(s.Paths, p)
		}
	}
	if len(paths) > 0 && len(s.Paths) == 0 {
		return s, usagef("--sw-paths %q: no path prefix", paths)
	}
	if cacheMB != 0 {
		if cacheMB < 0 || cacheMB > sw.MaxCacheBytes>>20 {
			return s, usagef("--sw-cache-mb %d: want 1 to %d", cacheMB, sw.MaxCacheBytes>>20)
		}
		s.CacheBytes = cacheMB << 20
	}
	if err := s.Validate(); err != nil {
		return s, usagef("--sw-*: %v", err)
	}
	return s, nil
}

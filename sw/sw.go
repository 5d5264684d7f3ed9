// Package sw holds the service worker that browsers run for a grits
// site, and the small script a page includes to register it. Both are
// plain JavaScript embedded in gritsd; the origin serves them.
package sw

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
)

//go:embed grits-sw.js register.js js/blake3.js js/grits.js
var files embed.FS

// Paths the origin serves the scripts at. The worker's path decides its
// maximum scope: at the root it may control the whole site.
const (
	WorkerPath   = "/grits-sw.js"
	RegisterPath = "/grits/v1/register.js"
	// ModulePath is where the worker's modules (BLAKE3, verification)
	// are served from; the worker imports them by these paths.
	ModulePath = "/grits/v1/js/"
)

// Settings are written into the worker the origin serves.
type Settings struct {
	SiteKey string // "ed25519-<hex>"
	Scope   string // default "/"
}

// Scripts returns the routes and bodies to serve: the worker with the
// settings written in, and the registration script.
func Scripts(s Settings) (map[string][]byte, error) {
	if s.Scope == "" {
		s.Scope = "/"
	}
	// Both values land inside JavaScript string literals.
	if !strings.HasPrefix(s.Scope, "/") || strings.ContainsAny(s.Scope, "'\"\\\n\r<>") {
		return nil, fmt.Errorf("service worker scope %q: want a URL path starting with /", s.Scope)
	}
	if strings.ContainsAny(s.SiteKey, "'\"\\\n\r<>") {
		return nil, fmt.Errorf("site key %q: not a key", s.SiteKey)
	}
	w, err := files.ReadFile("grits-sw.js")
	if err != nil {
		return nil, err
	}
	r, err := files.ReadFile("register.js")
	if err != nil {
		return nil, err
	}
	cfg := fmt.Appendf(nil, "const GRITS_CONFIG = {siteKey: %q, scope: %q};\n", s.SiteKey, s.Scope)
	r = bytes.ReplaceAll(r, []byte("__GRITS_SCOPE__"), []byte(s.Scope))
	out := map[string][]byte{WorkerPath: append(cfg, w...), RegisterPath: r}
	for _, m := range []string{"blake3.js", "grits.js"} {
		b, err := files.ReadFile("js/" + m)
		if err != nil {
			return nil, err
		}
		out[ModulePath+m] = b
	}
	return out, nil
}

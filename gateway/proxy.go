package gateway

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
)

// ProxyConfig configures the reverse proxy to a site's app server.
type ProxyConfig struct {
	Upstream *url.URL
	// Host is the Host header (and X-Forwarded-Host) the app receives:
	// the site's name, never the one the client wrote, which anyone can
	// set and an app may use to build links, password-reset mails or
	// cache keys. "" sends the upstream's own host.
	Host string
	// InjectScript, if set, is inserted into HTML pages from the app
	// (before </head>, else </body>, else at the end), so pages the app
	// renders register the service worker without changing the app.
	InjectScript string
	// MaxInjectBody bounds the HTML page read into memory to inject
	// into; larger pages pass through unchanged. Default
	// DefaultMaxInjectBody.
	MaxInjectBody int64
	Logger        *slog.Logger
}

// NewProxy returns a handler that forwards requests to the app server,
// streaming both ways; WebSocket upgrades pass through.
func NewProxy(cfg ProxyConfig) (http.Handler, error) {
	if cfg.Upstream == nil || cfg.Upstream.Host == "" || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") {
		return nil, fmt.Errorf("upstream %v: want http://HOST:PORT or https://HOST:PORT", cfg.Upstream)
	}
	if cfg.MaxInjectBody <= 0 {
		cfg.MaxInjectBody = DefaultMaxInjectBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(cfg.Upstream)
			r.SetXForwarded()
			r.Out.Host = cfg.Host
			if cfg.Host != "" {
				r.Out.Header.Set("X-Forwarded-Host", cfg.Host)
			} else {
				r.Out.Header.Del("X-Forwarded-Host")
			}
			if cfg.InjectScript != "" && r.Out.Header.Get("Upgrade") == "" {
				// Uncompressed pages from the app (it is local), so
				// the script can be inserted.
				r.Out.Header.Del("Accept-Encoding")
			}
		},
		FlushInterval: -1, // stream: server-sent events, long polls
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			switch {
			case bodyTooSlow(r, err):
				// The client's fault: the app saw its request cut.
				cfg.Logger.Debug("request body too slow; request to the app dropped", "path", clipForLog(r.URL.Path), "err", err)
				http.Error(w, "408 request timeout: the request body came too slowly", http.StatusRequestTimeout)
			case r.Context().Err() != nil:
				cfg.Logger.Debug("client left before the app answered", "path", clipForLog(r.URL.Path), "err", err)
				w.WriteHeader(http.StatusBadGateway) // nobody reads it
			default:
				cfg.Logger.Warn("app server unreachable", "upstream", cfg.Upstream.String(), "path", clipForLog(r.URL.Path), "err", err)
				http.Error(w, "502 bad gateway: the site's app server did not answer", http.StatusBadGateway)
			}
		},
	}
	if cfg.InjectScript != "" {
		p.ModifyResponse = func(resp *http.Response) error { return inject(resp, cfg.InjectScript, cfg.MaxInjectBody) }
	}
	return p, nil
}

func inject(resp *http.Response, script string, max int64) error {
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(strings.ToLower(ct), "text/html") || resp.Header.Get("Content-Encoding") != "" ||
		resp.StatusCode != http.StatusOK || resp.ContentLength > max {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("read page from the app: %w", err)
	}
	if int64(len(body)) > max {
		// Too large to hold: send what was read, then the rest, as is.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil
	}
	resp.Body.Close()
	out := InjectHTML(body, script)
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Del("ETag") // the representation changed
	return nil
}

// DefaultMaxInjectBody bounds the HTML page read into memory to insert a
// script into; larger pages are served as they are.
const DefaultMaxInjectBody = 4 << 20

// InjectHTML returns page with script inserted before the last </head>,
// else the last </body> (either in any case), else at the end; a page
// that already holds script is returned as it is (a page that registers
// the worker itself). The service worker inserts it the same way
// (sw/js/respond.js, held to this by sw/testdata/inject.json).
func InjectHTML(page []byte, script string) []byte {
	if bytes.Contains(page, []byte(script)) {
		return page
	}
	// ASCII case only: bytes.ToLower would change the length of a page
	// holding some non-ASCII letters or invalid UTF-8, and its offsets
	// would no longer be the page's.
	lower := make([]byte, len(page))
	for i, c := range page {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	at := bytes.LastIndex(lower, []byte("</head>"))
	if at < 0 {
		at = bytes.LastIndex(lower, []byte("</body>"))
	}
	if at < 0 {
		at = len(page)
	}
	out := make([]byte, 0, len(page)+len(script))
	return append(append(append(out, page[:at]...), script...), page[at:]...)
}

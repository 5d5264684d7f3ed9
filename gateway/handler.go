// Package gateway is the browser-facing HTTP side of every gritsd node.
//
// A Handler answers the grits/v1 HTTP API that service workers and other
// browser clients use:
//
//	/grits/v1/root                  the newest signed root (tree.RootSize bytes)
//	/grits/v1/lookup/{root}/{path}  one grits/1 LookupResult frame ({root}: b3-… or latest)
//	/grits/v1/block/{hash}          one block, immutable, with Range and zstd/gzip
//	/grits/v1/peers                 volunteer gateways, JSON
//
// plus the caller's static scripts (the service worker) and, on the origin,
// the tree of the newest root served as the web site itself. Every answer
// of a node that holds a root carries it in the Grits-Root header, so a
// page's own requests keep its service worker's root fresh. Nothing here
// trusts the browser: paths are parsed with tree.ParsePath, hashes with
// blockstore.ParseHash, before anything touches the store, and every
// client IP has a token bucket.
//
// The package sits above transport, tree and proto; it knows nothing of
// membership: the list of peers comes from a callback.
package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// Names and limits of the HTTP API.
const (
	// APIPrefix starts every path of the grits HTTP API.
	APIPrefix = "/grits/v1/"
	// RootHeader carries the newest signed root, unpadded base64url of
	// its tree.RootSize bytes, on every response of a node that has one.
	RootHeader = "Grits-Root"
	// LookupContentType is the media type of a lookup answer: one grits/1
	// LookupResult frame (proto/SPEC.md, section 4.11).
	LookupContentType = "application/vnd.grits.lookup"
	// MaxURLPath is the longest URL path (decoded) the handler reads;
	// longer ones get 414.
	MaxURLPath = 4096

	// Defaults of the per-IP token bucket.
	DefaultRateLimit = 200
	DefaultRateBurst = 400
)

// Cache-Control values.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheNoCache   = "no-cache"
	cacheNoStore   = "no-store"
	cachePeers     = "max-age=10"
)

// Peer is a volunteer gateway a browser may fetch from.
type Peer struct {
	URL    string `json:"url"`
	Region string `json:"region,omitempty"`
	Load   int    `json:"load"`
}

// Config configures a Handler. Store is required; zero values elsewhere
// take the defaults.
type Config struct {
	// Store gives verified blocks (tree.Getter's contract). A volunteer
	// passes its pull-through fetcher.
	Store tree.Getter
	// Latest returns the newest signed root; nil means the node has none.
	Latest func() (tree.Root, bool)
	// Peers lists volunteer gateways for /grits/v1/peers; nil serves [].
	// It is called per request and must not block.
	Peers func() []Peer
	// Site makes the handler serve the tree of the newest root as the web
	// site at every path outside the API (the origin does this).
	Site bool
	// Fallback, when set, answers site paths that are not in the tree
	// (and, on a Site handler or not, every non-API path when the tree
	// cannot answer: no root yet, a path tree.ParsePath refuses, a
	// method other than GET, HEAD or OPTIONS): typically a reverse proxy
	// to the site's application.
	Fallback http.Handler
	// InjectScript, if set, is inserted into the HTML pages the site
	// serves from the tree (as ProxyConfig.InjectScript into the app's),
	// so a site generator's output registers the service worker
	// unchanged. Pages that already name it, and pages over
	// MaxInjectBody, are served as stored.
	InjectScript string
	// Hosts are other names the site's tree is served under, each from
	// a tree path: a media host ("files.example.org" → "/system") whose
	// URLs name files below that path. Keys are Host header values (host,
	// or host:port when not the default), lower case; values are tree
	// paths starting with /. Their answers are CORS-readable by any
	// origin (public files, for crossorigin images and the worker), and a
	// path the tree lacks is a 404, never the app's.
	Hosts map[string]string
	// FallbackPrefixes are URL path prefixes that always go to Fallback
	// (an app's API under /api/, say), before the tree or the grits API
	// is consulted, but after the rate limit.
	FallbackPrefixes []string
	// Scripts are extra static routes, path → JavaScript (such as the
	// service worker at /grits-sw.js), served as text/javascript with
	// Cache-Control: no-cache; a path ending in .d.ts (the worker
	// library's TypeScript declarations) as application/typescript.
	// NewHandler copies the map.
	Scripts map[string][]byte
	// MaxInline caps the inline file data in lookups; 0 means
	// proto.InlineMax, which is also the most allowed. A negative value
	// disables inline data.
	MaxInline int
	// RateLimit is each client IP's sustained requests per second and
	// RateBurst its bucket size: 0 takes DefaultRateLimit and
	// DefaultRateBurst (or twice a RateLimit that is set), and a negative
	// value in either disables rate limiting. IPv6 clients are limited
	// per /64, the block one subscriber usually gets.
	RateLimit float64
	RateBurst int
	// TrustedProxies are the addresses whose X-Forwarded-For is honoured:
	// a request from one of them is counted against the right-most
	// address in X-Forwarded-For that is not itself a trusted proxy.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	// OnServe, if set, is called after each successful answer (2xx or
	// 304) with its kind ("block", "lookup", "site" or "root") and the
	// body bytes written (0 for HEAD and 304). It must not block.
	OnServe func(kind string, bytes int64)
	// OnReport, if set, takes POST /grits/v1/report: a browser telling
	// the origin a volunteer sent data that failed verification. client
	// is the reporter's address class (ReportClass), for quotas. Only
	// reports with a token this handler issued (ReportTokenHeader, on
	// pages and /grits/v1/root) to the same address class within the
	// hour reach it.
	OnReport func(client string, r Report)
	// ReportKey, required with OnReport, is the secret report tokens
	// are made with (at least 16 bytes). Keep it across reloads, or the
	// tokens browsers hold stop working until their next page.
	ReportKey []byte
	// BlockCacheBytes bounds the memory the block endpoint keeps for
	// recently served blocks, as read and verified by Store, so that a
	// hot block is not read and hashed again on every request; 0 means
	// DefaultBlockCacheBytes and a negative value disables the cache.
	BlockCacheBytes int64
}

func validScripts(scripts map[string][]byte) error {
	for p := range scripts {
		if !strings.HasPrefix(p, "/") || len(p) > MaxURLPath {
			return fmt.Errorf("gateway: script route %q: want a URL path starting with /", p)
		}
		if p == APIPrefix+"root" || p == APIPrefix+"peers" ||
			strings.HasPrefix(p, APIPrefix+"lookup/") || strings.HasPrefix(p, APIPrefix+"block/") || strings.HasPrefix(p, APIPrefix+"blocks/") {
			return fmt.Errorf("gateway: script route %q shadows an API endpoint", p)
		}
	}
	return nil
}

// Validate reports a configuration NewHandler would refuse.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("gateway: config needs a Store")
	}
	if err := validScripts(c.Scripts); err != nil {
		return err
	}
	for _, p := range c.FallbackPrefixes {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("gateway: fallback prefix %q: want a URL path starting with /", p)
		}
	}
	if len(c.FallbackPrefixes) > 0 && c.Fallback == nil {
		return errors.New("gateway: fallback prefixes without a Fallback")
	}
	for _, pf := range c.TrustedProxies {
		if !pf.IsValid() {
			return fmt.Errorf("gateway: invalid trusted proxy prefix %v", pf)
		}
	}
	if c.OnReport != nil && len(c.ReportKey) < 16 {
		return errors.New("gateway: OnReport needs a ReportKey of at least 16 bytes")
	}
	if c.RateLimit != c.RateLimit { // NaN
		return errors.New("gateway: RateLimit is NaN")
	}
	return nil
}

// Handler serves the grits HTTP API and, on the origin, the site. It is
// safe for concurrent use.
type Handler struct {
	cfg       Config
	log       *slog.Logger
	maxInline uint64
	scripts   atomic.Pointer[map[string]staticScript]
	limiter   *ipRateLimiter // nil: no rate limit
	trusted   []netip.Prefix
	blocks    *blockCache   // nil: no block cache
	tokens    *reportTokens // nil: no reports taken
	rootHdr   atomic.Pointer[rootHeader]

	cacheHits, cacheMisses atomic.Int64

	zstdEnc *zstd.Encoder // EncodeAll is safe for concurrent use
	gzPool  sync.Pool     // *gzip.Writer
}

var _ http.Handler = (*Handler)(nil)

type staticScript struct {
	body []byte
	etag string
}

func (h *Handler) storeScripts(scripts map[string][]byte) {
	m := make(map[string]staticScript, len(scripts))
	for p, body := range scripts {
		b := bytes.Clone(body)
		m[p] = staticScript{body: b, etag: `"` + blockstore.Sum(b).String() + `"`}
	}
	h.scripts.Store(&m)
}

// SetScripts replaces Config.Scripts (a worker whose settings follow the
// tree: its paths are the tree's top-level names); requests in flight
// finish with the old ones. The map is copied.
func (h *Handler) SetScripts(scripts map[string][]byte) error {
	if err := validScripts(scripts); err != nil {
		return err
	}
	h.storeScripts(scripts)
	return nil
}

// NewHandler checks cfg and returns its handler.
func NewHandler(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.MaxInline < 0:
		h.maxInline = 0
	case cfg.MaxInline == 0 || cfg.MaxInline > proto.InlineMax:
		h.maxInline = proto.InlineMax
	default:
		h.maxInline = uint64(cfg.MaxInline)
	}
	h.storeScripts(cfg.Scripts)
	for _, pf := range cfg.TrustedProxies {
		h.trusted = append(h.trusted, pf.Masked())
	}
	if cfg.OnReport != nil {
		h.tokens = &reportTokens{key: bytes.Clone(cfg.ReportKey), now: time.Now}
	}
	if cfg.RateLimit >= 0 && cfg.RateBurst >= 0 {
		rate, burst := cfg.RateLimit, float64(cfg.RateBurst)
		if rate == 0 {
			rate = DefaultRateLimit
			if burst == 0 {
				burst = DefaultRateBurst
			}
		}
		if burst == 0 {
			burst = max(1, 2*rate)
		}
		h.limiter = newIPRateLimiter(rate, burst)
	}
	switch {
	case cfg.BlockCacheBytes == 0:
		h.blocks = newBlockCache(DefaultBlockCacheBytes)
	case cfg.BlockCacheBytes > 0:
		h.blocks = newBlockCache(cfg.BlockCacheBytes)
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderCRC(false), // the block hash is the integrity check
		zstd.WithWindowSize(blockstore.MaxBlockSize),
	)
	if err != nil {
		return nil, fmt.Errorf("gateway: zstd encoder: %w", err)
	}
	h.zstdEnc = enc
	return h, nil
}

// CacheStats describes the hot-block cache.
type CacheStats struct {
	// Hits and Misses count block reads the cache answered, and those
	// that went to the store (none when the cache is disabled).
	Hits, Misses int64
	// Blocks and Bytes are what it holds now; MaxBytes its bound.
	Blocks          int
	Bytes, MaxBytes int64
}

// CacheStats returns the hot-block cache's counters since NewHandler.
func (h *Handler) CacheStats() CacheStats {
	st := CacheStats{Hits: h.cacheHits.Load(), Misses: h.cacheMisses.Load()}
	if h.blocks != nil {
		st.Blocks, st.Bytes = h.blocks.stats()
		st.MaxBytes = h.blocks.max
	}
	return st
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr["Timing-Allow-Origin"] = hvStar
	root, hasRoot := h.latest()
	if hasRoot {
		hdr[RootHeader] = h.rootHeaderValue(root)
	}
	upath := r.URL.Path
	api := strings.HasPrefix(upath, APIPrefix)
	if api {
		setCORSHeaders(hdr)
	}
	h.setReportToken(w, r, api)
	if h.limiter != nil {
		ip := h.rateLimitClientIP(r)
		if ok, wait := h.limiter.allow(ip, time.Now()); !ok {
			hdr.Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
			h.log.Debug("rate limited", "client", ip, "path", clipForLog(upath))
			h.fail(w, http.StatusTooManyRequests, "too many requests")
			return
		}
	}
	for _, p := range h.cfg.FallbackPrefixes {
		if strings.HasPrefix(upath, p) {
			h.toApp(w, r)
			return
		}
	}
	if len(upath) > MaxURLPath || len(r.URL.RawPath) > 3*MaxURLPath {
		h.fail(w, http.StatusRequestURITooLong, "URL path too long")
		return
	}
	if !strings.HasPrefix(upath, "/") {
		h.fail(w, http.StatusBadRequest, "bad request path")
		return
	}
	script, isScript := (*h.scripts.Load())[upath]
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		if !api && !isScript && h.cfg.Fallback != nil {
			h.toApp(w, r)
			return
		}
		// Preflights for the API; a plain OPTIONS elsewhere just learns
		// the methods.
		hdr.Set("Allow", allowedMethods)
		if api {
			setPreflightHeaders(hdr)
		}
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		if r.Method == http.MethodPost && upath == ReportPath && h.cfg.OnReport != nil {
			h.serveReport(w, r)
			return
		}
		if !api && !isScript && h.cfg.Fallback != nil {
			h.toApp(w, r)
			return
		}
		hdr.Set("Allow", allowedMethods)
		h.fail(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	switch {
	case isScript:
		h.serveScript(w, r, script)
	case api:
		h.serveAPI(w, r, root, hasRoot)
	default:
		if prefix, ok := h.mediaHost(r.Host); ok {
			setCORSHeaders(hdr)
			h.serveMedia(w, r, root, hasRoot, prefix)
			return
		}
		h.serveSite(w, r, root, hasRoot)
	}
}

const allowedMethods = "GET, HEAD, OPTIONS"

// toApp hands a request to Fallback (the site's app). Its pages are the
// app's, possibly private to a logged-in user: they do not get the
// Timing-Allow-Origin the public, verified content has, which would let
// any other site time them (and so learn what they hold) through the
// Resource Timing API.
func (h *Handler) toApp(w http.ResponseWriter, r *http.Request) {
	delete(w.Header(), "Timing-Allow-Origin")
	h.cfg.Fallback.ServeHTTP(w, r)
}

// ReportPath is where service workers report a volunteer that sent bad
// data (POST, JSON Report).
const ReportPath = APIPrefix + "report"

// Report is a browser's complaint about a volunteer.
type Report struct {
	Peer   string `json:"peer"`   // the volunteer's base URL
	Hash   string `json:"hash"`   // what it sent wrong, if a block
	Reason string `json:"reason"` // short text
}

// serveReport takes a report: small, JSON, with a token this handler
// issued to the client's address class, passed to Config.OnReport with
// that class (the rate limit above already applies).
func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request) {
	class := ReportClass(h.rateLimitClientIP(r))
	if err := h.tokens.check(r.Header.Get(ReportTokenHeader), class); err != nil {
		h.log.Debug("report refused", "client", class, "err", err)
		h.fail(w, http.StatusForbidden, "a report needs the "+ReportTokenHeader+" of a recent visit")
		return
	}
	var rep Report
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&rep); err != nil || rep.Peer == "" {
		h.fail(w, http.StatusBadRequest, "want a JSON report with a peer")
		return
	}
	if len(rep.Reason) > 200 {
		rep.Reason = rep.Reason[:200]
	}
	if len(rep.Hash) > 80 {
		rep.Hash = rep.Hash[:80]
	}
	h.cfg.OnReport(class.String(), rep)
	w.WriteHeader(http.StatusNoContent)
}

// rootHeader is the Grits-Root header value of one root, kept because
// the root changes rarely and every response carries it.
type rootHeader struct {
	root  tree.Root
	value []string
}

// rootHeaderValue returns the Grits-Root header value for root, encoding
// it only when the root has changed. The value must not be modified.
func (h *Handler) rootHeaderValue(root tree.Root) []string {
	if c := h.rootHdr.Load(); c != nil && c.root == root {
		return c.value
	}
	var buf [tree.RootSize]byte
	c := &rootHeader{root: root, value: []string{base64.RawURLEncoding.EncodeToString(root.AppendEncode(buf[:0]))}}
	h.rootHdr.Store(c)
	return c.value
}

func (h *Handler) latest() (tree.Root, bool) {
	if h.cfg.Latest == nil {
		return tree.Root{}, false
	}
	return h.cfg.Latest()
}

func (h *Handler) served(kind string, n int64) {
	if h.cfg.OnServe != nil {
		h.cfg.OnServe(kind, n)
	}
}

// fail answers an error in plain text, dropping any header meant for a
// successful answer.
func (h *Handler) fail(w http.ResponseWriter, code int, msg string) {
	hdr := w.Header()
	for _, k := range []string{"Etag", "Last-Modified", "Content-Encoding", "Content-Range", "Accept-Ranges", "Content-Type"} {
		hdr.Del(k)
	}
	hdr.Set("Cache-Control", cacheNoStore)
	http.Error(w, msg, code)
}

// writeBody answers 200 with body (headers only for HEAD) and returns the
// bytes written.
func writeBody(w http.ResponseWriter, r *http.Request, body []byte) int64 {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return 0
	}
	n, _ := w.Write(body)
	return int64(n)
}

func (h *Handler) serveRoot(w http.ResponseWriter, r *http.Request, root tree.Root, hasRoot bool) {
	if !hasRoot {
		h.fail(w, http.StatusNotFound, "this node holds no signed root yet")
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", cacheNoCache)
	// A client that holds this root asks with its hash and gets a 304
	// without a body, and without the Grits-Root header it has already:
	// an open page checks for new roots this way at the least cost.
	etag := `"` + root.Hash().String() + `"`
	hdr.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagListHas(inm, etag) {
		delete(hdr, RootHeader)
		w.WriteHeader(http.StatusNotModified)
		h.served("root", 0)
		return
	}
	hdr.Set("Content-Type", "application/octet-stream")
	h.served("root", writeBody(w, r, root.Encode()))
}

// etagListHas reports whether an If-None-Match list names tag (weak
// comparison, RFC 9110 13.1.2).
func etagListHas(inm, tag string) bool {
	for part := range strings.SplitSeq(inm, ",") {
		if t := strings.TrimPrefix(strings.TrimSpace(part), "W/"); t == tag || t == "*" {
			return true
		}
	}
	return false
}

func (h *Handler) servePeers(w http.ResponseWriter, r *http.Request) {
	var peers []Peer
	if h.cfg.Peers != nil {
		peers = h.cfg.Peers()
	}
	if peers == nil {
		peers = []Peer{}
	}
	body, err := json.Marshal(peers)
	if err != nil {
		h.log.Error("encode peers", "err", err)
		h.fail(w, http.StatusInternalServerError, "internal error")
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", cachePeers)
	writeBody(w, r, body)
}

func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request, s staticScript) {
	hdr := w.Header()
	if strings.HasSuffix(r.URL.Path, ".d.ts") {
		hdr.Set("Content-Type", "application/typescript; charset=utf-8")
	} else {
		hdr.Set("Content-Type", "text/javascript; charset=utf-8")
	}
	hdr.Set("Cache-Control", cacheNoCache)
	hdr.Set("ETag", s.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.body))
}

// countingResponseWriter counts the body bytes written through it and
// keeps the status.
type countingResponseWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingResponseWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingResponseWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ok reports a successful answer: 2xx or 304.
func (c *countingResponseWriter) ok() bool {
	return c.status >= 200 && c.status < 300 || c.status == http.StatusNotModified
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *countingResponseWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(1, s)
}

// clipForLog bounds what a client controls before it reaches a log line.
func clipForLog(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

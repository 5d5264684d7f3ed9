package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/chromium"
	"github.com/grits-cdn/grits/internal/demosite"
)

// These tests drive Chromium in real time over the DevTools protocol, so
// the service worker's own timers (deadlines, hedging) run as they would
// for a user. They start an origin and volunteers as real processes.

// demoFiles is the demo site as a fixture: three pages, a style sheet, a
// script, images and a 1.6 MB video.
func demoFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(demosite.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(demosite.FS(), p)
		files["/"+p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// browser starts Chromium on the site's profile, trusting the site's
// certificate and talking HTTP/3 to the given HTTPS addresses from the
// first request. It is closed at the end of the test.
func (s *swSite) browser(quic ...string) *chromium.Browser {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := chromium.Start(ctx, chromium.Options{Profile: s.profile, SPKI: gateway.SPKIHash(s.leaf.Leaf), ForceQUIC: quic})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(b.Close)
	return b
}

// open navigates to path on the origin and waits until the page has
// loaded its images and the service worker controls it.
func (s *swSite) open(b *chromium.Browser, path string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Navigate(ctx, s.originURL+path); err != nil {
		s.t.Fatalf("navigate to %s: %v", path, err)
	}
	if err := b.Wait(ctx, `navigator.serviceWorker.controller !== null && [...document.images].every((i) => i.complete)`); err != nil {
		s.t.Fatalf("%s: the page did not load under the service worker: %v", path, err)
	}
	var broken []string
	if err := b.Eval(ctx, `[...document.images].filter((i) => i.naturalWidth === 0).map((i) => i.src)`, &broken); err != nil {
		s.t.Fatal(err)
	}
	if len(broken) > 0 {
		s.t.Fatalf("%s: images that did not load: %v", path, broken)
	}
}

// eval evaluates expr in the page (awaiting a promise) into out.
func eval(t *testing.T, b *chromium.Browser, timeout time.Duration, expr string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := b.Eval(ctx, expr, out); err != nil {
		t.Fatalf("%.80s…: %v", strings.TrimSpace(expr), err)
	}
}

// hashesJS fetches paths through the page (so through the worker) and
// maps each to the SHA-256 of the body, or to the error.
const hashesJS = `(async (paths) => {
  const out = {};
  for (const p of paths) {
    try {
      const r = await fetch(p);
      if (!r.ok) { out[p] = 'status ' + r.status; continue; }
      const h = await crypto.subtle.digest('SHA-256', await r.arrayBuffer());
      out[p] = [...new Uint8Array(h)].map((x) => x.toString(16).padStart(2, '0')).join('');
    } catch (e) { out[p] = 'error: ' + e; }
  }
  return out;
})(%s)`

// checkThroughWorker fails the test unless every file, fetched by the
// page through the worker, is byte-exact.
func checkThroughWorker(t *testing.T, b *chromium.Browser, files map[string][]byte) {
	t.Helper()
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	list, _ := json.Marshal(paths)
	got := map[string]string{}
	eval(t, b, 90*time.Second, fmt.Sprintf(hashesJS, list), &got)
	for _, p := range paths {
		sum := sha256.Sum256(files[p])
		if got[p] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s through the worker: %s, want sha256 %x", p, got[p], sum)
		}
	}
}

// seekJS seeks the page's video to three quarters of its length and
// waits until the frame there can be shown.
const seekJS = `(async () => {
  const v = document.querySelector('video');
  v.muted = true;
  const fail = () => new Error('video error ' + (v.error ? v.error.code + ' ' + v.error.message : ''));
  if (v.readyState < 1) await new Promise((ok, no) => { v.addEventListener('loadedmetadata', ok, { once: true }); v.addEventListener('error', () => no(fail()), { once: true }); });
  const target = v.duration * 0.75;
  const seeked = new Promise((ok) => v.addEventListener('seeked', ok, { once: true }));
  v.currentTime = target;
  await seeked;
  if (v.readyState < 2) await new Promise((ok, no) => { v.addEventListener('loadeddata', ok, { once: true }); v.addEventListener('canplay', ok, { once: true }); v.addEventListener('error', () => no(fail()), { once: true }); });
  return { duration: v.duration, target, at: v.currentTime, ready: v.readyState };
})()`

type nodeCounts map[string]struct {
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

type httpCounts struct {
	Requests int64      `json:"http_requests"`
	Bytes    int64      `json:"http_bytes"`
	HTTP3    int64      `json:"http3_requests"`
	ByKind   nodeCounts `json:"http_by_kind"`
}

// counts is what the daemon on d has served to browsers so far.
func (d dataDir) counts(t *testing.T) httpCounts {
	t.Helper()
	r := d.run(t, "status", "--json")
	if r.code != 0 && r.code != notReadyCode {
		t.Fatalf("status: %s", r)
	}
	var st struct {
		Served httpCounts `json:"served"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st.Served
}

func (c httpCounts) sub(o httpCounts) httpCounts {
	d := httpCounts{Requests: c.Requests - o.Requests, Bytes: c.Bytes - o.Bytes, HTTP3: c.HTTP3 - o.HTTP3, ByKind: nodeCounts{}}
	for k, v := range c.ByKind {
		w := o.ByKind[k]
		v.Requests -= w.Requests
		v.Bytes -= w.Bytes
		d.ByKind[k] = v
	}
	return d
}

// served is what the volunteers answered of one kind so far, summed.
func served(t *testing.T, vs []volunteerNode, kind string) (sum struct{ Requests, Bytes int64 }) {
	t.Helper()
	for _, v := range vs {
		k := v.d.counts(t).ByKind[kind]
		sum.Requests += k.Requests
		sum.Bytes += k.Bytes
	}
	return sum
}

// newSWSwarm is a site (newSWSite) with two volunteers the origin lists.
func newSWSwarm(t *testing.T, files map[string][]byte, originFlags ...string) (*swSite, []volunteerNode) {
	t.Helper()
	s := newSWSite(t, files, originFlags...)
	vs := []volunteerNode{s.volunteer(), s.volunteer()}
	s.waitPeers(2, "")
	return s, vs
}

// volunteerNode is a started volunteer with its data directory and
// HTTPS address.
type volunteerNode struct {
	d    dataDir
	srv  *server
	addr string
}

func (s *swSite) volunteer(extra ...string) volunteerNode {
	s.t.Helper()
	tok := strings.TrimSpace(s.o.must(s.t, "token", "--origin-addr", s.origin.addr).stdout)
	d := dataDir(filepath.Join(s.t.TempDir(), "volunteer"))
	d.must(s.t, "join", tok)
	srv := startServe(s.t, d, append(s.tlsFlags, extra...)...)
	addr, _ := gwHTTPS(s.t, srv)
	return volunteerNode{d: d, srv: srv, addr: addr}
}

// TestServiceWorkerSiteFromVolunteers: after the first navigation,
// loading every page of the demo site (HTML, CSS, script, images, and
// seeking in the video) takes over 95% of the site's bytes from the
// volunteers, counted on the nodes; volunteer traffic is HTTP/3; every
// file fetched through the worker is byte-exact.
func TestServiceWorkerSiteFromVolunteers(t *testing.T) {
	files := demoFiles(t)
	s, vs := newSWSwarm(t, files)
	originAddr := strings.TrimPrefix(s.originURL, "https://")
	b := s.browser(originAddr, vs[0].addr, vs[1].addr)

	s.open(b, "/") // installs the worker; it claims the page
	before := map[string]httpCounts{"origin": s.o.counts(t)}
	for i, v := range vs {
		before[fmt.Sprint("volunteer", i)] = v.d.counts(t)
	}
	for _, p := range []string{"/", "/about.html", "/gallery/", "/"} {
		s.open(b, p)
	}
	var seek struct {
		Duration, Target, At float64
		Ready                int
	}
	eval(t, b, 60*time.Second, seekJS, &seek)
	if seek.Ready < 2 || seek.At < seek.Target-1 || seek.Duration <= 0 {
		t.Fatalf("video seek through the worker: %+v", seek)
	}

	origin := s.o.counts(t).sub(before["origin"])
	var fromVolunteers, h3, volunteerRequests int64
	for i, v := range vs {
		c := v.d.counts(t).sub(before[fmt.Sprint("volunteer", i)])
		fromVolunteers += c.ByKind["block"].Bytes + c.ByKind["lookup"].Bytes
		h3 += c.HTTP3
		volunteerRequests += c.Requests
		t.Logf("volunteer %d: %d requests (%d over HTTP/3), %d bytes: %+v", i, c.Requests, c.HTTP3, c.Bytes, c.ByKind)
	}
	fromOrigin := origin.ByKind["site"].Bytes
	t.Logf("origin: %d requests, site files %d bytes, all %+v", origin.Requests, fromOrigin, origin.ByKind)
	share := float64(fromVolunteers) / float64(fromVolunteers+fromOrigin)
	t.Logf("site bytes from volunteers: %d of %d (%.1f%%)", fromVolunteers, fromVolunteers+fromOrigin, 100*share)
	if share <= 0.95 {
		t.Errorf("only %.1f%% of the site's bytes came from volunteers; want over 95%%", 100*share)
	}
	// The HTTP/3 counter counts requests as they arrive, the others as
	// they are answered: a request the video element gave up on counts
	// only in the first.
	if volunteerRequests == 0 || h3 < volunteerRequests {
		t.Errorf("volunteers answered %d requests, %d arrived over HTTP/3; want all", volunteerRequests, h3)
	}
	st := workerStats(t, b)
	t.Logf("worker: %+v", st)
	// "unknown": a request aborted before its response (the seek).
	for p, n := range st.Protocols {
		if p != "h3" && p != "unknown" {
			t.Errorf("the worker made %d requests to volunteers over %s (nextHopProtocol); want h3 only: %v", n, p, st.Protocols)
		}
	}
	if st.Protocols["h3"] == 0 {
		t.Errorf("no request of the worker to volunteers went over h3: %v", st.Protocols)
	}
	checkThroughWorker(t, b, files)
	// A healthy run: nothing to report about anyone.
	s.noReports()
}

// swStats is part of what the worker answers to {type: 'grits-stats'}.
type swStats struct {
	BytesFromVolunteers int64            `json:"bytesFromVolunteers"`
	BytesFromCache      int64            `json:"bytesFromCache"`
	BytesFromOrigin     int64            `json:"bytesFromOrigin"`
	RequestsFromOrigin  int64            `json:"requestsFromOrigin"`
	LookupsSent         int64            `json:"lookupsSent"`
	LocalLookups        int64            `json:"localLookups"`
	HedgesSent          int64            `json:"hedgesSent"`
	ReportsSent         int64            `json:"reportsSent"`
	RootSeq             int64            `json:"rootSeq"`
	RootChecks          int64            `json:"rootChecks"`
	RootsFromVolunteers int64            `json:"rootsFromVolunteers"`
	PrefetchedBlocks    int64            `json:"prefetchedBlocks"`
	PagesReloaded       int64            `json:"pagesReloaded"`
	PagesKept           int64            `json:"pagesKept"`
	Protocols           map[string]int64 `json:"protocols"`
}

// rootSeqAtLeastJS is true once the page's worker holds a root of seq %d
// or later.
const rootSeqAtLeastJS = `new Promise((ok) => {
  const ch = new MessageChannel();
  ch.port1.onmessage = (e) => ok(e.data.rootSeq >= %d);
  navigator.serviceWorker.controller.postMessage({ type: 'grits-stats' }, [ch.port2]);
})`

// openUntil navigates to path and waits until cond (a JavaScript
// expression, awaited) is true in the page. The worker may load a page
// it served again, under a newer root: an evaluation that meets the page
// being replaced is tried again.
func (s *swSite) openUntil(b *chromium.Browser, path, cond string, within time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Navigate(ctx, s.originURL+path); err != nil {
		s.t.Fatalf("navigate to %s: %v", path, err)
	}
	expr := `(async () => navigator.serviceWorker.controller !== null && [...document.images].every((i) => i.complete) && await (` + cond + `))()`
	eventually(s.t, within, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var ok bool
		if err := b.Eval(ctx, expr, &ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s: not yet: %s", path, cond)
		}
		return nil
	})
}

func workerStats(t *testing.T, b *chromium.Browser) swStats {
	t.Helper()
	var st swStats
	eval(t, b, 10*time.Second, `new Promise((ok) => {
  const ch = new MessageChannel();
  ch.port1.onmessage = (e) => ok(e.data);
  navigator.serviceWorker.controller.postMessage({ type: 'grits-stats' }, [ch.port2]);
})`, &st)
	return st
}

// TestServiceWorkerPathsAndNavigations: with --sw-paths the worker leaves
// requests outside the prefixes to the network (the origin serves them,
// the volunteers see nothing of them); with --sw-navigate pages come from
// the volunteers too.
func TestServiceWorkerPathsAndNavigations(t *testing.T) {
	files := demoFiles(t)
	s, vs := newSWSwarm(t, files, "--sw-paths", "/images/,/about.html", "--sw-navigate")
	b := s.browser()
	s.open(b, "/")
	before := s.o.counts(t)
	var vbefore []httpCounts
	for _, v := range vs {
		vbefore = append(vbefore, v.d.counts(t))
	}
	s.open(b, "/about.html") // a navigation inside the paths: from volunteers
	s.open(b, "/gallery/")   // outside: the origin, and so is its style sheet
	origin := s.o.counts(t).sub(before)
	var asked int64
	for i, v := range vs {
		c := v.d.counts(t).sub(vbefore[i])
		asked += c.ByKind["lookup"].Requests + c.ByKind["block"].Requests
	}
	// The origin served the gallery page and nothing of /about.html or
	// the images; the volunteers answered for /about.html and the two
	// pictures (a lookup each, or, with the tree's directories fetched
	// at install, a block each: one-chunk files are direct entries).
	want := int64(len(files["/gallery/index.html"]))
	if got := origin.ByKind["site"].Bytes; got != want {
		t.Errorf("origin served %d bytes of site files; want %d (the gallery page only): %+v", got, want, origin.ByKind)
	}
	if asked < 3 {
		t.Errorf("volunteers answered %d lookups and blocks; want at least 3 (/about.html and two images)", asked)
	}
	checkThroughWorker(t, b, map[string][]byte{"/images/rings.png": files["/images/rings.png"], "/css/site.css": files["/css/site.css"]})
	s.noReports()
}

// TestServiceWorkerNavigateFetchesAhead: with --sw-navigate, a page the
// worker serves from the swarm has the files it names fetched ahead, as
// the origin's pages do: the page names a sound it does not load itself
// (preload="none"), and the worker fetches its blocks anyway, verified
// (they are then in its cache, byte-exact).
func TestServiceWorkerNavigateFetchesAhead(t *testing.T) {
	files := demoFiles(t)
	sound := bytes.Repeat([]byte("grits sound "), 30_000) // 360 KB: two blocks
	files["/sound.bin"] = sound
	files["/listen.html"] = []byte(`<!doctype html><html><head><meta charset="utf-8"><title>listen</title>` +
		`<script src="/grits/v1/register.js" defer></script></head><body><h1>listen</h1>` +
		`<audio preload="none" src="/sound.bin"></audio></body></html>`)
	s, vs := newSWSwarm(t, files, "--sw-navigate")
	b := s.browser()
	s.open(b, "/") // from the origin (no worker yet): installs the worker
	before := workerStats(t, b)
	blocksBefore := served(t, vs, "block").Requests
	s.open(b, "/listen.html") // from the swarm
	deadline := time.Now().Add(20 * time.Second)
	st := workerStats(t, b)
	for st.PrefetchedBlocks < before.PrefetchedBlocks+2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		st = workerStats(t, b)
	}
	if got := st.PrefetchedBlocks - before.PrefetchedBlocks; got < 2 {
		t.Fatalf("the worker fetched %d blocks ahead of /listen.html (served from the swarm); want the sound's 2: %+v", got, st)
	}
	if st.RequestsFromOrigin != before.RequestsFromOrigin {
		t.Errorf("the origin answered %d requests of the worker; want none (the page and the sound from volunteers)", st.RequestsFromOrigin-before.RequestsFromOrigin)
	}
	if n := served(t, vs, "block").Requests - blocksBefore; n < 2 {
		t.Errorf("volunteers served %d blocks; want at least the sound's 2", n)
	}
	checkThroughWorker(t, b, map[string][]byte{"/sound.bin": sound})
	s.noReports()
}

// importNewCSS imports the site again on the origin with a style sheet
// that gives the body a top border of color, and returns that sheet.
func (s *swSite) importNewCSS(files map[string][]byte, color string) []byte {
	s.t.Helper()
	css := append([]byte("/* v2 */ body { border-top: 7px solid "+color+"; }\n"), files["/css/site.css"]...)
	src := s.t.TempDir()
	for p, body := range files {
		if p == "/css/site.css" {
			body = css
		}
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), body, 0o644)
	}
	s.o.must(s.t, "import", src)
	return css
}

// TestServiceWorkerSeesNewImports: an unchanged page costs no lookup at
// all on its next visit; with pages from the origin (sw_navigate off, an
// app's default), after the origin imports a change, the next ordinary
// navigation (no shift-reload) shows it.
func TestServiceWorkerSeesNewImports(t *testing.T) {
	files := demoFiles(t)
	s, vs := newSWSwarm(t, files, "--sw-navigate=false")
	b := s.browser()
	s.open(b, "/about.html")
	s.open(b, "/about.html") // now under the worker: lookups are cached

	n0 := served(t, vs, "lookup").Requests
	s.open(b, "/about.html")
	if n := served(t, vs, "lookup").Requests - n0; n != 0 {
		t.Errorf("an unchanged page cost %d lookups at the volunteers; want none", n)
	}

	// A new style sheet, imported on the origin (a new signed root).
	css := s.importNewCSS(files, "rgb(1, 2, 3)")
	s.open(b, "/about.html")
	var border string
	eval(t, b, 10*time.Second, `getComputedStyle(document.body).borderTopColor`, &border)
	if border != "rgb(1, 2, 3)" {
		t.Errorf("after an import, the next navigation shows the old style sheet (border-top-color %q)", border)
	}
	files["/css/site.css"] = css
	checkThroughWorker(t, b, map[string][]byte{"/css/site.css": css})
	s.noReports()
}

// TestServiceWorkerPagesFromTheWorker: a static site's default
// (sw_navigate unset): pages come from the worker, the origin serves
// none of them, and the navigation after an import shows the change: the
// worker checks the root beside a page it served and loads the page
// again under the newer root. sw_root_check is an hour, so no navigation
// waits for the origin's word: only that check can bring the import.
func TestServiceWorkerPagesFromTheWorker(t *testing.T) {
	files := demoFiles(t)
	s, _ := newSWSwarm(t, files, "--sw-root-check", "1h")
	b := s.browser()
	s.open(b, "/about.html")
	s.open(b, "/about.html") // under the worker
	before := s.o.counts(t)
	s.open(b, "/about.html")
	if got := s.o.counts(t).sub(before).ByKind["site"]; got.Requests != 0 {
		t.Errorf("the origin served %d site files (%d bytes) for a page under the worker; want none: the page and its files from the worker", got.Requests, got.Bytes)
	}
	reloaded := workerStats(t, b).PagesReloaded
	css := s.importNewCSS(files, "rgb(4, 5, 6)")
	// One navigation; the test does not navigate again.
	s.openUntil(b, "/about.html", `getComputedStyle(document.body).borderTopColor === 'rgb(4, 5, 6)'`, 30*time.Second)
	// Once, under the new root (none if the root came before the page did:
	// a volunteer's answer may bring it for free); never in a loop.
	n := workerStats(t, b).PagesReloaded - reloaded
	if n > 1 {
		t.Errorf("the worker loaded the page again %d times; want once at most", n)
	}
	t.Logf("the worker loaded the page again %d time(s)", n)
	checkThroughWorker(t, b, map[string][]byte{"/css/site.css": css, "/about.html": files["/about.html"]})
	s.noReports()
}

// TestServiceWorkerKeepsAPageInUse: the worker's reload of a page it
// served under a root an import has just replaced never loses what a
// visitor typed. A page with register.js whose form holds something
// other than its defaults (here set by the page itself, as form restore
// and autofill do, before the worker learns of the import) is kept as it
// is; a page without register.js cannot say, and is loaded again.
func TestServiceWorkerKeepsAPageInUse(t *testing.T) {
	files := demoFiles(t)
	head := `<!doctype html><html><head><meta charset="utf-8"><title>%s</title><link rel="stylesheet" href="/css/site.css">%s</head><body>`
	files["/form.html"] = []byte(fmt.Sprintf(head, "form", `<script src="/grits/v1/register.js" defer></script>`) +
		`<input id="q"><script>const q = document.getElementById('q'); q.value = 'typed'; q.dispatchEvent(new Event('input', { bubbles: true }));</script></body></html>`)
	files["/plain.html"] = []byte(fmt.Sprintf(head, "plain", "") + `<p>no register.js here</p></body></html>`)
	s, _ := newSWSwarm(t, files, "--sw-root-check", "1h")
	b := s.browser()
	s.open(b, "/about.html") // installs the worker
	s.open(b, "/plain.html")
	s.open(b, "/form.html")
	border := `getComputedStyle(document.body).borderTopColor`

	// A page without register.js: loaded again under the new root (its
	// style sheet may come under the new root already: the check is
	// quick; the page itself came under the old one).
	st := workerStats(t, b)
	s.importNewCSS(files, "rgb(7, 8, 9)")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Navigate(ctx, s.originURL+"/plain.html"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if got := workerStats(t, b); got.PagesReloaded == st.PagesReloaded {
			return fmt.Errorf("the page without register.js was not loaded again: %+v", got)
		}
		return nil
	})
	s.openUntil(b, "/plain.html", border+` === 'rgb(7, 8, 9)'`, 30*time.Second)

	// A page in use: kept.
	st = workerStats(t, b)
	s.importNewCSS(files, "rgb(10, 11, 12)")
	s.open(b, "/form.html")
	var origin float64
	eval(t, b, 10*time.Second, `performance.timeOrigin`, &origin)
	eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if got := workerStats(t, b); got.PagesKept == st.PagesKept {
			return fmt.Errorf("the worker has not offered the page a reload yet: %+v", got)
		}
		return nil
	})
	var page struct {
		Origin float64 `json:"origin"`
		Value  string  `json:"value"`
	}
	eval(t, b, 10*time.Second, `({ origin: performance.timeOrigin, value: document.getElementById('q').value })`, &page)
	if page.Origin != origin || page.Value != "typed" {
		t.Errorf("the page in use after the offer: %+v; want the same document (time origin %v), its input kept", page, origin)
	}
	if got := workerStats(t, b); got.PagesReloaded != st.PagesReloaded {
		t.Errorf("the worker loaded a page in use again (%d times)", got.PagesReloaded-st.PagesReloaded)
	}
	s.noReports()
}

// waitReport waits until the origin lists a browser's report about the
// volunteer at url.
func (s *swSite) waitReport(url string) {
	s.t.Helper()
	eventually(s.t, 20*time.Second, 200*time.Millisecond, func() error {
		r := s.o.run(s.t, "status", "--json")
		var st struct {
			Reports []struct {
				Peer string `json:"peer"`
			} `json:"reports"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			return err
		}
		for _, rep := range st.Reports {
			if rep.Peer == url {
				return nil
			}
		}
		return fmt.Errorf("no report about %s: %s", url, r.stdout)
	})
}

// checkFilesLive checks every file of checkFiles but the page, and a
// range of the big one, through the worker.
func checkFilesLive(t *testing.T, b *chromium.Browser, files map[string][]byte) {
	t.Helper()
	rest := map[string][]byte{}
	for p, body := range files {
		if p != "/index.html" {
			rest[p] = body
		}
	}
	checkThroughWorker(t, b, rest)
	var got struct {
		Status int
		Sum    string
	}
	eval(t, b, 60*time.Second, `(async () => {
  const r = await fetch('/media/big.bin', { headers: { Range: 'bytes=1000000-1099999' } });
  const h = await crypto.subtle.digest('SHA-256', await r.arrayBuffer());
  return { status: r.status, sum: [...new Uint8Array(h)].map((x) => x.toString(16).padStart(2, '0')).join('') };
})()`, &got)
	sum := sha256.Sum256(files["/media/big.bin"][1000000:1100000])
	if got.Status != 206 || got.Sum != hex.EncodeToString(sum[:]) {
		t.Errorf("range through the worker: %d %s, want 206 %x", got.Status, got.Sum, sum)
	}
}

// moreFiles adds small files under /more/ so that a test's requests
// spread over every volunteer (rendezvous hashing by path and block).
func moreFiles(files map[string][]byte, n int) map[string][]byte {
	for i := 0; i < n; i++ {
		files[fmt.Sprintf("/more/f%02d.txt", i)] = []byte(fmt.Sprintf("file %d\n", i))
	}
	return files
}

// TestServiceWorkerSurvivesAHangingVolunteer: one volunteer accepts
// requests and never answers. Every file still arrives byte-exact, and
// the origin hears about the volunteer.
func TestServiceWorkerSurvivesAHangingVolunteer(t *testing.T) {
	files := moreFiles(checkFiles(), 12)
	s := newSWSite(t, files)
	s.volunteer()
	var held atomic.Int64
	hangURL, _ := s.faultyVolunteer(func(r *http.Request) bool {
		held.Add(1)
		return true
	}, nil)
	s.waitPeers(2, hangURL)
	b := s.browser()
	s.open(b, "/")
	start := time.Now()
	checkFilesLive(t, b, files)
	if held.Load() == 0 {
		t.Fatal("the hanging volunteer was never asked: the test proved nothing")
	}
	t.Logf("%d requests held by the hanging volunteer; the files took %v", held.Load(), time.Since(start).Round(time.Millisecond))
	s.waitReport(hangURL)
}

// TestServiceWorkerSurvivesAKilledVolunteer: the only volunteer is
// killed (SIGKILL) in the middle of sending blocks. The files still
// arrive byte-exact (from the origin, the last resort), and the origin
// hears about the volunteer.
func TestServiceWorkerSurvivesAKilledVolunteer(t *testing.T) {
	files := checkFiles()
	s := newSWSite(t, files)
	var victim atomic.Pointer[server]
	var killed atomic.Bool
	deadURL, v := s.faultyVolunteer(nil, func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, "/grits/v1/block") || resp.StatusCode != http.StatusOK || (resp.ContentLength >= 0 && resp.ContentLength < 100<<10) {
			return nil
		}
		resp.Body = &killingReader{r: resp.Body, after: 64 << 10, kill: func() {
			if v := victim.Load(); v != nil && killed.CompareAndSwap(false, true) {
				v.cmd.Process.Kill()
			}
		}}
		return nil
	})
	victim.Store(v)
	s.waitPeers(1, deadURL)
	b := s.browser()
	s.open(b, "/")
	checkFilesLive(t, b, files)
	if !killed.Load() {
		t.Fatal("the volunteer was never killed mid-transfer: the test proved nothing")
	}
	s.waitReport(deadURL)
}

// killingReader passes after bytes on, then calls kill and fails, as a
// connection does when the process at its other end dies.
type killingReader struct {
	r     io.ReadCloser
	after int
	n     int
	kill  func()
}

func (k *killingReader) Read(p []byte) (int, error) {
	if k.n >= k.after {
		k.kill()
		return 0, errors.New("volunteer killed")
	}
	if len(p) > k.after-k.n {
		p = p[:k.after-k.n]
	}
	n, err := k.r.Read(p)
	k.n += n
	return n, err
}

func (k *killingReader) Close() error { return k.r.Close() }

// TestServiceWorkerUpdates: when the origin ships a different worker (here
// a new setting), an open browser's next navigations bring the new
// version into control without a stuck old worker, and it keeps serving.
func TestServiceWorkerUpdates(t *testing.T) {
	files := demoFiles(t)
	// The origin restarts on its address: a port below the ephemeral
	// range, so that nothing takes it meanwhile.
	s := newSWSite(t, files, "--https", fmt.Sprintf("127.0.0.1:%d", fixedPort(t)))
	s.volunteer()
	s.waitPeers(1, "")
	b := s.browser()
	s.open(b, "/")
	var v1 struct {
		Version string `json:"version"`
		Cache   struct {
			MaxBytes int64 `json:"maxBytes"`
		} `json:"cache"`
	}
	statsJS := `new Promise((ok) => {
  const ch = new MessageChannel();
  ch.port1.onmessage = (e) => ok(e.data);
  navigator.serviceWorker.controller.postMessage({ type: 'grits-stats' }, [ch.port2]);
})`
	eval(t, b, 10*time.Second, statsJS, &v1)
	if v1.Version == "" {
		t.Fatal("the worker reports no version")
	}

	// The origin restarts on the same address with another cache size:
	// the worker it serves changes.
	addr := strings.TrimPrefix(s.originURL, "https://")
	s.origin.stop(t, syscall.SIGINT)
	s.origin = startServe(t, s.o, append(append([]string(nil), s.tlsFlags...), "--https", addr, "--sw-cache-mb", "100")...)

	v2 := v1
	deadline := time.Now().Add(60 * time.Second)
	for v2.Version == v1.Version {
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s of navigations the old worker (version %s) still controls the page", v1.Version)
		}
		s.open(b, "/about.html")
		// Chromium checks for a new worker after a navigation once the
		// worker has been idle for a moment (each event it handles defers
		// the check): read the page for a few seconds, as a user does.
		time.Sleep(3 * time.Second)
		eval(t, b, 10*time.Second, statsJS, &v2)
	}
	if v2.Cache.MaxBytes != 100<<20 {
		t.Errorf("the new worker's cache limit is %d; want %d from --sw-cache-mb 100", v2.Cache.MaxBytes, 100<<20)
	}
	var waiting bool
	eval(t, b, 10*time.Second, `navigator.serviceWorker.getRegistration().then((r) => r.waiting !== null)`, &waiting)
	if waiting {
		t.Error("a worker is left waiting after the update")
	}
	t.Logf("worker %s replaced by %s", v1.Version, v2.Version)
	checkThroughWorker(t, b, map[string][]byte{"/images/rings.png": files["/images/rings.png"], "/about.html": files["/about.html"]})
}

// TestServiceWorkerServesWithTheOriginDown: a browser visits, closes; the
// origin imports a change, which reaches the volunteers, and stops. A new
// browser on the same profile still gets the page and every file from
// the volunteers, under the new root, which only the volunteers could
// have given it.
func TestServiceWorkerServesWithTheOriginDown(t *testing.T) {
	files := demoFiles(t)
	s, vs := newSWSwarm(t, files)
	b := s.browser()
	s.open(b, "/")
	s.open(b, "/gallery/")
	b.Close()

	css := s.importNewCSS(files, "rgb(4, 5, 6)")
	for _, v := range vs {
		eventually(t, swarmWait, 200*time.Millisecond, func() error {
			if st := v.d.mustStatus(t); st.Root == nil || st.Root.Seq < 2 {
				return fmt.Errorf("volunteer root: %+v", st.Root)
			}
			return nil
		})
	}
	// The volunteers warm their caches with the new root's blocks in the
	// background; on a loaded machine that can lag. What this test is
	// about is the worker, so every file is pulled through each
	// volunteer once, making sure they hold it before the origin goes.
	files["/css/site.css"] = css
	s.pullThrough(vs, files)
	s.origin.stop(t, syscall.SIGINT)

	b = s.browser()
	s.open(b, "/")
	var border string
	eval(t, b, 10*time.Second, `getComputedStyle(document.body).borderTopColor`, &border)
	if border != "rgb(4, 5, 6)" {
		t.Errorf("with the origin down, the page has the old style sheet (border-top-color %q): the root did not come from the volunteers", border)
	}
	checkThroughWorker(t, b, files)
	if st := workerStats(t, b); st.RootSeq != 2 {
		t.Errorf("the worker holds root seq %d; want 2, from the volunteers", st.RootSeq)
	}
}

// TestServiceWorkerAbortStopsBlockFetches: a page that aborts a download
// after its first bytes stops the worker fetching the rest of the file
// (counted in bytes on the volunteers: what was asked for ahead, at most
// PREFETCH blocks, and nothing after).
func TestServiceWorkerAbortStopsBlockFetches(t *testing.T) {
	const blocks = 64
	files := map[string][]byte{
		"/index.html":    []byte(`<!doctype html><html><head><meta charset="utf-8"><title>abort</title><script src="/grits/v1/register.js"></script></head><body>abort</body></html>`),
		"/media/big.bin": randBytes(11, blocks<<18), // 256 KiB blocks
	}
	s, vs := newSWSwarm(t, files)
	b := s.browser()
	s.open(b, "/")
	n0 := served(t, vs, "block").Bytes
	var got int
	eval(t, b, 60*time.Second, `(async () => {
  const ctl = new AbortController();
  const r = await fetch('/media/big.bin', { signal: ctl.signal });
  const reader = r.body.getReader();
  const { value } = await reader.read();
  ctl.abort();
  await new Promise((ok) => setTimeout(ok, 2000)); // time for any fetch still going to show
  return value.length;
})()`, &got)
	n := served(t, vs, "block").Bytes - n0
	t.Logf("read %d bytes, aborted; the volunteers served %d of the file's %d bytes", got, n, blocks<<18)
	if got == 0 {
		t.Fatal("no bytes before the abort")
	}
	if n > (blocks<<18)*4/10 {
		t.Errorf("after an abort at the first bytes, the volunteers still served %d of %d bytes", n, blocks<<18)
	}
}

// TestServiceWorkerOffline: what a browser has seen stays available with
// the origin and every volunteer gone: a new browser on the same profile
// loads the pages and files from the worker's cache, byte-exact.
func TestServiceWorkerOffline(t *testing.T) {
	files := demoFiles(t)
	s, vs := newSWSwarm(t, files)
	b := s.browser()
	s.open(b, "/")
	checkThroughWorker(t, b, files) // every file once through the worker
	workerStats(t, b)               // answers once the worker's cache writes are done
	b.Close()

	for _, srv := range []*server{s.origin, vs[0].srv, vs[1].srv} {
		srv.stop(t, syscall.SIGINT)
	}
	b = s.browser()
	s.open(b, "/gallery/")
	checkThroughWorker(t, b, files)
	st := workerStats(t, b)
	t.Logf("offline: %+v", st)
	if st.BytesFromCache == 0 || st.BytesFromVolunteers != 0 || st.BytesFromOrigin != 0 {
		t.Errorf("offline, the worker served %d bytes from its cache, %d from volunteers, %d from the origin; want all from the cache",
			st.BytesFromCache, st.BytesFromVolunteers, st.BytesFromOrigin)
	}
}

// pullThrough fetches every file through each volunteer's HTTPS
// endpoints (lookup, then the blocks), verified, so that each holds it.
func (s *swSite) pullThrough(vs []volunteerNode, files map[string][]byte) {
	s.t.Helper()
	key := gwParseKey(s.t, s.siteKey)
	c := gwNewH2(s.t, s.pool, nil)
	for _, v := range vs {
		base := "https://" + v.addr
		for p, want := range files {
			if strings.HasSuffix(p, "/") {
				continue // a directory's index: its file is listed too
			}
			_, f, inline, nodes := gwLookup(s.t, c, base, strings.TrimPrefix(p, "/"), key, len(want))
			got := inline
			if got == nil {
				got, _ = gwFetchFile(s.t, c, base, f, nodes)
			}
			if !bytes.Equal(got, want) {
				s.t.Fatalf("%s through volunteer %s: %d bytes, want %d", p, v.addr, len(got), len(want))
			}
		}
	}
}

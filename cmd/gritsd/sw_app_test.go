package main_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// appWorkerJS is a stand-in app's own module service worker, shaped as
// Mastodon's sw.ts: a small cache of its own, a push-like handler, and
// grits imported statically for the static files
// (docs/integrations/mastodon.md).
const appWorkerJS = `import { handleFetch, handleMessage, prepare, settings } from '/grits/v1/sw-lib.js';

const APP_CACHE = 'app-cache-v1';
self.addEventListener('install', (event) => {
  self.skipWaiting();
  event.waitUntil(Promise.all([prepare(), caches.open(APP_CACHE).then((c) => c.put('/app/cached.json',
    new Response('{"from":"the app cache"}', { headers: { 'Content-Type': 'application/json' } })))]));
});
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  if (handleFetch(event)) return;
  const url = new URL(event.request.url);
  if (url.pathname === '/app/cached.json') event.respondWith(caches.open(APP_CACHE).then((c) => c.match('/app/cached.json')));
});
// A router added after grits (as a bundle's workbox would be): it must
// never see what grits answered.
self.addEventListener('fetch', (event) => {
  if (new URL(event.request.url).pathname.startsWith('/static/')) self.routerSawStatic = (self.routerSawStatic || 0) + 1;
});
self.addEventListener('message', (event) => {
  if (handleMessage(event)) return;
  const d = event.data || {};
  if (d.type === 'push-like') {
    event.waitUntil(self.clients.matchAll({ includeUncontrolled: true }).then((cs) => {
      for (const c of cs) c.postMessage({ type: 'pushed', body: d.body, routerSawStatic: self.routerSawStatic || 0, grits: settings() });
    }));
  }
});
`

// appPage is the app's page: it registers the app's own worker (never
// grits' register.js: one worker per scope), and shows the tree's
// static files.
const appPage = `<!doctype html><html><head><meta charset="utf-8"><title>app</title>
<link rel="stylesheet" href="/static/app.css">
<script>navigator.serviceWorker.register('/sw.js', { type: 'module', scope: '/', updateViaCache: 'none' });</script>
</head><body><h1>app</h1><img src="/static/logo.png"></body></html>`

// standInApp is the site's app server behind the origin's --upstream:
// pages, its worker and a dynamic route, counting what reaches it.
type standInApp struct {
	url                  string
	pages, workers, apis atomic.Int64
	cached               atomic.Int64 // /app/cached.json asked of the network
	static               atomic.Int64 // /static/ reaching the app (must not)
}

func newStandInApp(t *testing.T) *standInApp {
	t.Helper()
	a := &standInApp{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.url = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/sw.js":
			a.workers.Add(1)
			w.Header().Set("Content-Type", "text/javascript")
			w.Header().Set("Cache-Control", "no-cache")
			fmt.Fprint(w, appWorkerJS)
		case r.URL.Path == "/api/now":
			n := a.apis.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"n":%d}`, n)
		case r.URL.Path == "/app/cached.json":
			a.cached.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"from":"the network"}`)
		case strings.HasPrefix(r.URL.Path, "/static/"):
			a.static.Add(1)
			http.NotFound(w, r)
		default:
			a.pages.Add(1)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, appPage)
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

// TestServiceWorkerInsideAnAppsWorker: an app registers its own module
// worker at scope / that imports /grits/v1/sw-lib.js. Grits answers the
// static files (under --sw-paths /static/) from volunteers, byte-exact
// and verified, before the app's later fetch listener sees them; the
// app's own cache, its dynamic route (to the network, through the
// origin's proxy) and its push-like messages keep working; grits'
// stats message still answers.
func TestServiceWorkerInsideAnAppsWorker(t *testing.T) {
	app := newStandInApp(t)
	files := map[string][]byte{
		"/static/app.css":  bytes.Repeat([]byte("h1 { color: rgb(4, 5, 6) }\n"), 300),
		"/static/logo.png": gwPNG(t),
		"/static/big.bin":  randBytes(16, 1<<20+12345), // 5 blocks
	}
	s, vs := newSWSwarm(t, files, "--upstream", app.url, "--sw-paths", "/static/")
	b := s.browser()
	s.open(b, "/") // the app's page registers the app's worker; it claims the page
	var script string
	eval(t, b, 10*time.Second, `navigator.serviceWorker.controller.scriptURL`, &script)
	if !strings.HasSuffix(script, "/sw.js") {
		t.Fatalf("the page is controlled by %s; want the app's /sw.js", script)
	}
	s.open(b, "/") // now under the app's worker from the start

	before := served(t, vs, "lookup").Requests + served(t, vs, "block").Requests
	originBefore := s.o.counts(t).ByKind["site"]
	checkThroughWorker(t, b, files)
	var verified string
	eval(t, b, 30*time.Second, `fetch('/static/app.css').then((r) => r.headers.get('X-Grits-Verified') || '')`, &verified)
	if !strings.HasPrefix(verified, "b3-") {
		t.Errorf("/static/app.css did not come through grits (X-Grits-Verified %q)", verified)
	}
	if n := served(t, vs, "lookup").Requests + served(t, vs, "block").Requests - before; n == 0 {
		t.Error("the volunteers answered no lookup or block: the static files did not come from the swarm")
	}
	if d := s.o.counts(t).ByKind["site"]; d.Bytes != originBefore.Bytes {
		t.Errorf("the origin served %d bytes of site files while grits answered; want none", d.Bytes-originBefore.Bytes)
	}
	if n := app.static.Load(); n != 0 {
		t.Errorf("%d requests for /static/ reached the app", n)
	}

	// The app's own handling: its cache, and a dynamic route to the network.
	var got struct {
		Cached string `json:"cached"`
		API1   int    `json:"api1"`
		API2   int    `json:"api2"`
	}
	eval(t, b, 30*time.Second, `(async () => ({
  cached: (await (await fetch('/app/cached.json')).json()).from,
  api1: (await (await fetch('/api/now')).json()).n,
  api2: (await (await fetch('/api/now')).json()).n,
}))()`, &got)
	if got.Cached != "the app cache" || app.cached.Load() != 0 {
		t.Errorf("/app/cached.json: %q, %d requests to the app; want the app's cache, none", got.Cached, app.cached.Load())
	}
	if got.API2 != got.API1+1 || app.apis.Load() < 2 {
		t.Errorf("/api/now: %d then %d, %d at the app; want each from the app", got.API1, got.API2, app.apis.Load())
	}

	// A push-like message: the app's handler answers every client.
	var pushed struct {
		Type            string                   `json:"type"`
		Body            string                   `json:"body"`
		RouterSawStatic int                      `json:"routerSawStatic"`
		Grits           struct{ Paths []string } `json:"grits"`
	}
	eval(t, b, 10*time.Second, `new Promise((ok) => {
  navigator.serviceWorker.addEventListener('message', (e) => { if (e.data && e.data.type === 'pushed') ok(e.data); });
  navigator.serviceWorker.controller.postMessage({ type: 'push-like', body: 'a new mention' });
})`, &pushed)
	if pushed.Body != "a new mention" {
		t.Errorf("push-like message: %+v", pushed)
	}
	if pushed.RouterSawStatic != 0 {
		t.Errorf("a fetch listener after grits saw %d requests grits answered; want none (stopImmediatePropagation)", pushed.RouterSawStatic)
	}
	if len(pushed.Grits.Paths) != 1 || pushed.Grits.Paths[0] != "/static/" {
		t.Errorf("grits' settings in the app's worker: %+v; want the origin's sw_paths [/static/]", pushed.Grits)
	}
	st := workerStats(t, b) // grits' own message, through the app's handler
	if st.BytesFromVolunteers == 0 {
		t.Errorf("grits' stats say no bytes came from volunteers: %+v", st)
	}
	s.noReports()
}

// TestServiceWorkerRegisteredByTheOrigin: a site generator's output,
// whose pages do not mention grits, served by an origin with
// --inject-sw-tree: the pages the origin serves carry the registration
// script once, the worker takes the page over, and the site's files then
// come from volunteers. The pages the worker serves from the tree (a
// static site's navigations) are the origin's, byte for byte, ETag
// included: the script inserted the same way.
func TestServiceWorkerRegisteredByTheOrigin(t *testing.T) {
	files := map[string][]byte{
		"/index.html":   []byte(`<!doctype html><html><head><meta charset="utf-8"><title>generated</title><link rel="stylesheet" href="/css/site.css"></head><body><img src="/img/logo.png"></body></html>`),
		"/about.html":   []byte(`<!doctype html><html><head><meta charset="utf-8"><title>about</title></head><body>about</body></html>`),
		"/css/site.css": bytes.Repeat([]byte("body { margin: 1px }\n"), 100),
		"/img/logo.png": gwPNG(t),
	}
	s, vs := newSWSwarm(t, files, "--inject-sw-tree")
	b := s.browser()
	s.open(b, "/") // waits for the worker to control the page
	s.open(b, "/about.html")
	var scripts int
	eval(t, b, 10*time.Second, `document.querySelectorAll('script[src="/grits/v1/register.js"]').length`, &scripts)
	if scripts != 1 {
		t.Errorf("the page the worker served holds %d registration scripts; want 1", scripts)
	}
	// The origin's own answer for the page, beside the worker's.
	c := gwNewH2(t, s.pool, nil)
	resp, page := c.get(t, s.originURL+"/about.html")
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte(`<script src="/grits/v1/register.js" defer></script></head>`)) {
		t.Fatalf("the origin's /about.html: %s, %q", resp.Status, page)
	}
	var got struct {
		ETag, Verified, Body string
	}
	eval(t, b, 20*time.Second, `fetch('/about.html').then(async (r) => ({ etag: r.headers.get('ETag'), verified: r.headers.get('X-Grits-Verified') || '', body: await r.text() }))`, &got)
	if got.Verified == "" || got.ETag != resp.Header.Get("ETag") || got.Body != string(page) {
		t.Errorf("the worker's /about.html: ETag %s, verified %q, %q; want the origin's: ETag %s, %q", got.ETag, got.Verified, got.Body, resp.Header.Get("ETag"), page)
	}
	before := served(t, vs, "lookup").Requests + served(t, vs, "block").Requests
	checkThroughWorker(t, b, map[string][]byte{"/css/site.css": files["/css/site.css"], "/img/logo.png": files["/img/logo.png"]})
	if n := served(t, vs, "lookup").Requests + served(t, vs, "block").Requests - before; n == 0 {
		t.Error("the volunteers answered nothing: the files did not come from the swarm")
	}
	s.noReports()
}

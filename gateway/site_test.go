package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

func TestSite(t *testing.T) {
	s := newGWSite(t)
	log := newGWServeLog()
	cfg := s.config()
	cfg.OnServe = log.onServe
	g := startGW(t, cfg)
	t.Run("paths", func(t *testing.T) { testSitePaths(t, s, g, log) })

	t.Run("conditional", func(t *testing.T) {
		resp, _ := g.get(t, "/")
		etag := resp.Header.Get("ETag")
		if lm := resp.Header.Get("Last-Modified"); lm != gwMTime.Format(http.TimeFormat) {
			t.Fatalf("Last-Modified %q", lm)
		}
		for _, hdr := range []map[string]string{
			{"If-None-Match": etag},
			{"If-Modified-Since": gwMTime.Format(http.TimeFormat)},
			{"If-Modified-Since": gwMTime.Add(time.Hour).Format(http.TimeFormat)},
		} {
			resp, body := g.do(t, http.MethodGet, "/", hdr)
			if resp.StatusCode != 304 || len(body) != 0 {
				t.Errorf("%v: status %d", hdr, resp.StatusCode)
			}
		}
		resp, _ = g.do(t, http.MethodGet, "/", map[string]string{"If-Modified-Since": gwMTime.Add(-time.Hour).Format(http.TimeFormat)})
		if resp.StatusCode != 200 {
			t.Errorf("modified since: status %d", resp.StatusCode)
		}
		resp, _ = g.do(t, http.MethodGet, "/style.css", map[string]string{"If-None-Match": etag})
		if resp.StatusCode != 200 {
			t.Errorf("another file's ETag: status %d", resp.StatusCode)
		}
		if resp.Header.Get("Last-Modified") != "" {
			t.Errorf("Last-Modified without an mtime")
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		resp, body := g.do(t, http.MethodHead, "/data/huge.bin", nil)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(s.files["data/huge.bin"])) {
			t.Fatalf("status %d, %d body bytes, length %d", resp.StatusCode, len(body), resp.ContentLength)
		}
	})

	t.Run("ranges", func(t *testing.T) {
		for _, name := range []string{"data/big.bin", "data/huge.bin"} {
			data := s.files[name]
			n := len(data)
			ranges := [][2]int{
				{0, 0}, {0, gwChunkSize - 1}, {gwChunkSize - 1, gwChunkSize}, {gwChunkSize - 10, 3*gwChunkSize + 10},
				{n - 1, n - 1}, {1, n - 2},
			}
			if n > 1024*gwChunkSize {
				// Across the first index node's end, and across a reader
				// window.
				ranges = append(ranges, [2]int{1024*gwChunkSize - 5, 1024*gwChunkSize + 5}, [2]int{100*gwChunkSize + 7, 300*gwChunkSize + 11})
			}
			rng := rand.New(rand.NewPCG(7, 7))
			for range 12 {
				a := rng.IntN(n)
				b := a + rng.IntN(min(n-a, 3*gwChunkSize))
				ranges = append(ranges, [2]int{a, b})
			}
			for _, r := range ranges {
				hdr := map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", r[0], r[1])}
				resp, body := g.do(t, http.MethodGet, "/"+name, hdr)
				if resp.StatusCode != 206 {
					t.Fatalf("%s %v: status %d", name, r, resp.StatusCode)
				}
				if !bytes.Equal(body, data[r[0]:r[1]+1]) {
					t.Fatalf("%s %v: wrong bytes", name, r)
				}
				if cr, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], n); cr != want {
					t.Fatalf("%s: Content-Range %q, want %q", name, cr, want)
				}
			}
			resp, body := g.do(t, http.MethodGet, "/"+name, map[string]string{"Range": "bytes=-100"})
			if resp.StatusCode != 206 || !bytes.Equal(body, data[n-100:]) {
				t.Fatalf("%s suffix: status %d", name, resp.StatusCode)
			}
			resp, _ = g.do(t, http.MethodGet, "/"+name, map[string]string{"Range": fmt.Sprintf("bytes=%d-", n)})
			if resp.StatusCode != 416 {
				t.Fatalf("%s unsatisfiable: status %d", name, resp.StatusCode)
			}
			resp, body = g.do(t, http.MethodGet, "/"+name, map[string]string{"Range": "bytes=0-9,5000-5009"})
			if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") ||
				!bytes.Contains(body, data[:10]) || !bytes.Contains(body, data[5000:5010]) {
				t.Fatalf("%s multi-range: status %d", name, resp.StatusCode)
			}
		}
	})

	t.Run("lazy", func(t *testing.T) {
		cg := &gwCountingGetter{g: s.store}
		cfg := s.config()
		cfg.Store = cg
		g := startGW(t, cfg)
		// Ten bytes in the middle of a 4 MiB file: the path's directory
		// nodes, the file's top and index node, and one chunk.
		resp, body := g.do(t, http.MethodGet, "/data/huge.bin", map[string]string{"Range": "bytes=3000000-3000009"})
		if resp.StatusCode != 206 || !bytes.Equal(body, s.files["data/huge.bin"][3000000:3000010]) {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// Without a type for .bin in the system's MIME table, ServeContent
		// sniffs the first chunk too.
		if n := cg.n.Load(); n > 8 {
			t.Errorf("%d store reads for a 10-byte range", n)
		}
	})

	t.Run("fallback", func(t *testing.T) {
		cfg := s.config()
		cfg.Fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Fallback", "yes")
			io.WriteString(w, "from the app")
		})
		g := startGW(t, cfg)
		for p, fallback := range map[string]bool{
			"/missing.html":       true,
			"/style.css/x":        true,
			"/a//b":               true, // not a tree path; the app may know it
			"/":                   false,
			"/nohtml/":            true, // a directory without an index: the app's (an app's "/")
			"/link":               false,
			"/grits/v1/nothing":   false,
			"/grits/v1/block/bad": false,
		} {
			resp, body := g.get(t, p)
			if got := resp.Header.Get("X-Fallback") == "yes"; got != fallback {
				t.Errorf("%s: fallback %v, want %v (status %d)", p, got, fallback, resp.StatusCode)
			}
			if fallback && (string(body) != "from the app" || resp.Header.Get(RootHeader) == "") {
				t.Errorf("%s: body %q, Grits-Root %q", p, body, resp.Header.Get(RootHeader))
			}
		}
	})

	t.Run("not a site", func(t *testing.T) {
		cfg := s.config()
		cfg.Site = false
		g := startGW(t, cfg)
		for _, p := range []string{"/", "/index.html", "/docs/"} {
			if resp, _ := g.get(t, p); resp.StatusCode != 404 {
				t.Errorf("%s: status %d", p, resp.StatusCode)
			}
		}
		if resp, _ := g.get(t, "/grits/v1/root"); resp.StatusCode != 200 {
			t.Errorf("API: status %d", resp.StatusCode)
		}
	})

	t.Run("no root", func(t *testing.T) {
		g := startGW(t, Config{Store: s.store, Site: true})
		if resp, _ := g.get(t, "/"); resp.StatusCode != 404 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

func TestTreeFileReader(t *testing.T) {
	s := newGWSite(t)
	ctx := context.Background()
	for _, name := range []string{"data/huge.bin", "data/big.bin", "empty.txt", "docs/guide.txt"} {
		data := s.files[name]
		f := s.lookup(t, name).Node.(*tree.FileNode)
		rd := newTreeFileReader(ctx, s.store, f)
		got, err := io.ReadAll(rd)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: ReadAll: %v, equal %v", name, err, bytes.Equal(got, data))
		}
		if end, err := rd.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
			t.Fatalf("%s: SeekEnd %d, %v", name, end, err)
		}
		rng := rand.New(rand.NewPCG(1, uint64(len(data))))
		for range 50 {
			if len(data) == 0 {
				break
			}
			off := rng.IntN(len(data))
			n := min(len(data)-off, rng.IntN(3*gwChunkSize)+1)
			if _, err := rd.Seek(int64(off), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(rd, buf); err != nil {
				t.Fatalf("%s: read %d at %d: %v", name, n, off, err)
			}
			if !bytes.Equal(buf, data[off:off+n]) {
				t.Fatalf("%s: wrong bytes at %d", name, off)
			}
			// Backwards, relative.
			if _, err := rd.Seek(-int64(n), io.SeekCurrent); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rd, buf); err != nil || !bytes.Equal(buf, data[off:off+n]) {
				t.Fatalf("%s: re-read at %d: %v", name, off, err)
			}
		}
		if _, err := rd.Seek(-1, io.SeekStart); err == nil {
			t.Errorf("%s: negative seek allowed", name)
		}
		if _, err := rd.Seek(int64(len(data))+10, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if n, err := rd.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("%s: read past the end: %d, %v", name, n, err)
		}
	}

	t.Run("missing chunk", func(t *testing.T) {
		f := s.lookup(t, "data/big.bin").Node.(*tree.FileNode)
		missing := s.chunks(t, "data/big.bin")[2].Hash
		g := gwGetterFunc(func(ctx context.Context, h blockstore.Hash) ([]byte, error) {
			if h == missing {
				return nil, fmt.Errorf("gone")
			}
			return s.store.Get(ctx, h)
		})
		rd := newTreeFileReader(ctx, g, f)
		_, err := io.ReadAll(rd)
		if err == nil || rd.Err() == nil {
			t.Fatal("read through a missing chunk")
		}
	})
}

// testSitePaths checks the site's answer for each kind of path.
func testSitePaths(t *testing.T, s *gwSite, g *gwServer, log *gwServeLog) {
	for _, tc := range []struct {
		name, path string
		code       int
		ctype      string // prefix
		body       []byte
		location   string
		etagOf     string // the file whose node hash is the ETag
	}{
		{name: "top index", path: "/", code: 200, ctype: "text/html", body: s.files["index.html"], etagOf: "index.html"},
		{name: "index by name", path: "/index.html", code: 200, ctype: "text/html", body: s.files["index.html"], etagOf: "index.html"},
		{name: "dir index", path: "/docs/", code: 200, ctype: "text/html", body: s.files["docs/index.html"], etagOf: "docs/index.html"},
		{name: "dir without slash", path: "/docs", code: 301, location: "/docs/"},
		{name: "dir without slash keeps query", path: "/docs?x=1", code: 301, location: "/docs/?x=1"},
		{name: "dir without index", path: "/nohtml/", code: 404},
		{name: "css", path: "/style.css", code: 200, ctype: "text/css", body: s.files["style.css"], etagOf: "style.css"},
		{name: "js", path: "/app.js", code: 200, ctype: "text/javascript", body: s.files["app.js"], etagOf: "app.js"},
		{name: "txt", path: "/docs/guide.txt", code: 200, ctype: "text/plain", body: s.files["docs/guide.txt"], etagOf: "docs/guide.txt"},
		{name: "no type, no extension: never sniffed", path: "/noext", code: 200, ctype: "application/octet-stream", body: s.files["noext"], etagOf: "noext"},
		{name: "stored type", path: "/typed.txt", code: 200, ctype: "text/markdown; charset=utf-8", body: s.files["typed.txt"], etagOf: "typed.txt"},
		{name: "empty", path: "/empty.txt", code: 200, ctype: "text/plain", body: []byte{}, etagOf: "empty.txt"},
		{name: "big", path: "/data/big.bin", code: 200, ctype: "application/octet-stream", body: s.files["data/big.bin"], etagOf: "data/big.bin"},
		{name: "huge", path: "/data/huge.bin", code: 200, ctype: "application/octet-stream", body: s.files["data/huge.bin"], etagOf: "data/huge.bin"},
		{name: "file with slash", path: "/style.css/", code: 404},
		{name: "missing", path: "/missing.html", code: 404},
		{name: "under a file", path: "/style.css/x", code: 404},
		{name: "symlink", path: "/link", code: 404},
		{name: "through symlink", path: "/linkdir/guide.txt", code: 404},
		{name: "api prefix without slash", path: "/grits/v1", code: 404},
		// Traversal: refused by tree.ParsePath, nothing served.
		{name: "dot dot", path: "/../index.html", code: 400},
		{name: "inner dot dot", path: "/docs/../index.html", code: 400},
		{name: "escaped dot dot", path: "/%2e%2e/index.html", code: 400},
		{name: "escaped slash dot dot", path: "/docs/..%2findex.html", code: 400},
		{name: "encoded NUL", path: "/index.html%00", code: 400},
		{name: "encoded NUL dir", path: "/docs%00/", code: 400},
		{name: "double slash", path: "//index.html", code: 400},
		{name: "inner double slash", path: "/docs//index.html", code: 400},
		{name: "dot", path: "/./index.html", code: 400},
		{name: "backslash dot dot", path: "/docs/..%5cindex.html", code: 404},
		{name: "too long name", path: "/" + strings.Repeat("x", 300), code: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := g.get(t, tc.path)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %.100s", resp.StatusCode, tc.code, body)
			}
			if tc.code >= 400 {
				if bytes.Contains(body, []byte("<h1>")) {
					t.Fatalf("error page serves content: %q", body)
				}
				return
			}
			if tc.location != "" {
				if got := resp.Header.Get("Location"); got != tc.location {
					t.Fatalf("Location %q, want %q", got, tc.location)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %s", ct, tc.ctype)
			}
			if !bytes.Equal(body, tc.body) {
				t.Fatalf("body %d bytes, want %d", len(body), len(tc.body))
			}
			if et, want := resp.Header.Get("ETag"), `"`+s.lookup(t, tc.etagOf).Entry.Hash.String()+`"`; et != want {
				t.Errorf("ETag %s, want %s", et, want)
			}
			if resp.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
			}
			if resp.Header.Get(RootHeader) == "" {
				t.Errorf("no Grits-Root")
			}
		})
	}
	if n, b := log.get("site"); n == 0 || b == 0 {
		t.Errorf("OnServe site: %d calls, %d bytes", n, b)
	}
}

// TestSiteInjectsTheScript: with InjectScript, the tree's HTML pages get
// the script before </head> (else at the end), with their own ETag;
// other types, and pages that hold the script already, are served as
// stored; ranges and conditional requests apply to what is served.
func TestSiteInjectsTheScript(t *testing.T) {
	const tag = `<script src="/grits/v1/register.js" defer></script>`
	s := newGWSite(t)
	cfg := s.config()
	cfg.InjectScript = tag
	g := startGW(t, cfg)
	stored := s.files["index.html"]
	want := append(append([]byte(nil), stored...), tag...) // no </head>, no </body>: at the end
	resp, body := g.get(t, "/")
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("/: status %d, %q; want %q", resp.StatusCode, body, want)
	}
	etag := resp.Header.Get("ETag")
	if plain := `"` + s.lookup(t, "index.html").Entry.Hash.String() + `"`; etag == plain || etag == "" {
		t.Errorf("ETag %s: want one of its own, not the stored file's %s", etag, plain)
	}
	if resp, body := g.do(t, http.MethodGet, "/", map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 || len(body) != 0 {
		t.Errorf("If-None-Match its ETag: status %d", resp.StatusCode)
	}
	if resp, body := g.do(t, http.MethodGet, "/", map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(stored))}); resp.StatusCode != 206 || string(body) != tag {
		t.Errorf("range over the script: status %d, %q", resp.StatusCode, body)
	}
	if _, body := g.get(t, "/style.css"); !bytes.Equal(body, s.files["style.css"]) {
		t.Error("a style sheet was changed")
	}

	for name, tc := range map[string]struct{ page, want string }{
		"head":    {"<html><head><title>x</title></HEAD><body>b</body></html>", "<html><head><title>x</title>" + tag + "</HEAD><body>b</body></html>"},
		"body":    {"<p>x</p></body>", "<p>x</p>" + tag + "</body>"},
		"already": {"<head>" + tag + "</head>", "<head>" + tag + "</head>"},
		// Letters whose lower case is shorter or longer in UTF-8, and a
		// byte that is no UTF-8: the offsets are still the page's.
		"non-ASCII": {"<head><title>\u0130\u023a\xff</title></head>", "<head><title>\u0130\u023a\xff</title>" + tag + "</head>"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := string(InjectHTML([]byte(tc.page), tag)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSiteMediaHost: a name in Config.Hosts serves the files of its tree
// path, CORS-open, and nothing else: no index pages, no redirects, no
// app (a Fallback is set and never asked).
func TestSiteMediaHost(t *testing.T) {
	s := newGWSite(t)
	cfg := s.config()
	cfg.Hosts = map[string]string{"media.example": "/docs"}
	cfg.Fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the app was asked for %s on %s", r.URL.Path, r.Host)
		http.Error(w, "app", http.StatusTeapot)
	})
	g := startGW(t, cfg)
	get := func(host, path string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, g.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	for _, host := range []string{"media.example", "MEDIA.example:443"} {
		resp, body := get(host, "/index.html")
		if resp.StatusCode != 200 || !bytes.Equal(body, s.files["docs/index.html"]) || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s/index.html: %d %q, CORS %q; want the tree's docs/index.html, CORS open", host, resp.StatusCode, body, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	for _, p := range []string{"/", "/missing.html", "/index.html/", "/../style.css"} {
		if resp, _ := get("media.example", p); resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("media.example%s: status %d, want 404 (or 400)", p, resp.StatusCode)
		}
	}
	// The site's own name is untouched.
	if resp, body := get("site.example", "/style.css"); resp.StatusCode != 200 || !bytes.Equal(body, s.files["style.css"]) {
		t.Errorf("the site's /style.css: %d", resp.StatusCode)
	}
}

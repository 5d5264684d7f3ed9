package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

func TestRootEndpoint(t *testing.T) {
	s := newGWSite(t)
	log := newGWServeLog()
	cfg := s.config()
	cfg.OnServe = log.onServe
	g := startGW(t, cfg)

	resp, body := g.get(t, "/grits/v1/root")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !bytes.Equal(body, s.root.Encode()) || len(body) != tree.RootSize {
		t.Fatalf("root body differs from the signed root")
	}
	for k, want := range map[string]string{
		"Content-Type":  "application/octet-stream",
		"Cache-Control": "no-cache",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if n, b := log.get("root"); n != 1 || b != tree.RootSize {
		t.Errorf("OnServe root: %d calls, %d bytes", n, b)
	}
	resp, body = g.do(t, http.MethodHead, "/grits/v1/root", nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != tree.RootSize {
		t.Errorf("HEAD: status %d, %d body bytes, length %d", resp.StatusCode, len(body), resp.ContentLength)
	}

	// The conditional check an open page makes: the root's hash as an
	// ETag, a 304 with neither body nor Grits-Root when it is current.
	etag := `"` + s.root.Hash().String() + `"`
	if got := resp.Header.Get("ETag"); got != etag {
		t.Errorf("ETag %q, want %q", got, etag)
	}
	resp, body = g.do(t, http.MethodGet, "/grits/v1/root", map[string]string{"If-None-Match": `"b3-old", ` + etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get(RootHeader) != "" {
		t.Errorf("If-None-Match with the current root: status %d, %d bytes, Grits-Root %q; want 304, nothing", resp.StatusCode, len(body), resp.Header.Get(RootHeader))
	}
	if n, b := log.get("root"); n != 3 || b != tree.RootSize {
		t.Errorf("OnServe root after the 304: %d calls, %d bytes", n, b)
	}
	resp, body = g.do(t, http.MethodGet, "/grits/v1/root", map[string]string{"If-None-Match": `"b3-an-older-root"`})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, s.root.Encode()) || resp.Header.Get(RootHeader) == "" {
		t.Errorf("If-None-Match with another root: status %d, %d bytes; want 200 and the root", resp.StatusCode, len(body))
	}

	t.Run("no root", func(t *testing.T) {
		g := startGW(t, Config{Store: s.store})
		resp, _ := g.get(t, "/grits/v1/root")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
		if resp.Header.Get(RootHeader) != "" {
			t.Errorf("Grits-Root on a node without a root")
		}
	})
}

func TestGritsRootHeader(t *testing.T) {
	s := newGWSite(t)
	g := startGW(t, s.config())
	for _, p := range []string{"/grits/v1/root", "/grits/v1/peers", "/", "/missing", "/grits/v1/block/nothex", "/grits/v1/nothing"} {
		resp, _ := g.get(t, p)
		raw, err := base64.RawURLEncoding.DecodeString(resp.Header.Get(RootHeader))
		if err != nil {
			t.Fatalf("%s: Grits-Root: %v", p, err)
		}
		r, err := tree.DecodeRoot(raw)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if r != s.root {
			t.Fatalf("%s: Grits-Root is not the latest root", p)
		}
		if err := r.Verify(s.pub, time.Now()); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if resp.Header.Get("Timing-Allow-Origin") != "*" {
			t.Errorf("%s: no Timing-Allow-Origin", p)
		}
	}
}

// expectedLookupFrame is what the QUIC server writes for the same lookup.
func expectedLookupFrame(t *testing.T, s *gwSite, treeHash blockstore.Hash, p string, signed *tree.Root, maxInline uint64) []byte {
	t.Helper()
	ctx := context.Background()
	path := tree.MustParsePath(p)
	proof, res, err := tree.BuildProof(ctx, s.store, treeHash, path)
	if err != nil {
		t.Fatal(err)
	}
	var inline []byte
	if res.Status == tree.Found && res.Entry.Kind == tree.KindFile && res.Entry.Size <= maxInline {
		var buf bytes.Buffer
		f := res.Node.(*tree.FileNode)
		if err := tree.ReadFile(ctx, s.store, f, 0, f.Size, &buf); err != nil {
			t.Fatal(err)
		}
		inline = append([]byte{}, buf.Bytes()...)
	}
	m := proto.NewLookupResult(res.Status, proof, inline, false)
	m.Root = signed
	frame, err := proto.AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// checkInline verifies inline data against the file node, as SPEC.md
// section 4.11 obliges a client to.
func checkInline(t *testing.T, data []byte, res tree.Result) {
	t.Helper()
	f := res.Node.(*tree.FileNode)
	if uint64(len(data)) != res.Entry.Size || f.Level != 0 {
		t.Fatalf("inline %d bytes for a %d-byte file (level %d)", len(data), res.Entry.Size, f.Level)
	}
	for i, h := range f.Hashes {
		lo := i * int(f.ChunkSize)
		hi := min(len(data), lo+int(f.ChunkSize))
		if blockstore.Sum(data[lo:hi]) != h {
			t.Fatalf("inline chunk %d does not hash to the file node's", i)
		}
	}
}

func TestLookupEndpoint(t *testing.T) {
	s := newGWSite(t)
	treeHex := s.root.Tree.String()
	bigTree := startGW(t, s.config())
	type tc struct {
		name     string
		url      string
		path     string // the tree path verified
		latest   bool
		status   tree.Status
		inline   bool
		maxInl   uint64
		cacheCtl string
	}
	cases := []tc{
		{name: "latest small file", url: "/grits/v1/lookup/latest/docs/guide.txt", path: "docs/guide.txt", latest: true, status: tree.Found, inline: true, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
		{name: "tree small file", url: "/grits/v1/lookup/" + treeHex + "/docs/guide.txt", path: "docs/guide.txt", status: tree.Found, inline: true, maxInl: proto.InlineMax, cacheCtl: cacheImmutable},
		{name: "multi-chunk inline", url: "/grits/v1/lookup/" + treeHex + "/text/lorem.txt", path: "text/lorem.txt", status: tree.Found, inline: true, maxInl: proto.InlineMax, cacheCtl: cacheImmutable},
		{name: "empty file inline", url: "/grits/v1/lookup/latest/empty.txt", path: "empty.txt", latest: true, status: tree.Found, inline: true, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
		{name: "too big to inline", url: "/grits/v1/lookup/latest/data/big.bin", path: "data/big.bin", latest: true, status: tree.Found, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
		{name: "inline=0", url: "/grits/v1/lookup/latest/docs/guide.txt?inline=0", path: "docs/guide.txt", latest: true, status: tree.Found, maxInl: 0, cacheCtl: "no-cache"},
		{name: "directory", url: "/grits/v1/lookup/" + treeHex + "/docs/", path: "docs", status: tree.Found, maxInl: proto.InlineMax, cacheCtl: cacheImmutable},
		{name: "top latest no slash", url: "/grits/v1/lookup/latest", path: "", latest: true, status: tree.Found, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
		{name: "top latest slash", url: "/grits/v1/lookup/latest/", path: "", latest: true, status: tree.Found, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
		{name: "absent", url: "/grits/v1/lookup/" + treeHex + "/docs/nothing.html", path: "docs/nothing.html", status: tree.Absent, maxInl: proto.InlineMax, cacheCtl: cacheImmutable},
		{name: "not a dir", url: "/grits/v1/lookup/latest/style.css/x", path: "style.css/x", latest: true, status: tree.NotDir, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
		{name: "symlink in path", url: "/grits/v1/lookup/latest/linkdir/guide.txt", path: "linkdir/guide.txt", latest: true, status: tree.SymlinkInPath, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
		{name: "symlink itself", url: "/grits/v1/lookup/latest/link", path: "link", latest: true, status: tree.Found, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
		{name: "escaped name", url: "/grits/v1/lookup/latest/docs%2Fguide.txt", path: "docs/guide.txt", latest: true, status: tree.Found, inline: true, maxInl: proto.InlineMax, cacheCtl: "no-cache"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := bigTree.get(t, c.url)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != LookupContentType {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != c.cacheCtl {
				t.Errorf("Cache-Control %q, want %q", cc, c.cacheCtl)
			}
			lr := decodeLookupFrame(t, body)
			var signed *tree.Root
			if c.latest {
				if lr.Root == nil {
					t.Fatal("latest lookup without the signed root")
				}
				if err := lr.Root.Verify(s.pub, time.Now()); err != nil {
					t.Fatal(err)
				}
				signed = lr.Root
			} else if lr.Root != nil {
				t.Fatal("root in a lookup of an explicit tree")
			}
			want := expectedLookupFrame(t, s, s.root.Tree, c.path, signed, c.maxInl)
			if !bytes.Equal(body, want) {
				t.Errorf("frame differs from the QUIC server's")
			}
			res, err := tree.Verify(s.root.Tree, tree.MustParsePath(c.path), lr.Proof)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != c.status || lr.Status != res.Status {
				t.Fatalf("status %v (claimed %v), want %v", res.Status, lr.Status, c.status)
			}
			data, has := lr.Inline()
			if has != c.inline {
				t.Fatalf("inline %v, want %v", has, c.inline)
			}
			if has {
				checkInline(t, data, res)
				if !bytes.Equal(data, s.files[c.path]) {
					t.Fatal("inline data differs from the file")
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		cg := &gwCountingGetter{g: s.store}
		cfg := s.config()
		cfg.Store = cg
		g := startGW(t, cfg)
		unknown := blockstore.Sum([]byte("no such tree")).String()
		chunk := s.chunks(t, "data/big.bin")[0].Hash.String()
		for _, c := range []struct {
			name  string
			url   string
			code  int
			store bool // may touch the store
		}{
			{"unknown tree", "/grits/v1/lookup/" + unknown + "/index.html", http.StatusNotFound, true},
			{"tree hash of a chunk", "/grits/v1/lookup/" + chunk + "/index.html", http.StatusNotFound, true},
			{"bad hash", "/grits/v1/lookup/b3-1234/index.html", http.StatusBadRequest, false},
			{"upper-case hash", "/grits/v1/lookup/" + strings.ToUpper(treeHex) + "/index.html", http.StatusBadRequest, false},
			{"no root segment", "/grits/v1/lookup/", http.StatusBadRequest, false},
			{"dot dot", "/grits/v1/lookup/latest/docs/../index.html", http.StatusBadRequest, false},
			{"escaped dot dot", "/grits/v1/lookup/latest/%2e%2e/index.html", http.StatusBadRequest, false},
			{"double slash", "/grits/v1/lookup/latest//index.html", http.StatusBadRequest, false},
			{"inner double slash", "/grits/v1/lookup/latest/docs//guide.txt", http.StatusBadRequest, false},
			{"NUL", "/grits/v1/lookup/latest/index.html%00", http.StatusBadRequest, false},
			{"dot", "/grits/v1/lookup/latest/./index.html", http.StatusBadRequest, false},
			{"bad inline", "/grits/v1/lookup/latest/index.html?inline=-1", http.StatusBadRequest, false},
			{"long name", "/grits/v1/lookup/latest/" + strings.Repeat("n", 256), http.StatusBadRequest, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := cg.n.Load()
				resp, body := g.get(t, c.url)
				if resp.StatusCode != c.code {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.code, body)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != cacheNoStore {
					t.Errorf("Cache-Control %q on an error", cc)
				}
				if !c.store && cg.n.Load() != before {
					t.Errorf("touched the store %d times", cg.n.Load()-before)
				}
			})
		}
		t.Run("latest without root", func(t *testing.T) {
			g := startGW(t, Config{Store: s.store})
			resp, _ := g.get(t, "/grits/v1/lookup/latest/index.html")
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("status %d", resp.StatusCode)
			}
		})
	})

	t.Run("HEAD", func(t *testing.T) {
		resp, body := bigTree.do(t, http.MethodHead, "/grits/v1/lookup/latest/index.html", nil)
		_, full := bigTree.get(t, "/grits/v1/lookup/latest/index.html")
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(full)) {
			t.Fatalf("HEAD: status %d, body %d, length %d (GET %d)", resp.StatusCode, len(body), resp.ContentLength, len(full))
		}
	})

	t.Run("MaxInline", func(t *testing.T) {
		cfg := s.config()
		cfg.MaxInline = 16 // guide.txt is 10 bytes, style.css 22
		g := startGW(t, cfg)
		for p, want := range map[string]bool{"docs/guide.txt": true, "style.css": false} {
			_, body := g.get(t, "/grits/v1/lookup/latest/"+p)
			if _, has := decodeLookupFrame(t, body).Inline(); has != want {
				t.Errorf("%s: inline %v, want %v", p, has, want)
			}
		}
	})
}

func TestBlockEndpoint(t *testing.T) {
	s := newGWSite(t)
	cg := &gwCountingGetter{g: s.store}
	cfg := s.config()
	cfg.Store = cg
	log := newGWServeLog()
	cfg.OnServe = log.onServe
	g := startGW(t, cfg)
	c := s.chunks(t, "data/big.bin")[3] // random: never compressed
	data, err := s.store.Get(context.Background(), c.Hash)
	if err != nil {
		t.Fatal(err)
	}
	url := "/grits/v1/block/" + c.Hash.String()
	etag := `"` + c.Hash.String() + `"`

	resp, body := g.get(t, url)
	if resp.StatusCode != http.StatusOK || blockstore.Sum(body) != c.Hash {
		t.Fatalf("status %d, body does not hash to the block", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"ETag":                        etag,
		"Cache-Control":               cacheImmutable,
		"Content-Type":                "application/octet-stream",
		"Accept-Ranges":               "bytes",
		"Vary":                        "Accept-Encoding",
		"Access-Control-Allow-Origin": "*",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if n, b := log.get("block"); n != 1 || b != int64(len(data)) {
		t.Errorf("OnServe block: %d calls, %d bytes", n, b)
	}

	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		method string
		code   int
		body   []byte
		cr     string // Content-Range
	}{
		{name: "range", hdr: map[string]string{"Range": "bytes=100-199"}, code: 206, body: data[100:200], cr: "bytes 100-199/4096"},
		{name: "open range", hdr: map[string]string{"Range": "bytes=4000-"}, code: 206, body: data[4000:], cr: "bytes 4000-4095/4096"},
		{name: "suffix", hdr: map[string]string{"Range": "bytes=-10"}, code: 206, body: data[4086:], cr: "bytes 4086-4095/4096"},
		{name: "unsatisfiable", hdr: map[string]string{"Range": "bytes=5000-6000"}, code: 416, cr: "bytes */4096"},
		{name: "if-none-match", hdr: map[string]string{"If-None-Match": etag}, code: 304},
		{name: "if-none-match weak list", hdr: map[string]string{"If-None-Match": `"x", W/` + etag}, code: 304},
		{name: "if-none-match zst tag", hdr: map[string]string{"If-None-Match": `"` + c.Hash.String() + `.zst"`}, code: 304},
		{name: "if-none-match star", hdr: map[string]string{"If-None-Match": "*"}, code: 304},
		{name: "if-none-match other", hdr: map[string]string{"If-None-Match": `"b3-00"`}, code: 200, body: data},
		{name: "if-range match", hdr: map[string]string{"Range": "bytes=0-9", "If-Range": etag}, code: 206, body: data[:10], cr: "bytes 0-9/4096"},
		{name: "if-range stale", hdr: map[string]string{"Range": "bytes=0-9", "If-Range": `"b3-00"`}, code: 200, body: data},
		{name: "HEAD", method: http.MethodHead, code: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = http.MethodGet
			}
			resp, body := g.do(t, m, url, tc.hdr)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if tc.code != 416 && !bytes.Equal(body, tc.body) {
				t.Fatalf("body %d bytes, want %d", len(body), len(tc.body))
			}
			if got := resp.Header.Get("Content-Range"); got != tc.cr {
				t.Errorf("Content-Range %q, want %q", got, tc.cr)
			}
			if m == http.MethodHead && resp.ContentLength != int64(len(data)) {
				t.Errorf("HEAD Content-Length %d", resp.ContentLength)
			}
			if tc.code == 304 && resp.Header.Get("ETag") == "" {
				t.Errorf("304 without ETag")
			}
		})
	}

	t.Run("304 without the store", func(t *testing.T) {
		absent := blockstore.Sum([]byte("absent")).String()
		before := cg.n.Load()
		resp, _ := g.do(t, http.MethodGet, "/grits/v1/block/"+c.Hash.String(), map[string]string{"If-None-Match": etag})
		if resp.StatusCode != 304 || cg.n.Load() != before {
			t.Fatalf("status %d, %d store reads", resp.StatusCode, cg.n.Load()-before)
		}
		resp, _ = g.get(t, "/grits/v1/block/"+absent)
		if resp.StatusCode != 404 {
			t.Fatalf("absent block: status %d", resp.StatusCode)
		}
	})

	for _, tc := range []struct {
		name, url string
		code      int
	}{
		{"absent", "/grits/v1/block/" + blockstore.Sum([]byte("absent")).String(), 404},
		{"short hash", "/grits/v1/block/b3-abcd", 400},
		{"no prefix", "/grits/v1/block/" + c.Hash.Hex(), 400},
		{"upper case", "/grits/v1/block/" + strings.ToUpper(c.Hash.String()), 400},
		{"trailing slash", url + "/", 400},
		{"traversal", "/grits/v1/block/..%2f..%2froot", 400},
		{"empty", "/grits/v1/block/", 400},
		{"unknown endpoint", "/grits/v1/blockz/" + c.Hash.String(), 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := cg.n.Load()
			resp, _ := g.get(t, tc.url)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if resp.Header.Get("ETag") != "" || resp.Header.Get("Cache-Control") != cacheNoStore {
				t.Errorf("error with ETag %q, Cache-Control %q", resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
			}
			if tc.code == 400 && cg.n.Load() != before {
				t.Errorf("bad hash touched the store")
			}
		})
	}
}

func TestBlockCompression(t *testing.T) {
	s := newGWSite(t)
	g := startGW(t, s.config())
	ctx := context.Background()
	text := s.chunks(t, "text/lorem.txt")[0]
	textData, _ := s.store.Get(ctx, text.Hash)
	random := s.chunks(t, "data/big.bin")[0]
	randomData, _ := s.store.Get(ctx, random.Hash)
	textURL := "/grits/v1/block/" + text.Hash.String()
	randomURL := "/grits/v1/block/" + random.Hash.String()

	zdec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zdec.Close()
	decode := map[string]func([]byte) ([]byte, error){
		"zstd": func(b []byte) ([]byte, error) { return zdec.DecodeAll(b, nil) },
		"gzip": func(b []byte) ([]byte, error) {
			r, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		},
		"": func(b []byte) ([]byte, error) { return b, nil },
	}
	for _, tc := range []struct {
		name, url, accept, rng string
		want                   []byte
		enc, etagSuffix        string
	}{
		{name: "zstd", url: textURL, accept: "gzip, deflate, br, zstd", want: textData, enc: "zstd", etagSuffix: ".zst"},
		{name: "gzip", url: textURL, accept: "gzip, deflate", want: textData, enc: "gzip", etagSuffix: ".gz"},
		{name: "zstd refused", url: textURL, accept: "zstd;q=0, gzip;q=0.5", want: textData, enc: "gzip", etagSuffix: ".gz"},
		{name: "star", url: textURL, accept: "*", want: textData, enc: "zstd", etagSuffix: ".zst"},
		{name: "identity only", url: textURL, accept: "identity", want: textData},
		{name: "none", url: textURL, want: textData},
		{name: "incompressible", url: randomURL, accept: "zstd, gzip", want: randomData},
		{name: "range never encoded", url: textURL, accept: "zstd, gzip", rng: "bytes=10-99", want: textData[10:100]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.accept != "" {
				hdr["Accept-Encoding"] = tc.accept
			}
			if tc.rng != "" {
				hdr["Range"] = tc.rng
			}
			resp, body := g.do(t, http.MethodGet, tc.url, hdr)
			if got := resp.Header.Get("Content-Encoding"); got != tc.enc {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.enc)
			}
			if tc.enc != "" && len(body) >= len(tc.want) {
				t.Errorf("encoded body %d bytes, raw %d", len(body), len(tc.want))
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d", resp.ContentLength, len(body))
			}
			got, err := decode[tc.enc](body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("decoded body differs (%d bytes, want %d)", len(got), len(tc.want))
			}
			h := strings.TrimPrefix(tc.url, "/grits/v1/block/")
			if et := resp.Header.Get("ETag"); et != `"`+h+tc.etagSuffix+`"` {
				t.Errorf("ETag %s", et)
			}
			if resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("no Vary: Accept-Encoding")
			}
			if tc.enc != "" {
				// The encoded representation revalidates by its own tag.
				resp, _ := g.do(t, http.MethodGet, tc.url, map[string]string{"Accept-Encoding": tc.accept, "If-None-Match": resp.Header.Get("ETag")})
				if resp.StatusCode != 304 || resp.Header.Get("Content-Encoding") != "" {
					t.Errorf("revalidation: status %d, encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
				}
				hr, hb := g.do(t, http.MethodHead, tc.url, hdr)
				if len(hb) != 0 || hr.ContentLength != int64(len(body)) || hr.Header.Get("Content-Encoding") != tc.enc {
					t.Errorf("HEAD: length %d, encoding %q", hr.ContentLength, hr.Header.Get("Content-Encoding"))
				}
			}
		})
	}
}

func TestNegotiateBlockEncoding(t *testing.T) {
	for accept, want := range map[string]string{
		"":                       "",
		"gzip":                   "gzip",
		"GZIP":                   "gzip",
		"x-gzip":                 "gzip",
		"zstd":                   "zstd",
		"gzip, zstd":             "zstd",
		"zstd;q=0":               "",
		"zstd;q=0, gzip":         "gzip",
		"zstd; q=0.001":          "zstd",
		"zstd;q=bogus, gzip;q=1": "gzip",
		"*;q=0, gzip":            "gzip",
		"*":                      "zstd",
		"*, zstd;q=0":            "gzip",
		"br, deflate":            "",
		"identity;q=1, *;q=0":    "",
		" zstd ; q=1.0 ":         "zstd",
		",,,":                    "",
	} {
		if got := negotiateBlockEncoding(accept); got != want {
			t.Errorf("negotiate(%q) = %q, want %q", accept, got, want)
		}
	}
}

func TestPeersEndpoint(t *testing.T) {
	s := newGWSite(t)
	g := startGW(t, s.config())
	resp, body := g.get(t, "/grits/v1/peers")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("no peers: status %d, %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "max-age=10" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", resp.Header)
	}
	peers := []Peer{{URL: "https://a.example", Region: "eu", Load: 3}, {URL: "https://b.example", Load: 0}}
	cfg := s.config()
	cfg.Peers = func() []Peer { return peers }
	g = startGW(t, cfg)
	_, body = g.get(t, "/grits/v1/peers")
	var got []Peer
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != peers[0] || got[1] != peers[1] {
		t.Fatalf("peers %+v", got)
	}
	if strings.Contains(string(body), `"region":""`) || !strings.Contains(string(body), `"load":0`) {
		t.Errorf("JSON %s", body)
	}
}

func TestScripts(t *testing.T) {
	s := newGWSite(t)
	cfg := s.config()
	cfg.Site = false
	sw := []byte("self.addEventListener('fetch', () => {});\n")
	cfg.Scripts = map[string][]byte{"/grits-sw.js": sw, "/grits/v1/register.js": []byte("navigator.serviceWorker.register('/grits-sw.js');\n")}
	g := startGW(t, cfg)
	sw[0] = 'X' // NewHandler copied it
	resp, body := g.get(t, "/grits-sw.js")
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "self.") {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	resp2, _ := g.do(t, http.MethodGet, "/grits-sw.js", map[string]string{"If-None-Match": resp.Header.Get("ETag")})
	if resp2.StatusCode != 304 {
		t.Errorf("revalidation: status %d", resp2.StatusCode)
	}
	resp, _ = g.get(t, "/grits/v1/register.js")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("register.js: status %d", resp.StatusCode)
	}
	resp, _ = g.do(t, http.MethodHead, "/grits-sw.js", nil)
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(sw)) {
		t.Errorf("HEAD: status %d, length %d", resp.StatusCode, resp.ContentLength)
	}

	for _, bad := range []string{"grits-sw.js", "/grits/v1/root", "/grits/v1/block/x"} {
		if _, err := NewHandler(Config{Store: s.store, Scripts: map[string][]byte{bad: nil}}); err == nil {
			t.Errorf("script route %q accepted", bad)
		}
	}
	if _, err := NewHandler(Config{}); err == nil {
		t.Error("config without a store accepted")
	}
}

// TestSetScripts: the scripts can be replaced while serving (a worker
// whose paths follow the tree); the new bytes and their ETag are served
// at once, and a bad route is refused without changing anything.
func TestSetScripts(t *testing.T) {
	s := newGWSite(t)
	cfg := s.config()
	cfg.Scripts = map[string][]byte{"/grits-sw.js": []byte("// version a\n")}
	g := startGW(t, cfg)
	resp, body := g.get(t, "/grits-sw.js")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || string(body) != "// version a\n" {
		t.Fatalf("before: %d %q", resp.StatusCode, body)
	}
	if err := g.h.SetScripts(map[string][]byte{"/grits-sw.js": []byte("// version b\n")}); err != nil {
		t.Fatal(err)
	}
	resp, body = g.do(t, http.MethodGet, "/grits-sw.js", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 200 || string(body) != "// version b\n" || resp.Header.Get("ETag") == etag {
		t.Errorf("after SetScripts: %d %q, ETag %s (was %s)", resp.StatusCode, body, resp.Header.Get("ETag"), etag)
	}
	if err := g.h.SetScripts(map[string][]byte{"/grits/v1/root": nil}); err == nil {
		t.Error("a script route over the API accepted")
	}
	if _, body := g.get(t, "/grits-sw.js"); string(body) != "// version b\n" {
		t.Errorf("a refused SetScripts changed the scripts: %q", body)
	}
}

func TestCORS(t *testing.T) {
	s := newGWSite(t)
	g := startGW(t, s.config())
	resp, body := g.do(t, http.MethodOptions, "/grits/v1/block/"+s.root.Tree.String(), map[string]string{
		"Origin":                         "https://site.example",
		"Access-Control-Request-Method":  "GET",
		"Access-Control-Request-Headers": "range, if-none-match",
	})
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("preflight status %d", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
		"Access-Control-Allow-Headers": "Range, If-None-Match, If-Modified-Since",
		"Access-Control-Max-Age":       "86400",
		"Timing-Allow-Origin":          "*",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("preflight %s = %q, want %q", k, got, want)
		}
	}
	for _, p := range []string{"/grits/v1/root", "/grits/v1/lookup/latest/index.html", "/grits/v1/block/bad", "/grits/v1/nothing"} {
		resp, _ := g.do(t, http.MethodGet, p, map[string]string{"Origin": "https://other.example"})
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no Access-Control-Allow-Origin", p)
		}
		exp := resp.Header.Get("Access-Control-Expose-Headers")
		for _, h := range []string{"Content-Range", "Content-Length", "ETag", "Grits-Root", "Content-Encoding"} {
			if !strings.Contains(exp, h) {
				t.Errorf("%s: %s not exposed (%q)", p, h, exp)
			}
		}
	}
	resp, _ = g.get(t, "/index.html")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Timing-Allow-Origin") != "*" {
		t.Errorf("site page: ACAO %q, TAO %q", resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Timing-Allow-Origin"))
	}
}

func TestMethodsAndLimits(t *testing.T) {
	s := newGWSite(t)
	g := startGW(t, s.config())
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/grits/v1/root", 405},
		{http.MethodPut, "/grits/v1/block/" + s.root.Tree.String(), 405},
		{http.MethodDelete, "/index.html", 405},
		{"PATCH", "/", 405},
		{http.MethodOptions, "/index.html", 204},
		{http.MethodGet, "/" + strings.Repeat("a", MaxURLPath), 414},
		{http.MethodGet, "/grits/v1/lookup/latest/" + strings.Repeat("a/", 2100), 414},
	} {
		resp, _ := g.do(t, tc.method, tc.path, nil)
		if resp.StatusCode != tc.code {
			t.Errorf("%s %.40s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
		if tc.code == 405 && resp.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, resp.Header.Get("Allow"))
		}
	}

	t.Run("fallback takes other methods outside the API", func(t *testing.T) {
		cfg := s.config()
		cfg.Fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTeapot)
		})
		g := startGW(t, cfg)
		if resp, _ := g.do(t, http.MethodPost, "/form", nil); resp.StatusCode != http.StatusTeapot {
			t.Errorf("POST /form: status %d", resp.StatusCode)
		}
		if resp, _ := g.do(t, http.MethodPost, "/grits/v1/root", nil); resp.StatusCode != 405 {
			t.Errorf("POST /grits/v1/root: status %d", resp.StatusCode)
		}
	})
}

// TestBlocksEndpoint: a run of blocks in one response, concatenated in
// the order named; a missing first block is a clean 404, a missing later
// one cuts the body short (the client checks sizes and hashes); lists
// too long or malformed are refused before any store access.
func TestBlocksEndpoint(t *testing.T) {
	s := newGWSite(t)
	cg := &gwCountingGetter{g: s.store}
	cfg := s.config()
	cfg.Store = cg
	cfg.BlockCacheBytes = -1 // every answer from the store, counted
	log := newGWServeLog()
	cfg.OnServe = log.onServe
	g := startGW(t, cfg)
	chunks := s.chunks(t, "data/big.bin")
	if len(chunks) < 4 {
		t.Fatalf("fixture: %d chunks", len(chunks))
	}
	var names []string
	var want []byte
	for _, c := range chunks[:4] {
		names = append(names, c.Hash.String())
		b, _ := s.store.Get(context.Background(), c.Hash)
		want = append(want, b...)
	}
	// The same block twice is fine: a file may repeat a chunk.
	names = append(names, names[1])
	b1, _ := s.store.Get(context.Background(), chunks[1].Hash)
	want = append(want, b1...)

	resp, body := g.get(t, "/grits/v1/blocks/"+strings.Join(names, ","))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("status %d, %d bytes; want 200 and the %d bytes of the run", resp.StatusCode, len(body), len(want))
	}
	for k, v := range map[string]string{"Cache-Control": cacheImmutable, "Content-Type": "application/octet-stream", "Access-Control-Allow-Origin": "*"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if n, bytesServed := log.get("block"); n != 1 || bytesServed != int64(len(want)) {
		t.Errorf("served log: %d answers, %d bytes; want 1 and %d", n, bytesServed, len(want))
	}

	missing := blockstore.Sum([]byte("not stored"))
	resp, _ = g.get(t, "/grits/v1/blocks/"+missing.String()+","+names[0])
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing first block: status %d, want 404", resp.StatusCode)
	}
	resp, body = g.get(t, "/grits/v1/blocks/"+names[0]+","+missing.String()+","+names[2])
	b0, _ := s.store.Get(context.Background(), chunks[0].Hash)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, b0) {
		t.Errorf("missing second block: status %d, %d bytes; want 200 and the first block only (%d)", resp.StatusCode, len(body), len(b0))
	}

	before := cg.n.Load()
	for _, bad := range []string{
		"/grits/v1/blocks/",
		"/grits/v1/blocks/" + names[0] + ",",
		"/grits/v1/blocks/" + names[0] + ",b3-xyz",
		"/grits/v1/blocks/" + strings.Repeat(names[0]+",", MaxBlocksPerRequest) + names[0],
	} {
		if resp, _ := g.get(t, bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%.80s…: status %d, want 400", bad, resp.StatusCode)
		}
	}
	if n := cg.n.Load() - before; n != 0 {
		t.Errorf("bad lists read %d blocks from the store; want none", n)
	}
}

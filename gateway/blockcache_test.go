package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// cacheT0 is the cache tests' clock: blocks are loaded at it and looked
// up at it unless a test says otherwise.
var cacheT0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func cacheTestBlock(i int, size int) (blockstore.Hash, *cachedBlock) {
	d := gwRandom(size, uint64(1000+i))
	h := blockstore.Sum(d)
	return h, newCachedBlock(h, d, cacheT0)
}

func TestBlockCacheBoundedByBytes(t *testing.T) {
	const size = 1000
	c := newBlockCache(8 * size) // room for eight
	var hs []blockstore.Hash
	for i := range 20 {
		h, b := cacheTestBlock(i, size)
		hs = append(hs, h)
		c.add(b)
		if n, used := c.stats(); used > c.max || used != int64(n)*size {
			t.Fatalf("after %d adds: %d blocks, %d bytes (max %d)", i+1, n, used, c.max)
		}
	}
	if n, _ := c.stats(); n != 8 {
		t.Fatalf("%d blocks cached, want 8", n)
	}
	// Unused blocks leave in insertion order: the last eight remain.
	for i, h := range hs {
		if got := c.get(h, cacheT0) != nil; got != (i >= 12) {
			t.Errorf("block %d cached = %v", i, got)
		}
	}
}

func TestBlockCacheSecondChance(t *testing.T) {
	const size = 1000
	c := newBlockCache(8 * size)
	var hs []blockstore.Hash
	for i := range 8 {
		h, b := cacheTestBlock(i, size)
		hs = append(hs, h)
		c.add(b)
	}
	if c.get(hs[0], cacheT0) == nil {
		t.Fatal("block 0 not cached")
	}
	h4, b4 := cacheTestBlock(8, size)
	c.add(b4)
	// The hand passed over block 0, which was used, and evicted block 1.
	if c.get(hs[0], cacheT0) == nil || c.get(hs[1], cacheT0) != nil || c.get(h4, cacheT0) == nil {
		t.Fatalf("after one eviction: block 0 %v, block 1 %v, new %v",
			c.get(hs[0], cacheT0) != nil, c.get(hs[1], cacheT0) != nil, c.get(h4, cacheT0) != nil)
	}
}

func TestBlockCacheAdmission(t *testing.T) {
	c := newBlockCache(8000)
	h, big := cacheTestBlock(0, 8000/blockCacheMaxShare+1)
	if got := c.add(big); got != big {
		t.Fatal("add of an oversized block returned another entry")
	}
	if c.get(h, cacheT0) != nil {
		t.Fatal("a block over the admission limit was cached")
	}
	h, b := cacheTestBlock(1, 100)
	c.add(b)
	_, again := cacheTestBlock(1, 100)
	if got := c.add(again); got != b {
		t.Fatal("a second add replaced the cached entry")
	}
	if n, used := c.stats(); n != 1 || used != 100 || c.get(h, cacheT0) != b {
		t.Fatalf("%d blocks, %d bytes", n, used)
	}
}

func TestBlockCacheMaxAge(t *testing.T) {
	c := newBlockCache(8000)
	h, b := cacheTestBlock(0, 500)
	c.add(b)
	if c.get(h, cacheT0.Add(c.maxAge-time.Nanosecond)) != b {
		t.Fatal("a fresh block missed")
	}
	later := cacheT0.Add(c.maxAge)
	if c.get(h, later) != nil {
		t.Fatal("a block past its max age was served")
	}
	// The reload replaces the old entry; an older one does not replace it.
	fresh := newCachedBlock(h, b.data, later)
	if got := c.add(fresh); got != fresh {
		t.Fatal("the reloaded block did not replace the stale one")
	}
	if got := c.add(b); got != fresh {
		t.Fatal("an older entry replaced a newer one")
	}
	if n, used := c.stats(); n != 1 || used != 500 || c.get(h, later) != fresh {
		t.Fatalf("%d blocks, %d bytes after the reload", n, used)
	}
}

func TestBlockCacheConcurrent(t *testing.T) {
	const size = 512
	c := newBlockCache(16 * size)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				k := (i*7 + g) % 40
				h, b := cacheTestBlock(k, size)
				if got := c.get(h, cacheT0); got != nil {
					if !bytes.Equal(got.data, b.data) {
						t.Errorf("block %d: cached bytes differ", k)
						return
					}
					continue
				}
				c.add(b)
			}
		})
	}
	wg.Wait()
	if n, used := c.stats(); used > c.max || used != int64(n)*size {
		t.Fatalf("%d blocks, %d bytes (max %d)", n, used, c.max)
	}
}

// blockFile is where a Disk store keeps a pinned block.
func blockFile(t *testing.T, dir string, h blockstore.Hash) string {
	t.Helper()
	p := filepath.Join(dir, "pinned", h.Hex()[:2], h.Hex())
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("block file: %v", err)
	}
	return p
}

// TestBlockCacheHoldsOnlyVerifiedBytes: the cache is filled from what the
// store verified, so a block corrupt on disk is refused and never cached,
// and a cached block keeps being served as it was verified.
func TestBlockCacheHoldsOnlyVerifiedBytes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := blockstore.OpenDisk(ctx, dir, blockstore.DiskConfig{Quota: -1})
	if err != nil {
		t.Fatal(err)
	}
	put := func(d []byte) blockstore.Hash {
		h, err := st.Put(ctx, d, blockstore.PutOptions{Residency: blockstore.Pinned})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	good, bad := gwRandom(40000, 7), gwRandom(40000, 8)
	hGood, hBad := put(good), put(bad)
	cg := &gwCountingGetter{g: st}
	g := startGW(t, Config{Store: cg, RateLimit: -1})

	// Corrupt before the first read: refused, and nothing is cached.
	p := blockFile(t, dir, hBad)
	if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, len(bad)), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, _ := g.get(t, "/grits/v1/block/"+hBad.String()); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("corrupt block: status %d, want 404", resp.StatusCode)
	}
	if n, _ := g.h.blocks.stats(); n != 0 {
		t.Fatalf("%d blocks cached after a corrupt read", n)
	}

	// A good block is read once, then served from the cache.
	for range 3 {
		resp, body := g.get(t, "/grits/v1/block/"+hGood.String())
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, good) {
			t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
		}
		if resp.ContentLength != int64(len(good)) || resp.Header.Get("ETag") != `"`+hGood.String()+`"` {
			t.Fatalf("Content-Length %d, ETag %q", resp.ContentLength, resp.Header.Get("ETag"))
		}
	}
	if n := cg.n.Load(); n != 2 { // the corrupt block's read and the good one's
		t.Fatalf("%d store reads, want 2", n)
	}
	if cs := g.h.CacheStats(); cs.Hits != 2 || cs.Misses != 2 || cs.Blocks != 1 || cs.Bytes != int64(len(good)) {
		t.Fatalf("CacheStats %+v, want 2 hits, 2 misses, the good block held", cs)
	}
	// Damage on disk now cannot reach clients through the cache.
	if err := os.WriteFile(blockFile(t, dir, hGood), bytes.Repeat([]byte{'y'}, len(good)), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, body := g.get(t, "/grits/v1/block/"+hGood.String()); resp.StatusCode != http.StatusOK || !bytes.Equal(body, good) {
		t.Fatalf("after damage on disk: status %d, body differs: %v", resp.StatusCode, !bytes.Equal(body, good))
	}

	// Once an entry is past its max age the store reads the block again,
	// and refuses it if it is now damaged.
	good2 := gwRandom(40000, 10)
	hGood2 := put(good2)
	hs, err := NewHandler(Config{Store: st, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	hs.blocks.maxAge = 0 // every entry is stale at once
	srv := httptest.NewUnstartedServer(hs)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	getStatus := func() int {
		resp, err := srv.Client().Get(srv.URL + "/grits/v1/block/" + hGood2.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := getStatus(); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if n, _ := hs.blocks.stats(); n != 1 {
		t.Fatalf("%d blocks cached", n)
	}
	if err := os.WriteFile(blockFile(t, dir, hGood2), bytes.Repeat([]byte{'z'}, len(good2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := getStatus(); code != http.StatusNotFound {
		t.Fatalf("stale entry of a block now corrupt on disk: status %d, want 404", code)
	}

	// Without the cache the store's verification answers every time.
	g2 := startGW(t, Config{Store: st, RateLimit: -1, BlockCacheBytes: -1})
	if g2.h.blocks != nil {
		t.Fatal("BlockCacheBytes -1 still made a cache")
	}
	if resp, _ := g2.get(t, "/grits/v1/block/"+hGood.String()); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("uncached corrupt block: status %d, want 404", resp.StatusCode)
	}
}

// TestBlockCacheSkipsStoreErrors: a failed Get caches nothing.
func TestBlockCacheSkipsStoreErrors(t *testing.T) {
	d := gwRandom(5000, 9)
	h := blockstore.Sum(d)
	fail := true
	var mu sync.Mutex
	get := gwGetterFunc(func(ctx context.Context, want blockstore.Hash) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, errors.New("disk on fire")
		}
		return bytes.Clone(d), nil
	})
	g := startGW(t, Config{Store: get, RateLimit: -1})
	if resp, _ := g.get(t, "/grits/v1/block/"+h.String()); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	if n, _ := g.h.blocks.stats(); n != 0 {
		t.Fatalf("%d blocks cached after an error", n)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if resp, body := g.get(t, "/grits/v1/block/"+h.String()); resp.StatusCode != http.StatusOK || !bytes.Equal(body, d) {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// TestBlockLargeBodyHTTP2: bodies around and over one frame and one TLS
// record arrive whole over HTTP/2, with ranges and HEAD unchanged.
func TestBlockLargeBodyHTTP2(t *testing.T) {
	st := blockstore.NewMem(-1)
	log := newGWServeLog()
	g := startGW(t, Config{Store: st, RateLimit: -1, OnServe: log.onServe})
	var total int64
	for i, size := range []int{16375, 16383, 16384, 16385, 2 * 16384, 256 << 10, blockstore.MaxBlockSize} {
		d := gwRandom(size, uint64(100+i))
		h, err := st.Put(context.Background(), d, blockstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		url := "/grits/v1/block/" + h.String()
		resp, body := g.get(t, url)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, d) || resp.ContentLength != int64(size) {
			t.Fatalf("%d bytes: status %d, got %d bytes (Content-Length %d)", size, resp.StatusCode, len(body), resp.ContentLength)
		}
		total += int64(size)
		resp, body = g.do(t, http.MethodHead, url, nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(size) {
			t.Fatalf("HEAD %d bytes: status %d, %d body bytes, Content-Length %d", size, resp.StatusCode, len(body), resp.ContentLength)
		}
		resp, body = g.do(t, http.MethodGet, url, map[string]string{"Range": "bytes=1-"})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, d[1:]) {
			t.Fatalf("range of %d bytes: status %d", size, resp.StatusCode)
		}
		total += int64(size - 1)
	}
	if _, n := log.get("block"); n != total {
		t.Fatalf("OnServe counted %d bytes, want %d", n, total)
	}
}

// TestGritsRootHeaderFollowsRoot: the encoded root header is kept between
// requests but follows a new root at once.
func TestGritsRootHeaderFollowsRoot(t *testing.T) {
	var mu sync.Mutex
	root := tree.Root{Seq: 1, Time: time.Unix(1000, 0), Expires: time.Unix(2000, 0)}
	g := startGW(t, Config{Store: blockstore.NewMem(-1), RateLimit: -1, Latest: func() (tree.Root, bool) {
		mu.Lock()
		defer mu.Unlock()
		return root, true
	}})
	for seq := uint64(1); seq <= 3; seq++ {
		mu.Lock()
		root.Seq = seq
		want := base64.RawURLEncoding.EncodeToString(root.Encode())
		mu.Unlock()
		for range 2 {
			resp, _ := g.get(t, "/grits/v1/peers")
			if got := resp.Header.Get(RootHeader); got != want {
				t.Fatalf("seq %d: Grits-Root %q, want %q", seq, got, want)
			}
		}
	}
}

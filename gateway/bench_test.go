package gateway

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// BenchmarkBlockGET: block GETs through the handler over HTTP/2 (TLS, the
// gateway's Server) on loopback, from a disk store, 64 concurrent requests, with the block
// cache (hot blocks neither read nor hashed again) and without it (every
// GET reads and verifies the file). Compare with BenchmarkStaticGET, the
// standard library's file server on the same bytes in the same run:
//
//	go test -run '^$' -bench 'BlockGET|StaticGET' ./gateway
func BenchmarkBlockGET(b *testing.B) {
	for _, size := range []int{16 << 10, 256 << 10} {
		b.Run(sizeName(size)+"/cache", func(b *testing.B) { benchBlockGET(b, size, 0) })
		b.Run(sizeName(size)+"/nocache", func(b *testing.B) { benchBlockGET(b, size, -1) })
	}
}

func benchBlockGET(b *testing.B, size int, cacheBytes int64) {
	ctx := context.Background()
	st, err := blockstore.OpenDisk(ctx, b.TempDir(), blockstore.DiskConfig{Quota: -1})
	if err != nil {
		b.Fatal(err)
	}
	var paths []string
	for range 64 {
		d := make([]byte, size)
		rand.Read(d)
		h, err := st.Put(ctx, d, blockstore.PutOptions{Residency: blockstore.Pinned})
		if err != nil {
			b.Fatal(err)
		}
		paths = append(paths, "/grits/v1/block/"+h.String())
	}
	h, err := NewHandler(Config{Store: st, Latest: nil, RateLimit: -1, BlockCacheBytes: cacheBytes})
	if err != nil {
		b.Fatal(err)
	}
	runLoad(b, h, paths, size)
}

func BenchmarkStaticGET(b *testing.B) {
	for _, size := range []int{16 << 10, 256 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			dir := b.TempDir()
			var paths []string
			for i := range 64 {
				d := make([]byte, size)
				rand.Read(d)
				name := "/f" + strconv.Itoa(i)
				if err := os.WriteFile(dir+name, d, 0o644); err != nil {
					b.Fatal(err)
				}
				paths = append(paths, name)
			}
			runLoad(b, http.FileServer(http.Dir(dir)), paths, size)
		})
	}
}

func sizeName(n int) string { return strconv.Itoa(n>>10) + "KiB" }

// runLoad serves h behind the gateway's own Server (HTTP/2 from
// internal/h2, as gritsd) and fetches the paths with 64 requests at once.
func runLoad(b *testing.B, h http.Handler, paths []string, size int) {
	ts := srvTestStart(b, h, nil)
	client := ts.h2Client()
	base := strings.TrimSuffix(ts.url, "/")
	b.SetBytes(int64(size))
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				resp, err := client.Get(base + paths[i%int64(len(paths))])
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
}

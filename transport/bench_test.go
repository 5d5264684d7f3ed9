package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// Transport benchmarks: ratios against a baseline measured in the same
// process and run, not absolute figures.
//
//	go test -run '^$' -bench . -benchtime 3x ./transport
//
// BenchmarkDownload fetches a 64 MiB file of random bytes (so zstd is
// never tried) over one loopback connection, and reports x-raw: its
// throughput over that of a bare quic-go stream carrying the same bytes
// between the same TLS/ALPN settings, and the same for HTTPS/2 from
// net/http.

const downloadSize = 64 << 20

// discardAt is an io.WriterAt that keeps nothing, as io.Discard does for
// the baselines: the fetch still verifies every block.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func BenchmarkDownload(b *testing.B) {
	s := newSite(b, map[string][]byte{"f.bin": fastRandom(downloadSize, 31)})
	f := s.fileNode(b, "f.bin")
	data := s.files["f.bin"]

	raw := startRawBlaster(b, data)
	var rawBest float64 // MB/s, the best of a few transfers
	for range 3 {
		start := time.Now()
		raw.fetch(b)
		rawBest = max(rawBest, mbps(downloadSize, time.Since(start)))
	}
	b.Logf("raw quic-go stream: %.0f MB/s (best of 3)", rawBest)
	// ratio reports x-raw, and the CPU time the process (both ends)
	// spent per download since cpu0: steadier than throughput on a
	// shared machine.
	ratio := func(b *testing.B, elapsed, cpu0 time.Duration) {
		mb := mbps(int64(b.N)*downloadSize, elapsed)
		b.ReportMetric(mb/rawBest, "x-raw")
		b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	}

	b.Run("raw-quic", func(b *testing.B) {
		b.SetBytes(downloadSize)
		cpu0 := cpuTime()
		for b.Loop() {
			raw.fetch(b)
		}
		ratio(b, b.Elapsed(), cpu0)
	})

	// store=mem serves from blockstore.Mem, which copies and re-hashes
	// every block it reads; store=map from a map that does neither, to
	// tell the transport's cost from the store's.
	_, memAddr := startServer(b, ServerConfig{Store: s.store})
	_, mapAddr := startServer(b, ServerConfig{Store: mapGetter(b, s)})
	variants := []struct {
		store, addr string
		opts        FetchOptions
	}{
		{"mem", memAddr, FetchOptions{}}, // the adaptive defaults
		{"mem", memAddr, FetchOptions{Batch: 8, PerPeer: 4}},
		{"mem", memAddr, FetchOptions{Batch: 32, PerPeer: 2}},
		{"mem", memAddr, FetchOptions{Batch: 64, PerPeer: 1}},
		{"mem", memAddr, FetchOptions{Batch: 16, PerPeer: 8}},
		{"mem", memAddr, FetchOptions{Batch: 64, PerPeer: 2}},
		{"mem", memAddr, FetchOptions{Batch: 128, PerPeer: 1}},
		{"map", mapAddr, FetchOptions{Batch: 8, PerPeer: 4}},
		{"map", mapAddr, FetchOptions{Batch: 64, PerPeer: 1}},
	}
	for _, v := range variants {
		o, addr := v.opts, v.addr
		b.Run(fmt.Sprintf("grits/store=%s,batch=%d,perpeer=%d", v.store, o.Batch, o.PerPeer), func(b *testing.B) {
			c := newClient(b, s.pub, nil)
			ctx := context.Background()
			// Once, untimed: the connection, and a check of the bytes.
			w := &fixedWriterAt{b: make([]byte, downloadSize)}
			if _, err := c.FetchFile(ctx, []string{addr}, f, w, o); err != nil || !bytes.Equal(w.b, data) {
				b.Fatalf("FetchFile: %v", err)
			}
			b.SetBytes(downloadSize)
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := c.FetchFile(ctx, []string{addr}, f, discardAt{}, o); err != nil {
					b.Fatal(err)
				}
			}
			ratio(b, b.Elapsed(), cpu0)
		})
	}

	b.Run("https2", func(b *testing.B) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "f.bin", time.Time{}, bytes.NewReader(data))
		}))
		srv.EnableHTTP2 = true
		srv.StartTLS()
		defer srv.Close()
		hc := srv.Client()
		get := func() {
			resp, err := hc.Get(srv.URL + "/f.bin")
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 {
				b.Fatalf("served over %s", resp.Proto)
			}
			if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != downloadSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
		get()
		b.SetBytes(downloadSize)
		b.ResetTimer()
		cpu0 := cpuTime()
		for b.Loop() {
			get()
		}
		ratio(b, b.Elapsed(), cpu0)
	})
}

// fixedWriterAt writes into a buffer of the final size.
type fixedWriterAt struct{ b []byte }

func (w *fixedWriterAt) WriteAt(p []byte, off int64) (int, error) {
	return copy(w.b[off:], p), nil
}

// mapStore serves a site's blocks from a map, without copying or
// hashing them: a store that costs nothing.
type mapStore map[blockstore.Hash][]byte

func (m mapStore) Get(_ context.Context, h blockstore.Hash) ([]byte, error) {
	if b, ok := m[h]; ok {
		return b, nil
	}
	return nil, blockstore.ErrNotFound
}

func mapGetter(b *testing.B, s *site) mapStore {
	m := mapStore{}
	err := s.store.Walk(context.Background(), func(info blockstore.Info) error {
		m[info.Hash] = s.mustGet(b, info.Hash)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// cpuTime is the user and system time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// rawBlaster is the baseline: a quic-go server with the Server's TLS and
// QUIC settings that answers every stream by writing data whole, and a
// client with the Client's.
type rawBlaster struct {
	conn *quic.Conn
}

func startRawBlaster(b *testing.B, data []byte) *rawBlaster {
	ref, err := NewServer(ServerConfig{Identity: newCert(b), Store: blockstore.NewMem(-1)})
	if err != nil {
		b.Fatal(err)
	}
	pc := listenLoopback(b, "")
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.ListenEarly(ref.tlsConfig(), ref.quicConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					st, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					wg.Go(func() {
						io.Copy(io.Discard, st) // the one-byte request
						st.Write(data)
						st.Close()
					})
				}
			})
		}
	})
	b.Cleanup(func() {
		cancel()
		ln.Close()
		tr.Close()
		wg.Wait()
	})

	cpc := listenLoopback(b, "")
	ctr := &quic.Transport{Conn: cpc}
	b.Cleanup(func() { ctr.Close() })
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	conn, err := ctr.Dial(dctx, pc.LocalAddr(), rawTLS(), &quic.Config{
		MaxIdleTimeout: time.Minute, KeepAlivePeriod: 20 * time.Second,
		MaxIncomingStreams: -1, MaxIncomingUniStreams: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.CloseWithError(0, "") })
	return &rawBlaster{conn: conn}
}

func (r *rawBlaster) fetch(b *testing.B) {
	st, err := r.conn.OpenStreamSync(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	st.Write([]byte{1})
	st.Close()
	if n, err := io.Copy(io.Discard, st); err != nil || n != downloadSize {
		b.Fatalf("raw stream: %d bytes: %v", n, err)
	}
}

// BenchmarkLookup resolves a path 8 directories deep, each directory of
// 20 entries, against an explicit root: one connection, one lookup at a
// time and 64 at once. It reports lookups/s and the p50 and p99 latency.
func BenchmarkLookup(b *testing.B) {
	const depth, width = 8, 20
	ctx := context.Background()
	store := blockstore.NewMem(-1)
	bld := &tree.Builder{Store: store}
	fh, n, err := bld.WriteFile(ctx, strings.NewReader("a small file at the bottom of the tree\n"))
	if err != nil {
		b.Fatal(err)
	}
	root, err := bld.EmptyDir(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var dir []string
	for d := range depth {
		for i := range width - 1 {
			p := tree.Path(append(slices.Clone(dir), fmt.Sprintf("sibling-%02d.html", i)))
			if root, err = bld.Set(ctx, root, p, tree.Entry{Kind: tree.KindFile, Mode: 0o644, Size: n, Hash: fh}); err != nil {
				b.Fatal(err)
			}
		}
		dir = append(dir, fmt.Sprintf("level-%d", d))
	}
	target := tree.Path(append(dir, "index.html"))
	if root, err = bld.Set(ctx, root, target, tree.Entry{Kind: tree.KindFile, Mode: 0o644, Size: n, Hash: fh}); err != nil {
		b.Fatal(err)
	}
	key := newNodeKey(b)
	now := time.Now()
	signed := signRoot(b, key, tree.Root{Seq: 1, Time: now, Expires: now.Add(time.Hour), Tree: root})

	_, addr := startServer(b, ServerConfig{Store: store, Roots: &rootList{signed}})
	c := newClient(b, tree.PublicKeyOf(key), nil)
	r, err := c.Lookup(ctx, addr, &signed, target, 0)
	if err != nil || r.Status != tree.Found {
		b.Fatalf("Lookup: %v", err)
	}
	b.Logf("proof of %d nodes, %d bytes", len(r.Proof.Nodes), r.Proof.Size())

	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("concurrent=%d", conc), func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			var mu sync.Mutex
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range conc {
				wg.Go(func() {
					var mine []time.Duration
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if _, err := c.Lookup(ctx, addr, &signed, target, 0); err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

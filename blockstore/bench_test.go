package blockstore_test

import (
	"encoding/binary"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/blockstore/storetest"
)

var benchSizes = []struct {
	name string
	size int
}{
	{"256KiB", 256 << 10},
	{"1MiB", blockstore.MaxBlockSize},
}

// BenchmarkGetCached reads a block from a Disk, page cache warm, which is
// the best case of serving a block. Compare with BenchmarkBLAKE3: a Get
// verifies every byte, so hashing bounds its throughput.
func BenchmarkGetCached(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			ctx := b.Context()
			d, err := blockstore.OpenDisk(ctx, b.TempDir(), blockstore.DiskConfig{Quota: -1})
			if err != nil {
				b.Fatal(err)
			}
			h, err := d.Put(ctx, storetest.Block(1, bs.size), blockstore.PutOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Get(ctx, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBLAKE3 hashes the blocks BenchmarkGetCached reads.
func BenchmarkBLAKE3(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			data := storetest.Block(1, bs.size)
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				blockstore.Sum(data)
			}
		})
	}
}

// BenchmarkPutSynced and BenchmarkPutDeferred store new 256 KiB blocks,
// one fsync of the file and one of its directory per block against one
// syncfs at the end (timed too) for the lot.
func BenchmarkPutSynced(b *testing.B)   { benchmarkPut(b, false) }
func BenchmarkPutDeferred(b *testing.B) { benchmarkPut(b, true) }

func benchmarkPut(b *testing.B, deferred bool) {
	ctx := b.Context()
	d, err := blockstore.OpenDisk(ctx, b.TempDir(), blockstore.DiskConfig{Quota: -1})
	if err != nil {
		b.Fatal(err)
	}
	data := storetest.Block(1, 256<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		binary.LittleEndian.PutUint64(data, uint64(i)) // a new block each time
		if _, err := d.Put(ctx, data, blockstore.PutOptions{Deferred: deferred}); err != nil {
			b.Fatal(err)
		}
	}
	if deferred {
		if err := d.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

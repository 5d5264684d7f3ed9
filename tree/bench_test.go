package tree

// Benchmarks for proofs and file writing. Nothing here runs under plain
// `go test`: every fixture is built inside a Benchmark function (the big
// ones once per process, with sync.Once).
//
// Figures depend on the machine; compare variants measured in the same
// run (for instance BenchmarkWriteFile against BenchmarkChunkHash) rather
// than with absolute numbers.
//
//	go test -run '^$' -bench 'Proof' -benchtime 2s ./tree
//	go test -run '^$' -bench 'ChunkHash|ChunkGet' -benchtime 1s ./tree
//	go test -run '^$' -bench 'WriteFile' -benchtime 3x ./tree

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

// reportProofs adds the per-proof metrics every proof benchmark reports.
func reportProofs(b *testing.B, bytes, nodes int) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proofs/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "proof-bytes")
	b.ReportMetric(float64(nodes)/float64(b.N), "nodes/proof")
}

// deepFixture is a tree whose target file sits at depth 8, every
// directory on the way holding siblingsPerDir entries besides the next
// component: files of assorted names and sizes, and a few directories.
type deepFixture struct {
	store blockstore.Store
	root  blockstore.Hash
	path  Path
}

const siblingsPerDir = 49 // plus the path component: 50 entries a directory

var (
	deepOnce sync.Once
	deep     deepFixture
	deepErr  error
)

func deepTree() (deepFixture, error) {
	deepOnce.Do(func() { deep, deepErr = buildDeepTree() })
	return deep, deepErr
}

func buildDeepTree() (deepFixture, error) {
	ctx := context.Background()
	mem := blockstore.NewMem(-1)
	b := &Builder{Store: mem}
	rng := rand.New(rand.NewPCG(8, 8))
	p := MustParsePath("a/b/c/d/e/f/g/file.txt")

	content := make([]byte, 3000)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	h, size, err := b.WriteFile(ctx, bytes.NewReader(content))
	if err != nil {
		return deepFixture{}, err
	}
	cur := Entry{Name: p[len(p)-1], Kind: KindFile, Mode: 0o644, Size: size, Hash: h}
	exts := []string{"html", "css", "js", "jpg", "png", "webp", "woff2", "json", "svg", "mp4"}
	// Build bottom-up: each level holds the entry below plus siblings.
	for level := len(p) - 1; level >= 0; level-- {
		entries := []Entry{cur}
		var total uint64 = cur.Size
		for i := range siblingsPerDir {
			var e Entry
			var hash blockstore.Hash
			for j := range hash {
				hash[j] = byte(rng.Uint32())
			}
			if i%10 == 9 {
				// Sibling directories: their content is never loaded by
				// a proof, so a random hash stands in for it.
				e = Entry{Name: fmt.Sprintf("section-%02d", i), Kind: KindDir, Mode: 0o755, Size: uint64(rng.IntN(100 << 20)), Hash: hash}
			} else {
				e = Entry{Name: fmt.Sprintf("asset-%03d-%x.%s", i, rng.Uint32()&0xffff, exts[i%len(exts)]), Kind: KindFile, Mode: 0o644, Size: uint64(rng.IntN(2 << 20)), Hash: hash}
			}
			total += e.Size
			entries = append(entries, e)
		}
		top, err := b.BuildDir(ctx, entries)
		if err != nil {
			return deepFixture{}, err
		}
		if level == 0 {
			return deepFixture{store: mem, root: top, path: p}, nil
		}
		cur = Entry{Name: p[level-1], Kind: KindDir, Mode: 0o755, Size: total, Hash: top}
	}
	panic("unreachable")
}

func BenchmarkProofBuildDepth8(b *testing.B) {
	fx, err := deepTree()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var size, nodes int
	for b.Loop() {
		proof, r, err := BuildProof(ctx, fx.store, fx.root, fx.path)
		if err != nil || r.Status != Found {
			b.Fatalf("BuildProof: %v, status %v", err, r.Status)
		}
		size += proof.Size()
		nodes += len(proof.Nodes)
	}
	reportProofs(b, size, nodes)
}

// BenchmarkProofVerifyDepth8 measures what a receiver does: decode the
// encoded proof and verify it against the root.
func BenchmarkProofVerifyDepth8(b *testing.B) {
	fx, err := deepTree()
	if err != nil {
		b.Fatal(err)
	}
	proof, _, err := BuildProof(context.Background(), fx.store, fx.root, fx.path)
	if err != nil {
		b.Fatal(err)
	}
	enc := proof.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	var size, nodes int
	for b.Loop() {
		p, err := DecodeProof(enc)
		if err != nil {
			b.Fatal(err)
		}
		r, err := Verify(fx.root, fx.path, p)
		if err != nil || r.Status != Found {
			b.Fatalf("Verify: %v, status %v", err, r.Status)
		}
		size += len(enc)
		nodes += len(p.Nodes)
	}
	reportProofs(b, size, nodes)
}

// hugeFixture is one directory of hugeDirEntries entries, all pointing at
// the same small file (as in TestProofOfHugeDirectory).
type hugeFixture struct {
	store blockstore.Store
	top   blockstore.Hash
	names []string
}

const hugeDirEntries = 1_000_000

var (
	hugeOnce sync.Once
	huge     hugeFixture
	hugeErr  error
)

func hugeDir(b *testing.B) hugeFixture {
	hugeOnce.Do(func() {
		ctx := context.Background()
		mem := blockstore.NewMem(-1)
		bl := &Builder{Store: mem}
		h, size, err := bl.WriteFile(ctx, bytes.NewReader([]byte("the same small file everywhere")))
		if err != nil {
			hugeErr = err
			return
		}
		es := make([]Entry, hugeDirEntries)
		names := make([]string, hugeDirEntries)
		for i := range es {
			names[i] = fmt.Sprintf("file-%08d.jpg", i)
			es[i] = Entry{Name: names[i], Kind: KindFile, Mode: 0o644, Size: size, Hash: h}
		}
		top, err := bl.BuildDir(ctx, es)
		huge, hugeErr = hugeFixture{store: mem, top: top, names: names}, err
	})
	if hugeErr != nil {
		b.Fatal(hugeErr)
	}
	return huge
}

// hugeDirPicks is how many distinct entries the huge-directory benchmarks
// cycle through, so they do not measure one path over and over.
const hugeDirPicks = 4096

func hugeDirPath(fx hugeFixture, i int) Path {
	// A multiplicative step spreads the picks over the whole directory.
	return Path{fx.names[(i*7919)%len(fx.names)]}
}

func BenchmarkProofBuildHugeDir(b *testing.B) {
	fx := hugeDir(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var size, nodes, i int
	for b.Loop() {
		proof, r, err := BuildProof(ctx, fx.store, fx.top, hugeDirPath(fx, i%hugeDirPicks))
		if err != nil || r.Status != Found {
			b.Fatalf("BuildProof: %v, status %v", err, r.Status)
		}
		size += proof.Size()
		nodes += len(proof.Nodes)
		i++
	}
	reportProofs(b, size, nodes)
}

func BenchmarkProofVerifyHugeDir(b *testing.B) {
	fx := hugeDir(b)
	ctx := context.Background()
	paths := make([]Path, hugeDirPicks)
	encs := make([][]byte, hugeDirPicks)
	for i := range encs {
		paths[i] = hugeDirPath(fx, i)
		proof, _, err := BuildProof(ctx, fx.store, fx.top, paths[i])
		if err != nil {
			b.Fatal(err)
		}
		encs[i] = proof.Encode()
	}
	b.ReportAllocs()
	b.ResetTimer()
	var size, nodes, i int
	for b.Loop() {
		k := i % hugeDirPicks
		p, err := DecodeProof(encs[k])
		if err != nil {
			b.Fatal(err)
		}
		r, err := Verify(fx.top, paths[k], p)
		if err != nil || r.Status != Found {
			b.Fatalf("Verify: %v, status %v", err, r.Status)
		}
		size += len(encs[k])
		nodes += len(p.Nodes)
		i++
	}
	reportProofs(b, size, nodes)
}

// benchChunkSizes are the candidates for DefaultChunkSize.
var benchChunkSizes = []uint32{64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20}

const writeFileInput = 64 << 20

var (
	randInputOnce sync.Once
	randInput     []byte
)

// randomInput is writeFileInput incompressible bytes, the same every run.
func randomInput() []byte {
	randInputOnce.Do(func() {
		randInput = make([]byte, writeFileInput)
		_, _ = rand.NewChaCha8([32]byte{'g', 'r', 'i', 't', 's'}).Read(randInput)
	})
	return randInput
}

func chunkName(cs uint32) string { return fmt.Sprintf("chunk=%dK", cs>>10) }

var importPut = blockstore.PutOptions{Residency: blockstore.Pinned, Deferred: true}

// warmStore opens a store in dir and fills every shard directory with a
// tiny block, as in any store that has been used for a while: a fresh
// store creates (and fsyncs) a shard directory on the first block of each
// of its 256 hash prefixes, which would weigh on runs with many blocks.
func warmStore(ctx context.Context, b *testing.B, dir string) *blockstore.Disk {
	b.Helper()
	store, err := blockstore.OpenDisk(ctx, dir, blockstore.DiskConfig{Quota: -1})
	if err != nil {
		b.Fatal(err)
	}
	var seen [256]bool
	for i, left := 0, len(seen); left > 0; i++ {
		h, err := store.Put(ctx, fmt.Appendf(nil, "filler %d", i), importPut)
		if err != nil {
			b.Fatal(err)
		}
		if !seen[h[0]] {
			seen[h[0]] = true
			left--
		}
	}
	if err := store.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	return store
}

// writeFileOnce is what an import does with one file: store it pinned
// and deferred, then Sync. It returns the top node's hash and how long
// the Sync took.
func writeFileOnce(ctx context.Context, b *testing.B, store blockstore.Store, cs uint32, data []byte) (blockstore.Hash, time.Duration) {
	bl := &Builder{Store: store, ChunkSize: cs, PutOptions: importPut}
	h, n, err := bl.WriteFile(ctx, bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := store.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	sync := time.Since(start)
	if n != uint64(len(data)) {
		b.Fatalf("wrote %d bytes, want %d", n, len(data))
	}
	return h, sync
}

// deleteFile removes a file's chunks and top node (level 0 only: every
// benchmarked size fits one node), so the next write is not deduplicated.
// It returns the top node's size.
func deleteFile(ctx context.Context, b *testing.B, store blockstore.Store, h blockstore.Hash) int {
	b.Helper()
	raw, err := store.Get(ctx, h)
	if err != nil {
		b.Fatal(err)
	}
	n, err := Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	f := n.(*FileNode)
	if f.Level != 0 {
		b.Fatalf("file node level %d; deleteFile handles level 0 only", f.Level)
	}
	for _, c := range append(f.Hashes, h) {
		if err := store.Delete(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	if err := store.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	return len(raw)
}

// BenchmarkWriteFile stores a 64 MiB file the way an import does (pinned,
// deferred, one Sync at the end) into an on-disk store whose shard
// directories exist, at each candidate chunk size; the blocks are deleted
// between iterations. Besides throughput it reports the number of blocks
// (= files on disk) and the top file node's size, which is the last node
// of every proof for the file.
func BenchmarkWriteFile(b *testing.B) {
	data := randomInput()
	ctx := context.Background()
	for _, cs := range benchChunkSizes {
		b.Run(chunkName(cs), func(b *testing.B) {
			store := warmStore(ctx, b, b.TempDir())
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			nodeSize := 0
			var syncs time.Duration
			for b.Loop() {
				h, sync := writeFileOnce(ctx, b, store, cs, data)
				syncs += sync
				b.StopTimer()
				nodeSize = deleteFile(ctx, b, store, h)
				b.StartTimer()
			}
			b.ReportMetric(syncs.Seconds()*1e3/float64(b.N), "sync-ms/op")
			b.ReportMetric(float64((len(data)+int(cs)-1)/int(cs)), "blocks")
			b.ReportMetric(float64(nodeSize), "filenode-bytes")
		})
	}
}

// BenchmarkWriteFileFreshStore is BenchmarkWriteFile at DefaultChunkSize
// into a new store per iteration: the first import into a data directory
// also pays for creating the shard directories.
func BenchmarkWriteFileFreshStore(b *testing.B) {
	data := randomInput()
	ctx := context.Background()
	base := b.TempDir()
	b.SetBytes(int64(len(data)))
	iter := 0
	var syncs time.Duration
	for b.Loop() {
		b.StopTimer()
		dir := filepath.Join(base, fmt.Sprint(iter))
		iter++
		store, err := blockstore.OpenDisk(ctx, dir, blockstore.DiskConfig{Quota: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		_, sync := writeFileOnce(ctx, b, store, DefaultChunkSize, data)
		syncs += sync
		b.StopTimer()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(syncs.Seconds()*1e3/float64(b.N), "sync-ms/op")
}

// BenchmarkChunkHash is the baseline for BenchmarkWriteFile and
// BenchmarkChunkGet: BLAKE3 over one chunk, no store.
func BenchmarkChunkHash(b *testing.B) {
	data := randomInput()
	for _, cs := range benchChunkSizes {
		b.Run(chunkName(cs), func(b *testing.B) {
			b.SetBytes(int64(cs))
			i := 0
			for b.Loop() {
				off := (i * int(cs)) % len(data)
				_ = blockstore.Sum(data[off : off+int(cs)])
				i++
			}
		})
	}
}

// BenchmarkChunkGet reads and verifies chunks from an on-disk store with
// a warm page cache: what serving a block costs beyond the network.
func BenchmarkChunkGet(b *testing.B) {
	data := randomInput()
	ctx := context.Background()
	for _, cs := range benchChunkSizes {
		b.Run(chunkName(cs), func(b *testing.B) {
			store, err := blockstore.OpenDisk(ctx, b.TempDir(), blockstore.DiskConfig{Quota: -1})
			if err != nil {
				b.Fatal(err)
			}
			const chunks = 64 // 4..64 MiB, small enough to stay in the page cache
			hashes := make([]blockstore.Hash, chunks)
			for i := range hashes {
				off := (i * int(cs)) % len(data)
				hashes[i], err = store.Put(ctx, data[off:off+int(cs)], importPut)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(cs))
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if _, err := store.Get(ctx, hashes[i%chunks]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

package tree

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

// smallFileTree is a site's worth of small files: 2,000 files of 200 B
// to 16 KiB in 20 directories, as a static site or an emoji directory.
func smallFileTree() map[string]map[string][]byte {
	rng := rand.New(rand.NewPCG(7, 16))
	dirs := map[string]map[string][]byte{}
	for i := range 2000 {
		b := make([]byte, 200+rng.IntN(16<<10))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		d := fmt.Sprintf("d%02d", i%20)
		if dirs[d] == nil {
			dirs[d] = map[string][]byte{}
		}
		dirs[d][fmt.Sprintf("f%04d.txt", i)] = b
	}
	return dirs
}

// smallTree is one build of the small-file tree.
type smallTree struct {
	took          time.Duration
	blocks        int
	lookupBytes   int // proofs plus inline bytes, summed over the lookups
	lookups       int
	proofNodes    int
	directEntries int
}

// buildSmallTree writes the tree into a fresh on-disk store the way an
// import does (pinned, deferred, one Sync), with a file node for every
// file (as before direct entries: WriteFile) or with one-chunk files
// direct (WriteFileEntry), and measures it.
func buildSmallTree(ctx context.Context, b *testing.B, dir string, dirs map[string]map[string][]byte, direct bool) smallTree {
	store, err := blockstore.OpenDisk(ctx, dir, blockstore.DiskConfig{Quota: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var out smallTree
	start := time.Now()
	bl := &Builder{Store: store, PutOptions: importPut}
	var top []Entry
	for _, dname := range sortedKeys(dirs) {
		var es []Entry
		for _, name := range sortedKeys(dirs[dname]) {
			data := dirs[dname][name]
			var e Entry
			if direct {
				e, err = bl.WriteFileEntry(ctx, bytes.NewReader(data))
			} else {
				var h blockstore.Hash
				var n uint64
				h, n, err = bl.WriteFile(ctx, bytes.NewReader(data))
				e = Entry{Kind: KindFile, Size: n, Hash: h}
			}
			if err != nil {
				b.Fatal(err)
			}
			e.Name, e.Mode = name, 0o644
			if e.Direct {
				out.directEntries++
			}
			es = append(es, e)
		}
		h, err := bl.BuildDir(ctx, es)
		if err != nil {
			b.Fatal(err)
		}
		var size uint64
		for _, e := range es {
			size += e.Size
		}
		top = append(top, Entry{Name: dname, Kind: KindDir, Mode: 0o755, Size: size, Hash: h})
	}
	root, err := bl.BuildDir(ctx, top)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	out.took = time.Since(start)
	st, err := store.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	out.blocks = int(st.PinnedBlocks + st.CachedBlocks)
	for _, dname := range sortedKeys(dirs) {
		for _, name := range sortedKeys(dirs[dname])[:10] {
			proof, r, err := BuildProof(ctx, store, root, Path{dname, name})
			if err != nil {
				b.Fatal(err)
			}
			out.lookupBytes += proof.Size() + int(r.Entry.Size)
			out.proofNodes += len(proof.Nodes)
			out.lookups++
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// BenchmarkSmallFiles builds the small-file tree with file nodes for
// every file (before) and with direct entries (after), the two in turn
// in every iteration so both meet the same machine load, and reports
// each one's import time, blocks stored, and the mean bytes (and nodes)
// of a file's lookup answer: its proof plus the inline file bytes, what
// /grits/v1/lookup sends for a small file.
//
//	go test -run '^$' -bench SmallFiles -benchtime 5x ./tree
func BenchmarkSmallFiles(b *testing.B) {
	dirs := smallFileTree()
	ctx := context.Background()
	base := b.TempDir()
	var before, after smallTree
	var tBefore, tAfter time.Duration
	iter := 0
	for b.Loop() {
		for _, direct := range []bool{iter%2 == 1, iter%2 == 0} {
			r := buildSmallTree(ctx, b, filepath.Join(base, fmt.Sprint(iter, direct)), dirs, direct)
			if direct {
				after, tAfter = r, tAfter+r.took
			} else {
				before, tBefore = r, tBefore+r.took
			}
		}
		iter++
	}
	n := float64(b.N)
	b.ReportMetric(tBefore.Seconds()*1e3/n, "import-ms-filenodes")
	b.ReportMetric(tAfter.Seconds()*1e3/n, "import-ms-direct")
	b.ReportMetric(float64(before.blocks), "blocks-filenodes")
	b.ReportMetric(float64(after.blocks), "blocks-direct")
	b.ReportMetric(float64(before.lookupBytes)/float64(before.lookups), "lookup-bytes-filenodes")
	b.ReportMetric(float64(after.lookupBytes)/float64(after.lookups), "lookup-bytes-direct")
	b.ReportMetric(float64(before.proofNodes)/float64(before.lookups), "proof-nodes-filenodes")
	b.ReportMetric(float64(after.proofNodes)/float64(after.lookups), "proof-nodes-direct")
	if after.directEntries != 2000 || before.directEntries != 0 {
		b.Fatalf("direct entries: %d with WriteFileEntry, %d with WriteFile; want 2000 and 0", after.directEntries, before.directEntries)
	}
}

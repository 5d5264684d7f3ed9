package fuse

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// fixedRoots is a Roots with a fixed history.
type fixedRoots []tree.Root

func (f fixedRoots) Latest() (tree.Root, bool) {
	if len(f) == 0 {
		return tree.Root{}, false
	}
	return f[len(f)-1], true
}

func (f fixedRoots) Roots() []tree.Root { return f }

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestReplicaListsHugeDirectoryInBoundedMemory lists a 100,000-entry
// directory (long names: 25 MB as a slice of entries) through a
// read-only mount without READDIRPLUS, in batches as ls does, and checks
// that every name comes once and that the heap never grows by more than
// a few MiB: the listing streams leaf by leaf.
func TestReplicaListsHugeDirectoryInBoundedMemory(t *testing.T) {
	needFUSE(t)
	if testing.Short() {
		t.Skip("builds a 100,000-entry directory")
	}
	ctx := context.Background()
	store := blockstore.NewMem(-1)
	b := &tree.Builder{Store: store}
	file, _, err := b.WriteFile(ctx, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	pad := strings.Repeat("n", 100)
	entries := make([]tree.Entry, n)
	for i := range entries {
		entries[i] = tree.Entry{Name: fmt.Sprintf("%s-%06d", pad, i), Kind: tree.KindFile, Mode: 0o644, Size: 1, Hash: file}
	}
	big, err := b.BuildDir(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	entries = nil
	top, err := b.BuildDir(ctx, []tree.Entry{{Name: "huge", Kind: tree.KindDir, Mode: 0o755, Size: n, Hash: big}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := MountReplica(ctx, dir, ReplicaConfig{Getter: store, Roots: fixedRoots{{Seq: 1, Tree: top, Time: time.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)

	f, err := os.Open(filepath.Join(dir, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := heapInUse()
	var peak uint64
	seen := map[int]bool{}
	for batch := 0; ; batch++ {
		names, err := f.Readdirnames(1000)
		for _, name := range names {
			var i int
			if _, err := fmt.Sscanf(strings.TrimPrefix(name, pad+"-"), "%d", &i); err != nil || seen[i] {
				t.Fatalf("listing: unexpected or repeated name %q", name)
			}
			seen[i] = true
		}
		if batch%10 == 0 {
			peak = max(peak, heapInUse())
		}
		if err != nil || len(names) == 0 {
			break
		}
	}
	if len(seen) != n {
		t.Fatalf("listed %d names, want %d", len(seen), n)
	}
	// The map of seen numbers is the test's own: about 3 MiB.
	if grew := int64(peak) - int64(base); grew > 12<<20 {
		t.Errorf("the heap grew by %d MiB while listing; want a streamed listing", grew>>20)
	}
}

package tree

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// maxNodeBytes walks every directory node under top and returns the
// largest encoded size and the shard depth reached.
func dirShape(t *testing.T, g Getter, top blockstore.Hash) (maxLeaf, maxShard, depth int) {
	t.Helper()
	var walk func(h blockstore.Hash, d int)
	walk = func(h blockstore.Hash, d int) {
		raw, n, err := loadNode(context.Background(), g, h)
		if err != nil {
			t.Fatal(err)
		}
		depth = max(depth, d)
		switch n := n.(type) {
		case *DirNode:
			maxLeaf = max(maxLeaf, len(raw))
		case *ShardNode:
			maxShard = max(maxShard, len(raw))
			for _, c := range n.Children {
				walk(c.Hash, d+1)
			}
		}
	}
	walk(top, 0)
	return
}

func manyEntries(n int, seed uint64) []Entry {
	rng := rand.New(rand.NewPCG(seed, 1))
	es := make([]Entry, n)
	for i := range es {
		var h blockstore.Hash
		for j := range h {
			h[j] = byte(rng.Uint32())
		}
		es[i] = Entry{Name: fmt.Sprintf("file-%08d.jpg", i), Kind: KindFile, Mode: 0o644, Size: uint64(rng.IntN(1 << 20)), Hash: h}
	}
	return es
}

func TestShardingKeepsNodesSmall(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{0, 1, 100, 200, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := newBuilder(t)
			es := manyEntries(n, uint64(n))
			top, err := b.BuildDir(ctx, es)
			if err != nil {
				t.Fatal(err)
			}
			maxLeaf, maxShard, depth := dirShape(t, b.Store, top)
			if maxLeaf > DirLeafMax || maxShard > MaxNodeSize {
				t.Fatalf("leaf %d bytes (limit %d), shard %d bytes", maxLeaf, DirLeafMax, maxShard)
			}
			if n >= 5000 && depth < 2 {
				t.Fatalf("%d entries in depth %d: not sharded", n, depth)
			}
			got, err := ListDir(ctx, b.Store, top)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("ListDir returned %d entries, want %d", len(got), n)
			}
			for i := range got {
				if got[i] != es[i] { // manyEntries names sort in creation order
					t.Fatalf("entry %d = %+v, want %+v", i, got[i], es[i])
				}
			}
		})
	}
}

// TestUpdatesAreCanonical checks the invariant the whole design rests
// on: a directory's hash depends only on its entries, however it was
// reached. Random inserts, replacements and removals across the
// shard/unshard boundary must match a bulk build of the final set.
func TestUpdatesAreCanonical(t *testing.T) {
	ctx := context.Background()
	b := newBuilder(t)
	pool := manyEntries(600, 7)
	rng := rand.New(rand.NewPCG(42, 42))
	top, err := b.EmptyDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]Entry{}
	for step := 0; step < 1500; step++ {
		e := pool[rng.IntN(len(pool))]
		switch rng.IntN(3) {
		case 0, 1:
			if rng.IntN(4) == 0 {
				e.Size = uint64(rng.IntN(1 << 30)) // replacement that changes the encoded length
			}
			top, err = b.Set(ctx, top, Path{e.Name}, e)
			live[e.Name] = e
		case 2:
			var nt blockstore.Hash
			nt, err = b.Remove(ctx, top, Path{e.Name})
			if _, ok := live[e.Name]; ok {
				if err != nil {
					t.Fatalf("step %d: remove %s: %v", step, e.Name, err)
				}
				top = nt
				delete(live, e.Name)
			} else if !errors.Is(err, ErrNotExist) {
				t.Fatalf("step %d: remove of missing %s: err = %v, want ErrNotExist", step, e.Name, err)
			}
			err = nil
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if step%100 == 99 || step == 1499 {
			var es []Entry
			for _, e := range live {
				es = append(es, e)
			}
			want, err := b.BuildDir(ctx, es)
			if err != nil {
				t.Fatal(err)
			}
			if top != want {
				t.Fatalf("step %d (%d entries): incremental hash %s != bulk %s", step, len(live), top.Short(), want.Short())
			}
		}
	}
}

func TestBuildIncrementalEqualsBulk(t *testing.T) {
	fx := fixture{
		"index.html":           "<h1>hi</h1>",
		"css/site.css":         "body{}",
		"img/a.png":            string(make([]byte, 3*MinChunkSize+17)),
		"docs/guide/intro.md":  "# intro",
		"docs/guide/empty/":    "",
		"docs/link":            "symlink:guide/intro.md",
		"deep/a/b/c/d/e/f/g.x": "deep",
	}
	b := newBuilder(t)
	inc := buildIncremental(t, b, fx)
	bulk := buildBulk(t, b, fx)
	if inc != bulk {
		t.Fatalf("incremental root %s != bulk root %s", inc, bulk)
	}
	// Sizes propagate: the root's "docs" entry counts every byte beneath.
	r, err := Lookup(context.Background(), b.Store, inc, MustParsePath("docs"))
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len("# intro") + len("guide/intro.md")); r.Entry.Size != want {
		t.Fatalf("docs size %d, want %d", r.Entry.Size, want)
	}
}

func TestSetRemoveErrors(t *testing.T) {
	ctx := context.Background()
	b := newBuilder(t)
	root := buildIncremental(t, b, fixture{"f": "x", "l": "symlink:f", "d/g": "y"})
	e := fileEntry(t, b, "z")
	cases := []struct {
		name string
		op   func() error
		want error
	}{
		{"set under file", func() error { _, err := b.Set(ctx, root, MustParsePath("f/x"), e); return err }, ErrNotDir},
		{"set under symlink", func() error { _, err := b.Set(ctx, root, MustParsePath("l/x"), e); return err }, ErrSymlink},
		{"remove missing", func() error { _, err := b.Remove(ctx, root, MustParsePath("nope")); return err }, ErrNotExist},
		{"remove under missing dir", func() error { _, err := b.Remove(ctx, root, MustParsePath("nope/x")); return err }, ErrNotExist},
		{"remove under file", func() error { _, err := b.Remove(ctx, root, MustParsePath("f/x")); return err }, ErrNotDir},
		{"set root", func() error { _, err := b.Set(ctx, root, Path{}, e); return err }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.op()
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// TestCopyOnWrite checks that an update writes only the nodes on its path.
func TestCopyOnWrite(t *testing.T) {
	ctx := context.Background()
	store := blockstore.NewMem(-1)
	b := &Builder{Store: store, ChunkSize: MinChunkSize}
	fx := fixture{}
	for i := 0; i < 20; i++ {
		fx[fmt.Sprintf("d%d/f%d.txt", i, i)] = fmt.Sprint(i)
	}
	fx["a/b/c/target.txt"] = "old"
	root := buildBulk(t, b, fx)
	before, _ := store.Stats(ctx)
	e := fileEntry(t, b, "new content")
	afterFile, _ := store.Stats(ctx)
	if _, err := b.Set(ctx, root, MustParsePath("a/b/c/target.txt"), e); err != nil {
		t.Fatal(err)
	}
	after, _ := store.Stats(ctx)
	// root, a, b, c: four directory nodes, nothing else.
	if got := (after.PinnedBlocks + after.CachedBlocks) - (afterFile.PinnedBlocks + afterFile.CachedBlocks); got != 4 {
		t.Fatalf("update stored %d new nodes, want 4 (blocks before %d)", got, before.PinnedBlocks+before.CachedBlocks)
	}
}

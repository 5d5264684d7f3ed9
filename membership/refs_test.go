package membership

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

func randomHashes(n int) []blockstore.Hash {
	out := make([]blockstore.Hash, n)
	for i := range out {
		rand.Read(out[i][:])
	}
	return out
}

// upstreamRequests is every grits/1 request the nodes other than v have
// answered: what v's fetching costs the rest of the swarm.
func (c *cluster) upstreamRequests(v *node) int64 {
	var n int64
	for _, o := range c.live() {
		if o != v {
			n += o.srv.Stats().Requests
		}
	}
	return n
}

// startRefs gives v's fetcher a Refs, runs it until the test ends and
// waits until it has walked root r.
func startRefs(t *testing.T, v *node, r tree.Root) *Refs {
	t.Helper()
	refs := NewRefs(v.swarm, v.fetcher, testLogger(t))
	v.fetcher.SetRefs(refs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); refs.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 30*time.Second, "the volunteer has walked the tree", func() error {
		if st := refs.Stats(); st.Tree != r.Tree {
			return fmt.Errorf("walked %s, want %s", st.Tree.Short(), r.Tree.Short())
		}
		return nil
	})
	return refs
}

// TestStrangersCannotAmplify: a stranger (a grits/1 client without a
// member credential, scripted here) floods a volunteer with hashes no
// tree has. Without Refs each one made the volunteer ask its home
// nodes, the storage node and the origin, and the home nodes ask again;
// with it the volunteer answers "not found" and asks no one, while a
// block the tree does reference is still pulled through, once, and one
// that no source has is not asked for again at once.
func TestStrangersCannotAmplify(t *testing.T) {
	c := newCluster(t)
	c.add(RoleStorage, nil, []string{"/"})
	v := c.add(RoleVolunteer, nil, nil)
	c.add(RoleVolunteer, nil, nil)
	c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	r := c.publish(map[string][]byte{"media/a": randomData(200 << 10), "b": randomData(40 << 10)})
	c.waitRoot(r)
	ctx := context.Background()
	stranger, err := transport.NewClient(transport.ClientConfig{SiteKey: c.site, StallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()

	flood := func(what string, hashes []blockstore.Hash) int64 {
		t.Helper()
		before := c.upstreamRequests(v)
		missing, err := stranger.GetBlocks(ctx, v.addr, hashes, func(blockstore.Hash, []byte) error { return errors.New("a random hash served") })
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(missing) != len(hashes) {
			t.Fatalf("%s: %d of %d reported missing", what, len(missing), len(hashes))
		}
		return c.upstreamRequests(v) - before
	}

	// Before: the amplification this test exists for.
	legacy := flood("256 random hashes, no Refs", randomHashes(proto.MaxBatch))
	t.Logf("without Refs: one GetBlocks of %d random hashes cost the swarm %d requests", proto.MaxBatch, legacy)
	if legacy < proto.MaxBatch {
		t.Fatalf("without Refs the flood cost only %d upstream requests; the test no longer shows the attack", legacy)
	}

	startRefs(t, v, r)
	if got := flood("256 random hashes", randomHashes(proto.MaxBatch)); got != 0 {
		t.Errorf("one GetBlocks of %d random hashes cost the swarm %d requests, want 0", proto.MaxBatch, got)
	}
	if got := flood("16 random hashes", randomHashes(16)); got != 0 {
		t.Errorf("16 random hashes cost the swarm %d requests, want 0", got)
	}
	before := c.upstreamRequests(v)
	_, err = stranger.Lookup(ctx, v.addr, &tree.Root{Tree: randomHashes(1)[0]}, tree.MustParsePath("/index.html"), 0)
	if !errors.Is(err, proto.ErrUnknownRoot) {
		t.Errorf("lookup in a random tree: %v, want unknown root", err)
	}
	if got := c.upstreamRequests(v) - before; got != 0 {
		t.Errorf("a lookup in a random tree cost the swarm %d requests, want 0", got)
	}

	// What the tree references is still pulled through for strangers.
	var lacking blockstore.Hash
	for _, h := range c.chunksOf(r, "media/a") {
		if ok, _ := v.store.Has(ctx, h); !ok {
			lacking = h
			break
		}
	}
	if lacking.IsZero() {
		t.Fatal("the volunteer holds every chunk already")
	}
	before = c.upstreamRequests(v)
	b, err := stranger.GetBlock(ctx, v.addr, lacking)
	if err != nil || blockstore.Sum(b) != lacking {
		t.Fatalf("a chunk of the tree, through the volunteer: %v", err)
	}
	if got := c.upstreamRequests(v) - before; got < 1 || got > 4 {
		t.Errorf("pulling one chunk through cost %d requests, want 1 to 4", got)
	}

	// A referenced block gone from every source: asked for once, then
	// answered from the negative cache.
	gone := c.chunksOf(r, "b")[0]
	for _, n := range c.live() {
		n.store.Delete(ctx, gone)
	}
	if _, err := stranger.GetBlock(ctx, v.addr, gone); !errors.Is(err, proto.ErrNotFound) {
		t.Fatalf("a block no one has: %v", err)
	}
	before = c.upstreamRequests(v)
	for range 10 {
		if _, err := stranger.GetBlock(ctx, v.addr, gone); !errors.Is(err, proto.ErrNotFound) {
			t.Fatalf("a block no one has, again: %v", err)
		}
	}
	if got := c.upstreamRequests(v) - before; got != 0 {
		t.Errorf("asking again for a block no one had cost %d requests, want 0 (negative cache)", got)
	}
}

// TestRefsFollowNewRootsAndRebuild: a new root's blocks become known
// (walking only what changed), and a set grown past twice the newest
// tree is rebuilt from it, forgetting replaced content.
func TestRefsFollowNewRootsAndRebuild(t *testing.T) {
	c := newCluster(t)
	v := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	r1 := c.publish(map[string][]byte{"keep": randomData(64 << 10), "old": randomData(64 << 10)})
	c.waitRoot(r1)
	refs := startRefs(t, v, r1)
	old := c.chunksOf(r1, "old")
	for _, h := range append(c.chunksOf(r1, "keep"), old...) {
		if !refs.Has(h) {
			t.Fatalf("chunk %s of the first root unknown", h.Short())
		}
	}
	if refs.Has(randomHashes(1)[0]) {
		t.Fatal("a random hash is known")
	}
	loaded := refs.Stats().Loaded
	r2 := c.publish(map[string][]byte{"new": randomData(64 << 10)})
	c.waitRoot(r2)
	eventually(t, 30*time.Second, "the second root walked", func() error {
		if refs.Stats().Tree != r2.Tree {
			return errors.New("not yet")
		}
		return nil
	})
	for _, h := range c.chunksOf(r2, "new") {
		if !refs.Has(h) {
			t.Fatalf("chunk %s of the new file unknown", h.Short())
		}
	}
	// The new root directory, the new file's node, and the top nodes of
	// the unchanged entries (loaded to be skipped).
	if got := refs.Stats().Loaded - loaded; got > 4 {
		t.Errorf("the second root loaded %d nodes for a one-file change", got)
	}

	// Replace "old" many times over: the set outgrows twice the tree and
	// is rebuilt from the newest tree.
	refs.mu.Lock()
	for i := range 3 * refsRebuildSlack {
		refs.cur.known[uint64(i)] = struct{}{} // stands for replaced content
	}
	refs.mu.Unlock()
	r3 := c.publish(map[string][]byte{"old": randomData(8 << 10)})
	c.waitRoot(r3)
	eventually(t, 30*time.Second, "the third root walked and the set rebuilt", func() error {
		if st := refs.Stats(); st.Tree != r3.Tree || st.Blocks > 100 {
			return fmt.Errorf("tree %s, %d blocks", st.Tree.Short(), st.Blocks)
		}
		return nil
	})
	if refs.Has(old[0]) {
		t.Error("a chunk replaced two roots ago is still known after the rebuild")
	}
	for _, h := range c.chunksOf(r3, "keep") {
		if !refs.Has(h) {
			t.Fatalf("chunk %s of the newest tree unknown after the rebuild", h.Short())
		}
	}
}

// BenchmarkRefsWalk measures what knowing a tree costs a node: the first
// walk of a tree of files of 4 chunks each (16 KiB chunks) held in
// memory, per block, and the heap the set holds per block.
func BenchmarkRefsWalk(b *testing.B) {
	for _, files := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("files=%d", files), func(b *testing.B) {
			store := blockstore.NewMem(-1)
			bld := &tree.Builder{Store: store, ChunkSize: 16 << 10}
			ctx := context.Background()
			root, err := bld.EmptyDir(ctx)
			if err != nil {
				b.Fatal(err)
			}
			data := randomData(64 << 10)
			for i := range files {
				data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16) // every file different
				h, size, err := bld.WriteFile(ctx, bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				p := tree.MustParsePath(fmt.Sprintf("d%d/f%d", i%32, i))
				if root, err = bld.Set(ctx, root, p, tree.Entry{Kind: tree.KindFile, Mode: 0o644, Size: size, Hash: h}); err != nil {
					b.Fatal(err)
				}
			}
			var blocks int
			var walking time.Duration
			var heap float64
			for b.Loop() {
				r := &Refs{seed: maphash.MakeSeed(), cur: newRefsGen(), log: testLogger(b), get: store}
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				start := time.Now()
				if !r.walkInto(ctx, root, r.cur) {
					b.Fatal("walk incomplete")
				}
				walking += time.Since(start)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				blocks = len(r.cur.known)
				heap = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(blocks)
				runtime.KeepAlive(r)
			}
			b.ReportMetric(float64(walking.Nanoseconds())/float64(b.N)/float64(blocks), "walk-ns/block")
			b.ReportMetric(heap, "heap-B/block")
			b.ReportMetric(float64(blocks), "blocks")
		})
	}
}

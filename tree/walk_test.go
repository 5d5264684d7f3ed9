package tree

import (
	"context"
	"errors"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// TestWalkReportsMisfits: Walk (what fsck and gc trust) refuses what the
// readers refuse: a file node where a directory is linked, a file's top
// node at a non-canonical level, an index node that does not match its
// parent.
func TestWalkReportsMisfits(t *testing.T) {
	ctx := context.Background()
	b := newBuilder(t)
	chunk := fileNodeEntry(t, b, "x") // a real file node, for its chunk hash
	chunkNode, _ := LoadNode(ctx, b.Store, chunk.Hash)
	h0 := chunkNode.(*FileNode).Hashes[0]
	put := func(n Node) blockstore.Hash {
		h, err := b.putNode(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	// Level 1 over a 1-byte file: decodable, but not a canonical top.
	inner := put(&FileNode{ChunkSize: MinChunkSize, Size: 1, Hashes: []blockstore.Hash{h0}})
	notTop := put(&FileNode{Level: 1, ChunkSize: MinChunkSize, Size: 1, Hashes: []blockstore.Hash{inner}})
	// A proper level-1 file whose first child claims the wrong size.
	full := uint64(FileFanout * MinChunkSize)
	badChild := put(&FileNode{ChunkSize: MinChunkSize, Size: 1, Hashes: []blockstore.Hash{h0}})
	good := make([]blockstore.Hash, FileFanout)
	for i := range good {
		good[i] = h0
	}
	okChild := put(&FileNode{ChunkSize: MinChunkSize, Size: full, Hashes: good})
	mismatch := put(&FileNode{Level: 1, ChunkSize: MinChunkSize, Size: full + 1, Hashes: []blockstore.Hash{badChild, okChild}})

	root, err := b.BuildDir(ctx, []Entry{
		{Name: "dir-is-file", Kind: KindDir, Mode: 0o755, Hash: chunk.Hash},
		{Name: "not-top", Kind: KindFile, Mode: 0o644, Size: 1, Hash: notTop},
		{Name: "mismatch", Kind: KindFile, Mode: 0o644, Size: full + 1, Hash: mismatch},
		{Name: "fine", Kind: KindFile, Mode: 0o644, Size: 1, Hash: chunk.Hash},
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]bool{}
	err = Walk(ctx, b.Store, root, func(v Visit) (bool, error) {
		if v.Err != nil {
			if !errors.Is(v.Err, ErrMalformed) {
				t.Errorf("%s: %v, want ErrMalformed", v.Path, v.Err)
			}
			bad[v.Path.String()] = true
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dir-is-file", "/not-top", "/mismatch"} {
		if !bad[p] {
			t.Errorf("%s: misfit not reported (reported: %v)", p, bad)
		}
	}
	if bad["/fine"] {
		t.Error("a good file was reported")
	}
}

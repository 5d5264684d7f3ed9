package offload

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// chunk is one block of file content in the library.
type chunk struct {
	h    blockstore.Hash
	size uint32
}

// library is the content of the latest root: its chunks, sorted by hash
// and unique (36 bytes each in memory: 144 MiB for a 1 TB library of
// 256 KiB chunks), and the bytes of its tree nodes, which never leave
// the origin.
type library struct {
	root      tree.Root
	chunks    []chunk
	bytes     int64 // of the chunks
	nodeBytes int64 // of the tree nodes
}

func compareHash(a, b blockstore.Hash) int { return bytes.Compare(a[:], b[:]) }

// find returns the index of h in l.chunks.
func (l *library) find(h blockstore.Hash) (int, bool) {
	if l == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(l.chunks, h, func(c chunk, h blockstore.Hash) int { return compareHash(c.h, h) })
}

func (l *library) has(h blockstore.Hash) bool {
	_, ok := l.find(h)
	return ok
}

// sizeGetter records the size of every node a walk loads, once.
type sizeGetter struct {
	g     tree.Getter
	seen  map[blockstore.Hash]bool
	bytes int64
}

func (s *sizeGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	b, err := s.g.Get(ctx, h)
	if err == nil && !s.seen[h] {
		s.seen[h] = true
		s.bytes += int64(len(b))
	}
	return b, err
}

// buildLibrary walks root's tree through g (the origin's own store: tree
// nodes are always local). A block that is also a tree node is left out
// of the chunks: it must never be evicted as content.
func buildLibrary(ctx context.Context, g tree.Getter, root tree.Root) (*library, error) {
	sg := &sizeGetter{g: g, seen: map[blockstore.Hash]bool{}}
	var chunks []chunk
	files := map[blockstore.Hash]bool{}
	err := tree.Walk(ctx, sg, root.Tree, func(v tree.Visit) (bool, error) {
		if v.Err != nil {
			return false, fmt.Errorf("%s: %w", v.Path, v.Err)
		}
		if v.Kind == tree.BlockChunk { // a direct file's one chunk
			chunks = append(chunks, chunk{v.Hash, v.Size})
			return true, nil
		}
		if v.Kind != tree.BlockFile {
			return true, nil
		}
		if files[v.Hash] {
			return false, nil
		}
		files[v.Hash] = true
		n, err := tree.LoadNode(ctx, sg, v.Hash)
		if err != nil {
			return false, fmt.Errorf("%s: %w", v.Path, err)
		}
		f := n.(*tree.FileNode)
		err = tree.Chunks(ctx, sg, f, 0, f.Size, func(c tree.Chunk) error {
			chunks = append(chunks, chunk{c.Hash, c.Size})
			return nil
		})
		return false, err
	})
	if err != nil {
		return nil, fmt.Errorf("offload: walk root seq %d: %w", root.Seq, err)
	}
	slices.SortFunc(chunks, func(a, b chunk) int { return compareHash(a.h, b.h) })
	chunks = slices.CompactFunc(chunks, func(a, b chunk) bool { return a.h == b.h })
	l := &library{root: root, nodeBytes: sg.bytes}
	for _, c := range chunks {
		if !sg.seen[c.h] {
			l.chunks = append(l.chunks, c)
			l.bytes += int64(c.size)
		}
	}
	l.chunks = slices.Clip(l.chunks)
	return l, nil
}

// chunkSet is a set of the library's chunks that a node is not known to
// hold: those new since the root it was verified at. all means every
// chunk (a node verified at no root, or at one whose tree is gone).
type chunkSet struct {
	all   bool
	set   map[blockstore.Hash]struct{}
	bytes int64
}

var everything = &chunkSet{all: true}

func (s *chunkSet) has(h blockstore.Hash) bool {
	if s == nil {
		return false
	}
	if s.all {
		return true
	}
	_, ok := s.set[h]
	return ok
}

// size is the bytes of the library in the set.
func (s *chunkSet) size(l *library) int64 {
	switch {
	case s == nil:
		return 0
	case s.all:
		return l.bytes
	}
	return s.bytes
}

// newSince returns the chunks of l that lie in files that differ
// between tree old and l's tree: the part of l a node verified at old is
// not known to hold. A chunk outside them is in a file both trees share,
// so a node that held old holds it. (A chunk of a changed file may also
// be in old, in another file: it is counted as new, which only errs on
// the safe side.) old's nodes are read from g, the origin's store; if
// they are gone (gc), the answer is everything.
func newSince(ctx context.Context, g tree.Getter, old blockstore.Hash, l *library) *chunkSet {
	if old.IsZero() {
		return everything
	}
	s := &chunkSet{set: map[blockstore.Hash]struct{}{}}
	add := func(c tree.Chunk) error {
		if _, dup := s.set[c.Hash]; !dup && l.has(c.Hash) {
			s.set[c.Hash] = struct{}{}
			s.bytes += int64(c.Size)
		}
		return nil
	}
	if err := diffTrees(ctx, g, old, l.root.Tree, add); err != nil {
		return everything
	}
	return s
}

// diffTrees calls fn for every chunk of the files of directory tree new
// that are not the same file at the same path in old.
func diffTrees(ctx context.Context, g tree.Getter, old, new blockstore.Hash, fn func(tree.Chunk) error) error {
	if old == new {
		return nil
	}
	entries, err := tree.ListDir(ctx, g, new)
	if err != nil {
		return err
	}
	before := map[string]tree.Entry{}
	if !old.IsZero() {
		es, err := tree.ListDir(ctx, g, old)
		if err != nil {
			return err
		}
		for _, e := range es {
			before[e.Name] = e
		}
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		o, had := before[e.Name]
		if had && o.Kind == e.Kind && o.Hash == e.Hash {
			continue
		}
		switch e.Kind {
		case tree.KindDir:
			var oh blockstore.Hash
			if had && o.Kind == tree.KindDir {
				oh = o.Hash
			}
			err = diffTrees(ctx, g, oh, e.Hash, fn)
		case tree.KindFile:
			err = tree.EntryChunks(ctx, g, e, fn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sample picks a chunk of l outside skip uniformly at random (by count:
// "1% of the blocks lost" is what an audit must find). ok is false when
// every chunk is in skip, or l is empty.
func (l *library) sample(skip *chunkSet) (chunk, bool) {
	if l == nil || len(l.chunks) == 0 || skip != nil && skip.all {
		return chunk{}, false
	}
	// Rejection sampling: skip is small next to the library unless a root
	// replaced most of it, and then a few tries find the rest.
	for range 64 {
		c := l.chunks[rand.IntN(len(l.chunks))]
		if !skip.has(c.h) {
			return c, true
		}
	}
	var rest []chunk
	for _, c := range l.chunks {
		if !skip.has(c.h) {
			rest = append(rest, c)
		}
	}
	if len(rest) == 0 {
		return chunk{}, false
	}
	return rest[rand.IntN(len(rest))], true
}

package tree

import (
	"context"
	"fmt"

	"github.com/grits-cdn/grits/blockstore"
)

// BlockKind says what a block is to the tree that references it.
type BlockKind uint8

const (
	BlockDir   BlockKind = 1 // a directory node (whole, or a shard leaf)
	BlockShard BlockKind = 2 // a shard node
	BlockFile  BlockKind = 3 // a file node (top or index)
	BlockChunk BlockKind = 4 // file data
)

func (k BlockKind) String() string {
	switch k {
	case BlockDir:
		return "dir node"
	case BlockShard:
		return "shard node"
	case BlockFile:
		return "file node"
	case BlockChunk:
		return "chunk"
	}
	return fmt.Sprintf("BlockKind(%d)", uint8(k))
}

// Visit is one reference from the tree to a block.
type Visit struct {
	Hash blockstore.Hash
	// Kind is what the referencing node says the block is. For nodes it is
	// refined after loading (a directory's top may be a shard).
	Kind BlockKind
	// Path is the tree path the block belongs to.
	Path Path
	// Offset of a chunk in its file.
	Offset uint64
	// Size of a chunk (BlockChunk); 0 for nodes.
	Size uint32
	// Err is set, for a node, when it could not be loaded or decoded, or
	// does not fit where it is linked: the walk reports it and goes on
	// with the rest of the tree.
	Err error

	base uint64 // offset of the parent index node, to find this child's index
}

// Walk calls fn for every block reachable from the directory root: nodes
// (after trying to load them) and chunks (which it does not read). When
// fn returns descend=false for a node, its children are skipped; callers
// walking many roots use that to visit shared subtrees once. A non-nil
// error from fn stops the walk.
//
// A node that does not fit where it is linked (a shard of the wrong
// depth, a file node where a directory belongs, an index node that does
// not match its parent) is reported like an unreadable one: the walk
// checks what readers check, so fsck cannot pass a tree cat refuses.
func Walk(ctx context.Context, g Getter, root blockstore.Hash, fn func(Visit) (descend bool, err error)) error {
	return walkNode(ctx, g, Visit{Hash: root, Kind: BlockDir, Path: Path{}}, 0, nil, fn)
}

// fits checks a loaded node against its link: a directory level (shard
// depth) or, for file nodes, the parent that lists it (nil for a top).
func fits(n Node, kind BlockKind, depth uint8, parent *FileNode, i int) error {
	switch n := n.(type) {
	case *DirNode:
		if kind == BlockFile {
			return fmt.Errorf("%w: a directory node where a file node belongs", ErrMalformed)
		}
	case *ShardNode:
		if kind == BlockFile {
			return fmt.Errorf("%w: a shard node where a file node belongs", ErrMalformed)
		}
		if n.Depth != depth {
			return fmt.Errorf("%w: shard depth %d, expected %d", ErrMalformed, n.Depth, depth)
		}
	case *FileNode:
		if kind != BlockFile {
			return fmt.Errorf("%w: a file node where a directory node belongs", ErrMalformed)
		}
		if parent != nil && (n.Level != parent.Level-1 || n.ChunkSize != parent.ChunkSize || n.Size != parent.ChildSize(i)) {
			return fmt.Errorf("%w: index node does not match its parent", ErrMalformed)
		}
		if parent == nil && !n.IsTop() {
			return fmt.Errorf("%w: a file's top node is not at its canonical level", ErrMalformed)
		}
	}
	return nil
}

func walkNode(ctx context.Context, g Getter, v Visit, depth uint8, parent *FileNode, fn func(Visit) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, n, err := loadNode(ctx, g, v.Hash)
	if err == nil {
		i := 0
		if parent != nil {
			i = int((v.Offset - v.base) / Span(parent.ChunkSize, parent.Level))
		}
		if ferr := fits(n, v.Kind, depth, parent, i); ferr != nil {
			err = fmt.Errorf("tree: node %s: %w", v.Hash.Short(), ferr)
		}
	}
	if err != nil {
		v.Err = err
		_, ferr := fn(v)
		return ferr
	}
	switch n.(type) {
	case *ShardNode:
		v.Kind = BlockShard
	case *DirNode:
		v.Kind = BlockDir
	case *FileNode:
		v.Kind = BlockFile
	}
	descend, err := fn(v)
	if err != nil || !descend {
		return err
	}
	switch n := n.(type) {
	case *DirNode:
		for _, e := range n.Entries {
			child := append(v.Path[:len(v.Path):len(v.Path)], e.Name)
			switch e.Kind {
			case KindDir:
				err = walkNode(ctx, g, Visit{Hash: e.Hash, Kind: BlockDir, Path: child}, 0, nil, fn)
			case KindFile:
				if e.Direct {
					_, err = fn(Visit{Hash: e.Hash, Kind: BlockChunk, Path: child, Size: uint32(e.Size)})
					break
				}
				err = walkNode(ctx, g, Visit{Hash: e.Hash, Kind: BlockFile, Path: child}, 0, nil, fn)
			}
			if err != nil {
				return err
			}
		}
	case *ShardNode:
		for _, c := range n.Children {
			if err := walkNode(ctx, g, Visit{Hash: c.Hash, Kind: BlockDir, Path: v.Path}, depth+1, nil, fn); err != nil {
				return err
			}
		}
	case *FileNode:
		span := Span(n.ChunkSize, n.Level)
		for i, h := range n.Hashes {
			off := v.Offset + uint64(i)*span
			if n.Level == 0 {
				if _, err := fn(Visit{Hash: h, Kind: BlockChunk, Path: v.Path, Offset: off, Size: uint32(n.ChildSize(i))}); err != nil {
					return err
				}
				continue
			}
			if err := walkNode(ctx, g, Visit{Hash: h, Kind: BlockFile, Path: v.Path, Offset: off, base: v.Offset}, 0, n, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

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
	// Err is set, for a node, when it could not be loaded or decoded: the
	// walk reports it and goes on with the rest of the tree.
	Err error
}

// Walk calls fn for every block reachable from the directory root: nodes
// (after trying to load them) and chunks (which it does not read). When
// fn returns descend=false for a node, its children are skipped; callers
// walking many roots use that to visit shared subtrees once. A non-nil
// error from fn stops the walk.
func Walk(ctx context.Context, g Getter, root blockstore.Hash, fn func(Visit) (descend bool, err error)) error {
	return walkNode(ctx, g, Visit{Hash: root, Kind: BlockDir, Path: Path{}}, 0, fn)
}

func walkNode(ctx context.Context, g Getter, v Visit, depth uint8, fn func(Visit) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, n, err := loadNode(ctx, g, v.Hash)
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
				err = walkNode(ctx, g, Visit{Hash: e.Hash, Kind: BlockDir, Path: child}, 0, fn)
			case KindFile:
				err = walkNode(ctx, g, Visit{Hash: e.Hash, Kind: BlockFile, Path: child}, 0, fn)
			}
			if err != nil {
				return err
			}
		}
	case *ShardNode:
		for _, c := range n.Children {
			if err := walkNode(ctx, g, Visit{Hash: c.Hash, Kind: BlockDir, Path: v.Path}, depth+1, fn); err != nil {
				return err
			}
		}
	case *FileNode:
		span := Span(n.ChunkSize, n.Level)
		for i, h := range n.Hashes {
			off := v.Offset + uint64(i)*span
			if n.Level == 0 {
				if _, err := fn(Visit{Hash: h, Kind: BlockChunk, Path: v.Path, Offset: off}); err != nil {
					return err
				}
				continue
			}
			if err := walkNode(ctx, g, Visit{Hash: h, Kind: BlockFile, Path: v.Path, Offset: off}, 0, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

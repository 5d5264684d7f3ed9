package fuse

import (
	"context"
	"fmt"
	"sync"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// fileReader reads one version of a file (its top file node) through a
// Getter, keeping the chunk it read last: the kernel asks for 128 KiB at
// a time and a chunk is 256 KiB, so sequential reads would otherwise
// fetch and hash every chunk twice.
type fileReader struct {
	g    tree.Getter
	hash blockstore.Hash
	size uint64

	mu    sync.Mutex
	top   *tree.FileNode
	last  tree.Chunk
	data  []byte
	ahead func(ctx context.Context, cs []tree.Chunk) // read-ahead, if the mount does it
	next  uint64                                     // where a sequential reader would read next
}

func newFileReader(g tree.Getter, h blockstore.Hash, size uint64) *fileReader {
	return &fileReader{g: g, hash: h, size: size}
}

// ReadAt fills p from offset off; it returns fewer bytes only at the end
// of the file.
func (r *fileReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	if uint64(off) >= r.size || len(p) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.top == nil {
		n, err := tree.LoadNode(ctx, r.g, r.hash)
		if err != nil {
			return 0, err
		}
		f, ok := n.(*tree.FileNode)
		if !ok || f.Size != r.size {
			return 0, fmt.Errorf("file node %s: %w", r.hash.Short(), tree.ErrMalformed)
		}
		r.top = f
	}
	want := min(uint64(len(p)), r.size-uint64(off))
	var chunks []tree.Chunk
	err := tree.Chunks(ctx, r.g, r.top, uint64(off), want, func(c tree.Chunk) error {
		chunks = append(chunks, c)
		return nil
	})
	if err != nil {
		return 0, err
	}
	sequential := uint64(off) == r.next
	n := 0
	for _, c := range chunks {
		if c.Hash != r.last.Hash || r.data == nil || c.Offset != r.last.Offset {
			data, err := r.g.Get(ctx, c.Hash)
			if err != nil {
				return n, fmt.Errorf("chunk at %d: %w", c.Offset, err)
			}
			if len(data) != int(c.Size) {
				return n, fmt.Errorf("chunk %s at %d: %w: %d bytes, want %d", c.Hash.Short(), c.Offset, tree.ErrMalformed, len(data), c.Size)
			}
			r.last, r.data = c, data
		}
		lo := uint64(0)
		if uint64(off) > c.Offset {
			lo = uint64(off) - c.Offset
		}
		n += copy(p[n:want], r.data[lo:])
	}
	r.next = uint64(off) + uint64(n)
	if sequential && r.ahead != nil && len(chunks) > 0 {
		last := chunks[len(chunks)-1]
		if end := last.Offset + uint64(last.Size); end < r.size {
			var more []tree.Chunk
			tree.Chunks(ctx, r.g, r.top, end, readAheadBytes, func(c tree.Chunk) error {
				more = append(more, c)
				return nil
			})
			r.ahead(ctx, more)
		}
	}
	return n, nil
}

// readAheadBytes is how far past a sequential reader a read-only mount
// fetches: enough chunks to keep several peers busy.
const readAheadBytes = 4 << 20

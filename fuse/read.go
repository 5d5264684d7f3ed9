package fuse

import (
	"context"
	"fmt"
	"sync"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// fileReader reads one version of a file (its top file node) through a
// Getter. It keeps the last few chunks it got (the kernel asks for at
// most 1 MiB at a time and may ask for the parts of one chunk in
// several requests), and for a sequential reader it fetches the next
// chunks in parallel ahead of it: verifying (and on a volunteer,
// fetching) one chunk at a time would leave the other cores, and the
// other peers, idle.
type fileReader struct {
	g     tree.Getter
	hash  blockstore.Hash
	size  uint64
	slots chan struct{} // bounds this reader's fetches ahead, shared or its own

	mu    sync.Mutex
	top   *tree.FileNode
	cache map[uint64]*cached // by chunk offset
	order []uint64           // oldest first
	next  uint64             // where a sequential reader reads next
}

type cached struct {
	done chan struct{}
	data []byte
	err  error
}

const (
	// readAheadChunks is how far ahead of a sequential reader chunks
	// are fetched (4 MiB of 256 KiB chunks).
	readAheadChunks = 16
	// cachedChunks bounds the chunks one open file keeps.
	cachedChunks = readAheadChunks + 8
)

func newFileReader(g tree.Getter, h blockstore.Hash, size uint64, direct bool, slots chan struct{}) *fileReader {
	if slots == nil {
		slots = make(chan struct{}, 4)
	}
	r := &fileReader{g: g, hash: h, size: size, slots: slots, cache: map[uint64]*cached{}}
	if direct { // the hash names the one chunk: no node to load
		r.top = tree.DirectFile(tree.Entry{Kind: tree.KindFile, Size: size, Hash: h, Direct: true})
	}
	return r
}

func (r *fileReader) loadTop(ctx context.Context) (*tree.FileNode, error) {
	r.mu.Lock()
	top := r.top
	r.mu.Unlock()
	if top != nil {
		return top, nil
	}
	n, err := tree.LoadNode(ctx, r.g, r.hash)
	if err != nil {
		return nil, err
	}
	f, ok := n.(*tree.FileNode)
	if !ok || f.Size != r.size {
		return nil, fmt.Errorf("file node %s: %w", r.hash.Short(), tree.ErrMalformed)
	}
	r.mu.Lock()
	r.top = f
	r.mu.Unlock()
	return f, nil
}

// entry returns the cache entry for c, creating it; fetch is true when
// the caller must fill it.
func (r *fileReader) entry(c tree.Chunk) (e *cached, fetch bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.cache[c.Offset]; ok {
		return e, false
	}
	e = &cached{done: make(chan struct{})}
	r.cache[c.Offset] = e
	r.order = append(r.order, c.Offset)
	if len(r.order) > cachedChunks {
		delete(r.cache, r.order[0])
		r.order = r.order[1:]
	}
	return e, true
}

func (r *fileReader) fill(ctx context.Context, c tree.Chunk, e *cached) {
	data, err := r.g.Get(ctx, c.Hash)
	switch {
	case err != nil:
		err = fmt.Errorf("chunk at %d: %w", c.Offset, err)
	case len(data) != int(c.Size):
		err = fmt.Errorf("chunk %s at %d: %w: %d bytes, want %d", c.Hash.Short(), c.Offset, tree.ErrMalformed, len(data), c.Size)
	}
	e.data, e.err = data, err
	close(e.done)
	if err != nil {
		r.mu.Lock()
		if r.cache[c.Offset] == e {
			delete(r.cache, c.Offset) // the next read tries again
		}
		r.mu.Unlock()
	}
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
	top, err := r.loadTop(ctx)
	if err != nil {
		return 0, err
	}
	want := min(uint64(len(p)), r.size-uint64(off))
	var chunks []tree.Chunk
	err = tree.Chunks(ctx, r.g, top, uint64(off), want, func(c tree.Chunk) error {
		chunks = append(chunks, c)
		return nil
	})
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	sequential := uint64(off) == r.next || off == 0
	r.next = uint64(off) + want
	r.mu.Unlock()
	if sequential && len(chunks) > 0 {
		last := chunks[len(chunks)-1]
		if end := last.Offset + uint64(last.Size); end < r.size {
			r.ahead(ctx, top, end)
		}
	}
	n := 0
	for _, c := range chunks {
		e, fetch := r.entry(c)
		if fetch {
			r.fill(ctx, c, e)
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return n, ctx.Err()
		}
		if e.err != nil {
			return n, e.err
		}
		lo := uint64(0)
		if uint64(off) > c.Offset {
			lo = uint64(off) - c.Offset
		}
		n += copy(p[n:want], e.data[lo:])
	}
	return n, nil
}

// ahead starts fetches of the chunks from offset from on, as many as
// there are free slots, up to readAheadChunks.
func (r *fileReader) ahead(ctx context.Context, top *tree.FileNode, from uint64) {
	span := uint64(top.ChunkSize) * readAheadChunks
	tree.Chunks(ctx, r.g, top, from, span, func(c tree.Chunk) error {
		select {
		case r.slots <- struct{}{}:
		default:
			return errStop // enough under way
		}
		e, fetch := r.entry(c)
		if !fetch {
			<-r.slots
			return nil
		}
		go func() {
			defer func() { <-r.slots }()
			r.fill(context.WithoutCancel(ctx), c, e)
		}()
		return nil
	})
}

var errStop = fmt.Errorf("stop")

package tree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/grits-cdn/grits/blockstore"
)

// WriteFile splits r into chunks, stores them and the file's index nodes,
// and returns the hash of the top file node and the file's size. Chunks
// are stored in parallel; the order of the result never depends on it.
// New trees take WriteFileEntry, which stores no node for a small file.
func (b *Builder) WriteFile(ctx context.Context, r io.Reader) (blockstore.Hash, uint64, error) {
	hashes, size, err := b.writeChunks(ctx, r)
	if err != nil {
		return blockstore.Hash{}, 0, err
	}
	h, err := b.putFileIndex(ctx, hashes, size, b.chunkSize())
	return h, size, err
}

// WriteFileEntry stores r as WriteFile does and returns its file entry
// (Kind, Size, Hash, Direct; the caller names it): a file of one chunk
// (1 byte to the chunk size) is direct, its hash the chunk's, and no
// file node is stored, so a small file costs one block.
func (b *Builder) WriteFileEntry(ctx context.Context, r io.Reader) (Entry, error) {
	hashes, size, err := b.writeChunks(ctx, r)
	if err != nil {
		return Entry{}, err
	}
	if len(hashes) == 1 {
		return Entry{Kind: KindFile, Size: size, Hash: hashes[0], Direct: true}, nil
	}
	h, err := b.putFileIndex(ctx, hashes, size, b.chunkSize())
	return Entry{Kind: KindFile, Size: size, Hash: h}, err
}

// writeChunks stores r's chunks and returns their hashes, in order.
func (b *Builder) writeChunks(ctx context.Context, r io.Reader) ([]blockstore.Hash, uint64, error) {
	cs := b.chunkSize()
	if cs < MinChunkSize || cs > MaxChunkSize {
		return nil, 0, fmt.Errorf("tree: chunk size %d outside %d..%d", cs, MinChunkSize, MaxChunkSize)
	}
	var (
		hashes []blockstore.Hash
		size   uint64
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		sem    = b.ChunkSlots
		pool   = chunkPool(cs)
	)
	if sem == nil {
		sem = make(chan struct{}, runtime.GOMAXPROCS(0))
	}
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			fail(err)
			break
		}
		if failed() {
			break
		}
		buf := pool.Get().([]byte)
		n, err := io.ReadFull(r, buf)
		if n == 0 {
			pool.Put(buf) //nolint:staticcheck // a []byte in a Pool is fine here
			if err != nil && !errors.Is(err, io.EOF) {
				fail(fmt.Errorf("tree: read file: %w", err))
			}
			break
		}
		size += uint64(n)
		mu.Lock() // workers write into hashes; growing it must not race them
		hashes = append(hashes, blockstore.Hash{})
		mu.Unlock()
		sem <- struct{}{}
		wg.Add(1)
		go func(i int, chunk []byte) {
			defer func() { <-sem; pool.Put(buf); wg.Done() }() //nolint:staticcheck
			h, perr := b.Store.Put(ctx, chunk, b.PutOptions)
			if perr != nil {
				fail(fmt.Errorf("tree: store chunk %d: %w", i, perr))
				return
			}
			mu.Lock()
			hashes[i] = h
			mu.Unlock()
		}(i, buf[:n])
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				fail(fmt.Errorf("tree: read file: %w", err))
			}
			break
		}
	}
	wg.Wait()
	if first != nil {
		return nil, 0, first
	}
	return hashes, size, nil
}

// chunkPools holds one buffer pool per chunk size, shared by every
// WriteFile: a pool per call made each small file allocate (and zero) a
// whole chunk, 5 GiB of garbage for a 1 GiB import of many small files.
var chunkPools sync.Map // uint32 -> *sync.Pool

func chunkPool(cs uint32) *sync.Pool {
	if p, ok := chunkPools.Load(cs); ok {
		return p.(*sync.Pool)
	}
	p, _ := chunkPools.LoadOrStore(cs, &sync.Pool{New: func() any { return make([]byte, cs) }})
	return p.(*sync.Pool)
}

// putFileIndex builds the index levels above a list of chunk hashes.
func (b *Builder) putFileIndex(ctx context.Context, hashes []blockstore.Hash, size uint64, cs uint32) (blockstore.Hash, error) {
	level := uint8(0)
	for len(hashes) > FileFanout {
		span := Span(cs, level) * FileFanout
		var up []blockstore.Hash
		for i := 0; i < len(hashes); i += FileFanout {
			j := min(i+FileFanout, len(hashes))
			start := uint64(i/FileFanout) * span
			sz := min(span, size-start)
			h, err := b.putNode(ctx, &FileNode{Level: level, ChunkSize: cs, Size: sz, Hashes: hashes[i:j]})
			if err != nil {
				return blockstore.Hash{}, err
			}
			up = append(up, h)
		}
		hashes = up
		level++
	}
	return b.putNode(ctx, &FileNode{Level: level, ChunkSize: cs, Size: size, Hashes: hashes})
}

// DirectFile is the file node a direct entry stands for: one chunk, the
// entry's hash, covering its size. It is never stored or encoded (its
// ChunkSize is MaxChunkSize, what a direct file may be at most); readers
// take it wherever a file's top node goes (Chunks, ReadFile, inline
// data checks).
func DirectFile(e Entry) *FileNode {
	return &FileNode{Level: 0, ChunkSize: MaxChunkSize, Size: e.Size, Hashes: []blockstore.Hash{e.Hash}}
}

// EntryChunks calls fn for every chunk of the file entry e, in order:
// the one chunk of a direct file, else those its file node lists (loaded
// from g, and checked to be a file node of e's size).
func EntryChunks(ctx context.Context, g Getter, e Entry, fn func(Chunk) error) error {
	if e.Direct {
		return fn(Chunk{Offset: 0, Size: uint32(e.Size), Hash: e.Hash})
	}
	n, err := LoadNode(ctx, g, e.Hash)
	if err != nil {
		return err
	}
	f, ok := n.(*FileNode)
	if !ok || f.Size != e.Size {
		return fmt.Errorf("file %s: %w: not the file node of a %d-byte file", e.Hash.Short(), ErrMalformed, e.Size)
	}
	return Chunks(ctx, g, f, 0, f.Size, fn)
}

// Chunk is one data block of a file.
type Chunk struct {
	Offset uint64
	Size   uint32
	Hash   blockstore.Hash
}

// Chunks calls fn for each chunk of the file whose top node is f that
// overlaps [off, off+n), in order, loading index nodes as needed.
func Chunks(ctx context.Context, g Getter, f *FileNode, off, n uint64, fn func(Chunk) error) error {
	if off > f.Size {
		return fmt.Errorf("tree: offset %d beyond file size %d", off, f.Size)
	}
	return chunksIn(ctx, g, f, 0, off, rangeEnd(f.Size, off, n), fn)
}

func chunksIn(ctx context.Context, g Getter, f *FileNode, base, off, end uint64, fn func(Chunk) error) error {
	span := Span(f.ChunkSize, f.Level)
	for i, h := range f.Hashes {
		start := base + uint64(i)*span
		size := f.ChildSize(i)
		if start+size <= off {
			continue
		}
		if start >= end {
			break
		}
		if f.Level == 0 {
			if err := fn(Chunk{Offset: start, Size: uint32(size), Hash: h}); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		_, n, err := loadNode(ctx, g, h)
		if err != nil {
			return err
		}
		child, ok := n.(*FileNode)
		if !ok || child.Level != f.Level-1 || child.ChunkSize != f.ChunkSize || child.Size != size {
			return fmt.Errorf("tree: index node %s: %w: does not match its parent", h.Short(), ErrMalformed)
		}
		if err := chunksIn(ctx, g, child, start, off, end, fn); err != nil {
			return err
		}
	}
	return nil
}

// ReadFile writes bytes [off, off+n) of the file f to w, verifying each
// chunk's length (its bytes are verified by the Getter).
func ReadFile(ctx context.Context, g Getter, f *FileNode, off, n uint64, w io.Writer) error {
	end := rangeEnd(f.Size, off, n)
	return Chunks(ctx, g, f, off, n, func(c Chunk) error {
		data, err := g.Get(ctx, c.Hash)
		if err != nil {
			return fmt.Errorf("tree: chunk at %d: %w", c.Offset, err)
		}
		if len(data) != int(c.Size) {
			return fmt.Errorf("tree: chunk %s at %d: %w: %d bytes, want %d", c.Hash.Short(), c.Offset, ErrMalformed, len(data), c.Size)
		}
		lo := uint64(0)
		if off > c.Offset {
			lo = off - c.Offset
		}
		hi := uint64(c.Size)
		if c.Offset+hi > end {
			hi = end - c.Offset
		}
		if _, err := w.Write(data[lo:hi]); err != nil {
			return fmt.Errorf("tree: write: %w", err)
		}
		return nil
	})
}

// rangeEnd is min(size, off+n) without overflow; off <= size.
func rangeEnd(size, off, n uint64) uint64 {
	if off > size || n > size-off {
		return size
	}
	return off + n
}

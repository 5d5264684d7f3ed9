package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/grits-cdn/grits/tree"
)

// treeFileReaderWindow is how many chunk descriptors a treeFileReader
// resolves at once: a file's index nodes are loaded once per window, not
// once per chunk, and the descriptors cost 48 bytes each.
const treeFileReaderWindow = 128

// errTreeFileWindowFull stops tree.Chunks once a window is resolved.
var errTreeFileWindowFull = errors.New("gateway: chunk window full")

// treeFileReader is an io.ReadSeeker over a file in the tree that fetches
// lazily: it holds one chunk's bytes and the descriptors of a window of
// chunks, so serving a range of a 1 GB file costs a chunk of memory and
// only the chunks the range touches. Chunks come from the Getter,
// verified; their lengths are checked here.
type treeFileReader struct {
	ctx  context.Context
	g    tree.Getter
	f    *tree.FileNode
	size int64
	off  int64

	window []tree.Chunk // consecutive chunks, sorted by offset
	cur    tree.Chunk   // the chunk in data
	data   []byte
	err    error // the first fetch error, sticky
}

var _ io.ReadSeeker = (*treeFileReader)(nil)

func newTreeFileReader(ctx context.Context, g tree.Getter, f *tree.FileNode) *treeFileReader {
	return &treeFileReader{ctx: ctx, g: g, f: f, size: int64(f.Size)}
}

// Err returns the error that stopped a Read, if any.
func (fr *treeFileReader) Err() error { return fr.err }

// Read implements io.Reader.
func (fr *treeFileReader) Read(p []byte) (int, error) {
	if fr.err != nil {
		return 0, fr.err
	}
	if fr.off >= fr.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if fr.data == nil || fr.off < int64(fr.cur.Offset) || fr.off >= int64(fr.cur.Offset)+int64(len(fr.data)) {
		if err := fr.load(); err != nil {
			fr.err = err
			return 0, err
		}
	}
	n := copy(p, fr.data[fr.off-int64(fr.cur.Offset):])
	fr.off += int64(n)
	return n, nil
}

// load fetches the chunk holding fr.off.
func (fr *treeFileReader) load() error {
	c, ok := fr.inWindow(fr.off)
	if !ok {
		fr.window = fr.window[:0]
		off := uint64(fr.off)
		err := tree.Chunks(fr.ctx, fr.g, fr.f, off, fr.f.Size-off, func(c tree.Chunk) error {
			fr.window = append(fr.window, c)
			if len(fr.window) == treeFileReaderWindow {
				return errTreeFileWindowFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errTreeFileWindowFull) {
			return fmt.Errorf("gateway: file chunks at %d: %w", off, err)
		}
		if c, ok = fr.inWindow(fr.off); !ok {
			return fmt.Errorf("gateway: file of %d bytes has no chunk at %d: %w", fr.size, fr.off, tree.ErrMalformed)
		}
	}
	fr.data = nil // let the old chunk go before the next arrives
	data, err := fr.g.Get(fr.ctx, c.Hash)
	if err != nil {
		return fmt.Errorf("gateway: chunk %s at %d: %w", c.Hash.Short(), c.Offset, err)
	}
	if len(data) != int(c.Size) {
		return fmt.Errorf("gateway: chunk %s at %d: %w: %d bytes, want %d", c.Hash.Short(), c.Offset, tree.ErrMalformed, len(data), c.Size)
	}
	fr.cur, fr.data = c, data
	return nil
}

// inWindow finds the chunk of the window that holds off.
func (fr *treeFileReader) inWindow(off int64) (tree.Chunk, bool) {
	w := fr.window
	i := sort.Search(len(w), func(i int) bool { return int64(w[i].Offset)+int64(w[i].Size) > off })
	if i < len(w) && int64(w[i].Offset) <= off {
		return w[i], true
	}
	return tree.Chunk{}, false
}

// Seek implements io.Seeker. Seeking is free: nothing is fetched until
// the next Read.
func (fr *treeFileReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = fr.off + offset
	case io.SeekEnd:
		abs = fr.size + offset
	default:
		return 0, errors.New("gateway: seek: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("gateway: seek: negative position")
	}
	fr.off = abs
	return abs, nil
}

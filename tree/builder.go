package tree

import (
	"context"
	"errors"
	"fmt"

	"github.com/grits-cdn/grits/blockstore"
)

// Getter returns verified blocks: Get must never return bytes that do
// not hash to h (blockstore.Store re-hashes every read; a network fetcher
// must check before returning). The tree code relies on it and does not
// hash again; BuildProof still verifies the proof it built as a whole.
type Getter interface {
	Get(ctx context.Context, h blockstore.Hash) ([]byte, error)
}

// ReadWriter is what a Builder needs: reading existing nodes for
// copy-on-write updates, and storing new ones.
type ReadWriter interface {
	Getter
	Put(ctx context.Context, data []byte, opts blockstore.PutOptions) (blockstore.Hash, error)
}

var _ ReadWriter = blockstore.Store(nil)

// DefaultChunkSize is the size of file chunks; see docs/design.md for the
// benchmark behind the choice.
const DefaultChunkSize = 256 << 10

// Sentinel errors for lookups and updates.
var (
	ErrNotExist = errors.New("no such file or directory")
	ErrNotDir   = errors.New("not a directory")
	ErrSymlink  = errors.New("path crosses a symlink, which grits never follows")
)

// Builder writes tree nodes and file chunks to a store.
type Builder struct {
	Store ReadWriter
	// PutOptions applies to every block written (import pins and defers).
	PutOptions blockstore.PutOptions
	// ChunkSize for new files; 0 means DefaultChunkSize.
	ChunkSize uint32
	// ChunkSlots, if set, bounds the chunks being stored at once across
	// every WriteFile that shares it (an importer hashing many files in
	// parallel); nil gives each WriteFile GOMAXPROCS slots of its own.
	ChunkSlots chan struct{}
}

func (b *Builder) chunkSize() uint32 { return b.ChunkSizeOrDefault() }

// ChunkSizeOrDefault is the chunk size new files get.
func (b *Builder) ChunkSizeOrDefault() uint32 {
	if b.ChunkSize == 0 {
		return DefaultChunkSize
	}
	return b.ChunkSize
}

// EmptyDir stores the empty directory and returns its hash (the root of a
// site with nothing imported yet).
func (b *Builder) EmptyDir(ctx context.Context) (blockstore.Hash, error) {
	return b.putNode(ctx, &DirNode{})
}

// Set puts e at path p under the directory root, creating missing parent
// directories (mode 0755), and returns the new root. Only the nodes on the
// path are rewritten. e.Name is taken from the last path component.
func (b *Builder) Set(ctx context.Context, root blockstore.Hash, p Path, e Entry) (blockstore.Hash, error) {
	if len(p) == 0 {
		return blockstore.Hash{}, fmt.Errorf("tree: set: the root itself is not an entry; use the directory's hash as the new root")
	}
	e.Name = p[len(p)-1]
	if err := e.validate(); err != nil {
		return blockstore.Hash{}, fmt.Errorf("tree: set %s: %w", p, err)
	}
	h, _, err := b.setPath(ctx, root, p, 0, e)
	if err != nil {
		return blockstore.Hash{}, fmt.Errorf("tree: set %s: %w", p, err)
	}
	return h, nil
}

// setPath returns the directory's new top hash and the change in its
// total size.
func (b *Builder) setPath(ctx context.Context, dir blockstore.Hash, p Path, i int, e Entry) (blockstore.Hash, int64, error) {
	name := p[i]
	if i == len(p)-1 {
		ref, old, err := b.setAt(ctx, dir, 0, hashEntries([]Entry{e})[0])
		if err != nil {
			return blockstore.Hash{}, 0, err
		}
		delta := int64(e.Size)
		if old != nil {
			delta -= int64(old.Size)
		}
		return ref.Hash, delta, nil
	}
	cur, ok, err := dirFind(ctx, b.Store, dir, name, nil)
	if err != nil {
		return blockstore.Hash{}, 0, err
	}
	if !ok {
		empty, err := b.EmptyDir(ctx)
		if err != nil {
			return blockstore.Hash{}, 0, err
		}
		cur = Entry{Name: name, Kind: KindDir, Mode: 0o755, Hash: empty}
	}
	switch cur.Kind {
	case KindFile:
		return blockstore.Hash{}, 0, fmt.Errorf("%s: %w", Path(p[:i+1]), ErrNotDir)
	case KindSymlink:
		return blockstore.Hash{}, 0, fmt.Errorf("%s: %w", Path(p[:i+1]), ErrSymlink)
	}
	child, delta, err := b.setPath(ctx, cur.Hash, p, i+1, e)
	if err != nil {
		return blockstore.Hash{}, 0, err
	}
	cur.Hash = child
	cur.Size = uint64(int64(cur.Size) + delta)
	ref, _, err := b.setAt(ctx, dir, 0, hashEntries([]Entry{cur})[0])
	if err != nil {
		return blockstore.Hash{}, 0, err
	}
	return ref.Hash, delta, nil
}

// Remove deletes the entry at p (a whole subtree for a directory) and
// returns the new root. A missing path is ErrNotExist.
func (b *Builder) Remove(ctx context.Context, root blockstore.Hash, p Path) (blockstore.Hash, error) {
	if len(p) == 0 {
		return blockstore.Hash{}, fmt.Errorf("tree: remove: cannot remove the root")
	}
	h, _, err := b.removePath(ctx, root, p, 0)
	if err != nil {
		return blockstore.Hash{}, fmt.Errorf("tree: remove %s: %w", p, err)
	}
	return h, nil
}

func (b *Builder) removePath(ctx context.Context, dir blockstore.Hash, p Path, i int) (blockstore.Hash, int64, error) {
	name := p[i]
	if i == len(p)-1 {
		nh := nameHash(name)
		ref, old, err := b.deleteAt(ctx, dir, 0, name, &nh)
		if err != nil {
			return blockstore.Hash{}, 0, err
		}
		if old == nil {
			return blockstore.Hash{}, 0, fmt.Errorf("%s: %w", p, ErrNotExist)
		}
		return ref.Hash, -int64(old.Size), nil
	}
	cur, ok, err := dirFind(ctx, b.Store, dir, name, nil)
	if err != nil {
		return blockstore.Hash{}, 0, err
	}
	switch {
	case !ok:
		return blockstore.Hash{}, 0, fmt.Errorf("%s: %w", p, ErrNotExist)
	case cur.Kind == KindFile:
		return blockstore.Hash{}, 0, fmt.Errorf("%s: %w", Path(p[:i+1]), ErrNotDir)
	case cur.Kind == KindSymlink:
		return blockstore.Hash{}, 0, fmt.Errorf("%s: %w", Path(p[:i+1]), ErrSymlink)
	}
	child, delta, err := b.removePath(ctx, cur.Hash, p, i+1)
	if err != nil {
		return blockstore.Hash{}, 0, err
	}
	cur.Hash = child
	cur.Size = uint64(int64(cur.Size) + delta)
	ref, _, err := b.setAt(ctx, dir, 0, hashEntries([]Entry{cur})[0])
	if err != nil {
		return blockstore.Hash{}, 0, err
	}
	return ref.Hash, delta, nil
}

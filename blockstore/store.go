package blockstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxBlockSize is the largest block any Store accepts or returns. File
// chunks and tree nodes are both at most this size; see docs/design.md.
const MaxBlockSize = 1 << 20

// Residency says whether a block may be evicted.
type Residency uint8

const (
	// Cached blocks count against the store's quota and are evicted,
	// least recently used first, when the quota is exceeded.
	Cached Residency = 1
	// Pinned blocks are never evicted; only Delete removes them.
	Pinned Residency = 2
)

func (r Residency) String() string {
	switch r {
	case Cached:
		return "cached"
	case Pinned:
		return "pinned"
	}
	return fmt.Sprintf("Residency(%d)", uint8(r))
}

// Sentinel errors. Callers branch on them with errors.Is.
var (
	ErrNotFound = errors.New("block not found")
	ErrTooLarge = errors.New("block too large")
	// ErrCorrupt matches a *CorruptError.
	ErrCorrupt = errors.New("block corrupt")
	// ErrHashMismatch is returned by PutExpect when data does not hash to
	// the expected value.
	ErrHashMismatch = errors.New("block hash mismatch")
)

// CorruptError reports a stored block whose bytes no longer match its
// hash. The store has moved the bad copy aside (to MovedTo, if it is on
// disk) and will not serve it again; the block now reads as not found.
type CorruptError struct {
	Hash    Hash
	Actual  Hash
	MovedTo string
}

func (e *CorruptError) Error() string {
	s := fmt.Sprintf("block %s is corrupt (content hashes to %s)", e.Hash, e.Actual.Short())
	if e.MovedTo != "" {
		s += "; moved aside to " + e.MovedTo
	}
	return s
}

// Is makes errors.Is(err, ErrCorrupt) true for a *CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// PutOptions tunes one Put.
type PutOptions struct {
	// Residency of the block; the zero value means Cached. Putting a block
	// that is already stored never lowers its residency: Pinned wins.
	Residency Residency
	// Deferred skips the per-block fsync. The block is durable only after
	// a later successful Sync. Bulk writers (import) use this and call Sync
	// once before committing anything that refers to the blocks.
	Deferred bool
}

// Info describes one stored block.
type Info struct {
	Hash      Hash
	Size      int64
	Residency Residency
	// LastUsed is when the block was last written or read, as far as the
	// store tracks it (it drives eviction of cached blocks).
	LastUsed time.Time
}

// Stats summarises a store's contents.
type Stats struct {
	PinnedBlocks int64
	PinnedBytes  int64
	CachedBlocks int64
	CachedBytes  int64
	// Quota is the byte limit for cached blocks; 0 means no cached blocks
	// are kept beyond what Put must store, <0 means unlimited.
	Quota int64
}

// Store holds blocks by hash. Implementations must be safe for concurrent
// use, must compute (never trust) the hash of what they store, and must
// never return bytes from Get that do not hash to the requested Hash.
// Every method fails with ctx's error once ctx is done. See the package
// documentation for the eviction rules.
type Store interface {
	// Put stores data and returns its hash. It is idempotent, and counts
	// as a use of the block. Blocks over MaxBlockSize fail with
	// ErrTooLarge.
	Put(ctx context.Context, data []byte, opts PutOptions) (Hash, error)
	// Get returns the block's bytes, verified against h; the caller owns
	// the slice. A missing block fails with ErrNotFound. A block whose
	// bytes fail verification fails with a *CorruptError and is removed,
	// so the next Get reports ErrNotFound.
	Get(ctx context.Context, h Hash) ([]byte, error)
	// Has reports whether the block is stored (without verifying it).
	// It does not count as a use.
	Has(ctx context.Context, h Hash) (bool, error)
	// Stat returns what the store knows about one block, or ErrNotFound.
	// It does not count as a use.
	Stat(ctx context.Context, h Hash) (Info, error)
	// SetResidency pins or unpins a stored block (ErrNotFound if it is
	// not stored). An unpinned block becomes the least recently used
	// cached block, and is evicted first if the quota is exceeded.
	SetResidency(ctx context.Context, h Hash, r Residency) error
	// Delete removes a block; deleting a missing block is not an error.
	Delete(ctx context.Context, h Hash) error
	// Walk calls fn for every stored block, in no particular order. The
	// store may change during the walk; fn may call other methods. An
	// error from fn stops the walk and is returned unwrapped.
	Walk(ctx context.Context, fn func(Info) error) error
	// Sync makes every block written so far durable, including those
	// written with PutOptions.Deferred.
	Sync(ctx context.Context) error
	// Stats returns counts and bytes by residency.
	Stats(ctx context.Context) (Stats, error)
}

// PutExpect stores data only if it hashes to want. Use it for bytes that
// arrived from a peer under a name the peer did not choose.
func PutExpect(ctx context.Context, s Store, want Hash, data []byte, opts PutOptions) error {
	if len(data) > MaxBlockSize {
		return fmt.Errorf("put %s: %w (%d bytes, limit %d)", want.Short(), ErrTooLarge, len(data), MaxBlockSize)
	}
	if got := Sum(data); got != want {
		return fmt.Errorf("put %s: %w: data hashes to %s", want.Short(), ErrHashMismatch, got.Short())
	}
	_, err := s.Put(ctx, data, opts)
	return err
}

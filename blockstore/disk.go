package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Names of the directories under a Disk's root; see doc.go for the layout.
const (
	pinnedDir  = "pinned"
	cachedDir  = "cached"
	tmpDir     = "tmp"
	corruptDir = "corrupt"
)

// numStripes is the number of per-block lock stripes in a Disk: one per
// value of a hash's first byte, which is also its shard directory.
const numStripes = 256

// Defaults for DiskConfig fields left zero.
const (
	DefaultTouchInterval = time.Minute
	DefaultTmpMaxAge     = time.Hour
)

// DiskConfig configures a Disk. The zero value is valid: it keeps no cached
// blocks beyond the newest one (Quota 0) and logs nowhere.
type DiskConfig struct {
	// Quota is the number of bytes of cached blocks kept; <0 is unlimited.
	// Pinned blocks do not count against it.
	Quota int64
	// TouchInterval is how often, at most, reading a block rewrites its
	// file's mtime. The mtime is how the LRU order survives a restart;
	// rewriting it on every read would turn reads into metadata writes.
	// Zero means DefaultTouchInterval.
	TouchInterval time.Duration
	// TmpMaxAge is the age beyond which OpenDisk deletes files in tmp/.
	// They are writes abandoned by a killed process; younger ones may
	// belong to another process still writing. Zero means DefaultTmpMaxAge.
	TmpMaxAge time.Duration
	// Logger receives warnings (corrupt blocks, stray files) and debug
	// detail. Nil discards.
	Logger *slog.Logger
}

// Validate reports a configuration OpenDisk would refuse.
func (c DiskConfig) Validate() error {
	if c.TouchInterval < 0 {
		return fmt.Errorf("blockstore: DiskConfig.TouchInterval %v is negative", c.TouchInterval)
	}
	if c.TmpMaxAge < 0 {
		return fmt.Errorf("blockstore: DiskConfig.TmpMaxAge %v is negative", c.TmpMaxAge)
	}
	return nil
}

func (c DiskConfig) withDefaults() DiskConfig {
	if c.TouchInterval == 0 {
		c.TouchInterval = DefaultTouchInterval
	}
	if c.TmpMaxAge == 0 {
		c.TmpMaxAge = DefaultTmpMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Disk is a Store in a directory, one file per block. The file system is
// the source of truth: a block's residency is the directory its file is in,
// and every change is a rename, so state survives restarts and several
// processes may share one directory without corrupting it. The in-memory
// index (sizes, LRU order) only serves quota accounting and Stats; it is
// rebuilt at open and corrected whenever an operation finds the disk
// disagreeing with it (as it will after another process's changes).
type Disk struct {
	dir  string
	tree [Pinned + 1]string // tree[r] is the directory holding residency r
	cfg  DiskConfig
	log  *slog.Logger

	// locks serialise changes to one block within this process, striped
	// by the hash's first byte. Readers share them. Eviction only ever
	// TryLocks, so it skips blocks in use instead of waiting for them.
	// Lock order: a stripe before mu, never the other way round.
	locks [numStripes]sync.RWMutex

	// quota is cfg.Quota until SetQuota changes it; keep is the
	// Evictable hook (nil: every cached block may go).
	quota atomic.Int64
	keep  atomic.Pointer[func(Hash) bool]

	mu  sync.Mutex
	idx index
	// unsynced holds blocks written or moved with Deferred since the last
	// Sync. A later non-deferred Put of the same block must make it
	// durable itself, since it cannot assume an earlier writer did.
	unsynced map[Hash]struct{}

	reads struct{ hits, misses, corrupt atomic.Int64 }
}

var _ Store = (*Disk)(nil)

// ReadStats counts Get calls by outcome.
type ReadStats struct {
	Hits    int64 // the block was there and verified
	Misses  int64 // not stored
	Corrupt int64 // stored, but its bytes failed verification (moved aside)
}

// Reads returns what Get found since the store was opened.
func (d *Disk) Reads() ReadStats {
	return ReadStats{Hits: d.reads.hits.Load(), Misses: d.reads.misses.Load(), Corrupt: d.reads.corrupt.Load()}
}

// OpenDisk opens the store in dir, creating it if needed. It deletes
// abandoned temporary files and indexes the blocks present, which reads
// every shard directory, so it takes time proportional to the number of
// blocks. It does not evict: a lowered quota is enforced by the next Put
// of a cached block, so opening a store just to inspect it changes nothing.
func OpenDisk(ctx context.Context, dir string, cfg DiskConfig) (*Disk, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Disk{
		dir:      dir,
		cfg:      cfg,
		log:      cfg.Logger.With("store", dir),
		idx:      newIndex(),
		unsynced: make(map[Hash]struct{}),
	}
	d.quota.Store(cfg.Quota)
	d.tree[Pinned] = filepath.Join(dir, pinnedDir)
	d.tree[Cached] = filepath.Join(dir, cachedDir)
	if err := d.makeDirs(); err != nil {
		return nil, fmt.Errorf("blockstore: open %s: %w", dir, err)
	}
	if err := d.cleanTmp(ctx); err != nil {
		return nil, fmt.Errorf("blockstore: open %s: %w", dir, err)
	}
	if err := d.load(ctx); err != nil {
		return nil, fmt.Errorf("blockstore: open %s: %w", dir, err)
	}
	s := d.idx.stats
	d.log.Info("blockstore: opened",
		"pinned_blocks", s.PinnedBlocks, "pinned_bytes", s.PinnedBytes,
		"cached_blocks", s.CachedBlocks, "cached_bytes", s.CachedBytes,
		"quota", cfg.Quota)
	return d, nil
}

// Dir returns the directory the store lives in.
func (d *Disk) Dir() string { return d.dir }

// Sync implements Store with one syncfs(2) on the store's file system,
// which is what makes Deferred puts worthwhile.
func (d *Disk) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blockstore: sync: %w", err)
	}
	d.mu.Lock()
	pending := d.unsynced
	d.unsynced = make(map[Hash]struct{})
	d.mu.Unlock()
	if err := syncFS(d.dir); err != nil {
		d.mu.Lock()
		for h := range pending {
			d.unsynced[h] = struct{}{}
		}
		d.mu.Unlock()
		return fmt.Errorf("blockstore: sync: %w", err)
	}
	return nil
}

// Stats implements Store. The counts come from the index, so they miss
// changes made by another process sharing the directory until this one
// comes across the blocks concerned.
func (d *Disk) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("blockstore: stats: %w", err)
	}
	d.mu.Lock()
	s := d.idx.stats
	d.mu.Unlock()
	s.Quota = d.quota.Load()
	return s, nil
}

// SetQuota changes the byte limit for cached blocks (<0: unlimited) and
// enforces it at once. An origin that offloads content moves it as its
// pinned content grows and shrinks.
func (d *Disk) SetQuota(q int64) {
	d.quota.Store(q)
	d.evict(Hash{}, false)
}

// SetEvictable installs a check that every cached block must pass before
// eviction removes it (nil removes the check). A block it refuses stays,
// even over the quota, until a later eviction finds it allowed: an
// origin uses it so that no block leaves while too few other nodes are
// known to hold it. ok is called with the store's lock held: it must be
// fast, must not block and must not call the store.
func (d *Disk) SetEvictable(ok func(Hash) bool) {
	if ok == nil {
		d.keep.Store(nil)
		return
	}
	d.keep.Store(&ok)
}

// used records a use of the block found at p with residency r, and reports
// whether the cached bytes grew (so the caller should evict). At most once
// per TouchInterval it also writes the use into the file's mtime, which is
// where OpenDisk gets the LRU order from. The block's stripe must be locked.
func (d *Disk) used(h Hash, size int64, r Residency, p string) bool {
	now := time.Now()
	d.mu.Lock()
	e, grew := d.idx.update(h, size, r, now)
	d.idx.touch(e, now)
	persist := now.Sub(e.persisted) >= d.cfg.TouchInterval
	if persist {
		e.persisted = now
	}
	d.mu.Unlock()
	if persist {
		if err := os.Chtimes(p, time.Time{}, now); err != nil {
			// Only the LRU order after a restart suffers.
			d.log.Debug("blockstore: recording block use", "path", p, "err", err)
		}
	}
	return grew
}

func (d *Disk) forget(h Hash) {
	d.mu.Lock()
	d.idx.remove(h)
	delete(d.unsynced, h)
	d.mu.Unlock()
}

func (d *Disk) markUnsynced(h Hash) {
	d.mu.Lock()
	d.unsynced[h] = struct{}{}
	d.mu.Unlock()
}

// evict removes least recently used cached blocks until the quota holds,
// sparing keep (the block just written or read: see doc.go) and any block
// whose stripe is busy. The caller must hold no stripe lock.
func (d *Disk) evict(keep Hash, hasKeep bool) {
	quota := d.quota.Load()
	if quota < 0 {
		return
	}
	var allowed func(Hash) bool
	if p := d.keep.Load(); p != nil {
		allowed = *p
	}
	var held [numStripes]bool
	d.mu.Lock()
	victims := d.idx.evict(quota, func(e *entry) bool {
		if hasKeep && e.hash == keep {
			return false
		}
		if allowed != nil && !allowed(e.hash) {
			return false
		}
		i := e.hash[0]
		if !held[i] {
			held[i] = d.locks[i].TryLock()
		}
		return held[i]
	})
	for _, e := range victims {
		delete(d.unsynced, e.hash)
	}
	d.mu.Unlock()

	var freed int64
	for _, e := range victims {
		// Remove by the cached path only: if another process has pinned
		// the block meanwhile, the rename moved it out of reach.
		if err := os.Remove(d.path(Cached, e.hash)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("blockstore: evicting block", "hash", e.hash.String(), "err", err)
			continue
		}
		freed += e.size
	}
	for i, ok := range held {
		if ok {
			d.locks[i].Unlock()
		}
	}
	if len(victims) > 0 {
		d.log.Debug("blockstore: evicted", "blocks", len(victims), "bytes", freed)
	}
}

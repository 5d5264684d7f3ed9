package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Disk's read side: Get, Has, Stat and Walk, and what Get does with a
// block that fails verification.

// Get implements Store.
func (d *Disk) Get(ctx context.Context, h Hash) ([]byte, error) {
	return d.get(ctx, h, true)
}

// Peek is Get without counting as a use of the block: for audits and
// scrubs, which read every block and must not change which ones eviction
// keeps. A block that fails verification is handled as by Get.
func (d *Disk) Peek(ctx context.Context, h Hash) ([]byte, error) {
	return d.get(ctx, h, false)
}

func (d *Disk) get(ctx context.Context, h Hash, use bool) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blockstore: get %s: %w", h.Short(), err)
	}
	lk := &d.locks[h[0]]
	lk.RLock()
	var data []byte
	r, p, err := d.find(h, func(p string) (err error) {
		data, err = readFile(p)
		return err
	})
	if err == nil {
		if got := Sum(data); got != h {
			err = d.quarantine(h, r, p, got)
			data = nil
		}
	}
	var grew bool
	if err == nil && use {
		grew = d.used(h, int64(len(data)), r, p)
	}
	lk.RUnlock()
	switch {
	case err == nil:
		d.reads.hits.Add(1)
	case errors.Is(err, ErrNotFound):
		d.reads.misses.Add(1)
	case errors.Is(err, ErrCorrupt):
		d.reads.corrupt.Add(1)
	}
	if err != nil {
		return nil, fmt.Errorf("blockstore: get %s: %w", h.Short(), err)
	}
	if grew {
		// The block was unknown to the index: another process stored it.
		d.evict(h, true)
	}
	return data, nil
}

// Has implements Store.
func (d *Disk) Has(ctx context.Context, h Hash) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("blockstore: has %s: %w", h.Short(), err)
	}
	lk := &d.locks[h[0]]
	lk.RLock()
	_, _, err := d.find(h, func(p string) error {
		_, err := os.Lstat(p)
		return err
	})
	lk.RUnlock()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("blockstore: has %s: %w", h.Short(), err)
}

// Stat implements Store. It does not count as a use of the block.
func (d *Disk) Stat(ctx context.Context, h Hash) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blockstore: stat %s: %w", h.Short(), err)
	}
	lk := &d.locks[h[0]]
	lk.RLock()
	var fi fs.FileInfo
	r, _, err := d.find(h, func(p string) (err error) {
		fi, err = os.Lstat(p)
		return err
	})
	lk.RUnlock()
	if err != nil {
		return Info{}, fmt.Errorf("blockstore: stat %s: %w", h.Short(), err)
	}
	return d.info(h, r, fi), nil
}

// find calls fn with the block's path in each tree until fn succeeds or
// fails with something other than fs.ErrNotExist, and reports where it
// succeeded. The index's idea of the block's residency picks the tree to
// try first, saving a failed open for the common case. A second round
// covers a block that another process moved between trees in between our
// two attempts. If no tree has it, find returns ErrNotFound and drops any
// index entry for it (another process deleted or evicted it).
func (d *Disk) find(h Hash, fn func(p string) error) (Residency, string, error) {
	order := [2]Residency{Pinned, Cached}
	d.mu.Lock()
	if e := d.idx.get(h); e != nil && e.res == Cached {
		order = [2]Residency{Cached, Pinned}
	}
	d.mu.Unlock()
	for range 2 {
		for _, r := range order {
			p := d.path(r, h)
			err := fn(p)
			if err == nil {
				return r, p, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return r, p, err
			}
		}
	}
	d.forget(h)
	return 0, "", ErrNotFound
}

// readFile reads a block file into a buffer of exactly its size. A file
// larger than any block is corrupt; reading one more byte than the limit
// is enough to prove it without loading all of it.
func readFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxBlockSize {
		return io.ReadAll(io.LimitReader(f, MaxBlockSize+1))
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	return data, nil
}

// quarantine moves a block file that failed verification to corrupt/,
// where an operator can examine it, and forgets the block. It returns the
// *CorruptError for Get to report. Another reader may have moved it first;
// then MovedTo is empty.
func (d *Disk) quarantine(h Hash, r Residency, p string, actual Hash) error {
	dst := filepath.Join(d.dir, corruptDir, fmt.Sprintf("%s.%d", h.Hex(), time.Now().UnixNano()))
	err := os.Rename(p, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if mkErr := mkShard(filepath.Dir(dst)); mkErr == nil {
			err = os.Rename(p, dst)
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dst = ""
	case err != nil:
		// Never serving it matters more than keeping it for inspection.
		d.log.Error("blockstore: moving corrupt block aside", "path", p, "err", err)
		dst = ""
		if rmErr := os.Remove(p); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			d.log.Error("blockstore: removing corrupt block", "path", p, "err", rmErr)
		}
	}
	d.forget(h)
	d.log.Warn("blockstore: corrupt block",
		"hash", h.String(), "actual", actual.String(), "residency", r.String(), "moved_to", dst)
	return &CorruptError{Hash: h, Actual: actual, MovedTo: dst}
}

// info describes a block found at a path with file info fi. The index
// knows a better LastUsed than the mtime (which is written lazily).
func (d *Disk) info(h Hash, r Residency, fi fs.FileInfo) Info {
	info := Info{Hash: h, Size: fi.Size(), Residency: r, LastUsed: fi.ModTime()}
	d.mu.Lock()
	if e := d.idx.get(h); e != nil && e.lastUsed.After(info.LastUsed) {
		info.LastUsed = e.lastUsed
	}
	d.mu.Unlock()
	return info
}

// Walk implements Store. It lists the trees shard by shard, so it sees
// blocks stored by other processes, and skips files that vanish before
// it gets to them. A block found in both trees (a moment in a race
// between processes) is reported once, as pinned. An error from fn stops
// the walk and is returned as is.
func (d *Disk) Walk(ctx context.Context, fn func(Info) error) error {
	for shard := range 256 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("blockstore: walk: %w", err)
		}
		name := fmt.Sprintf("%02x", shard)
		pinned, err := d.listShard(Pinned, name)
		if err != nil {
			return fmt.Errorf("blockstore: walk: %w", err)
		}
		cached, err := d.listShard(Cached, name)
		if err != nil {
			return fmt.Errorf("blockstore: walk: %w", err)
		}
		seen := make(map[Hash]bool, len(pinned))
		for _, f := range pinned {
			seen[f.h] = true
		}
		for _, f := range slices.Concat(pinned, cached) {
			if f.r == Cached && seen[f.h] {
				continue
			}
			fi, err := f.de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("blockstore: walk: %w", err)
			}
			if err := fn(d.info(f.h, f.r, fi)); err != nil {
				return err
			}
		}
	}
	return nil
}

type shardEntry struct {
	h  Hash
	r  Residency
	de fs.DirEntry
}

// listShard lists the block files in one shard directory, skipping
// anything else (OpenDisk reports strays; Walk just ignores them).
func (d *Disk) listShard(r Residency, shard string) ([]shardEntry, error) {
	des, err := os.ReadDir(filepath.Join(d.tree[r], shard))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var out []shardEntry
	for _, de := range des {
		if h, ok := blockName(shard, de); ok {
			out = append(out, shardEntry{h: h, r: r, de: de})
		}
	}
	return out, err
}

// blockName parses the name of a file in a shard directory.
func blockName(shard string, de fs.DirEntry) (Hash, bool) {
	name := de.Name()
	if !de.Type().IsRegular() || len(name) != 2*HashSize || name[:2] != shard {
		return Hash{}, false
	}
	h, err := ParseHash(hashPrefix + name)
	return h, err == nil
}

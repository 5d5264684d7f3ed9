package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Disk's write side: Put, SetResidency and Delete, and the durability
// bookkeeping for deferred writes.

// Put implements Store.
func (d *Disk) Put(ctx context.Context, data []byte, opts PutOptions) (Hash, error) {
	if err := ctx.Err(); err != nil {
		return Hash{}, fmt.Errorf("blockstore: put: %w", err)
	}
	if len(data) > MaxBlockSize {
		return Hash{}, fmt.Errorf("blockstore: put: %w (%d bytes, limit %d)", ErrTooLarge, len(data), MaxBlockSize)
	}
	h := Sum(data)
	res, err := putResidency(opts)
	if err == nil {
		err = d.put(ctx, h, data, res, opts.Deferred)
	}
	if err != nil {
		return Hash{}, fmt.Errorf("blockstore: put %s: %w", h.Short(), err)
	}
	return h, nil
}

func (d *Disk) put(ctx context.Context, h Hash, data []byte, res Residency, deferred bool) error {
	size := int64(len(data))
	var sy syncer
	lk := &d.locks[h[0]]

	// Most puts of a block already stored (deduplication, a peer sending
	// twice) end here, without writing anything.
	lk.Lock()
	got, done, err := d.putExisting(h, size, res, deferred, &sy)
	lk.Unlock()
	if err != nil {
		return err
	}
	if !done {
		// Write outside the lock: it is the slow part, and the rename
		// below is what makes it visible.
		if err := ctx.Err(); err != nil {
			return err
		}
		tmp, err := d.writeTemp(h, data, !deferred)
		if err != nil {
			return err
		}
		lk.Lock()
		// The common case, nobody stored the block meanwhile, costs one
		// renameat2. If the name is taken (another goroutine or process
		// stored it, or the file seen above is damaged), fall back to
		// looking at what is there.
		got, err = d.commit(h, size, tmp, got, deferred, true, &sy)
		if errors.Is(err, fs.ErrExist) {
			got, done, err = d.putExisting(h, size, got, deferred, &sy)
			if err == nil && !done {
				got, err = d.commit(h, size, tmp, got, deferred, false, &sy)
			}
		}
		lk.Unlock()
		if done || err != nil {
			if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
				d.log.Warn("blockstore: removing temporary file", "path", tmp, "err", rmErr)
			}
		}
		if err != nil {
			return err
		}
	}
	if err := d.runSync(&sy); err != nil {
		return err
	}
	if got == Cached {
		d.evict(h, true)
	}
	return nil
}

// putExisting finishes a Put if the block is already stored, promoting it
// if asked to pin it. Otherwise it returns the residency to write it with:
// res, or Pinned if a damaged pinned copy is there to be replaced.
// The block's stripe must be locked.
func (d *Disk) putExisting(h Hash, size int64, res Residency, deferred bool, sy *syncer) (Residency, bool, error) {
	pp, cp := d.path(Pinned, h), d.path(Cached, h)
	fi, err := os.Lstat(pp)
	switch {
	case err == nil && fi.Size() == size:
		return Pinned, true, d.reuse(h, size, Pinned, pp, deferred, sy)
	case err == nil:
		// A file of the wrong size is damaged beyond doubt (a crash after
		// a deferred write, say); overwrite it rather than trust it.
		d.log.Warn("blockstore: replacing block file of wrong size", "path", pp, "size", fi.Size(), "want", size)
		return Pinned, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return res, false, err
	}

	fi, err = os.Lstat(cp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return res, false, nil
	case err != nil:
		return res, false, err
	case fi.Size() != size:
		d.log.Warn("blockstore: replacing block file of wrong size", "path", cp, "size", fi.Size(), "want", size)
		return res, false, nil
	case res == Cached:
		return Cached, true, d.reuse(h, size, Cached, cp, deferred, sy)
	}

	err = d.move(cp, pp, deferred, sy)
	if errors.Is(err, fs.ErrNotExist) {
		// Evicted by another process between Lstat and rename.
		return res, false, nil
	}
	if err != nil {
		return res, false, err
	}
	if deferred {
		d.markUnsynced(h)
	}
	return Pinned, true, d.reuse(h, size, Pinned, pp, deferred, sy)
}

// reuse records a Put of a block already on disk at p as a use of it, and,
// for a non-deferred Put, makes sure an earlier deferred write of it is
// durable before the Put reports success.
func (d *Disk) reuse(h Hash, size int64, r Residency, p string, deferred bool, sy *syncer) error {
	d.used(h, size, r, p)
	if deferred {
		return nil
	}
	return d.makeDurable(h, p, sy)
}

// makeDurable syncs the block file at p if a deferred write or move of it
// has not been synced yet, and queues its directory in sy. The block's
// stripe must be locked.
func (d *Disk) makeDurable(h Hash, p string, sy *syncer) error {
	d.mu.Lock()
	_, pending := d.unsynced[h]
	delete(d.unsynced, h)
	d.mu.Unlock()
	if !pending {
		return nil
	}
	// The file is synced now, under the stripe lock, because once the
	// lock is released the block may move and this path vanish. Another
	// process can still move it; its durability is then out of our hands
	// (see "Disk layout" in doc.go: deferred writes are tracked per
	// process).
	if err := fsyncPath(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		d.markUnsynced(h)
		return err
	}
	sy.dir(filepath.Dir(p))
	sy.hashes = append(sy.hashes, h)
	return nil
}

// commit renames a fully written temporary file into place. It returns the
// residency the block ended up with. The block's stripe must be locked.
//
// With noReplace, an existing file at the destination is left alone and
// the error wraps fs.ErrExist.
func (d *Disk) commit(h Hash, size int64, tmp string, res Residency, deferred, noReplace bool, sy *syncer) (Residency, error) {
	dst := d.path(res, h)
	var err error
	if noReplace {
		err = d.moveNoReplace(tmp, dst, deferred, sy)
	} else {
		err = d.move(tmp, dst, deferred, sy)
	}
	if err != nil {
		return res, err
	}
	other := d.path(Cached, h)
	if res == Cached {
		other = d.path(Pinned, h)
	}
	switch _, err := os.Lstat(other); {
	case err == nil && res == Pinned:
		// Another process stored a cached copy meanwhile; pinned wins.
		if err := removeIfExists(other); err != nil {
			d.log.Warn("blockstore: removing cached duplicate", "path", other, "err", err)
		}
	case err == nil:
		// Another process pinned it meanwhile; our cached copy is
		// redundant. (Whichever of two racing writers renames last sees
		// the other's file, so one of them always cleans up.)
		if err := removeIfExists(dst); err != nil {
			d.log.Warn("blockstore: removing cached duplicate", "path", dst, "err", err)
		}
		res, dst = Pinned, other
	case !errors.Is(err, fs.ErrNotExist):
		return res, err
	}
	if deferred {
		d.markUnsynced(h)
	}
	d.used(h, size, res, dst)
	return res, nil
}

// SetResidency implements Store. The change is durable when it returns.
func (d *Disk) SetResidency(ctx context.Context, h Hash, r Residency) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blockstore: set residency %s: %w", h.Short(), err)
	}
	if err := checkResidency(r); err != nil {
		return fmt.Errorf("blockstore: set residency %s: %w", h.Short(), err)
	}
	var sy syncer
	lk := &d.locks[h[0]]
	lk.Lock()
	err := d.setResidency(h, r, &sy)
	lk.Unlock()
	if err == nil {
		err = d.runSync(&sy)
	}
	if err != nil {
		return fmt.Errorf("blockstore: set residency %s: %w", h.Short(), err)
	}
	if r == Cached {
		d.evict(Hash{}, false)
	}
	return nil
}

// Unpin makes pinned blocks cached in one batch and returns how many it
// moved; blocks not stored are skipped. Unlike SetResidency, which puts an
// unpinned block last in the LRU order (nothing needs it any more), each
// block takes the place its last use gives it: an origin hands over blocks
// still in use, whose order eviction must respect. The quota is enforced
// once, at the end. The change is durable when it returns.
func (d *Disk) Unpin(ctx context.Context, hs []Hash) (int, error) {
	var sy syncer
	n := 0
	for _, h := range hs {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("blockstore: unpin: %w", err)
		}
		lk := &d.locks[h[0]]
		lk.Lock()
		err := d.setResidency(h, Cached, &sy)
		lk.Unlock()
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return n, fmt.Errorf("blockstore: unpin %s: %w", h.Short(), err)
		}
		n++
	}
	if err := d.runSync(&sy); err != nil {
		return n, fmt.Errorf("blockstore: unpin: %w", err)
	}
	d.mu.Lock()
	d.idx.sortLRU()
	d.mu.Unlock()
	d.evict(Hash{}, false)
	return n, nil
}

func (d *Disk) setResidency(h Hash, r Residency, sy *syncer) error {
	pp, cp := d.path(Pinned, h), d.path(Cached, h)
	src, dst := pp, cp
	if r == Pinned {
		src, dst = cp, pp
	}
	// Pinned is looked at first either way, so that if both copies exist
	// (two processes raced), the pinned one counts.
	_, err := os.Lstat(pp)
	switch {
	case err == nil && r == Pinned:
		// Already pinned.
	case err == nil || errors.Is(err, fs.ErrNotExist):
		err = d.move(src, dst, false, sy)
		if errors.Is(err, fs.ErrNotExist) {
			// Nothing to move: fine if it is already where it should be.
			if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
				d.forget(h)
				return ErrNotFound
			}
			err = nil
		}
		if err != nil {
			return err
		}
	default:
		return err
	}
	fi, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		// Another process moved or deleted it after this change took
		// effect; there is nothing left for this one to record.
		d.forget(h)
		return nil
	}
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.idx.update(h, fi.Size(), r, time.Now())
	d.mu.Unlock()
	return d.makeDurable(h, dst, sy)
}

// Delete implements Store. A deletion is not synced: a block that
// reappears after a crash is harmless.
func (d *Disk) Delete(ctx context.Context, h Hash) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blockstore: delete %s: %w", h.Short(), err)
	}
	lk := &d.locks[h[0]]
	lk.Lock()
	defer lk.Unlock()
	var errs []error
	for _, r := range []Residency{Pinned, Cached} {
		if err := os.Remove(d.path(r, h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	d.forget(h)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blockstore: delete %s: %w", h.Short(), err)
	}
	return nil
}

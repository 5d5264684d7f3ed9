package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Disk's file-system plumbing: paths, writing and moving block files,
// syncing, and creating and scanning the directories at open.

// path returns where the block's file is when it has residency r.
func (d *Disk) path(r Residency, h Hash) string {
	x := h.Hex()
	return d.tree[r] + string(filepath.Separator) + x[:2] + string(filepath.Separator) + x
}

// writeTemp writes data to a new file in tmp/ and returns its path. The
// name is unique across processes (pid plus randomness, created with
// O_EXCL). The file is read-only because blocks are immutable.
func (d *Disk) writeTemp(h Hash, data []byte, sync bool) (string, error) {
	var f *os.File
	var name string
	for {
		name = filepath.Join(d.dir, tmpDir, fmt.Sprintf("%s.%d.%016x", h.Hex()[:16], os.Getpid(), rand.Uint64()))
		var err error
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	_, err := f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// move renames src to dst, creating dst's shard directory if it is
// missing, and unless deferred queues the directories involved for fsync.
// An fs.ErrNotExist error means src is gone.
func (d *Disk) move(src, dst string, deferred bool, sy *syncer) error {
	err := os.Rename(src, dst)
	if errors.Is(err, fs.ErrNotExist) {
		// Retry even if the shard exists now: another process may have
		// created it since the rename failed.
		if mkErr := mkShard(filepath.Dir(dst)); mkErr != nil {
			// %v: a missing tree directory must not read as src missing.
			return fmt.Errorf("creating shard directory: %v", mkErr)
		}
		err = os.Rename(src, dst)
	}
	if err != nil {
		return err
	}
	if !deferred {
		sy.dir(filepath.Dir(dst))
		if srcDir := filepath.Dir(src); srcDir != filepath.Join(d.dir, tmpDir) {
			// Without this, a crash could leave the block in both trees,
			// and OpenDisk would resolve that as pinned.
			sy.dir(srcDir)
		}
	}
	return nil
}

// moveNoReplace is move for a new block: it never replaces an existing
// file (the error wraps fs.ErrExist then).
func (d *Disk) moveNoReplace(src, dst string, deferred bool, sy *syncer) error {
	err := renameNoReplace(src, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if mkErr := mkShard(filepath.Dir(dst)); mkErr != nil {
			return fmt.Errorf("creating shard directory: %v", mkErr)
		}
		err = renameNoReplace(src, dst)
	}
	if err != nil {
		return err
	}
	if !deferred {
		sy.dir(filepath.Dir(dst))
	}
	return nil
}

// mkShard creates a shard directory if it is missing. The parent
// is synced even for deferred writes: it happens at most 512 times in a
// store's life, and a later non-deferred write into the shard could not
// otherwise count on the shard itself surviving a crash.
func mkShard(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return fsyncPath(filepath.Dir(dir))
}

// syncer collects directories to fsync once the stripe lock is released,
// so that other operations on blocks of the same stripe do not wait for
// the disk.
type syncer struct {
	dirs []string
	// hashes are blocks whose pending deferred writes become durable
	// when dirs are synced.
	hashes []Hash
}

func (s *syncer) dir(p string) {
	if !slices.Contains(s.dirs, p) {
		s.dirs = append(s.dirs, p)
	}
}

func (d *Disk) runSync(sy *syncer) error {
	for _, p := range sy.dirs {
		if err := fsyncPath(p); err != nil {
			for _, h := range sy.hashes {
				d.markUnsynced(h)
			}
			return err
		}
	}
	return nil
}

func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func isShardName(s string) bool {
	lowerHex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
	return len(s) == 2 && lowerHex(s[0]) && lowerHex(s[1])
}

// makeDirs creates the store's directories. Syncing their parents makes a
// new store's layout survive a crash, which later per-block fsyncs of
// shard directories rely on.
func (d *Disk) makeDirs() error {
	if _, err := os.Stat(d.dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(d.dir, 0o755); err != nil {
			return err
		}
		if err := fsyncPath(filepath.Dir(d.dir)); err != nil {
			return err
		}
	}
	created := false
	for _, sub := range []string{pinnedDir, cachedDir, tmpDir, corruptDir} {
		err := os.Mkdir(filepath.Join(d.dir, sub), 0o755)
		if err == nil {
			created = true
		} else if !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if created {
		if err := fsyncPath(d.dir); err != nil {
			return err
		}
	}
	// All 256 shard directories up front, with one fsync per residency
	// directory: created lazily, a fresh store's first import paid one
	// parent fsync per shard (about 130 ms of a 1 GiB import).
	for _, sub := range []string{pinnedDir, cachedDir} {
		parent := filepath.Join(d.dir, sub)
		made := false
		for i := 0; i < 256; i++ {
			err := os.Mkdir(filepath.Join(parent, fmt.Sprintf("%02x", i)), 0o755)
			if err == nil {
				made = true
			} else if !errors.Is(err, fs.ErrExist) {
				return err
			}
		}
		if made {
			if err := fsyncPath(parent); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanTmp deletes temporary files abandoned by a killed process. Younger
// files are left alone: another process may be writing them right now.
func (d *Disk) cleanTmp(ctx context.Context) error {
	dir := filepath.Join(d.dir, tmpDir)
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-d.cfg.TmpMaxAge)
	removed := 0
	for _, de := range des {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(dir, de.Name())
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.ModTime().Before(cutoff) {
			continue
		}
		if !fi.Mode().IsRegular() {
			d.log.Warn("blockstore: ignoring stray entry", "path", p)
			continue
		}
		if err := removeIfExists(p); err != nil {
			return err
		}
		removed++
	}
	if removed > 0 {
		d.log.Info("blockstore: removed abandoned temporary files", "count", removed)
	}
	return nil
}

// load builds the index from the trees. Cached blocks are added oldest
// mtime first, which restores the LRU order as of the last recorded uses.
func (d *Disk) load(ctx context.Context) error {
	type found struct {
		h     Hash
		size  int64
		mtime time.Time
	}
	scan := func(r Residency) ([]found, error) {
		var out []found
		shards, err := os.ReadDir(d.tree[r])
		if err != nil {
			return nil, err
		}
		for _, sd := range shards {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			dir := filepath.Join(d.tree[r], sd.Name())
			if !sd.IsDir() || !isShardName(sd.Name()) {
				d.log.Warn("blockstore: ignoring stray entry", "path", dir)
				continue
			}
			des, err := os.ReadDir(dir)
			if err != nil {
				return nil, err
			}
			for _, de := range des {
				h, ok := blockName(sd.Name(), de)
				if !ok {
					d.log.Warn("blockstore: ignoring stray entry", "path", filepath.Join(dir, de.Name()))
					continue
				}
				fi, err := de.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return nil, err
				}
				out = append(out, found{h, fi.Size(), fi.ModTime()})
			}
		}
		return out, nil
	}

	pinned, err := scan(Pinned)
	if err != nil {
		return err
	}
	for _, f := range pinned {
		d.idx.add(f.h, f.size, Pinned, f.mtime)
	}
	cached, err := scan(Cached)
	if err != nil {
		return err
	}
	slices.SortFunc(cached, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	for _, f := range cached {
		if d.idx.get(f.h) != nil {
			// Left behind by a race between processes, or a crash during
			// a promotion; the pinned copy wins.
			d.log.Debug("blockstore: removing cached duplicate of pinned block", "hash", f.h.String())
			if err := removeIfExists(d.path(Cached, f.h)); err != nil {
				return err
			}
			continue
		}
		d.idx.add(f.h, f.size, Cached, f.mtime)
	}
	return nil
}

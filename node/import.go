package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/importer"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/tree"
)

// Imported is what one import did.
type Imported struct {
	Tree    blockstore.Hash
	Root    *tree.Root // nil when nothing changed
	Seq     uint64     // the latest root's seq when nothing changed
	Summary string
}

// Import imports src at atPath into d's tree and commits a new root if
// anything changed. The caller holds d's lock.
func Import(ctx context.Context, d *datadir.Dir, src string, atPath tree.Path, keepMTimes bool, logger *slog.Logger, progress func(importer.Progress)) (Imported, error) {
	putOpts := blockstore.PutOptions{Residency: blockstore.Pinned, Deferred: true}
	b := &tree.Builder{Store: d.Store, PutOptions: putOpts, ChunkSize: d.Config.ChunkSize}
	var base blockstore.Hash
	var err error
	latest, haveRoot := d.Log.Latest()
	if haveRoot {
		base = latest.Tree
	} else if base, err = b.EmptyDir(ctx); err != nil {
		return Imported{}, err
	}
	statePath := d.ImportStatePath(src, atPath.String())
	cfg := importer.Config{
		Store: d.Store, PutOptions: putOpts, ChunkSize: d.Config.ChunkSize,
		KeepMTimes: keepMTimes, Previous: importer.LoadState(statePath), Logger: logger, Progress: progress,
	}
	if len(atPath) > 0 {
		cfg.TopName = atPath[len(atPath)-1] // a file's type follows the name it gets
	}
	start := time.Now()
	res, err := importer.Import(ctx, src, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return Imported{}, fmt.Errorf("%w; nothing was committed", err)
		}
		return Imported{}, err
	}
	out := Imported{Tree: res.Entry.Hash, Seq: latest.Seq}
	if len(atPath) > 0 {
		if out.Tree, err = b.Set(ctx, base, atPath, res.Entry); err != nil {
			return Imported{}, err
		}
	}
	// Nothing may refer to a block before the block is on disk.
	if err := d.Store.Sync(ctx); err != nil {
		return Imported{}, err
	}
	out.Summary = fmt.Sprintf("%d files (%s, %d unchanged), %d dirs, %d symlinks in %v", res.Files, HumanBytes(res.Bytes), res.Unchanged, res.Dirs, res.Symlinks, time.Since(start).Round(time.Millisecond))
	if !haveRoot || out.Tree != latest.Tree {
		root, err := d.Commit(ctx, out.Tree, time.Now())
		if err != nil {
			return Imported{}, err
		}
		out.Root = &root
	}
	if err := res.State.Save(statePath); err != nil {
		// Only costs the next import a full read.
		logger.Warn("could not save import state", "err", err)
	}
	return out, nil
}

// HumanBytes formats a byte count for people: 1.5 MiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// watchImport re-imports dir into the origin's tree (at /) whenever it
// changes, once it has been quiet for the given period, so that a burst
// of writes (a deploy, an rsync) makes one new root, not hundreds. The
// incremental import reads only files whose size, mtime or inode moved.
func (n *Node) watchImport(ctx context.Context, dir string, quiet time.Duration) {
	log := n.log.With("component", "watch", "dir", dir)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Error("cannot watch", "err", err)
		return
	}
	defer w.Close()
	addTree := func() {
		filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				if err := w.Add(p); err != nil {
					log.Warn("cannot watch a directory", "path", p, "err", err)
				}
			}
			return nil
		})
	}
	addTree()
	// importNow reports whether it must be tried again later.
	importNow := func() bool {
		var res Imported
		err := n.WithLock(ctx, 0, func(d *datadir.Dir) error {
			var err error
			res, err = Import(ctx, d, dir, tree.Path{}, false, n.log, nil)
			return err
		})
		switch {
		case errors.Is(err, datadir.ErrLocked):
			log.Info("another command holds the lock; importing later")
			return true
		case err != nil:
			log.Error("import failed; the current root stays", "err", err)
		case res.Root != nil:
			n.OfferRoot(*res.Root)
			log.Info("imported changes", "seq", res.Root.Seq, "tree", res.Tree.Short(), "summary", res.Summary)
		}
		return false
	}
	var fire <-chan time.Time
	var timer *time.Timer
	later := func() {
		if timer == nil {
			timer = time.NewTimer(quiet)
		} else {
			timer.Reset(quiet)
		}
		fire = timer.C
	}
	// The directory may have changed while gritsd was down.
	if importNow() {
		later()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					addTree() // new subdirectories need watches of their own
				}
			}
			later()
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("watch error; re-importing to be safe", "err", err)
			later()
		case <-fire:
			fire = nil
			if importNow() {
				later()
			}
		}
	}
}

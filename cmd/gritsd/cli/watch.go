package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/tree"
)

// watchImport re-imports dir into the origin's tree (at /) whenever it
// changes, once it has been quiet for the given period, so that a burst
// of writes (a deploy, an rsync) makes one new root, not hundreds. The
// incremental import reads only files whose size, mtime or inode moved.
func watchImport(ctx context.Context, c *cmdContext, d *datadir.Dir, dir string, quiet time.Duration) {
	log := c.logger.With("component", "watch", "dir", dir)
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
	importNow := func() {
		if err := d.Lock(); err != nil {
			if errors.Is(err, datadir.ErrLocked) {
				log.Info("another command holds the lock; importing later")
			} else {
				log.Error("import skipped", "err", err)
			}
			return
		}
		defer d.Unlock()
		res, err := importInto(ctx, d, dir, tree.Path{}, false, c.logger, nil)
		switch {
		case err != nil:
			log.Error("import failed; the current root stays", "err", err)
		case res.root != nil:
			log.Info("imported changes", "seq", res.root.Seq, "tree", res.tree.Short(), "summary", res.summary)
		}
	}
	// The directory may have changed while gritsd was down.
	importNow()
	var fire <-chan time.Time
	var timer *time.Timer
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
			if timer == nil {
				timer = time.NewTimer(quiet)
			} else {
				timer.Reset(quiet)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("watch error; re-importing to be safe", "err", err)
			if timer == nil {
				timer = time.NewTimer(quiet)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			importNow()
		}
	}
}

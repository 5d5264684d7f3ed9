package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/importer"
	"github.com/grits-cdn/grits/tree"
)

func runImport(ctx context.Context, c *cmdContext) error {
	at := c.flags.String("at", "", "where to put SRC in the tree (default: / for a directory, /NAME for a file)")
	keepMTimes := c.flags.Bool("keep-mtimes", false, "store modification times (by default content alone decides the hash)")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	src := c.args[0]
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	atStr := *at
	if atStr == "" {
		atStr = "/"
		if !info.IsDir() {
			atStr = "/" + filepath.Base(src)
		}
	}
	atPath, err := tree.ParsePath(atStr)
	if err != nil {
		return usagef("--at: %v", err)
	}
	if len(atPath) == 0 && !info.IsDir() {
		return usagef("%s is a file and the root must be a directory; use --at /%s", src, filepath.Base(src))
	}

	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.RequireOrigin("import"); err != nil {
		return err
	}
	if err := d.Lock(); err != nil {
		return err
	}
	putOpts := blockstore.PutOptions{Residency: blockstore.Pinned, Deferred: true}
	b := &tree.Builder{Store: d.Store, PutOptions: putOpts, ChunkSize: d.Config.ChunkSize}

	var base blockstore.Hash
	latest, haveRoot := d.Log.Latest()
	if haveRoot {
		base = latest.Tree
	} else if base, err = b.EmptyDir(ctx); err != nil {
		return err
	}

	statePath := d.ImportStatePath(src, atPath.String())
	cfg := importer.Config{
		Store: d.Store, PutOptions: putOpts, ChunkSize: d.Config.ChunkSize,
		KeepMTimes: *keepMTimes, Previous: importer.LoadState(statePath), Logger: c.logger,
	}
	clear := ""
	if f, ok := c.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		clear = "\r\x1b[K"
		cfg.Progress = func(p importer.Progress) {
			fmt.Fprintf(c.Stderr, "\r\x1b[Kimport: %d/%d files, %s/%s", p.FilesDone, p.FilesTotal, humanBytes(p.BytesDone), humanBytes(p.BytesTotal))
		}
		defer fmt.Fprint(c.Stderr, clear)
	}
	start := time.Now()
	res, err := importer.Import(ctx, src, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w; nothing was committed", err)
		}
		return err
	}
	newTree := res.Entry.Hash
	if len(atPath) > 0 {
		if newTree, err = b.Set(ctx, base, atPath, res.Entry); err != nil {
			return err
		}
	}
	// Nothing may refer to a block before the block is on disk.
	if err := d.Store.Sync(ctx); err != nil {
		return err
	}
	summary := fmt.Sprintf("%d files (%s, %d unchanged), %d dirs, %d symlinks in %v", res.Files, humanBytes(res.Bytes), res.Unchanged, res.Dirs, res.Symlinks, time.Since(start).Round(time.Millisecond))
	if haveRoot && newTree == latest.Tree {
		c.errorf("%simport: %s; no changes, root seq %d stays\n", clear, summary, latest.Seq)
	} else {
		root, err := d.Commit(ctx, newTree, time.Now())
		if err != nil {
			return err
		}
		c.errorf("%simport: %s; committed root seq %d\n", clear, summary, root.Seq)
	}
	if err := res.State.Save(statePath); err != nil {
		// Only costs the next import a full read.
		c.logger.Warn("could not save import state", "err", err)
	}
	c.printf("%s\n", newTree)
	return nil
}

func humanBytes(n int64) string {
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

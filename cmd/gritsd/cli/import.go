package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/importer"
	"github.com/grits-cdn/grits/internal/datadir"
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
	if err := refuseMountedPath(d, atPath); err != nil {
		return err
	}
	var progress func(importer.Progress)
	clear := ""
	if f, ok := c.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		clear = "\r\x1b[K"
		progress = func(p importer.Progress) {
			fmt.Fprintf(c.Stderr, "\r\x1b[Kimport: %d/%d files, %s/%s", p.FilesDone, p.FilesTotal, humanBytes(p.BytesDone), humanBytes(p.BytesTotal))
		}
		defer fmt.Fprint(c.Stderr, clear)
	}
	res, err := importInto(ctx, d, src, atPath, *keepMTimes, c.logger, progress)
	if err != nil {
		return err
	}
	newTree := res.tree
	if res.root == nil {
		c.errorf("%simport: %s; no changes, root seq %d stays\n", clear, res.summary, res.seq)
	} else {
		c.errorf("%simport: %s; committed root seq %d\n", clear, res.summary, res.root.Seq)
		// A daemon serving this directory would see the root at its next
		// poll; tell it now so the next page view has it.
		if err := pokeDaemon(ctx, d); err == nil {
			c.errorf("import: the running gritsd serves root seq %d now\n", res.root.Seq)
		} else {
			c.logger.Debug("no running daemon took the new root", "err", err)
		}
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

type imported struct {
	tree    blockstore.Hash
	root    *tree.Root // nil when nothing changed
	seq     uint64     // the latest root's seq when nothing changed
	summary string
}

// importInto imports src at atPath into d's tree and commits a new root
// if anything changed. The caller holds d's lock.
func importInto(ctx context.Context, d *datadir.Dir, src string, atPath tree.Path, keepMTimes bool, logger *slog.Logger, progress func(importer.Progress)) (imported, error) {
	putOpts := blockstore.PutOptions{Residency: blockstore.Pinned, Deferred: true}
	b := &tree.Builder{Store: d.Store, PutOptions: putOpts, ChunkSize: d.Config.ChunkSize}
	var base blockstore.Hash
	var err error
	latest, haveRoot := d.Log.Latest()
	if haveRoot {
		base = latest.Tree
	} else if base, err = b.EmptyDir(ctx); err != nil {
		return imported{}, err
	}
	statePath := d.ImportStatePath(src, atPath.String())
	cfg := importer.Config{
		Store: d.Store, PutOptions: putOpts, ChunkSize: d.Config.ChunkSize,
		KeepMTimes: keepMTimes, Previous: importer.LoadState(statePath), Logger: logger, Progress: progress,
	}
	start := time.Now()
	res, err := importer.Import(ctx, src, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return imported{}, fmt.Errorf("%w; nothing was committed", err)
		}
		return imported{}, err
	}
	out := imported{tree: res.Entry.Hash, seq: latest.Seq}
	if len(atPath) > 0 {
		if out.tree, err = b.Set(ctx, base, atPath, res.Entry); err != nil {
			return imported{}, err
		}
	}
	// Nothing may refer to a block before the block is on disk.
	if err := d.Store.Sync(ctx); err != nil {
		return imported{}, err
	}
	out.summary = fmt.Sprintf("%d files (%s, %d unchanged), %d dirs, %d symlinks in %v", res.Files, humanBytes(res.Bytes), res.Unchanged, res.Dirs, res.Symlinks, time.Since(start).Round(time.Millisecond))
	if !haveRoot || out.tree != latest.Tree {
		root, err := d.Commit(ctx, out.tree, time.Now())
		if err != nil {
			return imported{}, err
		}
		out.root = &root
	}
	if err := res.State.Save(statePath); err != nil {
		// Only costs the next import a full read.
		logger.Warn("could not save import state", "err", err)
	}
	return out, nil
}

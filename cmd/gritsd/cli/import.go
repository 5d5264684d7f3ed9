package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/grits-cdn/grits/importer"
	"github.com/grits-cdn/grits/internal/progress"
	"github.com/grits-cdn/grits/node"
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
	prog := progress.New(ctx, c.Stderr, isTerminal(c.Stderr))
	bar := prog.Bytes("import", 0)
	res, err := node.Import(ctx, d, src, atPath, *keepMTimes, c.logger, func(p importer.Progress) {
		bar.SetLabel("import %d/%d files", p.FilesDone, p.FilesTotal)
		bar.SetTotal(p.BytesTotal)
		bar.Set(p.BytesDone)
	})
	if err == nil {
		bar.Done()
	}
	prog.Wait()
	if err != nil {
		return err
	}
	newTree := res.Tree
	if res.Root == nil {
		c.errorf("import: %s; no changes, root seq %d stays\n", res.Summary, res.Seq)
	} else {
		c.errorf("import: %s; committed root seq %d\n", res.Summary, res.Root.Seq)
		// A daemon serving this directory would see the root at its next
		// poll; tell it now so the next page view has it.
		if err := pokeDaemon(ctx, d); err == nil {
			c.errorf("import: the running gritsd serves root seq %d now\n", res.Root.Seq)
		} else {
			c.logger.Debug("no running daemon took the new root", "err", err)
		}
	}
	c.printf("%s\n", newTree)
	return nil
}

func humanBytes(n int64) string { return node.HumanBytes(n) }

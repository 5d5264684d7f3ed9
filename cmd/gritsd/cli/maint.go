package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/internal/progress"
	"github.com/grits-cdn/grits/tree"
)

var timeNow = time.Now

func describeVisit(v tree.Visit, seq uint64) string {
	in := fmt.Sprintf("root seq %d", seq)
	if seq == 0 {
		in = "the mount's held-back tree"
	}
	s := fmt.Sprintf("%s of %s in %s", v.Kind, v.Path, in)
	if v.Kind == tree.BlockChunk {
		s = fmt.Sprintf("chunk at offset %d of %s in %s", v.Offset, v.Path, in)
	}
	return s
}

func runFsck(ctx context.Context, c *cmdContext) error {
	remote := c.flags.Bool("remote", false, "origin: ask the storage nodes to prove they hold the blocks that are not on this disk")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Lock(); err != nil {
		return err
	}
	problems := 0
	report := func(format string, args ...any) {
		problems++
		c.printf(format+"\n", args...)
	}

	ledger, offloads, err := offloading(d)
	if err != nil {
		return err
	}
	if *remote && !offloads {
		return usagef("--remote is for an origin that offloads content to storage nodes (store_max, or an audit ledger)")
	}

	// 1. Every stored block still hashes to its name. Peek verifies and
	// moves a corrupt block aside (without counting as a use, which
	// would upset an origin's eviction order).
	corrupt := map[blockstore.Hash]*blockstore.CorruptError{}
	var blocks, bytes int64
	prog := progress.New(ctx, c.Stderr, isTerminal(c.Stderr))
	defer prog.Wait()
	bar := prog.Bytes("fsck: blocks", storeBytes(ctx, d))
	err = d.Store.Walk(ctx, func(info blockstore.Info) error {
		blocks++
		bytes += info.Size
		bar.Add(info.Size)
		_, err := d.Store.Peek(ctx, info.Hash)
		var ce *blockstore.CorruptError
		switch {
		case errors.As(err, &ce):
			corrupt[info.Hash] = ce
		case errors.Is(err, blockstore.ErrNotFound):
			// removed concurrently (evicted); not a problem
		case err != nil:
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	bar.Done()

	// 2. Every root in the log is signed by the site key, and the retained
	// ones are complete (on nodes that promise completeness).
	for _, r := range d.Log.Roots() {
		if !d.Config.SiteKey.IsZero() && r.SiteKey != d.Config.SiteKey {
			report("root seq %d: signed by %s, not the site key %s", r.Seq, r.SiteKey, d.Config.SiteKey)
		} else if err := r.Verify(r.SiteKey, r.Time); err != nil {
			report("root seq %d: %v", r.Seq, err)
		}
	}
	referenced := map[blockstore.Hash]bool{}
	complete := d.Config.Role != datadir.RoleVolunteer
	// On an origin that offloads, content missing here is held by
	// storage nodes: reported, not a problem (--remote checks it).
	elsewhere := map[blockstore.Hash]string{}
	held, err := heldBackRoots(d)
	if err != nil {
		return err
	}
	retained := append(d.Retained(d.Config.RetainRoots), held...)
	rootBar := prog.Count("fsck: roots", "roots", int64(len(retained)))
	for _, r := range retained {
		rootBar.Add(1)
		err := tree.Walk(ctx, d.Store, r.Tree, func(v tree.Visit) (bool, error) {
			if referenced[v.Hash] && v.Err == nil {
				return false, nil
			}
			referenced[v.Hash] = true
			if ce, ok := corrupt[v.Hash]; ok {
				report("corrupt block %s: %s; moved aside to %s", v.Hash, describeVisit(v, r.Seq), ce.MovedTo)
				return false, nil
			}
			if v.Err != nil {
				if complete || !errors.Is(v.Err, blockstore.ErrNotFound) {
					report("missing or unreadable %s: %v", describeVisit(v, r.Seq), v.Err)
				}
				return false, nil
			}
			if v.Kind == tree.BlockChunk && complete {
				ok, err := d.Store.Has(ctx, v.Hash)
				if err != nil {
					return false, err
				}
				switch {
				case !ok && offloads:
					elsewhere[v.Hash] = describeVisit(v, r.Seq)
				case !ok:
					report("missing block %s: %s", v.Hash, describeVisit(v, r.Seq))
				}
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	rootBar.Done()
	// The bars are drawn for the last time before the report.
	prog.Wait()
	for h, ce := range corrupt {
		if !referenced[h] {
			report("corrupt block %s (not referenced by a retained root); moved aside to %s", h, ce.MovedTo)
		}
	}
	c.errorf("fsck: checked %d blocks (%s) and %d roots\n", blocks, humanBytes(bytes), d.Log.Len())
	if len(elsewhere) > 0 {
		if *remote {
			if err := proveRemote(ctx, c, d, ledger, elsewhere, report); err != nil {
				return err
			}
		} else {
			c.errorf("fsck: %d blocks are held only by storage nodes (offloaded); gritsd fsck --remote asks them to prove it\n", len(elsewhere))
		}
	}
	if problems > 0 {
		return &exitError{code: ExitFailure, msg: fmt.Sprintf("%d problems found", problems)}
	}
	c.errorf("fsck: no problems found\n")
	return nil
}

func runGC(ctx context.Context, c *cmdContext) error {
	keep := c.flags.Int("keep", 0, "keep the newest N roots complete (default: retain_roots from gritsd.toml)")
	dryRun := c.flags.Bool("dry-run", false, "only report what would be removed")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Lock(); err != nil {
		return err
	}
	if err := refuseWhileMounted(d, "gc"); err != nil {
		return err
	}
	n := d.Config.RetainRoots
	if *keep != 0 {
		if *keep < 1 {
			return usagef("--keep must be at least 1")
		}
		n = *keep
	}
	roots := d.Retained(n)
	live := map[blockstore.Hash]bool{}
	// A mount's held-back tree (files the publish rule keeps out) is in
	// no root, and must be kept like one.
	held, err := heldBackRoots(d)
	if err != nil {
		return err
	}
	prog := progress.New(ctx, c.Stderr, isTerminal(c.Stderr))
	defer prog.Wait()
	markBar := prog.Count("gc: mark", "roots", int64(len(roots)+len(held)))
	for _, r := range append(roots, held...) {
		markBar.Add(1)
		err := tree.Walk(ctx, d.Store, r.Tree, func(v tree.Visit) (bool, error) {
			partial := d.Config.Role == datadir.RoleVolunteer && errors.Is(v.Err, blockstore.ErrNotFound)
			if v.Err != nil && !partial {
				// A node we cannot read hides which blocks it needs; deleting
				// on a guess could destroy the only copy.
				return false, fmt.Errorf("root seq %d: %s: %w; run gritsd fsck first", r.Seq, v.Path, v.Err)
			}
			if live[v.Hash] {
				return false, nil
			}
			live[v.Hash] = true
			return v.Err == nil, nil
		})
		if err != nil {
			return err
		}
	}
	if len(roots) > 0 && !*dryRun {
		// Recorded first: from here on, older roots are incomplete on
		// purpose, and fsck must not report them.
		if err := d.SetGCFloor(roots[0].Seq); err != nil {
			return err
		}
	}
	markBar.Done()
	sweepBar := prog.Bytes("gc: sweep", storeBytes(ctx, d))
	var kept, removed, keptBytes, removedBytes int64
	err = d.Store.Walk(ctx, func(info blockstore.Info) error {
		sweepBar.Add(info.Size)
		if live[info.Hash] {
			kept++
			keptBytes += info.Size
			return nil
		}
		removed++
		removedBytes += info.Size
		if *dryRun {
			return nil
		}
		return d.Store.Delete(ctx, info.Hash)
	})
	if err != nil {
		return err
	}
	sweepBar.Done()
	prog.Wait()
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	span := "no roots"
	if len(roots) > 0 {
		span = fmt.Sprintf("roots seq %d..%d", roots[0].Seq, roots[len(roots)-1].Seq)
	}
	c.printf("gc: kept %d blocks (%s) for %s; %s %d blocks (%s)\n", kept, humanBytes(keptBytes), span, verb, removed, humanBytes(removedBytes))
	return nil
}

// storeBytes is what the store holds, the total of a walk over it (0 if
// unknown: the bar then grows).
func storeBytes(ctx context.Context, d *datadir.Dir) int64 {
	st, err := d.Store.Stats(ctx)
	if err != nil {
		return 0
	}
	return st.PinnedBytes + st.CachedBytes
}

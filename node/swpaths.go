package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/sw"
	"github.com/grits-cdn/grits/tree"
)

// treePaths reads the top-level names of the latest root's tree as the
// worker's URL path prefixes (sw.TreePaths), and the tree they came
// from: none (an empty list) before the first root, or when the tree
// cannot be read (followTreePaths tries again).
func (n *Node) treePaths(ctx context.Context) ([]string, blockstore.Hash) {
	r, ok := n.roots.Latest()
	if !ok {
		return []string{}, blockstore.Hash{}
	}
	paths, err := n.readTreePaths(ctx, r.Tree)
	if err != nil {
		n.log.Warn("service worker paths: cannot read the tree's top level; the worker serves nothing from volunteers meanwhile", "tree", r.Tree, "err", err)
		return []string{}, blockstore.Hash{}
	}
	return paths, r.Tree
}

func (n *Node) readTreePaths(ctx context.Context, t blockstore.Hash) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	entries, err := tree.ListDir(ctx, n.store, t)
	if err != nil {
		return nil, fmt.Errorf("list the top of tree %s: %w", t, err)
	}
	names := make([]sw.TopName, 0, len(entries))
	for _, e := range entries {
		// Symlinks are not served by the worker: the origin answers them.
		if e.Kind == tree.KindFile || e.Kind == tree.KindDir {
			names = append(names, sw.TopName{Name: e.Name, Dir: e.Kind == tree.KindDir})
		}
	}
	paths, ok := sw.TreePaths(names)
	if !ok {
		n.log.Warn("service worker paths: the tree has too many top-level names; the worker serves every path (\"/\") from volunteers, app routes included: set sw_paths", "names", len(names), "max", sw.MaxTreePaths)
	}
	return paths, nil
}

// followTreePaths keeps a worker without sw_paths serving the current
// tree's top-level names: when a new root names another tree, the names
// are read again, and if they changed, the scripts (and with them the
// worker's version, so browsers update it) are rebuilt.
func (n *Node) followTreePaths(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := n.web.refreshTreePaths(ctx, n); err != nil && ctx.Err() == nil {
			n.log.Warn("service worker paths", "err", err)
		}
	}
}

func (wb *web) refreshTreePaths(ctx context.Context, n *Node) error {
	r, ok := n.roots.Latest()
	wb.swMu.Lock()
	follow, cur, base := wb.swFollow, wb.swTree, wb.swBase
	wb.swMu.Unlock()
	if !follow || !ok || r.Tree == cur {
		return nil
	}
	paths, err := n.readTreePaths(ctx, r.Tree)
	if err != nil {
		return err
	}
	wb.swMu.Lock()
	defer wb.swMu.Unlock()
	if !wb.swFollow || wb.swTree != cur {
		return nil // a reload rebuilt the handler meanwhile
	}
	wb.swTree = r.Tree
	if slices.Equal(paths, wb.swBase.Paths) {
		return nil
	}
	s := base
	s.Paths = paths
	scripts, err := sw.Scripts(s)
	if err != nil {
		return fmt.Errorf("scripts for the tree's paths %v: %w", paths, err)
	}
	if err := wb.gw.SetScripts(scripts); err != nil {
		return err
	}
	wb.swBase = s
	n.log.Info("service worker paths follow the tree", "tree", r.Tree, "paths", len(paths))
	return nil
}

package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/fuse"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/tree"
)

// MountStateDir is where, in the data directory, the origin's mounts
// keep their state (held-back trees, staging files).
const MountStateDir = "mount"

// MountLockWait bounds how long a mount's commit waits for the data
// directory's lock while an import, gc or the re-signing of the root
// holds it.
const MountLockWait = 2 * time.Minute

// MountConfig is a file system mount of the node's tree.
type MountConfig struct {
	// Dir is the mount point; empty means no mount.
	Dir string
	// At is the tree path shown (the origin's mount; default the root).
	At tree.Path
	// Quiet is how long the origin's mount waits for quiet before it
	// commits (default 1s).
	Quiet time.Duration
	// Publish is the origin's publish rule (default world-readable).
	Publish fuse.PublishRule
	// Owner is who the mount's entries belong to (default: this
	// process's user).
	Owner *fuse.Owner
	// ReadDirPlus, on a read-only mount, answers listings with every
	// entry's attributes (fast ls -l; an inode per entry).
	ReadDirPlus bool
}

// mountCloseWait bounds how long stopping the node waits for files still
// open on its mount.
const mountCloseWait = 10 * time.Minute

// mountTree mounts the node's tree: read-write on the origin (its roots
// committed under the node's lock and served at once), read-only and
// lazy elsewhere (blocks from the swarm through the fetcher).
func (n *Node) mountTree(mc MountConfig) error {
	var m *fuse.Mount
	var err error
	if n.origin {
		lock := func(ctx context.Context, fn func(*datadir.Dir) error) error {
			return n.WithLock(ctx, MountLockWait, fn)
		}
		m, err = mountOrigin(n.ctx, n.dir, mc, n.store, lock, n.OfferRoot, n.log)
	} else {
		roots, ok := n.roots.(fuse.Roots)
		if !ok {
			return fmt.Errorf("mount: this node keeps no root history")
		}
		m, err = fuse.MountReplica(n.ctx, mc.Dir, fuse.ReplicaConfig{Getter: n.fetcher, Roots: roots,
			ReadDirPlus: mc.ReadDirPlus, Retain: n.dir.Config.RetainRoots, Owner: mc.Owner, Space: n.cacheSpace, Logger: n.log.With("component", "mount")})
	}
	if err != nil {
		return err
	}
	n.mount = m
	n.closers = append(n.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), mountCloseWait)
		defer cancel()
		return m.Close(ctx)
	})
	return nil
}

// cacheSpace is the node's cache quota and what is left of it.
func (n *Node) cacheSpace() (total, free uint64) {
	st, err := n.dir.Store.Stats(n.ctx)
	if err != nil || st.Quota <= 0 {
		return 0, 0
	}
	return uint64(st.Quota), uint64(max(st.Quota-st.CachedBytes, 0))
}

// Mount is the node's file system mount, nil without one.
func (n *Node) Mount() *fuse.Mount { return n.mount }

// LockFunc runs fn holding the data directory's lock, waiting (bounded)
// while another command holds it.
type LockFunc func(ctx context.Context, fn func(d *datadir.Dir) error) error

// MountOrigin mounts the origin's tree read-write at mc.Dir. Every root
// the mount commits goes through lock, and committed is told of it.
func MountOrigin(ctx context.Context, d *datadir.Dir, mc MountConfig, lock LockFunc, committed func(tree.Root), logger *slog.Logger) (*fuse.Mount, error) {
	return mountOrigin(ctx, d, mc, nil, lock, committed, logger)
}

// mountOrigin is MountOrigin reading file content through reader (the
// daemon's store, which fetches back what offload let go); nil reads the
// data directory's store.
func mountOrigin(ctx context.Context, d *datadir.Dir, mc MountConfig, reader tree.Getter, lock LockFunc, committed func(tree.Root), logger *slog.Logger) (*fuse.Mount, error) {
	if err := d.RequireOrigin("a read-write mount"); err != nil {
		return nil, err
	}
	stateRoot := d.FilePath(MountStateDir)
	content := reader
	if content == nil {
		content = d.Store
	}
	retain := d.Config.RetainRoots
	snapshots := func(ctx context.Context) ([]tree.Root, error) {
		return originSnapshots(ctx, d, content, mc.At, retain)
	}
	return fuse.MountOrigin(ctx, mc.Dir, fuse.OriginConfig{
		Snapshots: snapshots,
		Store:     d.Store, Reader: reader, StateDir: fuse.StateDirFor(stateRoot, mc.At), At: mc.At.String(),
		Publisher: &dirPublisher{d: d, at: mc.At, lock: lock, committed: committed},
		ChunkSize: d.Config.ChunkSize, Rule: mc.Publish, Quiet: mc.Quiet, StatfsPath: d.Path, Owner: mc.Owner,
		Logger: logger.With("component", "mount"),
	})
}

// originSnapshots lists the retained roots whose directory at is
// readable through g (offloaded nodes fetched back and verified), each
// Root's Tree set to that directory. It reads the root log afresh: d.Log
// is replaced whenever a commit takes the lock.
func originSnapshots(ctx context.Context, d *datadir.Dir, g tree.Getter, at tree.Path, retain int) ([]tree.Root, error) {
	l, err := tree.ReadLog(ctx, d.FilePath("roots.log"))
	if err != nil {
		return nil, err
	}
	roots := d.RetainedOf(l.Roots(), retain)
	l.Close()
	out := make([]tree.Root, 0, len(roots))
	for _, r := range roots {
		h := r.Tree
		if len(at) > 0 {
			res, err := tree.Lookup(ctx, g, r.Tree, at)
			if err != nil || res.Status != tree.Found || res.Entry.Kind != tree.KindDir {
				continue
			}
			h = res.Entry.Hash
		}
		if _, err := tree.LoadNode(ctx, g, h); err != nil {
			continue
		}
		r.Tree = h
		out = append(out, r)
	}
	return out, nil
}

// dirPublisher commits the mount's roots into the data directory.
type dirPublisher struct {
	d         *datadir.Dir
	at        tree.Path
	lock      LockFunc
	committed func(tree.Root)
}

func (p *dirPublisher) Published(ctx context.Context) (blockstore.Hash, bool, error) {
	l, err := tree.ReadLog(ctx, p.d.FilePath("roots.log"))
	if err != nil {
		return blockstore.Hash{}, false, err
	}
	defer l.Close()
	latest, ok := l.Latest()
	if !ok {
		return blockstore.Hash{}, false, nil
	}
	if len(p.at) == 0 {
		return latest.Tree, true, nil
	}
	res, err := tree.Lookup(ctx, p.d.Store, latest.Tree, p.at)
	if err != nil {
		return blockstore.Hash{}, false, err
	}
	if res.Status != tree.Found || res.Entry.Kind != tree.KindDir {
		return blockstore.Hash{}, false, nil
	}
	return res.Entry.Hash, true, nil
}

func (p *dirPublisher) Publish(ctx context.Context, dir tree.Entry) (tree.Root, error) {
	var r tree.Root
	err := p.lock(ctx, func(d *datadir.Dir) error {
		t := dir.Hash
		if len(p.at) > 0 {
			b := &tree.Builder{Store: d.Store, PutOptions: blockstore.PutOptions{Residency: blockstore.Pinned, Deferred: true}, ChunkSize: d.Config.ChunkSize}
			top := blockstore.Hash{}
			if base, ok := d.Log.Latest(); ok {
				top = base.Tree
			} else {
				var err error
				if top, err = b.EmptyDir(ctx); err != nil {
					return err
				}
			}
			var err error
			if t, err = b.Set(ctx, top, p.at, dir); err != nil {
				return err
			}
			if err := d.Store.Sync(ctx); err != nil {
				return err
			}
		}
		if last, ok := d.Log.Latest(); ok && last.Tree == t {
			r = last
			return nil
		}
		var err error
		r, err = d.Commit(ctx, t, time.Now())
		return err
	})
	if err != nil {
		return tree.Root{}, fmt.Errorf("commit the mount's root: %w", err)
	}
	if p.committed != nil {
		p.committed(r)
	}
	return r, nil
}

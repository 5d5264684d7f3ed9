package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/tree"
)

// originRoots gives the origin's swarm and server the latest root from
// the follower (imports append in another process) and the history from
// the log file.
type originRoots struct {
	f    *datadir.RootFollower
	path string
}

func (o *originRoots) Latest() (tree.Root, bool) { return o.f.Latest() }

func (o *originRoots) Append(context.Context, tree.Root) error {
	return errors.New("the origin's roots come from gritsd import")
}

func (o *originRoots) Roots() []tree.Root {
	l, err := tree.ReadLog(context.Background(), o.path)
	if err != nil {
		if r, ok := o.f.Latest(); ok {
			return []tree.Root{r}
		}
		return nil
	}
	defer l.Close()
	return l.Roots()
}

// RereadRoots makes the origin take the newest root in its log now (an
// import in another process committed one); elsewhere it does nothing.
func (n *Node) RereadRoots(ctx context.Context) error {
	if n.follower == nil {
		return nil
	}
	return n.follower.Reread(ctx)
}

// OfferRoot makes r, just committed to the origin's log by this process,
// the latest root without waiting for the next poll.
func (n *Node) OfferRoot(r tree.Root) {
	if n.follower != nil {
		n.follower.Offer(r)
	}
}

// announceRoots spreads each root an import commits.
func (n *Node) announceRoots(ctx context.Context) {
	var seq uint64
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if r, ok := n.follower.Latest(); ok && r.Seq > seq {
			seq = r.Seq
			n.swarm.Announce(r)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchRing puts a ban (gritsd ban rewrites the keyring file) into force.
func (n *Node) watchRing(ctx context.Context) {
	var lastMod time.Time
	var lastSize int64 = -1
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(n.dir.FilePath(RingFile))
		if err != nil || st.ModTime().Equal(lastMod) && st.Size() == lastSize {
			continue
		}
		lastMod, lastSize = st.ModTime(), st.Size()
		k, err := LoadRing(n.dir)
		if err != nil {
			n.log.Error("cannot read the swarm keys", "err", err)
			continue
		}
		if err := n.swarm.Adopt(k); err != nil {
			n.log.Error("cannot put the new ban list in force", "err", err)
		}
	}
}

// reportLoad advertises how busy this node is: requests per second
// against a nominal 2,000, in percent.
func (n *Node) reportLoad(ctx context.Context) {
	const every = 5 * time.Second
	t := time.NewTicker(every)
	defer t.Stop()
	last := n.server.Stats().Requests
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := n.server.Stats().Requests
		rate := float64(cur-last) / every.Seconds()
		last = cur
		n.swarm.Update(func(m *membership.Meta) { m.Load = uint8(min(100, rate/20)) })
	}
}

// WithLock runs fn holding the data directory's write lock, which
// commands in other processes (gritsd import, gc) take too; jobs of this
// process that commit roots (re-signing, the mount, the watcher) are
// serialized here first. While another process holds the lock it retries
// until wait has passed, then fails with datadir.ErrLocked.
func (n *Node) WithLock(ctx context.Context, wait time.Duration, fn func(d *datadir.Dir) error) error {
	n.lockMu.Lock()
	defer n.lockMu.Unlock()
	deadline := time.Now().Add(wait)
	delay := 10 * time.Millisecond
	for {
		err := n.dir.Lock()
		if err == nil {
			break
		}
		if !errors.Is(err, datadir.ErrLocked) || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
	defer n.dir.Unlock()
	return fn(n.dir)
}

// Commit signs and logs a root for tree hash t as the origin's next
// version (the tree's blocks must be durable already), waiting up to
// wait for the lock, and serves it at once.
func (n *Node) Commit(ctx context.Context, t blockstore.Hash, wait time.Duration) (tree.Root, error) {
	if !n.origin {
		return tree.Root{}, n.dir.RequireOrigin("commit")
	}
	var r tree.Root
	err := n.WithLock(ctx, wait, func(d *datadir.Dir) error {
		var err error
		r, err = d.Commit(ctx, t, time.Now())
		return err
	})
	if err != nil {
		return tree.Root{}, err
	}
	n.follower.Offer(r)
	return r, nil
}

// keepRootFresh re-signs the current tree before its root expires, so an
// origin that publishes nothing new keeps serving a valid root. It skips a
// round when an import holds the lock (the import signs a fresh root).
func (n *Node) keepRootFresh(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if r, ok := n.follower.Latest(); ok && time.Until(r.Expires) < n.dir.Config.RootTTL.Duration/4 {
			err := n.WithLock(ctx, 0, func(d *datadir.Dir) error {
				cur, ok := d.Log.Latest()
				if !ok || cur.Seq != r.Seq {
					return nil // a newer root is there already
				}
				nr, err := d.Commit(ctx, r.Tree, time.Now())
				if err != nil {
					return fmt.Errorf("re-signing the root: %w", err)
				}
				n.follower.Offer(nr)
				n.log.Info("re-signed the root before it expires", "seq", nr.Seq, "expires", nr.Expires)
				return nil
			})
			if err != nil && !errors.Is(err, datadir.ErrLocked) && ctx.Err() == nil {
				n.log.Error("keeping the root fresh", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

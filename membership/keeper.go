package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// KeeperConfig configures a Keeper.
type KeeperConfig struct {
	Swarm   *Swarm
	Fetcher *Fetcher
	Store   blockstore.Store
	// Pins are the subtrees a storage node keeps ("/" for the whole
	// tree); empty on volunteers, which only warm their caches.
	Pins []string
	// StatePath is where the last completely synced root is recorded,
	// so a restarted node diffs from it instead of starting over.
	StatePath string
	// WarmMax bounds the bytes a volunteer prefetches per new root;
	// WarmRate bounds its prefetch bandwidth (bytes/s). 0: defaults of
	// 256 MiB and 8 MiB/s; negative disables warming.
	WarmMax, WarmRate int64
	// PinRate bounds a storage node's sync bandwidth (bytes/s); 0 is
	// unlimited.
	PinRate int64
	// Workers fetching blocks in parallel; default 8.
	Workers int
	Logger  *slog.Logger
}

// Keeper keeps the blocks a node should have: a storage node pins every
// block of its pinned subtrees of the latest root; a volunteer warms its
// cache with the new blocks of each root that it is home for. Both walk
// only what changed since the last root they finished (subtrees whose
// hash is unchanged are skipped whole), and both skip blocks already
// present, so a node restarted mid-sync fetches only what it still lacks.
type Keeper struct {
	cfg KeeperConfig
	log *slog.Logger

	lacking  atomic.Int64
	complete atomic.Uint64
	mu       sync.Mutex
	done     keeperState
}

type keeperState struct {
	Seq  uint64          `json:"seq"`
	Tree blockstore.Hash `json:"tree"`
}

// NewKeeper loads the last finished sync.
func NewKeeper(cfg KeeperConfig) *Keeper {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.WarmMax == 0 {
		cfg.WarmMax = 256 << 20
	}
	if cfg.WarmRate == 0 {
		cfg.WarmRate = 8 << 20
	}
	k := &Keeper{cfg: cfg, log: cfg.Logger}
	if b, err := os.ReadFile(cfg.StatePath); err == nil {
		if err := json.Unmarshal(b, &k.done); err != nil {
			k.log.Warn("ignoring unreadable sync state", "path", cfg.StatePath, "err", err)
			k.done = keeperState{}
		}
	}
	k.complete.Store(k.done.Seq)
	return k
}

// Pinning reports whether this keeper pins (storage) rather than warms.
func (k *Keeper) Pinning() bool { return len(k.cfg.Pins) > 0 }

// Run syncs to each new root until ctx ends. A sync in progress is
// abandoned for a newer root (it resumes from the blocks it has).
func (k *Keeper) Run(ctx context.Context) {
	roots := k.cfg.Swarm.SubscribeRoots()
	select {
	case <-ctx.Done():
		return
	case <-k.cfg.Swarm.Joined():
	}
	if k.Pinning() {
		// A restarted node that finished its last sync says so at once:
		// syncTo publishes only when it has something to do, and the
		// origin counts (and audits) only nodes that claim to be complete.
		k.publish(k.complete.Load())
	}
	if r, ok := k.cfg.Swarm.cfg.Roots.Latest(); ok {
		k.syncTo(ctx, r)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-roots:
			k.syncTo(ctx, r)
		}
	}
}

func (k *Keeper) syncTo(ctx context.Context, r tree.Root) {
	k.mu.Lock()
	prev := k.done
	k.mu.Unlock()
	if prev.Seq >= r.Seq {
		return
	}
	if !k.Pinning() && k.cfg.WarmMax < 0 {
		return
	}
	start := time.Now()
	var err error
	if k.Pinning() {
		err = k.pin(ctx, prev.Tree, r)
	} else {
		err = k.warm(ctx, prev.Tree, r)
	}
	if err != nil {
		if ctx.Err() == nil {
			k.log.Warn("sync to the new root incomplete; will retry", "seq", r.Seq, "err", err)
			// Retry later: the next root, or a timer.
			go func() {
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
					if cur, ok := k.cfg.Swarm.cfg.Roots.Latest(); ok && cur.Seq == r.Seq {
						k.cfg.Swarm.notifyRoot(r)
					}
				}
			}()
		}
		return
	}
	k.mu.Lock()
	k.done = keeperState{Seq: r.Seq, Tree: r.Tree}
	k.mu.Unlock()
	if err := k.save(); err != nil {
		k.log.Warn("saving sync state", "err", err)
	}
	k.log.Info("synced to root", "seq", r.Seq, "pinning", k.Pinning(), "took", time.Since(start).Round(time.Millisecond))
}

func (k *Keeper) save() error {
	if k.cfg.StatePath == "" {
		return nil
	}
	k.mu.Lock()
	b, _ := json.Marshal(k.done)
	k.mu.Unlock()
	return writeFileAtomic(k.cfg.StatePath, b, 0o644)
}

// Lacking is how many bytes of the latest root's pinned part are still
// missing (as of the last plan), and Complete the latest fully held seq.
func (k *Keeper) Lacking() int64   { return k.lacking.Load() }
func (k *Keeper) Complete() uint64 { return k.complete.Load() }

// getter fetches nodes with the keeper's residency.
type getter struct {
	f *Fetcher
	r blockstore.Residency
}

func (g getter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	return g.f.Fetch(ctx, h, g.r)
}

// localGetter reads only this node's store (for the previous tree).
type localGetter struct{ s blockstore.Store }

func (g localGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	return g.s.Get(ctx, h)
}

type want struct {
	hash blockstore.Hash
	size int64
}

// diff calls chunk for every chunk of the files that differ between the
// directory trees old (may be zero) and new, loading new's nodes through
// g (so they are kept) and old's from the local store only.
func (k *Keeper) diff(ctx context.Context, g tree.Getter, old, new blockstore.Hash, chunk func(tree.Chunk) error) error {
	if old == new {
		return nil
	}
	entries, err := tree.ListDir(ctx, g, new)
	if err != nil {
		return err
	}
	before := map[string]tree.Entry{}
	if !old.IsZero() {
		if es, err := tree.ListDir(ctx, localGetter{k.cfg.Store}, old); err == nil {
			for _, e := range es {
				before[e.Name] = e
			}
		}
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		o, had := before[e.Name]
		if had && o.Kind == e.Kind && o.Hash == e.Hash {
			continue
		}
		switch e.Kind {
		case tree.KindDir:
			var oh blockstore.Hash
			if had && o.Kind == tree.KindDir {
				oh = o.Hash
			}
			if err := k.diff(ctx, g, oh, e.Hash, chunk); err != nil {
				return err
			}
		case tree.KindFile:
			if err := tree.EntryChunks(ctx, g, e, chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

// subtree resolves path p in tree t through g: the entry's kind and hash
// (found=false if absent).
func subtree(ctx context.Context, g tree.Getter, t blockstore.Hash, p string) (tree.Entry, bool, error) {
	path, err := tree.ParsePath(p)
	if err != nil {
		return tree.Entry{}, false, err
	}
	if len(path) == 0 {
		return tree.Entry{Kind: tree.KindDir, Hash: t}, true, nil
	}
	res, err := tree.Lookup(ctx, g, t, path)
	if err != nil {
		return tree.Entry{}, false, err
	}
	if res.Status != tree.Found {
		return tree.Entry{}, false, nil
	}
	return res.Entry, true, nil
}

// plan lists the chunks of the pinned subtrees of r that differ from
// tree old, keeping every node on the way with residency res.
func (k *Keeper) plan(ctx context.Context, old blockstore.Hash, r tree.Root, pins []string, res blockstore.Residency, chunk func(tree.Chunk) error) error {
	g := getter{k.cfg.Fetcher, res}
	for _, p := range pins {
		e, found, err := subtree(ctx, g, r.Tree, p)
		if err != nil {
			return fmt.Errorf("pinned path %s: %w", p, err)
		}
		if !found {
			continue
		}
		var oe tree.Entry
		if !old.IsZero() {
			oe, _, _ = subtree(ctx, localGetter{k.cfg.Store}, old, p)
		}
		switch e.Kind {
		case tree.KindDir:
			var oh blockstore.Hash
			if oe.Kind == tree.KindDir {
				oh = oe.Hash
			}
			err = k.diff(ctx, g, oh, e.Hash, chunk)
		case tree.KindFile:
			if oe.Hash != e.Hash {
				err = tree.EntryChunks(ctx, g, e, chunk)
			}
		}
		if err != nil {
			return fmt.Errorf("pinned path %s: %w", p, err)
		}
	}
	return nil
}

func (k *Keeper) pin(ctx context.Context, old blockstore.Hash, r tree.Root) error {
	var todo []want
	var lacking int64
	err := k.plan(ctx, old, r, k.cfg.Pins, blockstore.Pinned, func(c tree.Chunk) error {
		ok, err := k.cfg.Store.Has(ctx, c.Hash)
		if err != nil {
			return err
		}
		if !ok {
			lacking += int64(c.Size)
		}
		todo = append(todo, want{c.Hash, int64(c.Size)})
		return nil
	})
	if err != nil {
		return err
	}
	k.lacking.Store(lacking)
	k.publish(r.Seq)
	stop := k.publishEvery(ctx, r.Seq)
	defer stop()
	err = k.fetchAll(ctx, todo, blockstore.Pinned, k.cfg.PinRate)
	if err != nil {
		return err
	}
	if err := k.cfg.Store.Sync(ctx); err != nil {
		return err
	}
	k.lacking.Store(0)
	k.complete.Store(r.Seq)
	k.publish(r.Seq)
	return nil
}

func (k *Keeper) warm(ctx context.Context, old blockstore.Hash, r tree.Root) error {
	var todo []want
	var budget = k.cfg.WarmMax
	err := k.plan(ctx, old, r, []string{"/"}, blockstore.Cached, func(c tree.Chunk) error {
		if budget <= 0 || !k.cfg.Fetcher.IsHome(c.Hash) {
			return nil
		}
		budget -= int64(c.Size)
		todo = append(todo, want{c.Hash, int64(c.Size)})
		return nil
	})
	if err != nil {
		return err
	}
	return k.fetchAll(ctx, todo, blockstore.Cached, k.cfg.WarmRate)
}

// fetchAll fetches the wanted blocks with the keeper's workers, at most
// rate bytes/s when rate > 0.
func (k *Keeper) fetchAll(ctx context.Context, todo []want, res blockstore.Residency, rate int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan want)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	var sent atomic.Int64
	for range k.cfg.Workers {
		wg.Go(func() {
			for w := range work {
				if _, err := k.cfg.Fetcher.Fetch(ctx, w.hash, res); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				if res == blockstore.Pinned {
					k.lacking.Add(-w.size)
				}
				if rate > 0 {
					n := sent.Add(w.size)
					due := start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						select {
						case <-ctx.Done():
						case <-time.After(d):
						}
					}
				}
			}
		})
	}
feed:
	for _, w := range todo {
		select {
		case work <- w:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (k *Keeper) publish(seq uint64) {
	k.cfg.Swarm.Update(func(m *Meta) {
		m.Complete = k.complete.Load()
		m.Lacking = uint64(max(0, k.lacking.Load()))
	})
}

func (k *Keeper) publishEvery(ctx context.Context, seq uint64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				k.publish(seq)
			}
		}
	}()
	return func() { cancel(); <-done }
}

var _ = errors.New

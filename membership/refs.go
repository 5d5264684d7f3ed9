package membership

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// ErrNotReferenced is what a stranger gets for a block this node lacks
// and no tree it knows references: it matches blockstore.ErrNotFound, so
// it is answered as any missing block, without asking another node.
var ErrNotReferenced = fmt.Errorf("%w: not referenced by this node's trees", blockstore.ErrNotFound)

// IsMemberPeer is IsMember for a peer the transport server admitted
// (its Authorize refuses a credential that does not verify): the
// server's Exempt for its per-client request budget.
func IsMemberPeer(p transport.Peer) bool { return len(p.Credential) > 0 }

// Refs tuning.
const (
	// refsWalkWait is how long a stranger's request for a block not yet
	// known waits while the set is behind the node's newest root (a
	// root that just arrived, a node just started) before it is
	// answered "not found".
	refsWalkWait = 3 * time.Second
	// refsRetry is when a walk that could not load every node (a source
	// down) is tried again, if its root is still the newest.
	refsRetry = 5 * time.Second
	// refsMissTTL is how long a block that no source could serve is
	// answered "not found" to strangers without asking again, and
	// refsMaxMisses bounds how many such answers are kept.
	refsMissTTL   = 10 * time.Second
	refsMaxMisses = 4096
	// refsRebuildSlack: the set is rebuilt from the newest tree alone
	// once it holds more than twice what that tree had at the last full
	// walk, plus this many (blocks of replaced content age out).
	refsRebuildSlack = 4096
)

// Refs knows which blocks the trees of this node's roots reference: the
// newest root's tree, and those of the roots since the set was last
// rebuilt. A volunteer or storage node pulls a block through from the
// swarm for a stranger (a browser, gritsd get: no member credential)
// only if Refs knows it; anything else, random hashes above all, is
// answered "not found" without asking anyone. Without it one stranger's
// GetBlocks of 256 random hashes made a volunteer send hundreds of
// requests to its home nodes, storage nodes and the origin.
//
// It learns a tree by walking it (tree.Walk) through the node's Fetcher,
// as the Keeper does: every node is loaded (and kept in the store,
// cached), chunks are only named. Subtrees walked completely before are
// skipped, so a new root costs the nodes that changed. Hashes are kept
// as 64-bit fingerprints under a random per-process key (hash/maphash):
// 8 bytes each in the map, and no one without the key can make a random
// hash pass for a known one.
type Refs struct {
	swarm *Swarm
	get   tree.Getter
	log   *slog.Logger
	seed  maphash.Seed

	mu   sync.Mutex
	cur  *refsGen // answers; grows with every root walked
	next *refsGen // being rebuilt from the newest tree, also answers
	base int      // blocks of the newest tree at the last full walk
	tree blockstore.Hash
	// walked is closed (and replaced) whenever a walk ends.
	walked chan struct{}
	misses map[blockstore.Hash]time.Time

	walks, loaded atomic.Int64
}

// refsGen is one generation of the set.
type refsGen struct {
	known  map[uint64]struct{} // blocks referenced: nodes, chunks, tree hashes
	walked map[uint64]struct{} // nodes whose whole subtree is in known
}

func newRefsGen() *refsGen {
	return &refsGen{known: map[uint64]struct{}{}, walked: map[uint64]struct{}{}}
}

// NewRefs returns the set for a node whose fetcher is f; Run fills it.
func NewRefs(s *Swarm, f *Fetcher, logger *slog.Logger) *Refs {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Refs{swarm: s, log: logger, seed: maphash.MakeSeed(), cur: newRefsGen(), misses: map[blockstore.Hash]time.Time{},
		walked: make(chan struct{})}
	r.get = refsGetter{r: r, g: getter{f, blockstore.Cached}}
	return r
}

// refsGetter counts the nodes a walk loads.
type refsGetter struct {
	r *Refs
	g tree.Getter
}

func (g refsGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	g.r.loaded.Add(1)
	return g.g.Get(ctx, h)
}

func (r *Refs) fp(h blockstore.Hash) uint64 { return maphash.Comparable(r.seed, h) }

// RefsStats describes the set.
type RefsStats struct {
	Blocks int             // fingerprints held
	Tree   blockstore.Hash // the newest tree walked completely
	Walks  int64           // walks finished or abandoned
	Loaded int64           // nodes the walks loaded
}

func (r *Refs) Stats() RefsStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.cur.known)
	if r.next != nil {
		n += len(r.next.known)
	}
	return RefsStats{Blocks: n, Tree: r.tree, Walks: r.walks.Load(), Loaded: r.loaded.Load()}
}

// Has reports whether a tree this node walked references h.
func (r *Refs) Has(h blockstore.Hash) bool {
	fp := r.fp(h)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hasLocked(fp)
}

func (r *Refs) hasLocked(fp uint64) bool {
	if _, ok := r.cur.known[fp]; ok {
		return true
	}
	if r.next != nil {
		_, ok := r.next.known[fp]
		return ok
	}
	return false
}

// admit decides whether a stranger's request for h, which this node
// lacks, may be pulled through: nil, or an error matching
// blockstore.ErrNotFound. While the set is behind the node's newest root
// the request waits for it, briefly: a browser may learn of a root from
// the origin a moment before this node has walked it.
func (r *Refs) admit(ctx context.Context, h blockstore.Hash) error {
	fp := r.fp(h)
	r.mu.Lock()
	if at, ok := r.misses[h]; ok {
		if time.Since(at) < refsMissTTL {
			r.mu.Unlock()
			return fmt.Errorf("block %s: %w (no source had it a moment ago)", h.Short(), blockstore.ErrNotFound)
		}
		delete(r.misses, h)
	}
	known := r.hasLocked(fp)
	r.mu.Unlock()
	if known {
		return nil
	}
	deadline := time.NewTimer(refsWalkWait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		known, walked, behind := r.hasLocked(fp), r.walked, r.behindLocked()
		r.mu.Unlock()
		if known {
			return nil
		}
		if !behind {
			return fmt.Errorf("block %s: %w", h.Short(), ErrNotReferenced)
		}
		select {
		case <-walked:
		case <-deadline.C:
			return fmt.Errorf("block %s: %w (this node is still learning its newest tree)", h.Short(), ErrNotReferenced)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// behindLocked reports whether the set lacks the node's newest root.
func (r *Refs) behindLocked() bool {
	latest, ok := r.swarm.cfg.Roots.Latest()
	return ok && latest.Tree != r.tree
}

// missed records that no source could serve h, so that strangers asking
// again soon are answered without another round of requests.
func (r *Refs) missed(h blockstore.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.misses) >= refsMaxMisses {
		now := time.Now()
		for k, at := range r.misses {
			if now.Sub(at) >= refsMissTTL {
				delete(r.misses, k)
			}
		}
		for k := range r.misses {
			if len(r.misses) < refsMaxMisses {
				break
			}
			delete(r.misses, k)
		}
	}
	r.misses[h] = time.Now()
}

// Run walks the newest root's tree, then each new one, until ctx ends.
func (r *Refs) Run(ctx context.Context) {
	roots := r.swarm.SubscribeRoots()
	select {
	case <-ctx.Done():
		return
	case <-r.swarm.Joined():
	}
	var retry <-chan time.Time
	latest, ok := r.swarm.cfg.Roots.Latest()
	for {
		if ok && !r.walk(ctx, latest) && ctx.Err() == nil {
			retry = time.After(refsRetry)
		}
		select {
		case <-ctx.Done():
			return
		case latest = <-roots:
			ok, retry = true, nil
		case <-retry:
			retry = nil
			latest, ok = r.swarm.cfg.Roots.Latest()
		}
	}
}

// walk learns root's tree; it reports whether every node could be
// loaded. A set grown past twice the newest tree is then rebuilt from
// that tree alone.
func (r *Refs) walk(ctx context.Context, root tree.Root) bool {
	r.mu.Lock()
	if r.tree == root.Tree && r.next == nil {
		r.mu.Unlock()
		return true
	}
	gen, rebuilding := r.cur, r.next != nil
	if rebuilding {
		gen = r.next
	}
	r.mu.Unlock()

	start := time.Now()
	complete := r.walkInto(ctx, root.Tree, gen)
	r.walks.Add(1)

	r.mu.Lock()
	close(r.walked)
	r.walked = make(chan struct{})
	if complete {
		r.tree = root.Tree
		switch {
		case rebuilding:
			r.cur, r.next = gen, nil
			r.base = len(gen.known)
		case r.base == 0:
			r.base = len(gen.known)
		}
		if !rebuilding && len(r.cur.known) > 2*r.base+refsRebuildSlack {
			r.next = newRefsGen()
		}
	}
	blocks, again := len(r.cur.known), r.next != nil && complete
	r.mu.Unlock()
	r.log.Debug("walked a tree for the blocks strangers may ask for", "seq", root.Seq, "complete", complete,
		"blocks", blocks, "took", time.Since(start).Round(time.Millisecond))
	if again {
		return r.walk(ctx, root)
	}
	return complete
}

// walkInto adds every block of tree t to gen, skipping the subtrees gen
// has walked completely before; it reports whether every node loaded.
// The nodes it passed are marked walked only when all of them did.
func (r *Refs) walkInto(ctx context.Context, t blockstore.Hash, gen *refsGen) bool {
	var passed []uint64
	complete := true
	err := tree.Walk(ctx, r.get, t, func(v tree.Visit) (bool, error) {
		fp := r.fp(v.Hash)
		r.mu.Lock()
		defer r.mu.Unlock()
		// Named by a verified node (or the signed root): referenced,
		// whether or not it loads.
		gen.known[fp] = struct{}{}
		if v.Err != nil {
			complete = false
			return false, nil
		}
		if v.Kind == tree.BlockChunk {
			return false, nil
		}
		if _, ok := gen.walked[fp]; ok {
			return false, nil
		}
		passed = append(passed, fp)
		return true, nil
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			r.log.Warn("walking the tree for the blocks strangers may ask for", "tree", t.Short(), "err", err)
		}
		return false
	}
	if !complete {
		r.log.Warn("some nodes of the tree could not be loaded; strangers get only what was reached until a retry", "tree", t.Short())
		return false
	}
	r.mu.Lock()
	for _, fp := range passed {
		gen.walked[fp] = struct{}{}
	}
	r.mu.Unlock()
	return true
}

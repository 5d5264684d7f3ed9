package blockstore

import (
	"container/list"
	"fmt"
	"slices"
	"time"
)

// entry is what a store remembers about one block in memory.
type entry struct {
	hash     Hash
	size     int64
	res      Residency
	lastUsed time.Time
	// elem is the entry's place in index.lru; nil unless res == Cached.
	elem *list.Element

	// persisted is the last use time written to the block file's mtime
	// (Disk only), so reads rewrite file metadata at most once per
	// DiskConfig.TouchInterval.
	persisted time.Time
	// data holds the block's bytes (Mem only).
	data []byte
}

// index tracks blocks by residency and orders cached blocks by use, which
// is all eviction needs. It is shared by Mem and Disk so both evict by the
// same rules; it is not safe for concurrent use (callers hold a mutex).
type index struct {
	entries map[Hash]*entry
	// lru holds the cached entries, most recently used at the front.
	lru   *list.List
	stats Stats // Quota is left zero; the owner fills it in
}

func newIndex() index {
	return index{entries: make(map[Hash]*entry), lru: list.New()}
}

func (x *index) get(h Hash) *entry { return x.entries[h] }

// add records a block not yet in the index. A cached block becomes the
// most recently used one, so callers loading many blocks add them oldest
// first.
func (x *index) add(h Hash, size int64, r Residency, lastUsed time.Time) *entry {
	e := &entry{hash: h, size: size, res: r, lastUsed: lastUsed, persisted: lastUsed}
	x.entries[h] = e
	x.account(e, +1)
	if r == Cached {
		e.elem = x.lru.PushFront(e)
	}
	return e
}

// update reconciles an entry with what was just observed on disk (another
// process may have changed it), adding it if missing, as used at now. It
// does not count as a use of a known block. It reports whether the cached
// bytes grew, i.e. whether the caller should enforce the quota.
func (x *index) update(h Hash, size int64, r Residency, now time.Time) (*entry, bool) {
	e := x.entries[h]
	if e == nil {
		return x.add(h, size, r, now), r == Cached
	}
	grew := r == Cached && (e.res != Cached || size > e.size)
	if e.size != size {
		x.account(e, -1)
		e.size = size
		x.account(e, +1)
	}
	x.setResidency(e, r)
	return e, grew
}

// touch records a use of the block.
func (x *index) touch(e *entry, now time.Time) {
	if now.After(e.lastUsed) {
		e.lastUsed = now
	}
	if e.elem != nil {
		x.lru.MoveToFront(e.elem)
	}
}

// setResidency moves an entry between residencies. A block that stops
// being pinned becomes the least recently used cached block: unpinning
// says nothing needs it kept, so it should go before blocks in use.
func (x *index) setResidency(e *entry, r Residency) {
	if e.res == r {
		return
	}
	x.account(e, -1)
	if e.elem != nil {
		x.lru.Remove(e.elem)
		e.elem = nil
	}
	e.res = r
	x.account(e, +1)
	if r == Cached {
		e.elem = x.lru.PushBack(e)
	}
}

// sortLRU restores the LRU order from the entries' last uses, for after
// a batch of changes that put entries out of place.
func (x *index) sortLRU() {
	es := make([]*entry, 0, x.lru.Len())
	for el := x.lru.Front(); el != nil; el = el.Next() {
		es = append(es, el.Value.(*entry))
	}
	slices.SortStableFunc(es, func(a, b *entry) int { return b.lastUsed.Compare(a.lastUsed) })
	x.lru.Init()
	for _, e := range es {
		e.elem = x.lru.PushBack(e)
	}
}

func (x *index) remove(h Hash) *entry {
	e := x.entries[h]
	if e == nil {
		return nil
	}
	delete(x.entries, h)
	x.account(e, -1)
	if e.elem != nil {
		x.lru.Remove(e.elem)
		e.elem = nil
	}
	return e
}

// evict removes least recently used cached entries until cached bytes are
// within quota (<0: unlimited) and returns them. It skips entries for which
// ok returns false (the block just written, or one in use right now), so
// the quota can stay exceeded until a later call.
func (x *index) evict(quota int64, ok func(*entry) bool) []*entry {
	if quota < 0 {
		return nil
	}
	var out []*entry
	for el := x.lru.Back(); el != nil && x.stats.CachedBytes > quota; {
		prev := el.Prev()
		e := el.Value.(*entry)
		if ok(e) {
			x.remove(e.hash)
			out = append(out, e)
		}
		el = prev
	}
	return out
}

func (x *index) account(e *entry, sign int64) {
	switch e.res {
	case Pinned:
		x.stats.PinnedBlocks += sign
		x.stats.PinnedBytes += sign * e.size
	case Cached:
		x.stats.CachedBlocks += sign
		x.stats.CachedBytes += sign * e.size
	}
}

func (e *entry) info() Info {
	return Info{Hash: e.hash, Size: e.size, Residency: e.res, LastUsed: e.lastUsed}
}

// putResidency returns the residency a Put asks for: the zero value means
// Cached, as documented on PutOptions.
func putResidency(opts PutOptions) (Residency, error) {
	if opts.Residency == 0 {
		return Cached, nil
	}
	return opts.Residency, checkResidency(opts.Residency)
}

func checkResidency(r Residency) error {
	if r != Cached && r != Pinned {
		return fmt.Errorf("invalid residency %v", r)
	}
	return nil
}

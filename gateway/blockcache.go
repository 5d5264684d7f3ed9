package gateway

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
)

// DefaultBlockCacheBytes is the memory the block endpoint keeps for hot
// blocks when Config.BlockCacheBytes is 0.
const DefaultBlockCacheBytes = 64 << 20

// blockCacheMaxShare: a block over 1/blockCacheMaxShare of the cache is
// not admitted, so a few large blocks cannot flush everything else.
const blockCacheMaxShare = 8

// blockCacheMaxAge is how long a cached block is served before it is
// read from the store again. It matches the disk store's default
// TouchInterval, so a block that stays hot here still counts as used in
// the store's LRU order (and is not evicted from disk for looking idle);
// and a block found corrupt on disk, or deleted by gritsd gc, stops being
// served within this time.
const blockCacheMaxAge = blockstore.DefaultTouchInterval

// blockCache keeps recently served blocks in memory, bounded by bytes,
// so that a hot block costs neither a file read nor a re-hash per GET.
//
// It only ever holds bytes that Config.Store returned from Get, which by
// tree.Getter's contract hashed to their name when they were read: the
// cache is filled by getBlock after a successful Get and nowhere else,
// so it can never hold bytes that were not verified. An entry older than
// blockCacheMaxAge is a miss: the store reads and verifies the block
// again and the new entry replaces it.
//
// Eviction is CLOCK (second chance): a hit only sets a flag under the
// read lock, which keeps hits cheap and concurrent; an insert sweeps the
// ring, clearing flags, until it finds room. The cached slices are
// shared by concurrent requests and must never be written to.
type blockCache struct {
	max    int64
	maxAge time.Duration

	mu   sync.RWMutex
	used int64
	m    map[blockstore.Hash]*cachedBlock
	hand *cachedBlock // next eviction candidate; nil when empty
}

// cachedBlock is one verified block and what the block endpoint derives
// from it once instead of per request.
type cachedBlock struct {
	hash         blockstore.Hash
	data         []byte
	etag         []string // the identity ETag header value, ready to assign
	length       []string // the identity Content-Length header value
	compressible bool     // proto.Compressible(data)
	loaded       time.Time

	ref        atomic.Bool // used since the hand last passed
	prev, next *cachedBlock
}

func newBlockCache(maxBytes int64) *blockCache {
	return &blockCache{max: maxBytes, maxAge: blockCacheMaxAge, m: map[blockstore.Hash]*cachedBlock{}}
}

// newCachedBlock derives the per-block values from verified data.
func newCachedBlock(h blockstore.Hash, data []byte, now time.Time) *cachedBlock {
	return &cachedBlock{
		hash:         h,
		loaded:       now,
		data:         data,
		etag:         []string{blockETag(h, "")},
		length:       []string{strconv.Itoa(len(data))},
		compressible: proto.Compressible(data),
	}
}

// get returns the cached block, or nil if it is absent or too old at now.
func (c *blockCache) get(h blockstore.Hash, now time.Time) *cachedBlock {
	c.mu.RLock()
	b := c.m[h]
	c.mu.RUnlock()
	if b == nil || now.Sub(b.loaded) >= c.maxAge {
		return nil
	}
	if !b.ref.Load() {
		b.ref.Store(true) // a plain store would dirty the line on every hit
	}
	return b
}

// add caches b unless it is too large, evicting as needed, and returns
// the cached entry: b, or an entry for the same block loaded no earlier
// (a concurrent miss got there first). An older entry is replaced.
func (c *blockCache) add(b *cachedBlock) *cachedBlock {
	h := b.hash
	size := int64(len(b.data))
	if size > c.max/blockCacheMaxShare {
		return b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[h]; old != nil {
		if !old.loaded.Before(b.loaded) {
			return old
		}
		c.unlink(old)
		delete(c.m, h)
	}
	for c.used+size > c.max && c.hand != nil {
		v := c.hand
		if v.ref.Load() {
			v.ref.Store(false)
			c.hand = v.next
			continue
		}
		c.unlink(v)
		delete(c.m, v.hash)
	}
	// Insert just behind the hand: the newest block is the last the hand
	// reaches.
	if c.hand == nil {
		b.prev, b.next = b, b
		c.hand = b
	} else {
		b.next, b.prev = c.hand, c.hand.prev
		b.prev.next, c.hand.prev = b, b
	}
	c.m[h] = b
	c.used += size
	return b
}

// unlink takes v out of the ring and its bytes out of the count; the
// caller deletes its map entry. c.mu must be held.
func (c *blockCache) unlink(v *cachedBlock) {
	if v.next == v {
		c.hand = nil
	} else {
		v.prev.next, v.next.prev = v.next, v.prev
		if c.hand == v {
			c.hand = v.next
		}
	}
	v.prev, v.next = nil, nil
	c.used -= int64(len(v.data))
}

// stats reports the blocks and bytes held.
func (c *blockCache) stats() (blocks int, bytes int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m), c.used
}

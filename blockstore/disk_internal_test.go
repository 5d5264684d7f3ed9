package blockstore

import (
	"testing"
	"time"
)

// The durability bookkeeping cannot be observed without crashing the
// machine, so check it from inside: deferred writes are remembered until a
// Sync, and a non-deferred Put of such a block syncs it itself.
func TestDiskUnsyncedBookkeeping(t *testing.T) {
	ctx := t.Context()
	d, err := OpenDisk(ctx, t.TempDir(), DiskConfig{Quota: -1})
	if err != nil {
		t.Fatal(err)
	}
	unsynced := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.unsynced)
	}
	blocks := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	for _, b := range blocks {
		if _, err := d.Put(ctx, b, PutOptions{Deferred: true}); err != nil {
			t.Fatal(err)
		}
	}
	if n := unsynced(); n != 3 {
		t.Fatalf("%d unsynced blocks after 3 deferred puts, want 3", n)
	}
	// A deferred promotion is a rename that must be synced too.
	if _, err := d.Put(ctx, []byte("d"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, []byte("d"), PutOptions{Residency: Pinned, Deferred: true}); err != nil {
		t.Fatal(err)
	}
	if n := unsynced(); n != 4 {
		t.Fatalf("%d unsynced blocks after a deferred promotion, want 4", n)
	}
	if _, err := d.Put(ctx, blocks[0], PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetResidency(ctx, Sum(blocks[1]), Pinned); err != nil {
		t.Fatal(err)
	}
	if n := unsynced(); n != 2 {
		t.Fatalf("%d unsynced blocks after a synced Put and a SetResidency, want 2", n)
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := unsynced(); n != 0 {
		t.Fatalf("%d unsynced blocks after Sync, want 0", n)
	}
}

// An entry for every cached block, and the counters match the entries.
func checkIndex(t *testing.T, x *index) {
	t.Helper()
	var s Stats
	for _, e := range x.entries {
		switch e.res {
		case Pinned:
			s.PinnedBlocks++
			s.PinnedBytes += e.size
			if e.elem != nil {
				t.Errorf("pinned %s is in the LRU list", e.hash.Short())
			}
		case Cached:
			s.CachedBlocks++
			s.CachedBytes += e.size
			if e.elem == nil || e.elem.Value.(*entry) != e {
				t.Errorf("cached %s is not in the LRU list", e.hash.Short())
			}
		}
	}
	if int64(x.lru.Len()) != s.CachedBlocks {
		t.Errorf("LRU list has %d entries, want %d", x.lru.Len(), s.CachedBlocks)
	}
	if s != x.stats {
		t.Errorf("index counters %+v, entries add up to %+v", x.stats, s)
	}
}

func TestIndex(t *testing.T) {
	x := newIndex()
	var hs []Hash
	for i := range 6 {
		h := Sum([]byte{byte(i)})
		hs = append(hs, h)
		r := Cached
		if i%3 == 0 {
			r = Pinned
		}
		x.add(h, int64(100*(i+1)), r, timeAt(i))
	}
	checkIndex(t, &x)
	x.setResidency(x.get(hs[0]), Cached)
	x.setResidency(x.get(hs[1]), Pinned)
	x.update(hs[2], 50, Cached, timeAt(10)) // shrank on disk
	x.remove(hs[4])
	x.remove(hs[4])
	checkIndex(t, &x)

	// Cached now, least recently used first: 0 (unpinned), 2, 5.
	victims := x.evict(0, func(e *entry) bool { return e.hash != hs[5] })
	if len(victims) != 2 || victims[0].hash != hs[0] || victims[1].hash != hs[2] {
		t.Errorf("evict chose %v", victims)
	}
	checkIndex(t, &x)
	if x.stats.CachedBlocks != 1 || x.get(hs[5]) == nil {
		t.Errorf("after evict: %+v", x.stats)
	}
}

func timeAt(minute int) time.Time {
	return time.Date(2025, 1, 1, 0, minute, 0, 0, time.UTC)
}

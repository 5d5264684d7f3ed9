package storetest

import (
	"strconv"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// Tests of quota, eviction order and residency changes. Blocks are
// blockSize bytes; letters in comments name them in the order put.

const (
	cached = blockstore.Cached
	pinned = blockstore.Pinned
)

func testEviction(t *testing.T, open Opener) {
	t.Run("least recently used goes first", func(t *testing.T) {
		s := open(t, 3*blockSize)
		hs := put(t, s, cached, 1, 2, 3) // a b c
		mustGet(t, s, hs[0])             // a is now the most recently used
		hs = append(hs, put(t, s, cached, 4)...)
		wantPresent(t, s, "abcd", hs, true, false, true, true)
		hs = append(hs, put(t, s, cached, 5)...)
		wantPresent(t, s, "abcde", hs, true, false, false, true, true)
		wantStats(t, s, blockstore.Stats{CachedBlocks: 3, CachedBytes: 3 * blockSize, Quota: 3 * blockSize})
	})
	t.Run("put again counts as use", func(t *testing.T) {
		s := open(t, 3*blockSize)
		hs := put(t, s, cached, 1, 2, 3)
		put(t, s, cached, 1)
		hs = append(hs, put(t, s, cached, 4)...)
		wantPresent(t, s, "abcd", hs, true, false, true, true)
	})
	t.Run("has and stat do not count as use", func(t *testing.T) {
		s := open(t, 2*blockSize)
		hs := put(t, s, cached, 1, 2)
		has(t, s, hs[0])
		wantResidency(t, s, hs[0], cached)
		hs = append(hs, put(t, s, cached, 3)...)
		wantPresent(t, s, "abc", hs, false, true, true)
	})
	t.Run("pinned never evicted", func(t *testing.T) {
		s := open(t, 2*blockSize)
		ps := put(t, s, pinned, 1, 2, 3, 4)
		cs := put(t, s, cached, 5, 6, 7, 8, 9, 10)
		wantPresent(t, s, "abcd", ps, true, true, true, true)
		wantPresent(t, s, "efghij", cs, false, false, false, false, true, true)
		wantStats(t, s, blockstore.Stats{
			PinnedBlocks: 4, PinnedBytes: 4 * blockSize,
			CachedBlocks: 2, CachedBytes: 2 * blockSize,
			Quota: 2 * blockSize,
		})
	})
	// The block just put stays even if it alone exceeds the quota:
	// otherwise Put would succeed and store nothing.
	for _, quota := range []int64{0, blockSize / 2} {
		t.Run("newest kept over quota "+strconv.FormatInt(quota, 10), func(t *testing.T) {
			s := open(t, quota)
			hs := put(t, s, cached, 1)
			wantPresent(t, s, "a", hs, true)
			if got := mustGet(t, s, hs[0]); len(got) != blockSize {
				t.Fatalf("Get returned %d bytes, want %d", len(got), blockSize)
			}
			hs = append(hs, put(t, s, cached, 2)...)
			wantPresent(t, s, "ab", hs, false, true)
			wantStats(t, s, blockstore.Stats{CachedBlocks: 1, CachedBytes: blockSize, Quota: quota})
		})
	}
	t.Run("unlimited", func(t *testing.T) {
		s := open(t, -1)
		seeds := make([]uint64, 50)
		for i := range seeds {
			seeds[i] = uint64(i + 1)
		}
		hs := put(t, s, cached, seeds...)
		for i, h := range hs {
			if !has(t, s, h) {
				t.Errorf("block %d evicted with unlimited quota", i)
			}
		}
		wantStats(t, s, blockstore.Stats{CachedBlocks: 50, CachedBytes: 50 * blockSize, Quota: -1})
	})
}

func testResidency(t *testing.T, open Opener) {
	ctx := t.Context()
	promotions := []struct {
		name string
		pin  func(t *testing.T, s blockstore.Store, h blockstore.Hash, data []byte)
	}{
		{"put pinned", func(t *testing.T, s blockstore.Store, h blockstore.Hash, data []byte) {
			mustPut(t, s, data, blockstore.PutOptions{Residency: pinned})
		}},
		{"set residency", func(t *testing.T, s blockstore.Store, h blockstore.Hash, data []byte) {
			if err := s.SetResidency(ctx, h, pinned); err != nil {
				t.Fatalf("SetResidency: %v", err)
			}
		}},
	}
	for _, tc := range promotions {
		t.Run("promote by "+tc.name, func(t *testing.T) {
			s := open(t, 2*blockSize)
			a := put(t, s, cached, 1)[0]
			tc.pin(t, s, a, Block(1, blockSize))
			wantResidency(t, s, a, pinned)
			wantStats(t, s, blockstore.Stats{PinnedBlocks: 1, PinnedBytes: blockSize, Quota: 2 * blockSize})
			put(t, s, cached, 2, 3, 4, 5)
			wantPresent(t, s, "a", []blockstore.Hash{a}, true)
			wantResidency(t, s, a, pinned)
		})
	}
	t.Run("put cached never demotes", func(t *testing.T) {
		s := open(t, blockSize)
		a := put(t, s, pinned, 1)[0]
		put(t, s, cached, 1)
		wantResidency(t, s, a, pinned)
		put(t, s, cached, 2, 3)
		wantPresent(t, s, "a", []blockstore.Hash{a}, true)
	})
	t.Run("pin twice", func(t *testing.T) {
		s := open(t, -1)
		a := put(t, s, pinned, 1)[0]
		if err := s.SetResidency(ctx, a, pinned); err != nil {
			t.Fatalf("SetResidency: %v", err)
		}
		wantResidency(t, s, a, pinned)
		wantStats(t, s, blockstore.Stats{PinnedBlocks: 1, PinnedBytes: blockSize, Quota: -1})
	})
	// An unpinned block becomes the least recently used cached block, so
	// it is evicted before blocks that were in use while it was pinned.
	t.Run("unpin then evict", func(t *testing.T) {
		s := open(t, 2*blockSize)
		hs := put(t, s, cached, 1, 2) // a b
		p := put(t, s, pinned, 3)[0]  // c, used after a and b
		wantStats(t, s, blockstore.Stats{
			PinnedBlocks: 1, PinnedBytes: blockSize,
			CachedBlocks: 2, CachedBytes: 2 * blockSize,
			Quota: 2 * blockSize,
		})
		if err := s.SetResidency(ctx, p, cached); err != nil {
			t.Fatalf("SetResidency: %v", err)
		}
		wantPresent(t, s, "abc", append(hs, p), true, true, false)
		wantStats(t, s, blockstore.Stats{CachedBlocks: 2, CachedBytes: 2 * blockSize, Quota: 2 * blockSize})
	})
	t.Run("unpinned block is evictable", func(t *testing.T) {
		s := open(t, 2*blockSize)
		p := put(t, s, pinned, 1)[0]
		if err := s.SetResidency(ctx, p, cached); err != nil {
			t.Fatalf("SetResidency: %v", err)
		}
		wantResidency(t, s, p, cached)
		put(t, s, cached, 2, 3)
		wantPresent(t, s, "a", []blockstore.Hash{p}, false)
	})
}

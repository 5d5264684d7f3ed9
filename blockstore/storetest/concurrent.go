package storetest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// Concurrency tests. They find most of their bugs under -race; what they
// assert on their own is that no operation fails or returns wrong bytes
// while others run, and that the store is consistent afterwards.

const goroutines = 16

func testConcurrent(t *testing.T, open Opener) {
	t.Run("same blocks", func(t *testing.T) { testConcurrentSame(t, open) })
	t.Run("mixed", func(t *testing.T) { testConcurrentMixed(t, open) })
}

// testConcurrentSame has every goroutine store and read the same blocks,
// the case deduplication makes common.
func testConcurrentSame(t *testing.T, open Opener) {
	s := open(t, -1)
	const n = 8
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for _, i := range rng.Perm(n) {
				res := cached
				if i%2 == 0 {
					res = pinned
				}
				data := Block(uint64(i), 20000)
				h, err := s.Put(t.Context(), data, blockstore.PutOptions{Residency: res})
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				got, err := s.Get(t.Context(), h)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("Get(%s) after Put: %d bytes, err %v", h.Short(), len(got), err)
				}
			}
		})
	}
	wg.Wait()
	wantStats(t, s, blockstore.Stats{
		PinnedBlocks: n / 2, PinnedBytes: n / 2 * 20000,
		CachedBlocks: n / 2, CachedBytes: n / 2 * 20000,
		Quota: -1,
	})
}

// testConcurrentMixed runs random operations on an overlapping set of
// blocks, with a quota small enough that eviction runs all the time.
func testConcurrentMixed(t *testing.T, open Opener) {
	const (
		quota  = 10 * blockSize
		fixed  = 5  // blocks pinned up front and never unpinned
		shared = 40 // blocks everything else is done to
		ops    = 200
	)
	s := open(t, quota)
	keep := put(t, s, pinned, seq(1000, fixed)...)

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range ops {
				seed := uint64(rng.IntN(shared))
				data := Block(seed, blockSize)
				h := blockstore.Sum(data)
				if rng.IntN(10) == 0 {
					// Touch a fixed block: reads and cached puts must
					// neither fail nor unpin it.
					seed = 1000 + uint64(rng.IntN(fixed))
					data, h = Block(seed, blockSize), keep[seed-1000]
				}
				var err error
				switch op := rng.IntN(100); {
				case op < 30:
					_, err = s.Put(ctx, data, blockstore.PutOptions{Residency: cached, Deferred: op%2 == 0})
				case op < 40 && seed < 1000:
					_, err = s.Put(ctx, data, blockstore.PutOptions{Residency: pinned})
				case op < 70:
					var got []byte
					got, err = s.Get(ctx, h)
					if err == nil && !bytes.Equal(got, data) {
						t.Errorf("Get(%s) returned wrong bytes", h.Short())
					}
				case op < 80:
					var info blockstore.Info
					info, err = s.Stat(ctx, h)
					if err == nil && (info.Size != blockSize || info.Hash != h) {
						t.Errorf("Stat(%s) = %+v", h.Short(), info)
					}
				case op < 90 && seed < 1000:
					err = s.SetResidency(ctx, h, blockstore.Residency(1+rng.IntN(2)))
				case op < 97 && seed < 1000:
					err = s.Delete(ctx, h)
				case op < 98:
					err = s.Walk(ctx, func(info blockstore.Info) error {
						if info.Size != blockSize {
							t.Errorf("Walk: %+v", info)
						}
						return nil
					})
				default:
					_, err = s.Has(ctx, h)
				}
				if err != nil && !errors.Is(err, blockstore.ErrNotFound) {
					t.Errorf("%v", err)
				}
			}
		})
	}
	wg.Wait()

	for i, h := range keep {
		wantPresent(t, s, "v", []blockstore.Hash{h}, true)
		wantResidency(t, s, h, pinned)
		if got := mustGet(t, s, h); !bytes.Equal(got, Block(1000+uint64(i), blockSize)) {
			t.Errorf("fixed block %d: wrong bytes", i)
		}
	}

	// Quiet again, the accounting must match what is there, and the quota
	// must hold after the next Put.
	put(t, s, cached, 5000)
	var walked blockstore.Stats
	err := s.Walk(t.Context(), func(info blockstore.Info) error {
		if _, err := s.Get(t.Context(), info.Hash); err != nil {
			t.Errorf("Get of walked block: %v", err)
		}
		if info.Residency == pinned {
			walked.PinnedBlocks++
			walked.PinnedBytes += info.Size
		} else {
			walked.CachedBlocks++
			walked.CachedBytes += info.Size
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	walked.Quota = quota
	wantStats(t, s, walked)
	if walked.CachedBytes > quota {
		t.Errorf("cached bytes %d exceed quota %d", walked.CachedBytes, quota)
	}
}

// seq returns n seeds from first on.
func seq(first uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

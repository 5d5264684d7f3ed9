// Package storetest is the conformance suite for blockstore.Store: every
// implementation runs the same tests, so they all keep the same promises
// (verification, residency, quota and LRU eviction, concurrency).
package storetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// Opener returns a new, empty store keeping at most quota bytes of cached
// blocks (<0: unlimited). It registers any cleanup with t.
type Opener func(t *testing.T, quota int64) blockstore.Store

// Options adapts the suite to a store.
type Options struct {
	// Corrupt damages the stored copy of h the way failing storage would
	// (flipping a bit, say), without telling s. Nil skips the tests of
	// corrupt-block handling.
	Corrupt func(t *testing.T, s blockstore.Store, h blockstore.Hash)
}

// Run runs the whole suite against stores made by open, each test with a
// fresh store.
func Run(t *testing.T, open Opener, opts Options) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open) })
	t.Run("IdempotentPut", func(t *testing.T) { testIdempotentPut(t, open) })
	t.Run("TooLarge", func(t *testing.T) { testTooLarge(t, open) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, open) })
	t.Run("PutExpect", func(t *testing.T) { testPutExpect(t, open) })
	t.Run("InvalidResidency", func(t *testing.T) { testInvalidResidency(t, open) })
	t.Run("Eviction", func(t *testing.T) { testEviction(t, open) })
	t.Run("Residency", func(t *testing.T) { testResidency(t, open) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open) })
	t.Run("Walk", func(t *testing.T) { testWalk(t, open) })
	t.Run("Stats", func(t *testing.T) { testStats(t, open) })
	t.Run("Sync", func(t *testing.T) { testSync(t, open) })
	t.Run("NoAliasing", func(t *testing.T) { testNoAliasing(t, open) })
	t.Run("ContextCancelled", func(t *testing.T) { testContextCancelled(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("Corrupt", func(t *testing.T) {
		if opts.Corrupt == nil {
			t.Skip("no Options.Corrupt for this store")
		}
		testCorrupt(t, open, opts.Corrupt)
	})
}

// Block returns size pseudo-random bytes determined by seed: different
// seeds give different blocks, the same seed the same block.
func Block(seed uint64, size int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(size))
	b := make([]byte, size)
	rand.NewChaCha8(key).Read(b)
	return b
}

// blockSize is the size of the blocks the quota tests use; quotas are
// multiples of it.
const blockSize = 1000

func testRoundTrip(t *testing.T, open Opener) {
	sizes := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"small", 1000},
		{"odd", 64<<10 + 1},
		{"max size", blockstore.MaxBlockSize},
	}
	for _, res := range []blockstore.Residency{blockstore.Cached, blockstore.Pinned} {
		for _, tc := range sizes {
			t.Run(tc.name+"/"+res.String(), func(t *testing.T) {
				ctx := t.Context()
				s := open(t, -1)
				data := Block(uint64(tc.size), tc.size)
				h := mustPut(t, s, data, blockstore.PutOptions{Residency: res})
				if want := blockstore.Sum(data); h != want {
					t.Fatalf("Put returned %s, want %s", h, want)
				}
				if got := mustGet(t, s, h); !bytes.Equal(got, data) {
					t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
				}
				if !has(t, s, h) {
					t.Error("Has = false after Put")
				}
				info, err := s.Stat(ctx, h)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if info.Hash != h || info.Size != int64(tc.size) || info.Residency != res {
					t.Errorf("Stat = {%s %d %v}, want {%s %d %v}", info.Hash.Short(), info.Size, info.Residency, h.Short(), tc.size, res)
				}
				if info.LastUsed.IsZero() {
					t.Error("Stat: LastUsed is zero for a block just used")
				}
			})
		}
	}
}

func testIdempotentPut(t *testing.T, open Opener) {
	s := open(t, -1)
	data := Block(1, 5000)
	for i := range 3 {
		if h := mustPut(t, s, data, blockstore.PutOptions{}); h != blockstore.Sum(data) {
			t.Fatalf("Put #%d returned %s", i+1, h)
		}
	}
	wantStats(t, s, blockstore.Stats{CachedBlocks: 1, CachedBytes: 5000, Quota: -1})
	if got := mustGet(t, s, blockstore.Sum(data)); !bytes.Equal(got, data) {
		t.Fatal("Get after repeated Put returned different bytes")
	}
}

func testTooLarge(t *testing.T, open Opener) {
	ctx := t.Context()
	s := open(t, -1)
	data := make([]byte, blockstore.MaxBlockSize+1)
	h := blockstore.Sum(data)
	_, err := s.Put(ctx, data, blockstore.PutOptions{Residency: blockstore.Pinned})
	if !errors.Is(err, blockstore.ErrTooLarge) {
		t.Fatalf("Put of %d bytes: err = %v, want ErrTooLarge", len(data), err)
	}
	for _, want := range []string{strconv.Itoa(len(data)), strconv.Itoa(blockstore.MaxBlockSize)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if err := blockstore.PutExpect(ctx, s, h, data, blockstore.PutOptions{}); !errors.Is(err, blockstore.ErrTooLarge) {
		t.Errorf("PutExpect of %d bytes: err = %v, want ErrTooLarge", len(data), err)
	}
	if has(t, s, h) {
		t.Error("oversized block stored")
	}
	wantStats(t, s, blockstore.Stats{Quota: -1})
}

func testMissing(t *testing.T, open Opener) {
	ctx := t.Context()
	s := open(t, -1)
	h := blockstore.Sum([]byte("never stored"))
	if _, err := s.Get(ctx, h); !errors.Is(err, blockstore.ErrNotFound) {
		t.Errorf("Get: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, h); !errors.Is(err, blockstore.ErrNotFound) {
		t.Errorf("Stat: err = %v, want ErrNotFound", err)
	}
	if has(t, s, h) {
		t.Error("Has = true")
	}
	for _, r := range []blockstore.Residency{blockstore.Cached, blockstore.Pinned} {
		if err := s.SetResidency(ctx, h, r); !errors.Is(err, blockstore.ErrNotFound) {
			t.Errorf("SetResidency(%v): err = %v, want ErrNotFound", r, err)
		}
	}
	if err := s.Delete(ctx, h); err != nil {
		t.Errorf("Delete: %v, want nil", err)
	}
	wantStats(t, s, blockstore.Stats{Quota: -1})
}

func testPutExpect(t *testing.T, open Opener) {
	data := Block(2, 3000)
	other := Block(3, 3000)
	tests := []struct {
		name    string
		want    blockstore.Hash
		wantErr error
	}{
		{"matching hash", blockstore.Sum(data), nil},
		{"wrong hash", blockstore.Sum(other), blockstore.ErrHashMismatch},
		{"zero hash", blockstore.Hash{}, blockstore.ErrHashMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, -1)
			err := blockstore.PutExpect(t.Context(), s, tc.want, data, blockstore.PutOptions{})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("PutExpect: err = %v, want %v", err, tc.wantErr)
			}
			stored := has(t, s, blockstore.Sum(data))
			if stored != (tc.wantErr == nil) {
				t.Errorf("block stored = %v after err = %v", stored, err)
			}
			if tc.wantErr != nil && has(t, s, tc.want) {
				t.Error("something stored under the expected hash")
			}
		})
	}
}

func testInvalidResidency(t *testing.T, open Opener) {
	ctx := t.Context()
	s := open(t, -1)
	data := Block(4, 100)
	if _, err := s.Put(ctx, data, blockstore.PutOptions{Residency: 7}); err == nil {
		t.Error("Put with Residency(7) succeeded")
	}
	if has(t, s, blockstore.Sum(data)) {
		t.Error("Put with Residency(7) stored the block")
	}
	h := mustPut(t, s, data, blockstore.PutOptions{Residency: blockstore.Pinned})
	for _, r := range []blockstore.Residency{0, 7} {
		if err := s.SetResidency(ctx, h, r); err == nil {
			t.Errorf("SetResidency(%v) succeeded", r)
		}
	}
	wantResidency(t, s, h, blockstore.Pinned)
}

// put stores blocks of blockSize bytes made from seeds, in order.
func put(t *testing.T, s blockstore.Store, r blockstore.Residency, seeds ...uint64) []blockstore.Hash {
	t.Helper()
	var hs []blockstore.Hash
	for _, seed := range seeds {
		hs = append(hs, mustPut(t, s, Block(seed, blockSize), blockstore.PutOptions{Residency: r}))
	}
	return hs
}

func mustPut(t *testing.T, s blockstore.Store, data []byte, opts blockstore.PutOptions) blockstore.Hash {
	t.Helper()
	h, err := s.Put(t.Context(), data, opts)
	if err != nil {
		t.Fatalf("Put(%d bytes, %+v): %v", len(data), opts, err)
	}
	return h
}

func mustGet(t *testing.T, s blockstore.Store, h blockstore.Hash) []byte {
	t.Helper()
	data, err := s.Get(t.Context(), h)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return data
}

func has(t *testing.T, s blockstore.Store, h blockstore.Hash) bool {
	t.Helper()
	ok, err := s.Has(t.Context(), h)
	if err != nil {
		t.Fatalf("Has(%s): %v", h.Short(), err)
	}
	return ok
}

// wantPresent checks which blocks are stored; names label them in errors.
func wantPresent(t *testing.T, s blockstore.Store, names string, hs []blockstore.Hash, want ...bool) {
	t.Helper()
	for i, h := range hs {
		if got := has(t, s, h); got != want[i] {
			t.Errorf("block %c: stored = %v, want %v", names[i], got, want[i])
		}
	}
}

func wantResidency(t *testing.T, s blockstore.Store, h blockstore.Hash, want blockstore.Residency) {
	t.Helper()
	info, err := s.Stat(t.Context(), h)
	if err != nil {
		t.Fatalf("Stat(%s): %v", h.Short(), err)
	}
	if info.Residency != want {
		t.Errorf("Stat(%s).Residency = %v, want %v", h.Short(), info.Residency, want)
	}
}

func wantStats(t *testing.T, s blockstore.Store, want blockstore.Stats) {
	t.Helper()
	got, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

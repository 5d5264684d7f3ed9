package blockstore_test

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/blockstore/storetest"
)

// TestDiskShared opens two Disks on one directory, as two processes would,
// and hammers both. Their in-process locks are separate, so only the file
// system's atomic renames keep them consistent. Afterwards: pinned blocks
// are intact, nothing is half-written, no block is in both trees, and a
// fresh Disk reads back everything that is there.
func TestDiskShared(t *testing.T) {
	const (
		size   = 2000
		fixed  = 6  // pinned through one store, never unpinned
		shared = 30 // everything else
		ops    = 300
	)
	dir := t.TempDir()
	stores := []*blockstore.Disk{
		openDisk(t, dir, blockstore.DiskConfig{Quota: 8 * size}),
		openDisk(t, dir, blockstore.DiskConfig{Quota: 8 * size}),
	}
	var keep []blockstore.Hash
	for i := range fixed {
		h, err := stores[i%2].Put(t.Context(), storetest.Block(1000+uint64(i), size), blockstore.PutOptions{Residency: blockstore.Pinned})
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, h)
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for range ops {
				s := stores[rng.IntN(2)]
				seed := uint64(rng.IntN(shared))
				if rng.IntN(8) == 0 {
					seed = 1000 + uint64(rng.IntN(fixed))
				}
				data := storetest.Block(seed, size)
				h := blockstore.Sum(data)
				mutable := seed < 1000
				var err error
				switch op := rng.IntN(10); {
				case op < 3:
					_, err = s.Put(ctx, data, blockstore.PutOptions{Deferred: op == 0})
				case op < 4:
					_, err = s.Put(ctx, data, blockstore.PutOptions{Residency: blockstore.Pinned})
				case op < 7:
					var got []byte
					if got, err = s.Get(ctx, h); err == nil && !bytes.Equal(got, data) {
						t.Errorf("Get(%s) returned wrong bytes", h.Short())
					}
				case op < 8 && mutable:
					err = s.SetResidency(ctx, h, blockstore.Residency(1+rng.IntN(2)))
				case op < 9 && mutable:
					err = s.Delete(ctx, h)
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

	for _, s := range stores {
		for i, h := range keep {
			if info, err := s.Stat(t.Context(), h); err != nil || info.Residency != blockstore.Pinned {
				t.Errorf("fixed block %d: Stat = %+v, %v; want pinned", i, info, err)
			}
		}
	}
	if tmp, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(tmp) != 0 {
		t.Errorf("tmp/ holds %d entries (%v) after all puts returned", len(tmp), err)
	}
	if corrupt, err := os.ReadDir(filepath.Join(dir, "corrupt")); err != nil || len(corrupt) != 0 {
		t.Errorf("corrupt/ holds %d entries (%v): a race was mistaken for corruption", len(corrupt), err)
	}
	cachedFiles, err := filepath.Glob(filepath.Join(dir, "cached", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range cachedFiles {
		twin := filepath.Join(dir, "pinned", filepath.Base(filepath.Dir(p)), filepath.Base(p))
		if _, err := os.Stat(twin); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is both cached and pinned", filepath.Base(p))
		}
	}

	fresh := openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	n := 0
	err = fresh.Walk(t.Context(), func(info blockstore.Info) error {
		n++
		_, err := fresh.Get(t.Context(), info.Hash)
		return err
	})
	if err != nil {
		t.Fatalf("reading back every block: %v", err)
	}
	if n < fixed {
		t.Errorf("only %d blocks stored, want at least the %d fixed ones", n, fixed)
	}
}

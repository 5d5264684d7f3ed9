package storetest

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

func testDelete(t *testing.T, open Opener) {
	for _, res := range []blockstore.Residency{cached, pinned} {
		t.Run(res.String(), func(t *testing.T) {
			ctx := t.Context()
			s := open(t, -1)
			hs := put(t, s, res, 1, 2)
			for range 2 { // the second time the block is missing
				if err := s.Delete(ctx, hs[0]); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			}
			wantPresent(t, s, "ab", hs, false, true)
			if _, err := s.Get(ctx, hs[0]); !errors.Is(err, blockstore.ErrNotFound) {
				t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
			}
			want := blockstore.Stats{Quota: -1}
			if res == pinned {
				want.PinnedBlocks, want.PinnedBytes = 1, blockSize
			} else {
				want.CachedBlocks, want.CachedBytes = 1, blockSize
			}
			wantStats(t, s, want)

			put(t, s, res, 1)
			if got := mustGet(t, s, hs[0]); !bytes.Equal(got, Block(1, blockSize)) {
				t.Error("Get after Delete and Put returned wrong bytes")
			}
		})
	}
}

func testWalk(t *testing.T, open Opener) {
	ctx := t.Context()
	s := open(t, -1)
	want := make(map[blockstore.Hash]blockstore.Info)
	for i, size := range []int{0, 1, 100, 4096, 70000, blockstore.MaxBlockSize} {
		for _, res := range []blockstore.Residency{cached, pinned} {
			data := Block(uint64(10*i)+uint64(res), size)
			h := mustPut(t, s, data, blockstore.PutOptions{Residency: res})
			want[h] = blockstore.Info{Hash: h, Size: int64(size), Residency: res}
		}
	}
	got := make(map[blockstore.Hash]blockstore.Info)
	err := s.Walk(ctx, func(info blockstore.Info) error {
		if _, dup := got[info.Hash]; dup {
			t.Errorf("Walk visited %s twice", info.Hash.Short())
		}
		if info.LastUsed.IsZero() {
			t.Errorf("Walk: %s has zero LastUsed", info.Hash.Short())
		}
		info.LastUsed = want[info.Hash].LastUsed
		got[info.Hash] = info
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	for h, w := range want {
		if g, ok := got[h]; !ok {
			t.Errorf("Walk missed %s", h.Short())
		} else if g != w {
			t.Errorf("Walk: %+v, want %+v", g, w)
		}
	}
	for h := range got {
		if _, ok := want[h]; !ok {
			t.Errorf("Walk reported %s, never stored", h.Short())
		}
	}

	t.Run("error stops walk", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := s.Walk(ctx, func(blockstore.Info) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Walk: err = %v after %d calls, want %v after 1", err, calls, stop)
		}
	})
	// fn may call back into the store, so the store must not hold a lock
	// across the call.
	t.Run("delete during walk", func(t *testing.T) {
		err := s.Walk(ctx, func(info blockstore.Info) error {
			return s.Delete(ctx, info.Hash)
		})
		if err != nil {
			t.Fatalf("Walk: %v", err)
		}
		wantStats(t, s, blockstore.Stats{Quota: -1})
		if err := s.Walk(ctx, func(info blockstore.Info) error {
			t.Errorf("Walk after deleting everything visited %s", info.Hash.Short())
			return nil
		}); err != nil {
			t.Fatalf("Walk: %v", err)
		}
	})
}

func testStats(t *testing.T, open Opener) {
	ctx := t.Context()
	s := open(t, 10*blockSize)
	wantStats(t, s, blockstore.Stats{Quota: 10 * blockSize})
	mustPut(t, s, Block(1, 100), blockstore.PutOptions{Residency: pinned})
	mustPut(t, s, Block(2, 200), blockstore.PutOptions{Residency: pinned})
	c := mustPut(t, s, Block(3, 300), blockstore.PutOptions{})
	mustPut(t, s, Block(4, 400), blockstore.PutOptions{Residency: cached})
	wantStats(t, s, blockstore.Stats{
		PinnedBlocks: 2, PinnedBytes: 300,
		CachedBlocks: 2, CachedBytes: 700,
		Quota: 10 * blockSize,
	})
	if err := s.SetResidency(ctx, c, pinned); err != nil {
		t.Fatalf("SetResidency: %v", err)
	}
	wantStats(t, s, blockstore.Stats{
		PinnedBlocks: 3, PinnedBytes: 600,
		CachedBlocks: 1, CachedBytes: 400,
		Quota: 10 * blockSize,
	})
	if err := s.Delete(ctx, c); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantStats(t, s, blockstore.Stats{
		PinnedBlocks: 2, PinnedBytes: 300,
		CachedBlocks: 1, CachedBytes: 400,
		Quota: 10 * blockSize,
	})
}

func testSync(t *testing.T, open Opener) {
	s := open(t, -1)
	var hs []blockstore.Hash
	for i := range 20 {
		res := cached
		if i%2 == 0 {
			res = pinned
		}
		hs = append(hs, mustPut(t, s, Block(uint64(i), 2000), blockstore.PutOptions{Residency: res, Deferred: true}))
	}
	// A non-deferred Put of a block written deferred must still succeed
	// (and, for a store on disk, make it durable itself).
	mustPut(t, s, Block(0, 2000), blockstore.PutOptions{Residency: pinned})
	if err := s.Sync(t.Context()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	for i, h := range hs {
		if got := mustGet(t, s, h); !bytes.Equal(got, Block(uint64(i), 2000)) {
			t.Errorf("block %d: wrong bytes after deferred Put and Sync", i)
		}
	}
	if err := s.Sync(t.Context()); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
}

func testNoAliasing(t *testing.T, open Opener) {
	s := open(t, -1)
	orig := Block(1, 4096)
	data := bytes.Clone(orig)
	h := mustPut(t, s, data, blockstore.PutOptions{})
	data[0] ^= 0xff // the caller reuses its buffer
	got := mustGet(t, s, h)
	if !bytes.Equal(got, orig) {
		t.Fatal("modifying the slice passed to Put changed the stored block")
	}
	got[1] ^= 0xff // the caller scribbles on what Get returned
	if again := mustGet(t, s, h); !bytes.Equal(again, orig) {
		t.Fatal("modifying the slice returned by Get changed the stored block")
	}
}

func testContextCancelled(t *testing.T, open Opener) {
	s := open(t, -1)
	stored := put(t, s, cached, 1)[0]
	data := Block(2, blockSize)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	calls := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := s.Put(ctx, data, blockstore.PutOptions{}); return err }},
		{"Get", func() error { _, err := s.Get(ctx, stored); return err }},
		{"Has", func() error { _, err := s.Has(ctx, stored); return err }},
		{"Stat", func() error { _, err := s.Stat(ctx, stored); return err }},
		{"SetResidency", func() error { return s.SetResidency(ctx, stored, pinned) }},
		{"Delete", func() error { return s.Delete(ctx, stored) }},
		{"Walk", func() error { return s.Walk(ctx, func(blockstore.Info) error { return nil }) }},
		{"Sync", func() error { return s.Sync(ctx) }},
		{"Stats", func() error { _, err := s.Stats(ctx); return err }},
	}
	for _, tc := range calls {
		if err := tc.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", tc.name, err)
		}
	}
	if has(t, s, blockstore.Sum(data)) {
		t.Error("Put with a cancelled context stored the block")
	}
	wantPresent(t, s, "a", []blockstore.Hash{stored}, true)
	wantResidency(t, s, stored, cached)
}

func testCorrupt(t *testing.T, open Opener, corrupt func(*testing.T, blockstore.Store, blockstore.Hash)) {
	for _, res := range []blockstore.Residency{cached, pinned} {
		for _, size := range []int{0, 5000} {
			t.Run(res.String()+"/"+strconv.Itoa(size)+" bytes", func(t *testing.T) {
				ctx := t.Context()
				s := open(t, -1)
				data := Block(1, size)
				h := mustPut(t, s, data, blockstore.PutOptions{Residency: res})
				other := put(t, s, res, 2)[0]
				corrupt(t, s, h)

				_, err := s.Get(ctx, h)
				if !errors.Is(err, blockstore.ErrCorrupt) {
					t.Fatalf("Get of corrupt block: err = %v, want ErrCorrupt", err)
				}
				ce, ok := errors.AsType[*blockstore.CorruptError](err)
				if !ok {
					t.Fatalf("Get of corrupt block: %v is not a *CorruptError", err)
				}
				if ce.Hash != h || ce.Actual == h {
					t.Errorf("CorruptError{Hash: %s, Actual: %s}, want Hash %s and a different Actual", ce.Hash.Short(), ce.Actual.Short(), h.Short())
				}

				// The bad copy is gone for good, and the rest untouched.
				if _, err := s.Get(ctx, h); !errors.Is(err, blockstore.ErrNotFound) {
					t.Errorf("second Get: err = %v, want ErrNotFound", err)
				}
				wantPresent(t, s, "ab", []blockstore.Hash{h, other}, false, true)
				st, err := s.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n := st.PinnedBlocks + st.CachedBlocks; n != 1 {
					t.Errorf("Stats count %d blocks, want 1", n)
				}

				// Fetching the block again heals the store.
				mustPut(t, s, data, blockstore.PutOptions{Residency: res})
				if got := mustGet(t, s, h); !bytes.Equal(got, data) {
					t.Error("Get after re-Put returned wrong bytes")
				}
			})
		}
	}
}

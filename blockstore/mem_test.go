package blockstore_test

import (
	"testing"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/blockstore/storetest"
)

func TestMem(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T, quota int64) blockstore.Store { return blockstore.NewMem(quota) },
		storetest.Options{Corrupt: func(t *testing.T, s blockstore.Store, h blockstore.Hash) {
			if !s.(*blockstore.Mem).CorruptForTest(h) {
				t.Fatalf("CorruptForTest(%s): block not stored", h.Short())
			}
		}})
}

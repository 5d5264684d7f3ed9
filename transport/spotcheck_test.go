package transport

import (
	"errors"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
)

// TestSpotCheck: a peer holding the block passes at any range, one
// without it answers not found, and one sending other bytes, another
// size or another range is a bad peer.
func TestSpotCheck(t *testing.T) {
	ctx := t.Context()
	block := fastRandom(100_000, 7)
	other := fastRandom(100_000, 8)
	h := blockstore.Sum(block)
	store := blockstore.NewMem(-1)
	if _, err := store.Put(ctx, block, blockstore.PutOptions{Residency: blockstore.Pinned}); err != nil {
		t.Fatal(err)
	}
	_, holder := startServer(t, ServerConfig{Store: store})
	_, empty := startServer(t, ServerConfig{Store: blockstore.NewMem(-1)})
	c := newClient(t, newSite(t, map[string][]byte{"x": {1}}).pub, nil)

	for _, r := range [][2]uint64{{0, 1}, {0, 100_000}, {99_999, 1}, {50_000, 256}} {
		if err := c.SpotCheck(ctx, holder, block, r[0], r[1]); err != nil {
			t.Errorf("spot check of bytes %d+%d at the holder: %v", r[0], r[1], err)
		}
	}
	if err := c.SpotCheck(ctx, empty, block, 10, 256); !errors.Is(err, proto.ErrNotFound) || errors.Is(err, ErrBadPeer) {
		t.Errorf("spot check at a peer without the block: want not found, not a bad peer; got %v", err)
	}
	if err := c.SpotCheck(ctx, holder, block, 99_990, 256); err == nil {
		t.Errorf("spot check of a range past the block's end: want an error before anything is sent")
	}

	lies := map[string]*proto.Block{
		"other bytes":  proto.NewBlock(h, 10, 100_000, other[10:266], false),
		"other size":   proto.NewBlock(h, 10, 99_999, block[10:266], false),
		"other range":  proto.NewBlock(h, 11, 100_000, block[11:267], false),
		"short range":  proto.NewBlock(h, 10, 100_000, block[10:265], false),
		"other block":  proto.NewBlock(blockstore.Sum(other), 10, 100_000, block[10:266], false),
		"zstd but bad": proto.NewBlock(h, 10, 100_000, make([]byte, 256), true),
	}
	for name, m := range lies {
		t.Run(name, func(t *testing.T) {
			f := startFake(t, send(m))
			if err := c.SpotCheck(ctx, f.addr, block, 10, 256); !errors.Is(err, ErrBadPeer) {
				t.Errorf("want a bad peer, got %v", err)
			}
		})
	}
}

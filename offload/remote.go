package offload

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// Commands that read the tree (cat, ls, fsck) run in their own process,
// beside the daemon or without it. They reach storage nodes the way the
// daemon does, over grits/1 with the origin's certificate, at the
// addresses the daemon last saw, which the ledger keeps.

// Addrs returns the storage nodes' addresses from the ledger: the ones
// verified at the highest seq first, failed ones last.
func (l Ledger) Addrs() []string {
	rs := slices.Clone(l.Records)
	slices.SortStableFunc(rs, func(a, b Record) int {
		af, bf := !a.FailedAt.IsZero(), !b.FailedAt.IsZero()
		switch {
		case af != bf:
			if af {
				return 1
			}
			return -1
		case a.Verified != b.Verified:
			if a.Verified > b.Verified {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []string
	for _, r := range rs {
		if r.Addr != "" && !slices.Contains(out, r.Addr) {
			out = append(out, r.Addr)
		}
	}
	return out
}

// BlockGetter fetches verified blocks: a *transport.Client.
type BlockGetter interface {
	GetBlock(ctx context.Context, peer string, h blockstore.Hash) ([]byte, error)
}

// Remote is a tree.Getter that reads from a local store and, for blocks
// it lacks, from storage nodes. Blocks from them are verified (by the
// client) and not stored: a command must not grow the store behind the
// daemon's budget.
type Remote struct {
	Local  tree.Getter
	Client BlockGetter
	Peers  []string
}

// Get implements tree.Getter.
func (r *Remote) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	data, err := r.Local.Get(ctx, h)
	if err == nil || !errors.Is(err, blockstore.ErrNotFound) && !errors.Is(err, blockstore.ErrCorrupt) {
		return data, err
	}
	if r.Client == nil || len(r.Peers) == 0 {
		return nil, &UnavailableError{Hash: h}
	}
	var errs []error
	for _, p := range r.Peers {
		data, err := r.Client.GetBlock(ctx, p, h)
		if err == nil {
			return data, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &UnavailableError{Hash: h, Asked: len(r.Peers), Err: errors.Join(errs...)}
}

// BatchGetter fetches many verified blocks in one request: a
// *transport.Client.
type BatchGetter interface {
	GetBlocks(ctx context.Context, peer string, hashes []blockstore.Hash, fn func(blockstore.Hash, []byte) error) ([]blockstore.Hash, error)
}

// Prove asks each peer for every block of hashes, whole, and calls
// proved(h, peer) for each block a peer sent that hashed right. It
// returns the error of each peer that could not be asked to the end.
func Prove(ctx context.Context, c BatchGetter, peers []string, hashes []blockstore.Hash, proved func(h blockstore.Hash, peer string)) map[string]error {
	errs := map[string]error{}
	for _, p := range peers {
		for batch := range slices.Chunk(hashes, proto.MaxBatch) {
			_, err := c.GetBlocks(ctx, p, batch, func(h blockstore.Hash, _ []byte) error {
				proved(h, p)
				return nil
			})
			if err != nil {
				errs[p] = err
				break
			}
		}
	}
	return errs
}

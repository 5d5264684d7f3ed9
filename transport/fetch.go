package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// FetchOptions tunes FetchFile.
type FetchOptions struct {
	// Batch is the number of blocks per GetBlocks request and PerPeer
	// the number of requests in flight per peer. By default they adapt:
	// each peer gets about two batches of the file, between 4 and 64
	// blocks, with one request in flight when there is a single peer and
	// two otherwise. Few large requests are cheapest (on loopback against
	// a raw quic-go stream, BenchmarkDownload: 8x4 0.66-0.77x, 32x2
	// 0.76-0.86x, 64x1 0.88-0.92x); several per peer spread a file over
	// the swarm and keep a slow peer from holding much of it.
	Batch   int
	PerPeer int
	// OnBadPeer is called once for each peer dropped for bad data.
	OnBadPeer func(peer string, err error)
}

// FetchStats says where a fetch's bytes came from.
type FetchStats struct {
	BytesFrom map[string]int64
	// Bad maps peers dropped for sending bad data to the reason.
	Bad map[string]error
	// Failed counts requests that failed without bad data (timeouts,
	// refused connections, blocks a peer lacked); they were retried
	// elsewhere.
	Failed int
}

// ErrUnavailable is returned when no peer could serve some block.
var ErrUnavailable = errors.New("no peer could serve the data")

// FetchFile writes the file whose verified top node is f to w, fetching
// index nodes and chunks in parallel across peers. Every block is
// verified before it is written; a peer that sends bad data is dropped
// and its work goes to the others; a block a peer lacks or fails to send
// is asked of another peer.
func (c *Client) FetchFile(ctx context.Context, peers []string, f *tree.FileNode, w io.WriterAt, opts FetchOptions) (FetchStats, error) {
	auto := opts
	if auto.PerPeer <= 0 {
		auto.PerPeer = 2
		if len(peers) == 1 {
			auto.PerPeer = 1
		}
	}
	if auto.Batch <= 0 {
		auto.Batch = 8 // index nodes: few, small
	}
	st := FetchStats{BytesFrom: map[string]int64{}, Bad: map[string]error{}}
	chunks, err := c.chunkList(ctx, peers, f, auto, &st)
	if err != nil {
		return st, err
	}
	if opts.Batch <= 0 {
		per := (len(chunks) + 2*len(peers) - 1) / max(1, 2*len(peers))
		opts.Batch = min(proto.MaxBatch, 64, max(4, per))
	}
	opts.PerPeer = auto.PerPeer
	offsets := map[blockstore.Hash][]tree.Chunk{}
	var order []blockstore.Hash
	for _, ch := range chunks {
		if _, ok := offsets[ch.Hash]; !ok {
			order = append(order, ch.Hash)
		}
		offsets[ch.Hash] = append(offsets[ch.Hash], ch)
	}
	err = c.fetchBlocks(ctx, peers, order, opts, &st, func(h blockstore.Hash, data []byte) error {
		for _, ch := range offsets[h] {
			if len(data) != int(ch.Size) {
				return fmt.Errorf("chunk at %d: %d bytes, the file node says %d", ch.Offset, len(data), ch.Size)
			}
			if _, err := w.WriteAt(data, int64(ch.Offset)); err != nil {
				return fmt.Errorf("write at %d: %w", ch.Offset, err)
			}
		}
		return nil
	})
	return st, err
}

// chunkList resolves a file's index nodes (if any) into its chunks.
func (c *Client) chunkList(ctx context.Context, peers []string, f *tree.FileNode, opts FetchOptions, st *FetchStats) ([]tree.Chunk, error) {
	var out []tree.Chunk
	level := []struct {
		node *tree.FileNode
		base uint64
	}{{f, 0}}
	for len(level) > 0 {
		var next []struct {
			node *tree.FileNode
			base uint64
		}
		type want struct {
			base, size uint64
			level      uint8
			cs         uint32
		}
		wanted := map[blockstore.Hash][]want{}
		var hashes []blockstore.Hash
		for _, it := range level {
			n := it.node
			span := tree.Span(n.ChunkSize, n.Level)
			for i, h := range n.Hashes {
				start := it.base + uint64(i)*span
				size := n.ChildSize(i)
				if n.Level == 0 {
					out = append(out, tree.Chunk{Offset: start, Size: uint32(size), Hash: h})
					continue
				}
				if _, ok := wanted[h]; !ok {
					hashes = append(hashes, h)
				}
				wanted[h] = append(wanted[h], want{start, size, n.Level - 1, n.ChunkSize})
			}
		}
		if len(hashes) == 0 {
			break
		}
		var mu sync.Mutex
		err := c.fetchBlocks(ctx, peers, hashes, opts, st, func(h blockstore.Hash, data []byte) error {
			n, err := tree.Decode(data)
			if err != nil {
				return fmt.Errorf("index node %s: %w", h.Short(), err)
			}
			fn, ok := n.(*tree.FileNode)
			mu.Lock()
			defer mu.Unlock()
			for _, w := range wanted[h] {
				if !ok || fn.Level != w.level || fn.ChunkSize != w.cs || fn.Size != w.size {
					return fmt.Errorf("index node %s does not match its parent", h.Short())
				}
				next = append(next, struct {
					node *tree.FileNode
					base uint64
				}{fn, w.base})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		level = next
	}
	return out, nil
}

// fetchBlocks gets every hash from some peer, calling fn once per hash
// with verified data. fn errors abort the fetch (they are local: a full
// disk, say), since the bytes were already verified.
func (c *Client) fetchBlocks(ctx context.Context, peers []string, hashes []blockstore.Hash, opts FetchOptions, st *FetchStats, fn func(blockstore.Hash, []byte) error) error {
	if len(peers) == 0 {
		return fmt.Errorf("%w: no peers given", ErrUnavailable)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		pending  = append([]blockstore.Hash(nil), hashes...)
		inflight = 0
		done     = 0
		tried    = map[blockstore.Hash]map[string]bool{}
		live     = map[string]bool{}
		fatal    error
	)
	for _, p := range peers {
		// A peer dropped earlier in this fetch (at an index level)
		// stays dropped.
		live[p] = st.Bad[p] == nil
	}
	// take hands a worker of peer p up to Batch hashes p has not tried.
	take := func(p string) []blockstore.Hash {
		mu.Lock()
		defer mu.Unlock()
		for {
			if fatal != nil || ctx.Err() != nil || !live[p] || done == len(hashes) {
				return nil
			}
			var batch, rest []blockstore.Hash
			for _, h := range pending {
				if len(batch) < opts.Batch && !tried[h][p] {
					batch = append(batch, h)
				} else {
					rest = append(rest, h)
				}
			}
			if len(batch) > 0 {
				pending = rest
				inflight += len(batch)
				return batch
			}
			// Nothing for this peer now; wait while others may fail work
			// back to us, and give up when nothing can change any more.
			if inflight == 0 {
				return nil
			}
			cond.Wait()
		}
	}
	finish := func(p string, batch []blockstore.Hash, got map[blockstore.Hash]bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		inflight -= len(batch)
		defer cond.Broadcast()
		for _, h := range batch {
			if got[h] {
				done++
				continue
			}
			if ctx.Err() != nil {
				// The fetch is over (cancelled, or failed already):
				// this peer was not really tried.
				pending = append(pending, h)
				continue
			}
			if tried[h] == nil {
				tried[h] = map[string]bool{}
			}
			tried[h][p] = true
			pending = append(pending, h)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if errors.Is(err, ErrBadPeer) {
				if live[p] {
					live[p] = false
					st.Bad[p] = err
					if opts.OnBadPeer != nil {
						opts.OnBadPeer(p, err)
					}
				}
			} else {
				st.Failed++
			}
		}
		// Work that no live peer can still try makes the fetch fail.
		for _, h := range pending {
			possible := false
			for q, ok := range live {
				if ok && !tried[h][q] {
					possible = true
					break
				}
			}
			if !possible && fatal == nil {
				fatal = fmt.Errorf("%w: block %s (tried %d peers)", ErrUnavailable, h.Short(), len(tried[h]))
				cancel()
			}
		}
	}

	var wg sync.WaitGroup
	var werr error
	var werrOnce sync.Once
	for _, p := range peers {
		for range opts.PerPeer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					batch := take(p)
					if batch == nil {
						return
					}
					got := map[blockstore.Hash]bool{}
					_, err := c.GetBlocks(ctx, p, batch, func(h blockstore.Hash, data []byte) error {
						if err := fn(h, data); err != nil {
							werrOnce.Do(func() { werr = err })
							cancel()
							return err
						}
						mu.Lock()
						got[h] = true
						st.BytesFrom[p] += int64(len(data))
						mu.Unlock()
						return nil
					})
					finish(p, batch, got, err)
				}
			}()
		}
	}
	wg.Wait()
	switch {
	case werr != nil:
		return werr
	case fatal != nil:
		return fatal
	case ctx.Err() != nil && done < len(hashes):
		return ctx.Err()
	case done < len(hashes):
		return fmt.Errorf("%w: %d of %d blocks", ErrUnavailable, len(hashes)-done, len(hashes))
	}
	return nil
}

package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/transport"
)

// Fetcher finds blocks for this node: in its own store, else at the
// block's home nodes, then at storage nodes, then at the origin. Every
// block fetched is verified (the transport client checks its hash) and
// kept. Concurrent requests for one block share one upstream fetch.
//
// Fetcher is a tree.Getter, so a transport server built on it is a
// pull-through cache. Requests from other members are answered so that
// no fetch can loop: origin and storage nodes answer members from their
// own store only, and a volunteer fetches for a member only blocks it is
// home for, and then only from storage nodes and the origin.
type Fetcher struct {
	swarm   *Swarm
	store   blockstore.Store
	client  *transport.Client
	log     *slog.Logger
	timeout time.Duration

	mu    sync.Mutex
	calls map[callKey]*fetchCall
	// refs, once set, limits what strangers can make this node fetch.
	refs atomic.Pointer[Refs]

	upstream, fetched, coalesced, failed, sourceErrors atomic.Int64
}

// callKey separates fetches made for members from the others: a fetch
// for a member asks only storage nodes and the origin, and must never
// wait on a fetch that asks the other home nodes: two home nodes warming
// the same block would each wait on the other's request, until a stall
// timeout broke the cycle.
type callKey struct {
	h         blockstore.Hash
	forMember bool
}

type fetchCall struct {
	done chan struct{}
	data []byte
	err  error
}

// FetchStats counts upstream traffic.
type FetchStats struct {
	Fetched   int64 // blocks fetched from peers
	Bytes     int64 // their bytes
	Coalesced int64 // requests that joined a fetch already under way
	Failed    int64 // fetches no source could serve
	// SourceErrors counts requests to one source that failed (the next
	// source was asked): slow or broken members, and fetch cycles, which
	// only a stall timeout would end.
	SourceErrors int64
}

// NewFetcher returns a Fetcher; timeout bounds one block's whole search
// (default 30s).
func NewFetcher(s *Swarm, store blockstore.Store, client *transport.Client, timeout time.Duration, logger *slog.Logger) *Fetcher {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{swarm: s, store: store, client: client, log: logger, timeout: timeout, calls: map[callKey]*fetchCall{}}
}

// Stats returns counters since the Fetcher was made.
func (f *Fetcher) Stats() FetchStats {
	return FetchStats{Fetched: f.fetched.Load(), Bytes: f.upstream.Load(), Coalesced: f.coalesced.Load(), Failed: f.failed.Load(), SourceErrors: f.sourceErrors.Load()}
}

// Get returns block h, fetching it if this node may (see Fetcher).
func (f *Fetcher) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	data, err := f.store.Get(ctx, h)
	if !errors.Is(err, blockstore.ErrNotFound) && !errors.Is(err, blockstore.ErrCorrupt) {
		return data, err
	}
	forMember := IsMember(ctx)
	if forMember {
		if f.swarm.Role() != RoleVolunteer || !f.IsHome(h) {
			return nil, err
		}
	} else if refs := f.refs.Load(); refs != nil {
		return f.getForStranger(ctx, refs, h)
	}
	return f.fetch(ctx, h, blockstore.Cached, forMember)
}

// SetRefs makes f pull blocks through for strangers (requests without a
// member's credential) only if refs knows them, and answer a block no
// source had "not found" for a while without asking again. Without it
// (as before it existed) strangers can make f fetch any hash.
func (f *Fetcher) SetRefs(refs *Refs) { f.refs.Store(refs) }

func (f *Fetcher) getForStranger(ctx context.Context, refs *Refs, h blockstore.Hash) ([]byte, error) {
	if err := refs.admit(ctx, h); err != nil {
		return nil, err
	}
	data, err := f.fetch(ctx, h, blockstore.Cached, false)
	if errors.Is(err, blockstore.ErrNotFound) {
		refs.missed(h)
	}
	return data, err
}

// Fetch returns block h with residency r, from the store (changing the
// residency if needed) or from the swarm.
func (f *Fetcher) Fetch(ctx context.Context, h blockstore.Hash, r blockstore.Residency) ([]byte, error) {
	data, err := f.store.Get(ctx, h)
	if err == nil {
		if r == blockstore.Pinned {
			if err := f.store.SetResidency(ctx, h, r); err != nil {
				return nil, err
			}
		}
		return data, nil
	}
	if !errors.Is(err, blockstore.ErrNotFound) && !errors.Is(err, blockstore.ErrCorrupt) {
		return nil, err
	}
	return f.fetch(ctx, h, r, false)
}

// IsHome reports whether this node is one of h's home nodes.
func (f *Fetcher) IsHome(h blockstore.Hash) bool {
	for _, c := range Homes(h, f.swarm.candidates(), f.swarm.cfg.Replication) {
		if c.ID == f.swarm.id {
			return true
		}
	}
	return false
}

func (f *Fetcher) fetch(ctx context.Context, h blockstore.Hash, r blockstore.Residency, forMember bool) ([]byte, error) {
	key := callKey{h, forMember}
	f.mu.Lock()
	c, ok := f.calls[key]
	if ok {
		f.mu.Unlock()
		f.coalesced.Add(1)
	} else {
		c = &fetchCall{done: make(chan struct{})}
		f.calls[key] = c
		f.mu.Unlock()
		// The fetch outlives the caller that started it: others may be
		// waiting for the same block.
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.timeout)
			defer cancel()
			c.data, c.err = f.upstreamFetch(fctx, h, r, forMember)
			f.mu.Lock()
			delete(f.calls, key)
			f.mu.Unlock()
			close(c.done)
		}()
	}
	select {
	case <-c.done:
		if c.err == nil && ok && r == blockstore.Pinned {
			// Joined a cached fetch; make sure the block ends up pinned.
			if err := f.store.SetResidency(ctx, h, r); err != nil {
				return nil, err
			}
		}
		return c.data, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *Fetcher) upstreamFetch(ctx context.Context, h blockstore.Hash, r blockstore.Residency, forMember bool) ([]byte, error) {
	// A fetch that just finished may have stored h between the caller's
	// miss and this call's start.
	if data, err := f.store.Get(ctx, h); err == nil {
		return data, nil
	}
	var errs []error
	for _, src := range f.swarm.sourcesForBlock(h, forMember) {
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if src.home {
			// A home is a volunteer, any volunteer: one that stalls must
			// not hold up every miss of the blocks it is home for.
			sctx, cancel = context.WithTimeout(ctx, HomeWait)
		}
		data, err := f.client.GetBlock(src.ctx(sctx), src.addr, h)
		cancel()
		if err != nil {
			errs = append(errs, err)
			f.sourceErrors.Add(1)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if _, err := f.store.Put(ctx, data, blockstore.PutOptions{Residency: r}); err != nil {
			return nil, fmt.Errorf("keep block %s: %w", h.Short(), err)
		}
		f.fetched.Add(1)
		f.upstream.Add(int64(len(data)))
		return data, nil
	}
	f.failed.Add(1)
	if len(errs) == 0 {
		return nil, fmt.Errorf("block %s: %w (no member to ask)", h.Short(), blockstore.ErrNotFound)
	}
	return nil, fmt.Errorf("block %s: %w: no member could serve it: %w", h.Short(), blockstore.ErrNotFound, errors.Join(errs...))
}

// candidates are the nodes placement chooses among: alive volunteers and
// storage nodes, weighted by the capacity they offer up to what the
// origin granted them (in GiB, at least 1, so a node offering little
// still takes a share).
func (s *Swarm) candidates() []Candidate {
	var out []Candidate
	for _, m := range s.Alive() {
		if m.Role == RoleOrigin || m.Meta.ProtoAddr == "" {
			continue
		}
		w := min(m.Meta.Capacity, s.Granted(m.ID))
		out = append(out, Candidate{ID: m.ID, Weight: max(1, float64(w)/(1<<30))})
	}
	return out
}

// Homes returns the home nodes of block h among the live members.
func (s *Swarm) Homes(h blockstore.Hash) []Member {
	byID := map[NodeID]Member{}
	for _, m := range s.Alive() {
		byID[m.ID] = m
	}
	var out []Member
	for _, c := range Homes(h, s.candidates(), s.cfg.Replication) {
		out = append(out, byID[c.ID])
	}
	return out
}

// sourcesForBlock is the order in which to ask for h: home nodes, storage
// nodes, the origin; for a member's request only storage nodes and the
// origin (see Fetcher).
func (s *Swarm) sourcesForBlock(h blockstore.Hash, forMember bool) []source {
	alive := s.Alive()
	seen := map[NodeID]bool{s.id: true}
	var out []source
	add := func(m Member) {
		if !seen[m.ID] && m.Meta.ProtoAddr != "" {
			seen[m.ID] = true
			out = append(out, source{addr: m.Meta.ProtoAddr, id: m.ID, bound: true})
		}
	}
	if !forMember {
		for _, m := range s.Homes(h) {
			add(m)
			if len(out) > 0 && out[len(out)-1].id == m.ID {
				out[len(out)-1].home = m.Role == RoleVolunteer
			}
		}
	}
	for _, m := range alive {
		if m.Role == RoleStorage {
			add(m)
		}
	}
	for _, m := range alive {
		if m.Role == RoleOrigin {
			add(m)
		}
	}
	if a := s.cfg.OriginAddr; a != "" && !slices.ContainsFunc(out, func(x source) bool { return x.addr == a }) {
		out = append(out, source{addr: a})
	}
	return out
}

// source is a node to ask for a block: its grits/1 address and, when it
// is a member, the node the request is for (transport.ExpectNode).
type source struct {
	addr  string
	id    NodeID
	bound bool
	home  bool // a volunteer home: asked for HomeWait at most
}

// HomeWait bounds the wait for a volunteer home's answer before the next
// source is asked: a block is at most 1 MiB, which a volunteer on a slow
// link still sends well within it.
const HomeWait = 2 * time.Second

func (x source) ctx(ctx context.Context) context.Context {
	if !x.bound {
		return ctx
	}
	return transport.ExpectNode(ctx, x.id)
}

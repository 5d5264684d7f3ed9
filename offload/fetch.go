package offload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

// UnavailableError is a block this origin let go that no storage node
// could return. It matches blockstore.ErrNotFound, so readers handle it
// as a missing block (and peers are told "not found").
type UnavailableError struct {
	Hash  blockstore.Hash
	Asked int   // storage nodes asked
	Err   error // what each said (not in Error: it names internal addresses)
}

func (e *UnavailableError) Error() string {
	if e.Asked == 0 {
		return fmt.Sprintf("block %s is held only by storage nodes, and none is reachable", e.Hash)
	}
	return fmt.Sprintf("block %s is held only by storage nodes, and none of the %d asked could return it", e.Hash, e.Asked)
}

func (e *UnavailableError) Unwrap() error { return blockstore.ErrNotFound }

type fetchCall struct {
	done chan struct{}
	res  blockstore.Residency
	data []byte
	err  error
}

// Get returns block h: from this disk, else fetched back from a storage
// node, verified, and kept (cached, within the budget, if enough audited
// nodes hold it; pinned otherwise). Everything on the origin that reads
// blocks reads through it: the site, lookups, members' pull-through.
// Concurrent reads of one block share one fetch.
func (m *Manager) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	data, err := m.cfg.Store.Get(ctx, h)
	if err == nil || !errors.Is(err, blockstore.ErrNotFound) && !errors.Is(err, blockstore.ErrCorrupt) {
		return data, err
	}
	if m.snap.Load() == nil {
		// Just started: wait for the first view of the library and the
		// storage nodes rather than fail a read of an offloaded block.
		select {
		case <-m.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(m.cfg.FetchTimeout):
			return nil, err
		}
	}
	s := m.snap.Load()
	if s.lib != nil && !s.lib.has(h) {
		// Only the library is ever let go: a miss outside it is a plain
		// miss, and costs storage nodes nothing.
		return nil, err
	}
	var res blockstore.Residency
	switch {
	case m.cfg.StoreMax <= 0 || s.copies(h, false) < s.r:
		res = blockstore.Pinned // short of copies: keep it
	case s.copies(h, true) >= s.r:
		res = blockstore.Cached // the budget decides
	default:
		// Safe elsewhere, but too few audited nodes are reachable for it
		// to leave again: serve it without keeping it, so the store stays
		// within its budget while a storage node is away.
	}
	return m.fetchBack(ctx, h, res)
}

// fetchBack gets h from the storage nodes into the store with residency
// res (0: not kept).
func (m *Manager) fetchBack(ctx context.Context, h blockstore.Hash, res blockstore.Residency) ([]byte, error) {
	m.mu.Lock()
	c, joined := m.calls[h]
	if !joined {
		c = &fetchCall{done: make(chan struct{}), res: res}
		m.calls[h] = c
		// The fetch outlives the caller that started it: others may wait
		// for the same block.
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.FetchTimeout)
			defer cancel()
			c.data, c.err = m.upstream(fctx, h, res)
			m.mu.Lock()
			delete(m.calls, h)
			m.mu.Unlock()
			close(c.done)
		}()
	}
	m.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.err == nil && res > c.res {
		// Joined a fetch that kept less: keep it as asked (Put never
		// lowers a residency).
		if _, err := m.cfg.Store.Put(ctx, c.data, blockstore.PutOptions{Residency: res}); err != nil {
			return nil, fmt.Errorf("offload: keep block %s: %w", h.Short(), err)
		}
	}
	return c.data, c.err
}

func (m *Manager) upstream(ctx context.Context, h blockstore.Hash, res blockstore.Residency) ([]byte, error) {
	if data, err := m.cfg.Store.Get(ctx, h); err == nil {
		return data, nil
	}
	var srcs []string
	if s := m.snap.Load(); s != nil {
		srcs = s.sources(h)
	}
	srcs = m.upFirst(srcs)
	var errs []error
	for _, addr := range srcs {
		data, err := m.cfg.Client.GetBlock(ctx, addr, h)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			if !hardFailure(err) {
				m.markDown(addr)
			}
			continue
		}
		if res != 0 {
			if _, err := m.cfg.Store.Put(ctx, data, blockstore.PutOptions{Residency: res}); err != nil {
				return nil, fmt.Errorf("offload: keep block %s: %w", h.Short(), err)
			}
		}
		m.fetchedBack.Add(1)
		m.fetchedBytes.Add(int64(len(data)))
		return data, nil
	}
	m.unavailable.Add(1)
	e := &UnavailableError{Hash: h, Asked: len(srcs), Err: errors.Join(errs...)}
	if now := time.Now().UnixNano(); now-m.lastUnavailLog.Load() > int64(10*time.Second) {
		m.lastUnavailLog.Store(now)
		m.log.Warn("offload: a block is unavailable", "hash", h.String(), "asked", len(srcs), "err", e.Err, "unavailable_so_far", m.unavailable.Load())
	}
	return nil, e
}

// downFor is how long a storage node that did not answer a fetch is
// asked last: gossip takes seconds to declare a killed node dead, and
// every read in between would wait for it first.
const downFor = 15 * time.Second

func (m *Manager) markDown(addr string) {
	m.mu.Lock()
	m.down[addr] = m.cfg.Now().Add(downFor)
	m.mu.Unlock()
}

// upFirst orders srcs so that nodes that recently did not answer come
// last.
func (m *Manager) upFirst(srcs []string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	var up, down []string
	for _, a := range srcs {
		if until, ok := m.down[a]; ok && now.Before(until) {
			down = append(down, a)
		} else {
			delete(m.down, a)
			up = append(up, a)
		}
	}
	return append(up, down...)
}

// sources lists where to ask for h: the alive nodes counted as holding
// it, audited ones first, then the other alive storage nodes.
func (s *snapshot) sources(h blockstore.Hash) []string {
	var first, second, rest []string
	for _, v := range s.nodes {
		switch {
		case !v.alive || v.addr == "":
		case v.evictor && !v.skip.has(h):
			first = append(first, v.addr)
		case v.holder && !v.skip.has(h):
			second = append(second, v.addr)
		default:
			rest = append(rest, v.addr)
		}
	}
	return append(append(first, second...), rest...)
}

package offload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

// passResult is what the last pass found, for Stats.
type passResult struct {
	at  time.Time
	seq uint64
	// Of the library (the latest root's content): on this disk, and not.
	local, offloaded int64
	// short is library content with fewer than R copies that could not
	// be fetched back; pinned is content on this disk that cannot leave
	// yet; store is all content on this disk, every root's.
	short, pinned, store int64
	warning              string
}

// fetchWorkers bounds the blocks fetched back at once by a pass.
const fetchWorkers = 8

// reconcile is one pass over the library: blocks short of copies are
// kept (re-pinned, or fetched back), and only then do blocks held by
// enough audited nodes go to the cache, where the quota evicts the least
// recently used past the budget.
func (m *Manager) reconcile(ctx context.Context) error {
	m.passMu.Lock()
	defer m.passMu.Unlock()
	s := m.snap.Load()
	if s == nil || s.lib == nil {
		return nil
	}
	lib, st := s.lib, m.cfg.Store
	keepAll := m.cfg.StoreMax <= 0
	if m.lastLib != nil && m.lastLib != lib {
		// Content the new root dropped: only the library ever leaves, so
		// what of it is still here stays (until gc). What left already
		// stays on the storage nodes, which never unpin.
		for _, h := range gone(m.lastLib, lib) {
			if err := st.SetResidency(ctx, h, blockstore.Pinned); err != nil && !errors.Is(err, blockstore.ErrNotFound) {
				return err
			}
		}
	}
	var repin, demote []blockstore.Hash
	var demoteBytes int64
	var fetch []chunk
	for _, c := range lib.chunks {
		info, err := st.Stat(ctx, c.h)
		switch {
		case errors.Is(err, blockstore.ErrNotFound):
			if keepAll || s.copies(c.h, false) < s.r {
				fetch = append(fetch, c)
			}
		case err != nil:
			return err
		case info.Residency == blockstore.Pinned:
			if !keepAll && s.copies(c.h, true) >= s.r {
				demote = append(demote, c.h)
				demoteBytes += int64(c.size)
			}
		default:
			if keepAll || s.copies(c.h, false) < s.r {
				repin = append(repin, c.h)
			}
		}
	}
	var short int64
	if len(repin)+len(fetch) > 0 {
		// Nothing leaves while any of the library is short of copies.
		st.SetQuota(-1)
		for _, h := range repin {
			if err := st.SetResidency(ctx, h, blockstore.Pinned); errors.Is(err, blockstore.ErrNotFound) {
				fetch = append(fetch, chunk{h: h})
			} else if err != nil {
				return err
			}
		}
		short = m.fetchAll(ctx, fetch)
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(fetch) > 0 {
			m.log.Info("offload: re-replicated", "blocks", len(fetch), "short_bytes", short)
		}
	}
	if keepAll {
		st.SetQuota(-1)
	} else if short == 0 {
		// The quota is what the budget leaves beside the content that
		// must stay. It is raised to its new value before the batch
		// arrives in the cache, so that the batch and what was cached
		// before are evicted together, least recently used first.
		quota := func(leaving int64) error {
			stats, err := st.Stats(ctx)
			if err == nil {
				st.SetQuota(max(0, m.cfg.StoreMax-max(0, stats.PinnedBytes-leaving-lib.nodeBytes)))
			}
			return err
		}
		if err := quota(demoteBytes); err != nil {
			return err
		}
		if len(demote) > 0 {
			if _, err := st.Unpin(ctx, demote); err != nil {
				return err
			}
			if err := quota(0); err != nil {
				return err
			}
		}
	}
	if short == 0 {
		m.lastLib = lib
	}
	return m.account(ctx, lib, short)
}

// gone lists the chunks of old that are not in new, walking both sorted
// lists once.
func gone(old, new *library) []blockstore.Hash {
	var out []blockstore.Hash
	j := 0
	for _, c := range old.chunks {
		for j < len(new.chunks) && compareHash(new.chunks[j].h, c.h) < 0 {
			j++
		}
		if j == len(new.chunks) || new.chunks[j].h != c.h {
			out = append(out, c.h)
		}
	}
	return out
}

// fetchAll fetches chunks back as pinned and returns the bytes it could
// not get.
func (m *Manager) fetchAll(ctx context.Context, cs []chunk) int64 {
	var mu sync.Mutex
	var short int64
	work := make(chan chunk)
	var wg sync.WaitGroup
	for range fetchWorkers {
		wg.Go(func() {
			for c := range work {
				if _, err := m.fetchBack(ctx, c.h, blockstore.Pinned); err != nil {
					mu.Lock()
					short += int64(c.size)
					mu.Unlock()
				}
			}
		})
	}
	for _, c := range cs {
		select {
		case work <- c:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return short
}

// account counts where the library is and whether the budget holds.
func (m *Manager) account(ctx context.Context, lib *library, short int64) error {
	r := passResult{at: m.cfg.Now(), seq: lib.root.Seq, short: short}
	for _, c := range lib.chunks {
		ok, err := m.cfg.Store.Has(ctx, c.h)
		if err != nil {
			return err
		}
		if ok {
			r.local += int64(c.size)
		}
	}
	r.offloaded = lib.bytes - r.local
	stats, err := m.cfg.Store.Stats(ctx)
	if err != nil {
		return err
	}
	r.pinned = max(0, stats.PinnedBytes-lib.nodeBytes)
	r.store = r.pinned + stats.CachedBytes
	budget := m.cfg.StoreMax
	over := budget > 0 && r.store > budget
	switch {
	case short > 0:
		r.warning = fmt.Sprintf("%s of the library has fewer than %d audited copies and no storage node could return it; nothing is evicted until it can",
			human(short), m.cfg.Replicas)
	case over && m.evictors() < m.cfg.Replicas:
		r.warning = fmt.Sprintf("store_max %s cannot be met safely: %s of content is on this disk, and only %d of the %d audited storage nodes it takes to let a block go are reachable",
			human(budget), human(r.store), m.evictors(), m.cfg.Replicas)
	case over:
		r.warning = fmt.Sprintf("store_max %s cannot be met safely: %s of content is on this disk, %s of it not yet held by %d audited storage nodes",
			human(budget), human(r.store), human(r.pinned), m.cfg.Replicas)
	}
	m.mu.Lock()
	was := m.overshoot
	m.overshoot = r.warning != ""
	m.pass = r
	m.mu.Unlock()
	switch {
	case r.warning != "" && !was:
		m.log.Warn("offload: keeping data over the budget: " + r.warning)
	case r.warning == "" && was:
		m.log.Info("offload: the budget holds again", "store_max", budget, "content_on_disk", r.store)
	}
	return nil
}

// evictors counts the nodes evictions may rely on now.
func (m *Manager) evictors() int {
	n := 0
	if s := m.snap.Load(); s != nil {
		for _, v := range s.nodes {
			if v.evictor {
				n++
			}
		}
	}
	return n
}

// human formats a byte count for messages.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

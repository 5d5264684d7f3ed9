package blockstore

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Mem is a Store in memory, with the same quota, eviction, residency and
// verification rules as Disk. It is meant for tests and for nodes that
// keep nothing across restarts. The zero value is not usable; call NewMem.
type Mem struct {
	quota int64

	mu  sync.Mutex
	idx index // entries carry the bytes in entry.data
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty Mem keeping at most quota bytes of cached blocks
// (<0: unlimited; see Stats.Quota).
func NewMem(quota int64) *Mem {
	return &Mem{quota: quota, idx: newIndex()}
}

// Put implements Store. Deferred is meaningless in memory and ignored.
func (m *Mem) Put(ctx context.Context, data []byte, opts PutOptions) (Hash, error) {
	if err := ctx.Err(); err != nil {
		return Hash{}, fmt.Errorf("blockstore: put: %w", err)
	}
	if len(data) > MaxBlockSize {
		return Hash{}, fmt.Errorf("blockstore: put: %w (%d bytes, limit %d)", ErrTooLarge, len(data), MaxBlockSize)
	}
	h := Sum(data)
	res, err := putResidency(opts)
	if err != nil {
		return Hash{}, fmt.Errorf("blockstore: put %s: %w", h.Short(), err)
	}
	now := time.Now()

	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.idx.get(h)
	if e == nil {
		e = m.idx.add(h, int64(len(data)), res, now)
		e.data = append([]byte(nil), data...)
	} else {
		if res == Pinned {
			m.idx.setResidency(e, Pinned)
		}
		if len(e.data) != len(data) {
			// Like Disk, a stored copy of the wrong size is known bad
			// without hashing it, so Put repairs it; Get finds the rest.
			m.idx.update(h, int64(len(data)), e.res, now)
			e.data = append([]byte(nil), data...)
		}
		m.idx.touch(e, now)
	}
	if e.res == Cached {
		m.idx.evict(m.quota, func(v *entry) bool { return v != e })
	}
	return h, nil
}

// Get implements Store.
func (m *Mem) Get(ctx context.Context, h Hash) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blockstore: get %s: %w", h.Short(), err)
	}
	m.mu.Lock()
	e := m.idx.get(h)
	if e == nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("blockstore: get %s: %w", h.Short(), ErrNotFound)
	}
	data := append([]byte(nil), e.data...)
	m.mu.Unlock()

	// Hash outside the lock: it is the slow part and touches only our copy.
	if got := Sum(data); got != h {
		m.mu.Lock()
		if m.idx.get(h) == e {
			m.idx.remove(h)
		}
		m.mu.Unlock()
		return nil, fmt.Errorf("blockstore: get %s: %w", h.Short(), &CorruptError{Hash: h, Actual: got})
	}

	m.mu.Lock()
	if m.idx.get(h) == e {
		m.idx.touch(e, time.Now())
	}
	m.mu.Unlock()
	return data, nil
}

// Has implements Store.
func (m *Mem) Has(ctx context.Context, h Hash) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("blockstore: has %s: %w", h.Short(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.idx.get(h) != nil, nil
}

// Stat implements Store.
func (m *Mem) Stat(ctx context.Context, h Hash) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blockstore: stat %s: %w", h.Short(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.idx.get(h)
	if e == nil {
		return Info{}, fmt.Errorf("blockstore: stat %s: %w", h.Short(), ErrNotFound)
	}
	return e.info(), nil
}

// SetResidency implements Store.
func (m *Mem) SetResidency(ctx context.Context, h Hash, r Residency) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blockstore: set residency %s: %w", h.Short(), err)
	}
	if err := checkResidency(r); err != nil {
		return fmt.Errorf("blockstore: set residency %s: %w", h.Short(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.idx.get(h)
	if e == nil {
		return fmt.Errorf("blockstore: set residency %s: %w", h.Short(), ErrNotFound)
	}
	m.idx.setResidency(e, r)
	if r == Cached {
		m.idx.evict(m.quota, func(*entry) bool { return true })
	}
	return nil
}

// Delete implements Store.
func (m *Mem) Delete(ctx context.Context, h Hash) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blockstore: delete %s: %w", h.Short(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.idx.remove(h)
	return nil
}

// Walk implements Store. It visits the blocks stored when it started that
// are still stored when their turn comes.
func (m *Mem) Walk(ctx context.Context, fn func(Info) error) error {
	m.mu.Lock()
	hashes := make([]Hash, 0, len(m.idx.entries))
	for h := range m.idx.entries {
		hashes = append(hashes, h)
	}
	m.mu.Unlock()

	for _, h := range hashes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("blockstore: walk: %w", err)
		}
		m.mu.Lock()
		e := m.idx.get(h)
		var info Info
		if e != nil {
			info = e.info()
		}
		m.mu.Unlock()
		if e == nil {
			continue
		}
		// fn runs unlocked so it may call back into m.
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Sync implements Store; memory has nothing to make durable.
func (m *Mem) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blockstore: sync: %w", err)
	}
	return nil
}

// Stats implements Store.
func (m *Mem) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("blockstore: stats: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.idx.stats
	s.Quota = m.quota
	return s, nil
}

// CorruptForTest flips one bit of a stored block, as a failing disk would,
// so tests can watch the store refuse to serve it. It reports whether the
// block was stored.
func (m *Mem) CorruptForTest(h Hash) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.idx.get(h)
	if e == nil {
		return false
	}
	bad := append([]byte(nil), e.data...)
	if len(bad) == 0 {
		// An empty block has no bit to flip; growing it is just as wrong.
		bad = []byte{0}
	} else {
		bad[len(bad)/2] ^= 0x01
	}
	e.data = bad
	return true
}

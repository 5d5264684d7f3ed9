package offload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// Audits. A routine audit asks a verified node for one random block of
// the library it is counted for, whole, and checks its hash. Verifying a
// node (new, failed, or behind the latest root) checks every chunk it
// would be counted for that the origin still holds, by a spot check of a
// random range against the origin's own copy, and a sample of the
// chunks the origin no longer holds, whole. docs/design.md, "Offload and
// audits", has the arithmetic.
const (
	// maxStrikes audits in a row without an answer fail a node.
	maxStrikes = 3
	// verifySamples is how many offloaded chunks verifying a node reads
	// whole (the others it is counted for are spot-checked one by one).
	verifySamples = 16
	// spotBytes is the size of a spot check's range.
	spotBytes = 256
	// verifyWorkers bounds the requests in flight while verifying a node.
	verifyWorkers = 4
)

// retryAfter is how long a failed node waits before it is verified again.
func (m *Manager) retryAfter() time.Duration { return 10 * m.cfg.AuditInterval }

// scheduleLocked starts the audits that are due, at most one job per
// node at a time.
func (m *Manager) scheduleLocked(ctx context.Context, now time.Time) {
	lib := m.lib
	if lib == nil {
		return
	}
	for id, p := range m.peers {
		if !p.Alive || !p.PinsAll || p.Complete == 0 || p.Addr == "" || m.busy[id] {
			continue
		}
		r, _ := m.ledger.Find(id)
		failed := !r.FailedAt.IsZero()
		switch {
		case (failed || r.Verified < lib.root.Seq) && p.Complete >= lib.root.Seq:
			if failed && now.Sub(r.LastAudit) < m.retryAfter() {
				continue
			}
			check := m.sinceLocked(r.Verified)
			if failed {
				check = everything
			}
			m.busy[id] = true
			m.wg.Go(func() {
				defer m.idle(id)
				m.verify(ctx, p, lib, check)
			})
		case r.Verified > 0 && !failed && now.Sub(r.LastAudit) >= m.cfg.AuditInterval*9/10:
			c, ok := lib.sample(m.sinceLocked(r.Verified))
			if !ok {
				continue
			}
			m.busy[id] = true
			m.wg.Go(func() {
				defer m.idle(id)
				m.audit(ctx, p, c)
			})
		}
	}
}

func (m *Manager) idle(id tree.PublicKey) {
	m.mu.Lock()
	delete(m.busy, id)
	m.mu.Unlock()
}

// audit asks p for chunk c, whole.
func (m *Manager) audit(ctx context.Context, p Peer, c chunk) {
	// Bound to p: a node that advertised another's address must not be
	// counted for the other's answers.
	actx, cancel := context.WithTimeout(transport.ExpectNode(ctx, p.ID), m.cfg.AuditTimeout)
	data, err := m.cfg.Client.GetBlock(actx, p.Addr, c.h)
	cancel()
	if ctx.Err() != nil {
		return
	}
	m.record(p.ID, c.h, int64(len(data)), err)
}

// hardFailure tells a node that answered wrong (it lacks the block, or
// sent other bytes) from one that did not answer.
func hardFailure(err error) bool {
	return errors.Is(err, proto.ErrNotFound) || errors.Is(err, transport.ErrBadPeer) || errors.Is(err, blockstore.ErrHashMismatch)
}

// record notes the outcome of checking block h at node id, n bytes
// received, and reports whether it passed.
func (m *Manager) record(id tree.PublicKey, h blockstore.Hash, n int64, err error) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.ledger.Find(id)
	if !ok {
		r = Record{Node: id}
	}
	now := m.cfg.Now()
	r.LastAudit = now
	m.sent[id] += n
	m.dirty = true
	switch {
	case err == nil:
		first := !r.LastPass.After(m.start)
		r.Passed++
		r.LastPass, r.Strikes = now, 0
		m.ledger.Set(r)
		if first {
			m.refreshLocked()
			m.kickPass()
		}
		return true
	case hardFailure(err):
		r.Failed++
		m.failedOn[id] = h
		m.failLocked(r, fmt.Sprintf("block %s: %v", h, err))
	default:
		r.Failed++
		if r.Strikes < 255 {
			r.Strikes++
		}
		if r.Strikes >= maxStrikes {
			m.failLocked(r, fmt.Sprintf("no answer to %d audits in a row: %v", r.Strikes, err))
		} else {
			m.ledger.Set(r)
			m.refreshLocked()
		}
	}
	return false
}

// verify checks every chunk of check in the library at p (spot checks of
// the ones this disk holds, a sample of the others read whole) and, if
// all pass, records p as verified at the library's root.
func (m *Manager) verify(ctx context.Context, p Peer, lib *library, check *chunkSet) {
	m.mu.Lock()
	bad, wasBad := m.failedOn[p.ID]
	m.mu.Unlock()
	var local, remote []chunk
	for _, c := range lib.chunks {
		if !check.has(c.h) || (wasBad && c.h == bad) {
			continue
		}
		ok, err := m.cfg.Store.Has(ctx, c.h)
		if err != nil {
			return
		}
		if ok {
			local = append(local, c)
		} else {
			remote = append(remote, c)
		}
	}
	if len(remote) > verifySamples {
		rand.Shuffle(len(remote), func(i, j int) { remote[i], remote[j] = remote[j], remote[i] })
		remote = remote[:verifySamples]
	}
	if i, ok := lib.find(bad); wasBad && ok {
		// Whatever the sample, and first: check reads it whole if this
		// disk no longer holds it either.
		remote = append([]chunk{lib.chunks[i]}, remote...)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var failed bool
	var once sync.Once
	work := make(chan chunk)
	var wg sync.WaitGroup
	for range verifyWorkers {
		wg.Go(func() {
			for c := range work {
				if !m.check(ctx, p, c) {
					once.Do(func() { failed = true; cancel() })
				}
			}
		})
	}
feed:
	for _, c := range append(local, remote...) {
		select {
		case work <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if failed || ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, _ := m.ledger.Find(p.ID)
	r.Node = p.ID
	r.Verified = lib.root.Seq
	r.FailedAt, r.Reason, r.Strikes = time.Time{}, "", 0
	delete(m.failedOn, p.ID)
	m.ledger.Set(r)
	m.dirty, m.urgent = true, true
	m.log.Info("offload: storage node verified", "node", p.ID.String()[:16], "seq", lib.root.Seq,
		"spot_checked", len(local), "read_whole", len(remote))
	m.refreshLocked()
	m.kickPass()
}

// check verifies one chunk at p: a spot check if this disk holds it,
// else the whole block.
func (m *Manager) check(ctx context.Context, p Peer, c chunk) bool {
	data, err := m.cfg.Store.Peek(ctx, c.h)
	actx, cancel := context.WithTimeout(transport.ExpectNode(ctx, p.ID), m.cfg.AuditTimeout)
	defer cancel()
	var n int64
	switch {
	case err == nil && len(data) > 0:
		size := uint64(len(data))
		cnt := min(spotBytes, size)
		off := rand.Uint64N(size - cnt + 1)
		err = m.cfg.Client.SpotCheck(actx, p.Addr, data, off, cnt)
		n = int64(cnt)
	case err == nil:
		return true // an empty chunk proves nothing and costs nothing
	default:
		// Evicted meanwhile (or damaged here): read it whole from p.
		data, err = m.cfg.Client.GetBlock(actx, p.Addr, c.h)
		n = int64(len(data))
	}
	if ctx.Err() != nil {
		return false
	}
	return m.record(p.ID, c.h, n, err)
}

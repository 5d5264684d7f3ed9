package offload

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
	"github.com/grits-cdn/grits/tree"
)

// Defaults for Config fields left zero.
const (
	DefaultReplicas      = 2
	DefaultAuditInterval = time.Minute
	DefaultAuditTimeout  = 30 * time.Second
	DefaultGrace         = 6 * time.Hour
	DefaultFetchTimeout  = 30 * time.Second
)

// Peer is a storage node as the swarm shows it. Its claims (Complete,
// PinsAll) only choose what to audit; they never make it count as a copy.
type Peer struct {
	ID    tree.PublicKey
	Addr  string // grits/1
	Alive bool   // alive or suspect in gossip
	// PinsAll: it keeps the whole tree ("/" among its pins). Only such
	// nodes count as copies: placement of subtrees is not tracked here.
	PinsAll bool
	// Complete is the root seq it says it holds completely.
	Complete uint64
	// Banned by the origin: it counts for nothing from then on.
	Banned bool
}

// Store is the origin's block store: a *blockstore.Disk.
type Store interface {
	blockstore.Store
	Peek(ctx context.Context, h blockstore.Hash) ([]byte, error)
	Unpin(ctx context.Context, hs []blockstore.Hash) (int, error)
	SetQuota(q int64)
	SetEvictable(ok func(blockstore.Hash) bool)
}

// Client fetches from storage nodes: a *transport.Client presenting the
// origin's certificate, so that storage nodes answer from their store
// only.
type Client interface {
	GetBlock(ctx context.Context, peer string, h blockstore.Hash) ([]byte, error)
	SpotCheck(ctx context.Context, peer string, block []byte, off, n uint64) error
}

// Roots gives the latest root and the history (to find the tree a node
// was verified at).
type Roots interface {
	Latest() (tree.Root, bool)
	Roots() []tree.Root
}

// Config configures a Manager.
type Config struct {
	Store  Store
	Roots  Roots
	Client Client
	// Peers lists the storage nodes the swarm knows, dead ones included.
	Peers func() []Peer
	// LedgerPath is where audit results persist (the data directory's
	// offload.ledger).
	LedgerPath string
	// StoreMax is the budget, in bytes, for file content on this disk;
	// 0 keeps everything (and fetches back whatever was offloaded).
	StoreMax int64
	// Replicas is how many audited storage nodes must hold a block before
	// it may leave; default 2.
	Replicas int
	// AuditInterval is how often each storage node is audited (one block
	// each time); AuditTimeout bounds one audit; Grace is how long a node
	// may be gone before it stops counting, and how old its last passed
	// audit may be for evictions to rely on it.
	AuditInterval, AuditTimeout, Grace time.Duration
	// FetchTimeout bounds fetching one block back; default 30s.
	FetchTimeout time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Store == nil || c.Roots == nil || c.Client == nil || c.Peers == nil {
		return errors.New("offload: a manager needs a store, roots, a client and peers")
	}
	if c.StoreMax < 0 || c.Replicas < 0 || c.AuditInterval < 0 || c.AuditTimeout < 0 || c.Grace < 0 || c.FetchTimeout < 0 {
		return errors.New("offload: negative setting")
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.AuditInterval == 0 {
		c.AuditInterval = DefaultAuditInterval
	}
	if c.AuditTimeout == 0 {
		c.AuditTimeout = DefaultAuditTimeout
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Manager keeps the origin's content within its budget: it audits
// storage nodes, lets blocks go once enough audited nodes hold them,
// brings them back when copies are lost, and fetches evicted blocks for
// whoever reads them (Get). See the package documentation.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	start time.Time

	mu     sync.Mutex
	ledger Ledger
	dirty  bool
	urgent bool      // a failure or a verification: save at once
	saved  time.Time // when the ledger was last written
	peers  map[tree.PublicKey]Peer
	lib    *library
	since  map[uint64]*chunkSet // by the seq a node was verified at, for lib
	busy   map[tree.PublicKey]bool
	sent   map[tree.PublicKey]int64 // audit bytes received, since start
	// failedOn is the block each failed node lacked or got wrong: its
	// next verification reads it whatever else it samples, so a node
	// is not taken back while it still lacks what it failed on.
	failedOn  map[tree.PublicKey]blockstore.Hash
	pass      passResult
	overshoot bool // the budget cannot be met safely (logged once)

	snap     atomic.Pointer[snapshot]
	ready    chan struct{} // closed with the first snapshot
	passKick chan struct{}
	passMu   sync.Mutex // one reconcile at a time (the loop, and tests that call it)
	lastLib  *library   // the library of the last pass; guarded by passMu
	wg       sync.WaitGroup

	down                                                   map[string]time.Time // guarded by mu
	calls                                                  map[blockstore.Hash]*fetchCall
	fetchedBack, fetchedBytes, unavailable, lastUnavailLog atomic.Int64
}

// New loads the ledger. Run starts the work.
func New(cfg Config) (*Manager, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	l, err := ReadLedger(cfg.LedgerPath)
	if err != nil {
		// Refusing to start would stop the origin serving; forgetting the
		// ledger only costs re-verifying every node (nothing counts until
		// then), which errs on the safe side.
		cfg.Logger.Error("offload: the audit ledger is unreadable; every storage node will be verified again", "err", err)
		l = Ledger{}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, start: cfg.Now(), ledger: l,
		peers: map[tree.PublicKey]Peer{}, since: map[uint64]*chunkSet{}, busy: map[tree.PublicKey]bool{},
		sent: map[tree.PublicKey]int64{}, failedOn: map[tree.PublicKey]blockstore.Hash{},
		passKick: make(chan struct{}, 1), ready: make(chan struct{}), calls: map[blockstore.Hash]*fetchCall{}, down: map[string]time.Time{}}
	return m, nil
}

// Run audits and keeps the budget until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	m.cfg.Store.SetEvictable(m.evictable)
	m.wg.Go(func() { m.passLoop(ctx) })
	// Ticks come more often than audits (each node is audited once per
	// interval): a node that just claimed a root is verified promptly.
	t := time.NewTicker(min(m.cfg.AuditInterval, 2*time.Second))
	defer t.Stop()
	for {
		m.tick(ctx)
		select {
		case <-ctx.Done():
			m.wg.Wait()
			m.mu.Lock()
			m.urgent = true
			m.mu.Unlock()
			m.save()
			return
		case <-t.C:
		}
	}
}

// passEvery is how often the budget is reconciled without a reason to.
func (m *Manager) passEvery() time.Duration {
	return min(10*time.Minute, 10*m.cfg.AuditInterval)
}

func (m *Manager) kickPass() {
	select {
	case m.passKick <- struct{}{}:
	default:
	}
}

func (m *Manager) passLoop(ctx context.Context) {
	t := time.NewTicker(m.passEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.passKick:
		}
		if err := m.reconcile(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("offload: pass failed; will retry", "err", err)
		}
	}
}

// tick brings the view of the swarm and the root up to date and starts
// the audits that are due.
func (m *Manager) tick(ctx context.Context) {
	now := m.cfg.Now()
	if r, ok := m.cfg.Roots.Latest(); ok {
		m.mu.Lock()
		stale := m.lib == nil || m.lib.root.Seq != r.Seq
		m.mu.Unlock()
		if stale {
			lib, err := buildLibrary(ctx, m.cfg.Store, r)
			if err != nil {
				if ctx.Err() == nil {
					m.log.Error("offload: cannot list the content of the latest root", "seq", r.Seq, "err", err)
				}
				return
			}
			m.mu.Lock()
			m.lib, m.since = lib, map[uint64]*chunkSet{}
			m.mu.Unlock()
			m.log.Info("offload: library", "seq", r.Seq, "chunks", len(lib.chunks), "bytes", lib.bytes, "node_bytes", lib.nodeBytes)
			m.kickPass()
		}
	}
	peers := m.cfg.Peers()
	m.mu.Lock()
	seen := map[tree.PublicKey]bool{}
	changed := false
	for _, p := range peers {
		if p.Banned {
			if prev, ok := m.peers[p.ID]; ok && prev.Alive {
				m.peers[p.ID] = Peer{ID: p.ID}
				changed = true
			}
			if r, ok := m.ledger.Find(p.ID); ok && r.FailedAt.IsZero() {
				m.failLocked(r, "banned")
			}
			continue
		}
		seen[p.ID] = true
		prev, known := m.peers[p.ID]
		m.peers[p.ID] = p
		changed = changed || known && (prev.Alive != p.Alive || prev.Complete != p.Complete)
		r, ok := m.ledger.Find(p.ID)
		if !ok {
			r = Record{Node: p.ID}
		}
		if p.Alive && (r.Addr != p.Addr || now.Sub(r.LastSeen) >= m.cfg.AuditInterval) {
			// A new address is written at once: commands that run beside
			// the daemon dial it from the ledger.
			m.urgent = m.urgent || r.Addr != p.Addr
			r.LastSeen, r.Addr = now, p.Addr
			m.ledger.Set(r)
			m.dirty = true
		}
	}
	for id, p := range m.peers {
		if !seen[id] && p.Alive {
			p.Alive = false
			m.peers[id] = p
			changed = true
		}
	}
	if changed {
		m.kickPass()
	}
	for _, r := range m.ledger.Records {
		p := m.peers[r.Node]
		if !p.Alive && r.Verified > 0 && r.FailedAt.IsZero() && now.Sub(m.lastSeen(r)) > m.cfg.Grace {
			m.failLocked(r, fmt.Sprintf("gone since %s (grace %v)", m.lastSeen(r).Format(time.RFC3339), m.cfg.Grace))
		}
	}
	m.mu.Unlock()
	m.fillSince(ctx)
	m.mu.Lock()
	m.refreshLocked()
	m.scheduleLocked(ctx, now)
	m.mu.Unlock()
	m.save()
}

// lastSeen is when r's node was last seen alive, counting from this
// process's start: the origin's own downtime is not the node's.
func (m *Manager) lastSeen(r Record) time.Time {
	if r.LastSeen.Before(m.start) {
		return m.start
	}
	return r.LastSeen
}

// fillSince computes the chunks each verified or claimed seq does not
// cover, for the seqs not computed yet.
func (m *Manager) fillSince(ctx context.Context) {
	m.mu.Lock()
	lib := m.lib
	var todo []uint64
	want := map[uint64]bool{}
	for _, r := range m.ledger.Records {
		want[r.Verified] = true
	}
	for _, p := range m.peers {
		want[p.Complete] = true
	}
	for seq := range want {
		if _, ok := m.since[seq]; !ok && lib != nil {
			todo = append(todo, seq)
		}
	}
	m.mu.Unlock()
	if lib == nil {
		return
	}
	trees := map[uint64]blockstore.Hash{}
	if len(todo) > 0 {
		for _, r := range m.cfg.Roots.Roots() {
			trees[r.Seq] = r.Tree
		}
	}
	for _, seq := range todo {
		var s *chunkSet
		switch {
		case seq == 0:
			s = everything
		case seq >= lib.root.Seq:
			s = nil // nothing new since
		default:
			s = newSince(ctx, m.cfg.Store, trees[seq], lib)
		}
		m.mu.Lock()
		if m.lib == lib {
			m.since[seq] = s
		}
		m.mu.Unlock()
	}
}

// sinceLocked is the part of the library a node verified (or complete)
// at seq is not known to hold.
func (m *Manager) sinceLocked(seq uint64) *chunkSet {
	if m.lib == nil || seq >= m.lib.root.Seq && seq > 0 {
		return nil
	}
	if s, ok := m.since[seq]; ok {
		return s
	}
	return everything
}

// failLocked marks r's node failed: from now on it counts as no copy of
// anything, and the next pass re-replicates what it held.
func (m *Manager) failLocked(r Record, reason string) {
	now := m.cfg.Now()
	first := r.FailedAt.IsZero()
	r.Verified = 0
	r.Reason = reason
	r.LastAudit = now
	if first {
		r.FailedAt = now
		m.log.Warn("offload: storage node failed; it no longer counts as a copy, and what it held is re-replicated", "node", r.Node.String()[:16], "addr", r.Addr, "reason", reason)
	} else {
		m.log.Info("offload: storage node failed again", "node", r.Node.String()[:16], "reason", reason)
	}
	m.ledger.Set(r)
	m.dirty, m.urgent = true, true
	// At once, before anything else: evictions consult the snapshot.
	m.refreshLocked()
	m.kickPass()
}

// saveEvery is how often routine changes (audits passed, nodes seen) are
// written; failures and verifications are written at once.
const saveEvery = 10 * time.Second

// save writes the ledger if it changed.
func (m *Manager) save() {
	m.mu.Lock()
	now := m.cfg.Now()
	if !m.dirty || !m.urgent && now.Sub(m.saved) < saveEvery {
		m.mu.Unlock()
		return
	}
	m.pruneLocked()
	l := Ledger{Records: append([]Record(nil), m.ledger.Records...)}
	m.dirty, m.urgent, m.saved = false, false, now
	m.mu.Unlock()
	if m.cfg.LedgerPath == "" {
		return
	}
	if err := WriteLedger(m.cfg.LedgerPath, l); err != nil {
		m.log.Error("offload: saving the audit ledger", "err", err)
		m.mu.Lock()
		m.dirty = true
		m.mu.Unlock()
	}
}

// pruneLocked keeps the ledger within MaxLedgerNodes by forgetting the
// failed nodes seen longest ago (a node forgotten and back is verified
// from scratch, as a new one).
func (m *Manager) pruneLocked() {
	for len(m.ledger.Records) > MaxLedgerNodes {
		drop := -1
		for i, r := range m.ledger.Records {
			if !r.FailedAt.IsZero() && (drop < 0 || r.LastSeen.Before(m.ledger.Records[drop].LastSeen)) {
				drop = i
			}
		}
		if drop < 0 {
			drop = 0 // thousands of healthy storage nodes: not a swarm we plan for
		}
		delete(m.failedOn, m.ledger.Records[drop].Node)
		m.ledger.Records = slices.Delete(m.ledger.Records, drop, drop+1)
	}
}

// nodeView is one node in a snapshot.
type nodeView struct {
	id    tree.PublicKey
	addr  string
	alive bool
	// holder: counts as a copy for keeping (re-replication waits while it
	// is gone within the grace period); evictor: counts for letting a
	// block go (alive, passed its last audit, since this process started).
	holder, evictor bool
	skip            *chunkSet // chunks of the library it is not known to hold
}

// snapshot is what evictions and fetches consult: immutable, swapped
// whole.
type snapshot struct {
	lib   *library
	r     int
	nodes []nodeView
}

func (m *Manager) refreshLocked() {
	now := m.cfg.Now()
	s := &snapshot{lib: m.lib, r: m.cfg.Replicas}
	for _, r := range m.ledger.Records {
		p, seen := m.peers[r.Node]
		v := nodeView{id: r.Node, addr: r.Addr, alive: p.Alive}
		if seen && p.Addr != "" {
			v.addr = p.Addr
		}
		pinsAll := !seen || p.PinsAll
		v.holder = pinsAll && r.Verified > 0 && r.FailedAt.IsZero() && (p.Alive || now.Sub(m.lastSeen(r)) <= m.cfg.Grace)
		v.evictor = v.holder && p.Alive && r.Strikes == 0 && r.LastPass.After(m.start) && now.Sub(r.LastPass) <= m.cfg.Grace
		if v.holder {
			v.skip = m.sinceLocked(r.Verified)
		}
		s.nodes = append(s.nodes, v)
	}
	if m.snap.Swap(s) == nil {
		close(m.ready)
	}
}

// copies counts the nodes known to hold h: holders, or evictors only.
func (s *snapshot) copies(h blockstore.Hash, evict bool) int {
	n := 0
	for _, v := range s.nodes {
		ok := v.holder
		if evict {
			ok = v.evictor
		}
		if ok && !v.skip.has(h) {
			n++
		}
	}
	return n
}

// evictable is the store's eviction check: a cached block leaves only if
// it is content of the latest root held by enough audited nodes.
func (m *Manager) evictable(h blockstore.Hash) bool {
	s := m.snap.Load()
	return s != nil && s.lib.has(h) && s.copies(h, true) >= s.r
}

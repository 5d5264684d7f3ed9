package offload

import (
	"time"

	"github.com/grits-cdn/grits/tree"
)

// Stats is the origin's offload state at a glance: gritsd status prints
// it, metrics export it.
type Stats struct {
	StoreMax int64 `json:"store_max"` // 0: keep everything
	Replicas int   `json:"offload_replicas"`
	// Seq is the root the library figures describe (0 before the first
	// pass).
	Seq uint64 `json:"seq"`
	// ContentBytes is the library: the file content of the latest root;
	// LocalBytes of it is on this disk, OffloadedBytes only on storage
	// nodes. TreeBytes (the tree's nodes) never leave.
	ContentBytes   int64 `json:"content_bytes"`
	LocalBytes     int64 `json:"local_bytes"`
	OffloadedBytes int64 `json:"offloaded_bytes"`
	TreeBytes      int64 `json:"tree_bytes"`
	// StoreBytes is all content on this disk, older roots' included;
	// KeptBytes of it may not leave yet (too few audited copies);
	// ShortBytes is library content with fewer than Replicas copies that
	// no storage node could return (nothing is evicted meanwhile).
	StoreBytes int64 `json:"store_content_bytes"`
	KeptBytes  int64 `json:"kept_bytes"`
	ShortBytes int64 `json:"short_bytes"`
	// Warning says why the budget does not hold, if it does not.
	Warning  string    `json:"warning,omitempty"`
	LastPass time.Time `json:"last_pass,omitzero"`
	// Blocks fetched back for readers and passes, and reads that no
	// storage node could serve, since the daemon started.
	FetchedBack      int64 `json:"fetched_back_blocks"`
	FetchedBackBytes int64 `json:"fetched_back_bytes"`
	Unavailable      int64 `json:"unavailable_reads"`

	Nodes []NodeStats `json:"storage_nodes"`
}

// NodeStats is one storage node as the origin's audits know it.
type NodeStats struct {
	ID    tree.PublicKey `json:"id"`
	Addr  string         `json:"addr"`
	Alive bool           `json:"alive"`
	// State: verified (counts as a copy), verifying, syncing (not yet
	// complete at the latest root), gone (away, within the grace
	// period), failed, partial (pins less than the whole tree: never
	// counted), unverified.
	State    string `json:"state"`
	Complete uint64 `json:"complete_seq"` // what it claims
	Verified uint64 `json:"verified_seq"` // what audits showed
	// HeldBytes is the library it claims to hold; VerifiedBytes what it
	// is counted as a copy of.
	HeldBytes     int64     `json:"held_bytes"`
	VerifiedBytes int64     `json:"verified_bytes"`
	LastAudit     time.Time `json:"last_audit,omitzero"`
	LastPass      time.Time `json:"last_pass,omitzero"`
	Passed        uint64    `json:"audits_passed"`
	Failed        uint64    `json:"audits_failed"`
	FailedAt      time.Time `json:"failed_at,omitzero"`
	Reason        string    `json:"reason,omitempty"`
	// AuditBytes were received from it by audits since the daemon
	// started.
	AuditBytes int64 `json:"audit_bytes"`
}

// Stats returns the current state.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Stats{StoreMax: m.cfg.StoreMax, Replicas: m.cfg.Replicas,
		FetchedBack: m.fetchedBack.Load(), FetchedBackBytes: m.fetchedBytes.Load(), Unavailable: m.unavailable.Load()}
	p := m.pass
	lib := m.lib
	if lib != nil {
		st.ContentBytes, st.TreeBytes = lib.bytes, lib.nodeBytes
	}
	if lib != nil && p.seq == lib.root.Seq {
		st.Seq, st.LocalBytes, st.OffloadedBytes = p.seq, p.local, p.offloaded
		st.StoreBytes, st.KeptBytes, st.ShortBytes, st.Warning, st.LastPass = p.store, p.pinned, p.short, p.warning, p.at
	}
	s := m.snap.Load()
	for _, r := range m.ledger.Records {
		peer := m.peers[r.Node]
		n := NodeStats{ID: r.Node, Addr: r.Addr, Alive: peer.Alive, Complete: peer.Complete, Verified: r.Verified,
			LastAudit: r.LastAudit, LastPass: r.LastPass, Passed: r.Passed, Failed: r.Failed, FailedAt: r.FailedAt,
			Reason: r.Reason, AuditBytes: m.sent[r.Node]}
		var holder bool
		if s != nil {
			for _, v := range s.nodes {
				if v.id == r.Node {
					holder = v.holder
				}
			}
		}
		if lib != nil {
			if peer.Complete > 0 {
				n.HeldBytes = lib.bytes - m.sinceLocked(peer.Complete).size(lib)
			}
			if holder {
				n.VerifiedBytes = lib.bytes - m.sinceLocked(r.Verified).size(lib)
			}
		}
		switch {
		case !r.FailedAt.IsZero():
			n.State = "failed"
		case holder && peer.Alive:
			n.State = "verified"
		case holder:
			n.State = "gone"
		case m.peers[r.Node].ID == r.Node && !peer.PinsAll:
			n.State = "partial"
		case m.busy[r.Node]:
			n.State = "verifying"
		case lib != nil && peer.Complete < lib.root.Seq:
			n.State = "syncing"
		default:
			n.State = "unverified"
		}
		st.Nodes = append(st.Nodes, n)
	}
	return st
}

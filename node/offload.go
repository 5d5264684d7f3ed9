package node

import (
	"slices"

	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/offload"
)

// OffloadFile is the origin's audit ledger (package offload).
const OffloadFile = "offload.ledger"

// startOffload makes the origin's offload manager, which then serves
// every read of the origin's store (fetching evicted blocks back).
func (n *Node) startOffload(roots offload.Roots) error {
	dc := n.dir.Config
	m, err := offload.New(offload.Config{Store: n.dir.Store, Roots: roots, Client: n.client, Peers: n.storagePeers,
		LedgerPath: n.dir.FilePath(OffloadFile), StoreMax: dc.StoreMax, Replicas: dc.OffloadReplicas,
		AuditInterval: dc.AuditInterval.Duration, AuditTimeout: dc.AuditTimeout.Duration, Grace: dc.OffloadGrace.Duration,
		Logger: n.log.With("component", "offload")})
	if err != nil {
		return err
	}
	n.offload = m
	n.store = m
	n.Go(m.Run)
	return nil
}

// storagePeers is the swarm's storage nodes as offload sees them.
func (n *Node) storagePeers() []offload.Peer {
	var out []offload.Peer
	for _, m := range n.swarm.Members() {
		if m.Role != membership.RoleStorage {
			continue
		}
		out = append(out, offload.Peer{ID: m.ID, Addr: m.Meta.ProtoAddr,
			Alive:   m.State == membership.StateAlive || m.State == membership.StateSuspect,
			PinsAll: slices.Contains(m.Meta.Pins, "/"), Complete: m.Meta.Complete})
	}
	if b := n.swarm.Bans(); b != nil {
		for _, id := range b.Nodes {
			out = append(out, offload.Peer{ID: id, Banned: true})
		}
	}
	return out
}

// Offload is the origin's offload manager (nil elsewhere).
func (n *Node) Offload() *offload.Manager { return n.offload }

// auditedAt reports whether the origin's audits verified node id at root
// seq (or later) and it still counts as a copy: a storage node's own
// claim is not enough for the "safe to go offline" count.
func auditedAt(o *offload.Stats, id membership.NodeID, seq uint64) bool {
	for _, n := range o.Nodes {
		if n.ID == id {
			return n.State == "verified" && n.Verified >= seq
		}
	}
	return false
}

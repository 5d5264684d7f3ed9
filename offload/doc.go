// Package offload lets an origin keep only part of its content on its own
// disk: storage nodes at members' homes hold the library, and the origin
// believes them only as far as its own audits show.
//
// # Vocabulary
//
// The library is the file content (chunks) of the latest root; the tree
// nodes always stay on the origin (they are small and every lookup needs
// them). The budget (store_max) bounds the bytes of content on the
// origin's disk. A block is offloaded when the origin let it go and only
// storage nodes hold it.
//
// A storage node is verified at a root seq when the origin has checked,
// itself, every chunk of that root the node would be counted for: the
// ones the origin holds by a spot check (a random 256-byte range
// compared with its own copy), the others by reading a sample whole.
// From then on it is audited: at every AuditInterval, one random chunk
// it is counted for must come back whole and hash right. A node that
// answers "not found" or wrong bytes fails at once; one that does not
// answer MaxStrikes audits in a row, or is gone longer than Grace,
// fails too. A failed node counts as no copy of anything until it is
// verified again from scratch.
//
// A node counts as a copy of block b (a holder) while it is verified, not
// failed, not gone past Grace, and b is not new since the root it was
// verified at. Letting a block go takes more: Replicas holders that are
// alive, passed their last audit, and passed one since this process
// started (a restarted origin trusts its ledger to keep data, never to
// let it go).
//
// # How the budget is kept
//
// The origin's blocks are pinned. A pass (after a new root, a change in
// the swarm or an audit result, and periodically) walks the library:
// blocks with fewer than Replicas holders are kept (re-pinned, or
// fetched back from whoever still has them) first, and while any cannot
// be, nothing is evicted at all; then blocks with enough copies move to
// the store's cache (blockstore.Disk.Unpin, in order of last use), and
// the cache's quota is set to the budget minus the content that must
// stay. The store evicts the least recently used cached blocks past it,
// and asks Manager (SetEvictable) before each one, so a block whose
// copies were just lost is never evicted between an audit and the next
// pass.
//
// Reads on the origin go through Manager.Get, which fetches an evicted
// block back from a storage node, verified, and caches it within the
// budget: a hot file comes back, a cold one leaves again.
//
// # Persistence
//
// The ledger (what each node was verified at, its audit record, its last
// address) is a small binary file in the data directory, rewritten
// atomically after changes. Commands that run without the daemon (cat,
// fsck --remote) read the addresses from it (Remote, Prove).
package offload

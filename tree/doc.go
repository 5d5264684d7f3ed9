// Package tree is a site as a Merkle tree: directory, shard and file
// nodes stored as blocks and named by their BLAKE3 hashes; copy-on-write
// updates; path proofs that anyone who knows the root can check; and the
// signed, numbered roots that say which tree is the site now.
//
// # Nodes
//
// Every node encodes canonically (one value, one encoding) with a type tag
// and a format version, and is at most MaxNodeSize. A DirNode lists
// entries sorted by name; a directory that would not fit DirLeafMax is
// sharded into ShardNodes by the nibbles of BLAKE3(name), so its shape is
// a function of its entries alone. A FileNode lists the file's chunks
// (fixed size, DefaultChunkSize) or, for very large files, lower-level
// index nodes. docs/design.md has the byte layouts.
//
// # Building and reading
//
// A Builder writes nodes to a ReadWriter (a blockstore.Store): WriteFile
// chunks a stream, BuildDir stores a whole directory, Set and Remove
// rewrite only the nodes on one path. Reads take a Getter: Lookup,
// ListDir, ReadFile, Chunks and Walk.
//
// # Proofs
//
// A Proof is the encoded nodes from a tree hash to a path, ending with the
// target's own node. Verify checks every link and says whether the path
// was Found, or proven Absent, NotDir or SymlinkInPath; an error means the
// proof proves nothing. BuildProof collects one from a store.
//
// # Roots and the root log
//
// A Root is one signed version of a site: the hash of its tree's root
// directory node, a sequence number (newer wins), a signing time, an expiry
// and Prev, the Hash of the previous Root, so the versions form a hash
// chain. It encodes to a fixed RootSize (186) bytes whose first byte,
// TagRoot, can never be a node tag. The site's ed25519 key signs
// "grits-root-v1\x00" followed by everything before the signature; the
// context string keeps any other record the key signs from passing as a
// root. Root.Verify checks the key, the signature, the fields, expiry and
// MaxClockSkew; Root.CheckSuccessor compares a root with the last one
// accepted and tells a rollback (ErrRollback), a repeat (ErrSameRoot) and
// a site key that signed two histories (ErrEquivocation) apart. A Log is
// the append-only file of every root a node has accepted ("GRITSRL1", then
// length, record and CRC-32C per root, each append fsynced): on open it
// cuts off a record torn by a crash and reports any other damage as
// ErrLogCorrupt without touching the file. The log keeps the chain
// unbroken but does not verify signatures: its callers have already
// verified against a site key from a config the log does not know, and old
// roots expire, which must not erase history.
package tree

// Package blockstore stores content-addressed blocks: the bottom layer of
// grits, which every other package reads and writes through.
//
// # Vocabulary
//
// A block is up to MaxBlockSize (1 MiB) bytes: a chunk of a file or a tree
// node. Its Hash is the BLAKE3-256 digest of those bytes, written as "b3-"
// and 64 lower-case hex digits; a block has no other name. A Store
// computes the hash of what it is given (it never trusts a caller's) and
// verifies what it reads back, so Get never returns bytes that do not hash
// to the requested Hash.
//
// Every stored block has a residency. Pinned blocks are kept until deleted:
// a node's own content and whatever it has promised to serve. Cached blocks
// are kept while they fit in the store's quota, a byte limit on cached
// blocks only; after each Put of a cached block and each unpinning, the
// least recently used cached blocks are evicted until the quota holds.
// Put and Get count as uses; Has, Stat and Walk do not. Two rules settle
// the edge cases:
//
//   - The block a Put just stored is never evicted by that Put, even if it
//     alone exceeds the quota (a Put that stored a block only to delete it
//     would be useless); everything older goes instead. Quota 0 thus keeps
//     exactly the newest cached block.
//   - A block being unpinned becomes the least recently used cached block:
//     nothing needs it any more, so it goes before blocks in use.
//
// Residency only goes up by itself: putting a pinned block again as
// cached leaves it pinned. SetResidency moves it either way.
//
// A Disk also lets its owner steer eviction while it runs: SetQuota moves
// the quota, SetEvictable installs a check every block must pass before
// it is evicted, Unpin hands over a batch of pinned blocks to the cache
// in the order of their last uses, and Peek reads a block without
// counting as a use. An origin that keeps only part of its content
// locally (package offload) drives its store with these.
//
// # Deferred writes
//
// A Put returns once the block is durable, which on disk costs an fsync of
// the file and of its directory. A bulk writer (an import of thousands of
// blocks) sets PutOptions.Deferred to skip both and calls Store.Sync once
// at the end, before it records anything that refers to the blocks. Until
// then a crash may lose deferred blocks or leave them truncated; Put
// replaces a stored file of the wrong size, and Get catches the rest.
//
// # Corrupt blocks
//
// A block whose stored bytes no longer hash to its name (bit rot, a
// truncated write, tampering) is never served. Get reports it as a
// *CorruptError (errors.Is(err, ErrCorrupt)), moves the bad copy aside and
// forgets the block, which from then on reads as ErrNotFound: the caller
// fetches it again from a peer, and a Put of the right bytes heals the
// store.
//
// # Disk layout
//
// A Disk keeps one file per block under its directory:
//
//	pinned/ab/ab12...ef   a pinned block, named by its hash's 64 hex digits,
//	                      in a shard directory named by the first two
//	cached/ab/ab12...ef   a cached block; its mtime is its last recorded use
//	tmp/                  blocks being written, renamed into place when done
//	corrupt/<hex>.<ns>    bad copies moved aside, for inspection; never
//	                      read or cleaned up by the store
//
// The directory a file is in is its residency, so residency survives
// restarts and changes atomically by rename; the LRU order survives as
// mtimes, written at most once per DiskConfig.TouchInterval per block.
// Block files are read-only. Several processes may open one directory:
// writes go through uniquely named temporary files and renames, so no
// reader ever sees a partial block and no pinned block is lost, but each
// process enforces the quota over the blocks it knows of, its Stats lag
// behind the others' changes, and a non-deferred Put that finds a block
// another process wrote deferred trusts it to be durable. OpenDisk deletes files in tmp/ older
// than DiskConfig.TmpMaxAge and ignores, with a warning, anything in the
// trees that is not a well-named block file. If a block turns up in both
// trees (two processes racing, or a crash mid-rename), pinned wins.
package blockstore

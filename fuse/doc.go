// Package fuse is the site as a file system (hanwen/go-fuse, its fs API;
// go-fuse lives only here).
//
// # The origin's read-write mount
//
// The working tree holds every entry the operator's programs wrote, in
// memory once a directory is read, over two Merkle trees in the block
// store: the published tree (the directory at the mount's path in the
// newest signed root) and the held-back tree (entries the publish rule
// keeps out, with skeleton copies of their published parent
// directories). A directory is loaded as the union of its two sides.
//
// A file being written is staged (in memory up to one chunk, else in a
// staging file in the state directory). Every close(2) and fsync chunks
// it into the store (tree.Builder's WriteFile) and sets the new version
// into the working tree. After a
// quiet period (or when fsync asks) a commit rebuilds the directories
// that changed, bottom up, into both trees, syncs the store, records the
// state (the held-back tree, the published tree it goes with, and the
// one before) durably, and then appends a signed root. fsync returns
// after that, so what it covered survives kill -9 and power loss; a
// state written whose root is missing is finished at the next mount.
//
// Directories are rebuilt from their entries (tree.Builder.BuildDir),
// so a change costs the nodes of the directories on its path, and a
// rename is one change: the commit sees the tree before it or after it.
//
// # Read-only mounts
//
// Every other node mounts the newest root read-only and lazily: nodes
// and chunks come through a Getter (the swarm's Fetcher), verified, on
// first read, with chunks fetched in parallel ahead of a sequential
// reader. A file's inode number names its path and content, so an open
// file keeps the version it opened; a directory's names only its path,
// so it is stable for the mount's life. A new root invalidates the
// kernel's entries for the names that changed, from the goroutine that
// follows the roots (never from inside a FUSE request, where go-fuse's
// notifications can deadlock). Listings stream a directory leaf by
// leaf. .grits/roots/<seq>/ holds every retained root.
package fuse

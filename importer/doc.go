// Package importer turns a directory (or a single file) on the local file
// system into a grits tree: it walks the source, hashes files in parallel
// into chunks and file nodes, builds the directory nodes bottom-up, and
// returns the entry of the imported top. It never commits a root: the
// caller signs and appends one only when Import returned without error,
// so a failed or interrupted import changes nothing a reader can see.
//
// Re-imports are incremental: a State remembers, per relative path, the
// size, mtime and inode a file had and the file node it produced; a file
// whose metadata still match (and whose blocks are still in the store) is
// not read again.
//
// Modes are normalised the way git does (0644 or 0755 for files, 0755 for
// directories) so that the same content has the same hash on any machine
// whatever its umask; mtimes are stored only on request.
package importer

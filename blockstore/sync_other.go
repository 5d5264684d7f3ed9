//go:build unix && !linux

package blockstore

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// syncFS falls back to sync(2) where syncfs(2) does not exist. It flushes
// every file system, and POSIX lets it return before the writes finish,
// so Deferred puts are only as safe as the platform's sync.
func syncFS(dir string) error {
	return unix.Sync()
}

// renameNoReplace renames src to dst unless dst exists (fs.ErrExist).
// Without renameat2 the check and the rename are two steps; the callers
// tolerate the race (they re-check under the stripe lock on ErrExist).
func renameNoReplace(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: fs.ErrExist}
	}
	return os.Rename(src, dst)
}

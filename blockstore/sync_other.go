//go:build unix && !linux

package blockstore

import "golang.org/x/sys/unix"

// syncFS falls back to sync(2) where syncfs(2) does not exist. It flushes
// every file system, and POSIX lets it return before the writes finish,
// so Deferred puts are only as safe as the platform's sync.
func syncFS(dir string) error {
	return unix.Sync()
}

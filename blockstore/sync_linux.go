package blockstore

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the whole file system holding dir with one syncfs(2):
// far cheaper than an fsync per file and directory after a bulk import.
// Since Linux 5.8 it also reports writeback errors on that file system.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var syncErr error
	if err := sc.Control(func(fd uintptr) { syncErr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	if syncErr != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: syncErr}
	}
	return nil
}

// renameNoReplace renames src to dst unless dst exists (fs.ErrExist), in
// one syscall: it replaces a stat-then-rename pair on the path of every
// new block, and closes that pair's race with other processes.
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// File systems without RENAME_NOREPLACE: check, then rename.
		if _, serr := os.Lstat(dst); serr == nil {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: fs.ErrExist}
		}
		return os.Rename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

package fuse

import (
	"context"
	"io"
	"slices"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/grits-cdn/grits/tree"
)

// rwNode is the kernel's view of one node of the origin's working tree.
// go-fuse may drop and recreate it; the node it points to lives as long
// as the mount.
type rwNode struct {
	fs.Inode
	m *Mount
	n *node
}

var (
	_ fs.NodeGetattrer  = (*rwNode)(nil)
	_ fs.NodeSetattrer  = (*rwNode)(nil)
	_ fs.NodeLookuper   = (*rwNode)(nil)
	_ fs.NodeReaddirer  = (*rwNode)(nil)
	_ fs.NodeMkdirer    = (*rwNode)(nil)
	_ fs.NodeCreater    = (*rwNode)(nil)
	_ fs.NodeUnlinker   = (*rwNode)(nil)
	_ fs.NodeRmdirer    = (*rwNode)(nil)
	_ fs.NodeRenamer    = (*rwNode)(nil)
	_ fs.NodeSymlinker  = (*rwNode)(nil)
	_ fs.NodeReadlinker = (*rwNode)(nil)
	_ fs.NodeLinker     = (*rwNode)(nil)
	_ fs.NodeMknoder    = (*rwNode)(nil)
	_ fs.NodeOpener     = (*rwNode)(nil)
	_ fs.NodeFsyncer    = (*rwNode)(nil)
	_ fs.NodeStatfser   = (*rwNode)(nil)
)

// bg is the context store operations run in: a FUSE request's context is
// cancelled when the caller gets a signal, and a change must not stop
// half-way because of that.
func (r *rwNode) bg() context.Context { return r.m.ctx }

func (r *rwNode) work() *work { return r.m.origin.w }

func typeBits(k tree.Kind) uint32 {
	switch k {
	case tree.KindDir:
		return syscall.S_IFDIR
	case tree.KindSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// fill sets a's fields from n; the caller holds w.mu.
func (m *Mount) fill(n *node, a *fuse.Attr) {
	a.Ino = n.ino
	a.Mode = typeBits(n.kind) | n.mode
	a.Nlink = 1
	switch n.kind {
	case tree.KindDir:
		a.Size = 4096
		a.Nlink = 2
		for _, c := range n.children {
			if c.kind == tree.KindDir {
				a.Nlink++
			}
		}
	case tree.KindSymlink:
		a.Size = uint64(len(n.target))
	default:
		a.Size = n.size
	}
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = blockSize
	mt, ct := n.mtime, n.ctime
	if ct.Before(mt) {
		ct = mt
	}
	a.SetTimes(&mt, &mt, &ct)
	a.Owner = fuse.Owner{Uid: m.uid, Gid: m.gid}
}

// blockSize is the st_blksize the mount reports: tools size their
// buffers by it, and every write is a round trip to this process.
const blockSize = 1 << 20

func (r *rwNode) child(ctx context.Context, c *node, out *fuse.EntryOut) *fs.Inode {
	return r.NewInode(ctx, &rwNode{m: r.m, n: c}, fs.StableAttr{Mode: typeBits(c.kind), Ino: c.ino})
}

func checkName(name string) syscall.Errno {
	if err := tree.ValidName(name); err != nil {
		if !utf8.ValidString(name) {
			return syscall.EILSEQ
		}
		return syscall.EINVAL
	}
	return 0
}

func (r *rwNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	w := r.work()
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.n.kind == tree.KindDir {
		if err := w.load(r.bg(), r.n); err != nil {
			return w.errno("getattr", err)
		}
	}
	r.m.fill(r.n, &out.Attr)
	return 0
}

// isGrits says whether name in r is .grits, the snapshots' directory,
// which shadows an entry of that name in the tree (as on read-only
// mounts) and is never part of the working tree.
func (r *rwNode) isGrits(name string) bool { return name == gritsDir && r.IsRoot() }

func (r *rwNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if r.isGrits(name) {
		return r.m.gritsInode(ctx, r.EmbeddedInode(), out), 0
	}
	w := r.work()
	w.mu.Lock()
	if err := w.load(r.bg(), r.n); err != nil {
		w.mu.Unlock()
		return nil, w.errno("lookup", err)
	}
	c := r.n.children[name]
	if c == nil {
		w.mu.Unlock()
		return nil, syscall.ENOENT
	}
	if c.kind == tree.KindDir {
		if err := w.load(r.bg(), c); err != nil {
			w.mu.Unlock()
			return nil, w.errno("lookup", err)
		}
	}
	r.m.fill(c, &out.Attr)
	w.mu.Unlock()
	return r.child(ctx, c, out), 0
}

func (r *rwNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	w := r.work()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.load(r.bg(), r.n); err != nil {
		return nil, w.errno("readdir", err)
	}
	list := make([]fuse.DirEntry, 0, len(r.n.children)+2)
	up := r.n.ino
	if r.n.parent != nil {
		up = r.n.parent.ino
	}
	list = append(list, fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: r.n.ino}, fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: up})
	for name, c := range r.n.children {
		if !r.isGrits(name) {
			list = append(list, fuse.DirEntry{Name: name, Mode: typeBits(c.kind), Ino: c.ino})
		}
	}
	if r.IsRoot() {
		list = append(list, fuse.DirEntry{Name: gritsDir, Mode: syscall.S_IFDIR, Ino: gritsIno})
	}
	// A stable order: readers that restart a listing must not skip.
	slices.SortFunc(list[2:], func(a, b fuse.DirEntry) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return fs.NewListDirStream(list), 0
}

// add creates a child of kind k in r's directory.
func (r *rwNode) add(ctx context.Context, name string, k tree.Kind, mode uint32, init func(*node), out *fuse.EntryOut) (*node, *fs.Inode, syscall.Errno) {
	if en := checkName(name); en != 0 {
		return nil, nil, en
	}
	if r.isGrits(name) {
		return nil, nil, syscall.EPERM
	}
	w := r.work()
	w.mu.Lock()
	if err := w.load(r.bg(), r.n); err != nil {
		w.mu.Unlock()
		return nil, nil, w.errno("create", err)
	}
	if r.n.parent == nil && r.n != w.root {
		w.mu.Unlock()
		return nil, nil, syscall.ENOENT // the directory was removed
	}
	if r.n.children[name] != nil {
		w.mu.Unlock()
		return nil, nil, syscall.EEXIST
	}
	now := time.Now()
	c := w.newNode(k, mode, now)
	c.parent, c.name = r.n, name
	init(c)
	r.n.children[name] = c
	r.n.mtime, r.n.ctime = now, now
	w.touch(r.n)
	r.m.fill(c, &out.Attr)
	w.mu.Unlock()
	return c, r.child(ctx, c, out), 0
}

func (r *rwNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	_, in, en := r.add(ctx, name, tree.KindDir, mode, func(c *node) { c.children = map[string]*node{} }, out)
	return in, en
}

func (r *rwNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	w := r.work()
	c, in, en := r.add(ctx, name, tree.KindFile, mode, func(c *node) { c.hash, c.direct = w.emptyFile, false }, out)
	if en != 0 {
		return nil, nil, 0, en
	}
	return in, r.m.openFile(c, flags), 0, 0
}

func (r *rwNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if mode&syscall.S_IFMT != syscall.S_IFREG {
		// A site has no devices, FIFOs or sockets to publish.
		return nil, syscall.EPERM
	}
	w := r.work()
	_, in, en := r.add(ctx, name, tree.KindFile, mode, func(c *node) { c.hash, c.direct = w.emptyFile, false }, out)
	return in, en
}

func (r *rwNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if target == "" || len(target) > tree.MaxSymlinkLen {
		return nil, syscall.ENAMETOOLONG
	}
	_, in, en := r.add(ctx, name, tree.KindSymlink, 0o777, func(c *node) { c.target, c.size = target, uint64(len(target)) }, out)
	return in, en
}

func (r *rwNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	w := r.work()
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.n.kind != tree.KindSymlink {
		return nil, syscall.EINVAL
	}
	return []byte(r.n.target), 0
}

// Link refuses hard links: a tree entry is one name, and two names that
// share content are two entries.
func (r *rwNode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (r *rwNode) remove(name string, dir bool) syscall.Errno {
	if r.isGrits(name) {
		return syscall.EPERM
	}
	w := r.work()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.load(r.bg(), r.n); err != nil {
		return w.errno("remove", err)
	}
	c := r.n.children[name]
	switch {
	case c == nil:
		return syscall.ENOENT
	case dir && c.kind != tree.KindDir:
		return syscall.ENOTDIR
	case !dir && c.kind == tree.KindDir:
		return syscall.EISDIR
	}
	if dir {
		if err := w.load(r.bg(), c); err != nil {
			return w.errno("rmdir", err)
		}
		if len(c.children) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	delete(r.n.children, name)
	c.parent = nil
	now := time.Now()
	r.n.mtime, r.n.ctime = now, now
	w.touch(r.n)
	return 0
}

func (r *rwNode) Unlink(ctx context.Context, name string) syscall.Errno { return r.remove(name, false) }
func (r *rwNode) Rmdir(ctx context.Context, name string) syscall.Errno  { return r.remove(name, true) }

func (r *rwNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if en := checkName(newName); en != 0 {
		return en
	}
	np, ok := newParent.(*rwNode)
	if !ok {
		return syscall.EROFS // into .grits, the only other nodes
	}
	if r.isGrits(name) || np.isGrits(newName) {
		return syscall.EPERM
	}
	w := r.work()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range []*node{r.n, np.n} {
		if err := w.load(r.bg(), d); err != nil {
			return w.errno("rename", err)
		}
	}
	c := r.n.children[name]
	if c == nil {
		return syscall.ENOENT
	}
	for p := np.n; p != nil; p = p.parent {
		if p == c {
			return syscall.EINVAL // into itself
		}
	}
	t := np.n.children[newName]
	now := time.Now()
	switch {
	case flags&unix.RENAME_EXCHANGE != 0:
		if t == nil {
			return syscall.ENOENT
		}
		for p := r.n; p != nil; p = p.parent {
			if p == t {
				return syscall.EINVAL
			}
		}
		r.n.children[name], np.n.children[newName] = t, c
		t.parent, t.name = r.n, name
		t.ctime = now
	case flags&^uint32(unix.RENAME_NOREPLACE) != 0:
		return syscall.EINVAL
	case t != nil && flags&unix.RENAME_NOREPLACE != 0:
		return syscall.EEXIST
	case t == c:
		return 0
	case t != nil:
		if t.kind == tree.KindDir {
			if c.kind != tree.KindDir {
				return syscall.EISDIR
			}
			if err := w.load(r.bg(), t); err != nil {
				return w.errno("rename", err)
			}
			if len(t.children) > 0 {
				return syscall.ENOTEMPTY
			}
		} else if c.kind == tree.KindDir {
			return syscall.ENOTDIR
		}
		t.parent = nil
		fallthrough
	default:
		delete(r.n.children, name)
		np.n.children[newName] = c
	}
	c.parent, c.name, c.ctime = np.n, newName, now
	r.n.mtime, r.n.ctime, np.n.mtime, np.n.ctime = now, now, now, now
	w.touch(r.n)
	w.touch(np.n)
	return 0
}

func (r *rwNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	w := r.work()
	n := r.n
	if size, ok := in.GetSize(); ok {
		if n.kind != tree.KindFile {
			return syscall.EISDIR
		}
		if err := r.m.truncate(n, size); err != nil {
			return w.errno("truncate", err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	changed := false
	if mode, ok := in.GetMode(); ok {
		n.mode = mode & 0o777
		changed = true
	}
	if mt, ok := in.GetMTime(); ok {
		n.mtime = mt
		changed = true
	}
	// Ownership is not stored: everything belongs to the user who
	// mounted. Accepting chown lets tar and rsync -a run as root.
	if changed {
		n.ctime = now
		w.changedEntry(n)
	}
	if n.kind == tree.KindDir {
		if err := w.load(r.bg(), n); err != nil {
			return w.errno("setattr", err)
		}
	}
	r.m.fill(n, &out.Attr)
	return 0
}

// changedEntry records that n's own entry (mode, times, content)
// changed; the caller holds w.mu.
func (w *work) changedEntry(n *node) {
	switch {
	case n.parent != nil:
		w.touch(n.parent)
	case n == w.root:
		w.touch(n)
	}
}

func (r *rwNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if r.n.kind != tree.KindFile {
		return nil, 0, syscall.EISDIR
	}
	h := r.m.openFile(r.n, flags)
	if flags&syscall.O_TRUNC != 0 && h.writable {
		if err := r.m.truncate(r.n, 0); err != nil {
			h.Release(ctx)
			return nil, 0, r.work().errno("open", err)
		}
	}
	return h, 0, 0
}

func (r *rwNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	w := r.work()
	if r.n.kind == tree.KindFile {
		r.n.cmu.Lock()
		err := r.m.chunk(r.n)
		r.n.cmu.Unlock()
		if err != nil {
			return w.errno("fsync", err)
		}
	}
	w.mu.Lock()
	gen := w.gen
	w.mu.Unlock()
	if err := r.m.origin.waitDurable(gen); err != nil {
		return w.errno("fsync", err)
	}
	return 0
}

func (r *rwNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return r.m.statfs(out)
}

// rwHandle is an open file of the read-write mount.
type rwHandle struct {
	m        *Mount
	n        *node
	writable bool
	// The kernel may send reads of one handle at once (async reads):
	// rmu guards which reader the handle uses; the reader itself is
	// safe for concurrent reads.
	rmu    sync.Mutex
	reader *fileReader
}

var (
	_ fs.FileReader   = (*rwHandle)(nil)
	_ fs.FileWriter   = (*rwHandle)(nil)
	_ fs.FileFlusher  = (*rwHandle)(nil)
	_ fs.FileReleaser = (*rwHandle)(nil)
)

func (m *Mount) openFile(n *node, flags uint32) *rwHandle {
	h := &rwHandle{m: m, n: n, writable: flags&syscall.O_ACCMODE != syscall.O_RDONLY}
	if h.writable {
		n.cmu.Lock()
		n.writers++
		n.cmu.Unlock()
	}
	return h
}

func (h *rwHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n := h.n
	n.cmu.Lock()
	if n.stage != nil {
		k, err := n.stage.readAt(dest, off)
		n.cmu.Unlock()
		if err != nil && err != io.EOF {
			return nil, h.m.origin.w.errno("read", err)
		}
		return fuse.ReadResultData(dest[:k]), 0
	}
	hash, size, direct := n.hash, n.hashSize, n.direct
	n.cmu.Unlock()
	h.rmu.Lock()
	if h.reader == nil || h.reader.hash != hash {
		h.reader = newFileReader(h.m.origin.w.reader, hash, size, direct, nil)
	}
	r := h.reader
	h.rmu.Unlock()
	k, err := r.ReadAt(h.m.ctx, dest, off)
	if err != nil {
		return nil, h.m.origin.w.errno("read", err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (h *rwHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if !h.writable {
		return 0, syscall.EBADF
	}
	n, w := h.n, h.m.origin.w
	n.cmu.Lock()
	if err := h.m.ensureStage(n); err != nil {
		n.cmu.Unlock()
		return 0, w.errno("write", err)
	}
	k, err := n.stage.writeAt(h.m, data, off)
	n.cmu.Unlock()
	// The mtime is the kernel's: with the writeback cache it stamps
	// writes itself and sends the time with a setattr; a time taken
	// here, when the pages arrive, would be later than the one stat
	// showed.
	w.mu.Lock()
	if end := uint64(off) + uint64(k); end > n.size {
		n.size = end
	}
	w.mu.Unlock()
	if err != nil {
		return uint32(k), w.errno("write", err)
	}
	return uint32(k), 0
}

// Flush runs at every close(2): the content goes into the tree now, so
// the next open anywhere sees it (close-to-open), and an error reaches
// the program that closed.
func (h *rwHandle) Flush(ctx context.Context) syscall.Errno {
	if !h.writable {
		return 0
	}
	h.n.cmu.Lock()
	err := h.m.chunk(h.n)
	h.n.cmu.Unlock()
	return h.m.origin.w.errno("close", err)
}

func (h *rwHandle) Release(ctx context.Context) syscall.Errno {
	if !h.writable {
		return 0
	}
	n := h.n
	n.cmu.Lock()
	defer n.cmu.Unlock()
	n.writers--
	if err := h.m.chunk(n); err != nil {
		h.m.origin.w.errno("release", err)
		return 0 // the staging file stays; the next close or unmount tries again
	}
	if n.writers == 0 {
		h.m.dropStage(n)
	}
	return 0
}

package fuse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// Roots is where a read-only mount learns the newest root and the ones
// it keeps (transport.Roots satisfies it).
type Roots interface {
	Latest() (tree.Root, bool)
	Roots() []tree.Root
}

// ReplicaConfig configures a read-only mount.
type ReplicaConfig struct {
	// Getter returns verified blocks: the node's store, fetching what
	// it lacks from the swarm (membership.Fetcher).
	Getter tree.Getter
	Roots  Roots
	// Poll is how often the mount looks for a new root (default 200ms).
	Poll time.Duration
	// ReadAhead is how many chunks a sequential reader has fetched ahead
	// of it at most (default 16: 4 MiB).
	ReadAhead int
	// ReadDirPlus lets the kernel ask for every entry's attributes with
	// the listing (fast ls -l; one inode per entry in the kernel and
	// here); off, a listing of a huge directory costs only its names.
	ReadDirPlus bool
	// Retain is how many of the newest roots .grits/roots shows
	// (default 10).
	Retain int
	// Owner is who every entry belongs to (default: this process's user).
	Owner *Owner
	// Space, if set, tells statfs the node's cache size and what is
	// free of it.
	Space  func() (total, free uint64)
	Logger *slog.Logger
}

// replica is the read-only side of a Mount.
type replica struct {
	cfg   ReplicaConfig
	m     *Mount
	ahead chan struct{} // read-ahead fetch slots

	mu   sync.Mutex
	cur  tree.Root
	have bool
	dirs map[dirKey]blockstore.Hash // resolved directories, per tree

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

type dirKey struct {
	tree blockstore.Hash
	path string
}

// maxResolved bounds the directory cache; it is cleared when full.
const maxResolved = 1 << 14

// MountReplica mounts the newest root read-only at dir, following new
// roots as they arrive. A stale mount there is cleared first.
func MountReplica(ctx context.Context, dir string, cfg ReplicaConfig) (*Mount, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if cfg.Getter == nil || cfg.Roots == nil {
		return nil, errors.New("mount: Getter and Roots are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.ReadAhead <= 0 {
		cfg.ReadAhead = 16
	}
	if cfg.Retain <= 0 {
		cfg.Retain = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	uid, gid := ownerOr(cfg.Owner)
	m := &Mount{dir: dir, log: cfg.Logger, uid: uid, gid: gid}
	m.ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r := newReplica(m, cfg)
	m.replica = r
	r.cur, r.have = cfg.Roots.Latest()
	if err := ClearStale(dir, m.log); err != nil {
		m.cancel()
		return nil, err
	}
	sec := kernelTimeout
	mo := mountOptions("grits-ro")
	mo.DirectMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV
	mo.DisableReadDirPlus = !cfg.ReadDirPlus
	opts := &fs.Options{MountOptions: mo, EntryTimeout: &sec, AttrTimeout: &sec,
		UID: m.uid, GID: m.gid, RootStableAttr: &fs.StableAttr{Ino: 1}, NullPermissions: true}
	root := &roDir{m: m, view: view{}, path: nil}
	m.server, err = fs.Mount(dir, root, opts)
	if err != nil {
		m.cancel()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	go r.follow(root)
	return m, nil
}

func newReplica(m *Mount, cfg ReplicaConfig) *replica {
	return &replica{cfg: cfg, m: m, ahead: make(chan struct{}, cfg.ReadAhead), dirs: map[dirKey]blockstore.Hash{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// snapshotReader is the read-only side of the origin's mount: it only
// serves .grits/roots, reading through the mount's content reader, and
// follows nothing.
func snapshotReader(m *Mount, g tree.Getter) *replica {
	r := newReplica(m, ReplicaConfig{Getter: g, ReadAhead: 16, Logger: m.log})
	close(r.done)
	return r
}

// close stops following; a Mount may be closed twice.
func (r *replica) close() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

// current is the newest root the mount shows.
func (r *replica) current() (tree.Root, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, r.have
}

// follow takes each new root and tells the kernel which of the names it
// has cached changed. The notifications go out from here, never from
// inside a FUSE request, where they can deadlock.
func (r *replica) follow(root *roDir) {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		latest, ok := r.cfg.Roots.Latest()
		if !ok {
			continue
		}
		r.mu.Lock()
		old, had := r.cur, r.have
		changed := !had || latest.Seq > old.Seq
		if changed {
			r.cur, r.have = latest, true
		}
		r.mu.Unlock()
		if !changed || had && old.Tree == latest.Tree {
			continue
		}
		r.m.log.Info("mount: following a new root", "seq", latest.Seq, "tree", latest.Tree.Short())
		var before blockstore.Hash
		if had {
			before = old.Tree
		}
		r.invalidate(root.EmbeddedInode(), nil, before, latest.Tree)
	}
}

// invalidate walks the inodes the kernel knows under dir (at path p) and
// drops the kernel's entries for every name whose entry differs in the
// new tree t; a directory that is the same in the tree before is
// skipped whole.
func (r *replica) invalidate(dir *fs.Inode, p tree.Path, before, t blockstore.Hash) {
	kids := dir.Children()
	if len(kids) == 0 {
		return
	}
	top, err := r.resolve(r.m.ctx, t, p)
	if !before.IsZero() && err == nil {
		if was, err := r.resolve(r.m.ctx, before, p); err == nil && was == top {
			return
		}
	}
	for name, child := range kids {
		if name == gritsDir && len(p) == 0 {
			continue
		}
		var now tree.Entry
		var found bool
		if err == nil {
			now, found, _ = tree.FindEntry(r.m.ctx, r.cfg.Getter, top, name)
		}
		var was tree.Entry
		switch op := child.Operations().(type) {
		case *roDir:
			was = op.entry()
		case *roFile:
			op.mu.Lock()
			was = op.e
			op.mu.Unlock()
		case *roLink:
			was = op.e
		default:
			continue
		}
		if !found || now.Kind != was.Kind || now.Hash != was.Hash || now.Target != was.Target {
			dir.NotifyEntry(name)
			continue
		}
		if now.Kind == tree.KindDir {
			r.invalidate(child, append(p[:len(p):len(p)], name), before, t)
		}
		if now.Mode != was.Mode || !now.MTime.Equal(was.MTime) || now.Size != was.Size {
			child.NotifyContent(-1, 0) // attributes only
		}
	}
}

// resolve returns the top node of directory p in tree t.
func (r *replica) resolve(ctx context.Context, t blockstore.Hash, p tree.Path) (blockstore.Hash, error) {
	if len(p) == 0 {
		return t, nil
	}
	key := dirKey{t, p.String()}
	r.mu.Lock()
	h, ok := r.dirs[key]
	r.mu.Unlock()
	if ok {
		return h, nil
	}
	parent, err := r.resolve(ctx, t, p[:len(p)-1])
	if err != nil {
		return blockstore.Hash{}, err
	}
	e, found, err := tree.FindEntry(ctx, r.cfg.Getter, parent, p[len(p)-1])
	switch {
	case err != nil:
		return blockstore.Hash{}, err
	case !found:
		return blockstore.Hash{}, syscall.ENOENT
	case e.Kind != tree.KindDir:
		return blockstore.Hash{}, syscall.ENOTDIR
	}
	r.mu.Lock()
	if len(r.dirs) >= maxResolved {
		clear(r.dirs)
	}
	r.dirs[key] = e.Hash
	r.mu.Unlock()
	return e.Hash, nil
}

// view is the tree a directory belongs to: the newest root (seq 0), or
// one retained root under .grits/roots.
type view struct {
	seq  uint64
	tree blockstore.Hash
}

func (m *Mount) treeOf(v view) (blockstore.Hash, tree.Root, bool) {
	if v.seq != 0 {
		return v.tree, tree.Root{}, true
	}
	r, ok := m.replica.current()
	return r.Tree, r, ok
}

// inoOf derives a stable inode number: the same path in the same view
// keeps its number for the mount's life; a file's number also names its
// content, so a new version is a new inode whose page cache cannot mix
// with the version an open file still reads.
func inoOf(v view, e tree.Entry, p tree.Path) uint64 {
	b := make([]byte, 0, 128)
	b = binary.BigEndian.AppendUint64(b, v.seq)
	b = append(b, byte(e.Kind))
	b = append(b, p.String()...)
	b = append(b, 0)
	switch e.Kind {
	case tree.KindFile:
		b = append(b, e.Hash[:]...)
	case tree.KindSymlink:
		b = append(b, e.Target...)
	}
	h := blockstore.Sum(b)
	ino := binary.BigEndian.Uint64(h[:8]) >> 1
	if ino < 16 {
		ino += 16
	}
	return ino
}

func (m *Mount) fillEntry(e tree.Entry, ino uint64, a *fuse.Attr) {
	a.Ino = ino
	a.Mode = typeBits(e.Kind) | e.Mode
	a.Nlink = 1
	a.Size = e.Size
	if e.Kind == tree.KindDir {
		a.Nlink, a.Size = 2, 4096
	}
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = blockSize
	mt := e.MTime
	if mt.IsZero() {
		mt = time.Unix(0, 0)
	}
	a.SetTimes(&mt, &mt, &mt)
	a.Owner = fuse.Owner{Uid: m.uid, Gid: m.gid}
}

// dirLinks is a directory's link count as on a disk, 2 and one for each
// subdirectory, when its entries are one node; 1 (unknown, as btrfs
// says) for a sharded directory, whose count would cost a listing.
func (m *Mount) dirLinks(ctx context.Context, h blockstore.Hash) uint32 {
	n, err := tree.LoadNode(ctx, m.replica.cfg.Getter, h)
	d, ok := n.(*tree.DirNode)
	if err != nil || !ok {
		return 1
	}
	links := uint32(2)
	for _, e := range d.Entries {
		if e.Kind == tree.KindDir {
			links++
		}
	}
	return links
}

// errnoOf maps a tree or fetch error for the kernel.
func (m *Mount) errnoOf(what string, err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	m.log.Warn("mount: "+what, "err", err)
	return syscall.EIO
}

// roDir is a directory of a read-only mount.
type roDir struct {
	fs.Inode
	readOnly
	m    *Mount
	view view
	path tree.Path
	mu   sync.Mutex
	e    tree.Entry // as last seen
}

var (
	_ fs.NodeLookuper  = (*roDir)(nil)
	_ fs.NodeReaddirer = (*roDir)(nil)
	_ fs.NodeGetattrer = (*roDir)(nil)
	_ fs.NodeStatfser  = (*roDir)(nil)
)

func (d *roDir) entry() tree.Entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.e
}

// top resolves the directory in its view now.
func (d *roDir) top(ctx context.Context) (blockstore.Hash, syscall.Errno) {
	t, _, ok := d.m.treeOf(d.view)
	if !ok {
		return blockstore.Hash{}, syscall.ENOENT
	}
	h, err := d.m.replica.resolve(ctx, t, d.path)
	if err != nil {
		return blockstore.Hash{}, d.m.errnoOf("resolve", err)
	}
	return h, 0
}

func (d *roDir) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e := d.entry()
	if len(d.path) == 0 {
		// The top of a view: the root's time, the mode of a site.
		_, r, _ := d.m.treeOf(d.view)
		e = tree.Entry{Kind: tree.KindDir, Mode: 0o755, MTime: r.Time}
		if d.view.seq != 0 {
			e.MTime = d.e.MTime
		}
	} else if d.view.seq == 0 {
		if t, _, ok := d.m.treeOf(d.view); ok {
			if parent, err := d.m.replica.resolve(ctx, t, d.path[:len(d.path)-1]); err == nil {
				if now, found, err := tree.FindEntry(ctx, d.m.replica.cfg.Getter, parent, d.path[len(d.path)-1]); err == nil && found && now.Kind == tree.KindDir {
					d.mu.Lock()
					d.e = now
					d.mu.Unlock()
					e = now
				}
			}
		}
	}
	d.m.fillEntry(e, d.StableAttr().Ino, &out.Attr)
	if h, en := d.top(ctx); en == 0 {
		out.Attr.Nlink = d.m.dirLinks(ctx, h)
	}
	return 0
}

func (d *roDir) child(ctx context.Context, e tree.Entry, out *fuse.EntryOut) *fs.Inode {
	p := append(d.path[:len(d.path):len(d.path)], e.Name)
	ino := inoOf(d.view, e, p)
	d.m.fillEntry(e, ino, &out.Attr)
	if e.Kind == tree.KindDir {
		out.Attr.Nlink = d.m.dirLinks(ctx, e.Hash)
	}
	var n fs.InodeEmbedder
	switch e.Kind {
	case tree.KindDir:
		n = &roDir{m: d.m, view: d.view, path: p, e: e}
	case tree.KindSymlink:
		n = &roLink{e: e}
	default:
		n = &roFile{m: d.m, e: e, view: d.view, path: p}
	}
	return d.NewInode(ctx, n, fs.StableAttr{Mode: typeBits(e.Kind), Ino: ino})
}

func (d *roDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(d.path) == 0 && d.view.seq == 0 && name == gritsDir {
		return d.m.gritsInode(ctx, d.EmbeddedInode(), out), 0
	}
	top, en := d.top(ctx)
	if en != 0 {
		return nil, en
	}
	e, found, err := tree.FindEntry(ctx, d.m.replica.cfg.Getter, top, name)
	if err != nil {
		return nil, d.m.errnoOf("lookup", err)
	}
	if !found {
		return nil, syscall.ENOENT
	}
	return d.child(ctx, e, out), 0
}

func (d *roDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	top, en := d.top(ctx)
	if en != 0 {
		return nil, en
	}
	s := &dirStream{ctx: d.m.ctx, g: d.m.replica.cfg.Getter, view: d.view, path: d.path, stack: []shardPos{{h: top}}}
	ino := d.StableAttr().Ino
	up := ino
	if _, parent := d.Parent(); parent != nil {
		up = parent.StableAttr().Ino
	}
	s.extra = []fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR, Ino: ino}, {Name: "..", Mode: syscall.S_IFDIR, Ino: up}}
	if len(d.path) == 0 && d.view.seq == 0 {
		s.extra = append(s.extra, fuse.DirEntry{Name: gritsDir, Mode: syscall.S_IFDIR, Ino: gritsIno})
	}
	return s, 0
}

// Statfs reports the node's cache: its quota as the size, what the
// quota has left as free.
func (d *roDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return d.m.statfsAny(out)
}

// statfsAny answers statfs anywhere on the mount: the data directory's
// file system on the origin, the cache elsewhere.
func (m *Mount) statfsAny(out *fuse.StatfsOut) syscall.Errno {
	if m.origin != nil {
		return m.statfs(out)
	}
	out.NameLen = 255
	out.Bsize, out.Frsize = 4096, 4096
	if space := m.replica.cfg.Space; space != nil {
		total, free := space()
		out.Blocks = total / 4096
		out.Bfree = min(free, total) / 4096
		out.Bavail = out.Bfree
	}
	return 0
}

// roFile is one version of a file of a read-only mount.
type roFile struct {
	fs.Inode
	readOnly
	m    *Mount
	view view
	path tree.Path
	mu   sync.Mutex
	e    tree.Entry // the version's entry; mode and mtime as last seen
}

var (
	_ fs.NodeOpener    = (*roFile)(nil)
	_ fs.NodeGetattrer = (*roFile)(nil)
)

// Getattr answers for this version; a chmod or touch of the same
// content in a newer root shows (same content, same inode).
func (f *roFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	e := f.e
	f.mu.Unlock()
	if t, _, ok := f.m.treeOf(f.view); ok && f.view.seq == 0 {
		if parent, err := f.m.replica.resolve(ctx, t, f.path[:len(f.path)-1]); err == nil {
			now, found, err := tree.FindEntry(ctx, f.m.replica.cfg.Getter, parent, f.path[len(f.path)-1])
			if err == nil && found && now.Kind == tree.KindFile && now.Hash == e.Hash {
				f.mu.Lock()
				f.e, e = now, now
				f.mu.Unlock()
			}
		}
	}
	f.m.fillEntry(e, f.StableAttr().Ino, &out.Attr)
	return 0
}

// Open returns a handle on this version; the page cache is kept, since
// an inode's content never changes.
func (f *roFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	f.mu.Lock()
	e := f.e
	f.mu.Unlock()
	fr := newFileReader(f.m.replica.cfg.Getter, e.Hash, e.Size, e.Direct, f.m.replica.ahead)
	return &roHandle{m: f.m, r: fr}, fuse.FOPEN_KEEP_CACHE, 0
}

type roHandle struct {
	m *Mount
	r *fileReader
}

var _ fs.FileReader = (*roHandle)(nil)

func (h *roHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := h.r.ReadAt(h.m.ctx, dest, off)
	if err != nil {
		return nil, h.m.errnoOf("read", err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// roLink is a symlink of a read-only mount.
type roLink struct {
	fs.Inode
	readOnly
	e tree.Entry
}

func (l *roLink) Readlink(ctx context.Context) ([]byte, syscall.Errno) { return []byte(l.e.Target), 0 }

package fuse

import (
	"context"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/grits-cdn/grits/tree"
)

// .grits/roots/<seq>/: every retained root as a read-only snapshot, on
// read-only mounts and on the origin's read-write one alike.
const (
	gritsDir = ".grits"
	// The top bit keeps these apart from inoOf's numbers (63 bits) and
	// from the origin's working tree's (counted up from 2): go-fuse
	// takes two nodes with one number for one.
	gritsIno = 1<<63 | 2
	rootsIno = 1<<63 | 3
)

// snapshotTimeout is how long the kernel may trust a name under
// .grits/roots, present or absent: a commit adds a seq and gc drops one,
// and the origin's mount otherwise lets the kernel keep names a minute.
const snapshotTimeout = time.Second

// gritsInode is the .grits directory under parent, the top of a mount.
func (m *Mount) gritsInode(ctx context.Context, parent *fs.Inode, out *fuse.EntryOut) *fs.Inode {
	m.fillEntry(tree.Entry{Kind: tree.KindDir, Mode: 0o555}, gritsIno, &out.Attr)
	return parent.NewInode(ctx, &gritsNode{m: m}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: gritsIno})
}

// retained lists the roots .grits/roots shows, oldest first: on the
// origin, what its OriginConfig.Snapshots finds readable; elsewhere the
// newest Retain roots the node keeps.
func (m *Mount) retained(ctx context.Context) []tree.Root {
	if m.origin != nil {
		if m.origin.cfg.Snapshots == nil {
			return nil
		}
		rs, err := m.origin.cfg.Snapshots(ctx)
		if err != nil {
			m.log.Warn("mount: list the retained roots", "err", err)
		}
		return rs
	}
	rs := m.replica.cfg.Roots.Roots()
	if n := m.replica.cfg.Retain; len(rs) > n {
		rs = rs[len(rs)-n:]
	}
	return rs
}

// readOnly refuses every change under .grits. A read-only mount never
// sees one (the kernel refuses first); the origin's mount is read-write,
// and without these go-fuse would answer ENOTSUP.
type readOnly struct{}

func (readOnly) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (readOnly) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (readOnly) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Unlink(ctx context.Context, name string) syscall.Errno { return syscall.EROFS }
func (readOnly) Rmdir(ctx context.Context, name string) syscall.Errno  { return syscall.EROFS }
func (readOnly) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return syscall.EROFS
}

var (
	_ fs.NodeSetattrer = readOnly{}
	_ fs.NodeMkdirer   = readOnly{}
	_ fs.NodeCreater   = readOnly{}
	_ fs.NodeMknoder   = readOnly{}
	_ fs.NodeSymlinker = readOnly{}
	_ fs.NodeLinker    = readOnly{}
	_ fs.NodeUnlinker  = readOnly{}
	_ fs.NodeRmdirer   = readOnly{}
	_ fs.NodeRenamer   = readOnly{}
)

// gritsNode is .grits: one entry, roots.
type gritsNode struct {
	fs.Inode
	readOnly
	m *Mount
}

func (g *gritsNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	g.m.fillEntry(tree.Entry{Kind: tree.KindDir, Mode: 0o555}, gritsIno, &out.Attr)
	return 0
}

func (g *gritsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name != "roots" {
		return nil, syscall.ENOENT
	}
	g.m.fillEntry(tree.Entry{Kind: tree.KindDir, Mode: 0o555}, rootsIno, &out.Attr)
	return g.NewInode(ctx, &rootsNode{m: g.m}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: rootsIno}), 0
}

func (g *gritsNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream([]fuse.DirEntry{{Name: "roots", Mode: syscall.S_IFDIR, Ino: rootsIno}}), 0
}

func (g *gritsNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return g.m.statfsAny(out)
}

// rootsNode is .grits/roots: a directory per retained root, named by seq.
type rootsNode struct {
	fs.Inode
	readOnly
	m *Mount
}

func (r *rootsNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.m.fillEntry(tree.Entry{Kind: tree.KindDir, Mode: 0o555}, rootsIno, &out.Attr)
	return 0
}

func (r *rootsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	out.SetEntryTimeout(snapshotTimeout)
	out.SetAttrTimeout(snapshotTimeout)
	seq, err := strconv.ParseUint(name, 10, 64)
	if err != nil || seq == 0 {
		return nil, syscall.ENOENT
	}
	for _, rt := range r.m.retained(ctx) {
		if rt.Seq == seq {
			v := view{seq: seq, tree: rt.Tree}
			e := tree.Entry{Name: name, Kind: tree.KindDir, Mode: 0o555, MTime: rt.Time}
			ino := inoOf(v, e, nil)
			r.m.fillEntry(e, ino, &out.Attr)
			return r.NewInode(ctx, &roDir{m: r.m, view: v, e: e}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}), 0
		}
	}
	return nil, syscall.ENOENT
}

func (r *rootsNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var list []fuse.DirEntry
	for _, rt := range r.m.retained(ctx) {
		name := strconv.FormatUint(rt.Seq, 10)
		v := view{seq: rt.Seq, tree: rt.Tree}
		list = append(list, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: inoOf(v, tree.Entry{Kind: tree.KindDir}, nil)})
	}
	return fs.NewListDirStream(list), 0
}

func (r *rootsNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return r.m.statfsAny(out)
}

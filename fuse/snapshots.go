package fuse

import (
	"context"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/grits-cdn/grits/tree"
)

// .grits/roots/<seq>/: every retained root as a read-only snapshot.
const (
	gritsDir = ".grits"
	gritsIno = 2
	rootsIno = 3
)

func (d *roDir) gritsInode(ctx context.Context, out *fuse.EntryOut) *fs.Inode {
	e := tree.Entry{Kind: tree.KindDir, Mode: 0o555}
	d.m.fillEntry(e, gritsIno, &out.Attr)
	return d.NewInode(ctx, &gritsNode{m: d.m}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: gritsIno})
}

// gritsNode is .grits: one entry, roots.
type gritsNode struct {
	fs.Inode
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

// rootsNode is .grits/roots: a directory per retained root, named by seq.
type rootsNode struct {
	fs.Inode
	m *Mount
}

func (r *rootsNode) retained() []tree.Root {
	rs := r.m.replica.cfg.Roots.Roots()
	if n := r.m.replica.cfg.Retain; len(rs) > n {
		rs = rs[len(rs)-n:]
	}
	return rs
}

func (r *rootsNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.m.fillEntry(tree.Entry{Kind: tree.KindDir, Mode: 0o555}, rootsIno, &out.Attr)
	return 0
}

func (r *rootsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	seq, err := strconv.ParseUint(name, 10, 64)
	if err != nil || seq == 0 {
		return nil, syscall.ENOENT
	}
	for _, rt := range r.retained() {
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
	for _, rt := range r.retained() {
		name := strconv.FormatUint(rt.Seq, 10)
		v := view{seq: rt.Seq, tree: rt.Tree}
		list = append(list, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: inoOf(v, tree.Entry{Kind: tree.KindDir}, nil)})
	}
	return fs.NewListDirStream(list), 0
}

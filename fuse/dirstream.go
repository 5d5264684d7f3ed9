package fuse

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// dirStream lists a (possibly sharded) directory leaf by leaf, holding
// only the shard nodes on the way and one leaf: a listing of a huge
// directory needs no memory in proportion to it.
type dirStream struct {
	ctx   context.Context
	g     tree.Getter
	view  view
	path  tree.Path
	extra []fuse.DirEntry
	stack []shardPos
	leaf  []tree.Entry
	err   syscall.Errno
}

type shardPos struct {
	h    blockstore.Hash
	node *tree.ShardNode
	next int
}

func (s *dirStream) fill() {
	for len(s.leaf) == 0 && len(s.stack) > 0 && s.err == 0 {
		top := &s.stack[len(s.stack)-1]
		if top.node == nil {
			n, err := tree.LoadNode(s.ctx, s.g, top.h)
			if err != nil {
				s.err = syscall.EIO
				return
			}
			switch n := n.(type) {
			case *tree.DirNode:
				s.stack = s.stack[:len(s.stack)-1]
				s.leaf = n.Entries
				continue
			case *tree.ShardNode:
				top.node = n
			default:
				s.err = syscall.EIO
				return
			}
		}
		if top.next >= len(top.node.Children) {
			s.stack = s.stack[:len(s.stack)-1]
			continue
		}
		c := top.node.Children[top.next]
		top.next++
		s.stack = append(s.stack, shardPos{h: c.Hash})
	}
}

func (s *dirStream) HasNext() bool {
	if len(s.extra) > 0 {
		return true
	}
	s.fill()
	return len(s.leaf) > 0 || s.err != 0
}

func (s *dirStream) Next() (fuse.DirEntry, syscall.Errno) {
	if len(s.extra) > 0 {
		e := s.extra[0]
		s.extra = s.extra[1:]
		return e, 0
	}
	if s.err != 0 {
		err := s.err
		s.err = 0
		s.stack = nil
		return fuse.DirEntry{}, err
	}
	e := s.leaf[0]
	s.leaf = s.leaf[1:]
	p := append(s.path[:len(s.path):len(s.path)], e.Name)
	return fuse.DirEntry{Name: e.Name, Mode: typeBits(e.Kind), Ino: inoOf(s.view, e, p)}, 0
}

func (s *dirStream) Close() {}

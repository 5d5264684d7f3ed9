package fuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// Store is what the read-write mount needs from a block store: tree
// reads and writes, and Sync before anything refers to new blocks.
type Store interface {
	tree.ReadWriter
	Sync(ctx context.Context) error
}

// ref is one side (published or held back) of a directory as last built.
type ref struct {
	hash blockstore.Hash
	size uint64
	ok   bool
}

// node is one file, directory or symlink of the origin's working tree.
// Everything but the content fields is guarded by work.mu.
type node struct {
	ino    uint64
	kind   tree.Kind
	mode   uint32
	mtime  time.Time
	ctime  time.Time
	parent *node // nil for the root and for unlinked nodes
	name   string

	// Files. size is what stat shows (unflushed writes included); hash
	// and hashSize are the content as last chunked, which is what a
	// commit publishes.
	size     uint64
	hash     blockstore.Hash
	hashSize uint64
	direct   bool // hash is the file's one chunk (tree.Entry.Direct)
	// cmu guards stage and the staging file's content.
	cmu     sync.Mutex
	stage   *stage
	writers int // open writable handles

	target string // symlinks

	// Directories. children is nil until loaded from pub and hid.
	children map[string]*node
	pub, hid ref
	built    bool // pub and hid describe the directory as built with builtPub
	builtPub bool
	dirty    bool // changed since built; every ancestor of a dirty directory is dirty
}

// work is the origin's working tree: every entry, public or not, in
// memory once loaded, over the two Merkle trees of the last commit.
type work struct {
	store   Store
	reader  tree.Getter // file content: the store, or what fetches back what the origin let go
	builder *tree.Builder
	log     *slog.Logger
	rule    PublishRule

	mu        sync.Mutex
	root      *node
	nextIno   uint64
	gen       uint64 // counts changes to the tree
	emptyFile blockstore.Hash
	changed   chan struct{} // poked (never blocking) on every change
}

func newWork(ctx context.Context, store Store, reader tree.Getter, chunkSize uint32, rule PublishRule, logger *slog.Logger) (*work, error) {
	if reader == nil {
		reader = store
	}
	w := &work{store: store, reader: reader, log: logger, rule: rule, nextIno: 2, changed: make(chan struct{}, 1),
		builder: &tree.Builder{Store: store, ChunkSize: chunkSize,
			PutOptions: blockstore.PutOptions{Residency: blockstore.Pinned, Deferred: true}}}
	h, _, err := w.builder.WriteFile(ctx, eofReader{})
	if err != nil {
		return nil, fmt.Errorf("mount: store the empty file: %w", err)
	}
	w.emptyFile = h
	return w, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// setRoot makes the working tree the union of the published subtree pub
// and the held-back tree hid (either may be absent).
func (w *work) setRoot(pub, hid ref, mode uint32, mtime time.Time) {
	w.root = &node{ino: 1, kind: tree.KindDir, mode: mode, mtime: mtime, ctime: mtime,
		pub: pub, hid: hid, built: true, builtPub: true}
	if !pub.ok {
		w.root.dirty = true
	}
}

// public applies the publish rule to one entry.
func (w *work) public(n *node) bool {
	if w.rule == PublishAll {
		return true
	}
	switch n.kind {
	case tree.KindFile:
		return n.mode&0o004 != 0
	case tree.KindDir:
		return n.mode&0o005 == 0o005
	}
	return true
}

// touch records a change to n's entry (or, for a directory, its
// listing): n's directory and its ancestors must be rebuilt.
func (w *work) touch(d *node) {
	for ; d != nil && !d.dirty; d = d.parent {
		d.dirty = true
	}
	w.gen++
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *work) newNode(kind tree.Kind, mode uint32, now time.Time) *node {
	n := &node{ino: w.nextIno, kind: kind, mode: mode & 0o777, mtime: now, ctime: now}
	w.nextIno++
	return n
}

// load reads a directory's entries from its published and held-back
// sides. An entry on both sides must be a directory (it is public, with
// private entries somewhere below); anything else is a conflict (an
// import changed the published side while we were away) that the
// published side wins, and the directory is rebuilt.
func (w *work) load(ctx context.Context, d *node) error {
	if d.children != nil {
		return nil
	}
	kids := map[string]*node{}
	add := func(side ref, pub bool) error {
		if !side.ok {
			return nil
		}
		es, err := tree.ListDir(ctx, w.store, side.hash)
		if err != nil {
			return err
		}
		for _, e := range es {
			r := ref{hash: e.Hash, size: e.Size, ok: true}
			if c, ok := kids[e.Name]; ok {
				if c.kind == tree.KindDir && e.Kind == tree.KindDir && !c.hid.ok && !pub {
					c.hid = r
					continue
				}
				w.log.Warn("mount: an entry conflicts with a published one; the published one wins", "name", e.Name)
				w.touch(d)
				continue
			}
			c := w.newNode(e.Kind, e.Mode, e.MTime)
			c.parent, c.name = d, e.Name
			switch e.Kind {
			case tree.KindFile:
				c.size, c.hash, c.hashSize, c.direct = e.Size, e.Hash, e.Size, e.Direct
			case tree.KindSymlink:
				c.size, c.target = e.Size, e.Target
			case tree.KindDir:
				c.built = true
				if pub {
					c.pub = r
				} else {
					c.hid = r
				}
			}
			kids[e.Name] = c
		}
		return nil
	}
	if err := add(d.pub, true); err != nil {
		return fmt.Errorf("load directory %q: %w", d.name, err)
	}
	if err := add(d.hid, false); err != nil {
		return fmt.Errorf("load directory %q: %w", d.name, err)
	}
	for _, c := range kids {
		if c.kind != tree.KindDir {
			continue
		}
		c.builtPub = d.builtPub && w.public(c)
		if c.builtPub != c.pub.ok || (!c.builtPub && !c.hid.ok) {
			// What is stored does not match what the rule says: build
			// it again rather than trust either side.
			c.built = false
			w.touch(c)
		}
	}
	d.children = kids
	return nil
}

// entry is n as a tree entry (for a directory, with the given side).
func (w *work) entry(n *node, side ref) tree.Entry {
	e := tree.Entry{Name: n.name, Kind: n.kind, Mode: n.mode, MTime: storableTime(n.mtime)}
	switch n.kind {
	case tree.KindFile:
		e.Size, e.Hash, e.Direct = n.hashSize, n.hash, n.direct
	case tree.KindSymlink:
		e.Size, e.Target = uint64(len(n.target)), n.target
	case tree.KindDir:
		e.Size, e.Hash = side.size, side.hash
	}
	return e
}

// storableTime clamps t into what a tree entry can hold: the years
// 1678..2261, and never exactly the epoch (which marks "no mtime"); a
// zero t stays zero.
func storableTime(t time.Time) time.Time {
	switch {
	case t.IsZero():
		return t
	case t.UnixNano() == 0:
		return time.Unix(0, 1)
	case t.Year() < 1678:
		return time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	case t.Year() > 2261:
		return time.Date(2261, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	return t
}

// build writes the directory's published side (when published) and
// held-back side (when it holds anything not published) and returns
// both. Only dirty directories, and those whose publishedness changed,
// are rebuilt; the rest return what they were built as.
func (w *work) build(ctx context.Context, d *node, published bool) (pub, hid ref, err error) {
	if d.built && !d.dirty && d.builtPub == published {
		return d.pub, d.hid, nil
	}
	if err := w.load(ctx, d); err != nil {
		return ref{}, ref{}, err
	}
	var pe, he []tree.Entry
	for _, c := range d.children {
		cp := published && w.public(c)
		if c.kind != tree.KindDir {
			if cp {
				pe = append(pe, w.entry(c, ref{}))
			} else {
				he = append(he, w.entry(c, ref{}))
			}
			continue
		}
		p, h, err := w.build(ctx, c, cp)
		if err != nil {
			return ref{}, ref{}, err
		}
		if p.ok {
			pe = append(pe, w.entry(c, p))
		}
		if h.ok {
			he = append(he, w.entry(c, h))
		}
	}
	mk := func(es []tree.Entry) (ref, error) {
		h, err := w.builder.BuildDir(ctx, es)
		if err != nil {
			return ref{}, err
		}
		var size uint64
		for _, e := range es {
			size += e.Size
		}
		return ref{hash: h, size: size, ok: true}, nil
	}
	if published {
		if pub, err = mk(pe); err != nil {
			return ref{}, ref{}, err
		}
	}
	if !published || len(he) > 0 {
		if hid, err = mk(he); err != nil {
			return ref{}, ref{}, err
		}
	}
	d.pub, d.hid, d.built, d.builtPub, d.dirty = pub, hid, true, published, false
	return pub, hid, nil
}

// errno maps errors from the store and the tree to what a system call
// can return, logging what the user cannot see.
func (w *work) errno(what string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if en, ok := err.(syscall.Errno); ok {
		return en
	}
	w.log.Error("mount: "+what, "err", err)
	var en syscall.Errno
	if errors.As(err, &en) && (en == syscall.ENOSPC || en == syscall.EDQUOT) {
		return en
	}
	return syscall.EIO
}

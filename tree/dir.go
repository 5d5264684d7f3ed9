package tree

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"lukechampine.com/blake3"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/wire"
)

// A directory's shape is a pure function of its set of entries:
//
//	build(entries, depth) = a DirNode        if its encoding fits DirLeafMax
//	                      = a ShardNode whose child i is build(those entries
//	                        whose name hash has nibble i at depth, depth+1)
//
// Updates keep that invariant (see setAt and deleteAt), so a directory
// built in one go and one reached by a thousand single updates have the
// same hash.

// nameHash places a name in a sharded directory.
func nameHash(name string) [32]byte {
	return blake3.Sum256([]byte(name))
}

func nibble(h *[32]byte, depth uint8) uint8 {
	b := h[depth/2]
	if depth%2 == 0 {
		return b >> 4
	}
	return b & 0x0f
}

func fitsLeaf(count, entryBytes uint64, depth uint8) bool {
	return depth >= MaxShardDepth || 2+uint64(wire.UvarintLen(count))+entryBytes <= DirLeafMax
}

type hashedEntry struct {
	Entry
	nh  [32]byte
	len uint64
}

func hashEntries(es []Entry) []hashedEntry {
	out := make([]hashedEntry, len(es))
	for i := range es {
		out[i] = hashedEntry{Entry: es[i], nh: nameHash(es[i].Name), len: uint64(es[i].encodedLen())}
	}
	return out
}

// dirRef is what a parent needs to know of a (sub)directory node.
type dirRef struct {
	Hash  blockstore.Hash
	Count uint64
	Bytes uint64
}

func (b *Builder) putNode(ctx context.Context, n Node) (blockstore.Hash, error) {
	enc := n.Encode()
	if len(enc) > MaxNodeSize {
		// Unreachable by construction; a loud error beats a node that
		// every decoder would refuse.
		return blockstore.Hash{}, fmt.Errorf("tree: encoded node of %d bytes exceeds %d", len(enc), MaxNodeSize)
	}
	h, err := b.Store.Put(ctx, enc, b.PutOptions)
	if err != nil {
		return h, fmt.Errorf("tree: store node: %w", err)
	}
	return h, nil
}

// BuildDir stores a directory holding exactly entries (in any order) and
// returns the hash of its top node. Names must be valid and unique.
func (b *Builder) BuildDir(ctx context.Context, entries []Entry) (blockstore.Hash, error) {
	for i := range entries {
		if err := entries[i].validate(); err != nil {
			return blockstore.Hash{}, fmt.Errorf("tree: build dir: %w", err)
		}
	}
	hes := hashEntries(entries)
	slices.SortFunc(hes, func(a, b hashedEntry) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(hes); i++ {
		if hes[i].Name == hes[i-1].Name {
			return blockstore.Hash{}, fmt.Errorf("tree: build dir: duplicate name %q", hes[i].Name)
		}
	}
	ref, err := b.buildDir(ctx, hes, 0)
	return ref.Hash, err
}

// buildDir requires hes sorted by name.
func (b *Builder) buildDir(ctx context.Context, hes []hashedEntry, depth uint8) (dirRef, error) {
	var total uint64
	for i := range hes {
		total += hes[i].len
	}
	ref := dirRef{Count: uint64(len(hes)), Bytes: total}
	if fitsLeaf(ref.Count, total, depth) {
		d := &DirNode{Entries: make([]Entry, len(hes))}
		for i := range hes {
			d.Entries[i] = hes[i].Entry
		}
		h, err := b.putNode(ctx, d)
		ref.Hash = h
		return ref, err
	}
	var groups [ShardFanout][]hashedEntry
	for i := range hes {
		n := nibble(&hes[i].nh, depth)
		groups[n] = append(groups[n], hes[i]) // stays sorted by name
	}
	s := &ShardNode{Depth: depth}
	for i := range groups {
		if len(groups[i]) == 0 {
			continue
		}
		c, err := b.buildDir(ctx, groups[i], depth+1)
		if err != nil {
			return ref, err
		}
		s.Children = append(s.Children, ShardRef{Index: uint8(i), Hash: c.Hash, Count: c.Count, Bytes: c.Bytes})
	}
	h, err := b.putNode(ctx, s)
	ref.Hash = h
	return ref, err
}

func loadNode(ctx context.Context, g Getter, h blockstore.Hash) ([]byte, Node, error) {
	raw, err := g.Get(ctx, h)
	if err != nil {
		return nil, nil, fmt.Errorf("tree: load node %s: %w", h.Short(), err)
	}
	n, err := Decode(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("tree: node %s: %w", h.Short(), err)
	}
	return raw, n, nil
}

// LoadNode fetches and decodes one node.
func LoadNode(ctx context.Context, g Getter, h blockstore.Hash) (Node, error) {
	_, n, err := loadNode(ctx, g, h)
	return n, err
}

// dirFind looks name up in the directory whose top node is top, calling
// visit for every node on the way (the proof builder records them).
func dirFind(ctx context.Context, g Getter, top blockstore.Hash, name string, visit func([]byte)) (Entry, bool, error) {
	nh := nameHash(name)
	h := top
	for depth := uint8(0); ; depth++ {
		raw, n, err := loadNode(ctx, g, h)
		if err != nil {
			return Entry{}, false, err
		}
		if visit != nil {
			visit(raw)
		}
		switch n := n.(type) {
		case *DirNode:
			if i := n.Find(name); i >= 0 {
				return n.Entries[i], true, nil
			}
			return Entry{}, false, nil
		case *ShardNode:
			if n.Depth != depth {
				return Entry{}, false, fmt.Errorf("tree: shard %s: %w: depth %d, expected %d", h.Short(), ErrMalformed, n.Depth, depth)
			}
			c, ok := n.Child(nibble(&nh, depth))
			if !ok {
				return Entry{}, false, nil
			}
			h = c.Hash
		default:
			return Entry{}, false, fmt.Errorf("tree: node %s: %w: file node where a directory was expected", h.Short(), ErrMalformed)
		}
	}
}

// FindEntry looks one name up in the directory whose top node is top,
// loading only the nodes on the way to its leaf (not the entry's own
// node, as Lookup does).
func FindEntry(ctx context.Context, g Getter, top blockstore.Hash, name string) (Entry, bool, error) {
	return dirFind(ctx, g, top, name, nil)
}

// ListDir returns all entries of a directory, sorted by name.
func ListDir(ctx context.Context, g Getter, top blockstore.Hash) ([]Entry, error) {
	var out []Entry
	if err := walkDirNodes(ctx, g, top, 0, func(d *DirNode) error {
		out = append(out, d.Entries...)
		return nil
	}); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// walkDirNodes calls fn for every leaf of a (possibly sharded) directory.
func walkDirNodes(ctx context.Context, g Getter, h blockstore.Hash, depth uint8, fn func(*DirNode) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, n, err := loadNode(ctx, g, h)
	if err != nil {
		return err
	}
	switch n := n.(type) {
	case *DirNode:
		return fn(n)
	case *ShardNode:
		if n.Depth != depth {
			return fmt.Errorf("tree: shard %s: %w: depth %d, expected %d", h.Short(), ErrMalformed, n.Depth, depth)
		}
		for _, c := range n.Children {
			if err := walkDirNodes(ctx, g, c.Hash, depth+1, fn); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("tree: node %s: %w: file node where a directory was expected", h.Short(), ErrMalformed)
}

// setAt inserts or replaces he in the subtree at h and returns the new
// subtree and the entry it replaced, if any.
func (b *Builder) setAt(ctx context.Context, h blockstore.Hash, depth uint8, he hashedEntry) (dirRef, *Entry, error) {
	_, n, err := loadNode(ctx, b.Store, h)
	if err != nil {
		return dirRef{}, nil, err
	}
	switch n := n.(type) {
	case *DirNode:
		hes := hashEntries(n.Entries)
		var old *Entry
		if i := n.Find(he.Name); i >= 0 {
			o := n.Entries[i]
			old = &o
			hes[i] = he
		} else {
			i, _ := slices.BinarySearchFunc(hes, he.Name, func(a hashedEntry, name string) int { return strings.Compare(a.Name, name) })
			hes = slices.Insert(hes, i, he)
		}
		ref, err := b.buildDir(ctx, hes, depth)
		return ref, old, err
	case *ShardNode:
		if n.Depth != depth {
			return dirRef{}, nil, fmt.Errorf("tree: shard %s: %w: depth %d, expected %d", h.Short(), ErrMalformed, n.Depth, depth)
		}
		idx := nibble(&he.nh, depth)
		var (
			child dirRef
			old   *Entry
		)
		if c, ok := n.Child(idx); ok {
			child, old, err = b.setAt(ctx, c.Hash, depth+1, he)
		} else {
			child, err = b.buildDir(ctx, []hashedEntry{he}, depth+1)
		}
		if err != nil {
			return dirRef{}, nil, err
		}
		ref, err := b.replaceChild(ctx, n, idx, child)
		return ref, old, err
	}
	return dirRef{}, nil, fmt.Errorf("tree: node %s: %w: file node where a directory was expected", h.Short(), ErrMalformed)
}

// deleteAt removes name from the subtree at h. A subtree that becomes
// empty has Count 0 (and is not stored unless it is the top node).
func (b *Builder) deleteAt(ctx context.Context, h blockstore.Hash, depth uint8, name string, nh *[32]byte) (dirRef, *Entry, error) {
	_, n, err := loadNode(ctx, b.Store, h)
	if err != nil {
		return dirRef{}, nil, err
	}
	switch n := n.(type) {
	case *DirNode:
		i := n.Find(name)
		if i < 0 {
			return dirRef{}, nil, nil
		}
		old := n.Entries[i]
		rest := slices.Delete(slices.Clone(n.Entries), i, i+1)
		if len(rest) == 0 && depth > 0 {
			return dirRef{}, &old, nil
		}
		ref, err := b.buildDir(ctx, hashEntries(rest), depth)
		return ref, &old, err
	case *ShardNode:
		if n.Depth != depth {
			return dirRef{}, nil, fmt.Errorf("tree: shard %s: %w: depth %d, expected %d", h.Short(), ErrMalformed, n.Depth, depth)
		}
		idx := nibble(nh, depth)
		c, ok := n.Child(idx)
		if !ok {
			return dirRef{}, nil, nil
		}
		child, old, err := b.deleteAt(ctx, c.Hash, depth+1, name, nh)
		if err != nil || old == nil {
			return dirRef{}, nil, err
		}
		ref, err := b.replaceChild(ctx, n, idx, child)
		return ref, old, err
	}
	return dirRef{}, nil, fmt.Errorf("tree: node %s: %w: file node where a directory was expected", h.Short(), ErrMalformed)
}

// replaceChild stores a copy of s with child idx replaced (or removed when
// child.Count is 0). If the whole shard now fits in one leaf it collapses,
// which keeps the shape canonical after removals and shrinking entries.
func (b *Builder) replaceChild(ctx context.Context, s *ShardNode, idx uint8, child dirRef) (dirRef, error) {
	ns := &ShardNode{Depth: s.Depth}
	var ref dirRef
	placed := false
	for _, c := range s.Children {
		if c.Index == idx {
			placed = true
			if child.Count == 0 {
				continue
			}
			c = ShardRef{Index: idx, Hash: child.Hash, Count: child.Count, Bytes: child.Bytes}
		} else if c.Index > idx && !placed {
			placed = true
			if child.Count > 0 {
				ns.Children = append(ns.Children, ShardRef{Index: idx, Hash: child.Hash, Count: child.Count, Bytes: child.Bytes})
				ref.Count += child.Count
				ref.Bytes += child.Bytes
			}
		}
		ns.Children = append(ns.Children, c)
		ref.Count += c.Count
		ref.Bytes += c.Bytes
	}
	if !placed && child.Count > 0 {
		ns.Children = append(ns.Children, ShardRef{Index: idx, Hash: child.Hash, Count: child.Count, Bytes: child.Bytes})
		ref.Count += child.Count
		ref.Bytes += child.Bytes
	}
	if fitsLeaf(ref.Count, ref.Bytes, s.Depth) {
		var all []Entry
		for _, c := range ns.Children {
			if err := walkDirNodes(ctx, b.Store, c.Hash, s.Depth+1, func(d *DirNode) error {
				all = append(all, d.Entries...)
				return nil
			}); err != nil {
				return dirRef{}, err
			}
		}
		hes := hashEntries(all)
		slices.SortFunc(hes, func(a, b hashedEntry) int { return strings.Compare(a.Name, b.Name) })
		return b.buildDir(ctx, hes, s.Depth)
	}
	h, err := b.putNode(ctx, ns)
	ref.Hash = h
	return ref, err
}

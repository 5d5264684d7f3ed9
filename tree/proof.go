package tree

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/wire"
)

// Proof limits, checked by DecodeProof before allocating.
const (
	// MaxProofNodes: MaxPathDepth directories, each a top node plus a few
	// shard levels, plus the target's node.
	MaxProofNodes = 2048
	// MaxProofSize bounds an encoded proof.
	MaxProofSize = 8 << 20
)

// ErrBadProof is returned (wrapped) when a proof does not prove anything
// about the given root and path: a node that does not hash to the link
// pointing at it, a missing or extra node, or a malformed node.
var ErrBadProof = errors.New("invalid proof")

// Proof is the encoded nodes on the way from a root to a path, in order:
// for each directory on the path its top node and the shard nodes down to
// the leaf holding the name, then the target's own node (a file's top
// node, or a directory's top node). A proof of absence stops at the node
// that shows the name is missing.
type Proof struct {
	Nodes [][]byte
}

// Size is the encoded length of the proof.
func (p *Proof) Size() int {
	n := wire.UvarintLen(uint64(len(p.Nodes)))
	for _, b := range p.Nodes {
		n += wire.UvarintLen(uint64(len(b))) + len(b)
	}
	return n
}

// Encode returns: count (uvarint), then per node its length (uvarint) and
// bytes.
func (p *Proof) Encode() []byte {
	return p.AppendEncode(make([]byte, 0, p.Size()))
}

// AppendEncode appends the encoding to dst.
func (p *Proof) AppendEncode(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(p.Nodes)))
	for _, b := range p.Nodes {
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		dst = append(dst, b...)
	}
	return dst
}

// DecodeProof parses an encoded proof. It checks only the framing and the
// limits; Verify checks the content.
func DecodeProof(b []byte) (*Proof, error) {
	if len(b) > MaxProofSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadProof, len(b), MaxProofSize)
	}
	r := wire.NewReader(b, ErrMalformed)
	count := r.Uvarint()
	if r.Err == nil && (count > MaxProofNodes || count > uint64(r.Remaining())) {
		return nil, fmt.Errorf("%w: %d nodes (limit %d) in %d bytes", ErrBadProof, count, MaxProofNodes, r.Remaining())
	}
	p := &Proof{Nodes: make([][]byte, 0, count)}
	for i := uint64(0); i < count && r.Err == nil; i++ {
		n := r.Uvarint()
		if n > MaxNodeSize {
			return nil, fmt.Errorf("%w: node %d is %d bytes, limit %d", ErrBadProof, i, n, MaxNodeSize)
		}
		p.Nodes = append(p.Nodes, r.Bytes(n))
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadProof, err)
	}
	return p, nil
}

// Status is what a proof shows about a path.
type Status uint8

const (
	// Found: the path exists; Result.Entry is its entry.
	Found Status = 1
	// Absent: a directory on the path has no entry with the next name.
	Absent Status = 2
	// NotDir: a component before the last is a file, so the path cannot
	// exist.
	NotDir Status = 3
	// SymlinkInPath: a component before the last is a symlink, which
	// lookups never follow, so the path does not exist in the tree.
	SymlinkInPath Status = 4
)

func (s Status) String() string {
	switch s {
	case Found:
		return "found"
	case Absent:
		return "absent"
	case NotDir:
		return "not a directory"
	case SymlinkInPath:
		return "symlink in path"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Result is what a verified proof establishes.
type Result struct {
	Status Status
	// Depth is the number of path components that exist: len(path) when
	// Found, otherwise the index of the first missing component (Absent),
	// or of the component after the file or symlink that blocks the path.
	Depth int
	// Entry is the target's entry when Found (for the root, a synthetic
	// directory entry with an empty name), or the blocking file or
	// symlink entry for NotDir and SymlinkInPath.
	Entry Entry
	// Node is the target's node when Found and the target is a file
	// (*FileNode; for a direct file, DirectFile's, which no block holds)
	// or a directory (*DirNode or *ShardNode); nil otherwise.
	Node Node
}

// Err converts a non-Found result into a descriptive error wrapping
// ErrNotExist, ErrNotDir or ErrSymlink.
func (r Result) Err(p Path) error {
	switch r.Status {
	case Found:
		return nil
	case Absent:
		return fmt.Errorf("%s: %w (proven absent: %s has no %q)", p, ErrNotExist, p[:r.Depth], p[r.Depth])
	case NotDir:
		return fmt.Errorf("%s: %w: %s is a file", p, ErrNotDir, p[:r.Depth])
	case SymlinkInPath:
		return fmt.Errorf("%s: %w: %s", p, ErrSymlink, p[:r.Depth])
	}
	return fmt.Errorf("%s: unknown result %v", p, r.Status)
}

// verifier consumes proof nodes, checking each against the hash that
// links to it.
type verifier struct {
	nodes [][]byte
	i     int
}

func (v *verifier) next(want blockstore.Hash) (Node, error) {
	if v.i >= len(v.nodes) {
		return nil, fmt.Errorf("%w: ends after %d nodes, node %s is missing", ErrBadProof, v.i, want.Short())
	}
	raw := v.nodes[v.i]
	if got := blockstore.Sum(raw); got != want {
		return nil, fmt.Errorf("%w: node %d hashes to %s, the link says %s", ErrBadProof, v.i, got.Short(), want.Short())
	}
	n, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: node %d: %w", ErrBadProof, v.i, err)
	}
	v.i++
	return n, nil
}

func (v *verifier) finish(r Result) (Result, error) {
	if v.i != len(v.nodes) {
		return Result{}, fmt.Errorf("%w: %d unused nodes after node %d", ErrBadProof, len(v.nodes)-v.i, v.i)
	}
	return r, nil
}

// Verify checks proof against root for path p and returns what it proves.
// Every node must hash to the link that points at it, starting from root,
// and the proof must contain exactly the nodes needed. A returned error
// means the proof proves nothing; a Result with a Status other than Found
// is a valid proof that the path does not exist under root.
func Verify(root blockstore.Hash, p Path, proof *Proof) (Result, error) {
	for _, name := range p {
		if err := ValidName(name); err != nil {
			return Result{}, err
		}
	}
	v := &verifier{nodes: proof.Nodes}
	if len(proof.Nodes) > MaxProofNodes {
		return Result{}, fmt.Errorf("%w: %d nodes exceeds %d", ErrBadProof, len(proof.Nodes), MaxProofNodes)
	}
	dir := root
	for c, name := range p {
		e, ok, err := v.findIn(dir, name)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			return v.finish(Result{Status: Absent, Depth: c})
		}
		if c == len(p)-1 {
			return v.target(e, c+1)
		}
		switch e.Kind {
		case KindFile:
			return v.finish(Result{Status: NotDir, Depth: c + 1, Entry: e})
		case KindSymlink:
			return v.finish(Result{Status: SymlinkInPath, Depth: c + 1, Entry: e})
		}
		dir = e.Hash
	}
	return v.target(Entry{Kind: KindDir, Mode: 0o755, Hash: root}, 0)
}

// findIn walks one directory from its top node to the leaf for name.
func (v *verifier) findIn(top blockstore.Hash, name string) (Entry, bool, error) {
	nh := nameHash(name)
	h := top
	for depth := uint8(0); ; depth++ {
		n, err := v.next(h)
		if err != nil {
			return Entry{}, false, err
		}
		switch n := n.(type) {
		case *DirNode:
			if i := n.Find(name); i >= 0 {
				return n.Entries[i], true, nil
			}
			return Entry{}, false, nil
		case *ShardNode:
			if n.Depth != depth {
				return Entry{}, false, fmt.Errorf("%w: shard node %d at depth %d claims depth %d", ErrBadProof, v.i-1, depth, n.Depth)
			}
			c, ok := n.Child(nibble(&nh, depth))
			if !ok {
				return Entry{}, false, nil
			}
			h = c.Hash
		default:
			return Entry{}, false, fmt.Errorf("%w: node %d is a file node where a directory node belongs", ErrBadProof, v.i-1)
		}
	}
}

func (v *verifier) target(e Entry, depth int) (Result, error) {
	r := Result{Status: Found, Depth: depth, Entry: e}
	switch e.Kind {
	case KindFile:
		if e.Direct {
			// The entry names the file's one chunk: no node follows.
			r.Node = DirectFile(e)
			break
		}
		n, err := v.next(e.Hash)
		if err != nil {
			return Result{}, err
		}
		f, ok := n.(*FileNode)
		if !ok || !f.IsTop() || f.Size != e.Size {
			return Result{}, fmt.Errorf("%w: the target's node is not the top file node of a %d-byte file", ErrBadProof, e.Size)
		}
		r.Node = f
	case KindDir:
		n, err := v.next(e.Hash)
		if err != nil {
			return Result{}, err
		}
		switch n := n.(type) {
		case *DirNode:
		case *ShardNode:
			if n.Depth != 0 {
				return Result{}, fmt.Errorf("%w: the target directory's top node has depth %d", ErrBadProof, n.Depth)
			}
		default:
			return Result{}, fmt.Errorf("%w: the target's node is not a directory node", ErrBadProof)
		}
		r.Node = n
	}
	return v.finish(r)
}

// BuildProof collects the proof for p under root from g. The proof is
// verified before it is returned, so a corrupt store cannot make a node
// hand out a proof that would fail on the other side.
func BuildProof(ctx context.Context, g Getter, root blockstore.Hash, p Path) (*Proof, Result, error) {
	proof := &Proof{}
	add := func(raw []byte) { proof.Nodes = append(proof.Nodes, raw) }
	addNode := func(h blockstore.Hash) error {
		raw, _, err := loadNode(ctx, g, h)
		if err != nil {
			return err
		}
		add(raw)
		return nil
	}
	done := func() (*Proof, Result, error) {
		r, err := Verify(root, p, proof)
		if err != nil {
			return nil, Result{}, fmt.Errorf("tree: proof for %s under %s: %w", p, root.Short(), err)
		}
		return proof, r, nil
	}
	dir := root
	for c, name := range p {
		if err := ValidName(name); err != nil {
			return nil, Result{}, err
		}
		e, ok, err := dirFind(ctx, g, dir, name, add)
		if err != nil {
			return nil, Result{}, err
		}
		if !ok {
			return done()
		}
		if c == len(p)-1 {
			if e.Kind != KindSymlink && !e.Direct {
				if err := addNode(e.Hash); err != nil {
					return nil, Result{}, err
				}
			}
			return done()
		}
		if e.Kind != KindDir {
			return done()
		}
		dir = e.Hash
	}
	if err := addNode(root); err != nil {
		return nil, Result{}, err
	}
	return done()
}

// Lookup resolves p under root. A path that does not exist returns an
// error wrapping ErrNotExist, ErrNotDir or ErrSymlink.
func Lookup(ctx context.Context, g Getter, root blockstore.Hash, p Path) (Result, error) {
	_, r, err := BuildProof(ctx, g, root, p)
	if err != nil {
		return Result{}, err
	}
	return r, r.Err(p)
}

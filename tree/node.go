package tree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/wire"
)

// Wire constants. They are explicit numbers, never iota: inserting a
// constant must not silently renumber the format.
const (
	// FormatVersion is the second byte of shard and file nodes, and of
	// directory nodes written before direct file entries existed.
	FormatVersion = 0x01
	// DirFormatVersion is the second byte of the directory nodes this
	// package writes: their file entries may be direct (flagDirect, the
	// hash naming the file's one chunk). Version 1 directory nodes are
	// still read; they cannot hold direct entries.
	DirFormatVersion = 0x02

	TagDir   = 0x01 // a directory, or one leaf bucket of a sharded directory
	TagShard = 0x02 // an inner node of a sharded directory
	TagFile  = 0x03 // a file: its size, chunk size and chunk (or index) hashes

	// MaxNodeSize bounds every encoded node. Decoders refuse more before
	// looking further, so a hostile peer cannot make us parse megabytes to
	// walk one path.
	MaxNodeSize = 64 << 10

	// DirLeafMax is the largest encoded directory node. A directory that
	// would be bigger is sharded (see dir.go); keeping leaves small keeps
	// proofs small: a proof carries a whole leaf.
	DirLeafMax = 8 << 10

	// ShardBits is the number of name-hash bits consumed per shard level.
	ShardBits   = 4
	ShardFanout = 1 << ShardBits
	// MaxShardDepth is the number of nibbles in a name hash; at that depth
	// a bucket can no longer split (it would take a BLAKE3 collision).
	MaxShardDepth = 2 * blockstore.HashSize

	// FileFanout is the most hashes one file node lists (32 KiB of hashes).
	FileFanout = 1024
	// MaxFileLevel bounds index depth: 1 MiB chunks * 1024^4 = 2^60 bytes.
	MaxFileLevel = 4
	// MinChunkSize and MaxChunkSize bound the chunk size a file node may
	// declare.
	MinChunkSize = 4 << 10
	MaxChunkSize = blockstore.MaxBlockSize

	// MaxSymlinkLen bounds a stored symlink target.
	MaxSymlinkLen = 4096
)

// Kind is the type of a directory entry.
type Kind uint8

const (
	KindFile    Kind = 1
	KindDir     Kind = 2
	KindSymlink Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// entry flag bits
const (
	flagMTime = 0x01
	flagType  = 0x02
	// flagDirect: the file's hash names its only chunk, not a file node
	// (directory nodes of version 2).
	flagDirect  = 0x04
	knownFlags  = flagMTime | flagType | flagDirect
	maxModeBits = 0o777
)

// Entry is one name in a directory.
type Entry struct {
	Name string
	Kind Kind
	// Mode holds the permission bits (0o777) only.
	Mode uint32
	// Size is the file's length; for a directory, the total length of all
	// files beneath it; for a symlink, the length of its target.
	Size uint64
	// MTime is kept only when the importer was asked to keep mtimes; the
	// zero Time means none is stored, so by default content alone decides
	// the hash.
	MTime time.Time
	// Type is a file's media type (ValidMediaType), decided by whoever
	// wrote the entry; "" means none is stored. Only files carry one.
	Type string
	// Hash is the file node (files) or the top directory node (dirs);
	// for a direct file, its only chunk.
	Hash blockstore.Hash
	// Direct marks a file of one chunk whose Hash names that chunk
	// itself: a small file is one block, not a chunk and a file node.
	// Its size is 1..MaxChunkSize.
	Direct bool
	// Target is a symlink's target. Lookups never follow it.
	Target string
}

func (e *Entry) encodedLen() int {
	n := wire.UvarintLen(uint64(len(e.Name))) + len(e.Name) + 2 + wire.UvarintLen(uint64(e.Mode)) + wire.UvarintLen(e.Size)
	if !e.MTime.IsZero() {
		n += wire.VarintLen(e.MTime.UnixNano())
	}
	if e.Type != "" {
		n += wire.UvarintLen(uint64(len(e.Type))) + len(e.Type)
	}
	if e.Kind == KindSymlink {
		n += wire.UvarintLen(uint64(len(e.Target))) + len(e.Target)
	} else {
		n += blockstore.HashSize
	}
	return n
}

func (e *Entry) appendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.Name)))
	b = append(b, e.Name...)
	var flags byte
	if !e.MTime.IsZero() {
		flags |= flagMTime
	}
	if e.Type != "" {
		flags |= flagType
	}
	if e.Direct {
		flags |= flagDirect
	}
	b = append(b, byte(e.Kind), flags)
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, e.Size)
	if flags&flagMTime != 0 {
		b = binary.AppendVarint(b, e.MTime.UnixNano())
	}
	if flags&flagType != 0 {
		b = binary.AppendUvarint(b, uint64(len(e.Type)))
		b = append(b, e.Type...)
	}
	if e.Kind == KindSymlink {
		b = binary.AppendUvarint(b, uint64(len(e.Target)))
		b = append(b, e.Target...)
	} else {
		b = append(b, e.Hash[:]...)
	}
	return b
}

// validate checks what an encoder must never write and a decoder must
// never accept.
func (e *Entry) validate() error {
	if err := ValidName(e.Name); err != nil {
		return err
	}
	if e.Mode&^maxModeBits != 0 {
		return fmt.Errorf("entry %q: mode %#o has bits outside %#o", e.Name, e.Mode, maxModeBits)
	}
	if !e.MTime.IsZero() {
		if y := e.MTime.Year(); y < 1678 || y > 2261 || e.MTime.UnixNano() == 0 {
			return fmt.Errorf("entry %q: mtime %v cannot be stored (range 1678..2261, not the epoch)", e.Name, e.MTime)
		}
	}
	if e.Type != "" {
		if e.Kind != KindFile {
			return fmt.Errorf("entry %q: a %s with a media type", e.Name, e.Kind)
		}
		if err := ValidMediaType(e.Type); err != nil {
			return fmt.Errorf("entry %q: %w", e.Name, err)
		}
	}
	if e.Direct && (e.Kind != KindFile || e.Size == 0 || e.Size > MaxChunkSize) {
		return fmt.Errorf("entry %q: a direct %s of %d bytes (want a file of 1..%d)", e.Name, e.Kind, e.Size, MaxChunkSize)
	}
	switch e.Kind {
	case KindFile, KindDir:
		if e.Target != "" {
			return fmt.Errorf("entry %q: %s with a symlink target", e.Name, e.Kind)
		}
	case KindSymlink:
		if e.Target == "" || len(e.Target) > MaxSymlinkLen || bytes.IndexByte([]byte(e.Target), 0) >= 0 {
			return fmt.Errorf("entry %q: symlink target must be 1..%d bytes without NUL", e.Name, MaxSymlinkLen)
		}
		if e.Size != uint64(len(e.Target)) {
			return fmt.Errorf("entry %q: symlink size %d != target length %d", e.Name, e.Size, len(e.Target))
		}
		if !e.Hash.IsZero() {
			return fmt.Errorf("entry %q: symlink with a hash", e.Name)
		}
	default:
		return fmt.Errorf("entry %q: unknown kind %d", e.Name, e.Kind)
	}
	return nil
}

func readEntry(r *wire.Reader, version byte) Entry {
	var e Entry
	n := r.Uvarint()
	if n > MaxNameLen {
		r.Fail("name length %d exceeds %d", n, MaxNameLen)
		return e
	}
	e.Name = string(r.Bytes(n))
	e.Kind = Kind(r.U8())
	flags := r.U8()
	if flags&^knownFlags != 0 || (version < DirFormatVersion && flags&flagDirect != 0) {
		r.Fail("unknown entry flags %#x in a version %d directory", flags, version)
	}
	e.Direct = flags&flagDirect != 0
	mode := r.Uvarint()
	if mode > maxModeBits {
		r.Fail("mode %#o exceeds %#o", mode, maxModeBits)
	}
	e.Mode = uint32(mode)
	e.Size = r.Uvarint()
	if flags&flagMTime != 0 {
		ns := r.Varint()
		e.MTime = time.Unix(0, ns).UTC()
	}
	if flags&flagType != 0 {
		tl := r.Uvarint()
		if tl == 0 || tl > MaxMediaTypeLen {
			r.Fail("media type length %d outside 1..%d", tl, MaxMediaTypeLen)
			return e
		}
		e.Type = string(r.Bytes(tl))
	}
	switch e.Kind {
	case KindFile, KindDir:
		e.Hash = r.Hash()
	case KindSymlink:
		tl := r.Uvarint()
		if tl > MaxSymlinkLen {
			r.Fail("symlink target length %d exceeds %d", tl, MaxSymlinkLen)
			return e
		}
		e.Target = string(r.Bytes(tl))
	}
	if r.Err == nil {
		if err := e.validate(); err != nil {
			r.Fail("%v", err)
		}
	}
	return e
}

// Node is a decoded tree node: *DirNode, *ShardNode or *FileNode.
type Node interface {
	// Encode returns the canonical encoding whose hash names the node.
	Encode() []byte
	tag() byte
}

var (
	_ Node = (*DirNode)(nil)
	_ Node = (*ShardNode)(nil)
	_ Node = (*FileNode)(nil)
)

// DirNode lists entries sorted by name (byte order), names unique. It is
// a whole directory, or one bucket of a sharded one.
type DirNode struct {
	Entries []Entry
	// Version is the node's format version as decoded (FormatVersion or
	// DirFormatVersion); 0 in a new node. Encode writes DirFormatVersion,
	// except for a version 1 node without direct entries, which stays as
	// it was read, so re-encoding gives the same bytes.
	Version byte
}

func (d *DirNode) tag() byte { return TagDir }

// Encode implements Node.
func (d *DirNode) Encode() []byte {
	n := 2 + wire.UvarintLen(uint64(len(d.Entries)))
	for i := range d.Entries {
		n += d.Entries[i].encodedLen()
	}
	b := make([]byte, 0, n)
	v := byte(DirFormatVersion)
	if d.Version == FormatVersion && !slices.ContainsFunc(d.Entries, func(e Entry) bool { return e.Direct }) {
		v = FormatVersion
	}
	b = append(b, TagDir, v)
	b = binary.AppendUvarint(b, uint64(len(d.Entries)))
	for i := range d.Entries {
		b = d.Entries[i].appendTo(b)
	}
	return b
}

// Find returns the index of name, or -1.
func (d *DirNode) Find(name string) int {
	lo, hi := 0, len(d.Entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.Entries[m].Name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(d.Entries) && d.Entries[lo].Name == name {
		return lo
	}
	return -1
}

// minEntryLen is the smallest possible encoded entry (a one-byte name,
// kind, flags, mode, size, and a one-byte symlink target): it bounds
// counts before allocation.
const minEntryLen = 8

func decodeDir(r *wire.Reader, version byte) *DirNode {
	count := r.Uvarint()
	if count > uint64(r.Remaining()/minEntryLen) {
		r.Fail("entry count %d cannot fit in %d bytes", count, r.Remaining())
		return nil
	}
	d := &DirNode{Entries: make([]Entry, 0, count), Version: version}
	for i := uint64(0); i < count && r.Err == nil; i++ {
		e := readEntry(r, version)
		if r.Err == nil && len(d.Entries) > 0 && d.Entries[len(d.Entries)-1].Name >= e.Name {
			r.Fail("entry %q out of order or duplicated", clip(e.Name))
		}
		d.Entries = append(d.Entries, e)
	}
	return d
}

// ShardRef points from a shard node to one child bucket.
type ShardRef struct {
	// Index is the nibble value (0..15) of the name hash at this depth.
	Index uint8
	Hash  blockstore.Hash
	// Count and Bytes describe the whole subtree: number of entries and
	// the sum of their encoded lengths. They let an update decide whether
	// a shard collapses back into one leaf without loading its siblings.
	Count uint64
	Bytes uint64
}

// ShardNode is an inner node of a sharded directory: entries are placed
// by the nibbles of BLAKE3(name), nibble Depth at this node.
type ShardNode struct {
	Depth    uint8
	Children []ShardRef // ascending Index, at least one
}

func (s *ShardNode) tag() byte { return TagShard }

// Encode implements Node.
func (s *ShardNode) Encode() []byte {
	b := make([]byte, 0, 5+len(s.Children)*(blockstore.HashSize+6))
	b = append(b, TagShard, FormatVersion, s.Depth)
	var bitmap uint16
	for _, c := range s.Children {
		bitmap |= 1 << c.Index
	}
	b = binary.BigEndian.AppendUint16(b, bitmap)
	for _, c := range s.Children {
		b = append(b, c.Hash[:]...)
		b = binary.AppendUvarint(b, c.Count)
		b = binary.AppendUvarint(b, c.Bytes)
	}
	return b
}

// Child returns the ref for nibble i, if present.
func (s *ShardNode) Child(i uint8) (ShardRef, bool) {
	for _, c := range s.Children {
		if c.Index == i {
			return c, true
		}
	}
	return ShardRef{}, false
}

// Count returns the number of entries in the whole sharded subtree.
func (s *ShardNode) Count() uint64 {
	var n uint64
	for _, c := range s.Children {
		n += c.Count
	}
	return n
}

func decodeShard(r *wire.Reader) *ShardNode {
	s := &ShardNode{Depth: r.U8()}
	if s.Depth >= MaxShardDepth {
		r.Fail("shard depth %d exceeds %d", s.Depth, MaxShardDepth-1)
	}
	bitmap := r.U16()
	if r.Err == nil && bitmap == 0 {
		r.Fail("shard with no children")
	}
	for i := uint8(0); i < ShardFanout && r.Err == nil; i++ {
		if bitmap&(1<<i) == 0 {
			continue
		}
		c := ShardRef{Index: i, Hash: r.Hash(), Count: r.Uvarint(), Bytes: r.Uvarint()}
		if r.Err == nil && (c.Count == 0 || c.Bytes < c.Count) {
			r.Fail("shard child %d: count %d, bytes %d", i, c.Count, c.Bytes)
		}
		s.Children = append(s.Children, c)
	}
	return s
}

// FileNode describes a file's content. At level 0 Hashes are the file's
// chunks, each ChunkSize bytes except a shorter last one. At level L > 0
// they are level L-1 file nodes, each covering Span(L-1) bytes except the
// last. The top node has the lowest level that fits FileFanout hashes.
type FileNode struct {
	Level     uint8
	ChunkSize uint32
	Size      uint64
	Hashes    []blockstore.Hash
}

func (f *FileNode) tag() byte { return TagFile }

// Encode implements Node.
func (f *FileNode) Encode() []byte {
	b := make([]byte, 0, 3+5+10+3+len(f.Hashes)*blockstore.HashSize)
	b = append(b, TagFile, FormatVersion, f.Level)
	b = binary.AppendUvarint(b, uint64(f.ChunkSize))
	b = binary.AppendUvarint(b, f.Size)
	b = binary.AppendUvarint(b, uint64(len(f.Hashes)))
	for _, h := range f.Hashes {
		b = append(b, h[:]...)
	}
	return b
}

// Span returns the bytes covered by one child hash of a node at level.
func Span(chunkSize uint32, level uint8) uint64 {
	s := uint64(chunkSize)
	for i := uint8(0); i < level; i++ {
		s *= FileFanout
	}
	return s
}

// childCount is the number of hashes a node of that level and size has.
func childCount(size uint64, chunkSize uint32, level uint8) uint64 {
	span := Span(chunkSize, level)
	return (size + span - 1) / span
}

// topLevel is the canonical level of a file's top node.
func topLevel(size uint64, chunkSize uint32) uint8 {
	var l uint8
	for childCount(size, chunkSize, l) > FileFanout {
		l++
	}
	return l
}

// ChildSize returns the bytes covered by child i.
func (f *FileNode) ChildSize(i int) uint64 {
	span := Span(f.ChunkSize, f.Level)
	start := uint64(i) * span
	if start+span > f.Size {
		return f.Size - start
	}
	return span
}

// IsTop reports whether f has the canonical shape of a file's top node,
// which a proof checks (inner index nodes are checked by their parent).
func (f *FileNode) IsTop() bool {
	return f.Level == topLevel(f.Size, f.ChunkSize)
}

func decodeFile(r *wire.Reader) *FileNode {
	f := &FileNode{Level: r.U8()}
	cs := r.Uvarint()
	f.Size = r.Uvarint()
	count := r.Uvarint()
	if r.Err != nil {
		return nil
	}
	switch {
	case f.Level > MaxFileLevel:
		r.Fail("file level %d exceeds %d", f.Level, MaxFileLevel)
	case cs < MinChunkSize || cs > MaxChunkSize:
		r.Fail("chunk size %d outside %d..%d", cs, MinChunkSize, MaxChunkSize)
	case count > FileFanout:
		r.Fail("%d hashes exceed the fanout %d", count, FileFanout)
	}
	if r.Err != nil {
		return nil
	}
	f.ChunkSize = uint32(cs)
	if f.Size > 1<<62 {
		r.Fail("file size %d too large", f.Size)
		return nil
	}
	if want := childCount(f.Size, f.ChunkSize, f.Level); count != want {
		r.Fail("%d hashes for size %d at level %d, want %d", count, f.Size, f.Level, want)
		return nil
	}
	if f.Level > 0 && count < 1 {
		r.Fail("empty index node")
		return nil
	}
	if count > uint64(r.Remaining()/blockstore.HashSize) {
		r.Fail("truncated hash list")
		return nil
	}
	f.Hashes = make([]blockstore.Hash, count)
	for i := range f.Hashes {
		f.Hashes[i] = r.Hash()
	}
	return f
}

// Decode parses one encoded node. It checks structure and canonical form,
// not links: whether the children exist and match is the walker's and the
// proof verifier's business.
func Decode(b []byte) (Node, error) {
	if len(b) > MaxNodeSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the node limit %d", ErrMalformed, len(b), MaxNodeSize)
	}
	r := wire.NewReader(b, ErrMalformed)
	tag := r.U8()
	v := r.U8()
	if r.Err == nil && v != FormatVersion && !(tag == TagDir && v == DirFormatVersion) {
		return nil, fmt.Errorf("%w: unsupported format version %d", ErrMalformed, v)
	}
	var n Node
	switch tag {
	case TagDir:
		n = decodeDir(r, v)
	case TagShard:
		n = decodeShard(r)
	case TagFile:
		n = decodeFile(r)
	default:
		if r.Err == nil {
			return nil, fmt.Errorf("%w: unknown node type %#x", ErrMalformed, tag)
		}
	}
	if err := r.Done(); err != nil {
		return nil, err
	}
	return n, nil
}

// DecodeDir decodes b and requires a directory node.
func decodeAs[T Node](b []byte, what string) (T, error) {
	var zero T
	n, err := Decode(b)
	if err != nil {
		return zero, err
	}
	t, ok := n.(T)
	if !ok {
		return zero, fmt.Errorf("%w: expected a %s node, got type %#x", ErrMalformed, what, n.tag())
	}
	return t, nil
}

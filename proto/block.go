package proto

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/wire"
)

// ErrPartialBlock is returned by Block.Verify for a Block that carries a
// range rather than the whole block: the hash names the whole block, so a
// range cannot be checked against it alone.
var ErrPartialBlock = errors.New("partial block cannot be verified by its hash")

// GetBlock asks for one block, or a byte range of it.
type GetBlock struct {
	Hash blockstore.Hash
	// Offset and Length select bytes [Offset, Offset+Length) of the
	// block; Length 0 means to the end. The server clips the range to
	// the block's real size and refuses an Offset past it.
	Offset, Length uint64
	// AcceptZstd lets the server send the data zstd-compressed.
	AcceptZstd bool
}

func (*GetBlock) Type() Type { return TypeGetBlock }

func (m *GetBlock) check() error {
	// No block is larger than MaxBlockSize, so no range beyond it can
	// mean anything; refusing it here keeps the sums below from
	// overflowing.
	if m.Offset > blockstore.MaxBlockSize || m.Length > blockstore.MaxBlockSize || m.Offset+m.Length > blockstore.MaxBlockSize {
		return fmt.Errorf("%w: range offset %d length %d lies beyond MaxBlockSize = %d", ErrMalformed, m.Offset, m.Length, blockstore.MaxBlockSize)
	}
	return nil
}

func (m *GetBlock) payloadLen() int {
	return hashSize + 1 + wire.UvarintLen(m.Offset) + wire.UvarintLen(m.Length)
}

func (m *GetBlock) appendPayload(dst []byte) []byte {
	dst = append(dst, m.Hash[:]...)
	dst = append(dst, flagsByte(m.AcceptZstd))
	dst = appendUvarint(dst, m.Offset)
	return appendUvarint(dst, m.Length)
}

func decodeGetBlock(p []byte) (Message, error) {
	d := wire.NewReader(p, ErrMalformed)
	m := &GetBlock{}
	m.Hash = d.Hash()
	m.AcceptZstd = readFlags(d)
	m.Offset = d.Uvarint()
	m.Length = d.Uvarint()
	if err := d.Done(); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// GetBlocks asks for whole blocks in one stream. The server answers each
// hash with a Block or a Missing frame, in whatever order it finds them.
type GetBlocks struct {
	// Hashes are 1..MaxBatch distinct hashes.
	Hashes     []blockstore.Hash
	AcceptZstd bool
}

func (*GetBlocks) Type() Type { return TypeGetBlocks }

func (m *GetBlocks) check() error {
	if n := len(m.Hashes); n < 1 || n > MaxBatch {
		return fmt.Errorf("%w: %d hashes, want 1..MaxBatch = %d", ErrMalformed, n, MaxBatch)
	}
	// Duplicates would ask for two answers about one block, and a
	// client matching answers to requests could not tell them apart.
	sorted := slices.Clone(m.Hashes)
	slices.SortFunc(sorted, func(a, b blockstore.Hash) int { return bytes.Compare(a[:], b[:]) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return fmt.Errorf("%w: hash %s requested twice", ErrMalformed, sorted[i].Short())
		}
	}
	return nil
}

func (m *GetBlocks) payloadLen() int {
	return 1 + wire.UvarintLen(uint64(len(m.Hashes))) + hashSize*len(m.Hashes)
}

func (m *GetBlocks) appendPayload(dst []byte) []byte {
	dst = append(dst, flagsByte(m.AcceptZstd))
	dst = appendUvarint(dst, uint64(len(m.Hashes)))
	for _, h := range m.Hashes {
		dst = append(dst, h[:]...)
	}
	return dst
}

func decodeGetBlocks(p []byte) (Message, error) {
	d := wire.NewReader(p, ErrMalformed)
	m := &GetBlocks{}
	m.AcceptZstd = readFlags(d)
	n := d.Uvarint()
	if d.Err != nil {
		return nil, d.Err
	}
	// Both bounds before allocating: the count must be in range and the
	// payload must hold exactly that many hashes.
	if n < 1 || n > MaxBatch {
		return nil, fmt.Errorf("%w: count %d, want 1..MaxBatch = %d", ErrMalformed, n, MaxBatch)
	}
	if uint64(d.Remaining()) != n*hashSize {
		return nil, fmt.Errorf("%w: count %d needs %d bytes of hashes, the payload has %d", ErrMalformed, n, n*hashSize, d.Remaining())
	}
	m.Hashes = make([]blockstore.Hash, n)
	for i := range m.Hashes {
		m.Hashes[i] = d.Hash()
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Block carries a block, or a range of it, raw or zstd-compressed. Make
// one with NewBlock; ReadMessage returns decoded ones. Either way the
// compressed bytes have already been decompressed, within limits, so
// Data never fails and a Block whose data would not fit its Offset and
// Total cannot exist.
type Block struct {
	// Hash names the whole, uncompressed block, whatever range and
	// encoding this frame carries.
	Hash blockstore.Hash
	// Offset is where the data starts in the block; Total is the
	// block's full size.
	Offset, Total uint64

	enc  Encoding
	wire []byte // as sent: raw, or a zstd stream
	raw  []byte // the data, decompressed
}

// NewBlock returns a Block carrying data, which is bytes [offset,
// offset+len(data)) of the block h of total bytes. With allowZstd it
// compresses when that saves enough to be worth the client's time;
// callers pass false when the client did not ask for zstd or the content
// is known not to compress (images, archives), to skip the attempt.
// The Block keeps data without copying it.
func NewBlock(h blockstore.Hash, offset, total uint64, data []byte, allowZstd bool) *Block {
	enc, wire := compress(data, allowZstd)
	return &Block{Hash: h, Offset: offset, Total: total, enc: enc, wire: wire, raw: data}
}

// Data returns the block's bytes [Offset, Offset+len) uncompressed. The
// slice must not be modified.
func (m *Block) Data() []byte { return m.raw }

// Encoding returns how the data is sent.
func (m *Block) Encoding() Encoding { return m.enc }

// Wire returns the data as sent: equal to Data for Raw, the zstd stream
// for Zstd. A relay can forward it without compressing again.
func (m *Block) Wire() []byte { return m.wire }

// Whole reports whether the frame carries the entire block.
func (m *Block) Whole() bool { return m.Offset == 0 && uint64(len(m.raw)) == m.Total }

// Verify checks a whole block against its hash. A client must call it (or
// hash the data itself) before using or storing the data.
func (m *Block) Verify() error {
	if !m.Whole() {
		return fmt.Errorf("proto: block %s bytes %d..%d of %d: %w", m.Hash.Short(), m.Offset, m.Offset+uint64(len(m.raw)), m.Total, ErrPartialBlock)
	}
	if got := blockstore.Sum(m.raw); got != m.Hash {
		return fmt.Errorf("proto: block %s: data hashes to %s: %w", m.Hash.Short(), got.Short(), blockstore.ErrHashMismatch)
	}
	return nil
}

func (*Block) Type() Type { return TypeBlock }

func (m *Block) check() error {
	if m.enc != Raw && m.enc != Zstd {
		return fmt.Errorf("%w: unknown encoding %d", ErrMalformed, m.enc)
	}
	if m.Total > blockstore.MaxBlockSize {
		return fmt.Errorf("%w: block size %d exceeds MaxBlockSize = %d", ErrMalformed, m.Total, blockstore.MaxBlockSize)
	}
	// Offset <= Total <= MaxBlockSize and len(raw) <= MaxBlockSize (by
	// decoding, or checked by the first clause) keep the sum in range.
	if uint64(len(m.raw)) > m.Total || m.Offset > m.Total-uint64(len(m.raw)) {
		return fmt.Errorf("%w: bytes %d..+%d lie outside a block of %d bytes", ErrMalformed, m.Offset, len(m.raw), m.Total)
	}
	if len(m.wire) > blockstore.MaxBlockSize {
		return fmt.Errorf("%w: %v data of %d bytes exceeds MaxBlockSize = %d", ErrMalformed, m.enc, len(m.wire), blockstore.MaxBlockSize)
	}
	return nil
}

func (m *Block) payloadLen() int {
	return hashSize + 1 + wire.UvarintLen(m.Offset) + wire.UvarintLen(m.Total) + len(m.wire)
}

func (m *Block) appendHead(dst []byte) []byte {
	dst = append(dst, m.Hash[:]...)
	dst = append(dst, byte(m.enc))
	dst = appendUvarint(dst, m.Offset)
	return appendUvarint(dst, m.Total)
}

func (m *Block) body() []byte { return m.wire }

func (m *Block) appendPayload(dst []byte) []byte {
	return append(m.appendHead(dst), m.wire...)
}

func decodeBlock(p []byte) (Message, error) {
	d := wire.NewReader(p, ErrMalformed)
	m := &Block{}
	m.Hash = d.Hash()
	m.enc = Encoding(d.U8())
	m.Offset = d.Uvarint()
	m.Total = d.Uvarint()
	m.wire = d.Rest()
	if err := d.Done(); err != nil {
		return nil, err
	}
	// Field limits before decompressing, so the decompression bound
	// below is meaningful.
	if m.Total > blockstore.MaxBlockSize || m.Offset > m.Total {
		return nil, fmt.Errorf("%w: offset %d in a block of %d bytes (MaxBlockSize = %d)", ErrMalformed, m.Offset, m.Total, blockstore.MaxBlockSize)
	}
	switch m.enc {
	case Raw:
		m.raw = m.wire
	case Zstd:
		raw, err := decompress(m.wire, int(m.Total-m.Offset), "total-offset")
		if err != nil {
			return nil, err
		}
		m.raw = raw
	default:
		return nil, fmt.Errorf("%w: unknown encoding %d", ErrMalformed, m.enc)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Missing answers one hash of a GetBlocks that the server does not have.
type Missing struct {
	Hash blockstore.Hash
}

func (*Missing) Type() Type      { return TypeMissing }
func (*Missing) check() error    { return nil }
func (*Missing) payloadLen() int { return hashSize }

func (m *Missing) appendPayload(dst []byte) []byte { return append(dst, m.Hash[:]...) }

func decodeMissing(p []byte) (Message, error) {
	d := wire.NewReader(p, ErrMalformed)
	m := &Missing{Hash: d.Hash()}
	if err := d.Done(); err != nil {
		return nil, err
	}
	return m, nil
}

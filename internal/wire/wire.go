// Package wire holds the decoding primitives that every grits format
// shares (tree nodes, proofs, protocol frames), so that the rules that
// make an encoding canonical, above all "a varint has one spelling",
// are written once.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/grits-cdn/grits/blockstore"
)

// Reader decodes with sticky errors: after the first failure every read
// returns zero values, and the caller checks Err once. This keeps
// decoders short without ever indexing past the input.
type Reader struct {
	b         []byte
	off       int
	Err       error
	malformed error
}

// NewReader reads b; failures wrap malformed (the caller's package
// sentinel, so errors.Is works per format).
func NewReader(b []byte, malformed error) *Reader {
	return &Reader{b: b, malformed: malformed}
}

// Fail records the first failure, with the offset it happened at.
func (r *Reader) Fail(format string, args ...any) {
	if r.Err == nil {
		r.Err = fmt.Errorf("%w: at byte %d: %s", r.malformed, r.off, fmt.Sprintf(format, args...))
	}
}

// Remaining is the number of unread bytes.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// U8 reads one byte.
func (r *Reader) U8() byte {
	if r.Err != nil {
		return 0
	}
	if r.Remaining() < 1 {
		r.Fail("truncated")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// U16 reads a big-endian uint16.
func (r *Reader) U16() uint16 {
	if r.Err != nil {
		return 0
	}
	if r.Remaining() < 2 {
		r.Fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

// Uvarint reads a LEB128 unsigned integer and refuses overlong encodings
// (a trailing zero byte), which would give one value two spellings.
func (r *Reader) Uvarint() uint64 {
	if r.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.Fail("truncated varint")
		return 0
	case n < 0:
		r.Fail("varint overflows 64 bits")
		return 0
	case n > 1 && r.b[r.off+n-1] == 0:
		r.Fail("non-minimal varint")
		return 0
	}
	r.off += n
	return v
}

// Varint reads a zig-zag signed integer, as binary.AppendVarint writes.
func (r *Reader) Varint() int64 {
	u := r.Uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// Bytes returns the next n bytes, aliasing the input (capacity capped so
// an append by the caller cannot overwrite what follows). n is checked
// against what is left before anything is sliced.
func (r *Reader) Bytes(n uint64) []byte {
	if r.Err != nil {
		return nil
	}
	if n > uint64(r.Remaining()) {
		r.Fail("truncated: need %d bytes, have %d", n, r.Remaining())
		return nil
	}
	b := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b
}

// Rest returns every unread byte.
func (r *Reader) Rest() []byte { return r.Bytes(uint64(r.Remaining())) }

// Hash reads a 32-byte hash.
func (r *Reader) Hash() blockstore.Hash {
	var h blockstore.Hash
	copy(h[:], r.Bytes(blockstore.HashSize))
	return h
}

// Done fails if bytes are left over and returns the first failure.
func (r *Reader) Done() error {
	if r.Err == nil && r.Remaining() != 0 {
		r.Fail("%d trailing bytes", r.Remaining())
	}
	return r.Err
}

// maxVarintLen is the longest LEB128 encoding of a uint64.
const maxVarintLen = 10

// ReadUvarint reads one varint from a stream with the same rules as
// Reader.Uvarint (minimal length, 64 bits). A stream that ends inside
// the varint is malformed, wrapping io.ErrUnexpectedEOF; other read
// errors are returned as they are.
func ReadUvarint(r io.ByteReader, malformed error) (uint64, error) {
	var x uint64
	for i := range maxVarintLen {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("%w: truncated varint: %w", malformed, io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		if b < 0x80 {
			switch {
			case i == maxVarintLen-1 && b > 1:
				return 0, fmt.Errorf("%w: varint overflows 64 bits", malformed)
			case i > 0 && b == 0:
				return 0, fmt.Errorf("%w: non-minimal varint", malformed)
			}
			return x | uint64(b)<<(7*i), nil
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return 0, fmt.Errorf("%w: varint overflows 64 bits", malformed)
}

// UvarintLen is the encoded length of v.
func UvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// VarintLen is the encoded length of v in zig-zag form.
func VarintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return UvarintLen(u)
}

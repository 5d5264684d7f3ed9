package proto

import (
	"fmt"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/wire"
	"github.com/grits-cdn/grits/tree"
)

// Lookup asks for the proof of a path under a tree, and the file itself
// if it is small.
type Lookup struct {
	// Tree is a tree hash, the one inside a signed root, not the root
	// record's own hash.
	Tree blockstore.Hash
	// Path is a slash path of at most tree.MaxPathLen bytes. Decoding
	// does not check its names: the server parses it with tree.ParsePath
	// and answers ErrBadRequest, which says more than a malformed frame.
	Path string
	// MaxInline is the largest file the client wants inline; the server
	// lowers it to its own cap (at most InlineMax). 0 asks for none.
	MaxInline  uint64
	AcceptZstd bool
	// Latest asks the server to use its newest signed root (Tree must be
	// zero) and to send that root in the result, so a client that knows
	// only the site key gets root, proof and a small file in one round
	// trip.
	Latest bool
}

func (*Lookup) Type() Type { return TypeLookup }

// flagLatest is bit 1 of a Lookup's flags.
const flagLatest = 0x02

func (m *Lookup) check() error {
	if m.Latest && !m.Tree.IsZero() {
		return fmt.Errorf("%w: a Latest lookup with a tree hash", ErrMalformed)
	}
	if len(m.Path) > tree.MaxPathLen {
		return fmt.Errorf("%w: path of %d bytes exceeds tree.MaxPathLen = %d", ErrMalformed, len(m.Path), tree.MaxPathLen)
	}
	return nil
}

func (m *Lookup) payloadLen() int {
	return 1 + hashSize + wire.UvarintLen(uint64(len(m.Path))) + len(m.Path) + wire.UvarintLen(m.MaxInline)
}

func (m *Lookup) appendPayload(dst []byte) []byte {
	f := flagsByte(m.AcceptZstd)
	if m.Latest {
		f |= flagLatest
	}
	dst = append(dst, f)
	dst = append(dst, m.Tree[:]...)
	dst = appendUvarint(dst, uint64(len(m.Path)))
	dst = append(dst, m.Path...)
	return appendUvarint(dst, m.MaxInline)
}

func decodeLookup(p []byte) (Message, error) {
	d := wire.NewReader(p, ErrMalformed)
	m := &Lookup{}
	f := d.U8()
	if f&^(flagZstd|flagLatest) != 0 {
		d.Fail("unknown flags 0x%02x", f)
	}
	m.AcceptZstd, m.Latest = f&flagZstd != 0, f&flagLatest != 0
	m.Tree = d.Hash()
	n := d.Uvarint()
	if d.Err == nil && n > tree.MaxPathLen {
		return nil, fmt.Errorf("%w: path of %d bytes exceeds tree.MaxPathLen = %d", ErrMalformed, n, tree.MaxPathLen)
	}
	m.Path = string(d.Bytes(n))
	m.MaxInline = d.Uvarint()
	if err := d.Done(); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Wire values of LookupResult's status byte. They equal tree.Status's
// values today, but are fixed here and mapped explicitly, so that a
// change in tree cannot silently change the protocol.
const (
	wireFound         = 1
	wireAbsent        = 2
	wireNotDir        = 3
	wireSymlinkInPath = 4
)

func statusToWire(s tree.Status) (byte, bool) {
	switch s {
	case tree.Found:
		return wireFound, true
	case tree.Absent:
		return wireAbsent, true
	case tree.NotDir:
		return wireNotDir, true
	case tree.SymlinkInPath:
		return wireSymlinkInPath, true
	}
	return 0, false
}

func statusFromWire(b byte) (tree.Status, bool) {
	switch b {
	case wireFound:
		return tree.Found, true
	case wireAbsent:
		return tree.Absent, true
	case wireNotDir:
		return tree.NotDir, true
	case wireSymlinkInPath:
		return tree.SymlinkInPath, true
	}
	return 0, false
}

// Wire values of LookupResult's inline byte. They differ from Block's
// Encoding numbers because here 0 must mean "nothing inline".
const (
	inlineNone = 0
	inlineRaw  = 1
	inlineZstd = 2
)

// LookupResult answers a Lookup with a proof and, for a small file, its
// content. Decoding parses the proof (tree.DecodeProof) but does not
// verify it: the client must call tree.Verify against the tree hash of a
// root it verified, and check inline data against the file node the
// proof ends with.
type LookupResult struct {
	// Status is what the server says the proof shows; tree.Verify says
	// what it really shows, and the client believes only that.
	Status tree.Status
	Proof  *tree.Proof
	// Root is the signed root whose tree the proof starts from; present
	// (and then required) in answers to a Latest lookup. The client
	// verifies it against the site key before believing the proof.
	Root *tree.Root

	hasInline  bool
	inlineEnc  Encoding
	inlineWire []byte
	inline     []byte
}

// NewLookupResult returns a result carrying proof and, when inline is not
// nil, the whole file inline (only for status Found). allowZstd works as
// for NewBlock.
func NewLookupResult(status tree.Status, proof *tree.Proof, inline []byte, allowZstd bool) *LookupResult {
	m := &LookupResult{Status: status, Proof: proof}
	if inline != nil {
		m.hasInline = true
		m.inline = inline
		m.inlineEnc, m.inlineWire = compress(inline, allowZstd)
	}
	return m
}

// Inline returns the file's content, uncompressed, and whether the
// result carries it. An empty file inline is (empty, true).
func (m *LookupResult) Inline() ([]byte, bool) { return m.inline, m.hasInline }

// InlineEncoding returns how inline data is sent (Raw when there is none).
func (m *LookupResult) InlineEncoding() Encoding { return m.inlineEnc }

func (*LookupResult) Type() Type { return TypeLookupResult }

func (m *LookupResult) check() error {
	if _, ok := statusToWire(m.Status); !ok {
		return fmt.Errorf("%w: unknown status %d", ErrMalformed, m.Status)
	}
	if m.Proof == nil {
		return fmt.Errorf("%w: no proof", ErrMalformed)
	}
	// The limits tree.DecodeProof enforces, so that what we send decodes.
	if n := len(m.Proof.Nodes); n > tree.MaxProofNodes {
		return fmt.Errorf("%w: proof of %d nodes exceeds tree.MaxProofNodes = %d", ErrMalformed, n, tree.MaxProofNodes)
	}
	for i, b := range m.Proof.Nodes {
		if len(b) > tree.MaxNodeSize {
			return fmt.Errorf("%w: proof node %d of %d bytes exceeds tree.MaxNodeSize = %d", ErrMalformed, i, len(b), tree.MaxNodeSize)
		}
	}
	if n := m.Proof.Size(); n > tree.MaxProofSize {
		return fmt.Errorf("%w: proof of %d bytes exceeds tree.MaxProofSize = %d", ErrMalformed, n, tree.MaxProofSize)
	}
	if !m.hasInline {
		return nil
	}
	if m.Status != tree.Found {
		return fmt.Errorf("%w: inline data with status %v", ErrMalformed, m.Status)
	}
	if m.inlineEnc != Raw && m.inlineEnc != Zstd {
		return fmt.Errorf("%w: unknown inline encoding %d", ErrMalformed, m.inlineEnc)
	}
	if len(m.inline) > InlineMax || len(m.inlineWire) > InlineMax {
		return fmt.Errorf("%w: inline data of %d bytes (%d as sent) exceeds InlineMax = %d", ErrMalformed, len(m.inline), len(m.inlineWire), InlineMax)
	}
	return nil
}

func (m *LookupResult) payloadLen() int {
	n := m.Proof.Size()
	n = 1 + 1 + wire.UvarintLen(uint64(n)) + n + 1
	if m.Root != nil {
		n += tree.RootSize
	}
	if m.hasInline {
		n += wire.UvarintLen(uint64(len(m.inlineWire))) + len(m.inlineWire)
	}
	return n
}

func (m *LookupResult) appendPayload(dst []byte) []byte {
	s, _ := statusToWire(m.Status) // checked
	dst = append(dst, s)
	if m.Root != nil {
		dst = append(dst, 1)
		dst = m.Root.AppendEncode(dst)
	} else {
		dst = append(dst, 0)
	}
	dst = appendUvarint(dst, uint64(m.Proof.Size()))
	dst = m.Proof.AppendEncode(dst)
	switch {
	case !m.hasInline:
		return append(dst, inlineNone)
	case m.inlineEnc == Zstd:
		dst = append(dst, inlineZstd)
	default:
		dst = append(dst, inlineRaw)
	}
	dst = appendUvarint(dst, uint64(len(m.inlineWire)))
	return append(dst, m.inlineWire...)
}

func decodeLookupResult(p []byte) (Message, error) {
	d := wire.NewReader(p, ErrMalformed)
	m := &LookupResult{}
	sb := d.U8()
	if d.Err != nil {
		return nil, d.Err
	}
	st, ok := statusFromWire(sb)
	if !ok {
		return nil, fmt.Errorf("%w: unknown status %d", ErrMalformed, sb)
	}
	m.Status = st
	switch hr := d.U8(); {
	case d.Err != nil:
		return nil, d.Err
	case hr == 1:
		r, err := tree.DecodeRoot(d.Bytes(tree.RootSize))
		if d.Err != nil {
			return nil, d.Err
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		m.Root = &r
	case hr != 0:
		return nil, fmt.Errorf("%w: root presence byte %d", ErrMalformed, hr)
	}
	n := d.Uvarint()
	if d.Err == nil && n > tree.MaxProofSize {
		return nil, fmt.Errorf("%w: proof of %d bytes exceeds tree.MaxProofSize = %d", ErrMalformed, n, tree.MaxProofSize)
	}
	raw := d.Bytes(n)
	if d.Err != nil {
		return nil, d.Err
	}
	proof, err := tree.DecodeProof(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	m.Proof = proof
	switch ib := d.U8(); {
	case d.Err != nil:
		return nil, d.Err
	case ib == inlineNone:
	case ib == inlineRaw || ib == inlineZstd:
		n := d.Uvarint()
		if d.Err == nil && n > InlineMax {
			return nil, fmt.Errorf("%w: inline data of %d bytes exceeds InlineMax = %d", ErrMalformed, n, InlineMax)
		}
		m.hasInline = true
		m.inlineWire = d.Bytes(n)
		if d.Err != nil {
			return nil, d.Err
		}
		m.inline = m.inlineWire
		if ib == inlineZstd {
			m.inlineEnc = Zstd
			if m.inline, err = decompress(m.inlineWire, InlineMax, "InlineMax"); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown inline encoding %d", ErrMalformed, ib)
	}
	if err := d.Done(); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

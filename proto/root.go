package proto

import (
	"fmt"

	"github.com/grits-cdn/grits/internal/wire"
	"github.com/grits-cdn/grits/tree"
)

// GetRoot asks for the newest signed root the server holds. It has no
// fields: a node serves one site, named by the site key the client
// already trusts.
type GetRoot struct{}

func (*GetRoot) Type() Type                      { return TypeGetRoot }
func (*GetRoot) check() error                    { return nil }
func (*GetRoot) payloadLen() int                 { return 0 }
func (*GetRoot) appendPayload(dst []byte) []byte { return dst }

func decodeGetRoot(p []byte) (Message, error) {
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d payload bytes, want none", ErrMalformed, len(p))
	}
	return &GetRoot{}, nil
}

// GetRoots asks for the signed roots after seq After, oldest first: the
// chain a node that missed roots lacks. The server answers with up to Max
// Root frames of seqs After+1, After+2, ..., each chained to the one
// before, then ends the stream; none when it holds nothing newer.
type GetRoots struct {
	// After is the newest seq the client already holds; 0 for none.
	After uint64
	// Max is the most roots wanted, 1..MaxRootsPerRequest.
	Max uint64
}

func (*GetRoots) Type() Type { return TypeGetRoots }

func (m *GetRoots) check() error {
	if m.Max < 1 || m.Max > MaxRootsPerRequest {
		return fmt.Errorf("%w: max %d, want 1..MaxRootsPerRequest = %d", ErrMalformed, m.Max, MaxRootsPerRequest)
	}
	return nil
}

func (m *GetRoots) payloadLen() int { return wire.UvarintLen(m.After) + wire.UvarintLen(m.Max) }

func (m *GetRoots) appendPayload(dst []byte) []byte {
	return appendUvarint(appendUvarint(dst, m.After), m.Max)
}

func decodeGetRoots(p []byte) (Message, error) {
	d := wire.NewReader(p, ErrMalformed)
	m := &GetRoots{After: d.Uvarint(), Max: d.Uvarint()}
	if err := d.Done(); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Root carries a signed root record. Decoding checks only its framing
// (tree.DecodeRoot); whether the signature, expiry and sequence number
// are acceptable is for the client to decide with tree.Root.Verify and
// CheckSuccessor, because only it knows the site key and the last root
// it accepted. In answer to GetRoots, the chain checks replace
// CheckSuccessor (see SPEC.md, GetRoots).
type Root struct {
	Root tree.Root
}

func (*Root) Type() Type                        { return TypeRoot }
func (*Root) check() error                      { return nil }
func (*Root) payloadLen() int                   { return tree.RootSize }
func (m *Root) appendPayload(dst []byte) []byte { return m.Root.AppendEncode(dst) }

func decodeRoot(p []byte) (Message, error) {
	r, err := tree.DecodeRoot(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &Root{Root: r}, nil
}

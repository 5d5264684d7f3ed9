package proto

import (
	"fmt"

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

// Root carries a signed root record. Decoding checks only its framing
// (tree.DecodeRoot); whether the signature, expiry and sequence number
// are acceptable is for the client to decide with tree.Root.Verify and
// CheckSuccessor, because only it knows the site key and the last root
// it accepted.
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

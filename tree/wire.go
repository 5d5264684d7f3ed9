package tree

import "errors"

// ErrMalformed is returned (wrapped) for bytes that are not a valid,
// canonical encoding. Canonical means one logical value has exactly one
// encoding, so equal content always has equal hashes and a decoder never
// has to guess. The decoding primitives live in internal/wire, shared
// with package proto.
var ErrMalformed = errors.New("malformed tree node")

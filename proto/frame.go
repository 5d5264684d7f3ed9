package proto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/wire"
	"github.com/grits-cdn/grits/tree"
)

// Type is the first byte of a frame. Requests are 0x01..0x3F, responses
// 0x40..0x7F; 0x00 and 0x80..0xFF are unassigned.
type Type uint8

// Message types. Explicit numbers, never iota: inserting a constant must
// not renumber the protocol. The list is append-only; a number keeps its
// meaning for as long as its ALPN version is spoken, and a retired one is
// never reused.
//
// grits/1 (2026-11): GetRoot, GetBlock, GetBlocks, Lookup, GetRoots,
// Enroll, GetSwarmKeys; Root, Block, Missing, LookupResult, Grant,
// SwarmKeys, Error. Added in grits/1 (2026-12): GetTLSCert, TLSCert (a
// server that predates them refuses the request as an unknown type).
const (
	TypeGetRoot      Type = 0x01
	TypeGetBlock     Type = 0x02
	TypeGetBlocks    Type = 0x03
	TypeLookup       Type = 0x04
	TypeGetRoots     Type = 0x05
	TypeEnroll       Type = 0x06
	TypeGetSwarmKeys Type = 0x07
	TypeGetTLSCert   Type = 0x08

	TypeRoot         Type = 0x40
	TypeBlock        Type = 0x41
	TypeMissing      Type = 0x42
	TypeLookupResult Type = 0x43
	TypeGrant        Type = 0x44
	TypeSwarmKeys    Type = 0x45
	TypeTLSCert      Type = 0x46
	TypeError        Type = 0x7F
)

func (t Type) String() string {
	switch t {
	case TypeGetRoot:
		return "GetRoot"
	case TypeGetBlock:
		return "GetBlock"
	case TypeGetBlocks:
		return "GetBlocks"
	case TypeLookup:
		return "Lookup"
	case TypeGetRoots:
		return "GetRoots"
	case TypeEnroll:
		return "Enroll"
	case TypeGetSwarmKeys:
		return "GetSwarmKeys"
	case TypeGetTLSCert:
		return "GetTLSCert"
	case TypeRoot:
		return "Root"
	case TypeBlock:
		return "Block"
	case TypeMissing:
		return "Missing"
	case TypeLookupResult:
		return "LookupResult"
	case TypeGrant:
		return "Grant"
	case TypeSwarmKeys:
		return "SwarmKeys"
	case TypeTLSCert:
		return "TLSCert"
	case TypeError:
		return "Error"
	}
	return fmt.Sprintf("Type(0x%02x)", uint8(t))
}

// IsRequest reports whether t lies in the request range, assigned or not.
func (t Type) IsRequest() bool { return t >= 0x01 && t <= 0x3F }

// IsResponse reports whether t lies in the response range, assigned or not.
func (t Type) IsResponse() bool { return t >= 0x40 && t <= 0x7F }

// Idempotent reports whether a request of type t changes nothing on the
// server, so that it may be sent in 0-RTT data and repeated after a
// failure. Every request is but Enroll, which may use up its token: it
// must wait for the handshake to complete (SPEC.md section 1).
func (t Type) Idempotent() bool { return t.IsRequest() && t != TypeEnroll }

// Limits on payload lengths. ReadMessage checks a frame's length field
// against the limit of its type before it allocates or reads the payload,
// so a peer can never make us hold more than the limit of a type we
// accept. Varint fields are counted at their longest (10 bytes) so the
// limits are simple sums.
const (
	// MaxBatch is the most hashes one GetBlocks may ask for.
	MaxBatch = 256
	// MaxErrorMessage is the longest Error message, in bytes of UTF-8.
	MaxErrorMessage = 512
	// InlineMax is the largest file a LookupResult carries inline, and
	// the default cap a server applies to the client's inline_max. A
	// server may use a lower cap; none may use a higher one, since the
	// frame limit below is built on it.
	InlineMax = 64 << 10

	maxVarint = binary.MaxVarintLen64
	hashSize  = blockstore.HashSize

	// MaxRootsPerRequest is the most roots one GetRoots may ask for.
	MaxRootsPerRequest = 256
	// MaxTokenSize is the longest join token an Enroll carries. The
	// token is opaque here: the membership layer defines it.
	MaxTokenSize = 2048
	// MaxGrantSize and MaxSwarmKeysSize bound the opaque bodies of Grant
	// and SwarmKeys, which the membership layer defines.
	MaxGrantSize     = 64 << 10
	MaxSwarmKeysSize = 4096
	// MaxTLSCertRequestSize and MaxTLSCertSize bound the opaque bodies of
	// GetTLSCert and TLSCert (a certificate request; a certificate chain).
	MaxTLSCertRequestSize = 4096
	MaxTLSCertSize        = 16 << 10

	MaxGetRootPayload      = 0
	MaxGetBlockPayload     = hashSize + 1 + maxVarint + maxVarint
	MaxGetBlocksPayload    = 1 + maxVarint + hashSize*MaxBatch
	MaxLookupPayload       = 1 + hashSize + maxVarint + tree.MaxPathLen + maxVarint
	MaxGetRootsPayload     = maxVarint + maxVarint
	MaxEnrollPayload       = MaxTokenSize
	MaxGetSwarmKeysPayload = 0
	MaxGetTLSCertPayload   = MaxTLSCertRequestSize

	RootPayload    = tree.RootSize // exactly
	MissingPayload = hashSize      // exactly
	// MaxBlockPayload bounds the data of a Block as sent, raw or
	// compressed: compression may never make a frame larger than the
	// raw block would have been allowed to be.
	MaxBlockPayload        = hashSize + 1 + maxVarint + maxVarint + blockstore.MaxBlockSize
	MaxLookupResultPayload = 1 + 1 + tree.RootSize + maxVarint + tree.MaxProofSize + 1 + maxVarint + InlineMax
	MaxGrantPayload        = MaxGrantSize
	MaxSwarmKeysPayload    = MaxSwarmKeysSize
	MaxTLSCertPayload      = MaxTLSCertSize
	MaxErrorPayload        = 2 + 2 + MaxErrorMessage

	// MaxPayload is the largest payload of any type: a LookupResult
	// carrying the largest proof tree.DecodeProof accepts.
	MaxPayload = max(MaxGetRootPayload, MaxGetBlockPayload, MaxGetBlocksPayload,
		MaxLookupPayload, MaxGetRootsPayload, MaxEnrollPayload, MaxGetSwarmKeysPayload, MaxGetTLSCertPayload,
		RootPayload, MissingPayload, MaxBlockPayload, MaxLookupResultPayload,
		MaxGrantPayload, MaxSwarmKeysPayload, MaxTLSCertPayload, MaxErrorPayload)
	// MaxFrameSize bounds a whole frame: type, length and payload.
	MaxFrameSize = 1 + maxVarint + MaxPayload
)

// Errors for frames that cannot be read. Callers branch on them with
// errors.Is; the wrapping error says what was wrong and where.
var (
	// ErrMalformed: the bytes are not a valid, canonical encoding of the
	// frame's type (truncated, trailing bytes, an overlong varint, an
	// unknown flag or encoding, a field outside its limit).
	ErrMalformed = errors.New("malformed frame")
	// ErrUnknownType: the type byte is not one this version assigns.
	// The rest of the stream cannot be trusted to be frames at all, so
	// it is never skipped.
	ErrUnknownType = errors.New("unknown frame type")
	// ErrUnexpectedType: a known type where the reader does not accept
	// it, such as a response sent to a server.
	ErrUnexpectedType = errors.New("unexpected frame type")
	// ErrFrameTooLarge: the length field exceeds its type's limit.
	ErrFrameTooLarge = errors.New("frame too large")
)

// Message is one frame's content. The implementations are this
// package's pointer types (*GetRoot, *Block, ...); ReadMessage returns
// them and a type switch tells them apart.
type Message interface {
	Type() Type

	// check reports whether the message is encodable: exactly the
	// constraints its decoder enforces, so that we never send what a
	// peer running this code would refuse, and whatever we decode
	// re-encodes.
	check() error
	// payloadLen is the encoded payload length of a checked message.
	payloadLen() int
	// appendPayload appends the payload of a checked message.
	appendPayload(dst []byte) []byte
}

// frameRule is what the reader needs to know about a type before
// reading its payload.
type frameRule struct {
	max    int
	decode func(payload []byte) (Message, error)
}

// ruleFor is a switch rather than a map so that the type list is
// immutable and needs no package-level state.
func ruleFor(t Type) (frameRule, bool) {
	switch t {
	case TypeGetRoot:
		return frameRule{MaxGetRootPayload, decodeGetRoot}, true
	case TypeGetBlock:
		return frameRule{MaxGetBlockPayload, decodeGetBlock}, true
	case TypeGetBlocks:
		return frameRule{MaxGetBlocksPayload, decodeGetBlocks}, true
	case TypeLookup:
		return frameRule{MaxLookupPayload, decodeLookup}, true
	case TypeGetRoots:
		return frameRule{MaxGetRootsPayload, decodeGetRoots}, true
	case TypeEnroll:
		return frameRule{MaxEnrollPayload, decodeEnroll}, true
	case TypeGetSwarmKeys:
		return frameRule{MaxGetSwarmKeysPayload, decodeGetSwarmKeys}, true
	case TypeGetTLSCert:
		return frameRule{MaxGetTLSCertPayload, decodeGetTLSCert}, true
	case TypeRoot:
		return frameRule{RootPayload, decodeRoot}, true
	case TypeBlock:
		return frameRule{MaxBlockPayload, decodeBlock}, true
	case TypeMissing:
		return frameRule{MissingPayload, decodeMissing}, true
	case TypeLookupResult:
		return frameRule{MaxLookupResultPayload, decodeLookupResult}, true
	case TypeGrant:
		return frameRule{MaxGrantPayload, decodeGrant}, true
	case TypeSwarmKeys:
		return frameRule{MaxSwarmKeysPayload, decodeSwarmKeys}, true
	case TypeTLSCert:
		return frameRule{MaxTLSCertPayload, decodeTLSCert}, true
	case TypeError:
		return frameRule{MaxErrorPayload, decodeError}, true
	}
	return frameRule{}, false
}

// answers reports whether resp is a valid response frame to req.
func answers(req, resp Type) bool {
	if resp == TypeError {
		return true
	}
	switch req {
	case TypeGetRoot:
		return resp == TypeRoot
	case TypeGetBlock:
		return resp == TypeBlock
	case TypeGetBlocks:
		return resp == TypeBlock || resp == TypeMissing
	case TypeLookup:
		return resp == TypeLookupResult
	case TypeGetRoots:
		return resp == TypeRoot
	case TypeEnroll:
		return resp == TypeGrant
	case TypeGetSwarmKeys:
		return resp == TypeSwarmKeys
	case TypeGetTLSCert:
		return resp == TypeTLSCert
	}
	return false
}

// ReadMessage reads one frame of any known type. At a clean end of
// stream, before the first byte of a frame, it returns io.EOF unwrapped;
// a stream that ends inside a frame gives ErrMalformed wrapping
// io.ErrUnexpectedEOF. It reads exactly one frame and nothing after it.
//
// The returned message's byte slices point into a buffer allocated for
// this frame alone, so it stays valid after further reads.
//
// A server should use ReadRequest and a client ReadResponse instead,
// which refuse unexpected types before their (larger) payload limits
// apply.
func ReadMessage(r *bufio.Reader) (Message, error) {
	return readFrame(r, func(Type) bool { return true })
}

// ReadRequest reads one frame and accepts only request types, so a
// client can make a server allocate no more than the largest request
// (MaxGetBlocksPayload).
func ReadRequest(r *bufio.Reader) (Message, error) {
	return readFrame(r, Type.IsRequest)
}

// ReadResponse reads one frame that answers a request of type req:
// the response types defined for it, or Error.
func ReadResponse(r *bufio.Reader, req Type) (Message, error) {
	return readFrame(r, func(t Type) bool { return answers(req, t) })
}

func readFrame(r *bufio.Reader, accept func(Type) bool) (Message, error) {
	tb, err := r.ReadByte()
	if err != nil {
		// io.EOF here is the peer finishing cleanly between frames.
		return nil, err
	}
	t := Type(tb)
	rule, ok := ruleFor(t)
	if !ok {
		return nil, fmt.Errorf("%w 0x%02x", ErrUnknownType, tb)
	}
	if !accept(t) {
		return nil, fmt.Errorf("%w: %v", ErrUnexpectedType, t)
	}
	n, err := readUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%v frame length: %w", t, err)
	}
	if n > uint64(rule.max) {
		return nil, fmt.Errorf("%w: %v payload of %d bytes exceeds the limit of %d", ErrFrameTooLarge, t, n, rule.max)
	}
	payload, got, err := readPayload(r, int(n))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %v payload truncated after %d of %d bytes: %w", ErrMalformed, t, got, n, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("%v payload: %w", t, err)
	}
	m, err := rule.decode(payload)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", t, err)
	}
	return m, nil
}

// eagerAlloc is the largest payload allocated in full as soon as its
// length is known. Only a LookupResult with a proof of over a megabyte
// may be larger; its buffer starts at growStart and doubles as the bytes
// arrive, so a peer that claims 8 MiB and sends nothing costs us
// kilobytes, not megabytes.
const (
	eagerAlloc = MaxBlockPayload
	growStart  = 64 << 10
)

// readPayload reads exactly n bytes and returns how many it got.
func readPayload(r io.Reader, n int) ([]byte, int, error) {
	if n <= eagerAlloc {
		buf := make([]byte, n)
		got, err := io.ReadFull(r, buf)
		return buf, got, err
	}
	buf := make([]byte, 0, growStart)
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), cap(buf)))
		}
		k, err := io.ReadFull(r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+k]
		if err != nil {
			return buf, len(buf), err
		}
	}
	return buf, n, nil
}

// readUvarint reads a minimal LEB128 value byte by byte, so that nothing
// past the varint is consumed.
func readUvarint(r io.ByteReader) (uint64, error) { return wire.ReadUvarint(r, ErrMalformed) }

// AppendMessage appends m as one frame. It refuses a message that a
// peer would refuse to read, with an error wrapping ErrMalformed.
func AppendMessage(dst []byte, m Message) ([]byte, error) {
	if err := m.check(); err != nil {
		return dst, fmt.Errorf("proto: encode %v: %w", m.Type(), err)
	}
	dst = append(dst, byte(m.Type()))
	dst = binary.AppendUvarint(dst, uint64(m.payloadLen()))
	return m.appendPayload(dst), nil
}

// Size returns the length of m's frame, for a message AppendMessage
// accepts.
func Size(m Message) int {
	n := m.payloadLen()
	return 1 + uvarintLen(uint64(n)) + n
}

// bodyMessage is implemented by messages with a large trailing byte
// string, which WriteMessage writes without copying.
type bodyMessage interface {
	Message
	// appendHead appends the payload up to the body.
	appendHead(dst []byte) []byte
	body() []byte
}

// WriteMessage writes m as one frame. A Block's data is written straight
// from its slice rather than copied into a frame buffer.
func WriteMessage(w io.Writer, m Message) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("proto: encode %v: %w", m.Type(), err)
	}
	if bm, ok := m.(bodyMessage); ok && len(bm.body()) > 256 {
		var buf [64]byte
		hdr := append(buf[:0], byte(m.Type()))
		hdr = binary.AppendUvarint(hdr, uint64(m.payloadLen()))
		hdr = bm.appendHead(hdr)
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		_, err := w.Write(bm.body())
		return err
	}
	buf := make([]byte, 0, Size(m))
	buf, _ = AppendMessage(buf, m) // checked above
	_, err := w.Write(buf)
	return err
}

func uvarintLen(v uint64) int { return wire.UvarintLen(v) }

// flagZstd is bit 0 of a request's flags byte: the client accepts zstd.
// Every other bit must be zero; a new flag comes with a new ALPN version.
const flagZstd = 0x01

func readFlags(d *wire.Reader) bool {
	f := d.U8()
	if f&^flagZstd != 0 {
		d.Fail("unknown flags 0x%02x", f)
	}
	return f&flagZstd != 0
}

func flagsByte(zstdOK bool) byte {
	if zstdOK {
		return flagZstd
	}
	return 0
}

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

package proto

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/wire"
	"github.com/grits-cdn/grits/tree"
)

// ErrorCode is the code of an Error frame.
type ErrorCode uint16

// Error codes. Explicit numbers, append-only; a receiver must accept
// codes it does not know (they match only ErrRemote).
//
// grits/1 (2026-11): 1..8.
const (
	// CodeNotFound: the block, or the node's root, is not on this node.
	CodeNotFound ErrorCode = 1
	// CodeBadRequest: a well-formed frame asking for something invalid
	// (a bad path, a range outside the block), or a malformed frame.
	CodeBadRequest ErrorCode = 2
	// CodeTooLarge: the request or its answer exceeds a limit.
	CodeTooLarge ErrorCode = 3
	// CodeOverloaded: try later, or another peer.
	CodeOverloaded ErrorCode = 4
	// CodeInternal: the server failed; the message says nothing more.
	CodeInternal ErrorCode = 5
	// CodeUnknownRoot: a Lookup's tree is not on this node.
	CodeUnknownRoot ErrorCode = 6
	// CodeUnauthorized: this peer may not make this request.
	CodeUnauthorized ErrorCode = 7
	// CodeCancelled: the server gave up on the request (shutting down,
	// or the request was cancelled).
	CodeCancelled ErrorCode = 8
)

// Sentinels for the codes, both ways: errors.Is(err, ErrNotFound) is true
// for a decoded Error with CodeNotFound, and ErrorFor turns an error
// wrapping ErrNotFound into one.
var (
	ErrNotFound     = errors.New("not found")
	ErrBadRequest   = errors.New("bad request")
	ErrTooLarge     = errors.New("too large")
	ErrOverloaded   = errors.New("overloaded")
	ErrInternal     = errors.New("internal error")
	ErrUnknownRoot  = errors.New("unknown root")
	ErrUnauthorized = errors.New("unauthorized")
	ErrCancelled    = errors.New("cancelled")
	// ErrRemote matches every *Error, known code or not: the peer
	// answered with an error rather than failing to answer.
	ErrRemote = errors.New("error from peer")
)

func (c ErrorCode) sentinel() error {
	switch c {
	case CodeNotFound:
		return ErrNotFound
	case CodeBadRequest:
		return ErrBadRequest
	case CodeTooLarge:
		return ErrTooLarge
	case CodeOverloaded:
		return ErrOverloaded
	case CodeInternal:
		return ErrInternal
	case CodeUnknownRoot:
		return ErrUnknownRoot
	case CodeUnauthorized:
		return ErrUnauthorized
	case CodeCancelled:
		return ErrCancelled
	}
	return nil
}

func (c ErrorCode) String() string {
	if s := c.sentinel(); s != nil {
		return s.Error()
	}
	return fmt.Sprintf("error code %d", uint16(c))
}

// Error is an Error frame, and the Go error it stands for.
type Error struct {
	Code ErrorCode
	// Message is at most MaxErrorMessage bytes of UTF-8, for people:
	// programs branch on Code.
	Message string
}

// NewError returns an Error with msg made valid UTF-8 and clipped to
// MaxErrorMessage bytes, so it always encodes.
func NewError(code ErrorCode, msg string) *Error {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) > MaxErrorMessage {
		cut := MaxErrorMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	return &Error{Code: code, Message: msg}
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "peer: " + e.Code.String()
	}
	return "peer: " + e.Code.String() + ": " + e.Message
}

// Is matches ErrRemote and the sentinel of e's code.
func (e *Error) Is(target error) bool {
	return target == ErrRemote || (target != nil && target == e.Code.sentinel())
}

// errorMapping is how ErrorFor turns local errors into codes. detail
// says whether the error's text may go on the wire: only for errors that
// describe the request itself. Store and file system errors can carry
// paths and other internals, so they go out as a bare code.
type errorMapping struct {
	target error
	code   ErrorCode
	detail bool
}

func errorMappings() []errorMapping {
	return []errorMapping{
		// A server wraps these itself to choose the code and message.
		{ErrNotFound, CodeNotFound, true},
		{ErrBadRequest, CodeBadRequest, true},
		{ErrTooLarge, CodeTooLarge, true},
		{ErrOverloaded, CodeOverloaded, true},
		{ErrInternal, CodeInternal, false},
		{ErrUnknownRoot, CodeUnknownRoot, true},
		{ErrUnauthorized, CodeUnauthorized, true},
		{ErrCancelled, CodeCancelled, true},
		// A request that did not decode.
		{ErrMalformed, CodeBadRequest, true},
		{ErrUnknownType, CodeBadRequest, true},
		{ErrUnexpectedType, CodeBadRequest, true},
		{ErrFrameTooLarge, CodeTooLarge, true},
		{tree.ErrBadName, CodeBadRequest, true},
		{context.Canceled, CodeCancelled, false},
		// The server ran out of its own time for the request.
		{context.DeadlineExceeded, CodeOverloaded, false},
		{blockstore.ErrNotFound, CodeNotFound, false},
		// A corrupt block has been moved aside and now reads as not
		// found; the client should try another peer.
		{blockstore.ErrCorrupt, CodeNotFound, false},
		{blockstore.ErrTooLarge, CodeTooLarge, false},
		{tree.ErrNotExist, CodeNotFound, false},
		{tree.ErrNotDir, CodeNotFound, false},
		{tree.ErrSymlink, CodeNotFound, false},
	}
}

// ErrorFor returns the Error frame to send for err: an *Error in err's
// chain as it is, otherwise the code of the first error it wraps from
// the table above, with err's text as the message only where that text
// describes the request; anything unrecognised is CodeInternal with no
// message. ErrorFor(nil) is nil.
func ErrorFor(err error) *Error {
	if err == nil {
		return nil
	}
	if pe, ok := errors.AsType[*Error](err); ok {
		return NewError(pe.Code, pe.Message)
	}
	for _, m := range errorMappings() {
		if errors.Is(err, m.target) {
			if m.detail {
				return NewError(m.code, err.Error())
			}
			return &Error{Code: m.code}
		}
	}
	return &Error{Code: CodeInternal}
}

func (*Error) Type() Type { return TypeError }

func (e *Error) check() error {
	if len(e.Message) > MaxErrorMessage {
		return fmt.Errorf("%w: message of %d bytes exceeds MaxErrorMessage = %d", ErrMalformed, len(e.Message), MaxErrorMessage)
	}
	if !utf8.ValidString(e.Message) {
		return fmt.Errorf("%w: message is not valid UTF-8", ErrMalformed)
	}
	return nil
}

func (e *Error) payloadLen() int {
	return 2 + wire.UvarintLen(uint64(len(e.Message))) + len(e.Message)
}

func (e *Error) appendPayload(dst []byte) []byte {
	dst = append(dst, byte(e.Code>>8), byte(e.Code))
	dst = appendUvarint(dst, uint64(len(e.Message)))
	return append(dst, e.Message...)
}

func decodeError(p []byte) (Message, error) {
	d := wire.NewReader(p, ErrMalformed)
	e := &Error{}
	e.Code = ErrorCode(d.U16())
	n := d.Uvarint()
	if d.Err == nil && n > MaxErrorMessage {
		return nil, fmt.Errorf("%w: message of %d bytes exceeds MaxErrorMessage = %d", ErrMalformed, n, MaxErrorMessage)
	}
	e.Message = string(d.Bytes(n))
	if err := d.Done(); err != nil {
		return nil, err
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

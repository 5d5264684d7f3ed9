package proto

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

var allCodes = []struct {
	code     ErrorCode
	sentinel error
	wire     uint16
}{
	{CodeNotFound, ErrNotFound, 1},
	{CodeBadRequest, ErrBadRequest, 2},
	{CodeTooLarge, ErrTooLarge, 3},
	{CodeOverloaded, ErrOverloaded, 4},
	{CodeInternal, ErrInternal, 5},
	{CodeUnknownRoot, ErrUnknownRoot, 6},
	{CodeUnauthorized, ErrUnauthorized, 7},
	{CodeCancelled, ErrCancelled, 8},
}

// TestErrorCodes: each code, decoded from the wire, matches its own
// sentinel and ErrRemote and no other sentinel, and ErrorFor maps the
// sentinel back to the code.
func TestErrorCodes(t *testing.T) {
	for _, c := range allCodes {
		t.Run(c.sentinel.Error(), func(t *testing.T) {
			if uint16(c.code) != c.wire {
				t.Fatalf("code %v is %d on the wire, pinned at %d", c.code, uint16(c.code), c.wire)
			}
			m, err := read(frame(TypeError, []byte{byte(c.wire >> 8), byte(c.wire)}, uv(4), []byte("why?")))
			if err != nil {
				t.Fatal(err)
			}
			var e error = m.(*Error)
			if !errors.Is(e, c.sentinel) || !errors.Is(e, ErrRemote) {
				t.Errorf("%v does not match %v and ErrRemote", e, c.sentinel)
			}
			wrapped := fmt.Errorf("fetch from peer x: %w", e)
			if !errors.Is(wrapped, c.sentinel) {
				t.Errorf("wrapped %v does not match %v", wrapped, c.sentinel)
			}
			for _, o := range allCodes {
				if o.code != c.code && errors.Is(e, o.sentinel) {
					t.Errorf("%v also matches %v", e, o.sentinel)
				}
			}
			if got := ErrorFor(fmt.Errorf("serving: %w", c.sentinel)); got.Code != c.code {
				t.Errorf("ErrorFor(%v) = code %v", c.sentinel, got.Code)
			}
			if got := ErrorFor(wrapped); got.Code != c.code || got.Message != "why?" {
				t.Errorf("ErrorFor(a peer's error) = %v, want it relayed as is", got)
			}
		})
	}
}

func TestUnknownErrorCode(t *testing.T) {
	m, err := read(frame(TypeError, []byte{0x12, 0x34}, uv(3), []byte("new")))
	if err != nil {
		t.Fatalf("an unknown code must decode: %v", err)
	}
	e := m.(*Error)
	if e.Code != 0x1234 || e.Message != "new" {
		t.Fatalf("got %+v", e)
	}
	if !errors.Is(e, ErrRemote) {
		t.Error("does not match ErrRemote")
	}
	for _, c := range allCodes {
		if errors.Is(e, c.sentinel) {
			t.Errorf("matches %v", c.sentinel)
		}
	}
	if got := e.Error(); got != "peer: error code 4660: new" {
		t.Errorf("Error() = %q", got)
	}
}

func TestErrorFor(t *testing.T) {
	secret := "/var/lib/grits/blocks/cached/ab/abcdef"
	corrupt := &blockstore.CorruptError{Hash: hashOf("a"), Actual: hashOf("b"), MovedTo: secret}
	name := &tree.NameError{Name: "..", Reason: "dot names are not allowed"}
	cases := []struct {
		name string
		err  error
		code ErrorCode
		// msg is a substring the message must contain; "" means the
		// message must be empty.
		msg string
	}{
		{"proto-not-found", fmt.Errorf("block %s: %w", hashOf("a").Short(), ErrNotFound), CodeNotFound, "not found"},
		{"bad-range", fmt.Errorf("%w: offset 10 beyond block of 5 bytes", ErrBadRequest), CodeBadRequest, "offset 10"},
		{"unknown-root", fmt.Errorf("tree b3-00: %w", ErrUnknownRoot), CodeUnknownRoot, "tree b3-00"},
		{"overloaded", ErrOverloaded, CodeOverloaded, "overloaded"},
		{"malformed-request", fmt.Errorf("GetBlocks: %w: count 0", ErrMalformed), CodeBadRequest, "count 0"},
		{"unknown-type", fmt.Errorf("%w 0x05", ErrUnknownType), CodeBadRequest, "0x05"},
		{"frame-too-large", fmt.Errorf("%w: 99 bytes", ErrFrameTooLarge), CodeTooLarge, "99 bytes"},
		{"bad-name", fmt.Errorf("lookup: %w", name), CodeBadRequest, "dot names"},
		{"store-not-found", fmt.Errorf("blockstore: get %s: %w", secret, blockstore.ErrNotFound), CodeNotFound, ""},
		{"corrupt", fmt.Errorf("get: %w", corrupt), CodeNotFound, ""},
		{"store-too-large", blockstore.ErrTooLarge, CodeTooLarge, ""},
		{"not-exist", fmt.Errorf("/a: %w", tree.ErrNotExist), CodeNotFound, ""},
		{"canceled", fmt.Errorf("read %s: %w", secret, context.Canceled), CodeCancelled, ""},
		{"deadline", context.DeadlineExceeded, CodeOverloaded, ""},
		{"internal-sentinel", fmt.Errorf("%w: disk at %s failed", ErrInternal, secret), CodeInternal, ""},
		{"internal", &fs.PathError{Op: "open", Path: secret, Err: fs.ErrPermission}, CodeInternal, ""},
		{"plain", errors.New("something " + secret), CodeInternal, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := ErrorFor(c.err)
			if e.Code != c.code {
				t.Errorf("code %v, want %v", e.Code, c.code)
			}
			if c.msg == "" && e.Message != "" || !strings.Contains(e.Message, c.msg) {
				t.Errorf("message %q, want %q", e.Message, c.msg)
			}
			if strings.Contains(e.Message, secret) {
				t.Errorf("message leaks a local path: %q", e.Message)
			}
			if _, err := AppendMessage(nil, e); err != nil {
				t.Errorf("ErrorFor made an unencodable Error: %v", err)
			}
		})
	}
	if ErrorFor(nil) != nil {
		t.Error("ErrorFor(nil) is not nil")
	}
}

func TestNewErrorClips(t *testing.T) {
	cases := []struct {
		name, in string
		wantLen  int
	}{
		{"short", "short", 5},
		{"ascii-long", strings.Repeat("x", 2000), MaxErrorMessage},
		// 511 ASCII bytes then a 3-byte rune: cut before the rune.
		{"rune-at-edge", strings.Repeat("x", 511) + "€€", 511},
		{"invalid-utf8", "a\xffb", len("a\uFFFDb")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := NewError(CodeBadRequest, c.in)
			if len(e.Message) != c.wantLen || !utf8.ValidString(e.Message) {
				t.Fatalf("message of %d bytes (valid UTF-8: %v), want %d", len(e.Message), utf8.ValidString(e.Message), c.wantLen)
			}
			m, err := read(encode(t, e))
			if err != nil || m.(*Error).Message != e.Message {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

package proto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadMessage: the whole decoder, from the type byte on. Whatever it
// accepts is canonical, so AppendMessage writes back exactly the bytes
// it consumed (a Block keeps its encoding and compressed bytes as
// received, so this holds for zstd too); whatever it refuses is refused
// with one of the package's errors, never a panic.
func FuzzReadMessage(f *testing.F) {
	// The committed seeds (testdata/fuzz) cover every type; these add
	// the edge values. Large samples (a full batch, a maximal path) are
	// left to the round-trip tests: minimizing an input costs time
	// quadratic in its size, and a few kilobytes stall the fuzzer for
	// the whole minimization budget.
	for _, s := range samples(f) {
		b, err := AppendMessage(nil, s.msg)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 1<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		m, err := ReadMessage(r)
		if err != nil {
			if err != io.EOF && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("error wraps none of the package's errors: %v", err)
			}
			return
		}
		rest, _ := io.ReadAll(r)
		consumed := data[:len(data)-len(rest)]
		re, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", m.Type(), err)
		}
		if !bytes.Equal(re, consumed) {
			t.Fatalf("accepted a non-canonical %v:\n in %x\nout %x", m.Type(), consumed, re)
		}
		if Size(m) != len(consumed) {
			t.Fatalf("Size = %d, frame is %d bytes", Size(m), len(consumed))
		}
		if b, ok := m.(*Block); ok && b.Encoding() == Raw && !bytes.Equal(b.Data(), b.Wire()) {
			t.Fatal("raw block whose data is not its wire bytes")
		}
	})
}

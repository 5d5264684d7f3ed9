package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var errBad = errors.New("bad")

func TestUvarintCanonical(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 32, 1<<64 - 1} {
		b := binary.AppendUvarint(nil, v)
		r := NewReader(b, errBad)
		if got := r.Uvarint(); got != v || r.Done() != nil || UvarintLen(v) != len(b) {
			t.Fatalf("%d: got %d, err %v, len %d/%d", v, got, r.Err, UvarintLen(v), len(b))
		}
	}
	cases := map[string][]byte{
		"overlong zero":  {0x80, 0x00},
		"overlong one":   {0x81, 0x00},
		"truncated":      {0x80},
		"overflow":       {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"trailing bytes": {0x01, 0x02},
	}
	for name, b := range cases {
		r := NewReader(b, errBad)
		r.Uvarint()
		if err := r.Done(); !errors.Is(err, errBad) {
			t.Errorf("%s: err = %v, want the caller's sentinel", name, err)
		}
	}
	for _, v := range []int64{0, -1, 1, -64, 64, -1 << 63, 1<<63 - 1} {
		b := binary.AppendVarint(nil, v)
		r := NewReader(b, errBad)
		if got := r.Varint(); got != v || VarintLen(v) != len(b) {
			t.Fatalf("varint %d: got %d, len %d/%d", v, got, VarintLen(v), len(b))
		}
	}
}

func TestStickyAndBounded(t *testing.T) {
	r := NewReader([]byte{1, 2, 3}, errBad)
	if b := r.Bytes(1 << 40); b != nil || r.Err == nil {
		t.Fatal("a length beyond the input was not refused")
	}
	if r.U8() != 0 || r.U16() != 0 || r.Uvarint() != 0 {
		t.Fatal("reads after a failure returned data")
	}
	r = NewReader([]byte{1, 2, 3}, errBad)
	b := r.Bytes(2)
	if cap(b) != 2 {
		t.Fatalf("returned slice can grow into the rest of the input: cap %d", cap(b))
	}
}

// TestReadUvarintMatchesReader: the stream reader and the slice reader
// accept and refuse exactly the same bytes.
func TestReadUvarintMatchesReader(t *testing.T) {
	inputs := [][]byte{{0}, {1}, {0x7f}, {0x80, 0x01}, {0x80, 0x00}, {0x80}, {},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}}
	for _, in := range inputs {
		r := NewReader(in, errBad)
		want := r.Uvarint()
		got, err := ReadUvarint(bytes.NewReader(in), errBad)
		if (err == nil) != (r.Err == nil) || got != want {
			t.Errorf("%x: stream %d, %v; slice %d, %v", in, got, err, want, r.Err)
		}
	}
}

package proto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
	"github.com/klauspost/compress/zstd"
)

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bomb returns a zstd stream of n zero bytes. withSize writes the
// content size in the frame header (as EncodeAll does), so the decoder
// can refuse it up front; without it (as a streaming encoder writes) the
// decoder must notice while decoding. window is the window size the
// frame declares.
func bomb(t testing.TB, n int64, withSize bool, window int) []byte {
	t.Helper()
	if withSize {
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		return enc.EncodeAll(make([]byte, n), nil)
	}
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(enc, io.LimitReader(zeros{}, n)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rleBomb hand-assembles a zstd frame (RFC 8878) of n zero bytes from RLE
// blocks of 128 KiB, 4 bytes each: 64 MiB in 2 KiB, without spending
// the time to compress them. The frame declares a 1 MiB window and no
// content size, so only the output bound can stop it.
func rleBomb(n int) []byte {
	const maxBlock = 128 << 10
	b := []byte{0x28, 0xB5, 0x2F, 0xFD, // magic
		0x00, // frame header descriptor: no content size, not single segment, no checksum
		0x50, // window descriptor: exponent 10, mantissa 0: 2^(10+10) = 1 MiB
	}
	for n > 0 {
		size := min(n, maxBlock)
		n -= size
		hdr := uint32(size)<<3 | 1<<1 // Block_Type 1 = RLE
		if n == 0 {
			hdr |= 1 // Last_Block
		}
		b = append(b, byte(hdr), byte(hdr>>8), byte(hdr>>16), 0x00)
	}
	return b
}

func TestDecompressionBomb(t *testing.T) {
	h := hashOf("bomb")
	cases := []struct {
		name  string
		frame func(z []byte) []byte
		n     int64
		sized bool
		win   int
		want  string
	}{
		// The output bound: the frame is allowed a 1 MiB window, so
		// only the decoded size can stop it.
		{"block/64MiB-rle", blockFrame(h), 64 << 20, false, -1, "total-offset = 1048576"},
		{"block/8MiB-streamed", blockFrame(h), 8 << 20, false, 1 << 20, "total-offset = 1048576"},
		{"block/MaxBlockSize+1", blockFrame(h), blockstore.MaxBlockSize + 1, false, 1 << 20, "total-offset = 1048576"},
		{"inline/64MiB-rle", inlineFrame, 64 << 20, false, -1, "InlineMax"},
		{"inline/InlineMax+1", inlineFrame, InlineMax + 1, false, 1 << 20, "InlineMax"},
		// The header bounds: a declared size or window over the limit
		// is refused before any decoding.
		{"block/2MiB-sized", blockFrame(h), 2 << 20, true, 0, "total-offset"},
		{"block/8MiB-window", blockFrame(h), 300 << 10, false, 8 << 20, "window larger than MaxBlockSize"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var z []byte
			if c.win < 0 {
				z = rleBomb(int(c.n))
			} else {
				z = bomb(t, c.n, c.sized, c.win)
			}
			in := c.frame(z)
			start := time.Now()
			_, err := read(in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrMalformed naming %s", err, c.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("refusing took %v", d)
			}
			// The work and memory stop at the limit, not at 64 MiB.
			if n := bytesAllocated(5, func() { _, _ = read(in) }); n > 4*blockstore.MaxBlockSize {
				t.Errorf("refusing allocated %d bytes", n)
			}
		})
	}
}

func blockFrame(h blockstore.Hash) func([]byte) []byte {
	return func(z []byte) []byte {
		return frame(TypeBlock, h[:], []byte{byte(Zstd)}, uv(0), uv(blockstore.MaxBlockSize), z)
	}
}

func inlineFrame(z []byte) []byte {
	return frame(TypeLookupResult, []byte{1, 0}, uv(1), uv(0), []byte{inlineZstd}, uv(uint64(len(z))), z)
}

// TestZstdAtTheLimit: a full-size block compressed is accepted, however
// well it compresses; the bound is on the output, not on the ratio.
func TestZstdAtTheLimit(t *testing.T) {
	z := rleBomb(blockstore.MaxBlockSize)
	h := blockstore.Sum(make([]byte, blockstore.MaxBlockSize))
	m, err := read(frame(TypeBlock, h[:], []byte{byte(Zstd)}, uv(0), uv(blockstore.MaxBlockSize), z))
	if err != nil {
		t.Fatalf("a zstd block of exactly MaxBlockSize was refused: %v", err)
	}
	if err := m.(*Block).Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestNewBlockCompression(t *testing.T) {
	cases := []struct {
		name  string
		data  []byte
		allow bool
		want  Encoding
	}{
		{"text", text(256 << 10), true, Zstd},
		{"text-not-allowed", text(256 << 10), false, Raw},
		{"noise", noise(256 << 10), true, Raw},
		{"small", text(minCompress - 1), true, Raw},
		{"threshold", bytes.Repeat([]byte("a"), minCompress), true, Zstd},
		{"empty", nil, true, Raw},
		// Compresses, but by less than 1/8: not worth the client's time.
		{"marginal", append(noise(900), bytes.Repeat([]byte{0}, 100)...), true, Raw},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := NewBlock(blockstore.Sum(c.data), 0, uint64(len(c.data)), c.data, c.allow)
			if b.Encoding() != c.want {
				t.Fatalf("encoding %v, want %v", b.Encoding(), c.want)
			}
			if c.want == Zstd && len(b.Wire()) > len(c.data)-len(c.data)/minSavingDiv {
				t.Errorf("kept zstd at %d of %d bytes", len(b.Wire()), len(c.data))
			}
			m, err := read(encode(t, b))
			if err != nil {
				t.Fatal(err)
			}
			got := m.(*Block)
			if !bytes.Equal(got.Data(), c.data) {
				t.Fatalf("data differs after the round trip")
			}
			if err := got.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBlockVerify(t *testing.T) {
	data := text(1000)
	h := blockstore.Sum(data)
	cases := []struct {
		name string
		b    *Block
		want error
	}{
		{"whole", NewBlock(h, 0, 1000, data, true), nil},
		{"empty", NewBlock(blockstore.Sum(nil), 0, 0, nil, true), nil},
		{"wrong-hash", NewBlock(hashOf("other"), 0, 1000, data, true), blockstore.ErrHashMismatch},
		{"altered", NewBlock(h, 0, 1000, append([]byte{'X'}, data[1:]...), false), blockstore.ErrHashMismatch},
		{"range", NewBlock(h, 10, 1000, data[10:], true), ErrPartialBlock},
		{"head", NewBlock(h, 0, 1000, data[:10], true), ErrPartialBlock},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := read(encode(t, c.b))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.(*Block).Verify(); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
		})
	}
}

// TestWriteMessageBody: a large Block goes out in two writes, header and
// data, without copying the data.
func TestWriteMessageBody(t *testing.T) {
	data := noise(64 << 10)
	b := NewBlock(blockstore.Sum(data), 0, uint64(len(data)), data, true)
	var w writeLog
	if err := WriteMessage(&w, b); err != nil {
		t.Fatal(err)
	}
	if len(w.writes) != 2 || &w.writes[1][0] != &data[0] {
		t.Fatalf("%d writes; want the header, then the caller's data slice itself", len(w.writes))
	}
	if !bytes.Equal(bytes.Join(w.writes, nil), encode(t, b)) {
		t.Fatal("the two writes do not make the frame")
	}
	w.fail = true
	if err := WriteMessage(&w, b); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("write error not returned: %v", err)
	}
}

type writeLog struct {
	writes [][]byte
	fail   bool
}

func (w *writeLog) Write(p []byte) (int, error) {
	if w.fail {
		return 0, io.ErrShortWrite
	}
	w.writes = append(w.writes, p)
	return len(p), nil
}

// TestLookupResultVerifies: the golden lookup answer verifies against the
// signed root's tree and its inline data is the file, so the vectors
// given to other implementations are consistent.
func TestLookupResultVerifies(t *testing.T) {
	s := testSite(t)
	if err := s.root.Verify(s.key, s.root.Time.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"docs/guide.md", "index.html", "docs/missing.md"} {
		t.Run(path, func(t *testing.T) {
			proof, res := s.proof(t, path)
			var inline []byte
			if res.Status == tree.Found {
				inline = s.files[path]
			}
			m, err := read(encode(t, NewLookupResult(res.Status, proof, inline, true)))
			if err != nil {
				t.Fatal(err)
			}
			lr := m.(*LookupResult)
			got, err := tree.Verify(s.root.Tree, tree.MustParsePath(path), lr.Proof)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != lr.Status {
				t.Fatalf("proof shows %v, result says %v", got.Status, lr.Status)
			}
			data, ok := lr.Inline()
			if got.Status == tree.Found && (!ok || !bytes.Equal(data, s.files[path])) {
				t.Fatalf("inline data: %v %q", ok, data)
			}
		})
	}
}

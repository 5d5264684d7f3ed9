package proto

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

const benchBlock = 256 << 10 // tree.DefaultChunkSize

var benchData = []struct {
	name  string
	data  func(int) []byte
	allow bool
}{
	{"raw", text, false},
	{"zstd", text, true},
	// The cost of trying zstd on content that does not compress.
	{"incompressible", noise, true},
}

// BenchmarkAppendBlock is the server's cost per block: choosing the
// encoding (compressing if allowed) and framing.
func BenchmarkAppendBlock(b *testing.B) {
	for _, c := range benchData {
		b.Run(c.name, func(b *testing.B) {
			data := c.data(benchBlock)
			h := blockstore.Sum(data)
			buf := make([]byte, 0, MaxBlockPayload+16)
			b.SetBytes(benchBlock)
			b.ReportAllocs()
			var wire int
			for b.Loop() {
				var err error
				m := NewBlock(h, 0, benchBlock, data, c.allow)
				wire = len(m.Wire())
				if buf, err = AppendMessage(buf[:0], m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(wire)/benchBlock, "ratio")
		})
	}
}

// BenchmarkReadBlock is the client's cost per block: reading the frame
// and decompressing; hashing (Verify) is left out, being the same for
// every encoding.
func BenchmarkReadBlock(b *testing.B) {
	for _, c := range benchData {
		b.Run(c.name, func(b *testing.B) {
			data := c.data(benchBlock)
			frame, err := AppendMessage(nil, NewBlock(blockstore.Sum(data), 0, benchBlock, data, c.allow))
			if err != nil {
				b.Fatal(err)
			}
			src := bytes.NewReader(frame)
			r := bufio.NewReaderSize(src, 64<<10)
			b.SetBytes(benchBlock)
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(frame)
				r.Reset(src)
				m, err := ReadMessage(r)
				if err != nil {
					b.Fatal(err)
				}
				if len(m.(*Block).Data()) != benchBlock {
					b.Fatal("short block")
				}
			}
		})
	}
}

// BenchmarkWriteBlock: WriteMessage sends a raw block's data without
// copying it into a frame.
func BenchmarkWriteBlock(b *testing.B) {
	data := noise(benchBlock)
	m := NewBlock(blockstore.Sum(data), 0, benchBlock, data, false)
	b.SetBytes(benchBlock)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteMessage(io.Discard, m); err != nil {
			b.Fatal(err)
		}
	}
}

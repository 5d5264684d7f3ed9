package tree

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestFileRoundTrip(t *testing.T) {
	cs := MinChunkSize
	sizes := []int{0, 1, cs - 1, cs, cs + 1, 7*cs + 3, FileFanout * cs, FileFanout*cs + 1, 2*FileFanout*cs + cs/2}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			ctx := context.Background()
			b := newBuilder(t)
			data := randomBytes(size, uint64(size))
			h, n, err := b.WriteFile(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if n != uint64(size) {
				t.Fatalf("size %d, want %d", n, size)
			}
			node, err := LoadNode(ctx, b.Store, h)
			if err != nil {
				t.Fatal(err)
			}
			f := node.(*FileNode)
			if !f.IsTop() {
				t.Fatalf("top node level %d is not canonical", f.Level)
			}
			if wantLevel := uint8(0); size > FileFanout*cs && f.Level == wantLevel {
				t.Fatalf("a %d-byte file needs an index level", size)
			}
			if got := readAll(t, b.Store, f); !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
			// Ranges: every chunk boundary neighbourhood and a few random spans.
			rng := rand.New(rand.NewPCG(1, uint64(size)))
			for i := 0; i < 20 && size > 0; i++ {
				off := rng.IntN(size)
				ln := rng.IntN(size - off + 1)
				var buf bytes.Buffer
				if err := ReadFile(ctx, b.Store, f, uint64(off), uint64(ln), &buf); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf.Bytes(), data[off:off+ln]) {
					t.Fatalf("range %d+%d differs", off, ln)
				}
			}
			// Chunks cover the file exactly once, in order.
			var next uint64
			err = Chunks(ctx, b.Store, f, 0, f.Size, func(c Chunk) error {
				if c.Offset != next {
					return fmt.Errorf("chunk at %d, want %d", c.Offset, next)
				}
				next += uint64(c.Size)
				return nil
			})
			if err != nil || next != uint64(size) {
				t.Fatalf("chunks cover %d bytes (err %v), want %d", next, err, size)
			}
		})
	}
}

func TestIdenticalContentStoredOnce(t *testing.T) {
	ctx := context.Background()
	store := blockstore.NewMem(-1)
	b := &Builder{Store: store, ChunkSize: MinChunkSize}
	data := bytes.Repeat(randomBytes(MinChunkSize, 3), 10) // ten identical chunks
	h1, _, err := b.WriteFile(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	h2, _, err := b.WriteFile(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if h1 != h2 {
		t.Fatal("same content, different hashes")
	}
	st, _ := store.Stats(ctx)
	if n := st.PinnedBlocks + st.CachedBlocks; n != 2 {
		t.Fatalf("%d blocks stored, want 2 (one chunk, one file node)", n)
	}
}

func TestWriteFileReadError(t *testing.T) {
	b := newBuilder(t)
	r := &failingReader{data: randomBytes(3*MinChunkSize, 1), failAt: 2*MinChunkSize + 5}
	if _, _, err := b.WriteFile(context.Background(), r); err == nil {
		t.Fatal("read error swallowed")
	}
}

type failingReader struct {
	data   []byte
	off    int
	failAt int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.off >= r.failAt {
		return 0, fmt.Errorf("disk on fire")
	}
	n := copy(p, r.data[r.off:min(len(r.data), r.failAt)])
	r.off += n
	return n, nil
}

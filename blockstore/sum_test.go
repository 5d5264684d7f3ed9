package blockstore

import (
	"math/rand/v2"
	"testing"

	"lukechampine.com/blake3"
)

// TestSumMatchesLibrary: the small-input path must give exactly the
// library's digest at every length around the chunk and cut-over sizes.
func TestSumMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 3*smallHash)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	lengths := []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3000, 8192, smallHash - 1, smallHash, smallHash + 1, 2*smallHash + 7}
	for i := 0; i < 200; i++ {
		lengths = append(lengths, rng.IntN(len(buf)))
	}
	for _, n := range lengths {
		if got, want := Sum(buf[:n]), Hash(blake3.Sum256(buf[:n])); got != want {
			t.Fatalf("Sum of %d bytes = %s, blake3.Sum256 = %s", n, got, want)
		}
	}
}

func BenchmarkSumNode(b *testing.B) {
	data := make([]byte, 2600)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		Sum(data)
	}
}

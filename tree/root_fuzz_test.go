package tree

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/golden"
)

// rootFuzzSeeds returns the signed roots the fuzzers start from, named
// for their seed files in testdata/fuzz. They are deterministic (ed25519
// signing is), so the committed files can be checked against them.
func rootFuzzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	chain := rootTestChain(t, 3)
	seeds := map[string][]byte{
		"seq1": chain[0].Encode(),
		"seq2": chain[1].Encode(),
		"seq3": chain[2].Encode(),
	}
	// A signed root that Verify refuses at rootFuzzNow (expired), so the
	// fuzzer also starts from the expiry path.
	expired, err := SignRoot(rootTestKey(), Root{
		Seq:     1,
		Time:    rootTestTime.Add(-48 * time.Hour),
		Expires: rootTestTime.Add(-24 * time.Hour),
		Tree:    blockstore.Sum([]byte("old tree")),
	})
	if err != nil {
		t.Fatal(err)
	}
	seeds["expired"] = expired.Encode()
	return seeds
}

// rootFuzzNow is a time at which the seq1..seq3 seeds verify.
var rootFuzzNow = rootTestTime.Add(3 * 24 * time.Hour)

// FuzzDecodeRoot checks that DecodeRoot accepts only canonical encodings
// (each accepted input re-encodes to itself) and that Verify accepts
// nothing but roots that were really signed: the fuzzer cannot forge
// ed25519, so anything Verify accepts must be one of the signed seeds.
func FuzzDecodeRoot(f *testing.F) {
	seeds := rootFuzzSeeds(f)
	signed := make(map[string]bool)
	for _, b := range seeds {
		signed[string(b)] = true
	}
	for _, b := range decodeRootCorpus(f) {
		f.Add(b)
	}
	key := PublicKeyOf(rootTestKey())
	last, err := DecodeRoot(seeds["seq2"])
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRoot(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedRoot) {
				t.Fatalf("DecodeRoot error %v is not ErrMalformedRoot", err)
			}
			return
		}
		enc := r.Encode()
		if !bytes.Equal(enc, b) {
			t.Fatalf("DecodeRoot accepted a non-canonical encoding:\n  in %x\n out %x", b, enc)
		}
		if again, err := DecodeRoot(enc); err != nil || again != r {
			t.Fatalf("decoding the re-encoding: %v, %v != %v", err, again, r)
		}
		if r.Hash() != blockstore.Sum(b) {
			t.Fatal("Hash() is not the Sum of the encoding")
		}
		if err := r.Verify(key, rootFuzzNow); err == nil && !signed[string(b)] {
			t.Fatalf("Verify accepted a root that was never signed: %x", b)
		}
		_ = r.String()
		if err := r.CheckSuccessor(last); err == nil && r.Seq <= last.Seq {
			t.Fatalf("CheckSuccessor accepted seq %d after seq %d", r.Seq, last.Seq)
		}
	})
}

// decodeRootCorpus is the committed FuzzDecodeRoot corpus: the signed
// seeds and a few near misses.
func decodeRootCorpus(t testing.TB) map[string][]byte {
	c := rootFuzzSeeds(t)
	good := c["seq2"]
	c["truncated"] = good[:RootSize-1]
	c["long"] = append(bytes.Clone(good), 0)
	nodeTag := bytes.Clone(good)
	nodeTag[0] = TagDir
	c["node-tag"] = nodeTag
	v2 := bytes.Clone(good)
	v2[1] = 2
	c["version2"] = v2
	return c
}

func TestFuzzCorpusDecodeRoot(t *testing.T) {
	checkFuzzCorpus(t, "FuzzDecodeRoot", decodeRootCorpus(t))
}

// checkFuzzCorpus compares the committed seed files of a fuzzer with the
// seeds the code generates (or rewrites them with -update), so the corpus
// cannot silently drift from the format.
func checkFuzzCorpus(t *testing.T, fuzzer string, seeds map[string][]byte) {
	dir := filepath.Join("testdata", "fuzz", fuzzer)
	for name, b := range seeds {
		path := filepath.Join(dir, name)
		want := golden.FuzzSeed(b)
		if got := golden.File(t, path, want, *updateGolden); !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generated seed; run with -update", path)
		}
	}
}

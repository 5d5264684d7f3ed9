package tree

import (
	"bytes"
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/grits-cdn/grits/internal/golden"
)

// The committed seed corpora of the node and proof fuzzers are generated
// from the same samples the fuzzers add, so they cannot drift from the
// format: a format change fails this test until -update rewrites them.

func TestFuzzCorpusDecode(t *testing.T) {
	seeds := map[string][]byte{}
	for name, n := range sampleNodes() {
		seeds[strings.ReplaceAll(name, " ", "-")] = n.Encode()
	}
	checkFuzzCorpus(t, "FuzzDecode", seeds)
}

func verifySeeds(t testing.TB) map[string]struct {
	path  string
	proof []byte
} {
	store, root := fuzzFixture(t)
	out := map[string]struct {
		path  string
		proof []byte
	}{}
	for _, p := range fuzzVerifyPaths {
		proof, _, err := BuildProof(context.Background(), store, root, MustParsePath(p))
		if err != nil {
			t.Fatal(err)
		}
		name := "root"
		if p != "" {
			name = strings.NewReplacer("/", "-", ".", "_").Replace(p)
		}
		out[name] = struct {
			path  string
			proof []byte
		}{p, proof.Encode()}
	}
	return out
}

func TestFuzzCorpusVerify(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	seeds := verifySeeds(t)
	names := make([]string, 0, len(seeds))
	for n := range seeds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s := seeds[name]
		want := golden.FuzzSeed(s.path, s.proof)
		path := filepath.Join(dir, name)
		if got := golden.File(t, path, want, *updateGolden); !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generated seed; run with -update", path)
		}
	}
}

func TestFuzzCorpusDecodeProof(t *testing.T) {
	seeds := map[string][]byte{"empty": {0}}
	for name, s := range verifySeeds(t) {
		seeds[name] = s.proof
	}
	checkFuzzCorpus(t, "FuzzDecodeProof", seeds)
}

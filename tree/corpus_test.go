package tree

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
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
		want := fmt.Appendf(nil, "go test fuzz v1\nstring(%q)\n[]byte(%q)\n", s.path, s.proof)
		path := filepath.Join(dir, name)
		if *updateGolden {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create the corpus)", err)
		}
		if !bytes.Equal(got, want) {
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

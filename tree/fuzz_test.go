package tree

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// FuzzDecode: whatever Decode accepts is canonical, so it re-encodes to
// exactly the input (one node, one spelling, one hash).
func FuzzDecode(f *testing.F) {
	for _, n := range sampleNodes() {
		f.Add(n.Encode())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if re := n.Encode(); !bytes.Equal(re, data) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", data, re)
		}
	})
}

var fuzzTree struct {
	once  sync.Once
	store *blockstore.Mem
	root  blockstore.Hash
}

func fuzzFixture(t testing.TB) (*blockstore.Mem, blockstore.Hash) {
	fuzzTree.once.Do(func() {
		b := newBuilder(t)
		fuzzTree.root = buildIncremental(t, b, proofFixture)
		fuzzTree.store = b.Store.(*blockstore.Mem)
	})
	return fuzzTree.store, fuzzTree.root
}

var fuzzVerifyPaths = []string{"", "index.html", "img/logo.png", "docs/guide", "docs/link", "missing", "index.html/x", "docs/link/intro.md", "docs/guide/intro.md"}

// FuzzVerify: no proof the fuzzer makes may convince Verify of anything
// that differs from the real tree. Whatever Verify accepts must equal the
// answer of a lookup in the store that holds the tree.
func FuzzVerify(f *testing.F) {
	store, root := fuzzFixture(f)
	for _, path := range fuzzVerifyPaths {
		proof, _, err := BuildProof(context.Background(), store, root, MustParsePath(path))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(path, proof.Encode())
	}
	f.Fuzz(func(t *testing.T, path string, enc []byte) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		proof, err := DecodeProof(enc)
		if err != nil {
			return
		}
		got, err := Verify(root, p, proof)
		if err != nil {
			if !errors.Is(err, ErrBadProof) {
				t.Fatalf("error does not wrap ErrBadProof: %v", err)
			}
			return
		}
		want, truth, werr := BuildProof(context.Background(), store, root, p)
		if werr != nil {
			t.Fatalf("Verify accepted a proof for %q but the tree cannot build one: %v", path, werr)
		}
		if got.Status != truth.Status || got.Depth != truth.Depth || got.Entry != truth.Entry {
			t.Fatalf("Verify accepted a false proof for %q: got %v/%d/%+v, truth %v/%d/%+v", path, got.Status, got.Depth, got.Entry, truth.Status, truth.Depth, truth.Entry)
		}
		if (got.Node == nil) != (truth.Node == nil) || got.Node != nil && !bytes.Equal(got.Node.Encode(), truth.Node.Encode()) {
			t.Fatalf("Verify accepted a false target node for %q", path)
		}
		if !bytes.Equal(proof.Encode(), want.Encode()) {
			t.Fatalf("Verify accepted a non-canonical proof for %q", path)
		}
	})
}

// FuzzDecodeProof: the framing decoder never panics, honours its limits,
// and round-trips what it accepts.
func FuzzDecodeProof(f *testing.F) {
	store, root := fuzzFixture(f)
	proof, _, err := BuildProof(context.Background(), store, root, MustParsePath("img/logo.png"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(proof.Encode())
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeProof(data)
		if err != nil {
			return
		}
		if len(p.Nodes) > MaxProofNodes {
			t.Fatalf("%d nodes accepted", len(p.Nodes))
		}
		if !bytes.Equal(p.Encode(), data) {
			t.Fatalf("round trip differs")
		}
	})
}

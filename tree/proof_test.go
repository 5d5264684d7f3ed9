package tree

import (
	"context"
	"errors"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

var proofFixture = fixture{
	"index.html":          "<!doctype html><title>grits</title>",
	"css/site.css":        "body { color: #333 }",
	"img/logo.png":        string(randomBytes(5*MinChunkSize+99, 5)),
	"docs/guide/intro.md": "# intro",
	"docs/empty/":         "",
	"docs/link":           "symlink:guide/intro.md",
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	b := newBuilder(t)
	root := buildIncremental(t, b, proofFixture)
	cases := []struct {
		path   string
		status Status
		kind   Kind
		depth  int
	}{
		{"", Found, KindDir, 0},
		{"index.html", Found, KindFile, 1},
		{"img/logo.png", Found, KindFile, 2},
		{"docs/guide", Found, KindDir, 2},
		{"docs/empty", Found, KindDir, 2},
		{"docs/link", Found, KindSymlink, 2},
		{"missing.html", Absent, 0, 0},
		{"docs/guide/missing", Absent, 0, 2},
		{"nodir/x/y", Absent, 0, 0},
		{"index.html/x", NotDir, KindFile, 1},
		{"docs/link/intro.md", SymlinkInPath, KindSymlink, 2},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			p := MustParsePath(c.path)
			proof, r, err := BuildProof(ctx, b.Store, root, p)
			if err != nil {
				t.Fatal(err)
			}
			// Verify from the encoded bytes, as a remote client would.
			dec, err := DecodeProof(proof.Encode())
			if err != nil {
				t.Fatal(err)
			}
			r2, err := Verify(root, p, dec)
			if err != nil {
				t.Fatal(err)
			}
			if r2.Status != c.status || r2.Depth != c.depth || r2.Status != r.Status {
				t.Fatalf("status %v depth %d, want %v depth %d", r2.Status, r2.Depth, c.status, c.depth)
			}
			if c.kind != 0 && r2.Entry.Kind != c.kind {
				t.Fatalf("kind %v, want %v", r2.Entry.Kind, c.kind)
			}
			if r2.Status == Found && r2.Entry.Kind == KindFile {
				want := proofFixture[c.path]
				if got := readAll(t, b.Store, r2.Node.(*FileNode)); string(got) != want {
					t.Fatalf("content via proof differs")
				}
			}
			_, lerr := Lookup(ctx, b.Store, root, p)
			if (lerr == nil) != (c.status == Found) {
				t.Fatalf("Lookup err = %v for status %v", lerr, c.status)
			}

			// A proof proves nothing about another root.
			other := blockstore.Sum([]byte("another root"))
			if _, err := Verify(other, p, dec); !errors.Is(err, ErrBadProof) {
				t.Fatalf("verified against the wrong root: %v", err)
			}
			// Any flipped byte, a dropped node, or an extra node is refused
			// (or, for a flip, at least never yields a different answer).
			for i := range dec.Nodes {
				for j := range dec.Nodes[i] {
					bad := cloneProof(dec)
					bad.Nodes[i][j] ^= 0x01
					if _, err := Verify(root, p, bad); !errors.Is(err, ErrBadProof) {
						t.Fatalf("flip of node %d byte %d accepted: %v", i, j, err)
					}
				}
				short := cloneProof(dec)
				short.Nodes = append(short.Nodes[:i], short.Nodes[i+1:]...)
				if _, err := Verify(root, p, short); !errors.Is(err, ErrBadProof) {
					t.Fatalf("proof without node %d accepted", i)
				}
			}
			long := cloneProof(dec)
			long.Nodes = append(long.Nodes, long.Nodes[0])
			if _, err := Verify(root, p, long); !errors.Is(err, ErrBadProof) {
				t.Fatalf("proof with an extra node accepted: %v", err)
			}
		})
	}
}

func cloneProof(p *Proof) *Proof {
	q := &Proof{}
	for _, n := range p.Nodes {
		q.Nodes = append(q.Nodes, append([]byte(nil), n...))
	}
	return q
}

func TestVerifyRefusesBadNames(t *testing.T) {
	b := newBuilder(t)
	root := buildIncremental(t, b, proofFixture)
	for _, p := range []Path{{".."}, {"docs", ""}, {"a/b"}} {
		if _, err := Verify(root, p, &Proof{}); !errors.Is(err, ErrBadName) {
			t.Errorf("Verify(%q) err = %v, want ErrBadName", []string(p), err)
		}
		if _, _, err := BuildProof(context.Background(), b.Store, root, p); !errors.Is(err, ErrBadName) {
			t.Errorf("BuildProof(%q) err = %v, want ErrBadName", []string(p), err)
		}
	}
}

func TestDecodeProofLimits(t *testing.T) {
	cases := map[string][]byte{
		"truncated count":  {0x80},
		"too many nodes":   {0x81, 0x10}, // 2049
		"node too large":   {0x01, 0x81, 0x80, 0x04},
		"truncated node":   {0x01, 0x05, 1, 2},
		"trailing garbage": {0x00, 0x00},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeProof(in); !errors.Is(err, ErrBadProof) {
				t.Fatalf("err = %v, want ErrBadProof", err)
			}
		})
	}
}

// hugeDirProofBound is the bound stated in docs/design.md for a proof of
// one entry (or its absence) in a directory of a million entries,
// including the target's file node.
const hugeDirProofBound = 16 << 10

// TestProofOfHugeDirectory builds a 1,000,000-entry directory and checks
// that proofs of presence and absence in it stay within the stated bound.
func TestProofOfHugeDirectory(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 100_000
	}
	ctx := context.Background()
	b := newBuilder(t)
	es := manyEntries(n, 99)
	file := fileNodeEntry(t, b, "the same small file everywhere") // the bound includes a file node
	for i := range es {
		es[i].Hash, es[i].Size = file.Hash, file.Size
	}
	top, err := b.BuildDir(ctx, es)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{es[0].Name, es[n/2].Name, es[n-1].Name, "not-there", "file-99999999.jpg"} {
		proof, r, err := BuildProof(ctx, b.Store, top, Path{name})
		if err != nil {
			t.Fatal(err)
		}
		if size := proof.Size(); size > hugeDirProofBound {
			t.Errorf("proof for %s: %d bytes in %d nodes exceeds the bound %d", name, size, len(proof.Nodes), hugeDirProofBound)
		} else {
			t.Logf("proof for %s (%v): %d bytes, %d nodes", name, r.Status, size, len(proof.Nodes))
		}
	}
	_, _, depth := dirShape(t, b.Store, top)
	if depth > 6 {
		t.Errorf("shard depth %d exceeds 6", depth)
	}
}

package tree

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/golden"
)

// The test vectors in testdata/vectors.json are shared with the
// JavaScript service worker tests: a fixture tree described so that any
// implementation can rebuild its files, the root hash, every tree node,
// and proofs for presence and absence. Regenerate with -update only when
// the format changes on purpose, and say so in docs/design.md.

type vectorFile struct {
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	Text    string `json:"text,omitempty"`
	Pattern int    `json:"pattern_length,omitempty"`
	Target  string `json:"target,omitempty"`
	// Type is the media type stored in a file's entry; files without
	// one are entries of trees written before types existed.
	Type string `json:"type,omitempty"`
}

type vectorNode struct {
	Hash string `json:"hash"`
	Hex  string `json:"hex"`
}

type vectorLookup struct {
	Path      string `json:"path"`
	Status    string `json:"status"`
	Depth     int    `json:"depth"`
	Kind      string `json:"kind,omitempty"`
	Size      uint64 `json:"size"`
	Hash      string `json:"hash,omitempty"`
	Type      string `json:"type,omitempty"`
	ProofHex  string `json:"proof_hex"`
	ProofSize int    `json:"proof_size"`
}

type vectors struct {
	Description string         `json:"description"`
	PatternRule string         `json:"pattern_rule"`
	ChunkSize   int            `json:"chunk_size"`
	Files       []vectorFile   `json:"files"`
	Root        string         `json:"root"`
	Nodes       []vectorNode   `json:"nodes"`
	Lookups     []vectorLookup `json:"lookups"`
}

// patternBytes is byte i = i mod 251: trivial to regenerate anywhere, and
// 251 is prime so chunks at power-of-two offsets differ.
func patternBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

var vectorFiles = []vectorFile{
	{Path: "index.html", Kind: "file", Text: "<!doctype html>\n<title>grits</title>\n<h1>Hello from the swarm</h1>\n", Type: "text/html; charset=utf-8"},
	{Path: "css/site.css", Kind: "file", Text: "body { font-family: sans-serif }\n", Type: "text/css; charset=utf-8"},
	{Path: "empty.txt", Kind: "file", Text: "", Type: "text/plain; charset=utf-8"},
	{Path: "media/big.bin", Kind: "file", Pattern: 2*DefaultChunkSize + 1000, Type: "application/octet-stream"},
	{Path: "docs/guide/intro.md", Kind: "file", Text: "# Intro\n", Type: "text/markdown; charset=utf-8"},
	{Path: "docs/latest", Kind: "symlink", Target: "guide/intro.md"},
	{Path: "docs/drafts", Kind: "dir"},
	{Path: "ünïcode/名前.txt", Kind: "file", Text: "names are UTF-8\n"},
}

// A directory big enough to be sharded, so that other implementations
// exercise shard nodes too.
func init() {
	for i := 0; i < 300; i++ {
		name := fmt.Sprintf("many/f-%03d.txt", i)
		vectorFiles = append(vectorFiles, vectorFile{Path: name, Kind: "file", Text: name + "\n"})
	}
}

var vectorPaths = []string{
	"many", "many/f-000.txt", "many/f-123.txt", "many/f-299.txt", "many/missing.txt",
	"", "index.html", "empty.txt", "media/big.bin", "docs", "docs/guide/intro.md",
	"docs/latest", "docs/drafts", "ünïcode/名前.txt",
	"missing.html", "docs/guide/missing.md", "index.html/child", "docs/latest/intro.md",
}

func buildVectors(t *testing.T) vectors {
	ctx := context.Background()
	store := blockstore.NewMem(-1)
	b := &Builder{Store: store, ChunkSize: DefaultChunkSize}
	fx := fixture{}
	types := map[string]string{}
	for _, f := range vectorFiles {
		if f.Type != "" {
			types[f.Path] = f.Type
		}
		switch f.Kind {
		case "file":
			if f.Pattern > 0 {
				fx[f.Path] = string(patternBytes(f.Pattern))
			} else {
				fx[f.Path] = f.Text
			}
		case "symlink":
			fx[f.Path] = "symlink:" + f.Target
		case "dir":
			fx[f.Path+"/"] = ""
		}
	}
	root := buildIncrementalTyped(t, b, fx, types)
	v := vectors{
		Description: "grits tree format test vectors (directory nodes of version 2, with direct entries for one-chunk files): see docs/design.md. Rebuild the files, import them with chunk_size, and every node, proof and the root must match.",
		PatternRule: "byte i = i mod 251",
		ChunkSize:   DefaultChunkSize,
		Files:       vectorFiles,
		Root:        root.String(),
	}
	if r, err := Lookup(ctx, store, root, MustParsePath("many")); err != nil {
		t.Fatal(err)
	} else if _, sharded := r.Node.(*ShardNode); !sharded {
		t.Fatal("the vectors' big directory is not sharded; add entries")
	}
	// Every node reachable from the root (chunks excluded).
	seen := map[blockstore.Hash]bool{}
	var walk func(h blockstore.Hash)
	walk = func(h blockstore.Hash) {
		if seen[h] {
			return
		}
		seen[h] = true
		raw, n, err := loadNode(ctx, store, h)
		if err != nil {
			t.Fatal(err)
		}
		v.Nodes = append(v.Nodes, vectorNode{Hash: h.String(), Hex: hex.EncodeToString(raw)})
		switch n := n.(type) {
		case *DirNode:
			for _, e := range n.Entries {
				if e.Kind != KindSymlink && !e.Direct { // a direct file's hash is its chunk
					walk(e.Hash)
				}
			}
		case *ShardNode:
			for _, c := range n.Children {
				walk(c.Hash)
			}
		case *FileNode:
			if n.Level > 0 {
				for _, c := range n.Hashes {
					walk(c)
				}
			}
		}
	}
	walk(root)
	sort.Slice(v.Nodes, func(i, j int) bool { return v.Nodes[i].Hash < v.Nodes[j].Hash })
	for _, p := range vectorPaths {
		proof, r, err := BuildProof(ctx, store, root, MustParsePath(p))
		if err != nil {
			t.Fatal(err)
		}
		l := vectorLookup{Path: p, Status: strings.ReplaceAll(r.Status.String(), " ", "_"), Depth: r.Depth,
			ProofHex: hex.EncodeToString(proof.Encode()), ProofSize: proof.Size()}
		if r.Status == Found {
			l.Kind, l.Size, l.Type = r.Entry.Kind.String(), r.Entry.Size, r.Entry.Type
			if r.Entry.Kind != KindSymlink {
				l.Hash = r.Entry.Hash.String()
			}
		}
		v.Lookups = append(v.Lookups, l)
	}
	return v
}

func TestGoldenVectors(t *testing.T) {
	got, err := json.MarshalIndent(buildVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "vectors.json")
	if want := golden.File(t, path, got, *updateGolden); !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what this code produces: the tree format changed. If that is intended, run go test ./tree -run Golden -update and document the change in docs/design.md", path)
	}
}

// TestGoldenVectorsVerify checks the committed file independently of the
// builder: every proof in it verifies against its root with the stated
// result, as the JavaScript tests will do.
func TestGoldenVectorsVerify(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Skip("no vectors yet")
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	root, err := blockstore.ParseHash(v.Root)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range v.Lookups {
		pb, _ := hex.DecodeString(l.ProofHex)
		proof, err := DecodeProof(pb)
		if err != nil {
			t.Fatalf("%s: %v", l.Path, err)
		}
		r, err := Verify(root, MustParsePath(l.Path), proof)
		if err != nil {
			t.Fatalf("%s: %v", l.Path, err)
		}
		if got := strings.ReplaceAll(r.Status.String(), " ", "_"); got != l.Status || r.Depth != l.Depth {
			t.Fatalf("%s: %s/%d, vectors say %s/%d", l.Path, got, r.Depth, l.Status, l.Depth)
		}
		if r.Status == Found && r.Entry.Type != l.Type {
			t.Fatalf("%s: type %q, vectors say %q", l.Path, r.Entry.Type, l.Type)
		}
	}
}

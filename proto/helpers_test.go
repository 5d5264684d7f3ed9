package proto

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"flag"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// update makes the golden test rewrite testdata/golden and the committed
// fuzz seeds instead of comparing with them: go test ./proto -run Golden -update
var update = flag.Bool("update", false, "rewrite testdata/golden and the FuzzReadMessage seeds")

// site is a small, deterministic tree with a signed root, so that the
// golden Lookup, LookupResult and Root frames fit together: root.hex
// signs the tree lookup.hex asks about, and lookup-result.hex proves the
// answer. The JavaScript tests verify them with the same site key.
type site struct {
	store *blockstore.Mem
	tree  blockstore.Hash
	root  tree.Root
	key   tree.PublicKey
	files map[string][]byte
}

var siteOnce = sync.OnceValues(buildSite)

// siteSeed is the ed25519 seed of the test site key: 32 bytes 0x01..0x20.
func siteSeed() []byte {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	return seed
}

func buildSite() (*site, error) {
	ctx := context.Background()
	s := &site{
		store: blockstore.NewMem(-1),
		files: map[string][]byte{
			"index.html":    []byte(strings.Repeat("<p>grits serves this page from many places.</p>\n", 40)),
			"docs/guide.md": []byte("# Guide\n\nFetch the root, verify it, then look paths up.\n"),
			"img/logo.svg":  []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`),
		},
	}
	b := &tree.Builder{Store: s.store, ChunkSize: tree.MinChunkSize}
	root, err := b.EmptyDir(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"docs/guide.md", "img/logo.svg", "index.html"} {
		h, size, err := b.WriteFile(ctx, bytes.NewReader(s.files[p]))
		if err != nil {
			return nil, err
		}
		root, err = b.Set(ctx, root, tree.MustParsePath(p), tree.Entry{Kind: tree.KindFile, Mode: 0o644, Size: size, Hash: h})
		if err != nil {
			return nil, err
		}
	}
	s.tree = root
	priv := ed25519.NewKeyFromSeed(siteSeed())
	s.key = tree.PublicKeyOf(priv)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s.root, err = tree.SignRoot(priv, tree.Root{Seq: 1, Time: t0, Expires: t0.Add(7 * 24 * time.Hour), Tree: root})
	return s, err
}

func testSite(t testing.TB) *site {
	t.Helper()
	s, err := siteOnce()
	if err != nil {
		t.Fatalf("building the test site: %v", err)
	}
	return s
}

func (s *site) proof(t testing.TB, path string) (*tree.Proof, tree.Result) {
	t.Helper()
	p, r, err := tree.BuildProof(context.Background(), s.store, s.tree, tree.MustParsePath(path))
	if err != nil {
		t.Fatalf("BuildProof %s: %v", path, err)
	}
	return p, r
}

func hashOf(s string) blockstore.Hash { return blockstore.Sum([]byte(s)) }

// text returns n bytes of word salad: compressible about as well as
// HTML or source code, unlike repeated bytes.
func text(n int) []byte {
	words := strings.Fields("the quick brown fox jumps over a lazy dog grits block tree proof root hash " +
		"content address peer stream frame <div> </div> class=\"x\" {} ; return func if else")
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// noise returns n incompressible bytes.
func noise(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// seq returns n bytes counting up from first.
func seq(first byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

type sample struct {
	name string
	msg  Message
	// golden names the file in testdata/golden; empty for samples that
	// are only round-tripped.
	golden string
}

// samples returns one or more messages of every type, edge values
// included. The ones with a golden name form the shared test vectors.
func samples(t testing.TB) []sample {
	t.Helper()
	s := testSite(t)
	guide := s.files["docs/guide.md"]
	index := s.files["index.html"]
	guideProof, _ := s.proof(t, "docs/guide.md")
	indexProof, _ := s.proof(t, "index.html")
	absentProof, _ := s.proof(t, "docs/missing.md")
	notDirProof, r := s.proof(t, "index.html/x")
	if r.Status != tree.NotDir {
		t.Fatalf("index.html/x: status %v", r.Status)
	}
	rootProof, _ := s.proof(t, "")
	chunk := text(4096)
	batch := make([]blockstore.Hash, MaxBatch)
	for i := range batch {
		batch[i] = blockstore.Sum([]byte{byte(i), byte(i >> 8)})
	}
	bigPath := strings.Repeat("a/", tree.MaxPathLen/2-1) + "ab"

	out := []sample{
		{"GetRoot", &GetRoot{}, "get-root"},
		{"GetBlock/range", &GetBlock{Hash: blockstore.Sum(chunk), Offset: 1024, Length: 512, AcceptZstd: true}, "get-block"},
		{"GetBlock/whole", &GetBlock{Hash: blockstore.Sum(chunk)}, ""},
		{"GetBlock/to-end-of-max", &GetBlock{Hash: hashOf("x"), Offset: blockstore.MaxBlockSize}, ""},
		{"GetBlock/max-length", &GetBlock{Hash: hashOf("x"), Length: blockstore.MaxBlockSize, AcceptZstd: true}, ""},
		{"GetBlocks/three", &GetBlocks{Hashes: []blockstore.Hash{hashOf("a"), hashOf("b"), hashOf("c")}, AcceptZstd: true}, "get-blocks"},
		{"GetBlocks/one", &GetBlocks{Hashes: []blockstore.Hash{hashOf("a")}}, ""},
		{"GetBlocks/max-batch", &GetBlocks{Hashes: batch, AcceptZstd: true}, ""},
		{"Lookup/file", &Lookup{Tree: s.tree, Path: "docs/guide.md", MaxInline: InlineMax, AcceptZstd: true}, "lookup"},
		{"Lookup/empty-path", &Lookup{Tree: s.tree}, ""},
		{"Lookup/latest", &Lookup{Latest: true, Path: "docs/guide.md", MaxInline: InlineMax}, "lookup-latest"},
		{"Lookup/max-path", &Lookup{Tree: s.tree, Path: bigPath, MaxInline: 1<<64 - 1}, ""},
		{"Lookup/bad-names-decode", &Lookup{Tree: s.tree, Path: "../\x00/é"}, ""},
		{"Root", &Root{Root: s.root}, "root"},
		{"Root/unsigned", &Root{Root: tree.Root{Seq: 7}}, ""},
		{"Block/raw", NewBlock(blockstore.Sum(guide), 0, uint64(len(guide)), guide, false), "block"},
		{"Block/zstd", NewBlock(blockstore.Sum(index), 0, uint64(len(index)), index, true), "block-zstd"},
		{"Block/empty", NewBlock(blockstore.Sum(nil), 0, 0, nil, true), ""},
		{"Block/range", NewBlock(blockstore.Sum(chunk), 1024, 4096, chunk[1024:2048], false), ""},
		{"Block/range-zstd", NewBlock(blockstore.Sum(chunk), 1024, 4096, chunk[1024:], true), ""},
		{"Block/empty-range-at-end", NewBlock(blockstore.Sum(chunk), 4096, 4096, nil, false), ""},
		{"Missing", &Missing{Hash: hashOf("gone")}, "missing"},
		{"LookupResult/found-inline", NewLookupResult(tree.Found, guideProof, guide, true), "lookup-result"},
		{"LookupResult/found-inline-zstd", NewLookupResult(tree.Found, indexProof, index, true), "lookup-result-zstd"},
		{"LookupResult/found-no-inline", NewLookupResult(tree.Found, indexProof, nil, true), ""},
		{"LookupResult/found-empty-inline", NewLookupResult(tree.Found, guideProof, []byte{}, true), ""},
		{"LookupResult/root", NewLookupResult(tree.Found, rootProof, nil, false), ""},
		{"LookupResult/absent", NewLookupResult(tree.Absent, absentProof, nil, false), "lookup-result-absent"},
		{"LookupResult/latest", withRoot(NewLookupResult(tree.Found, guideProof, guide, false), s.root), "lookup-result-latest"},
		{"LookupResult/not-dir", NewLookupResult(tree.NotDir, notDirProof, nil, false), ""},
		{"LookupResult/symlink-in-path", NewLookupResult(tree.SymlinkInPath, &tree.Proof{Nodes: [][]byte{{1, 2, 3}}}, nil, false), ""},
		{"LookupResult/empty-proof", NewLookupResult(tree.Absent, &tree.Proof{}, nil, false), ""},
		{"GetRoots", &GetRoots{After: 1, Max: MaxRootsPerRequest}, "get-roots"},
		{"GetRoots/from-the-start", &GetRoots{After: 0, Max: 1}, ""},
		{"GetRoots/max-after", &GetRoots{After: 1<<64 - 1, Max: 2}, ""},
		{"Enroll", &Enroll{Token: []byte("example join token: opaque to the protocol")}, "enroll"},
		{"Enroll/one-byte", &Enroll{Token: []byte{0}}, ""},
		{"Enroll/max-token", &Enroll{Token: noise(MaxTokenSize)}, ""},
		{"GetSwarmKeys", &GetSwarmKeys{}, "get-swarm-keys"},
		{"Grant", &Grant{Body: []byte("example grant: the membership layer defines these bytes")}, "grant"},
		{"Grant/one-byte", &Grant{Body: []byte{0xFF}}, ""},
		{"Grant/max", &Grant{Body: noise(MaxGrantSize)}, ""},
		{"SwarmKeys", &SwarmKeys{Body: seq(0x21, 64)}, "swarm-keys"},
		{"GetTLSCert", &GetTLSCert{Body: []byte("example TLS certificate request: opaque here")}, "get-tls-cert"},
		{"TLSCert", &TLSCert{Body: []byte("example TLS certificate chain: opaque here")}, "tls-cert"},
		{"SwarmKeys/one-byte", &SwarmKeys{Body: []byte{1}}, ""},
		{"SwarmKeys/max", &SwarmKeys{Body: noise(MaxSwarmKeysSize)}, ""},
		{"Error", &Error{Code: CodeNotFound, Message: "block b3-4f8d2a not here"}, "error"},
		{"Error/empty-message", &Error{Code: CodeInternal}, ""},
		{"Error/max-message", &Error{Code: CodeBadRequest, Message: strings.Repeat("é", MaxErrorMessage/2)}, ""},
		{"Error/unknown-code", &Error{Code: 0xBEEF, Message: "from the future"}, ""},
		{"Error/code-zero", &Error{Code: 0}, ""},
	}
	for c := CodeNotFound; c <= CodeCancelled; c++ {
		out = append(out, sample{"Error/" + strings.ReplaceAll(c.String(), " ", "-"), &Error{Code: c, Message: c.String()}, ""})
	}
	return out
}

func encode(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := AppendMessage(nil, m)
	if err != nil {
		t.Fatalf("AppendMessage(%v): %v", m.Type(), err)
	}
	return b
}

func read(b []byte) (Message, error) {
	return ReadMessage(bufio.NewReader(bytes.NewReader(b)))
}

func withRoot(m *LookupResult, r tree.Root) *LookupResult {
	m.Root = &r
	return m
}

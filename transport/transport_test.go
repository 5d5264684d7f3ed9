package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

func TestSmallFileOneRoundTrip(t *testing.T) {
	s := newSite(t, map[string][]byte{"index.html": []byte("<h1>hello</h1>"), "big.bin": randomBytes(3<<20, 1)})
	_, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	c := newClient(t, s.pub, nil)
	ctx := context.Background()

	// Bring the connection up first: the claim is about round trips once
	// the connection exists.
	if _, err := c.conn(ctx, addr); err != nil {
		t.Fatal(err)
	}
	before := c.Requests()
	r, err := c.Lookup(ctx, addr, nil, tree.MustParsePath("index.html"), proto.InlineMax)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Requests() - before; got != 1 {
		t.Fatalf("small file took %d round trips, want 1", got)
	}
	if !r.HasInline || string(r.Inline) != "<h1>hello</h1>" || r.Root.Seq != 1 {
		t.Fatalf("inline %v %q, root seq %d", r.HasInline, r.Inline, r.Root.Seq)
	}

	// A large file: the lookup, then all blocks in parallel: two.
	before = c.Requests()
	r, err = c.Lookup(ctx, addr, nil, tree.MustParsePath("big.bin"), proto.InlineMax)
	if err != nil {
		t.Fatal(err)
	}
	var w memWriter
	if _, err := c.FetchFile(ctx, []string{addr}, r.Node.(*tree.FileNode), &w, FetchOptions{Batch: 64, PerPeer: 1}); err != nil {
		t.Fatal(err)
	}
	if got := c.Requests() - before; got != 2 {
		t.Fatalf("large file took %d round trips, want 2", got)
	}
	if !bytes.Equal(w.b, s.files["big.bin"]) {
		t.Fatal("large file content differs")
	}

	// Absence is proven, not an error.
	r, err = c.Lookup(ctx, addr, &s.root, tree.MustParsePath("nope.html"), 0)
	if err != nil || r.Status != tree.Absent {
		t.Fatalf("absent: %v %v", r, err)
	}
}

func TestBlocksAndRoot(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": bytes.Repeat([]byte("compressible text "), 5000)})
	srv, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	c := newClient(t, s.pub, nil)
	ctx := context.Background()
	root, err := c.Root(ctx, addr)
	if err != nil || root.Hash() != s.root.Hash() {
		t.Fatalf("Root: %v", err)
	}
	r, err := c.Lookup(ctx, addr, &root, tree.MustParsePath("a.txt"), 0)
	if err != nil {
		t.Fatal(err)
	}
	f := r.Node.(*tree.FileNode)
	data, err := c.GetBlock(ctx, addr, f.Hashes[0])
	if err != nil || !bytes.Equal(data, s.files["a.txt"][:len(data)]) {
		t.Fatalf("GetBlock: %v", err)
	}
	if sent := srv.Stats().BytesSent; sent > int64(len(data))/4 {
		t.Errorf("compressible block sent as %d bytes for %d: zstd not used", sent, len(data))
	}
	missing, err := c.GetBlocks(ctx, addr, append(f.Hashes, s.root.Prev /* zero: never stored */), func(blockstore.Hash, []byte) error { return nil })
	if err != nil || len(missing) != 1 {
		t.Fatalf("GetBlocks: missing %v, err %v", missing, err)
	}
	if _, err := c.GetBlock(ctx, addr, s.root.Prev); !errors.Is(err, proto.ErrNotFound) {
		t.Fatalf("missing block: %v", err)
	}
}

func TestPeerNodeID(t *testing.T) {
	s := newSite(t, map[string][]byte{"a": []byte("a")})
	_, key, _ := ed25519.GenerateKey(nil)
	cert, err := Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, ServerConfig{Identity: cert, Store: s.store})
	c := newClient(t, s.pub, nil)
	id, err := c.PeerNodeID(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if id != tree.PublicKeyOf(key) {
		t.Fatalf("peer ID %s, want %s", id, tree.PublicKeyOf(key))
	}
}

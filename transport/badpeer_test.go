package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// Bad peers: every lie a peer can tell must be caught where the bytes
// enter, attributed to that peer (a *PeerError naming it, matching
// ErrBadPeer), and must never come back as a result.

// send answers with msgs, then ends the stream. A client that stops
// reading at the first lie may be gone before the rest is written.
func send(msgs ...proto.Message) fakeHandler {
	return func(_ proto.Message, st *quic.Stream) {
		for _, m := range msgs {
			if err := proto.WriteMessage(st, m); err != nil {
				if errors.Is(err, proto.ErrMalformed) {
					panic(err) // a test bug: the message does not encode
				}
				return
			}
		}
		st.Close()
	}
}

// sendRaw answers with raw bytes, then ends the stream.
func sendRaw(b ...[]byte) fakeHandler {
	return func(_ proto.Message, st *quic.Stream) {
		for _, p := range b {
			st.Write(p)
		}
		st.Close()
	}
}

func frame(m proto.Message) []byte {
	b, err := proto.AppendMessage(nil, m)
	if err != nil {
		panic(err)
	}
	return b
}

func flipped(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)/2] ^= 0x01
	return b
}

// liarSite is the site the lying peers pretend to serve.
type liarSite struct {
	*site
	chunks [][]byte          // chunks of big.bin, in order
	hashes []blockstore.Hash // their hashes
}

func newLiarSite(t *testing.T) *liarSite {
	s := newSiteChunked(t, 4096, map[string][]byte{
		"a.txt":       []byte("the small file a, served inline"),
		"b.txt":       []byte("another small file, b"),
		"dir/big.bin": fastRandom(5*4096, 7),
	})
	ls := &liarSite{site: s, hashes: s.chunkHashes(t, "dir/big.bin")}
	for _, h := range ls.hashes {
		b, err := s.store.Get(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		ls.chunks = append(ls.chunks, b)
	}
	return ls
}

func (s *liarSite) block(i int) *proto.Block {
	return proto.NewBlock(s.hashes[i], 0, uint64(len(s.chunks[i])), s.chunks[i], false)
}

type lie struct {
	name   string
	setup  func(c *Client)                                                 // before the call
	call   func(ctx context.Context, c *Client, peer string) (bool, error) // reports whether a result came back
	handle fakeHandler
}

func TestLyingPeer(t *testing.T) {
	s := newLiarSite(t)
	now := time.Now()
	_, otherKey, _ := ed25519.GenerateKey(nil)
	other := newSiteChunked(t, 4096, map[string][]byte{"a.txt": []byte("someone else's a")})

	aPath := tree.MustParsePath("a.txt")
	lookup := func(root *tree.Root, p tree.Path) func(context.Context, *Client, string) (bool, error) {
		return func(ctx context.Context, c *Client, peer string) (bool, error) {
			r, err := c.Lookup(ctx, peer, root, p, proto.InlineMax)
			return r != nil, err
		}
	}
	explicit := lookup(&s.root, aPath)
	latest := lookup(nil, aPath)
	getRoot := func(ctx context.Context, c *Client, peer string) (bool, error) {
		r, err := c.Root(ctx, peer)
		return !r.Tree.IsZero(), err
	}
	getBlock := func(ctx context.Context, c *Client, peer string) (bool, error) {
		b, err := c.GetBlock(ctx, peer, s.hashes[0])
		return b != nil, err
	}
	// getBlocks asks for chunks 0..2 and checks every block delivered
	// before the lie was caught.
	getBlocks := func(ctx context.Context, c *Client, peer string) (bool, error) {
		var bad error
		_, err := c.GetBlocks(ctx, peer, s.hashes[:3], func(h blockstore.Hash, data []byte) error {
			if blockstore.Sum(data) != h {
				bad = errors.New("an unverified block was delivered")
			}
			return nil
		})
		if bad != nil {
			return true, bad
		}
		return false, err
	}

	aProof := s.proofOf(t, "a.txt")
	aData := s.files["a.txt"]
	withRoot := func(r tree.Root) *proto.LookupResult {
		m := proto.NewLookupResult(tree.Found, aProof, nil, false)
		m.Root = &r
		return m
	}
	seq2 := signRoot(t, s.key, tree.Root{Seq: 2, Time: now, Expires: now.Add(time.Hour), Tree: s.root.Tree, Prev: s.root.Hash()})
	expired := signRoot(t, s.key, tree.Root{Seq: 1, Time: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour), Tree: s.root.Tree})
	future := signRoot(t, s.key, tree.Root{Seq: 1, Time: now.Add(time.Hour), Expires: now.Add(2 * time.Hour), Tree: s.root.Tree})
	twin := signRoot(t, s.key, tree.Root{Seq: 1, Time: now.Add(-time.Minute), Expires: now.Add(time.Hour), Tree: s.root.Tree})
	wrongKey := signRoot(t, otherKey, tree.Root{Seq: 1, Time: now, Expires: now.Add(time.Hour), Tree: s.root.Tree})
	badSig := wrongKey
	badSig.SiteKey = s.pub // claims the site key, signed by another
	acceptSeq2 := func(c *Client) {
		if err := c.AcceptRoot(seq2); err != nil {
			t.Fatal(err)
		}
	}
	acceptSeq1 := func(c *Client) {
		if err := c.AcceptRoot(s.root); err != nil {
			t.Fatal(err)
		}
	}

	// Proof variations.
	forged := &tree.Proof{Nodes: append([][]byte{other.mustGet(t, other.root.Tree)}, aProof.Nodes[1:]...)}
	short := &tree.Proof{Nodes: aProof.Nodes[:len(aProof.Nodes)-1]}
	long := &tree.Proof{Nodes: append(append([][]byte{}, aProof.Nodes...), aProof.Nodes[0])}
	bProof := s.proofOf(t, "b.txt")
	absentProof := s.proofOf(t, "nope.txt")
	inlineAbsent := frame(proto.NewLookupResult(tree.Found, aProof, aData, false))
	_, n := binary.Uvarint(inlineAbsent[1:])
	inlineAbsent[1+n] = 2 // the status byte: absent

	// A zstd stream of a megabyte of zeros in a Block that claims 100 bytes.
	enc, _ := zstd.NewWriter(nil)
	bomb := enc.EncodeAll(make([]byte, 1<<20), nil)
	enc.Close()
	bombFrame := []byte{byte(proto.TypeBlock)}
	bombPayload := append(append(append([]byte{}, s.hashes[0][:]...), 1 /* zstd */, 0 /* offset */), binary.AppendUvarint(nil, 100)...)
	bombPayload = append(bombPayload, bomb...)
	bombFrame = append(binary.AppendUvarint(bombFrame, uint64(len(bombPayload))), bombPayload...)

	blockHead := frame(s.block(1))
	truncated := blockHead[:len(blockHead)/2]

	lies := []lie{
		// Lookup against a root the client holds.
		{name: "lookup/status-found-for-absent", call: lookup(&s.root, tree.MustParsePath("nope.txt")),
			handle: send(proto.NewLookupResult(tree.Found, absentProof, nil, false))},
		{name: "lookup/status-absent-for-found", call: explicit,
			handle: send(proto.NewLookupResult(tree.Absent, aProof, nil, false))},
		{name: "lookup/forged-top-node", call: explicit,
			handle: send(proto.NewLookupResult(tree.Found, forged, nil, false))},
		{name: "lookup/proof-of-another-path", call: explicit,
			handle: send(proto.NewLookupResult(tree.Found, bProof, nil, false))},
		{name: "lookup/proof-cut-short", call: explicit,
			handle: send(proto.NewLookupResult(tree.Found, short, nil, false))},
		{name: "lookup/proof-with-extra-node", call: explicit,
			handle: send(proto.NewLookupResult(tree.Found, long, nil, false))},
		{name: "lookup/empty-proof", call: explicit,
			handle: send(proto.NewLookupResult(tree.Found, &tree.Proof{}, nil, false))},
		{name: "lookup/inline-wrong-bytes", call: explicit,
			handle: send(proto.NewLookupResult(tree.Found, aProof, flipped(aData), false))},
		{name: "lookup/inline-wrong-length", call: explicit,
			handle: send(proto.NewLookupResult(tree.Found, aProof, aData[1:], false))},
		{name: "lookup/inline-for-a-directory", call: lookup(&s.root, tree.Path{}),
			handle: send(proto.NewLookupResult(tree.Found, s.proofOf(t, ""), []byte("a dir"), false))},
		{name: "lookup/inline-with-absent-status", call: explicit, handle: sendRaw(inlineAbsent)},
		{name: "lookup/wrong-answer-type", call: explicit, handle: send(&proto.Root{Root: s.root})},
		{name: "lookup/stream-ends-without-answer", call: explicit, handle: sendRaw()},

		// Lookup of the latest root: the root comes with the answer.
		{name: "latest/no-root", call: latest, handle: send(proto.NewLookupResult(tree.Found, aProof, nil, false))},
		{name: "latest/root-of-another-key", call: latest, handle: send(withRoot(wrongKey))},
		{name: "latest/root-with-bad-signature", call: latest, handle: send(withRoot(badSig))},
		{name: "latest/expired-root", call: latest, handle: send(withRoot(expired))},
		{name: "latest/root-from-the-future", call: latest, handle: send(withRoot(future))},
		{name: "latest/older-than-accepted", setup: acceptSeq2, call: latest, handle: send(withRoot(s.root))},
		{name: "latest/equivocating-root", setup: acceptSeq1, call: latest, handle: send(withRoot(twin))},
		{name: "latest/proof-not-from-that-root", call: latest, handle: func(_ proto.Message, st *quic.Stream) {
			m := proto.NewLookupResult(tree.Found, other.proofOf(t, "a.txt"), nil, false)
			m.Root = &s.root
			send(m)(nil, st)
		}},

		// GetRoot.
		{name: "root/another-key", call: getRoot, handle: send(&proto.Root{Root: wrongKey})},
		{name: "root/bad-signature", call: getRoot, handle: send(&proto.Root{Root: badSig})},
		{name: "root/expired", call: getRoot, handle: send(&proto.Root{Root: expired})},
		{name: "root/older-than-accepted", setup: acceptSeq2, call: getRoot, handle: send(&proto.Root{Root: s.root})},
		{name: "root/equivocating", setup: acceptSeq1, call: getRoot, handle: send(&proto.Root{Root: twin})},
		{name: "root/stream-ends-without-answer", call: getRoot, handle: sendRaw()},
		{name: "root/truncated", call: getRoot, handle: sendRaw(frame(&proto.Root{Root: s.root})[:10])},

		// GetBlock.
		{name: "block/another-block", call: getBlock, handle: send(s.block(1))},
		{name: "block/corrupt-data", call: getBlock,
			handle: send(proto.NewBlock(s.hashes[0], 0, uint64(len(s.chunks[0])), flipped(s.chunks[0]), false))},
		{name: "block/only-a-range", call: getBlock,
			handle: send(proto.NewBlock(s.hashes[0], 0, uint64(len(s.chunks[0])), s.chunks[0][:100], false))},
		{name: "block/offset-range", call: getBlock,
			handle: send(proto.NewBlock(s.hashes[0], 100, uint64(len(s.chunks[0])), s.chunks[0][100:], false))},
		{name: "block/missing-frame", call: getBlock, handle: send(&proto.Missing{Hash: s.hashes[0]})},
		{name: "block/zstd-bomb", call: getBlock, handle: sendRaw(bombFrame)},
		{name: "block/stream-ends-without-answer", call: getBlock, handle: sendRaw()},

		// GetBlocks of chunks 0, 1, 2.
		{name: "blocks/unrequested-block", call: getBlocks, handle: send(s.block(0), s.block(3))},
		{name: "blocks/duplicate-block", call: getBlocks, handle: send(s.block(0), s.block(0))},
		{name: "blocks/missing-then-block", call: getBlocks, handle: send(&proto.Missing{Hash: s.hashes[1]}, s.block(1))},
		{name: "blocks/unrequested-missing", call: getBlocks, handle: send(s.block(0), &proto.Missing{Hash: s.hashes[4]})},
		{name: "blocks/ends-early", call: getBlocks, handle: send(s.block(0), s.block(2))},
		{name: "blocks/ends-at-once", call: getBlocks, handle: sendRaw()},
		{name: "blocks/corrupt-second-block", call: getBlocks,
			handle: send(s.block(0), proto.NewBlock(s.hashes[1], 0, uint64(len(s.chunks[1])), flipped(s.chunks[1]), false))},
		{name: "blocks/partial-block", call: getBlocks,
			handle: send(proto.NewBlock(s.hashes[0], 0, uint64(len(s.chunks[0])), s.chunks[0][:1], false))},
		{name: "blocks/root-frame", call: getBlocks, handle: send(s.block(0), &proto.Root{Root: s.root})},
		{name: "blocks/unknown-type", call: getBlocks, handle: sendRaw(frame(s.block(0)), []byte{0x46, 0x00})},
		{name: "blocks/type-zero", call: getBlocks, handle: sendRaw([]byte{0x00, 0x00})},
		{name: "blocks/truncated-frame", call: getBlocks, handle: sendRaw(truncated)},
		{name: "blocks/oversized-length", call: getBlocks,
			handle: sendRaw(binary.AppendUvarint([]byte{byte(proto.TypeBlock)}, proto.MaxBlockPayload+1))},
		{name: "blocks/length-1<<60", call: getBlocks,
			handle: sendRaw(binary.AppendUvarint([]byte{byte(proto.TypeBlock)}, 1<<60))},
		{name: "blocks/non-minimal-length", call: getBlocks, handle: sendRaw([]byte{byte(proto.TypeMissing), 0xa0, 0x00})},
		{name: "blocks/garbage", call: getBlocks, handle: sendRaw(fastRandom(4096, 3))},
		{name: "blocks/zstd-bomb", call: getBlocks, handle: sendRaw(bombFrame)},
	}
	for _, l := range lies {
		t.Run(l.name, func(t *testing.T) {
			f := startFake(t, l.handle)
			c := newClient(t, s.pub, nil)
			if l.setup != nil {
				l.setup(c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := l.call(ctx, c, f.addr)
			if got {
				t.Errorf("a result came back: %v", err)
			}
			checkBadPeer(t, err, f.addr)
			if f.requests.Load() != 1 {
				t.Errorf("the fake saw %d requests, want 1", f.requests.Load())
			}
			// The lie is counted once, under the cause the error names.
			pe, _ := errors.AsType[*PeerError](err)
			st := c.Stats()
			var total int64
			for _, n := range st.Bad {
				total += n
			}
			if total != 1 || pe == nil || st.Bad[pe.Cause] != 1 {
				t.Errorf("bad answers counted %v, want one of cause %v", st.Bad, pe.Cause)
			}
			if want, ok := wantCause[l.name]; ok && pe != nil && pe.Cause != want {
				t.Errorf("cause %v, want %v", pe.Cause, want)
			}
		})
	}
}

// wantCause is the cause some lies must be counted under.
var wantCause = map[string]BadCause{
	"lookup/forged-top-node":    BadProof,
	"lookup/inline-wrong-bytes": BadProof,
	"root/bad-signature":        BadRoot,
	"latest/expired-root":       BadRoot,
	"block/corrupt-data":        BadBlock,
	"block/another-block":       BadBlock,
	"blocks/garbage":            BadFrame,
	"blocks/ends-at-once":       BadFrame,
}

// TestFakePeerTellsTheTruth is the control for TestLyingPeer: the same
// fake, answering honestly, is believed. So each lie above fails for the
// lie, not for the fake.
func TestFakePeerTellsTheTruth(t *testing.T) {
	s := newLiarSite(t)
	aProof := s.proofOf(t, "a.txt")
	withRoot := proto.NewLookupResult(tree.Found, aProof, s.files["a.txt"], false)
	withRoot.Root = &s.root
	f := startFake(t, func(req proto.Message, st *quic.Stream) {
		switch req := req.(type) {
		case *proto.GetRoot:
			send(&proto.Root{Root: s.root})(req, st)
		case *proto.Lookup:
			send(withRoot)(req, st)
		case *proto.GetBlock:
			send(s.block(0))(req, st)
		case *proto.GetBlocks:
			send(s.block(2), s.block(0), &proto.Missing{Hash: s.hashes[1]})(req, st)
		}
	})
	c := newClient(t, s.pub, nil)
	ctx := context.Background()
	if r, err := c.Root(ctx, f.addr); err != nil || r != s.root {
		t.Fatalf("Root: %v", err)
	}
	r, err := c.Lookup(ctx, f.addr, nil, tree.MustParsePath("a.txt"), proto.InlineMax)
	if err != nil || !r.HasInline || !bytes.Equal(r.Inline, s.files["a.txt"]) {
		t.Fatalf("Lookup: %v", err)
	}
	if b, err := c.GetBlock(ctx, f.addr, s.hashes[0]); err != nil || !bytes.Equal(b, s.chunks[0]) {
		t.Fatalf("GetBlock: %v", err)
	}
	got := 0
	missing, err := c.GetBlocks(ctx, f.addr, s.hashes[:3], func(blockstore.Hash, []byte) error { got++; return nil })
	if err != nil || got != 2 || len(missing) != 1 || missing[0] != s.hashes[1] {
		t.Fatalf("GetBlocks: %d blocks, missing %v, err %v", got, missing, err)
	}
}

// TestHonestFailures checks the other side: answers that are failures but
// not lies must not mark the peer bad.
func TestHonestFailures(t *testing.T) {
	s := newLiarSite(t)
	cases := []struct {
		name   string
		handle fakeHandler
		call   func(ctx context.Context, c *Client, peer string) error
		is     error
	}{
		{"block/not-found", send(proto.NewError(proto.CodeNotFound, "no")), func(ctx context.Context, c *Client, peer string) error {
			_, err := c.GetBlock(ctx, peer, s.hashes[0])
			return err
		}, proto.ErrNotFound},
		{"blocks/overloaded-after-one", send(s.block(0), proto.NewError(proto.CodeOverloaded, "")), func(ctx context.Context, c *Client, peer string) error {
			n := 0
			_, err := c.GetBlocks(ctx, peer, s.hashes[:3], func(blockstore.Hash, []byte) error { n++; return nil })
			if n != 1 {
				return errors.New("the block before the error was not delivered")
			}
			return err
		}, proto.ErrOverloaded},
		{"lookup/unknown-code", send(&proto.Error{Code: 999}), func(ctx context.Context, c *Client, peer string) error {
			_, err := c.Lookup(ctx, peer, nil, tree.MustParsePath("a.txt"), 0)
			return err
		}, proto.ErrRemote},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.handle)
			c := newClient(t, s.pub, nil)
			err := tc.call(context.Background(), c, f.addr)
			var pe *PeerError
			switch {
			case !errors.Is(err, tc.is):
				t.Fatalf("err = %v, want %v", err, tc.is)
			case errors.Is(err, ErrBadPeer):
				t.Fatalf("an honest failure marked the peer bad: %v", err)
			case !errors.As(err, &pe) || pe.Peer != f.addr:
				t.Fatalf("error does not name the peer: %v", err)
			}
		})
	}
	t.Run("blocks/all-missing", func(t *testing.T) {
		f := startFake(t, send(&proto.Missing{Hash: s.hashes[2]}, &proto.Missing{Hash: s.hashes[0]}, &proto.Missing{Hash: s.hashes[1]}))
		c := newClient(t, s.pub, nil)
		missing, err := c.GetBlocks(context.Background(), f.addr, s.hashes[:3], func(blockstore.Hash, []byte) error { return nil })
		if err != nil || len(missing) != 3 {
			t.Fatalf("missing %v, err %v", missing, err)
		}
	})
}

// TestServerWithLyingStore shows the server's own defence: a store that
// hands out a wrong node cannot make it send a forged proof (BuildProof
// checks every node), so the client gets an error, never a result.
func TestServerWithLyingStore(t *testing.T) {
	s := newLiarSite(t)
	other := newSiteChunked(t, 4096, map[string][]byte{"a.txt": []byte("someone else's a")})
	liar := &swapGetter{Getter: s.store, swap: map[blockstore.Hash][]byte{s.root.Tree: other.mustGet(t, other.root.Tree)}}
	_, addr := startServer(t, ServerConfig{Store: liar, Roots: &rootList{s.root}})
	c := newClient(t, s.pub, nil)
	r, err := c.Lookup(context.Background(), addr, nil, tree.MustParsePath("a.txt"), proto.InlineMax)
	if r != nil || err == nil {
		t.Fatalf("lookup through a lying store: %v, %v", r, err)
	}
	if !errors.Is(err, proto.ErrRemote) {
		t.Fatalf("want the server to refuse with an Error frame, got %v", err)
	}
}

// swapGetter returns other bytes for some hashes: a store that lies.
type swapGetter struct {
	tree.Getter
	swap map[blockstore.Hash][]byte
}

func (g *swapGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	if b, ok := g.swap[h]; ok {
		return bytes.Clone(b), nil
	}
	return g.Getter.Get(ctx, h)
}

// corruptGetter flips a byte in the blocks of bad as the server reads
// them: a peer whose disk rots and who does not check. asked is closed at
// the first such read.
type corruptGetter struct {
	tree.Getter
	bad   map[blockstore.Hash]bool
	once  sync.Once
	asked chan struct{}
}

func newCorruptGetter(g tree.Getter, bad []blockstore.Hash) *corruptGetter {
	c := &corruptGetter{Getter: g, bad: map[blockstore.Hash]bool{}, asked: make(chan struct{})}
	for _, h := range bad {
		c.bad[h] = true
	}
	return c
}

func (g *corruptGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	b, err := g.Getter.Get(ctx, h)
	if err != nil || !g.bad[h] {
		return b, err
	}
	g.once.Do(func() { close(g.asked) })
	return flipped(b), nil
}

// gatedGetter holds reads of the hashes in held until open is closed (or
// the request is cancelled): it makes a good peer wait until a bad one
// has been asked, so that a fetch over both meets the bad one for sure.
type gatedGetter struct {
	tree.Getter
	held map[blockstore.Hash]bool
	open <-chan struct{}
}

func newGatedGetter(g tree.Getter, held []blockstore.Hash, open <-chan struct{}) *gatedGetter {
	gg := &gatedGetter{Getter: g, held: map[blockstore.Hash]bool{}, open: open}
	for _, h := range held {
		gg.held[h] = true
	}
	return gg
}

func (g *gatedGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	if g.held[h] {
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Getter.Get(ctx, h)
}

func (s *site) mustGet(t testing.TB, h blockstore.Hash) []byte {
	t.Helper()
	b, err := s.store.Get(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *site) proofOf(t testing.TB, p string) *tree.Proof {
	t.Helper()
	proof, _, err := tree.BuildProof(context.Background(), s.store, s.root.Tree, tree.MustParsePath(p))
	if err != nil {
		t.Fatal(err)
	}
	return proof
}

package transport

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// FetchFile over a mix of good and bad peers: the bad ones are noticed and
// named, and the file comes whole from the others.

// fetchSite is a file of 8 chunks of 64 KiB (2 MiB with the default
// chunk size would do too, but smaller is quicker under -race).
func fetchSite(t *testing.T) *site {
	return newSiteChunked(t, 64<<10, map[string][]byte{"f.bin": fastRandom(8*64<<10, 11)})
}

// halves makes FetchFile split the file into two batches, one worker per
// peer: with the good peer held until the bad one is asked, each peer
// gets one of the batches for sure.
var halves = FetchOptions{Batch: 4, PerPeer: 1}

func fetch(t *testing.T, c *Client, s *site, peers []string, opts FetchOptions) (FetchStats, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var w memWriter
	st, err := c.FetchFile(ctx, peers, s.fileNode(t, "f.bin"), &w, opts)
	return st, w.b, err
}

// checkFetchedDespite checks a fetch that met one bad peer.
func checkFetchedDespite(t *testing.T, s *site, st FetchStats, got []byte, err error, bad string) {
	t.Helper()
	if err != nil {
		t.Fatalf("FetchFile: %v", err)
	}
	if !bytes.Equal(got, s.files["f.bin"]) {
		t.Fatal("the file came back different")
	}
	if len(st.Bad) != 1 {
		t.Fatalf("Bad = %v, want only %s", st.Bad, bad)
	}
	checkBadPeer(t, st.Bad[bad], bad)
	var total int64
	for _, n := range st.BytesFrom {
		total += n
	}
	if total < int64(len(got)) {
		t.Errorf("BytesFrom adds up to %d, the file has %d", total, len(got))
	}
}

func TestFetchFromBadPeers(t *testing.T) {
	s := fetchSite(t)
	chunks := s.chunkHashes(t, "f.bin")
	blocks := map[blockstore.Hash]*proto.Block{} // for fakes to send
	for _, h := range chunks {
		blocks[h] = s.blockMsg(t, h)
	}

	t.Run("corrupt-chunks", func(t *testing.T) {
		rot := newCorruptGetter(s.store, chunks)
		_, bad := startServer(t, ServerConfig{Store: rot})
		_, good := startServer(t, ServerConfig{Store: newGatedGetter(s.store, chunks, rot.asked)})
		c := newClient(t, s.pub, nil)
		var reported []string
		opts := halves
		opts.OnBadPeer = func(peer string, err error) { reported = append(reported, peer) }
		st, got, err := fetch(t, c, s, []string{bad, good}, opts)
		checkFetchedDespite(t, s, st, got, err, bad)
		if len(reported) != 1 || reported[0] != bad {
			t.Errorf("OnBadPeer called for %v, want [%s]", reported, bad)
		}
	})

	t.Run("corrupt-index-node", func(t *testing.T) {
		// 4 KiB chunks and more than tree.FileFanout of them: the top
		// node has level 1 and two index nodes below it. The bad peer
		// rots the index nodes, not the chunks.
		s := newSiteChunked(t, 4096, map[string][]byte{"f.bin": fastRandom((tree.FileFanout+2)*4096, 12)})
		top := s.fileNode(t, "f.bin")
		if top.Level != 1 || len(top.Hashes) != 2 {
			t.Fatalf("file node level %d with %d children, want 1 and 2", top.Level, len(top.Hashes))
		}
		rot := newCorruptGetter(s.store, top.Hashes)
		_, bad := startServer(t, ServerConfig{Store: rot})
		_, good := startServer(t, ServerConfig{Store: newGatedGetter(s.store, top.Hashes, rot.asked)})
		c := newClient(t, s.pub, nil)
		st, got, err := fetch(t, c, s, []string{bad, good}, FetchOptions{Batch: 1, PerPeer: 1})
		checkFetchedDespite(t, s, st, got, err, bad)
		// Dropped for the whole fetch, not only for the index level it
		// lied about.
		if n := st.BytesFrom[bad]; n != 0 {
			t.Errorf("the bad peer was asked again after it was dropped: %d bytes from it", n)
		}
	})

	// Peers that break the protocol rather than the data.
	lies := []struct {
		name   string
		answer func(req *proto.GetBlocks) []proto.Message
	}{
		{"duplicate", func(req *proto.GetBlocks) []proto.Message {
			b := blocks[req.Hashes[0]]
			return []proto.Message{b, b}
		}},
		{"unrequested", func(req *proto.GetBlocks) []proto.Message {
			for _, h := range chunks {
				if !contains(req.Hashes, h) {
					return []proto.Message{blocks[h]}
				}
			}
			panic("the batch holds the whole file")
		}},
		{"ends-early", func(req *proto.GetBlocks) []proto.Message {
			return []proto.Message{blocks[req.Hashes[0]]}
		}},
		{"wrong-type", func(req *proto.GetBlocks) []proto.Message {
			return []proto.Message{&proto.Root{Root: s.root}}
		}},
	}
	for _, l := range lies {
		t.Run("protocol/"+l.name, func(t *testing.T) {
			asked := make(chan struct{})
			var once sync.Once
			f := startFake(t, func(req proto.Message, st *quic.Stream) {
				once.Do(func() { close(asked) })
				send(l.answer(req.(*proto.GetBlocks))...)(req, st)
			})
			_, good := startServer(t, ServerConfig{Store: newGatedGetter(s.store, chunks, asked)})
			c := newClient(t, s.pub, nil)
			st, got, err := fetch(t, c, s, []string{f.addr, good}, halves)
			checkFetchedDespite(t, s, st, got, err, f.addr)
		})
	}

	t.Run("hangs-mid-stream", func(t *testing.T) {
		// The fake sends the first block of its batch, then nothing, and
		// keeps the stream open: only the client's StallTimeout ends it.
		asked := make(chan struct{})
		var once sync.Once
		f := startFake(t, func(req proto.Message, st *quic.Stream) {
			once.Do(func() { close(asked) })
			proto.WriteMessage(st, blocks[req.(*proto.GetBlocks).Hashes[0]])
		})
		_, good := startServer(t, ServerConfig{Store: newGatedGetter(s.store, chunks, asked)})
		const stall = 300 * time.Millisecond
		c := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.StallTimeout = stall })
		start := time.Now()
		st, got, err := fetch(t, c, s, []string{f.addr, good}, halves)
		if err != nil || !bytes.Equal(got, s.files["f.bin"]) {
			t.Fatalf("FetchFile: %v", err)
		}
		if took := time.Since(start); took < stall || took > stall+5*time.Second {
			t.Errorf("took %v with a stall timeout of %v", took, stall)
		}
		if len(st.Bad) != 0 || st.Failed == 0 {
			t.Errorf("a stall is a failure, not bad data: Bad %v, Failed %d", st.Bad, st.Failed)
		}
		if n := st.BytesFrom[f.addr]; n != 64<<10 {
			t.Errorf("the block sent before the stall counts %d bytes, want %d", n, 64<<10)
		}
	})

	t.Run("dead-peer", func(t *testing.T) {
		// The good peer is held until the client is dialling the dead
		// one, so the dead one surely holds half the file when its dial
		// times out.
		dead := deadAddr(t)
		const dialTimeout = 300 * time.Millisecond
		c := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.DialTimeout = dialTimeout })
		defer c.Close() // before the server below stops: it waits for open connections
		dialing := openWhen(func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.dials[dead] != nil
		})
		_, good := startServer(t, ServerConfig{Store: newGatedGetter(s.store, chunks, dialing)})
		start := time.Now()
		st, got, err := fetch(t, c, s, []string{dead, good}, halves)
		if err != nil || !bytes.Equal(got, s.files["f.bin"]) {
			t.Fatalf("FetchFile: %v", err)
		}
		if took := time.Since(start); took < dialTimeout {
			t.Errorf("took %v, less than the dial timeout: the dead peer was never asked", took)
		}
		if len(st.Bad) != 0 || st.BytesFrom[dead] != 0 || st.Failed != 1 {
			t.Errorf("a dead peer fails, it is not bad: Bad %v, Failed %d", st.Bad, st.Failed)
		}
	})

	t.Run("no-stream-credit", func(t *testing.T) {
		// A peer that completes the handshake but never lets the client
		// open a stream (initial_max_streams_bidi = 0).
		f := startFakeWith(t, &quic.Config{MaxIncomingStreams: -1, Allow0RTT: true}, func(proto.Message, *quic.Stream) {})
		c := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.StallTimeout = 300 * time.Millisecond })
		defer c.Close() // before the server below stops: it waits for open connections
		// Held until the client is connected to the stingy peer, with a
		// batch in hand.
		connected := openWhen(func() bool { return c.pooled(f.addr) != nil })
		_, good := startServer(t, ServerConfig{Store: newGatedGetter(s.store, chunks, connected)})
		start := time.Now()
		st, got, err := fetch(t, c, s, []string{f.addr, good}, halves)
		if err != nil || !bytes.Equal(got, s.files["f.bin"]) {
			t.Fatalf("FetchFile after %v: %v", time.Since(start), err)
		}
		if len(st.Bad) != 0 || st.Failed != 1 {
			t.Errorf("a stingy peer fails, it is not bad: Bad %v, Failed %d", st.Bad, st.Failed)
		}
	})

	t.Run("all-bad-or-dead", func(t *testing.T) {
		_, rotten := startServer(t, ServerConfig{Store: newCorruptGetter(s.store, chunks)})
		liar := startFake(t, func(req proto.Message, st *quic.Stream) {
			b := blocks[req.(*proto.GetBlocks).Hashes[0]]
			send(b, b)(req, st)
		})
		hang := startFake(t, func(proto.Message, *quic.Stream) {})
		peers := []string{deadAddr(t), rotten, liar.addr, hang.addr}
		c := newClient(t, s.pub, func(cfg *ClientConfig) {
			cfg.DialTimeout = 300 * time.Millisecond
			cfg.StallTimeout = 300 * time.Millisecond
		})
		start := time.Now()
		st, _, err := fetch(t, c, s, peers, FetchOptions{})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("giving up took %v", took)
		}
		if len(st.Bad) != 2 || st.Bad[rotten] == nil || st.Bad[liar.addr] == nil {
			t.Errorf("Bad = %v, want %s and %s", st.Bad, rotten, liar.addr)
		}
	})
}

// openWhen returns a channel closed once cond holds, polled every 5ms for
// at most 10s (then closed anyway, and the test's own checks decide).
func openWhen(cond func() bool) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for range 2000 {
			if cond() {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return ch
}

// TestFetchCancelled: a caller that gives up gets its own context's error,
// and the fetch stops asking peers.
func TestFetchCancelled(t *testing.T) {
	s := newSiteChunked(t, 4096, map[string][]byte{"f.bin": fastRandom(256*4096, 13)})
	_, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	c := newClient(t, s.pub, nil)
	if _, err := c.Root(context.Background(), addr); err != nil {
		t.Fatal(err)
	}
	conn := c.pooled(addr)
	before := c.Requests()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancellingWriter{cancel: cancel, after: 4}
	_, err := c.FetchFile(ctx, []string{addr}, s.fileNode(t, "f.bin"), w, FetchOptions{Batch: 4, PerPeer: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := c.Requests() - before; n > 3 {
		t.Errorf("%d requests for a fetch cancelled during the first", n)
	}
	// The caller's cancellation says nothing about the connection: it
	// stays pooled and open.
	if c.pooled(addr) != conn || conn.Context().Err() != nil {
		t.Error("cancelling a fetch dropped the peer's connection")
	}
}

// cancellingWriter cancels its context after some writes.
type cancellingWriter struct {
	memWriter
	mu     sync.Mutex
	n      int
	after  int
	cancel func()
}

func (w *cancellingWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n++; w.n == w.after {
		w.cancel()
	}
	return w.memWriter.WriteAt(p, off)
}

func (s *site) blockMsg(t testing.TB, h blockstore.Hash) *proto.Block {
	t.Helper()
	b := s.mustGet(t, h)
	return proto.NewBlock(h, 0, uint64(len(b)), b, false)
}

func contains(hs []blockstore.Hash, h blockstore.Hash) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// Hostile clients against one real Server. After each attack a
// well-behaved client on its own connection must still be served, and
// the server must neither crash nor hold what the attacker asked it to.

const (
	hostileRequestTimeout  = 500 * time.Millisecond
	hostileResponseTimeout = time.Second
	hostileStreams         = 200 // MaxStreamsPerConn
	bigChunk               = 128 << 10
	bigChunks              = 256 // one full GetBlocks batch: 32 MiB
)

func hostileSite(t *testing.T) *site {
	return newSiteChunked(t, bigChunk, map[string][]byte{
		"page.bin": fastRandom(300<<10, 21),
		"big.bin":  fastRandom(bigChunks*bigChunk, 22),
	})
}

// rawRequest writes b on a new stream of conn, closes the sending side,
// and reads frames until the stream ends. It returns what was read and
// how the stream ended: nil for a clean end, or the reset or error.
func rawRequest(t *testing.T, conn *quic.Conn, b []byte) ([]proto.Message, error) {
	t.Helper()
	st, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer st.CancelRead(0)
	st.SetDeadline(time.Now().Add(10 * time.Second))
	st.Write(b)
	st.Close()
	r := bufio.NewReader(st)
	var msgs []proto.Message
	for {
		m, err := proto.ReadMessage(r)
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// checkRefused fails the test unless the server refused the request:
// exactly one Error frame with code want and a clean end, or a reset of
// the stream by the server (want 0 accepts only that).
func checkRefused(t *testing.T, msgs []proto.Message, end error, want proto.ErrorCode) {
	t.Helper()
	var se *quic.StreamError
	switch {
	case end != nil && errors.As(end, &se) && se.Remote && len(msgs) == 0:
		return // reset by the server
	case end != nil:
		t.Fatalf("the stream ended with %v after %d frames", end, len(msgs))
	case len(msgs) != 1:
		t.Fatalf("%d frames in answer to garbage: %v", len(msgs), msgs)
	}
	e, ok := msgs[0].(*proto.Error)
	if !ok {
		t.Fatalf("answered garbage with %v", msgs[0].Type())
	}
	if want != 0 && e.Code != want {
		t.Fatalf("error code %v (%q), want %v", e.Code, e.Message, want)
	}
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// withLen frames payload as type t with its true length.
func withLen(t proto.Type, payload []byte) []byte {
	return cat([]byte{byte(t)}, uv(uint64(len(payload))), payload)
}

func TestHostileClients(t *testing.T) {
	s := hostileSite(t)
	srv, addr := startServer(t, ServerConfig{
		Store:             s.store,
		Roots:             &rootList{s.root},
		MaxStreamsPerConn: hostileStreams,
		RequestTimeout:    hostileRequestTimeout,
		ResponseTimeout:   hostileResponseTimeout,
	})
	checkServes(t, s, addr, "page.bin")
	bigHashes := s.chunkHashes(t, "big.bin")

	t.Run("random-datagrams", func(t *testing.T) {
		// A few thousand datagrams of random sizes and bytes, a quarter
		// of them dressed as QUIC long-header packets of version 1 so
		// they get past the first checks.
		ua, _ := net.ResolveUDPAddr("udp", addr)
		pc := listenLoopback(t, "")
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 3000 {
			b := fastRandom(1+rng.IntN(1500), uint64(i))
			if i%4 == 0 && len(b) > 8 {
				b[0] |= 0xc0
				binary.BigEndian.PutUint32(b[1:], 1)
			}
			pc.WriteTo(b, ua)
		}
		checkServes(t, s, addr, "page.bin")
	})

	t.Run("garbage-on-streams", func(t *testing.T) {
		var h [32]byte
		getBlocks := func(flags byte, count uint64, hashes int) []byte {
			return withLen(proto.TypeGetBlocks, cat([]byte{flags}, uv(count), make([]byte, 32*hashes)))
		}
		dupes := withLen(proto.TypeGetBlocks, cat([]byte{1}, uv(2), bigHashes[0][:], bigHashes[0][:]))
		lookup := func(path string) []byte {
			return withLen(proto.TypeLookup, cat([]byte{0}, s.root.Tree[:], uv(uint64(len(path))), []byte(path), uv(0)))
		}
		cases := []struct {
			name string
			b    []byte
			want proto.ErrorCode
		}{
			{"empty-stream", nil, proto.CodeBadRequest},
			{"type-0x00", []byte{0x00, 0x00}, proto.CodeBadRequest},
			{"unassigned-request-type", []byte{0x3e, 0x00}, proto.CodeBadRequest},
			{"type-0xff", []byte{0xff, 0x01, 0x00}, proto.CodeBadRequest},
			{"block-as-request", cat([]byte{byte(proto.TypeBlock)}, uv(proto.MaxBlockPayload), make([]byte, 100)), proto.CodeBadRequest},
			{"lookup-result-as-request", cat([]byte{byte(proto.TypeLookupResult)}, uv(proto.MaxLookupResultPayload)), proto.CodeBadRequest},
			{"error-as-request", frame(proto.NewError(proto.CodeInternal, "hi")), proto.CodeBadRequest},
			{"getblocks-count-1<<40", getBlocks(1, 1<<40, 1), proto.CodeBadRequest},
			{"getblocks-count-0", getBlocks(1, 0, 0), proto.CodeBadRequest},
			{"getblocks-count-257", getBlocks(1, proto.MaxBatch+1, proto.MaxBatch+1), proto.CodeTooLarge},
			{"getblocks-count-exceeds-hashes", getBlocks(1, 3, 2), proto.CodeBadRequest},
			{"getblocks-duplicate-hashes", dupes, proto.CodeBadRequest},
			{"getblocks-unknown-flag", getBlocks(0x80, 1, 1), proto.CodeBadRequest},
			{"length-1<<60", cat([]byte{byte(proto.TypeGetBlocks)}, uv(1<<60)), proto.CodeTooLarge},
			{"length-over-limit-by-one", cat([]byte{byte(proto.TypeGetBlocks)}, uv(proto.MaxGetBlocksPayload+1)), proto.CodeTooLarge},
			{"getroot-with-payload", withLen(proto.TypeGetRoot, []byte{0}), proto.CodeTooLarge},
			{"length-varint-overflows", cat([]byte{byte(proto.TypeGetBlocks)}, []byte(strings.Repeat("\xff", 10)), []byte{1}), proto.CodeBadRequest},
			{"length-varint-non-minimal", []byte{byte(proto.TypeGetRoot), 0x80, 0x00}, proto.CodeBadRequest},
			{"truncated-payload", cat([]byte{byte(proto.TypeGetBlocks)}, uv(33), []byte{1, 1}), proto.CodeBadRequest},
			{"getblock-range-past-max", withLen(proto.TypeGetBlock, cat(h[:], []byte{0}, uv(blockstore.MaxBlockSize), uv(1))), proto.CodeBadRequest},
			{"getblock-offset-past-block", withLen(proto.TypeGetBlock, cat(bigHashes[0][:], []byte{0}, uv(bigChunk+1), uv(0))), proto.CodeBadRequest},
			{"lookup-path-len-1<<40", withLen(proto.TypeLookup, cat([]byte{0}, h[:], uv(1<<40), []byte("x"), uv(0))), proto.CodeBadRequest},
			{"lookup-dotdot", lookup("a/../../etc/passwd"), proto.CodeBadRequest},
			{"lookup-nul", lookup("a\x00b"), proto.CodeBadRequest},
			{"lookup-latest-with-tree", withLen(proto.TypeLookup, cat([]byte{2}, s.root.Tree[:], uv(0), uv(0))), proto.CodeBadRequest},
			{"lookup-unknown-tree", withLen(proto.TypeLookup, cat([]byte{0}, h[:], uv(0), uv(0))), proto.CodeUnknownRoot},
			{"getroots-max-0", withLen(proto.TypeGetRoots, cat(uv(0), uv(0))), proto.CodeBadRequest},
			{"getroots-max-257", withLen(proto.TypeGetRoots, cat(uv(0), uv(proto.MaxRootsPerRequest+1))), proto.CodeBadRequest},
			{"enroll-token-over-limit", cat([]byte{byte(proto.TypeEnroll)}, uv(proto.MaxTokenSize+1)), proto.CodeTooLarge},
			{"enroll-length-1<<50", cat([]byte{byte(proto.TypeEnroll)}, uv(1<<50)), proto.CodeTooLarge},
			{"enroll-empty-token", withLen(proto.TypeEnroll, nil), proto.CodeBadRequest},
			{"enroll-not-offered", withLen(proto.TypeEnroll, []byte("a token")), proto.CodeBadRequest},
			{"getswarmkeys-not-offered", withLen(proto.TypeGetSwarmKeys, nil), proto.CodeBadRequest},
			{"getswarmkeys-with-payload", withLen(proto.TypeGetSwarmKeys, []byte{0}), proto.CodeTooLarge},
			{"grant-as-request", cat([]byte{byte(proto.TypeGrant)}, uv(proto.MaxGrantPayload)), proto.CodeBadRequest},
			{"swarmkeys-as-request", withLen(proto.TypeSwarmKeys, []byte("k")), proto.CodeBadRequest},
		}
		conn := mustRawDial(t, addr, "")
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := srv.Stats()
				msgs, end := rawRequest(t, conn, tc.b)
				checkRefused(t, msgs, end, tc.want)
				after := srv.Stats()
				if after.Requests+after.BadRequests == before.Requests+before.BadRequests {
					t.Error("the server counted neither a request nor a bad one")
				}
			})
		}
		t.Run("request-then-garbage", func(t *testing.T) {
			// One frame is the request; what follows it is ignored.
			msgs, end := rawRequest(t, conn, cat(frame(&proto.GetRoot{}), fastRandom(1000, 5)))
			if end != nil || len(msgs) != 1 || msgs[0].Type() != proto.TypeRoot {
				t.Fatalf("got %v, %v; want the root", msgs, end)
			}
		})
		t.Run("random-bytes", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range 200 {
				b := fastRandom(rng.IntN(9000), uint64(1000+i))
				if i%2 == 0 && len(b) > 0 {
					b[0] = byte(1 + rng.IntN(4)) // a real request type
				}
				msgs, end := rawRequest(t, conn, b)
				if len(msgs) > 0 && msgs[len(msgs)-1].Type() != proto.TypeError && end == nil {
					// Random bytes can, rarely, be a valid request; then
					// any answer goes. Otherwise it must be refused.
					continue
				}
				checkRefused(t, msgs, end, 0)
			}
		})
		t.Run("oversized-claims-allocate-nothing", func(t *testing.T) {
			// 200 frames claiming a megabyte or more each: if the server
			// allocated what they claim, that alone would be 200 MiB.
			claims := [][]byte{
				cat([]byte{byte(proto.TypeBlock)}, uv(proto.MaxBlockPayload)),
				cat([]byte{byte(proto.TypeLookupResult)}, uv(proto.MaxLookupResultPayload)),
				cat([]byte{byte(proto.TypeGetBlocks)}, uv(1<<40)),
				cat([]byte{byte(proto.TypeLookup)}, uv(1<<30)),
			}
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for i := range 200 {
				msgs, end := rawRequest(t, conn, claims[i%len(claims)])
				checkRefused(t, msgs, end, 0)
			}
			runtime.ReadMemStats(&m1)
			if d := m1.TotalAlloc - m0.TotalAlloc; d > 64<<20 {
				t.Errorf("200 refused frames cost %d MiB of allocations", d>>20)
			}
		})
		checkServes(t, s, addr, "page.bin")
	})

	t.Run("idle-streams", func(t *testing.T) {
		// Several connections open every stream they may, send one byte
		// of a request and nothing more. The server must let them go
		// after RequestTimeout and serve others meanwhile.
		const conns = 8
		before := srv.Stats()
		g0 := runtime.NumGoroutine()
		var streams []*quic.Stream
		for range conns {
			conn := mustRawDial(t, addr, "")
			for range hostileStreams {
				st, err := conn.OpenStream()
				if err != nil {
					t.Fatal(err)
				}
				st.Write([]byte{byte(proto.TypeGetBlocks)})
				streams = append(streams, st)
			}
			// Flow control, not the server's memory, stops the next one.
			var limit *quic.StreamLimitReachedError
			if _, err := conn.OpenStream(); !errors.As(err, &limit) {
				t.Fatalf("stream %d on one connection: %v, want the stream limit", hostileStreams+1, err)
			}
		}
		start := time.Now()
		checkServes(t, s, addr, "page.bin")
		for i, st := range streams {
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := st.Read(make([]byte, 1))
			var se *quic.StreamError
			if !errors.As(err, &se) || !se.Remote || se.ErrorCode != streamTimeout {
				t.Fatalf("stream %d: %v, want a reset with code %d (timeout)", i, err, streamTimeout)
			}
		}
		if took := time.Since(start); took > hostileRequestTimeout+5*time.Second {
			t.Errorf("idle streams were freed after %v", took)
		}
		if d := srv.Stats().BadRequests - before.BadRequests; d != conns*hostileStreams {
			t.Errorf("%d idle streams counted as bad requests, want %d", d, conns*hostileStreams)
		}
		if g := runtime.NumGoroutine() - g0; g > conns*hostileStreams {
			t.Errorf("%d more goroutines than before %d idle streams", g, conns*hostileStreams)
		}
		checkServes(t, s, addr, "page.bin")
	})

	t.Run("stream-credit-comes-back", func(t *testing.T) {
		// With every stream of a connection taken by idle requests, the
		// next stream opens once the server has timed them out.
		conn := mustRawDial(t, addr, "")
		for range hostileStreams {
			st, err := conn.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			st.Write([]byte{byte(proto.TypeLookup)})
			// Read the server's reset when it comes: a stream counts as
			// closed only when both sides are done with it.
			go io.Copy(io.Discard, st)
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatalf("no stream credit after the idle streams timed out: %v", err)
		}
		st.CancelWrite(0)
		if took := time.Since(start); took < hostileRequestTimeout/2 {
			t.Errorf("a stream opened after %v, before the idle ones could time out", took)
		}
	})

	t.Run("slow-reader", func(t *testing.T) {
		// Ask for 32 MiB and read nothing: the server may hold what flow
		// control lets it send, and must give up after ResponseTimeout.
		conn := mustRawDial(t, addr, "")
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		sent0 := srv.Stats().BytesSent
		st, err := conn.OpenStreamSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer st.CancelRead(0)
		if err := proto.WriteMessage(st, &proto.GetBlocks{Hashes: bigHashes}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		start := time.Now()
		checkServes(t, s, addr, "page.bin") // served meanwhile
		// Read(nil) consumes nothing: it only says whether the stream
		// was reset.
		var end error
		waitFor(t, hostileResponseTimeout+10*time.Second, "the server to give up on a slow reader", func() bool {
			_, end = st.Read(nil)
			return end != nil
		})
		var se *quic.StreamError
		if !errors.As(end, &se) || !se.Remote || se.ErrorCode != streamCancelled {
			t.Fatalf("stream ended with %v, want a reset by the server", end)
		}
		if took := time.Since(start); took < hostileResponseTimeout/2 {
			t.Errorf("cut off after %v, before the response timeout", took)
		}
		runtime.ReadMemStats(&m1)
		if d := int64(m1.HeapInuse) - int64(m0.HeapInuse); d > 32<<20 {
			t.Errorf("heap grew by %d MiB during a stalled 32 MiB answer", d>>20)
		}
		if d := srv.Stats().BytesSent - sent0; d > bigChunks*bigChunk/2 {
			t.Errorf("%d MiB sent to a reader that read nothing", d>>20)
		}
		checkServes(t, s, addr, "page.bin")
	})

	t.Run("cancelled-request", func(t *testing.T) {
		// A client that cancels a GetBlocks of 32 MiB after the first
		// block: the server must stop well short of the whole answer.
		c := newClient(t, s.pub, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sent0 := srv.Stats().BytesSent
		_, err := c.GetBlocks(ctx, addr, bigHashes, func(blockstore.Hash, []byte) error {
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("GetBlocks after cancel: %v", err)
		}
		// Stopped means: no byte more over 20 polls 10ms apart.
		last, still := int64(-1), 0
		waitFor(t, 10*time.Second, "the server to stop sending", func() bool {
			n := srv.Stats().BytesSent
			if n == last {
				still++
			} else {
				last, still = n, 0
			}
			time.Sleep(10 * time.Millisecond)
			return still >= 20
		})
		if d := last - sent0; d > bigChunks*bigChunk/2 {
			t.Errorf("%d MiB of 32 sent after the client cancelled at the first block", d>>20)
		}
		checkServes(t, s, addr, "page.bin")
	})
}

func TestConnLimitPerIP(t *testing.T) {
	s := newSite(t, map[string][]byte{"page.bin": randomBytes(10<<10, 1)})
	const limit = 4
	srv, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}, MaxConnsPerIP: limit})
	var conns []*quic.Conn
	for range limit {
		conns = append(conns, mustRawDial(t, addr, ""))
	}
	for i := range 2 {
		_, err := rawDial(t, addr, "")
		var te *quic.TransportError
		if !errors.As(err, &te) || te.ErrorCode != quic.ConnectionRefused {
			t.Fatalf("connection %d over the limit: %v, want CONNECTION_REFUSED", limit+i+1, err)
		}
	}
	// The transport's own client is refused too, as a plain failure.
	c := newClient(t, s.pub, nil)
	_, err := c.Root(context.Background(), addr)
	if err == nil || errors.Is(err, ErrBadPeer) {
		t.Fatalf("client over the limit: %v", err)
	}
	// At least one per refused handshake. (It is two per handshake
	// today: ConnContext runs for each Initial packet of a refused
	// connection, and a ClientHello with a post-quantum key share takes
	// two.)
	if got := srv.Stats().Refused; got < 3 {
		t.Errorf("Stats().Refused = %d, want at least 3", got)
	}
	// Another loopback address has its own count.
	if other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}); err == nil {
		other.Close()
		mustRawDial(t, addr, "127.0.0.2")
	} else {
		t.Logf("no second loopback address (%v): per-address separation not checked", err)
	}
	for _, conn := range conns {
		conn.CloseWithError(0, "")
	}
	// The server releases the slots when it sees the closes.
	waitFor(t, 5*time.Second, "a connection slot after the others closed", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.perIP[addrIP(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})] == 0
	})
	checkServes(t, s, addr, "page.bin")
}

func TestAuthorize(t *testing.T) {
	s := newSite(t, map[string][]byte{"page.bin": randomBytes(10<<10, 1)})
	var mu sync.Mutex
	var seen []Peer
	srv, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root},
		Authorize: func(_ context.Context, p Peer) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, p)
			if !p.HasID {
				return errors.New("nodes only")
			}
			return nil
		}})
	p := tree.MustParsePath("page.bin")

	anon := newClient(t, s.pub, nil)
	r, err := anon.Lookup(context.Background(), addr, nil, p, 0)
	if err == nil || r != nil {
		t.Fatalf("a client without a node certificate was served: %v", err)
	}
	if errors.Is(err, ErrBadPeer) {
		t.Errorf("a refusal is not bad data: %v", err)
	}
	var ae *quic.ApplicationError
	if !errors.As(err, &ae) || ae.ErrorCode != codeRefused {
		t.Errorf("refused with %v, want application error %d", err, codeRefused)
	}
	if got := srv.Stats().Refused; got != 1 {
		t.Errorf("Stats().Refused = %d, want 1", got)
	}

	key := newNodeKey(t)
	cert, err := Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	node := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &cert })
	if _, err := node.Lookup(context.Background(), addr, nil, p, 0); err != nil {
		t.Fatalf("a node with a certificate was refused: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0].HasID || !seen[1].HasID {
		t.Fatalf("Authorize saw %+v", seen)
	}
	if seen[1].ID != tree.PublicKeyOf(key) {
		t.Errorf("server saw node %v, the client's key is %v", seen[1].ID, tree.PublicKeyOf(key))
	}
}

// garbageInitial is a datagram that passes for a QUIC v1 Initial packet
// up to its (random, undecryptable) payload: what anyone can send, from
// any source address they care to write in the IP header.
func garbageInitial(seed uint64) []byte {
	b := fastRandom(1252, seed)
	b[0] = 0xc3                                                  // long header, Initial, 4-byte packet number
	binary.BigEndian.PutUint32(b[1:], 1)                         // version 1
	b[5] = 8                                                     // DCID length, then 8 random bytes
	b[14] = 8                                                    // SCID length, then 8 random bytes
	b[23] = 0                                                    // no token
	binary.BigEndian.PutUint16(b[24:], 0x4000|uint16(len(b)-26)) // length, a 2-byte varint
	return b
}

// TestSpoofedInitialsDoNotLockOut: 40 undecryptable Initial packets
// (50 KB, no reply needed, so the source address can be forged) must not
// take an address's connection slots away from its real owner.
func TestSpoofedInitialsDoNotLockOut(t *testing.T) {
	s := newSite(t, map[string][]byte{"page.bin": randomBytes(10<<10, 1)})
	_, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	ua, _ := net.ResolveUDPAddr("udp", addr)
	pc := listenLoopback(t, "127.0.0.1") // the victim's address
	for i := range 40 {
		pc.WriteTo(garbageInitial(uint64(i)), ua)
	}
	checkServes(t, s, addr, "page.bin")
}

package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// site is a signed tree in a memory store, the way an origin holds it.
type site struct {
	key   ed25519.PrivateKey
	pub   tree.PublicKey
	store *blockstore.Mem
	root  tree.Root
	files map[string][]byte
}

type rootList struct{ r tree.Root }

func (l *rootList) Latest() (tree.Root, bool) { return l.r, !l.r.Tree.IsZero() }

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func newSite(t testing.TB, files map[string][]byte) *site {
	t.Helper()
	return newSiteChunked(t, 0, files)
}

// startServer runs a server on a loopback UDP port until the test ends.
func startServer(t testing.TB, cfg ServerConfig) (*Server, string) {
	t.Helper()
	if len(cfg.Identity.Certificate) == 0 {
		_, k, _ := ed25519.GenerateKey(nil)
		cert, err := Certificate(k)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Identity = cert
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, cfg, pc)
}

// serveOn runs a server on pc until the test ends.
func serveOn(t testing.TB, cfg ServerConfig, pc net.PacketConn) (*Server, string) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		pc.Close()
	})
	return srv, pc.LocalAddr().String()
}

func newClient(t testing.TB, key tree.PublicKey, tweak func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{SiteKey: key, StallTimeout: 5 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// memWriter is an io.WriterAt into memory. Like any io.WriterAt it takes
// parallel calls (FetchFile writes from one goroutine per request).
type memWriter struct {
	mu sync.Mutex
	b  []byte
}

func (m *memWriter) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if need := int(off) + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}

// The helpers below serve the hostile-peer and benchmark tests.

// fastRandom is randomBytes for large sizes: incompressible, seeded, and
// quick enough under the race detector.
func fastRandom(n int, seed uint64) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// newSiteChunked builds a signed site with a chunk size of the test's
// choosing (0 for the default), so that files with index nodes stay small.
func newSiteChunked(t testing.TB, chunkSize uint32, files map[string][]byte) *site {
	t.Helper()
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(nil)
	s := &site{key: key, pub: tree.PublicKeyOf(key), store: blockstore.NewMem(-1), files: files}
	b := &tree.Builder{Store: s.store, ChunkSize: chunkSize}
	root, err := b.EmptyDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		h, n, err := b.WriteFile(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		root, err = b.Set(ctx, root, tree.MustParsePath(p), tree.Entry{Kind: tree.KindFile, Mode: 0o644, Size: n, Hash: h})
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	s.root, err = tree.SignRoot(key, tree.Root{Seq: 1, Time: now, Expires: now.Add(time.Hour), Tree: root})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fileNode resolves a file of the site locally, without the network.
func (s *site) fileNode(t testing.TB, p string) *tree.FileNode {
	t.Helper()
	r, err := tree.Lookup(context.Background(), s.store, s.root.Tree, tree.MustParsePath(p))
	if err != nil {
		t.Fatal(err)
	}
	return r.Node.(*tree.FileNode)
}

// chunkHashes lists the chunks of a file of the site, in file order.
func (s *site) chunkHashes(t testing.TB, p string) []blockstore.Hash {
	t.Helper()
	var hs []blockstore.Hash
	f := s.fileNode(t, p)
	err := tree.Chunks(context.Background(), s.store, f, 0, f.Size, func(c tree.Chunk) error {
		hs = append(hs, c.Hash)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// signRoot signs a root over tree with key, or fails the test.
func signRoot(t testing.TB, key ed25519.PrivateKey, r tree.Root) tree.Root {
	t.Helper()
	r, err := tree.SignRoot(key, r)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newCert(t testing.TB) tls.Certificate {
	t.Helper()
	cert, err := Certificate(newNodeKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// listenLoopback opens a UDP socket on ip (127.0.0.1 when empty), closed
// when the test ends.
func listenLoopback(t testing.TB, ip string) *net.UDPConn {
	t.Helper()
	if ip == "" {
		ip = "127.0.0.1"
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// deadAddr returns a loopback address nobody listens on: a port that was
// bound and released.
func deadAddr(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// waitFor polls cond every few milliseconds until it holds, and fails the
// test if it still does not after limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakePeer is a grits/1 server driven by hand: it speaks QUIC with the
// transport's own TLS and QUIC settings, reads each request with
// proto.ReadRequest, and lets handle answer with whatever it likes,
// including lies, garbage and silence. A handler that returns without
// closing the stream leaves it hanging.
type fakePeer struct {
	addr string
	// requests counts requests read.
	requests atomic.Int64
}

type fakeHandler func(req proto.Message, st *quic.Stream)

func startFake(t testing.TB, handle fakeHandler) *fakePeer {
	t.Helper()
	return startFakeWith(t, nil, handle)
}

// startFakeWith is startFake with a QUIC config of the test's choosing
// (nil: the Server's).
func startFakeWith(t testing.TB, qc *quic.Config, handle fakeHandler) *fakePeer {
	t.Helper()
	ref, err := NewServer(ServerConfig{Identity: newCert(t), Store: blockstore.NewMem(-1)})
	if err != nil {
		t.Fatal(err)
	}
	if qc == nil {
		qc = ref.quicConfig()
	}
	pc := listenLoopback(t, "")
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.ListenEarly(ref.tlsConfig(), qc)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePeer{addr: pc.LocalAddr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() { f.serveConn(ctx, conn, handle, &wg) })
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		tr.Close()
		wg.Wait()
	})
	return f
}

func (f *fakePeer) serveConn(ctx context.Context, conn *quic.Conn, handle fakeHandler, wg *sync.WaitGroup) {
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			req, err := proto.ReadRequest(bufio.NewReader(st))
			if err != nil {
				st.CancelRead(streamBadRequest)
				st.CancelWrite(streamBadRequest)
				return
			}
			f.requests.Add(1)
			handle(req, st)
		})
	}
}

// rawTLS is the client side of the transport's TLS settings.
func rawTLS() *tls.Config {
	return &tls.Config{
		NextProtos:            []string{ALPN},
		MinVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verifyAnyNodeCert,
	}
}

// rawDial opens a plain quic-go connection to addr from its own socket on
// srcIP (127.0.0.1 when empty): a client that speaks whatever the test
// writes. Closed when the test ends.
func rawDial(t testing.TB, addr, srcIP string) (*quic.Conn, error) {
	t.Helper()
	pc := listenLoopback(t, srcIP)
	tr := &quic.Transport{Conn: pc}
	t.Cleanup(func() { tr.Close() })
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := tr.Dial(ctx, ua, rawTLS(), &quic.Config{HandshakeIdleTimeout: 5 * time.Second, MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn, nil
}

func mustRawDial(t testing.TB, addr, srcIP string) *quic.Conn {
	t.Helper()
	conn, err := rawDial(t, addr, srcIP)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return conn
}

// checkBadPeer fails the test unless err is a bad-peer error naming peer.
func checkBadPeer(t testing.TB, err error, peer string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error: the lie was believed")
	}
	if !errors.Is(err, ErrBadPeer) {
		t.Fatalf("error does not mark a bad peer: %v", err)
	}
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Peer != peer {
		t.Fatalf("error does not name peer %s: %v", peer, err)
	}
}

// checkServes fails the test unless a new client, on its own connection,
// gets file p from the server at addr intact.
func checkServes(t testing.TB, s *site, addr, p string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newClient(t, s.pub, nil)
	r, err := c.Lookup(ctx, addr, nil, tree.MustParsePath(p), 0)
	if err != nil {
		t.Fatalf("server no longer serves lookups: %v", err)
	}
	var w memWriter
	if _, err := c.FetchFile(ctx, []string{addr}, r.Node.(*tree.FileNode), &w, FetchOptions{}); err != nil {
		t.Fatalf("server no longer serves blocks: %v", err)
	}
	if !bytes.Equal(w.b, s.files[p]) {
		t.Fatalf("%s came back different", p)
	}
	c.Close()
}

func newNodeKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// The transport side of membership: credentials in certificates, the
// peer in request contexts, GetRoots, Enroll, GetSwarmKeys, Disconnect,
// VerifyServer and DropPeer.

// rootChain signs roots 1..n over the site's tree, each chained to the
// one before. All but the last are days old and long expired, as the
// history in a root log is.
func rootChain(t testing.TB, s *site, n int) []tree.Root {
	t.Helper()
	now := time.Now()
	var out []tree.Root
	var prev blockstore.Hash
	for i := 1; i <= n; i++ {
		at := now.Add(time.Duration(i-n) * 24 * time.Hour)
		r := signRoot(t, s.key, tree.Root{Seq: uint64(i), Time: at, Expires: at.Add(time.Hour), Tree: s.root.Tree, Prev: prev})
		prev = r.Hash()
		out = append(out, r)
	}
	return out
}

// openLog is a root log in the test's directory holding roots.
func openLog(t testing.TB, roots []tree.Root) *tree.Log {
	t.Helper()
	l, err := tree.OpenLog(context.Background(), filepath.Join(t.TempDir(), "roots.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for _, r := range roots {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func seqs(roots []tree.Root) []uint64 {
	var out []uint64
	for _, r := range roots {
		out = append(out, r.Seq)
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// checkChainOf fails the test unless got are the roots of chain with
// seqs want, byte for byte.
func checkChainOf(t *testing.T, got, chain []tree.Root, want []uint64) {
	t.Helper()
	if fmt.Sprint(seqs(got)) != fmt.Sprint(want) {
		t.Fatalf("got seqs %v, want %v", seqs(got), want)
	}
	for _, r := range got {
		if r.Hash() != chain[r.Seq-1].Hash() {
			t.Fatalf("root seq %d differs from the one signed", r.Seq)
		}
	}
}

func TestGetRoots(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	chain := rootChain(t, s, 6)
	ctx := context.Background()

	t.Run("from-a-root-log", func(t *testing.T) {
		_, addr := startServer(t, ServerConfig{Store: s.store, Roots: openLog(t, chain)})
		c := newClient(t, s.pub, nil)
		cases := []struct {
			name  string
			after uint64
			max   int
			want  []uint64
		}{
			{"all", 0, proto.MaxRootsPerRequest, span(1, 6)},
			{"the-first", 0, 1, span(1, 1)},
			{"middle", 2, 2, span(3, 4)},
			{"to-the-end", 4, 10, span(5, 6)},
			{"only-the-latest", 5, 1, span(6, 6)},
			{"after-the-latest", 6, proto.MaxRootsPerRequest, nil},
			{"after-beyond", 100, 1, nil},
			{"after-max-uint64", math.MaxUint64, 1, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := c.Roots(ctx, addr, tc.after, tc.max)
				if err != nil {
					t.Fatal(err)
				}
				checkChainOf(t, got, chain, tc.want)
			})
		}
		if r, ok := c.LatestAccepted(); ok {
			t.Errorf("Roots changed the latest accepted root to seq %d", r.Seq)
		}
	})

	t.Run("extends-a-log", func(t *testing.T) {
		// What membership does with it: a node that holds roots 1..2
		// fetches the rest and appends them to its own log.
		_, addr := startServer(t, ServerConfig{Store: s.store, Roots: openLog(t, chain)})
		c := newClient(t, s.pub, nil)
		mine := openLog(t, chain[:2])
		last, _ := mine.Latest()
		got, err := c.Roots(ctx, addr, last.Seq, proto.MaxRootsPerRequest)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if err := mine.Append(ctx, r); err != nil {
				t.Fatalf("appending seq %d: %v", r.Seq, err)
			}
		}
		if r, _ := mine.Latest(); r.Hash() != chain[5].Hash() {
			t.Fatalf("the log ends at seq %d, want 6", r.Seq)
		}
	})

	t.Run("history-that-starts-later", func(t *testing.T) {
		_, addr := startServer(t, ServerConfig{Store: s.store, Roots: openLog(t, chain[2:])})
		c := newClient(t, s.pub, nil)
		got, err := c.Roots(ctx, addr, 2, 10)
		if err != nil {
			t.Fatal(err)
		}
		checkChainOf(t, got, chain, span(3, 6))
		// It cannot start a chain at seq 1, and says so honestly.
		_, err = c.Roots(ctx, addr, 0, 10)
		checkHonestFailure(t, err, addr, proto.ErrNotFound)
	})

	t.Run("latest-only", func(t *testing.T) {
		// A Roots that is not a RootHistory can offer the latest alone.
		_, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{chain[5]}})
		c := newClient(t, s.pub, nil)
		got, err := c.Roots(ctx, addr, 5, 10)
		if err != nil {
			t.Fatal(err)
		}
		checkChainOf(t, got, chain, span(6, 6))
		if got, err := c.Roots(ctx, addr, 6, 10); err != nil || len(got) != 0 {
			t.Fatalf("after the latest: %v, %v", seqs(got), err)
		}
		_, err = c.Roots(ctx, addr, 3, 10)
		checkHonestFailure(t, err, addr, proto.ErrNotFound)
	})

	t.Run("no-roots", func(t *testing.T) {
		_, addr := startServer(t, ServerConfig{Store: s.store})
		c := newClient(t, s.pub, nil)
		if got, err := c.Roots(ctx, addr, 0, 10); err != nil || len(got) != 0 {
			t.Fatalf("from a server without roots: %v, %v", seqs(got), err)
		}
	})

	t.Run("max-out-of-range", func(t *testing.T) {
		c := newClient(t, s.pub, nil)
		for _, max := range []int{0, -1, proto.MaxRootsPerRequest + 1} {
			_, err := c.Roots(ctx, deadAddr(t), 0, max)
			if err == nil || !strings.Contains(err.Error(), "MaxRootsPerRequest") {
				t.Errorf("max %d: %v", max, err)
			}
			if _, ok := errors.AsType[*PeerError](err); ok {
				t.Errorf("max %d: a caller's mistake blamed on the peer: %v", max, err)
			}
		}
		if c.Requests() != 0 {
			t.Errorf("%d requests sent", c.Requests())
		}
	})
}

// checkHonestFailure fails the test unless err is a failure that wraps
// is, names peer, and does not mark it bad.
func checkHonestFailure(t testing.TB, err error, peer string, is error) {
	t.Helper()
	var pe *PeerError
	switch {
	case !errors.Is(err, is):
		t.Fatalf("err = %v, want %v", err, is)
	case errors.Is(err, ErrBadPeer):
		t.Fatalf("an honest failure marked the peer bad: %v", err)
	case !errors.As(err, &pe) || pe.Peer != peer:
		t.Fatalf("error does not name the peer %s: %v", peer, err)
	}
}

// TestGetRootsLyingPeer: every way a chain can be forged, cut or padded
// is caught and blamed on the peer, and nothing comes back.
func TestGetRootsLyingPeer(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	chain := rootChain(t, s, 3)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	r1, r2, r3 := chain[0], chain[1], chain[2]
	// Seq 2 chained to a twin of seq 1: both signed, a fork.
	twin1 := signRoot(t, s.key, tree.Root{Seq: 1, Time: r1.Time.Add(-time.Minute), Expires: r1.Expires, Tree: r1.Tree})
	fork2 := signRoot(t, s.key, tree.Root{Seq: 2, Time: r2.Time, Expires: r2.Expires, Tree: r2.Tree, Prev: twin1.Hash()})
	badSig := r2
	badSig.Sig[7] ^= 0x01
	otherSite := signRoot(t, otherKey, tree.Root{Seq: 1, Time: r1.Time, Expires: r1.Expires, Tree: r1.Tree})
	claimsSite := otherSite
	claimsSite.SiteKey = s.pub
	unsigned := tree.Root{SiteKey: s.pub, Seq: 1, Time: r1.Time, Expires: r1.Expires, Tree: r1.Tree}
	seqZero := r1
	seqZero.Seq = 0

	roots := func(rs ...tree.Root) fakeHandler {
		var msgs []proto.Message
		for _, r := range rs {
			msgs = append(msgs, &proto.Root{Root: r})
		}
		return send(msgs...)
	}
	cases := []struct {
		name       string
		after      uint64
		max        int
		handle     fakeHandler
		mentioning string
	}{
		{"wrong-first-seq", 0, 10, roots(r2, r3), "seq 1 was due"},
		{"gap", 0, 10, roots(r1, r3), "seq 2 was due"},
		{"repeated", 0, 10, roots(r1, r1), "seq 2 was due"},
		{"not-after", 1, 10, roots(r1, r2), "seq 2 was due"},
		{"descending", 1, 10, roots(r3, r2), "seq 2 was due"},
		{"fork", 0, 10, roots(r1, fork2, r3), "follows"},
		{"fork-at-the-end", 0, 10, roots(twin1, r2), "follows"},
		{"bad-signature", 1, 10, roots(badSig, r3), "signature"},
		{"bad-signature-later", 0, 10, roots(r1, badSig), "signature"},
		{"another-site", 0, 10, roots(otherSite), "site key"},
		{"claims-the-site-key", 0, 10, roots(claimsSite), "signature"},
		{"unsigned", 0, 10, roots(unsigned), "signature"},
		{"more-than-max", 0, 2, roots(r1, r2, r3), "more roots than the 2"},
		{"seq-zero-after-max-uint64", math.MaxUint64, 1, roots(seqZero), "signature"},
		{"wrong-answer-type", 0, 10, send(&proto.Grant{Body: []byte("g")}), "unexpected frame type"},
		{"block-among-roots", 0, 10, send(&proto.Root{Root: r1}, &proto.Missing{}), "unexpected frame type"},
		{"truncated-root", 0, 10, sendRaw(frame(&proto.Root{Root: r1})[:50]), "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.handle)
			c := newClient(t, s.pub, nil)
			got, err := c.Roots(context.Background(), f.addr, tc.after, tc.max)
			if got != nil {
				t.Errorf("roots came back: %v", seqs(got))
			}
			checkBadPeer(t, err, f.addr)
			if !strings.Contains(err.Error(), tc.mentioning) {
				t.Errorf("error %q does not say %q", err, tc.mentioning)
			}
			if _, ok := c.LatestAccepted(); ok {
				t.Error("a lie changed the latest accepted root")
			}
		})
	}

	// The control: the same fake telling the truth is believed, and an
	// Error is a plain failure.
	t.Run("truth", func(t *testing.T) {
		f := startFake(t, roots(r1, r2, r3))
		c := newClient(t, s.pub, nil)
		got, err := c.Roots(context.Background(), f.addr, 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		checkChainOf(t, got, chain, span(1, 3))
	})
	t.Run("error", func(t *testing.T) {
		f := startFake(t, send(&proto.Root{Root: r1}, proto.NewError(proto.CodeOverloaded, "later")))
		c := newClient(t, s.pub, nil)
		_, err := c.Roots(context.Background(), f.addr, 0, 3)
		checkHonestFailure(t, err, f.addr, proto.ErrOverloaded)
	})
}

// memberCert makes a node key and a certificate carrying cred.
func memberCert(t testing.TB, cred []byte) (NodeID, tls.Certificate) {
	t.Helper()
	key := newNodeKey(t)
	cert, err := CertificateWithCredential(key, cred)
	if err != nil {
		t.Fatal(err)
	}
	return tree.PublicKeyOf(key), cert
}

// hookCall is what a membership hook saw.
type hookCall struct {
	peer    Peer
	fromCtx Peer
	inCtx   bool
	token   string
}

func TestEnrollAndSwarmKeys(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	cred := []byte("a site-signed node certificate, opaque to the transport")
	memberID, memberCrt := memberCert(t, cred)
	var mu sync.Mutex
	var enrolls, keyCalls []hookCall
	record := func(list *[]hookCall, ctx context.Context, p Peer, token []byte) {
		fromCtx, ok := PeerFromContext(ctx)
		mu.Lock()
		defer mu.Unlock()
		*list = append(*list, hookCall{p, fromCtx, ok, string(token)})
	}
	_, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root},
		Enroll: func(ctx context.Context, p Peer, token []byte) ([]byte, error) {
			record(&enrolls, ctx, p, token)
			switch string(token) {
			case "good":
				return []byte("grant for " + p.ID.String()), nil
			case "used":
				return nil, fmt.Errorf("%w: this token was used already", proto.ErrUnauthorized)
			case "malformed":
				return nil, fmt.Errorf("%w: not a token", proto.ErrBadRequest)
			case "empty-grant":
				return nil, nil
			case "huge-grant":
				return make([]byte, proto.MaxGrantSize+1), nil
			}
			return nil, errors.New("reading /var/lib/grits/secret: permission denied")
		},
		SwarmKeys: func(ctx context.Context, p Peer) ([]byte, error) {
			record(&keyCalls, ctx, p, nil)
			if !p.HasID || p.ID != memberID || !bytes.Equal(p.Credential, cred) {
				return nil, fmt.Errorf("%w: not a member", proto.ErrUnauthorized)
			}
			return []byte("the swarm keys"), nil
		},
	})
	member := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &memberCrt })
	anon := newClient(t, s.pub, nil)
	_, strangerCrt := memberCert(t, nil)
	stranger := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &strangerCrt })
	ctx := context.Background()

	grant, err := member.Enroll(ctx, addr, []byte("good"))
	if err != nil || string(grant) != "grant for "+memberID.String() {
		t.Fatalf("Enroll: %q, %v", grant, err)
	}
	keys, err := member.SwarmKeys(ctx, addr)
	if err != nil || string(keys) != "the swarm keys" {
		t.Fatalf("SwarmKeys: %q, %v", keys, err)
	}
	mu.Lock()
	for _, calls := range [][]hookCall{enrolls, keyCalls} {
		c := calls[0]
		if !c.peer.HasID || c.peer.ID != memberID || !bytes.Equal(c.peer.Credential, cred) || c.peer.Addr == nil {
			t.Errorf("the hook saw %+v, want the member and its credential", c.peer)
		}
		if !c.inCtx || c.fromCtx.ID != c.peer.ID || !bytes.Equal(c.fromCtx.Credential, c.peer.Credential) {
			t.Errorf("the request context carries %+v (%v), the hook got %+v", c.fromCtx, c.inCtx, c.peer)
		}
	}
	if enrolls[0].token != "good" {
		t.Errorf("the hook got token %q", enrolls[0].token)
	}
	mu.Unlock()

	refusals := []struct {
		name string
		call func() error
		is   error
	}{
		{"enroll/used-token", func() error { _, err := member.Enroll(ctx, addr, []byte("used")); return err }, proto.ErrUnauthorized},
		{"enroll/malformed-token", func() error { _, err := member.Enroll(ctx, addr, []byte("malformed")); return err }, proto.ErrBadRequest},
		{"enroll/empty-grant", func() error { _, err := member.Enroll(ctx, addr, []byte("empty-grant")); return err }, proto.ErrInternal},
		{"enroll/huge-grant", func() error { _, err := member.Enroll(ctx, addr, []byte("huge-grant")); return err }, proto.ErrInternal},
		{"enroll/hook-failed", func() error { _, err := member.Enroll(ctx, addr, []byte("other")); return err }, proto.ErrInternal},
		{"swarm-keys/anonymous", func() error { _, err := anon.SwarmKeys(ctx, addr); return err }, proto.ErrUnauthorized},
		{"swarm-keys/no-credential", func() error { _, err := stranger.SwarmKeys(ctx, addr); return err }, proto.ErrUnauthorized},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			err := r.call()
			checkHonestFailure(t, err, addr, r.is)
			if strings.Contains(err.Error(), "/var/lib") {
				t.Errorf("the server's internals reached the client: %v", err)
			}
		})
	}
	t.Run("enroll/message-arrives", func(t *testing.T) {
		_, err := member.Enroll(ctx, addr, []byte("used"))
		if !strings.Contains(err.Error(), "this token was used already") {
			t.Errorf("the hook's message was lost: %v", err)
		}
	})
	t.Run("enroll/anonymous", func(t *testing.T) {
		if _, err := anon.Enroll(ctx, addr, []byte("good")); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if last := enrolls[len(enrolls)-1]; last.peer.HasID || last.peer.Credential != nil {
			t.Errorf("an anonymous client reached the hook as %+v", last.peer)
		}
	})
	t.Run("enroll/token-out-of-range", func(t *testing.T) {
		before := member.Requests()
		for _, tok := range [][]byte{nil, make([]byte, proto.MaxTokenSize+1)} {
			_, err := member.Enroll(ctx, addr, tok)
			if err == nil || !strings.Contains(err.Error(), "MaxTokenSize") {
				t.Errorf("token of %d bytes: %v", len(tok), err)
			}
		}
		if member.Requests() != before {
			t.Error("a token out of range was sent")
		}
	})
}

// TestMembershipHooksUnset: a server without the hooks refuses both
// requests as bad requests, not as failures of its own.
func TestMembershipHooksUnset(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	_, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	_, crt := memberCert(t, []byte("cred"))
	c := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &crt })
	_, err := c.Enroll(context.Background(), addr, []byte("token"))
	checkHonestFailure(t, err, addr, proto.ErrBadRequest)
	if !strings.Contains(err.Error(), "does not enroll") {
		t.Errorf("Enroll refused with %v", err)
	}
	_, err = c.SwarmKeys(context.Background(), addr)
	checkHonestFailure(t, err, addr, proto.ErrBadRequest)
}

// TestNoRequestInEarlyData: the client resumes sessions but sends no
// request in 0-RTT data, not even to a server that would accept it:
// Enroll must not be replayable, and no request would be answered
// sooner. The server here is a raw listener allowing 0-RTT that notes,
// for each stream, whether the handshake had completed when the stream
// arrived.
func TestNoRequestInEarlyData(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	ref, err := NewServer(ServerConfig{Identity: newCert(t), Store: s.store})
	if err != nil {
		t.Fatal(err)
	}
	pc := listenLoopback(t, "")
	tr := &quic.Transport{Conn: pc}
	qc := ref.quicConfig()
	qc.Allow0RTT = true
	ln, err := tr.ListenEarly(ref.tlsConfig(), qc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	early := map[proto.Type]int{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); tr.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					st, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					before := false
					select {
					case <-conn.HandshakeComplete():
					default:
						before = true
					}
					wg.Go(func() {
						req, err := proto.ReadRequest(bufio.NewReader(st))
						if err != nil {
							st.CancelWrite(streamBadRequest)
							return
						}
						if before {
							mu.Lock()
							early[req.Type()]++
							mu.Unlock()
						}
						var m proto.Message = &proto.Root{Root: s.root}
						if req.Type() == proto.TypeEnroll {
							m = &proto.Grant{Body: []byte("granted")}
						}
						send(m)(req, st)
					})
				}
			})
		}
	})
	addr := pc.LocalAddr().String()
	c := newClient(t, s.pub, nil)
	tickets := watchTickets(c)
	if _, err := c.Root(ctx, addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a session ticket", func() bool { return tickets.tickets(addr) > 0 })
	for i := range 5 {
		c.DropPeer(addr)
		if i%2 == 0 {
			if _, err := c.Root(ctx, addr); err != nil {
				t.Fatalf("Root %d on a resumed connection: %v", i, err)
			}
		} else if g, err := c.Enroll(ctx, addr, []byte("token")); err != nil || string(g) != "granted" {
			t.Fatalf("Enroll %d on a resumed connection: %q, %v", i, g, err)
		}
		cs := c.pooled(addr).ConnectionState()
		if !cs.TLS.DidResume {
			t.Fatalf("connection %d did not resume the session: the test proves nothing", i)
		}
		if cs.Used0RTT {
			t.Fatalf("connection %d used 0-RTT", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(early) != 0 {
		t.Fatalf("requests arrived before the handshake completed: %v", early)
	}
}

// peerGetter records the peer of every Get's context.
type peerGetter struct {
	tree.Getter
	mu    sync.Mutex
	peers []Peer
	none  int
}

func (g *peerGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	p, ok := PeerFromContext(ctx)
	g.mu.Lock()
	if ok {
		g.peers = append(g.peers, p)
	} else {
		g.none++
	}
	g.mu.Unlock()
	return g.Getter.Get(ctx, h)
}

func TestPeerInRequestContext(t *testing.T) {
	if _, ok := PeerFromContext(context.Background()); ok {
		t.Fatal("a peer in the background context")
	}
	want := Peer{ID: tree.PublicKeyOf(newNodeKey(t)), HasID: true, Credential: []byte("c")}
	if got, ok := PeerFromContext(ContextWithPeer(context.Background(), want)); !ok || got.ID != want.ID || !bytes.Equal(got.Credential, want.Credential) {
		t.Fatalf("ContextWithPeer round trip: %+v, %v", got, ok)
	}

	s := newSite(t, map[string][]byte{"a.txt": []byte("a small file")})
	g := &peerGetter{Getter: s.store}
	_, addr := startServer(t, ServerConfig{Store: g, Roots: &rootList{s.root}})
	cred := []byte("credential")
	id, crt := memberCert(t, cred)
	c := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &crt })
	r, err := c.Lookup(context.Background(), addr, nil, tree.MustParsePath("a.txt"), proto.InlineMax)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetBlock(context.Background(), addr, r.Node.(*tree.FileNode).Hashes[0]); err != nil {
		t.Fatal(err)
	}
	anon := newClient(t, s.pub, nil)
	if _, err := anon.GetBlock(context.Background(), addr, r.Node.(*tree.FileNode).Hashes[0]); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.none != 0 || len(g.peers) < 3 {
		t.Fatalf("%d reads with a peer, %d without", len(g.peers), g.none)
	}
	for _, p := range g.peers[:len(g.peers)-1] {
		if !p.HasID || p.ID != id || !bytes.Equal(p.Credential, cred) || p.Addr == nil {
			t.Fatalf("the store saw %+v, want the member", p)
		}
	}
	if last := g.peers[len(g.peers)-1]; last.HasID || last.Addr == nil {
		t.Fatalf("the anonymous client's read saw %+v", last)
	}
}

// closedBy waits for conn to close and returns the application error it
// closed with.
func closedBy(t *testing.T, conn *quic.Conn) *quic.ApplicationError {
	t.Helper()
	select {
	case <-conn.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection is still open")
	}
	ae, ok := errors.AsType[*quic.ApplicationError](context.Cause(conn.Context()))
	if !ok {
		t.Fatalf("closed by %v, not an application error", context.Cause(conn.Context()))
	}
	return ae
}

func TestDisconnect(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	var banned sync.Map
	srv, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root},
		Authorize: func(_ context.Context, p Peer) error {
			if _, ok := banned.Load(p.ID); ok && p.HasID {
				return errors.New("banned")
			}
			return nil
		}})
	ctx := context.Background()
	memberID, memberCrt := memberCert(t, []byte("m"))
	_, otherCrt := memberCert(t, []byte("o"))
	member := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &memberCrt })
	member2 := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &memberCrt })
	other := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &otherCrt })
	anon := newClient(t, s.pub, nil)
	for _, c := range []*Client{member, member2, other, anon} {
		if _, err := c.Root(ctx, addr); err != nil {
			t.Fatal(err)
		}
	}
	first, otherConn := member.pooled(addr), other.pooled(addr)

	if n := srv.Disconnect(memberID); n != 2 {
		t.Fatalf("Disconnect closed %d connections, want the member's 2", n)
	}
	for _, conn := range []*quic.Conn{first, member2.pooled(addr)} {
		if ae := closedBy(t, conn); ae.ErrorCode != codeRefused || ae.ErrorMessage != "banned" || !ae.Remote {
			t.Errorf("closed with %v, want code %d \"banned\" from the server", ae, codeRefused)
		}
	}
	// Nobody else is touched.
	if _, err := other.Root(ctx, addr); err != nil || other.pooled(addr) != otherConn {
		t.Fatalf("another node lost its connection: %v", err)
	}
	if _, err := anon.Root(ctx, addr); err != nil {
		t.Fatalf("an anonymous client lost its connection: %v", err)
	}
	if n := srv.Disconnect(tree.PublicKeyOf(newNodeKey(t))); n != 0 {
		t.Errorf("Disconnect of a stranger closed %d", n)
	}

	// Not banned, only disconnected: the next request dials again.
	if _, err := member.Root(ctx, addr); err != nil {
		t.Fatalf("after Disconnect: %v", err)
	}
	if member.pooled(addr) == first {
		t.Fatal("the request went out on the closed connection")
	}

	// Banned: Authorize refuses the new connection, Disconnect the
	// open one.
	banned.Store(memberID, true)
	if n := srv.Disconnect(memberID); n != 1 {
		t.Fatalf("Disconnect closed %d connections, want 1", n)
	}
	closedBy(t, member.pooled(addr))
	_, err := member.Root(ctx, addr)
	if ae, ok := errors.AsType[*quic.ApplicationError](err); !ok || ae.ErrorCode != codeRefused {
		t.Fatalf("a banned node's request: %v, want refused", err)
	}
	if errors.Is(err, ErrBadPeer) {
		t.Errorf("a refusal is not bad data: %v", err)
	}

	// The server forgets connections as they end.
	for _, c := range []*Client{member, member2, other, anon} {
		c.Close()
	}
	waitFor(t, 5*time.Second, "the server to forget closed connections", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.byID) == 0
	})
}

// TestDisconnectRace: Disconnect while connections come and go, for the
// race detector.
func TestDisconnectRace(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	srv, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	id, crt := memberCert(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 4 {
		c := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &crt })
		wg.Go(func() {
			for i := 0; i < 20 && ctx.Err() == nil; i++ {
				if _, err := c.Root(ctx, addr); err == nil {
					ok.Add(1)
				}
				if i%3 == 0 {
					c.DropPeer(addr)
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			srv.Disconnect(id)
			time.Sleep(2 * time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	if ok.Load() == 0 {
		t.Error("no request got through at all")
	}
}

func TestVerifyServer(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	serverKey := newNodeKey(t)
	serverID := tree.PublicKeyOf(serverKey)
	serverCred := []byte("the server's membership credential")
	crt, err := CertificateWithCredential(serverKey, serverCred)
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := startServer(t, ServerConfig{Identity: crt, Store: s.store, Roots: &rootList{s.root}})
	ctx := context.Background()

	type seen struct {
		id   NodeID
		cred []byte
	}
	var mu sync.Mutex
	var calls []seen
	c := newClient(t, s.pub, func(cfg *ClientConfig) {
		cfg.VerifyServer = func(id NodeID, cred []byte) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, seen{id, cred})
			if id != serverID || !bytes.Equal(cred, serverCred) {
				return errors.New("not a member")
			}
			return nil
		}
	})
	ncalls := func() int { mu.Lock(); defer mu.Unlock(); return len(calls) }
	tickets := watchTickets(c)
	for range 2 {
		if _, err := c.Root(ctx, addr); err != nil {
			t.Fatalf("a server that passes: %v", err)
		}
	}
	if n := ncalls(); n != 1 {
		t.Fatalf("VerifyServer called %d times for one connection", n)
	}
	// A resumed connection is judged again, with the same credential.
	waitFor(t, 5*time.Second, "a session ticket", func() bool { return tickets.tickets(addr) > 0 })
	first := c.pooled(addr)
	c.DropPeer(addr)
	if c.pooled(addr) != nil || first.Context().Err() == nil {
		t.Fatal("DropPeer left the connection open")
	}
	if _, err := c.Root(ctx, addr); err != nil {
		t.Fatalf("after DropPeer: %v", err)
	}
	mu.Lock()
	if len(calls) != 2 || calls[1].id != serverID || !bytes.Equal(calls[1].cred, serverCred) {
		t.Errorf("VerifyServer saw %+v", calls)
	}
	mu.Unlock()
	if !c.pooled(addr).ConnectionState().TLS.DidResume {
		t.Log("the second connection did not resume; the credential came from a full handshake")
	}

	// Refused: no request reaches the server, nothing is pooled, and
	// the error blames the server.
	plain, plainAddr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	var sawCred []byte
	var sawCalled bool
	refusing := newClient(t, s.pub, func(cfg *ClientConfig) {
		cfg.VerifyServer = func(id NodeID, cred []byte) error {
			sawCalled, sawCred = true, cred
			return errors.New("banned node")
		}
	})
	for _, call := range []func() error{
		func() error { _, err := refusing.Root(ctx, plainAddr); return err },
		func() error {
			_, err := refusing.Lookup(ctx, plainAddr, nil, tree.MustParsePath("a.txt"), 0)
			return err
		},
		func() error { _, err := refusing.Roots(ctx, plainAddr, 0, 1); return err },
		func() error { _, err := refusing.Enroll(ctx, plainAddr, []byte("t")); return err },
	} {
		err := call()
		checkBadPeer(t, err, plainAddr)
		if !strings.Contains(err.Error(), "banned node") {
			t.Errorf("the reason is lost: %v", err)
		}
	}
	if !sawCalled || sawCred != nil {
		t.Errorf("VerifyServer called %v with credential %q, want nil from a plain certificate", sawCalled, sawCred)
	}
	if refusing.pooled(plainAddr) != nil {
		t.Error("a refused connection was pooled")
	}
	if n := plain.Stats().Requests; n != 0 {
		t.Errorf("%d requests reached a refused server", n)
	}
	_ = srv
}

func TestCredentialCertificate(t *testing.T) {
	key := newNodeKey(t)
	id := tree.PublicKeyOf(key)
	for _, cred := range [][]byte{nil, {}, {0}, []byte("x"), bytes.Repeat([]byte{0xAB}, MaxCredentialSize)} {
		crt, err := CertificateWithCredential(key, cred)
		if err != nil {
			t.Fatalf("credential of %d bytes: %v", len(cred), err)
		}
		if err := verifyAnyNodeCert(crt.Certificate, nil); err != nil {
			t.Fatalf("credential of %d bytes: the handshake would refuse it: %v", len(cred), err)
		}
		// As the peer sees it: parsed from the DER.
		leaf, err := x509.ParseCertificate(crt.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		got := PeerCredential(cs)
		if !bytes.Equal(got, cred) || (got == nil) != (len(cred) == 0) {
			t.Fatalf("credential of %d bytes came back as %d bytes (nil %v)", len(cred), len(got), got == nil)
		}
		if pid, err := PeerID(cs); err != nil || pid != id {
			t.Fatalf("PeerID: %v, %v", pid, err)
		}
		for _, ext := range leaf.Extensions {
			if ext.Id.Equal(oidCredential) && ext.Critical {
				t.Fatal("the credential extension is critical")
			}
		}
	}
	if _, err := CertificateWithCredential(key, make([]byte, MaxCredentialSize+1)); err == nil || !strings.Contains(err.Error(), "MaxCredentialSize") {
		t.Fatalf("an oversized credential: %v", err)
	}
	plain, err := Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	if got := PeerCredential(tls.ConnectionState{PeerCertificates: []*x509.Certificate{plain.Leaf}}); got != nil {
		t.Fatalf("a plain certificate has credential %q", got)
	}
	if got := PeerCredential(tls.ConnectionState{}); got != nil {
		t.Fatalf("no certificate, credential %q", got)
	}
	if _, err := CertificateWithCredential(ed25519.PrivateKey{1, 2, 3}, nil); err == nil {
		t.Fatal("a short key made a certificate")
	}
	if oidCredential.String() != "1.3.6.1.4.1.59999.7433.1" {
		t.Fatalf("the credential OID is %v", oidCredential)
	}

	// Certificates whose credential extension is not what we write: the
	// handshake refuses them, and PeerCredential reads nothing.
	octets := func(n int) []byte { b, _ := asn1.Marshal(make([]byte, n)); return b }
	integer, _ := asn1.Marshal(42)
	for name, val := range map[string][]byte{
		"raw-bytes":   []byte("not DER at all"),
		"integer":     integer,
		"trailing":    append(octets(4), 0),
		"over-limit":  octets(MaxCredentialSize + 1),
		"far-over":    octets(64 << 10),
		"cut-short":   octets(100)[:50],
		"empty-value": {},
	} {
		t.Run(name, func(t *testing.T) {
			der := rawCertWith(t, key, pkix.Extension{Id: oidCredential, Value: val})
			if err := verifyAnyNodeCert([][]byte{der}, nil); err == nil {
				t.Error("the handshake would accept it")
			}
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if got := PeerCredential(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); got != nil {
				t.Errorf("PeerCredential read %d bytes", len(got))
			}
		})
	}
}

// rawCertWith makes a node certificate for key with ext as it is.
func rawCertWith(t *testing.T, key ed25519.PrivateKey, ext pkix.Extension) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(1),
		Subject:         pkix.Name{CommonName: "test"},
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{ext},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestTLSCert: GetTLSCert reaches the hook with the peer the handshake
// proved and its request; the hook's chain comes back; refusals keep
// their codes; a server without the hook answers BadRequest.
func TestTLSCert(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	cred := []byte("a site-signed node certificate, opaque to the transport")
	memberID, memberCrt := memberCert(t, cred)
	_, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root},
		TLSCert: func(ctx context.Context, p Peer, req []byte) ([]byte, error) {
			if fromCtx, ok := PeerFromContext(ctx); !ok || fromCtx.ID != p.ID {
				return nil, errors.New("no peer in the request context")
			}
			switch {
			case !p.HasID || p.ID != memberID || !bytes.Equal(p.Credential, cred):
				return nil, fmt.Errorf("%w: not a member", proto.ErrUnauthorized)
			case string(req) == "huge":
				return make([]byte, proto.MaxTLSCertSize+1), nil
			}
			return []byte("chain for " + string(req)), nil
		},
	})
	member := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &memberCrt })
	_, strangerCrt := memberCert(t, nil)
	stranger := newClient(t, s.pub, func(cfg *ClientConfig) { cfg.Identity = &strangerCrt })
	ctx := context.Background()
	chain, err := member.TLSCert(ctx, addr, []byte("csr"))
	if err != nil || string(chain) != "chain for csr" {
		t.Fatalf("TLSCert: %q, %v", chain, err)
	}
	_, err = stranger.TLSCert(ctx, addr, []byte("csr"))
	checkHonestFailure(t, err, addr, proto.ErrUnauthorized)
	_, err = member.TLSCert(ctx, addr, []byte("huge"))
	checkHonestFailure(t, err, addr, proto.ErrInternal)
	if _, err := member.TLSCert(ctx, addr, make([]byte, proto.MaxTLSCertRequestSize+1)); err == nil || !strings.Contains(err.Error(), "MaxTLSCertRequestSize") {
		t.Errorf("a request over the limit: %v", err)
	}

	_, bare := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	_, err = member.TLSCert(ctx, bare, []byte("csr"))
	checkHonestFailure(t, err, bare, proto.ErrBadRequest)
}

// A request bound to a node (ExpectNode) goes only to a server that
// proved that node's key: an address advertised by one node and served
// by another is refused, and the connection stays good for requests
// bound to the node that is really there.
func TestExpectNode(t *testing.T) {
	s := newSite(t, map[string][]byte{"a.txt": []byte("a")})
	serverKey := newNodeKey(t)
	serverID := tree.PublicKeyOf(serverKey)
	crt, err := Certificate(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, ServerConfig{Identity: crt, Store: s.store, Roots: &rootList{s.root}})
	ctx := context.Background()
	c := newClient(t, s.pub, nil)
	other := tree.PublicKeyOf(newNodeKey(t))
	chunk := s.chunkHashes(t, "a.txt")[0]
	for name, call := range map[string]func(context.Context) error{
		"Root":     func(ctx context.Context) error { _, err := c.Root(ctx, addr); return err },
		"Roots":    func(ctx context.Context) error { _, err := c.Roots(ctx, addr, 0, 1); return err },
		"GetBlock": func(ctx context.Context) error { _, err := c.GetBlock(ctx, addr, chunk); return err },
	} {
		err := call(ExpectNode(ctx, other))
		checkBadPeer(t, err, addr)
		var pe *PeerError
		if errors.As(err, &pe) && pe.Cause != BadIdentity {
			t.Errorf("%s for another node: cause %v, want BadIdentity", name, pe.Cause)
		}
		if err := call(ExpectNode(ctx, serverID)); err != nil {
			t.Errorf("%s for the node there: %v", name, err)
		}
		if err := call(ctx); err != nil {
			t.Errorf("%s unbound: %v", name, err)
		}
	}
	if n := c.Stats().Bad[BadIdentity]; n != 3 {
		t.Errorf("%d requests counted as refused identities, want 3", n)
	}
}

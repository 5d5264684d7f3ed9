package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
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
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(nil)
	s := &site{key: key, pub: tree.PublicKeyOf(key), store: blockstore.NewMem(-1), files: files}
	b := &tree.Builder{Store: s.store}
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
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
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

// memWriter is an io.WriterAt into memory.
type memWriter struct{ b []byte }

func (m *memWriter) WriteAt(p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}

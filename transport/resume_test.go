package transport

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// recordingCache is a TLS session cache that says when a ticket arrives,
// so a test can wait for it instead of sleeping.
type recordingCache struct {
	tls.ClientSessionCache
	mu  sync.Mutex
	put map[string]int
}

func (r *recordingCache) Put(key string, cs *tls.ClientSessionState) {
	r.mu.Lock()
	r.put[key]++
	r.mu.Unlock()
	r.ClientSessionCache.Put(key, cs)
}

func (r *recordingCache) tickets(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.put[key]
}

func watchTickets(c *Client) *recordingCache {
	rc := &recordingCache{ClientSessionCache: c.tlsc.ClientSessionCache, put: map[string]int{}}
	c.tlsc.ClientSessionCache = rc
	return rc
}

// pooled returns the client's pooled connection to peer, or nil.
func (c *Client) pooled(peer string) *quic.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns[peer]
}

// TestSessionResumption: a client that has talked to a server once
// resumes the TLS session on its next connection (no certificate
// signatures), without sending anything in 0-RTT data.
func TestSessionResumption(t *testing.T) {
	s := newSite(t, map[string][]byte{"index.html": []byte("<h1>hello</h1>")})
	_, addr := startServer(t, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	c := newClient(t, s.pub, nil)
	tickets := watchTickets(c)
	ctx := context.Background()
	p := tree.MustParsePath("index.html")

	if _, err := c.Lookup(ctx, addr, nil, p, proto.InlineMax); err != nil {
		t.Fatal(err)
	}
	first := c.pooled(addr)
	if first.ConnectionState().TLS.DidResume {
		t.Fatal("the first connection claims to resume a session without a ticket")
	}
	waitFor(t, 5*time.Second, "a session ticket", func() bool { return tickets.tickets(addr) > 0 })
	c.drop(addr, first)

	r, err := c.Lookup(ctx, addr, nil, p, proto.InlineMax)
	if err != nil {
		t.Fatal(err)
	}
	if !r.HasInline || string(r.Inline) != "<h1>hello</h1>" {
		t.Fatalf("second lookup: inline %v %q", r.HasInline, r.Inline)
	}
	second := c.pooled(addr)
	if second == nil || second == first {
		t.Fatal("the second lookup did not dial a new connection")
	}
	if !second.ConnectionState().TLS.DidResume {
		t.Fatal("the second connection did not resume the session")
	}
	if second.ConnectionState().Used0RTT {
		t.Fatal("the second connection sent 0-RTT data")
	}
}

// TestResumptionAfterServerRestart: after the server restarts (new
// session ticket keys) the client's ticket is useless; its connection
// falls back to a full handshake and the requests succeed.
func TestResumptionAfterServerRestart(t *testing.T) {
	s := newSite(t, map[string][]byte{"index.html": []byte("<h1>hello</h1>")})
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	serve := func(pc net.PacketConn) (stop func()) {
		srv, err := NewServer(ServerConfig{Identity: newCert(t), Store: s.store, Roots: &rootList{s.root}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, pc) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			pc.Close()
		}
	}
	stop := serve(pc)
	c := newClient(t, s.pub, nil)
	tickets := watchTickets(c)
	ctx := context.Background()
	p := tree.MustParsePath("index.html")
	if _, err := c.Lookup(ctx, addr, nil, p, proto.InlineMax); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a session ticket", func() bool { return tickets.tickets(addr) > 0 })
	c.drop(addr, c.pooled(addr))
	stop()

	// The same address, a new server process: the old ticket is useless.
	pc2, err := net.ListenUDP("udp", pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	stop = serve(pc2)
	defer stop()
	defer c.Close() // before the server stops: it waits for open connections
	for i := range 3 {
		if _, err := c.Lookup(ctx, addr, nil, p, proto.InlineMax); err != nil {
			t.Errorf("lookup %d after the restart: %v", i, err)
		}
	}
}

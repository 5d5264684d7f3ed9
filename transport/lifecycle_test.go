package transport

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/grits-cdn/grits/tree"
)

// TestServeStopsPromptly: with no request in flight, Serve returns soon
// after its context ends, even while clients keep idle connections open.
func TestServeStopsPromptly(t *testing.T) {
	s := newSite(t, map[string][]byte{"index.html": []byte("<h1>hello</h1>")})
	srv, err := NewServer(ServerConfig{Identity: newCert(t), Store: s.store, Roots: &rootList{s.root}})
	if err != nil {
		t.Fatal(err)
	}
	pc := listenLoopback(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc) }()
	c := newClient(t, s.pub, nil)
	if _, err := c.Root(context.Background(), pc.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Serve took %v to stop with only an idle connection open", took)
	}
	// The client learns of the shutdown rather than timing out.
	waitFor(t, 5*time.Second, "the client's connection to close", func() bool {
		conn := c.pooled(pc.LocalAddr().String())
		return conn == nil || conn.Context().Err() != nil
	})
}

// TestIPv6Loopback: a server on [::1] serves the client, whose socket is
// dual-stack.
func TestIPv6Loopback(t *testing.T) {
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	s := newSite(t, map[string][]byte{"page.bin": randomBytes(100<<10, 1)})
	_, addr := serveOn(t, ServerConfig{Identity: newCert(t), Store: s.store, Roots: &rootList{s.root}}, pc)
	c := newClient(t, s.pub, nil)
	r, err := c.Lookup(context.Background(), addr, nil, tree.MustParsePath("page.bin"), 0)
	if err != nil {
		t.Fatal(err)
	}
	var w memWriter
	if _, err := c.FetchFile(context.Background(), []string{addr}, r.Node.(*tree.FileNode), &w, FetchOptions{}); err != nil || !bytes.Equal(w.b, s.files["page.bin"]) {
		t.Fatalf("FetchFile over IPv6: %v", err)
	}
	c.Close() // before Serve stops: it waits for open connections
}

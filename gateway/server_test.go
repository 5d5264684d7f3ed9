package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

const srvTestBody = "hello from grits"

type srvTestServer struct {
	s      *Server
	pool   *x509.CertPool
	port   string
	url    string
	cancel context.CancelFunc
	done   chan error
}

// srvTestStart serves h on 127.0.0.1 with a dev CA certificate; the
// cleanup stops it and checks Serve returned nil.
func srvTestStart(t testing.TB, h http.Handler, mod func(*ServerConfig)) *srvTestServer {
	t.Helper()
	ca, err := CreateDevCA(t.TempDir(), "server test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, srvTestBody)
		})
	}
	cfg := ServerConfig{
		Addr:    "127.0.0.1:0",
		Handler: h,
		TLS:     TLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		HTTP2:   *testHTTP2,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.Addr())
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &srvTestServer{s: s, pool: pool, port: port, url: "https://127.0.0.1:" + port + "/", cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		ts.cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return ts
}

func (ts *srvTestServer) h2Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ts.pool},
		ForceAttemptHTTP2: true,
	}}
}

func (ts *srvTestServer) h1Client() *http.Client {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ts.pool},
		Protocols:       p,
	}}
}

func srvTestGet(t *testing.T, c *http.Client, url string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestServerProtocols(t *testing.T) {
	ts := srvTestStart(t, nil, nil)
	if got := ts.s.udp.LocalAddr().(*net.UDPAddr).Port; fmt.Sprint(got) != ts.port {
		t.Fatalf("udp port %d, tcp port %s", got, ts.port)
	}
	wantAltSvc := fmt.Sprintf(`h3=":%s"; ma=86400`, ts.port)

	h2 := ts.h2Client()
	defer h2.CloseIdleConnections()
	resp, body := srvTestGet(t, h2, ts.url, nil)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || body != srvTestBody {
		t.Errorf("h2: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	if got := resp.Header.Get("Alt-Svc"); got != wantAltSvc {
		t.Errorf("Alt-Svc %q, want %q", got, wantAltSvc)
	}

	h1 := ts.h1Client()
	defer h1.CloseIdleConnections()
	resp, body = srvTestGet(t, h1, ts.url, nil)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" || body != srvTestBody {
		t.Errorf("h1: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	if got := resp.Header.Get("Alt-Svc"); got != wantAltSvc {
		t.Errorf("h1 Alt-Svc %q, want %q", got, wantAltSvc)
	}

	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.pool}}
	defer tr.Close()
	resp, body = srvTestGet(t, &http.Client{Transport: tr}, ts.url, nil)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/3.0" || body != srvTestBody {
		t.Errorf("h3: %d %s %q", resp.StatusCode, resp.Proto, body)
	}

	// The dev CA's certificate names localhost too.
	if resp, _ = srvTestGet(t, h2, "https://localhost:"+ts.port+"/", nil); resp.StatusCode != 200 {
		t.Errorf("localhost: %d", resp.StatusCode)
	}
}

func TestServerListenErrors(t *testing.T) {
	ca, _ := CreateDevCA(t.TempDir(), "x")
	cert, _ := ca.Issue(nil, time.Hour)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	h := http.NotFoundHandler()
	if _, err := Listen(ServerConfig{Addr: "127.0.0.1:0", TLS: tlsConf}); err == nil {
		t.Error("no handler accepted")
	}
	if _, err := Listen(ServerConfig{Addr: "127.0.0.1:0", Handler: h, TLS: &tls.Config{}}); err == nil {
		t.Error("TLS without certificates accepted")
	}
	if _, err := Listen(ServerConfig{Addr: "127.0.0.1", Handler: h, TLS: tlsConf}); err == nil {
		t.Error("address without port accepted")
	}
	// A port in use for TCP is refused; Close frees an unserved server.
	s, err := Listen(ServerConfig{Addr: "127.0.0.1:0", Handler: h, TLS: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(ServerConfig{Addr: s.Addr(), Handler: h, TLS: tlsConf}); err == nil {
		t.Error("second Listen on the same port succeeded")
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	s2, err := Listen(ServerConfig{Addr: s.Addr(), Handler: h, TLS: tlsConf})
	if err != nil {
		t.Fatalf("port not released by Close: %v", err)
	}
	s2.Close()
}

// TestServerHostile: thousands of idle connections and a slowloris do not
// keep a well-behaved client from being served, and the server sheds
// them by its timeouts.
func TestServerHostile(t *testing.T) {
	ts := srvTestStart(t, nil, func(c *ServerConfig) {
		c.MaxConnsPerIP = 5000 // every test client is 127.0.0.1
		c.ReadHeaderTimeout = 2 * time.Second
	})
	addr := ts.s.Addr()

	const idle = 2000
	conns := make([]net.Conn, 0, idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	d := net.Dialer{Timeout: 10 * time.Second}
	for range idle {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}

	slow, err := tls.DialWithDialer(&d, "tcp", addr, &tls.Config{RootCAs: ts.pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaa"); err != nil {
		t.Fatal(err)
	}

	h2 := ts.h2Client()
	defer h2.CloseIdleConnections()
	resp, body := srvTestGet(t, h2, ts.url, nil)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || body != srvTestBody {
		t.Errorf("h2 under load: %d %s %q", resp.StatusCode, resp.Proto, body)
	}

	// ReadHeaderTimeout closes the slowloris and the never-handshaking
	// connections.
	for _, c := range []net.Conn{slow, conns[0], conns[idle-1]} {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("connection not closed by the server: %v", err)
		}
	}
}

func TestServerMaxHeaderBytes(t *testing.T) {
	const limit = 8 << 10
	ts := srvTestStart(t, nil, func(c *ServerConfig) { c.MaxHeaderBytes = limit })
	h1 := ts.h1Client()
	defer h1.CloseIdleConnections()

	resp, _ := srvTestGet(t, h1, ts.url, http.Header{"X-Small": {"ok"}})
	if resp.StatusCode != 200 {
		t.Errorf("small header: %d", resp.StatusCode)
	}
	// Go's server allows 4 KiB of slack beyond MaxHeaderBytes.
	resp, _ = srvTestGet(t, h1, ts.url, http.Header{"X-Big": {strings.Repeat("a", 3*limit)}})
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("big header: %d, want 431", resp.StatusCode)
	}
}

func TestServerConnsPerIP(t *testing.T) {
	const limit = 3
	ts := srvTestStart(t, nil, func(c *ServerConfig) { c.MaxConnsPerIP = limit })
	addr := ts.s.Addr()

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range limit {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	srvTestWaitCount(t, ts.s, held[0].LocalAddr(), limit)

	extra, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Error("read from connection over the cap succeeded")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("connection over the cap was not closed")
	}
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("connection under the cap closed: %v", err)
		}
		c.SetReadDeadline(time.Time{})
	}
	if n := ts.s.tcp.count(held[0].LocalAddr()); n != limit {
		t.Errorf("count %d, want %d", n, limit)
	}

	// Freeing a slot lets a real client in.
	held[0].Close()
	held = held[1:]
	srvTestWaitCount(t, ts.s, held[0].LocalAddr(), limit-1)
	h1 := ts.h1Client()
	resp, body := srvTestGet(t, h1, ts.url, nil)
	if resp.StatusCode != 200 || body != srvTestBody {
		t.Errorf("client within the cap: %d %q", resp.StatusCode, body)
	}
	h1.CloseIdleConnections()
	for _, c := range held {
		c.Close()
	}
	held = nil
	srvTestWaitCount(t, ts.s, extra.LocalAddr(), 0)
}

func srvTestWaitCount(t *testing.T, s *Server, addr net.Addr, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := s.tcp.count(addr)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection count %d, want %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerIPLimitCloseOnce(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newIPLimitListener(inner, 10, 0, slog.Default())
	defer l.Close()
	var clients, servers []net.Conn
	defer func() {
		for _, c := range append(clients, servers...) {
			c.Close()
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, sc)
	}
	key := servers[0].RemoteAddr()
	if n := l.count(key); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
	servers[0].Close()
	servers[0].Close()
	if n := l.count(key); n != 1 {
		t.Errorf("after double close: count %d, want 1", n)
	}
	servers[1].Close()
	if n := l.count(key); n != 0 || len(l.counts) != 0 {
		t.Errorf("after closing all: count %d, map %v", n, l.counts)
	}
}

func TestServerGracefulShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, srvTestBody)
	})
	ts := srvTestStart(t, h, nil)
	h2 := ts.h2Client()
	defer h2.CloseIdleConnections()

	type result struct {
		status int
		body   string
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := h2.Get(ts.url + "slow")
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{resp.StatusCode, string(b), err}
	}()
	<-started
	ts.cancel()
	select {
	case err := <-ts.done:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	r := <-resc
	if r.err != nil || r.status != 200 || r.body != srvTestBody {
		t.Errorf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
	// The port is free again.
	if c, err := net.DialTimeout("tcp", ts.s.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("still accepting after shutdown")
	}
}

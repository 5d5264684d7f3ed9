package main_test

// Slow clients against the origin's proxy: a client that drips a request
// body, or that stops reading a response, must not hold the app behind
// gritsd serve --upstream for longer than the node's timeouts, over
// HTTP/1.1, HTTP/2 and HTTP/3; paths under --proxy-prefix are rate
// limited like the rest; the app sees the site's name as Host, whatever
// the client wrote. A real gritsd, a real app server, and clients written
// here that misbehave on purpose.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// slowRelease bounds how long the app may stay held once a client
// misbehaves: the node's timeouts in this test are 1 s; the rest is
// margin for a loaded machine.
const slowRelease = 20 * time.Second

// slowApp is the app behind the proxy: /upload reads a whole body,
// /big writes until its client is gone, /api/ counts and echoes Host.
// Each handler reports how it ended on ended, keyed by the request's
// ?c= label.
type slowApp struct {
	srv   *httptest.Server
	ended chan slowEnd
	hits  atomic.Int64
	mu    sync.Mutex
	hosts []string
}

type slowEnd struct {
	label string
	err   error
	bytes int64
}

func newSlowApp(t *testing.T) *slowApp {
	a := &slowApp{ended: make(chan slowEnd, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		a.ended <- slowEnd{r.URL.Query().Get("c"), err, n}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		var n int64
		var err error
		for n < 1<<30 { // bounded: 1 GiB, far beyond every buffer on the way
			var k int
			k, err = w.Write(chunk)
			n += int64(k)
			if err != nil {
				break
			}
		}
		a.ended <- slowEnd{r.URL.Query().Get("c"), err, n}
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		a.mu.Lock()
		a.hosts = append(a.hosts, r.Host+" "+r.Header.Get("X-Forwarded-Host"))
		a.mu.Unlock()
		io.WriteString(w, "app")
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// waitEnded waits for the handler labelled label to return, and fails the
// test if it does not within slowRelease or ended without an error (the
// client never let it finish).
func (a *slowApp) waitEnded(t *testing.T, label string) {
	t.Helper()
	timeout := time.After(slowRelease)
	for {
		select {
		case e := <-a.ended:
			if e.label != label {
				continue // a handler of an earlier case ending late
			}
			if e.err == nil {
				t.Errorf("%s: the app's handler ended without an error after %d bytes: the misbehaving client finished?", label, e.bytes)
			}
			return
		case <-timeout:
			t.Fatalf("%s: the app's handler is still held by the slow client after %v", label, slowRelease)
		}
	}
}

// drip calls send every interval until stop closes, at most n times
// (bounded whatever happens), and closes the returned channel when done.
func drip(stop <-chan struct{}, n int, interval time.Duration, send func() error) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			if send() != nil {
				return
			}
		}
	}()
	return done
}

// rawH2 is a hand-driven HTTP/2 connection.
type rawH2 struct {
	tc   *tls.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

func dialRawH2(t *testing.T, addr string, pool *x509.CertPool) *rawH2 {
	t.Helper()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	if _, err := tc.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	c := &rawH2{tc: tc, fr: http2.NewFramer(tc, tc)}
	c.henc = hpack.NewEncoder(&c.hbuf)
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rawH2) request(id uint32, method, path string, length int, end bool) error {
	c.hbuf.Reset()
	fields := [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "127.0.0.1"}, {":path", path}}
	if length >= 0 {
		fields = append(fields, [2]string{"content-length", fmt.Sprint(length)})
	}
	for _, f := range fields {
		c.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: end, EndHeaders: true})
}

// rawH1 opens a TLS connection speaking HTTP/1.1 and sends head.
func rawH1(t *testing.T, addr string, pool *x509.CertPool, head string) *tls.Conn {
	t.Helper()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(2 * slowRelease))
	if _, err := io.WriteString(tc, head); err != nil {
		t.Fatal(err)
	}
	return tc
}

func TestSlowClientsDoNotHoldTheApp(t *testing.T) {
	t.Parallel()
	app := newSlowApp(t)
	d, _ := newOriginWithKey(t)
	d.importTree(t, newSource(t, []entry{{path: "index.html", data: []byte("<h1>tree</h1>")}}))
	d.setConfig(t, "http_write_timeout", `"1s"`)
	d.setConfig(t, "http_body_timeout", `"1s"`)
	srv := startServe(t, d, append(slices.Clone(gwGossip), "--upstream", app.srv.URL, "--proxy-prefix", "/api/", "--rate-limit", "5")...)
	addr, publicURL := gwHTTPS(t, srv)
	base := "https://" + addr
	pool := gwCAPool(t, d.path("ca.pem"))
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(func() { h3.Close() })
	const bodyLen = 100_000

	t.Run("h1-slow-body", func(t *testing.T) {
		tc := rawH1(t, addr, pool, fmt.Sprintf("POST /upload?c=h1-body HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", bodyLen))
		stop := make(chan struct{})
		done := drip(stop, 150, 200*time.Millisecond, func() error { _, err := tc.Write([]byte("x")); return err })
		defer func() { close(stop); <-done }()
		app.waitEnded(t, "h1-body")
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatalf("no answer to the dripped upload: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("dripped upload: %s, want 408", resp.Status)
		}
	})

	t.Run("h2-slow-body", func(t *testing.T) {
		c := dialRawH2(t, addr, pool)
		if err := c.request(1, http.MethodPost, "/upload?c=h2-body", bodyLen, false); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := drip(stop, 150, 200*time.Millisecond, func() error { return c.fr.WriteData(1, false, []byte("x")) })
		app.waitEnded(t, "h2-body")
		close(stop) // one writer on the framer at a time: the reader acknowledges SETTINGS
		<-done
		c.tc.SetReadDeadline(time.Now().Add(slowRelease))
		c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				t.Fatalf("no answer to the dripped upload: %v", err)
			}
			if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
				c.fr.WriteSettingsAck()
			}
			if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 1 {
				if got := h.PseudoValue("status"); got != "408" {
					t.Errorf("dripped upload: status %s, want 408", got)
				}
				return
			}
		}
	})

	t.Run("h3-slow-body", func(t *testing.T) {
		pr, pw := io.Pipe()
		stop := make(chan struct{})
		done := drip(stop, 150, 200*time.Millisecond, func() error { _, err := pw.Write([]byte("x")); return err })
		defer func() { close(stop); <-done; pw.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), slowRelease)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/upload?c=h3-body", pr)
		req.ContentLength = bodyLen
		answered := make(chan string, 1)
		go func() {
			resp, err := h3.RoundTrip(req)
			if err != nil {
				answered <- err.Error()
				return
			}
			resp.Body.Close()
			answered <- resp.Status
		}()
		app.waitEnded(t, "h3-body")
		select {
		case got := <-answered:
			if !strings.HasPrefix(got, "408") {
				t.Errorf("dripped upload: %s, want 408", got)
			}
		case <-ctx.Done():
			t.Errorf("no answer to the dripped upload")
		}
	})

	t.Run("h1-slow-read", func(t *testing.T) {
		rawH1(t, addr, pool, "GET /big?c=h1-read HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
		app.waitEnded(t, "h1-read")
	})

	t.Run("h2-slow-read", func(t *testing.T) {
		c := dialRawH2(t, addr, pool)
		if err := c.request(1, http.MethodGet, "/big?c=h2-read", -1, true); err != nil {
			t.Fatal(err)
		}
		app.waitEnded(t, "h2-read") // the socket is never read
	})

	t.Run("h3-slow-read", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/big?c=h3-read", nil)
		resp, err := h3.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close() // read nothing until the app gave up
		app.waitEnded(t, "h3-read")
	})

	t.Run("app-sees-the-site-name", func(t *testing.T) {
		tc := rawH1(t, addr, pool, "GET /api/host HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil.example\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if tao := resp.Header.Get("Timing-Allow-Origin"); tao != "" {
			t.Errorf("the app's answer carries Timing-Allow-Origin %q", tao)
		}
		pu, _ := url.Parse(publicURL)
		app.mu.Lock()
		hosts := slices.Clone(app.hosts)
		app.mu.Unlock()
		if want := pu.Host + " " + pu.Host; len(hosts) != 1 || hosts[0] != want {
			t.Errorf("the app saw Host and X-Forwarded-Host %q, want %q (the node's public name, not the client's)", hosts, want)
		}
	})

	// Last: it spends the client's budget.
	t.Run("proxy-prefix-rate-limited", func(t *testing.T) {
		c := gwNewH2(t, pool, nil)
		before := app.hits.Load()
		limited := 0
		start := time.Now()
		const n = 40
		for range n {
			resp, body, err := c.try(http.MethodGet, base+"/api/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			switch resp.StatusCode {
			case http.StatusTooManyRequests:
				limited++
			case http.StatusOK:
			default:
				t.Fatalf("GET /api/x: %s %q", resp.Status, body)
			}
		}
		reached := app.hits.Load() - before
		// A burst of 10 and 5 a second after it; the earlier cases took
		// a few tokens.
		allowed := 10 + int64(5*time.Since(start).Seconds()) + 1
		if limited == 0 || reached > allowed {
			t.Fatalf("%d of %d requests under --proxy-prefix reached the app in %v (%d limited); want at most %d with --rate-limit 5",
				reached, n, time.Since(start).Round(time.Millisecond), limited, allowed)
		}
	})
	if t.Failed() {
		return
	}
	// The node kept serving through all of it.
	resp, body, err := gwNewH2(t, pool, nil).try(http.MethodGet, base+"/index.html", nil)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	if resp != nil && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("GET /index.html after the slow clients: %s %q", resp.Status, body)
	}
}

package h2

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is an http.Server on loopback that hands h2 connections to
// an h2.Server, as the gateway does.
type testServer struct {
	URL    string
	h2     *Server
	hs     *http.Server
	pool   *x509.CertPool
	conns  atomic.Int64 // h2 connections served so far
	active atomic.Int64 // h2 connections open now
}

func newTestServer(t *testing.T, h http.Handler, tune func(*Server)) *testServer {
	t.Helper()
	cert, pool := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{URL: "https://" + ln.Addr().String(), pool: pool}
	ts.h2 = &Server{Handler: h, Logger: testLogger()}
	if tune != nil {
		tune(ts.h2)
	}
	next := ts.h2.TLSNextProto()
	ts.hs = &http.Server{
		Handler:   h,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){
			"h2": func(hs *http.Server, c *tls.Conn, h http.Handler) {
				ts.conns.Add(1)
				ts.active.Add(1)
				defer ts.active.Add(-1)
				next(hs, c, h)
			},
		},
	}
	ts.hs.RegisterOnShutdown(ts.h2.Shutdown)
	go ts.hs.ServeTLS(CorkListener(ln), "", "")
	t.Cleanup(func() { ts.hs.Close() })
	return ts
}

// client returns an HTTP/2 client for ts; tune adjusts its transport.
func (ts *testServer) client(t *testing.T, tune func(*http.Transport)) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ts.pool},
		ForceAttemptHTTP2: true,
		Protocols:         new(http.Protocols),
	}
	tr.Protocols.SetHTTP2(true)
	if tune != nil {
		tune(tr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "h2 test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// pattern is n deterministic bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestResponses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if r.URL.Query().Get("cl") != "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		body := pattern(n)
		// Odd write sizes, so buffering and frame boundaries do not line
		// up with the writes.
		for len(body) > 0 {
			k := min(len(body), 7777)
			if _, err := w.Write(body[:k]); err != nil {
				return
			}
			body = body[k:]
		}
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!doctype html><title>x</title>")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrBodyNotAllowed) {
			t.Errorf("write after 204: %v, want ErrBodyNotAllowed", err)
		}
	})
	mux.HandleFunc("/overlong", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		if _, err := w.Write([]byte("abcd")); !errors.Is(err, http.ErrContentLength) {
			t.Errorf("writing past Content-Length: %v, want ErrContentLength", err)
		}
		w.Write([]byte("abc"))
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // hop-by-hop: must not be sent
		w.Header().Set("X-Big", strings.Repeat("v", 40000))
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.Header().Set("X-Bad", "line\r\nbreak") // invalid: dropped
		fmt.Fprintf(w, "%s %s %s %s", r.Method, r.Host, r.Header.Get("Cookie"), r.Proto)
	})
	ts := newTestServer(t, mux, nil)

	// A small client receive window makes the server wait for window
	// updates on both the stream and the connection.
	small := ts.client(t, func(tr *http.Transport) {
		tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 64 << 10}
	})
	big := ts.client(t, nil)

	sizes := []int{0, 1, 100, 16383, 16384, 16385, 65535, 65536, 200000, 3 << 20}
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"small-window", small}, {"default-window", big}} {
		for _, n := range sizes {
			for _, cl := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%d/cl=%v", c.name, n, cl), func(t *testing.T) {
					url := ts.URL + "/bytes/" + strconv.Itoa(n)
					if cl {
						url += "?cl=1"
					}
					resp, err := c.client.Get(url)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					if resp.ProtoMajor != 2 {
						t.Fatalf("proto %s", resp.Proto)
					}
					if !bytes.Equal(body, pattern(n)) {
						t.Fatalf("body: %d bytes, differs from the %d sent", len(body), n)
					}
					// Known lengths are declared: by the handler, or by the
					// server when the body fits its buffer.
					if (cl || n <= respBufSize) && resp.ContentLength != int64(n) {
						t.Errorf("Content-Length %d, want %d", resp.ContentLength, n)
					}
					if resp.Header.Get("Date") == "" {
						t.Error("no Date header")
					}
				})
			}
		}
	}

	t.Run("sniffed-type", func(t *testing.T) {
		resp, err := big.Get(ts.URL + "/html")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type %q, want text/html", ct)
		}
	})
	t.Run("204", func(t *testing.T) {
		resp, err := big.Get(ts.URL + "/empty")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Errorf("status %d, %d body bytes", resp.StatusCode, len(body))
		}
	})
	t.Run("content-length-kept", func(t *testing.T) {
		resp, err := big.Get(ts.URL + "/overlong")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "abc" {
			t.Errorf("body %q, %v", body, err)
		}
	})
	t.Run("headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", ts.URL+"/headers", nil)
		req.AddCookie(&http.Cookie{Name: "a", Value: "1"})
		req.AddCookie(&http.Cookie{Name: "b", Value: "2"})
		resp, err := big.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		host := strings.TrimPrefix(ts.URL, "https://")
		if want := "GET " + host + " a=1; b=2 HTTP/2.0"; string(body) != want {
			t.Errorf("request seen as %q, want %q", body, want)
		}
		if len(resp.Header.Get("X-Big")) != 40000 {
			t.Errorf("X-Big: %d bytes, want 40000 (a header block over CONTINUATION frames)", len(resp.Header.Get("X-Big")))
		}
		if got := resp.Header.Values("X-Multi"); len(got) != 2 {
			t.Errorf("X-Multi %q", got)
		}
		if resp.Header.Get("Connection") != "" || resp.Header.Get("X-Bad") != "" {
			t.Errorf("hop-by-hop or invalid header sent: %v", resp.Header)
		}
	})
}

func TestHEAD(t *testing.T) {
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.Write([]byte("hello"))
	}), nil)
	resp, err := ts.client(t, nil).Head(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ContentLength != 5 || len(body) != 0 {
		t.Errorf("HEAD: Content-Length %d, %d body bytes; want 5 and none", resp.ContentLength, len(body))
	}
}

func TestRequestBodies(t *testing.T) {
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %x %d", n, h.Sum(nil), r.ContentLength)
	}), nil)
	client := ts.client(t, nil)
	for _, n := range []int{0, 1, 16384, 300 << 10, 5 << 20} {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d/known=%v", n, known), func(t *testing.T) {
				data := pattern(n)
				var body io.Reader = bytes.NewReader(data)
				if !known {
					body = io.MultiReader(body) // hides the length
				}
				req, _ := http.NewRequest("POST", ts.URL+"/", body)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				wantLen := int64(n)
				if !known {
					wantLen = -1
				}
				want := fmt.Sprintf("%d %x %d", n, sha256.Sum256(data), wantLen)
				if string(got) != want {
					t.Errorf("server saw %q, want %q", got, want)
				}
			})
		}
	}
}

// TestManyStreams runs more requests at once than the stream limit on
// one connection, in both directions' flow control at once.
func TestManyStreams(t *testing.T) {
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		io.Copy(io.Discard, r.Body)
		w.Write(pattern(n))
	}), nil)
	// (Not StrictMaxConcurrentRequests: Go's client can deadlock itself
	// with it when more requests than the limit start at once, counting
	// the reservations of requests queued behind the one that waits.)
	client := ts.client(t, nil)
	// One request first: concurrent first requests would each dial.
	if resp, err := client.Get(ts.URL + "/?n=1"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	var wg sync.WaitGroup
	const requests = 2*defaultMaxStreams + 50
	errs := make(chan error, requests)
	for i := range requests {
		wg.Go(func() {
			n := (i * 9973) % (256 << 10)
			req, _ := http.NewRequest("POST", fmt.Sprintf("%s/?n=%d", ts.URL, n), bytes.NewReader(pattern(i*100)))
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(body, pattern(n)) {
				errs <- fmt.Errorf("request %d: %d bytes, %v", i, len(body), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClientCancelStopsHandler(t *testing.T) {
	canceled := make(chan struct{})
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			w.Write([]byte("ok"))
			return
		}
		chunk := pattern(32 << 10)
		for {
			if _, err := w.Write(chunk); err != nil {
				break
			}
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
		close(canceled)
	}), nil)
	client := ts.client(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/stream", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("handler still writing 10s after the client reset its stream")
	}
	resp, err = client.Get(ts.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" || ts.conns.Load() != 1 {
		t.Errorf("after the reset: %q over %d connections, want ok over 1", body, ts.conns.Load())
	}
}

func TestHandlerPanic(t *testing.T) {
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.Write([]byte("ok"))
	}), nil)
	client := ts.client(t, nil)
	resp, err := client.Get(ts.URL + "/panic")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("a panicking handler's response read as complete")
	}
	resp, err = client.Get(ts.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("after a panic: %q", body)
	}
}

func TestTrailersAndFlush(t *testing.T) {
	proceed := make(chan struct{})
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("first;"))
		w.(http.Flusher).Flush()
		<-proceed
		w.Write([]byte("second"))
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}), nil)
	resp, err := ts.client(t, nil).Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
		t.Fatalf("flushed part: %q, %v", first, err)
	}
	close(proceed)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
	if resp.StatusCode != http.StatusAccepted || resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
		t.Errorf("status %d, trailers %v", resp.StatusCode, resp.Trailer)
	}
}

func TestEarlyHintsAndContinue(t *testing.T) {
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}), nil)
	client := ts.client(t, func(tr *http.Transport) { tr.ExpectContinueTimeout = 5 * time.Second })
	var got []int
	trace := &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { got = append(got, code); return nil },
	}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", ts.URL+"/", strings.NewReader("body"))
	req.Header.Set("Expect", "100-continue")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "body" {
		t.Errorf("body %q", body)
	}
	if time.Since(start) > 4*time.Second {
		t.Error("the client waited out its 100-continue timeout: no 100 Continue sent")
	}
	if len(got) == 0 || got[0] != http.StatusEarlyHints {
		t.Errorf("1xx responses %v, want 103 first", got)
	}
}

func TestLargeRequestHeaders(t *testing.T) {
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}), func(s *Server) { s.MaxHeaderBytes = 8 << 10 })
	client := ts.client(t, nil)
	req, _ := http.NewRequest("GET", ts.URL+"/", nil)
	req.Header.Set("X-Huge", strings.Repeat("a", 12<<10))
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
	}
	// Either way the next request goes through.
	resp, err = client.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after: status %d", resp.StatusCode)
	}
}

func TestShutdownAndIdle(t *testing.T) {
	release := make(chan struct{})
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.Write([]byte("done"))
	}), func(s *Server) { s.IdleTimeout = 300 * time.Millisecond })
	client := ts.client(t, nil)

	// Idle: the connection closes by itself after IdleTimeout.
	resp, err := client.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, 5*time.Second, "idle connection closed", func() bool { return ts.active.Load() == 0 })

	// Shutdown: an in-flight request finishes, then the connection closes.
	result := make(chan string, 1)
	go func() {
		resp, err := client.Get(ts.URL + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(body)
	}()
	waitFor(t, 5*time.Second, "slow request in flight", func() bool { return ts.active.Load() == 1 })
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.hs.Shutdown(ctx) }()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if got := <-result; got != "done" {
		t.Errorf("in-flight request during shutdown: %q", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("H2_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

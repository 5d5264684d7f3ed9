package main_test

// Integration tests for the browser side of gritsd serve: HTTPS (HTTP/2)
// and HTTP/3 on one port, the grits/v1 HTTP API on every node, the site
// on the origin, the reverse proxy to an app server, hostile clients,
// and gritsd demo. Real processes, real sockets on the loopback
// interface; the clients trust the data directory's development CA.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/websocket"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// gwGossip are the serve flags every node of these tests gets: gossip on
// a random loopback port, fast timers.
var gwGossip = []string{"--gossip", "127.0.0.1:0", "--gossip-profile", "local"}

// gwRequestTimeout bounds one HTTP exchange of a test client.
const gwRequestTimeout = 30 * time.Second

var gwHTTPSLineRE = regexp.MustCompile(`(?m)^https on (\S+) \((\S+)\)$`)

// gwHTTPS returns the HTTPS address and public URL serve printed in its
// "https on ADDR (URL)" line (which comes before "listening on").
func gwHTTPS(t *testing.T, s *server) (addr, publicURL string) {
	t.Helper()
	m := gwHTTPSLineRE.FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("serve: want \"https on 127.0.0.1:PORT (URL)\" before \"listening on\"\n%s", s)
	}
	if host, port, err := net.SplitHostPort(m[1]); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("serve: want \"https on 127.0.0.1:PORT\", got %q\n%s", m[1], s)
	}
	return m[1], m[2]
}

// gwCAPool reads a development CA certificate into a pool.
func gwCAPool(t *testing.T, caPath string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatalf("the development CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate in it", caPath)
	}
	return pool
}

// gwClient is an HTTP client that speaks one protocol: HTTP/2 over TCP
// or HTTP/3 over QUIC. Every response it returns was checked to use it.
type gwClient struct {
	name string // "h2" or "h3"
	c    *http.Client
}

// gwNewH2 returns an HTTP/2 client trusting pool; local, if set, is the
// source address its connections come from.
func gwNewH2(t *testing.T, pool *x509.CertPool, local net.Addr) gwClient {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:    &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2:  true,
		DisableCompression: true, // the test asks for encodings itself
		DialContext:        (&net.Dialer{Timeout: 10 * time.Second, LocalAddr: local}).DialContext,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return gwClient{name: "h2", c: &http.Client{Transport: tr, Timeout: gwRequestTimeout, CheckRedirect: gwNoRedirect}}
}

// gwNewH3 returns an HTTP/3 client trusting pool.
func gwNewH3(t *testing.T, pool *x509.CertPool) gwClient {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableCompression: true}
	t.Cleanup(func() { tr.Close() })
	return gwClient{name: "h3", c: &http.Client{Transport: tr, Timeout: gwRequestTimeout, CheckRedirect: gwNoRedirect}}
}

// gwClientsFor returns an HTTP/2 and an HTTP/3 client trusting the CA
// at caPath.
func gwClientsFor(t *testing.T, caPath string) []gwClient {
	t.Helper()
	pool := gwCAPool(t, caPath)
	return []gwClient{gwNewH2(t, pool, nil), gwNewH3(t, pool)}
}

func gwNoRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// try sends a request and reads the whole answer; hdr is "Name: value"
// pairs. It checks the protocol of the answer.
func (c gwClient) try(method, u string, body []byte, hdr ...string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, nil, err
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	return c.send(req)
}

func (c gwClient) send(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, b, fmt.Errorf("%s %s: reading the body: %w", req.Method, req.URL, err)
	}
	switch c.name {
	case "h2":
		if resp.ProtoMajor != 2 {
			return resp, b, fmt.Errorf("%s %s: want HTTP/2, got %s", req.Method, req.URL, resp.Proto)
		}
	case "h3":
		if resp.Proto != "HTTP/3.0" {
			return resp, b, fmt.Errorf("%s %s: want HTTP/3.0, got %s", req.Method, req.URL, resp.Proto)
		}
	}
	return resp, b, nil
}

// do is try that fails the test on a transport error.
func (c gwClient) do(t *testing.T, method, u string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := c.try(method, u, body, hdr...)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return resp, b
}

func (c gwClient) get(t *testing.T, u string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return c.do(t, http.MethodGet, u, nil, hdr...)
}

// gwWant checks an answer's status.
func gwWant(t *testing.T, what string, resp *http.Response, body []byte, status int) bool {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: want %d, got %s (%d bytes: %.200q)", what, status, resp.Status, len(body), body)
		return false
	}
	return true
}

// gwURLPath escapes each name of a slash-separated path.
func gwURLPath(p string) string {
	var parts []string
	for _, name := range strings.Split(p, "/") {
		parts = append(parts, url.PathEscape(name))
	}
	return "/" + strings.Join(parts, "/")
}

// gwPNG is a small valid PNG image.
func gwPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 24, 16))
	for y := range 16 {
		for x := range 24 {
			img.Set(x, y, color.RGBA{uint8(x * 10), uint8(y * 15), 200, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gwLines is compressible text: numbered lines, n bytes or a little more.
func gwLines(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %06d: the quick brown fox jumps over the lazy dog\n", i)
	}
	return b.Bytes()
}

// gwDecodeRoot decodes and verifies a root against the site key.
func gwDecodeRoot(t *testing.T, what string, b []byte, key tree.PublicKey) tree.Root {
	t.Helper()
	if len(b) != tree.RootSize {
		t.Fatalf("%s: want %d bytes of signed root, got %d", what, tree.RootSize, len(b))
	}
	r, err := tree.DecodeRoot(b)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := r.Verify(key, time.Now()); err != nil {
		t.Fatalf("%s: does not verify against the site key: %v", what, err)
	}
	return r
}

// gwRootHeader decodes the Grits-Root header of a response.
func gwRootHeader(t *testing.T, what string, resp *http.Response, key tree.PublicKey) tree.Root {
	t.Helper()
	h := resp.Header.Get("Grits-Root")
	if h == "" {
		t.Fatalf("%s: no Grits-Root header", what)
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("%s: Grits-Root %q is not unpadded base64url: %v", what, h, err)
	}
	return gwDecodeRoot(t, what+": Grits-Root", b, key)
}

// gwParseKey parses a site key as init printed it.
func gwParseKey(t *testing.T, s string) tree.PublicKey {
	t.Helper()
	k, err := tree.ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// gwLookup asks base (an HTTPS URL) for /grits/v1/lookup/latest/p and
// verifies the answer: a signed root from the site key, and a proof from
// its tree that p is a file of size bytes. It returns the root, the
// file's node, the inline data (nil if none) and the proof's nodes by
// hash.
func gwLookup(t *testing.T, c gwClient, base, p string, key tree.PublicKey, size int) (tree.Root, *tree.FileNode, []byte, map[blockstore.Hash][]byte) {
	t.Helper()
	u := base + "/grits/v1/lookup/latest" + gwURLPath(p)
	resp, body := c.get(t, u)
	if !gwWant(t, c.name+" GET "+u, resp, body, http.StatusOK) {
		t.FailNow()
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.grits.lookup" {
		t.Errorf("%s lookup %s: Content-Type %q, want application/vnd.grits.lookup", c.name, p, ct)
	}
	br := bufio.NewReader(bytes.NewReader(body))
	msg, err := proto.ReadResponse(br, proto.TypeLookup)
	if err != nil {
		t.Fatalf("%s lookup %s: not a grits/1 frame: %v", c.name, p, err)
	}
	if n, _ := io.Copy(io.Discard, br); n != 0 {
		t.Errorf("%s lookup %s: %d bytes after the frame", c.name, p, n)
	}
	lr, ok := msg.(*proto.LookupResult)
	if !ok {
		t.Fatalf("%s lookup %s: want a LookupResult, got %T", c.name, p, msg)
	}
	if lr.Root == nil {
		t.Fatalf("%s lookup %s: a latest lookup carries no root", c.name, p)
	}
	root := gwDecodeRoot(t, c.name+" lookup "+p+": root", lr.Root.Encode(), key)
	res, err := tree.Verify(root.Tree, tree.MustParsePath(p), lr.Proof)
	if err != nil {
		t.Fatalf("%s lookup %s: the proof does not verify: %v", c.name, p, err)
	}
	f, ok := res.Node.(*tree.FileNode)
	if res.Status != tree.Found || res.Entry.Kind != tree.KindFile || !ok {
		t.Fatalf("%s lookup %s: the proof shows %v (kind %v), want a file", c.name, p, res.Status, res.Entry.Kind)
	}
	if f.Size != uint64(size) {
		t.Fatalf("%s lookup %s: file of %d bytes, want %d", c.name, p, f.Size, size)
	}
	nodes := map[blockstore.Hash][]byte{}
	for _, n := range lr.Proof.Nodes {
		nodes[blockstore.Sum(n)] = n
	}
	inline, has := lr.Inline()
	if !has {
		inline = nil
	}
	return root, f, inline, nodes
}

// gwBlocks is a tree.Getter over a node's /grits/v1/block endpoint that
// checks every block's hash, with the nodes of a proof at hand.
type gwBlocks struct {
	c     gwClient
	base  string
	known map[blockstore.Hash][]byte
	n     int // blocks fetched
}

func (g *gwBlocks) Get(_ context.Context, h blockstore.Hash) ([]byte, error) {
	if b, ok := g.known[h]; ok {
		return b, nil
	}
	u := g.base + "/grits/v1/block/" + h.String()
	resp, body, err := g.c.try(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200q", u, resp.Status, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		return nil, fmt.Errorf("GET %s: Cache-Control %q, want immutable", u, cc)
	}
	if got := blockstore.Sum(body); got != h {
		return nil, fmt.Errorf("GET %s: %d bytes that hash to %s", u, len(body), got)
	}
	g.n++
	return body, nil
}

// gwFetchFile reassembles a file from its chunks, each from the block
// endpoint.
func gwFetchFile(t *testing.T, c gwClient, base string, f *tree.FileNode, nodes map[blockstore.Hash][]byte) ([]byte, int) {
	t.Helper()
	g := &gwBlocks{c: c, base: base, known: nodes}
	var out bytes.Buffer
	err := tree.Chunks(context.Background(), g, f, 0, f.Size, func(ch tree.Chunk) error {
		b, err := g.Get(context.Background(), ch.Hash)
		if err != nil {
			return err
		}
		if len(b) != int(ch.Size) || uint64(out.Len()) != ch.Offset {
			return fmt.Errorf("chunk %s at %d: %d bytes at %d, want %d", ch.Hash, ch.Offset, len(b), out.Len(), ch.Size)
		}
		out.Write(b)
		return nil
	})
	if err != nil {
		t.Fatalf("%s: fetching the chunks: %v", c.name, err)
	}
	return out.Bytes(), g.n
}

// TestGatewayOriginServesTheSite serves a site from an origin and
// fetches it as a browser would, over HTTP/2 and over HTTP/3: every file
// byte for byte with its type, directories by their index.html, the
// redirect to the slash form, ETag and 304, Range and 416, HEAD, the
// signed root in the Grits-Root header and at /grits/v1/root, Alt-Svc
// and CORS.
func TestGatewayOriginServesTheSite(t *testing.T) {
	t.Parallel()
	d, keyStr := newOriginWithKey(t)
	key := gwParseKey(t, keyStr)
	big := randBytes(41, 6*chunkSize-chunkSize/2) // 1.5 MiB in 6 chunks
	entries := []entry{
		{path: "index.html", data: []byte("<!doctype html>\n<title>home</title>\n<h1>grits over https</h1>\n")},
		{path: "sub/index.html", data: []byte("<!doctype html>\n<h1>a subdirectory</h1>\n")},
		{path: "css/site.css", data: []byte("body { font-family: sans-serif; }\nh1 { color: #333; }\n")},
		{path: "media/big.bin", data: big},
		{path: "img/dot.png", data: gwPNG(t)},
		{path: "docs/héllo wörld ✓.txt", data: []byte("spaces and UTF-8 in the name\n")},
	}
	wantType := map[string]string{
		"index.html": "text/html; charset=utf-8", "sub/index.html": "text/html; charset=utf-8",
		"css/site.css": "text/css; charset=utf-8", "img/dot.png": "image/png",
		"docs/héllo wörld ✓.txt": "text/plain; charset=utf-8",
	}
	treeHash, _ := d.importTree(t, newSource(t, entries))
	srv := startServe(t, d, gwGossip...)
	addr, _ := gwHTTPS(t, srv)
	base := "https://" + addr
	_, port, _ := net.SplitHostPort(addr)

	for _, c := range gwClientsFor(t, d.path("ca.pem")) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// The signed root, and the same root in every answer's header.
			resp, body := c.get(t, base+"/grits/v1/root")
			if !gwWant(t, "GET /grits/v1/root", resp, body, http.StatusOK) {
				t.FailNow()
			}
			root := gwDecodeRoot(t, "/grits/v1/root", body, key)
			if root.Tree.String() != treeHash || root.Seq != 1 {
				t.Errorf("/grits/v1/root: seq %d tree %s, want seq 1 tree %s", root.Seq, root.Tree, treeHash)
			}
			if hr := gwRootHeader(t, "/grits/v1/root", resp, key); hr != root {
				t.Errorf("Grits-Root header %v differs from /grits/v1/root %v", hr, root)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("GET /grits/v1/root: Access-Control-Allow-Origin %q, want *", got)
			}
			if got := resp.Header.Get("Timing-Allow-Origin"); got != "*" {
				t.Errorf("GET /grits/v1/root: Timing-Allow-Origin %q, want *", got)
			}
			if c.name == "h2" {
				// Alt-Svc on TCP points browsers to HTTP/3 on the same port.
				if got := resp.Header.Get("Alt-Svc"); !strings.Contains(got, `h3=":`+port+`"`) {
					t.Errorf("Alt-Svc %q: want h3=\":%s\"", got, port)
				}
			}

			// Every file, byte for byte.
			for _, e := range entries {
				u := base + gwURLPath(e.path)
				resp, body := c.get(t, u)
				if !gwWant(t, "GET "+u, resp, body, http.StatusOK) {
					continue
				}
				if !bytes.Equal(body, e.data) {
					t.Errorf("GET %s: want the %d bytes of the source, got %d (first difference at %d)",
						u, len(e.data), len(body), firstDiff(body, e.data))
				}
				if w := wantType[e.path]; w != "" && resp.Header.Get("Content-Type") != w {
					t.Errorf("GET %s: Content-Type %q, want %q", u, resp.Header.Get("Content-Type"), w)
				}
				if hr := gwRootHeader(t, "GET "+u, resp, key); hr.Tree != root.Tree {
					t.Errorf("GET %s: Grits-Root names tree %s, want %s", u, hr.Tree, root.Tree)
				}
			}

			// Directories: index.html; without the slash, a redirect.
			for p, want := range map[string][]byte{"/": entries[0].data, "/sub/": entries[1].data} {
				resp, body := c.get(t, base+p)
				if gwWant(t, "GET "+p, resp, body, http.StatusOK) && !bytes.Equal(body, want) {
					t.Errorf("GET %s: want its index.html %q, got %q", p, want, body)
				}
			}
			resp, body = c.get(t, base+"/sub?x=1")
			if gwWant(t, "GET /sub", resp, body, http.StatusMovedPermanently) && resp.Header.Get("Location") != "/sub/?x=1" {
				t.Errorf("GET /sub?x=1: Location %q, want /sub/?x=1", resp.Header.Get("Location"))
			}
			resp, body = c.get(t, base+"/no/such/file")
			gwWant(t, "GET /no/such/file", resp, body, http.StatusNotFound)

			// ETag, then If-None-Match: 304.
			bigURL := base + "/media/big.bin"
			resp, _ = c.do(t, http.MethodHead, bigURL, nil)
			etag := resp.Header.Get("ETag")
			if !regexp.MustCompile(`^"b3-[0-9a-f]{64}"$`).MatchString(etag) {
				t.Errorf("HEAD %s: ETag %q, want \"b3-<64 hex>\"", bigURL, etag)
			}
			resp, body = c.get(t, bigURL, "If-None-Match: "+etag)
			if gwWant(t, "GET with If-None-Match", resp, body, http.StatusNotModified) && len(body) != 0 {
				t.Errorf("304 with a %d-byte body", len(body))
			}
			resp, body = c.get(t, bigURL, `If-None-Match: "b3-0000"`)
			gwWant(t, "GET with a stale If-None-Match", resp, body, http.StatusOK)

			// HEAD: the length, no body.
			resp, body = c.do(t, http.MethodHead, bigURL, nil)
			if gwWant(t, "HEAD", resp, body, http.StatusOK) {
				if len(body) != 0 || resp.ContentLength != int64(len(big)) {
					t.Errorf("HEAD %s: Content-Length %d and %d body bytes, want %d and none", bigURL, resp.ContentLength, len(body), len(big))
				}
			}

			// Range across chunk boundaries.
			resp, body = c.get(t, bigURL, "Range: bytes=1000-300000")
			if gwWant(t, "GET Range bytes=1000-300000", resp, body, http.StatusPartialContent) {
				if !bytes.Equal(body, big[1000:300001]) {
					t.Errorf("Range bytes=1000-300000: got %d bytes (first difference at %d), want 299001", len(body), firstDiff(body, big[1000:300001]))
				}
				if want := fmt.Sprintf("bytes 1000-300000/%d", len(big)); resp.Header.Get("Content-Range") != want {
					t.Errorf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
				}
			}
			tail := len(big) - 10
			resp, body = c.get(t, bigURL, fmt.Sprintf("Range: bytes=%d-", tail))
			if gwWant(t, "GET Range of the tail", resp, body, http.StatusPartialContent) && !bytes.Equal(body, big[tail:]) {
				t.Errorf("Range bytes=%d-: got %q, want %q", tail, body, big[tail:])
			}
			resp, body = c.get(t, bigURL, fmt.Sprintf("Range: bytes=%d-", len(big)+5))
			if gwWant(t, "GET unsatisfiable Range", resp, body, http.StatusRequestedRangeNotSatisfiable) {
				if want := fmt.Sprintf("bytes */%d", len(big)); resp.Header.Get("Content-Range") != want {
					t.Errorf("416: Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
				}
			}

			// CORS preflight for the API.
			resp, body = c.do(t, http.MethodOptions, base+"/grits/v1/block/x", nil,
				"Origin: https://elsewhere.example", "Access-Control-Request-Method: GET", "Access-Control-Request-Headers: range")
			if gwWant(t, "OPTIONS preflight", resp, body, http.StatusNoContent) {
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
					t.Errorf("preflight: Access-Control-Allow-Origin %q, want *", got)
				}
				if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "GET") {
					t.Errorf("preflight: Access-Control-Allow-Methods %q, want GET in it", got)
				}
				if got := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "range") {
					t.Errorf("preflight: Access-Control-Allow-Headers %q, want Range in it", got)
				}
			}
		})
	}
}

// gwVolunteer is a volunteer enrolled with gritsd token and join, serving.
type gwVolunteer struct {
	d       dataDir
	srv     *server
	addr    string // HTTPS
	url     string // as it advertises it
	base    string // https://addr
	clients []gwClient
}

// gwEnrol enrols a volunteer with the origin listening (grits/1) at
// originAddr and starts it.
func gwEnrol(t *testing.T, origin dataDir, originAddr string) *gwVolunteer {
	t.Helper()
	return gwEnrolWith(t, origin, originAddr)
}

// gwEnrolWith is gwEnrol with extra serve flags.
func gwEnrolWith(t *testing.T, origin dataDir, originAddr string, extra ...string) *gwVolunteer {
	t.Helper()
	r := origin.must(t, "token", "--origin-addr", originAddr)
	tok := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(tok, "grits-join-1.") {
		t.Fatalf("token: want grits-join-1.... on stdout\n%s", r)
	}
	v := &gwVolunteer{d: dataDir(filepath.Join(t.TempDir(), "volunteer"))}
	v.d.must(t, "join", tok)
	v.srv = startServe(t, v.d, append(append([]string(nil), gwGossip...), extra...)...)
	v.addr, v.url = gwHTTPS(t, v.srv)
	v.base = "https://" + v.addr
	// A volunteer's certificate comes from the origin's development CA:
	// trusting that one CA trusts every node of the swarm.
	v.clients = gwClientsFor(t, origin.path("ca.pem"))
	return v
}

// TestGatewayVolunteersServeLookupsAndBlocks enrols two volunteers and
// reads the site through each, over HTTP/2 and HTTP/3, as the service
// worker does: a verified lookup of every file (small ones inline), then
// every chunk of the large ones from the block endpoint, each checked
// against its hash; a compressible block comes zstd-encoded on request;
// the origin lists both volunteers at /grits/v1/peers.
func TestGatewayVolunteersServeLookupsAndBlocks(t *testing.T) {
	t.Parallel()
	o, keyStr := newOriginWithKey(t)
	key := gwParseKey(t, keyStr)
	lines := gwLines(100 << 10) // one compressible chunk, not inline
	entries := []entry{
		{path: "index.html", data: []byte("<!doctype html>\n<h1>volunteers</h1>\n")},
		{path: "media/big.bin", data: randBytes(42, 6*chunkSize-chunkSize/2)},
		{path: "text/lines.txt", data: lines},
		{path: "a b/ünïcode.txt", data: []byte("small and inline\n")},
	}
	treeHash, _ := o.importTree(t, newSource(t, entries))
	osrv := startServe(t, o, gwGossip...)
	oaddr, _ := gwHTTPS(t, osrv)
	vols := []*gwVolunteer{gwEnrol(t, o, osrv.addr), gwEnrol(t, o, osrv.addr)}

	// The origin lists both volunteers' URLs, once gossip has told it.
	oc := gwNewH2(t, gwCAPool(t, o.path("ca.pem")), nil)
	want := []string{vols[0].url, vols[1].url}
	slices.Sort(want)
	eventually(t, swarmWait, 200*time.Millisecond, func() error {
		resp, body, err := oc.try(http.MethodGet, "https://"+oaddr+"/grits/v1/peers", nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			return fmt.Errorf("/grits/v1/peers: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
		}
		var peers []struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(body, &peers); err != nil {
			return fmt.Errorf("/grits/v1/peers: %v: %q", err, body)
		}
		var got []string
		for _, p := range peers {
			got = append(got, p.URL)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("/grits/v1/peers lists %q, want %q", got, want)
		}
		return nil
	})

	for i, v := range vols {
		for _, c := range v.clients {
			t.Run(fmt.Sprintf("volunteer%d/%s", i+1, c.name), func(t *testing.T) {
				t.Parallel()
				for _, e := range entries {
					root, f, inline, nodes := gwLookup(t, c, v.base, e.path, key, len(e.data))
					if root.Tree.String() != treeHash {
						t.Errorf("lookup %s: root of tree %s, want %s", e.path, root.Tree, treeHash)
					}
					if len(e.data) <= inlineMax {
						// Inline data must match the proven file node too.
						if inline == nil || !bytes.Equal(inline, e.data) {
							t.Errorf("lookup %s: want the %d bytes inline, got %d", e.path, len(e.data), len(inline))
						}
						continue
					}
					if inline != nil {
						t.Errorf("lookup %s: %d bytes inline for a %d-byte file", e.path, len(inline), len(e.data))
					}
					got, n := gwFetchFile(t, c, v.base, f, nodes)
					if !bytes.Equal(got, e.data) {
						t.Errorf("%s from its blocks: %d bytes, want %d (first difference at %d)", e.path, len(got), len(e.data), firstDiff(got, e.data))
					}
					if wantN := (len(e.data) + chunkSize - 1) / chunkSize; n < wantN {
						t.Errorf("%s: fetched %d blocks, want at least %d", e.path, n, wantN)
					}
				}

				// zstd for a compressible block, on request.
				_, f, _, _ := gwLookup(t, c, v.base, "text/lines.txt", key, len(lines))
				if f.Level != 0 || len(f.Hashes) != 1 {
					t.Fatalf("text/lines.txt: want one chunk at level 0, got level %d with %d hashes", f.Level, len(f.Hashes))
				}
				h := f.Hashes[0]
				u := v.base + "/grits/v1/block/" + h.String()
				resp, body := c.get(t, u, "Accept-Encoding: zstd")
				if !gwWant(t, "GET "+u+" zstd", resp, body, http.StatusOK) {
					return
				}
				if ce := resp.Header.Get("Content-Encoding"); ce != "zstd" {
					t.Fatalf("block with Accept-Encoding: zstd: Content-Encoding %q, want zstd", ce)
				}
				dec, err := zstd.NewReader(nil)
				if err != nil {
					t.Fatal(err)
				}
				defer dec.Close()
				plain, err := dec.DecodeAll(body, nil)
				if err != nil {
					t.Fatalf("block: %d bytes that do not decode as zstd: %v", len(body), err)
				}
				if blockstore.Sum(plain) != h || !bytes.Equal(plain, lines) {
					t.Errorf("block: zstd decodes to %d bytes hashing to %s, want the %d bytes of %s", len(plain), blockstore.Sum(plain), len(lines), h)
				}
				if len(body) >= len(lines)/2 {
					t.Errorf("block: zstd sent %d bytes for %d of repeated lines", len(body), len(lines))
				}
				if et := resp.Header.Get("ETag"); et != `"`+h.String()+`.zst"` {
					t.Errorf("zstd block: ETag %q, want a representation of its own", et)
				}
			})
		}
	}
}

// TestGatewayReverseProxy puts an app server behind the origin: pages
// the tree lacks come from the app (HTML with the service worker's
// registration script injected), tree files from the tree, paths under
// --proxy-prefix always from the app, request bodies and WebSockets pass
// through, and a stopped app gives a clear 502.
func TestGatewayReverseProxy(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/app/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"app-page"`)
		io.WriteString(w, "<html><head></head><body>app</body></html>")
	})
	mux.HandleFunc("/api/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	mux.Handle("/ws", websocket.Handler(func(ws *websocket.Conn) {
		for {
			var m string
			if err := websocket.Message.Receive(ws, &m); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, "echo: "+m); err != nil {
				return
			}
		}
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app saw %s %s", r.Method, r.URL.Path)
	})
	app := httptest.NewServer(mux)
	defer app.Close()

	d, _ := newOriginWithKey(t)
	index := []byte("<!doctype html>\n<h1>from the tree</h1>\n")
	d.importTree(t, newSource(t, []entry{
		{path: "index.html", data: index},
		{path: "api/data.json", data: []byte(`{"from":"the tree"}`)},
	}))
	srv := startServe(t, d, append(slices.Clone(gwGossip), "--upstream", app.URL, "--inject-sw", "--proxy-prefix", "/api/")...)
	addr, _ := gwHTTPS(t, srv)
	base := "https://" + addr
	pool := gwCAPool(t, d.path("ca.pem"))
	h2, h3 := gwNewH2(t, pool, nil), gwNewH3(t, pool)

	for _, c := range []gwClient{h2, h3} {
		resp, body := c.get(t, base+"/app/page")
		if gwWant(t, c.name+" GET /app/page", resp, body, http.StatusOK) {
			want := `<html><head><script src="/grits/v1/register.js" defer></script></head><body>app</body></html>`
			if string(body) != want {
				t.Errorf("%s GET /app/page: want the script injected before </head>:\n  %s\ngot\n  %s", c.name, want, body)
			}
			if resp.Header.Get("ETag") != "" || resp.ContentLength != int64(len(body)) {
				t.Errorf("%s GET /app/page: ETag %q and Content-Length %d for a changed %d-byte page; want no ETag and the new length",
					c.name, resp.Header.Get("ETag"), resp.ContentLength, len(body))
			}
		}
	}
	resp, body := h2.get(t, base+"/grits/v1/register.js")
	if gwWant(t, "GET the registration script", resp, body, http.StatusOK) && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("registration script: Content-Type %q", resp.Header.Get("Content-Type"))
	}
	resp, body = h2.get(t, base+"/")
	if gwWant(t, "GET / (from the tree)", resp, body, http.StatusOK) && !bytes.Equal(body, index) {
		t.Errorf("GET /: want the tree's index.html, got %q", body)
	}
	// Not in the tree, not the app's page: the app answers.
	resp, body = h2.get(t, base+"/elsewhere")
	if gwWant(t, "GET /elsewhere", resp, body, http.StatusOK) && string(body) != "app saw GET /elsewhere" {
		t.Errorf("GET /elsewhere: want the app's answer, got %q", body)
	}
	// The prefix wins over the tree.
	resp, body = h2.get(t, base+"/api/data.json")
	if gwWant(t, "GET /api/data.json", resp, body, http.StatusOK) && string(body) != "app saw GET /api/data.json" {
		t.Errorf("GET /api/data.json: --proxy-prefix /api/ should send it to the app, got %q", body)
	}
	for _, c := range []gwClient{h2, h3} {
		resp, body := c.do(t, http.MethodPost, base+"/api/echo", []byte("hello, app"), "Content-Type: text/plain")
		if gwWant(t, c.name+" POST /api/echo", resp, body, http.StatusOK) {
			if string(body) != "POST hello, app" {
				t.Errorf("%s POST /api/echo: got %q", c.name, body)
			}
			if p := resp.Header.Get("X-Seen-Proto"); p != "https" {
				t.Errorf("%s POST /api/echo: the app saw X-Forwarded-Proto %q, want https", c.name, p)
			}
		}
	}

	// A WebSocket through gritsd, over TLS.
	func() {
		cfg, err := websocket.NewConfig("wss://"+addr+"/ws", base+"/")
		if err != nil {
			t.Fatal(err)
		}
		cfg.TlsConfig = &tls.Config{RootCAs: pool}
		cfg.Dialer = &net.Dialer{Timeout: 10 * time.Second}
		ws, err := websocket.DialConfig(cfg)
		if err != nil {
			t.Errorf("WebSocket dial through gritsd: %v", err)
			return
		}
		defer ws.Close()
		ws.SetDeadline(time.Now().Add(gwRequestTimeout))
		for i := range 3 {
			msg := fmt.Sprintf("message %d", i)
			if err := websocket.Message.Send(ws, msg); err != nil {
				t.Errorf("WebSocket send %d: %v", i, err)
				return
			}
			var got string
			if err := websocket.Message.Receive(ws, &got); err != nil {
				t.Errorf("WebSocket receive %d: %v", i, err)
				return
			}
			if got != "echo: "+msg {
				t.Errorf("WebSocket: got %q, want %q", got, "echo: "+msg)
			}
		}
	}()

	// The app stops: a clear 502, and the tree still serves.
	app.Close()
	eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		resp, body, err := h2.try(http.MethodGet, base+"/app/page", nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "app server did not answer") {
			return fmt.Errorf("with the app stopped: want 502 saying the app server did not answer, got %s %q", resp.Status, body)
		}
		return nil
	})
	resp, body = h2.get(t, base+"/index.html")
	if gwWant(t, "GET /index.html with the app stopped", resp, body, http.StatusOK) && !bytes.Equal(body, index) {
		t.Errorf("GET /index.html with the app stopped: got %q", body)
	}
}

// gwRawHTTP1 sends raw bytes as one HTTP/1.1 request over TLS and reads
// the answer. The write runs alongside the read, so a server that
// answers (or hangs up) before reading everything does not block it.
func gwRawHTTP1(addr string, pool *x509.CertPool, raw []byte) (*http.Response, []byte, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(gwRequestTimeout))
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(raw)
		werr <- err
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		<-werr
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	conn.Close()
	<-werr
	return resp, body, err
}

// TestGatewayHostileRequests throws what the open internet throws at the
// origin: path traversal in every spelling, NUL bytes, malformed hashes,
// a 1 MiB header, a thousand idle connections and a slowloris. Nothing
// outside the tree comes back, nothing takes the node down, and a
// well-behaved client is served all along.
func TestGatewayHostileRequests(t *testing.T) {
	t.Parallel()
	d, _ := newOriginWithKey(t)
	index := []byte("<!doctype html>\n<h1>still here</h1>\n")
	d.importTree(t, newSource(t, []entry{
		{path: "index.html", data: index},
		{path: "a/b.txt", data: []byte("inside the tree\n")},
	}))
	srv := startServe(t, d, gwGossip...)
	addr, _ := gwHTTPS(t, srv)
	base := "https://" + addr
	pool := gwCAPool(t, d.path("ca.pem"))
	h2, h3 := gwNewH2(t, pool, nil), gwNewH3(t, pool)
	// A client on another loopback address: the per-address connection
	// cap that the flood below fills does not apply to it.
	h2other := gwNewH2(t, pool, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
	wellBehaved := func(t *testing.T, c gwClient) error {
		t.Helper()
		resp, body, err := c.try(http.MethodGet, base+"/index.html", nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, index) {
			return fmt.Errorf("%s GET /index.html: %s %q", c.name, resp.Status, body)
		}
		return nil
	}

	// Traversal and NUL, raw over HTTP/1.1 (no client cleans them) and
	// over HTTP/2.
	hostile := []string{
		"/../etc/passwd", "/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
		"/a/..%2fb.txt", "/a/..%2f..%2f..%2fetc/passwd", "/a/%2e%2e/%2e%2e/etc/passwd", "/./index.html", "//etc/passwd",
		"/%00", "/index.html%00", "/index.html%00.txt", "/a%00/b.txt", "/a/b.txt%00/../../etc/passwd",
		"/grits/v1/lookup/latest/../../etc/passwd", "/grits/v1/lookup/latest/%2e%2e/%2e%2e/etc/passwd",
		"/grits/v1/lookup/latest/a%00b", "/grits/v1/lookup/latest//etc/passwd", "/grits/v1/block/../../etc/passwd",
	}
	check := func(what string, status int, body []byte) {
		t.Helper()
		if status != http.StatusBadRequest && status != http.StatusNotFound {
			t.Errorf("%s: want 400 or 404, got %d (%.200q)", what, status, body)
		}
		if bytes.Contains(body, []byte("root:")) || bytes.Contains(body, index) || bytes.Contains(body, []byte("inside the tree")) {
			t.Errorf("%s: the answer carries file content: %.200q", what, body)
		}
	}
	for _, p := range hostile {
		raw := "GET " + p + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
		resp, body, err := gwRawHTTP1(addr, pool, []byte(raw))
		if err != nil {
			t.Errorf("HTTP/1.1 GET %s: %v", p, err)
		} else {
			check("HTTP/1.1 GET "+p, resp.StatusCode, body)
		}
		req, err := http.NewRequest(http.MethodGet, base+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = "//" + addr + p // sent as is
		resp, body, err = h2.send(req)
		if err != nil {
			t.Errorf("HTTP/2 GET %s: %v", p, err)
		} else {
			check("HTTP/2 GET "+p, resp.StatusCode, body)
		}
	}

	// Malformed hashes: 400 before any store is touched; a well-formed
	// unknown one: 404.
	for p, want := range map[string]int{
		"/grits/v1/block/b3-zz": 400, "/grits/v1/block/nothex": 400, "/grits/v1/block/": 400,
		"/grits/v1/block/b3-" + strings.Repeat("A", 64): 400, "/grits/v1/block/b3-" + strings.Repeat("0", 63): 400,
		"/grits/v1/block/b3-" + strings.Repeat("0", 64) + "0": 400, "/grits/v1/lookup/nothex/index.html": 400,
		"/grits/v1/block/b3-" + strings.Repeat("0", 64): 404, "/grits/v1/nothing": 404,
	} {
		resp, body := h2.get(t, base+p)
		gwWant(t, "GET "+p, resp, body, want)
	}

	// A 1 MiB header: 431, or the connection closed.
	bigHeader := "GET /index.html HTTP/1.1\r\nHost: " + addr + "\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"
	switch resp, body, err := gwRawHTTP1(addr, pool, []byte(bigHeader)); {
	case err != nil:
		t.Logf("a 1 MiB header: the connection ended: %v", err)
	case resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge:
		t.Errorf("a 1 MiB header: want 431 or the connection closed, got %s (%.200q)", resp.Status, body)
	default:
		t.Logf("a 1 MiB header: %s", resp.Status)
	}
	// Over HTTP/2 and HTTP/3 the header limit holds too: 431, or the
	// connection (HTTP/2: COMPRESSION_ERROR) or stream ends.
	for _, c := range []gwClient{h2, h3} {
		resp, body, err := c.try(http.MethodGet, base+"/index.html", nil, "X-Big: "+strings.Repeat("a", 1<<20))
		switch {
		case err != nil:
			t.Logf("%s with a 1 MiB header: %v", c.name, err)
		case resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge:
			t.Errorf("%s with a 1 MiB header: want 431 or an error, got %s (%.200q)", c.name, resp.Status, body)
		default:
			t.Logf("%s with a 1 MiB header: %s", c.name, resp.Status)
		}
	}
	for _, c := range []gwClient{h2, h3} {
		if err := wellBehaved(t, c); err != nil {
			t.Errorf("after the bad requests: %v", err)
		}
	}

	// A slowloris: the TLS handshake, then a header that never ends.
	slow, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /index.html HTTP/1.1\r\nHost: "+addr+"\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	slowStart := time.Now()
	slowClosed := make(chan time.Duration, 1)
	go func() {
		slow.SetReadDeadline(time.Now().Add(40 * time.Second))
		io.Copy(io.Discard, slow) // until the server hangs up (or the deadline)
		slowClosed <- time.Since(slowStart)
	}()

	// A thousand idle TCP connections from this address, never a byte.
	const idle = 1000
	var conns []net.Conn
	var refused atomic.Int64
	var readers sync.WaitGroup
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		readers.Wait()
	}()
	for range idle {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		readers.Go(func() {
			var b [1]byte
			if _, err := c.Read(b[:]); err != nil && !errors.Is(err, net.ErrClosed) {
				refused.Add(1) // the server hung up
			}
		})
	}
	// The server holds at most its per-address cap (256) of them and
	// closes the rest at once.
	eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n := refused.Load(); n < idle-256 {
			return fmt.Errorf("the server closed %d of %d idle connections from one address; want all but its cap of 256", n, idle)
		}
		return nil
	})
	t.Logf("the server closed %d of %d idle connections from one address at once", refused.Load(), idle)
	// Meanwhile: HTTP/3, and HTTP/2 from another address, are served.
	if err := wellBehaved(t, h3); err != nil {
		t.Errorf("during the flood: %v", err)
	}
	if err := wellBehaved(t, h2other); err != nil {
		t.Errorf("during the flood, from 127.0.0.2: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}
	readers.Wait()
	conns = nil

	// The slowloris is cut off by the header timeout (10s).
	select {
	case took := <-slowClosed:
		if took > 20*time.Second {
			t.Errorf("a slowloris kept its connection %v; want it closed by the header timeout", took.Round(time.Millisecond))
		}
		t.Logf("the slowloris was cut off after %v", took.Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Errorf("a slowloris still holds its connection after %v", time.Since(slowStart).Round(time.Second))
	}

	// Afterwards, from this address again.
	eventually(t, 15*time.Second, 100*time.Millisecond, func() error { return wellBehaved(t, gwNewH2(t, pool, nil)) })
	if err := wellBehaved(t, h3); err != nil {
		t.Errorf("after the flood: %v", err)
	}
	r := d.must(t, "status")
	if m := regexp.MustCompile(`and (\d+) HTTP requests`).FindStringSubmatch(r.stdout); !strings.Contains(r.stdout, "(origin), site") ||
		!strings.Contains(r.stdout, "root seq 1 ") || m == nil || m[1] == "0" {
		t.Errorf("status after the attacks: want the origin at root seq 1 with the HTTP requests it served counted\n%s", r)
	}
	select {
	case <-srv.exited:
		t.Fatalf("serve exited under the attacks\n%s", srv)
	default:
	}
}

// gwFreePorts finds a port P with P, P+1 and P+2 free for TCP and UDP on
// 127.0.0.1. They are released before returning: another process could
// take one before the caller binds it (a small race the test accepts).
func gwFreePorts(t *testing.T) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(40000)
		ok := true
		var closers []io.Closer
		for i := range 3 {
			a := net.JoinHostPort("127.0.0.1", strconv.Itoa(p+i))
			l, err := net.Listen("tcp", a)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, l)
			u, err := net.ListenPacket("udp", a)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, u)
		}
		for _, c := range closers {
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no three consecutive free ports on 127.0.0.1 in 200 tries")
	return 0
}

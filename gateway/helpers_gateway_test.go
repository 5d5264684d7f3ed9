package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// gwChunkSize is the small chunk size of the test site, so that files of
// a few KiB span several chunks and one of 4 MiB has an index level.
const gwChunkSize = 4096

// gwMTime is the mtime stored for index.html.
var gwMTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// gwSite is a signed tree in a memory store, as an origin holds it.
type gwSite struct {
	key   ed25519.PrivateKey
	pub   tree.PublicKey
	store *blockstore.Mem
	root  tree.Root
	files map[string][]byte
}

// gwRandom returns n seeded, incompressible bytes.
func gwRandom(n int, seed uint64) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// gwLorem is compressible text of n bytes.
func gwLorem(n int) []byte {
	const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua "
	return []byte(strings.Repeat(words, n/len(words)+1)[:n])
}

// gwSiteFiles is the content of the test site.
func gwSiteFiles() map[string][]byte {
	return map[string][]byte{
		"index.html":        []byte("<!doctype html><title>home</title><h1>home</h1>"),
		"docs/index.html":   []byte("<!doctype html><h1>docs</h1>"),
		"docs/guide.txt":    []byte("the guide\n"),
		"style.css":         []byte("body { color: black }\n"),
		"app.js":            []byte("console.log('hi');\n"),
		"data/big.bin":      gwRandom(100<<10+123, 1),
		"data/huge.bin":     gwRandom(gwChunkSize*1030+17, 2),
		"text/lorem.txt":    gwLorem(10 << 10),
		"nohtml/readme.txt": []byte("no index here\n"),
		"empty.txt":         {},
		"noext":             []byte("%PDF-1.4\n% a file without an extension\n"),
		"typed.txt":         []byte("# stored as markdown\n"),
	}
}

// newGWSite builds and signs the test site.
func newGWSite(t testing.TB) *gwSite {
	t.Helper()
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &gwSite{key: key, pub: tree.PublicKeyOf(key), store: blockstore.NewMem(-1), files: gwSiteFiles()}
	b := &tree.Builder{Store: s.store, ChunkSize: gwChunkSize}
	root, err := b.EmptyDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range s.files {
		h, n, err := b.WriteFile(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		e := tree.Entry{Kind: tree.KindFile, Mode: 0o644, Size: n, Hash: h}
		if p == "index.html" {
			e.MTime = gwMTime
		}
		if p == "typed.txt" {
			// The one file with a stored type (the rest is a tree from
			// before types): the tree's word beats the name's.
			e.Type = "text/markdown; charset=utf-8"
		}
		if root, err = b.Set(ctx, root, tree.MustParsePath(p), e); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"link": "index.html", "linkdir": "docs"} {
		e := tree.Entry{Kind: tree.KindSymlink, Mode: 0o777, Size: uint64(len(target)), Target: target}
		if root, err = b.Set(ctx, root, tree.MustParsePath(name), e); err != nil {
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

// latest is a Config.Latest for the site.
func (s *gwSite) latest() (tree.Root, bool) { return s.root, true }

// config is a Site handler's configuration over the site.
func (s *gwSite) config() Config {
	return Config{Store: s.store, Latest: s.latest, Site: true}
}

// lookup resolves a path locally.
func (s *gwSite) lookup(t testing.TB, p string) tree.Result {
	t.Helper()
	r, err := tree.Lookup(context.Background(), s.store, s.root.Tree, tree.MustParsePath(p))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// chunks lists a file's chunks.
func (s *gwSite) chunks(t testing.TB, p string) []tree.Chunk {
	t.Helper()
	f := s.lookup(t, p).Node.(*tree.FileNode)
	var cs []tree.Chunk
	if err := tree.Chunks(context.Background(), s.store, f, 0, f.Size, func(c tree.Chunk) error {
		cs = append(cs, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return cs
}

// gwCountingGetter counts Gets, to show what did not touch the store.
type gwCountingGetter struct {
	g tree.Getter
	n atomic.Int64
}

func (c *gwCountingGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	c.n.Add(1)
	return c.g.Get(ctx, h)
}

// gwGetterFunc is a tree.Getter from a function.
type gwGetterFunc func(ctx context.Context, h blockstore.Hash) ([]byte, error)

func (f gwGetterFunc) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) { return f(ctx, h) }

// gwServer is a handler behind the gateway's own Server (HTTP/2 over
// TLS from internal/h2), as gritsd serves it.
type gwServer struct {
	h      *Handler
	url    string
	client *http.Client
}

// startGW serves cfg over HTTPS with HTTP/2 until the test ends.
func startGW(t testing.TB, cfg Config) *gwServer {
	t.Helper()
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := srvTestStart(t, h, nil)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ts.pool},
		ForceAttemptHTTP2: true,
		// The tests choose Accept-Encoding themselves and see the bytes
		// sent.
		DisableCompression: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &gwServer{h: h, url: strings.TrimSuffix(ts.url, "/"), client: c}
}

// do sends one request over HTTP/2 and returns the response with its body
// read.
func (g *gwServer) do(t testing.TB, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s: served over %s, want HTTP/2", method, path, resp.Proto)
	}
	return resp, body
}

func (g *gwServer) get(t testing.TB, path string) (*http.Response, []byte) {
	t.Helper()
	return g.do(t, http.MethodGet, path, nil)
}

// decodeLookupFrame reads exactly one LookupResult frame.
func decodeLookupFrame(t testing.TB, body []byte) *proto.LookupResult {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(body))
	m, err := proto.ReadResponse(br, proto.TypeLookup)
	if err != nil {
		t.Fatalf("lookup frame: %v", err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("bytes after the lookup frame")
	}
	lr, ok := m.(*proto.LookupResult)
	if !ok {
		t.Fatalf("lookup answered with %T", m)
	}
	return lr
}

// gwServeLog records OnServe calls.
type gwServeLog struct {
	mu    sync.Mutex
	kinds map[string]int
	bytes map[string]int64
}

func newGWServeLog() *gwServeLog {
	return &gwServeLog{kinds: map[string]int{}, bytes: map[string]int64{}}
}

func (l *gwServeLog) onServe(kind string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kinds[kind]++
	l.bytes[kind] += n
}

func (l *gwServeLog) get(kind string) (int, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kinds[kind], l.bytes[kind]
}

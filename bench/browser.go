package main

// The browser suite: the service worker (sw/grits-sw.js) in real headless
// Chromium, driven over the DevTools protocol (internal/chromium), against
// real gritsd processes, each figure beside a baseline from the same run:
//
//  1. BLAKE3 (sw/js/blake3.js, plain JS) hashing 1 MiB inputs in a page,
//     beside WebCrypto's SHA-256 over the same inputs.
//  2. Page loads (a page with a style sheet, a script and four images)
//     through the worker, from volunteers, beside the same page loaded
//     straight from the origin without a worker, over a simulated network:
//     50 ms round trip between browser and origin, 10 ms between browser
//     and volunteers (userspace relays, relay.go). Cold and warm; the
//     worker with the origin's sw_navigate on (a static site's default:
//     the page from the worker too) and off (the page from the origin,
//     its assets from the worker: an app's default).
//  3. A 50 MiB file read through the worker (every block verified), beside
//     the page fetching the same blocks from the same volunteer itself
//     with the worker's parallelism and no hashing; loopback, no relay.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/chromium"
	"github.com/grits-cdn/grits/tree"
)

// pageRTTs are the simulated networks of the page loads: round trips to
// the origin and to the volunteers.
var pageRTTs = []linkRTT{{50 * time.Millisecond, 10 * time.Millisecond}, {100 * time.Millisecond, 20 * time.Millisecond}}

type linkRTT struct{ origin, volunteer time.Duration }

// setRTT sets the relays' round trips (origin, volunteers).
func (s *benchSite) setRTT(origin, volunteer time.Duration) {
	if s.origin.relay != nil {
		s.origin.relay.setRTT(origin)
	}
	for _, v := range s.vols {
		if v.relay != nil {
			v.relay.setRTT(volunteer)
		}
	}
}

const (
	originRTT    = 50 * time.Millisecond
	volunteerRTT = 10 * time.Millisecond
	// bigFileSize is suite 3's file.
	bigFileSize = 50 << 20
	// workerPrefetch and workerRun are PREFETCH and RUN_BLOCKS in
	// sw/grits-sw.js: blocks of one response the worker has asked for
	// ahead, in runs of workerRun blocks a request (/grits/v1/blocks).
	// The unverified baseline asks the same way, so the ratio is the cost
	// of verifying (and of the worker), not of a different request shape.
	workerPrefetch = 16
	workerRun      = 8
)

// browserSuite runs the three browser measurements. work is a scratch
// directory removed by the caller.
func browserSuite(ctx context.Context, work string, quick bool) ([]Result, error) {
	if _, err := os.Stat(chromium.Path); err != nil {
		return nil, chromium.ErrNotInstalled
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	bin, err := gritsdBinary(ctx, work)
	if err != nil {
		return nil, err
	}
	reps := 5
	if quick {
		reps = 3
	}
	var results []Result

	// Suites 1 and 3: loopback, no relay, one volunteer.
	if browserParts["hash"] || browserParts["throughput"] {
		fmt.Fprintln(os.Stderr, "browser: setting up the loopback site (50 MiB file)")
		big := randomBytes(3, bigFileSize)
		files := fixture()
		files["big.bin"] = big
		plain, err := newBenchSite(ctx, bin, filepath.Join(work, "plain"), files, 1, false)
		if err != nil {
			return nil, fmt.Errorf("loopback site: %w", err)
		}
		if browserParts["hash"] {
			fmt.Fprintln(os.Stderr, "browser: BLAKE3 in the page")
			var rs []Result
			rs, err = blake3Bench(ctx, plain)
			results = append(results, rs...)
		}
		if err == nil && browserParts["throughput"] {
			fmt.Fprintln(os.Stderr, "browser: 50 MiB through the worker")
			var rs []Result
			rs, err = throughputBench(ctx, plain, big, min(reps, 3))
			results = append(results, rs...)
		}
		plain.Close()
		if err != nil {
			return nil, err
		}
	}
	if !browserParts["pages"] {
		return results, nil
	}

	// Suite 2: through relays, two volunteers.
	fmt.Fprintln(os.Stderr, "browser: setting up the relayed site (50 ms to the origin, 10 ms to volunteers)")
	delayed, err := newBenchSite(ctx, bin, filepath.Join(work, "delayed"), fixture(), 2, true)
	if err != nil {
		return nil, fmt.Errorf("relayed site: %w", err)
	}
	defer delayed.Close()
	for _, rtt := range pageRTTs {
		fmt.Fprintf(os.Stderr, "browser: page loads at %v to the origin, %v to volunteers\n", rtt.origin, rtt.volunteer)
		delayed.setRTT(rtt.origin, rtt.volunteer)
		rs, err := pageLoadBench(ctx, delayed, reps, rtt)
		if err != nil {
			return nil, err
		}
		results = append(results, rs...)
	}
	return results, nil
}

// ---- fixture ----

// pageAssets are the sub-resources of the measured page.
var pageAssets = []string{"/css/site.css", "/js/app.js", "/img/a.png", "/img/b.png", "/img/c.png", "/img/d.png"}

// fixture is the site: the measured page in two variants (with the
// worker's registration script and without), pages without assets to
// install the worker or warm a connection, and the assets: about 330 KB,
// of which the style sheet fits inline in a lookup (64 KiB) and the rest
// are one block each (256 KiB chunks).
func fixture() map[string][]byte {
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	var css strings.Builder
	for i := 0; css.Len() < 24<<10; i++ {
		fmt.Fprintf(&css, ".c%d { color: #%06x; margin: %dpx; padding: %dpx %dpx; }\n", i, rng.IntN(1<<24), i%17, i%5, i%9)
	}
	var js strings.Builder
	js.WriteString("window.benchData = [")
	for js.Len() < 90<<10 {
		fmt.Fprintf(&js, "%d,", rng.Int64())
	}
	js.WriteString("0];\ndocument.documentElement.dataset.app = String(window.benchData.length);\n")
	files := map[string][]byte{
		"css/site.css": []byte(css.String()),
		"js/app.js":    []byte(js.String()),
		"img/a.png":    noisePNG(rng, 64),
		"img/b.png":    noisePNG(rng, 96),
		"img/c.png":    noisePNG(rng, 128),
		"img/d.png":    noisePNG(rng, 160),
	}
	head := `<!doctype html><html><head><meta charset="utf-8"><title>bench</title><link rel="icon" href="data:,">`
	body := `<link rel="stylesheet" href="/css/site.css"><script src="/js/app.js"></script></head><body><h1>bench</h1>` +
		`<img src="/img/a.png"><img src="/img/b.png"><img src="/img/c.png"><img src="/img/d.png"></body></html>`
	reg := `<script src="/grits/v1/register.js" defer></script>`
	files["sw.html"] = []byte(head + reg + body)
	files["direct.html"] = []byte(head + body)
	files["install.html"] = []byte(head + reg + `</head><body>install</body></html>`)
	files["blank.html"] = []byte(head + `</head><body>blank</body></html>`)
	return files
}

// noisePNG is an n×n image of random pixels (PNG cannot compress it):
// about 4n² bytes.
func noisePNG(rng *rand.Rand, n int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			img.SetNRGBA(x, y, color.NRGBA{uint8(rng.Uint32()), uint8(rng.Uint32()), uint8(rng.Uint32()), 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

func randomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// ---- the site: an origin and volunteers as processes ----

// benchNode is a running gritsd.
type benchNode struct {
	name  string
	data  string
	https string // where it listens for browsers
	url   string // what browsers use: the relay's address, or https itself
	proto string // grits/1 address (for tokens)
	relay *relay
	cmd   *exec.Cmd
	done  chan struct{}
	mu    sync.Mutex
	tail  []string // its last stderr lines, for errors
}

// benchSite is an origin and its volunteers. With relays, every node
// listens on 127.0.0.2:P and a relay on 127.0.0.1:P adds the round trip:
// browsers are only told 127.0.0.1 addresses, and the Alt-Svc a node
// sends (h3 on its own port) names its relay too, so nothing can reach a
// node around its relay.
type benchSite struct {
	bin      string
	dir      string
	leaf     tls.Certificate
	spki     string
	pool     *x509.CertPool
	certPath string
	keyPath  string
	origin   *benchNode
	vols     []*benchNode
	// navigate is the origin's sw_navigate as last set (setNavigate);
	// nil until then.
	navigate *bool
}

func newBenchSite(ctx context.Context, bin, dir string, files map[string][]byte, volunteers int, relays bool) (s *benchSite, err error) {
	s = &benchSite{bin: bin, dir: dir, pool: x509.NewCertPool()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	src := filepath.Join(dir, "src")
	for p, b := range files {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			return s, err
		}
		if err := os.WriteFile(filepath.Join(src, p), b, 0o644); err != nil {
			return s, err
		}
	}
	odata := filepath.Join(dir, "origin")
	if out, err := exec.CommandContext(ctx, bin, "--data", odata, "init", "--origin").CombinedOutput(); err != nil {
		return s, fmt.Errorf("gritsd init: %v: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, bin, "--data", odata, "import", src).CombinedOutput(); err != nil {
		return s, fmt.Errorf("gritsd import: %v: %s", err, out)
	}
	ca, err := gateway.LoadDevCA(odata)
	if err != nil {
		return s, fmt.Errorf("dev CA: %w", err)
	}
	if s.leaf, err = ca.Issue([]string{"127.0.0.1", "127.0.0.2"}, 6*time.Hour); err != nil {
		return s, fmt.Errorf("issue a certificate: %w", err)
	}
	s.spki = gateway.SPKIHash(s.leaf.Leaf)
	s.pool.AddCert(ca.Cert)
	s.certPath, s.keyPath = filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls.key")
	if err := writePair(s.certPath, s.keyPath, s.leaf); err != nil {
		return s, fmt.Errorf("write the certificate: %w", err)
	}
	if s.origin, err = s.start(ctx, "origin", odata, relays, originRTT); err != nil {
		return s, err
	}
	for i := range volunteers {
		tok, err := exec.CommandContext(ctx, bin, "--data", odata, "token", "--origin-addr", s.origin.proto).Output()
		if err != nil {
			return s, fmt.Errorf("gritsd token: %w", err)
		}
		vdata := filepath.Join(dir, fmt.Sprint("volunteer", i))
		if out, err := exec.CommandContext(ctx, bin, "--data", vdata, "join", strings.TrimSpace(string(tok))).CombinedOutput(); err != nil {
			return s, fmt.Errorf("gritsd join: %v: %s", err, out)
		}
		v, err := s.start(ctx, fmt.Sprint("volunteer", i), vdata, relays, volunteerRTT)
		if err != nil {
			return s, err
		}
		s.vols = append(s.vols, v)
	}
	return s, s.waitPeers(ctx, volunteers)
}

// start runs gritsd serve on a data directory, behind a relay with rtt if
// relayed, and waits for its addresses.
func (s *benchSite) start(ctx context.Context, name, data string, relayed bool, rtt time.Duration) (*benchNode, error) {
	n := &benchNode{name: name, data: data, done: make(chan struct{})}
	https := "127.0.0.1:0"
	if relayed {
		r, err := newRelay("127.0.0.2:0", rtt, 0)
		if err != nil {
			return nil, err
		}
		n.relay = r
		https = "127.0.0.2:" + strconv.Itoa(r.Port())
		n.url = "https://" + r.Addr()
	}
	args := []string{"--data", data, "serve", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--gossip-profile", "local",
		"--https", https, "--tls-cert", s.certPath, "--tls-key", s.keyPath, "--log-level", "error", "--rate-limit", "-1"}
	if n.url != "" {
		args = append(args, "--url", n.url)
	}
	n.cmd = exec.CommandContext(context.WithoutCancel(ctx), s.bin, args...)
	pipe, err := n.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := n.cmd.Start(); err != nil {
		if n.relay != nil {
			n.relay.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(n.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			if rest, ok := strings.CutPrefix(line, "https on "); ok && n.https == "" {
				n.https = strings.Fields(rest)[0]
			}
			if rest, ok := strings.CutPrefix(line, "listening on "); ok && n.proto == "" {
				n.proto = strings.Fields(rest)[0]
				close(ready)
			}
			n.tail = append(n.tail, line)
			if len(n.tail) > 20 {
				n.tail = n.tail[1:]
			}
			n.mu.Unlock()
		}
		n.cmd.Wait()
	}()
	select {
	case <-ready:
	case <-n.done:
		n.stop()
		return nil, fmt.Errorf("%s exited at start: %s", name, n.lastLines())
	case <-time.After(30 * time.Second):
		n.stop()
		return nil, fmt.Errorf("%s did not start in 30 s: %s", name, n.lastLines())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.url == "" {
		n.url = "https://" + n.https
	}
	return n, nil
}

func (n *benchNode) lastLines() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.tail, "\n")
}

// stop interrupts the process (killing it after 10 s) and closes its relay.
func (n *benchNode) stop() {
	if n == nil {
		return
	}
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
	if n.relay != nil {
		n.relay.Close()
	}
}

func (s *benchSite) Close() {
	for _, v := range s.vols {
		v.stop()
	}
	s.origin.stop()
	s.vols, s.origin = nil, nil
}

// setNavigate turns the origin's sw_navigate on or off (its gritsd.toml,
// then SIGHUP) and waits until the worker script it serves says so. A
// fresh browser profile then installs the worker with that setting.
func (s *benchSite) setNavigate(ctx context.Context, on bool) error {
	if s.navigate != nil && *s.navigate == on {
		return nil
	}
	path := filepath.Join(s.origin.data, "gritsd.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sw_navigate: %w", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "sw_navigate") {
			lines = append(lines, l)
		}
	}
	lines = append(lines, fmt.Sprintf("sw_navigate = %v", on), "")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return fmt.Errorf("sw_navigate: %w", err)
	}
	if err := s.origin.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("sw_navigate: SIGHUP the origin: %w", err)
	}
	c := s.client()
	defer c.CloseIdleConnections()
	want := fmt.Sprintf(`"navigate":%v`, on)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := c.Get("https://" + s.origin.https + "/grits/v1/sw-lib.js")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte(want)) {
				s.navigate = &on
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the origin's worker does not say %s 30 s after SIGHUP: %s", want, s.origin.lastLines())
}

// client talks to the nodes directly (not through relays).
func (s *benchSite) client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.pool}, ForceAttemptHTTP2: true}}
}

// waitPeers waits until the origin lists n volunteers.
func (s *benchSite) waitPeers(ctx context.Context, n int) error {
	c := s.client()
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := c.Get("https://" + s.origin.https + "/grits/v1/peers")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			var peers []gateway.Peer
			if json.Unmarshal(b, &peers) == nil && len(peers) >= n {
				return nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the origin does not list %d volunteers after 60 s: %s", n, last)
}

// served is a node's counters for browser traffic (gritsd status --json).
type served struct {
	Requests int64 `json:"http_requests"`
	Bytes    int64 `json:"http_bytes"`
	HTTP3    int64 `json:"http3_requests"`
	ByKind   map[string]struct {
		Requests int64 `json:"requests"`
		Bytes    int64 `json:"bytes"`
	} `json:"http_by_kind"`
}

func (s *benchSite) counters(ctx context.Context, n *benchNode) (served, error) {
	out, err := exec.CommandContext(ctx, s.bin, "--data", n.data, "status", "--json").Output()
	if err != nil {
		return served{}, fmt.Errorf("gritsd status (%s): %w", n.name, err)
	}
	var st struct {
		Served served `json:"served"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return served{}, fmt.Errorf("gritsd status --json (%s): %w", n.name, err)
	}
	return st.Served, nil
}

// snapshot is every node's counters and relay counters at one moment.
type snapshot struct {
	nodes  []served // origin first, then volunteers
	relays []relayStats
}

func (s *benchSite) snapshot(ctx context.Context) (snapshot, error) {
	var sn snapshot
	for _, n := range append([]*benchNode{s.origin}, s.vols...) {
		c, err := s.counters(ctx, n)
		if err != nil {
			return sn, err
		}
		sn.nodes = append(sn.nodes, c)
		if n.relay != nil {
			sn.relays = append(sn.relays, n.relay.stats())
		}
	}
	return sn, nil
}

// browser starts Chromium on a fresh profile under dir, trusting the
// site's certificate, speaking HTTP/3 from the first request to every
// node's browser-facing address.
// freshBrowser starts Chromium on a new, empty profile; done closes it
// and removes the profile.
func (s *benchSite) freshBrowser(ctx context.Context) (b *chromium.Browser, done func(), err error) {
	profile, err := os.MkdirTemp(s.dir, "profile-")
	if err != nil {
		return nil, nil, err
	}
	if b, err = s.browser(ctx, profile); err != nil {
		os.RemoveAll(profile)
		return nil, nil, err
	}
	return b, func() { b.Close(); os.RemoveAll(profile) }, nil
}

func (s *benchSite) browser(ctx context.Context, profile string) (*chromium.Browser, error) {
	var quic []string
	for _, n := range append([]*benchNode{s.origin}, s.vols...) {
		quic = append(quic, strings.TrimPrefix(n.url, "https://"))
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b, err := chromium.Start(sctx, chromium.Options{Profile: profile, SPKI: s.spki, ForceQUIC: quic})
	if err != nil {
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	return b, nil
}

// open navigates to path on the origin and waits for the load event;
// controlled, if set, waits until the service worker controls the page.
func (s *benchSite) open(ctx context.Context, b *chromium.Browser, path string, controlled bool) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := b.Navigate(ctx, s.origin.url+path); err != nil {
		return fmt.Errorf("navigate to %s: %w", path, err)
	}
	cond := `document.readyState === 'complete' && performance.getEntriesByType('navigation')[0].loadEventEnd > 0`
	if controlled {
		cond += ` && navigator.serviceWorker.controller !== null`
	}
	if err := b.Wait(ctx, cond); err != nil {
		return fmt.Errorf("%s did not load (controlled by the worker: %v): %w", path, controlled, err)
	}
	return nil
}

func evalIn(ctx context.Context, b *chromium.Browser, timeout time.Duration, expr string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := b.Eval(ctx, expr, out); err != nil {
		return fmt.Errorf("in the page: %.60s…: %w", strings.TrimSpace(expr), err)
	}
	return nil
}

// workerStats is part of the worker's answer to {type: 'grits-stats'}.
type workerStats struct {
	BytesFromVolunteers int64            `json:"bytesFromVolunteers"`
	BytesFromCache      int64            `json:"bytesFromCache"`
	BytesFromOrigin     int64            `json:"bytesFromOrigin"`
	RequestsFromOrigin  int64            `json:"requestsFromOrigin"`
	LookupsSent         int64            `json:"lookupsSent"`
	BlocksSent          int64            `json:"blocksSent"`
	HedgesSent          int64            `json:"hedgesSent"`
	VerifyFailures      int64            `json:"verifyFailures"`
	Protocols           map[string]int64 `json:"protocols"`
}

// askWorker sends the worker a stats message ('grits-stats', or
// 'grits-reset-stats' to zero the counters) and returns its answer.
func askWorker(ctx context.Context, b *chromium.Browser, typ string) (workerStats, error) {
	var st workerStats
	err := evalIn(ctx, b, 10*time.Second, `new Promise((ok, no) => {
  if (!navigator.serviceWorker.controller) { no(new Error('no worker controls the page')); return; }
  const ch = new MessageChannel();
  ch.port1.onmessage = (e) => ok(e.data);
  navigator.serviceWorker.controller.postMessage({ type: '`+typ+`' }, [ch.port2]);
})`, &st)
	return st, err
}

// ---- 1. BLAKE3 ----

// blake3JS hashes 1 MiB inputs with the origin's blake3.js and with
// WebCrypto's SHA-256 in turns: three rounds of each, a round being at
// most 100 hashes or 2 s after two warm-up hashes; MB/s per round.
const blake3JS = `(async () => {
  const m = await import('/grits/v1/js/blake3.js');
  const SZ = 1 << 20, N = 4;
  const inputs = [];
  for (let k = 0; k < N; k++) {
    const b = new Uint8Array(SZ);
    for (let o = 0; o < SZ; o += 65536) crypto.getRandomValues(b.subarray(o, o + 65536));
    inputs.push(b);
  }
  const round = async (f) => {
    for (let i = 0; i < 2; i++) await f(inputs[i % N]);
    let n = 0;
    const t0 = performance.now();
    while (n < 100 && performance.now() - t0 < 2000) { await f(inputs[n % N]); n++; }
    const ms = performance.now() - t0;
    return { n, ms, mbps: n * SZ / 1e6 / (ms / 1000) };
  };
  const b3 = [], simd = [], sha = [];
  let simdErr = '';
  for (let r = 0; r < 3; r++) {
    b3.push(await round((x) => m.blake3With('js', x)));
    try {
      simd.push(await round((x) => m.blake3With('wasm-simd', x)));
    } catch (e) { simdErr = String(e); }
    sha.push(await round((x) => crypto.subtle.digest('SHA-256', x)));
  }
  return { b3, simd, sha, simdErr, engine: m.engine(), empty: m.toHex(m.blake3(new Uint8Array(0))),
    same: m.toHex(m.blake3With('js', inputs[0])) === m.toHex(m.blake3(inputs[0])) };
})()`

type hashRound struct {
	N    int     `json:"n"`
	Ms   float64 `json:"ms"`
	MBPS float64 `json:"mbps"`
}

func blake3Bench(ctx context.Context, s *benchSite) ([]Result, error) {
	b, done, err := s.freshBrowser(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := s.open(ctx, b, "/blank.html", false); err != nil {
		return nil, err
	}
	var out struct {
		B3, SIMD, SHA []hashRound
		SIMDErr       string
		Engine        string
		Empty         string
		Same          bool
	}
	if err := evalIn(ctx, b, 2*time.Minute, blake3JS, &out); err != nil {
		return nil, fmt.Errorf("blake3 benchmark: %w", err)
	}
	// BLAKE3 of the empty input, from the BLAKE3 test vectors.
	if want := "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"; out.Empty != want {
		return nil, fmt.Errorf("blake3.js: BLAKE3('') = %s, want %s", out.Empty, want)
	}
	med := func(rs []hashRound) (float64, int) {
		var v []float64
		n := 0
		for _, r := range rs {
			v = append(v, r.MBPS)
			n += r.N
		}
		return median(v), n
	}
	if !out.Same {
		return nil, fmt.Errorf("blake3.js: the engine chosen (%s) and the JavaScript disagree", out.Engine)
	}
	b3, nb3 := med(out.B3)
	sha, nsha := med(out.SHA)
	base := Result{Suite: "browser", Case: "hash 1 MiB inputs", Server: "WebCrypto SHA-256", Protocol: "in page", Requests: nsha,
		MBPerS: sha, Unit: "MB/s", Value: sha, Baseline: "WebCrypto SHA-256", BaselineValue: sha, Ratio: 1,
		Note: fmt.Sprintf("median of %d rounds", len(out.SHA))}
	r := Result{Suite: "browser", Case: "hash 1 MiB inputs", Server: "blake3.js, JavaScript", Protocol: "in page", Requests: nb3,
		MBPerS: b3, Unit: "MB/s", Value: b3, Baseline: "WebCrypto SHA-256", BaselineValue: sha, Ratio: b3 / sha,
		Note: fmt.Sprintf("median of %d rounds; target >= 300 MB/s", len(out.B3))}
	rs := []Result{base, r}
	if len(out.SIMD) > 0 {
		simd, nsimd := med(out.SIMD)
		rs = append(rs, Result{Suite: "browser", Case: "hash 1 MiB inputs", Server: "blake3.js, WebAssembly SIMD", Protocol: "in page", Requests: nsimd,
			MBPerS: simd, Unit: "MB/s", Value: simd, Baseline: "WebCrypto SHA-256", BaselineValue: sha, Ratio: simd / sha,
			Note: fmt.Sprintf("median of %d rounds; %.2fx the JavaScript; engine chosen: %s; target >= 1000 MB/s", len(out.SIMD), simd/b3, out.Engine)})
	} else {
		rs[1].Note += "; WebAssembly SIMD did not run: " + out.SIMDErr
	}
	return rs, nil
}

// ---- 3. verified throughput ----

// throughputJS reads the file through the worker (a same-origin fetch the
// worker answers from volunteers, verifying every block).
const throughputJS = `(async () => {
  const t0 = performance.now();
  const r = await fetch('/big.bin');
  if (!r.ok) throw new Error('status ' + r.status);
  const rd = r.body.getReader();
  let n = 0;
  for (;;) { const { done, value } = await rd.read(); if (done) break; n += value.length; }
  return { ms: performance.now() - t0, bytes: n, verified: r.headers.get('X-Grits-Verified') || '' };
})()`

// directJS fetches the blocks from the volunteer itself, in order, in
// runs of %d blocks a request (/grits/v1/blocks) with %d blocks in
// flight, as the worker does (RUN_BLOCKS, PREFETCH), the same request
// options the worker uses, and no hashing. %s is the volunteer's base
// URL and %s the JSON list of block hashes.
const directJS = `(async (run, par, base, hashes) => {
  const t0 = performance.now();
  let next = 0, n = 0, asked = 0;
  const inflight = [];
  const get = async (hs) => {
    const r = await fetch(base + '/grits/v1/blocks/' + hs.join(','), { mode: 'cors', cache: 'no-store' });
    if (!r.ok) throw new Error(hs[0] + ': status ' + r.status);
    return { n: hs.length, d: new Uint8Array(await r.arrayBuffer()) };
  };
  const fill = () => {
    while (asked < par && next < hashes.length) {
      const hs = hashes.slice(next, next + run);
      next += hs.length;
      asked += hs.length;
      inflight.push(get(hs));
    }
  };
  fill();
  while (inflight.length > 0) { const x = await inflight.shift(); n += x.d.length; asked -= x.n; fill(); }
  const protos = {};
  for (const e of performance.getEntriesByType('resource')) if (e.name.startsWith(base)) protos[e.nextHopProtocol] = (protos[e.nextHopProtocol] || 0) + 1;
  performance.clearResourceTimings();
  return { ms: performance.now() - t0, bytes: n, protocols: protos };
})(%d, %d, %q, %s)`

type transfer struct {
	Ms        float64          `json:"ms"`
	Bytes     int64            `json:"bytes"`
	Verified  string           `json:"verified"`
	Protocols map[string]int64 `json:"protocols"`
}

// blockHashes is the file's leaf blocks: it is cut into fixed chunks of
// tree.DefaultChunkSize, each a block named by its BLAKE3 hash. (Checked:
// the warm-up fetches each from the volunteer, which looks it up in the
// origin's tree.)
func blockHashes(data []byte) []string {
	var hs []string
	for off := 0; off < len(data); off += tree.DefaultChunkSize {
		hs = append(hs, blockstore.Sum(data[off:min(len(data), off+tree.DefaultChunkSize)]).String())
	}
	return hs
}

func throughputBench(ctx context.Context, s *benchSite, data []byte, reps int) ([]Result, error) {
	v := s.vols[0]
	hashes := blockHashes(data)
	// Warm the volunteer: it pulls blocks from the origin on first
	// request; both measured paths then find them on the volunteer.
	c := s.client()
	for _, h := range hashes {
		resp, err := c.Get(v.url + "/grits/v1/block/" + h)
		if err != nil {
			return nil, fmt.Errorf("warm the volunteer: %w", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || blockstore.Sum(b).String() != h {
			return nil, fmt.Errorf("warm the volunteer: block %s: status %d, %d bytes, %v", h, resp.StatusCode, len(b), err)
		}
	}
	c.CloseIdleConnections()
	list, _ := json.Marshal(hashes)
	var worker, direct []float64
	var lastStats workerStats
	var directProtos map[string]int64
	deadline := time.Now().Add(5 * time.Minute)
	for rep := 0; rep < reps && (rep == 0 || time.Now().Before(deadline)); rep++ {
		// A fresh profile each time: nothing in the worker's Cache Storage.
		err := func() error {
			b, done, err := s.freshBrowser(ctx)
			if err != nil {
				return err
			}
			defer done()
			if err := s.open(ctx, b, "/install.html", true); err != nil {
				return err
			}
			// Alternate which goes first: neither always meets a cold
			// connection or a busier machine.
			runDirect := func() error {
				var d transfer
				if err := evalIn(ctx, b, 3*time.Minute, fmt.Sprintf(directJS, workerRun, workerPrefetch, v.url, list), &d); err != nil {
					return fmt.Errorf("unverified fetch: %w", err)
				}
				if d.Bytes != int64(len(data)) {
					return fmt.Errorf("unverified fetch: %d bytes, want %d", d.Bytes, len(data))
				}
				direct = append(direct, float64(d.Bytes)/1e6/(d.Ms/1000))
				directProtos = d.Protocols
				return nil
			}
			runWorker := func() error {
				if _, err := askWorker(ctx, b, "grits-reset-stats"); err != nil {
					return err
				}
				var w transfer
				if err := evalIn(ctx, b, 3*time.Minute, throughputJS, &w); err != nil {
					return fmt.Errorf("through the worker: %w", err)
				}
				st, err := askWorker(ctx, b, "grits-stats")
				if err != nil {
					return err
				}
				if w.Bytes != int64(len(data)) || w.Verified == "" {
					return fmt.Errorf("through the worker: %d bytes (want %d), X-Grits-Verified %q", w.Bytes, len(data), w.Verified)
				}
				if st.BytesFromVolunteers < int64(len(data))*9/10 {
					return fmt.Errorf("through the worker: only %d bytes from volunteers (%+v): not the volunteer path", st.BytesFromVolunteers, st)
				}
				worker = append(worker, float64(w.Bytes)/1e6/(w.Ms/1000))
				lastStats = st
				return nil
			}
			first, second := runDirect, runWorker
			if rep%2 == 1 {
				first, second = runWorker, runDirect
			}
			if err := first(); err != nil {
				return err
			}
			return second()
		}()
		if err != nil {
			return nil, fmt.Errorf("50 MiB, repetition %d: %w", rep+1, err)
		}
	}
	wm, dm := median(worker), median(direct)
	note := fmt.Sprintf("median of %d; %d blocks of 256 KiB, runs of %d, %d blocks ahead", len(worker), len(hashes), workerRun, workerPrefetch)
	base := Result{Suite: "browser", Case: "50 MiB file, loopback", Server: "page fetches block runs, unverified", Protocol: protoList(directProtos),
		Requests: len(hashes), MBPerS: dm, Unit: "MB/s", Value: dm, Baseline: "same blocks, same volunteer, unverified", BaselineValue: dm, Ratio: 1,
		Note: fmt.Sprintf("median of %d: %s", len(direct), fmtList(direct, "%.0f"))}
	r := Result{Suite: "browser", Case: "50 MiB file, loopback", Server: "service worker, verified", Protocol: protoList(lastStats.Protocols),
		Requests: int(lastStats.BlocksSent + lastStats.LookupsSent), MBPerS: wm, Unit: "MB/s", Value: wm, Baseline: "same blocks, same volunteer, unverified",
		BaselineValue: dm, Ratio: wm / dm, Note: note + "; runs " + fmtList(worker, "%.0f") + "; target >= 0.8x"}
	return []Result{base, r}, nil
}

// ---- 2. page loads over a simulated network ----

// loadJS reads the measured page's Navigation Timing: from the start of
// the navigation to the end of its load event (which waits for every
// image), checking that the images did load.
const loadJS = `(() => {
  const n = performance.getEntriesByType('navigation')[0];
  const imgs = [...document.images];
  const res = performance.getEntriesByType('resource');
  const protos = {};
  for (const e of res) { const p = e.nextHopProtocol || '(none)'; protos[p] = (protos[p] || 0) + 1; }
  const r = (x) => Math.round(x);
  const timeline = [['page', r(n.startTime), r(n.workerStart), r(n.fetchStart), r(n.responseStart), r(n.responseEnd)]]
    .concat(res.map((e) => [e.name.replace(/^https?:\/\/[^/]+/, ''), r(e.startTime), r(e.workerStart), r(e.fetchStart), r(e.responseStart), r(e.responseEnd)]));
  return { ms: n.loadEventEnd - n.startTime, nav: n.nextHopProtocol, images: imgs.length,
    loaded: imgs.filter((i) => i.complete && i.naturalWidth > 0).length,
    controlled: navigator.serviceWorker.controller !== null, resources: res.length, protocols: protos,
    domContentLoaded: r(n.domContentLoadedEventEnd), timeline };
})()`

type pageLoad struct {
	// Timeline: the page and each resource as [name, start, workerStart,
	// fetchStart, responseStart, responseEnd] in ms from the navigation's
	// start, printed with GRITS_BENCH_TRACE=1.
	Timeline         [][]any          `json:"timeline"`
	DOMContentLoaded float64          `json:"domContentLoaded"`
	Ms               float64          `json:"ms"`
	Nav              string           `json:"nav"`
	Images           int              `json:"images"`
	Loaded           int              `json:"loaded"`
	Controlled       bool             `json:"controlled"`
	Resources        int              `json:"resources"`
	Protocols        map[string]int64 `json:"protocols"`
}

// loadSample is one measured page load and what it cost the nodes.
type loadSample struct {
	ms                 float64
	originReq, volReq  int64 // HTTP/3 requests that reached the nodes (all paths)
	served             int64 // answers counted by kind (site, root, lookup, block; 2xx and 304)
	lookups, blocks    int64 // the worker's lookupsSent, blocksSent
	relayUDP, relayTCP int64 // datagrams and new TCP connections at the relays
	relayBytes         int64 // bytes through the relays, both ways
	nodeBytes          int64 // bytes the nodes served (bodies)
	nav                string
}

// pageLoadBench loads the page, cold then warm, through the worker and
// straight from the origin, each in a fresh browser profile per
// repetition, and reports the medians. Through the worker twice: with
// the origin's sw_navigate on (a static site's default: the page from
// the worker as well) and off (an app's default: the page itself from
// the origin).
//
// Cold: a fresh profile that has first visited a page without assets on
// the origin: for the worker path /install.html, which registers the
// worker (so it controls the next page, with nothing in its caches); for
// the direct path /blank.html (no worker), so that both paths start with
// an open connection to the origin and only the assets are cold. Warm:
// the same page again, after another asset-less page in between (so the
// measured navigation is never a same-URL reload).
//
// Round trips per asset: counted as HTTP requests that reached the nodes
// during the page load (each request costs its sender at least a round
// trip to that node; requests in parallel share it, so this is the
// upper bound of round trips, and the load time over the RTT the lower
// one). The counts come from each node's own counters (gritsd status
// --json, served.http_requests, before and after the load), minus the
// navigation itself (if it made a request), over the six assets; the worker's lookupsSent and
// blocksSent (grits-stats, reset before the load) say which volunteer
// requests were lookups and which blocks. The relays' datagram and
// connection counts show that the traffic did pass them, over UDP.
func pageLoadBench(ctx context.Context, s *benchSite, reps int, rtt linkRTT) ([]Result, error) {
	type variant struct {
		name, pre, page  string
		worker, navigate bool
	}
	variants := []variant{
		{"origin direct", "/blank.html", "/direct.html", false, false},
		// A static site's default (sw_navigate): pages too come from the
		// worker (its cache, else volunteers).
		{"service worker", "/install.html", "/sw.html", true, true},
		// sw_navigate = false, an app's default: the page from the
		// origin, its files from the worker.
		{"service worker, pages from the origin", "/install.html", "/sw.html", true, false},
	}
	samples := map[string][]loadSample{} // variant + " cold"/" warm"
	deadline := time.Now().Add(10 * time.Minute)
	for rep := 0; rep < reps && (rep == 0 || time.Now().Before(deadline)); rep++ {
		// Each variant goes first in turn: none always meets a cold
		// connection or a busier machine.
		for k := range variants {
			v := variants[(rep+k)%len(variants)]
			err := func() error {
				if v.worker {
					if err := s.setNavigate(ctx, v.navigate); err != nil {
						return err
					}
				}
				b, done, err := s.freshBrowser(ctx)
				if err != nil {
					return err
				}
				defer done()
				for _, phase := range []string{"cold", "warm"} {
					if err := s.open(ctx, b, v.pre, v.worker); err != nil {
						return err
					}
					smp, err := s.measureLoad(ctx, b, v.page, v.worker)
					if err != nil {
						return fmt.Errorf("%s: %w", phase, err)
					}
					samples[v.name+" "+phase] = append(samples[v.name+" "+phase], smp)
				}
				return nil
			}()
			if err != nil {
				return nil, fmt.Errorf("page load, %s, repetition %d: %w", v.name, rep+1, err)
			}
		}
	}
	if err := s.setNavigate(ctx, true); err != nil {
		return nil, err
	}
	// Requests per asset: the load's requests minus the page's own, over
	// the assets. A page the worker answered from its cache (sw_navigate,
	// warm) made none: a load without any request counts 0.
	perAsset := func(x loadSample) float64 {
		return float64(max(0, x.originReq+x.volReq-1)) / float64(len(pageAssets))
	}
	var results []Result
	for _, phase := range []string{"cold", "warm"} {
		base := samples["origin direct "+phase]
		bms := median(msOf(base))
		caseName := fmt.Sprintf("page load %s, RTT %d/%d ms", phase, rtt.origin.Milliseconds(), rtt.volunteer.Milliseconds())
		caseRT := fmt.Sprintf("requests per asset %s, RTT %d/%d ms", phase, rtt.origin.Milliseconds(), rtt.volunteer.Milliseconds())
		bq := medianSample(base)
		results = append(results,
			Result{Suite: "browser", Case: caseName, Server: "origin direct", Protocol: navProto(base), Unit: "ms", Value: bms,
				Millis: bms, Baseline: "origin direct", BaselineValue: bms, Ratio: 1, Requests: len(base),
				Note: fmt.Sprintf("median of %s", fmtList(msOf(base), "%.0f"))},
			Result{Suite: "browser", Case: caseRT, Server: "origin direct", Protocol: navProto(base), Unit: "req/asset", Value: perAsset(bq),
				Baseline: "origin direct", BaselineValue: perAsset(bq), Ratio: 1, Requests: int(bq.originReq + bq.volReq),
				Note: sampleNote(bq, false)})
		for _, v := range variants[1:] {
			sw := samples[v.name+" "+phase]
			wms := median(msOf(sw))
			wq := medianSample(sw)
			results = append(results,
				Result{Suite: "browser", Case: caseName, Server: v.name, Protocol: navProto(sw), Unit: "ms", Value: wms,
					Millis: wms, Baseline: "origin direct", BaselineValue: bms, Ratio: wms / bms, Requests: len(sw),
					Note: fmt.Sprintf("median of %s; ratio < 1 is faster", fmtList(msOf(sw), "%.0f"))},
				Result{Suite: "browser", Case: caseRT, Server: v.name, Protocol: navProto(sw), Unit: "req/asset", Value: perAsset(wq),
					Baseline: "origin direct", BaselineValue: perAsset(bq), Ratio: ratio(perAsset(wq), perAsset(bq)), Requests: int(wq.originReq + wq.volReq),
					Note: sampleNote(wq, true)})
		}
	}
	return results, nil
}

// measureLoad navigates to page and returns its load time from the
// page's Navigation Timing, with the requests it cost each node.
func (s *benchSite) measureLoad(ctx context.Context, b *chromium.Browser, page string, worker bool) (loadSample, error) {
	var smp loadSample
	if worker {
		if _, err := askWorker(ctx, b, "grits-reset-stats"); err != nil {
			return smp, err
		}
	}
	before, err := s.snapshot(ctx)
	if err != nil {
		return smp, err
	}
	if err := s.open(ctx, b, page, worker); err != nil {
		return smp, err
	}
	var pl pageLoad
	if err := evalIn(ctx, b, 10*time.Second, loadJS, &pl); err != nil {
		return smp, err
	}
	if pl.Images != 4 || pl.Loaded != 4 || pl.Controlled != worker {
		return smp, fmt.Errorf("%s: %d of %d images loaded, controlled by the worker %v (want %v)", page, pl.Loaded, pl.Images, pl.Controlled, worker)
	}
	// Let late requests (none expected) land before the counters are read.
	time.Sleep(300 * time.Millisecond)
	if worker {
		st, err := askWorker(ctx, b, "grits-stats")
		if err != nil {
			return smp, err
		}
		smp.lookups, smp.blocks = st.LookupsSent, st.BlocksSent
		if st.VerifyFailures > 0 {
			return smp, fmt.Errorf("%s: the worker saw %d verification failures", page, st.VerifyFailures)
		}
	}
	after, err := s.snapshot(ctx)
	if err != nil {
		return smp, err
	}
	smp.ms, smp.nav = pl.Ms, pl.Nav
	if os.Getenv("GRITS_BENCH_TRACE") != "" {
		fmt.Fprintf(os.Stderr, "  %s (worker %v, sw_navigate %v): load %.0f ms, DOMContentLoaded %.0f; [name start workerStart fetchStart responseStart responseEnd]:\n", page, worker, worker && s.navigate != nil && *s.navigate, pl.Ms, pl.DOMContentLoaded)
		for _, e := range pl.Timeline {
			fmt.Fprintf(os.Stderr, "    %v\n", e)
		}
	}
	for i := range after.nodes {
		// http3_requests counts every request that arrived over HTTP/3,
		// whatever its path (the page, register.js, /grits/v1/peers...);
		// http_requests only the answers of the counted kinds. With no TCP
		// connection through the relays (checked below), every request
		// was HTTP/3, so http3_requests is the number of requests.
		d := after.nodes[i].HTTP3 - before.nodes[i].HTTP3
		if i == 0 {
			smp.originReq = d
		} else {
			smp.volReq += d
		}
		smp.served += after.nodes[i].Requests - before.nodes[i].Requests
		smp.nodeBytes += after.nodes[i].Bytes - before.nodes[i].Bytes
	}
	for i := range after.relays {
		d := after.relays[i].sub(before.relays[i])
		smp.relayUDP += d.Datagrams
		smp.relayTCP += d.TCPConns
		smp.relayBytes += d.UDPUp + d.UDPDown + d.TCPUp + d.TCPDown
	}
	return smp, nil
}

func sampleNote(x loadSample, worker bool) string {
	s := fmt.Sprintf("h3 requests: origin %d, volunteers %d", x.originReq, x.volReq)
	if worker {
		s += fmt.Sprintf(" (worker: %d lookups, %d blocks sent)", x.lookups, x.blocks)
	}
	return s + fmt.Sprintf(", %d of them counted by kind; relays: %d datagrams, %d TCP conns, %d KB through vs %d KB of bodies served",
		x.served, x.relayUDP, x.relayTCP, x.relayBytes/1000, x.nodeBytes/1000)
}

func msOf(xs []loadSample) []float64 {
	var v []float64
	for _, x := range xs {
		v = append(v, x.ms)
	}
	return v
}

// medianSample is the sample with the median load time.
func medianSample(xs []loadSample) loadSample {
	if len(xs) == 0 {
		return loadSample{}
	}
	s := slices.Clone(xs)
	slices.SortFunc(s, func(a, b loadSample) int {
		if a.ms < b.ms {
			return -1
		}
		if a.ms > b.ms {
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// navProto says how the loads reached the nodes: "h3 via relay" when no
// TCP connection went through the relays in any of them (so every request
// was HTTP/3 over the relays' UDP; the nodes are reachable only through
// them), with the page's own nextHopProtocol when the page saw it (a
// navigation the worker forwards shows none); loads that made no request
// at all (the worker answered everything from its cache) say so.
func navProto(xs []loadSample) string {
	p := "h3 via relay"
	m := map[string]int64{}
	none := true
	for _, x := range xs {
		if x.originReq+x.volReq > 0 {
			none = false
		}
		if x.relayTCP > 0 || x.relayUDP == 0 && x.originReq+x.volReq > 0 {
			p = "NOT all h3 via relay"
		}
		if x.nav != "" {
			m[x.nav]++
		}
	}
	if none {
		return "no request (the worker's cache)"
	}
	if len(m) > 0 {
		p += " (page: " + protoList(m) + ")"
	}
	return p
}

func protoList(m map[string]int64) string {
	var ks []string
	for k := range m {
		if k == "" {
			k = "?"
		}
		ks = append(ks, k)
	}
	slices.Sort(ks)
	if len(ks) == 0 {
		return "?"
	}
	return strings.Join(ks, "+")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func fmtList(v []float64, f string) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, fmt.Sprintf(f, x))
	}
	return strings.Join(parts, ", ")
}

// printBrowser prints the browser rows: each measured path beside its
// named baseline, with the ratio (value over the baseline's value).
func printBrowser(w io.Writer, rs []Result) {
	ratioTable("browser", "headless Chromium")(w, rs)
}

// ratioTable prints a suite's rows as value beside baseline: the form
// every suite but gateway's uses.
func ratioTable(suite, about string) func(io.Writer, []Result) {
	return func(w io.Writer, rs []Result) {
		var rows []Result
		for _, r := range rs {
			if r.Suite == suite {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s suite (%s; ratio = value / baseline's value)\n", suite, about)
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "case\tpath\tprotocol\tvalue\tbaseline\tbaseline value\tratio\tnotes")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\t%s\t%.2fx\t%s\n", r.Case, r.Server, r.Protocol, fmtValue(r.Value), r.Unit,
				r.Baseline, fmtValue(r.BaselineValue), r.Ratio, r.Note)
		}
		tw.Flush()
	}
}

func fmtValue(v float64) string {
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grits-cdn/grits/gateway"
)

// checkPage fetches files through the page (so through the service
// worker once it controls the page) and prints their SHA-256.
const checkPage = `<!doctype html><html><head><meta charset="utf-8">
<script src="/grits/v1/register.js"></script></head><body><pre id="out">pending</pre>
<script>
(async () => {
  const out = document.getElementById('out');
  // The worker claims this page once it is active. Headless Chromium's
  // virtual time runs ahead while nothing loads, so keep a request in
  // flight (real time passes) while the worker installs.
  for (let i = 0; i < 100 && !navigator.serviceWorker.controller; i++) {
    await fetch('/grits/v1/root?wait=' + i, { cache: 'no-store' });
  }
  if (!navigator.serviceWorker.controller) { out.textContent = 'uncontrolled'; return; }
  const lines = [];
  for (const p of ['/media/big.bin', '/css/site.css', '/js/app.js']) {
    try {
      const r = await fetch(p);
      const h = await crypto.subtle.digest('SHA-256', await r.arrayBuffer());
      lines.push(p + '=' + [...new Uint8Array(h)].map((x) => x.toString(16).padStart(2, '0')).join(''));
    } catch (e) { lines.push(p + '=error:' + e); }
  }
  try {
    // A range, as a video player seeking asks for one.
    const r = await fetch('/media/big.bin', { headers: { Range: 'bytes=1000000-1099999' } });
    const h = await crypto.subtle.digest('SHA-256', await r.arrayBuffer());
    lines.push('range=' + r.status + ':' + [...new Uint8Array(h)].map((x) => x.toString(16).padStart(2, '0')).join(''));
  } catch (e) { lines.push('range=error:' + e); }
  out.textContent = 'done;' + lines.join(';');
})();
</script></body></html>`

// swSite is an origin serving a fixture site with one certificate for
// every node (accepted by Chromium through its SPKI hash), volunteers
// enrolled on demand, and a Chromium profile that persists across visits.
type swSite struct {
	t         *testing.T
	o         dataDir
	origin    *server
	originURL string
	leaf      tls.Certificate
	pool      *x509.CertPool
	tlsFlags  []string
	profile   string
	lastLog   string
}

func newSWSite(t *testing.T, files map[string][]byte, originFlags ...string) *swSite {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v (apt-get install chromium; .ci/run does)", chromiumPath, err)
	}
	src := t.TempDir()
	for p, b := range files {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), b, 0o644)
	}
	s := &swSite{t: t, profile: t.TempDir(), pool: x509.NewCertPool()}
	s.o, _ = newOriginWithKey(t)
	s.o.must(t, "import", src)
	ca, err := gateway.LoadDevCA(string(s.o))
	if err != nil {
		t.Fatal(err)
	}
	if s.leaf, err = ca.Issue([]string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	s.pool.AddCert(ca.Cert)
	certPath, keyPath := writeLeaf(t, s.leaf)
	s.tlsFlags = []string{"--tls-cert", certPath, "--tls-key", keyPath, "--gossip", "127.0.0.1:0", "--gossip-profile", "local"}
	s.origin = startServe(t, s.o, append(append([]string(nil), s.tlsFlags...), originFlags...)...)
	addr, _ := gwHTTPS(t, s.origin)
	s.originURL = "https://" + addr
	return s
}

// enrol joins a volunteer and starts it with extra serve flags.
func (s *swSite) enrol(extra ...string) *server {
	s.t.Helper()
	tok := strings.TrimSpace(s.o.must(s.t, "token", "--origin-addr", s.origin.addr).stdout)
	v := dataDir(filepath.Join(s.t.TempDir(), "volunteer"))
	v.must(s.t, "join", tok)
	return startServe(s.t, v, append(s.tlsFlags, extra...)...)
}

// faultyVolunteer enrols a volunteer that advertises the URL of a proxy
// in front of it, and returns that URL and the volunteer. hang, if set,
// makes the proxy hold the requests it matches without answering; modify
// changes the volunteer's answers on their way.
func (s *swSite) faultyVolunteer(hang func(*http.Request) bool, modify func(*http.Response) error) (string, *server) {
	s.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	u := "https://" + ln.Addr().String()
	v := s.enrol("--url", u)
	addr, _ := gwHTTPS(s.t, v)
	target, _ := url.Parse("https://" + addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.pool}, ForceAttemptHTTP2: true}
	rp.ModifyResponse = modify
	h := http.Handler(rp)
	if hang != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hang(r) {
				select {
				case <-r.Context().Done():
				case <-time.After(60 * time.Second):
				}
				return
			}
			rp.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.leaf}, NextProtos: []string{"h2", "http/1.1"}}}
	go srv.ServeTLS(ln, "", "")
	s.t.Cleanup(func() { srv.Close() })
	return u, v
}

// waitPeers waits until the origin lists n volunteers, and must if set.
func (s *swSite) waitPeers(n int, must string) {
	s.t.Helper()
	c := gwNewH2(s.t, s.pool, nil)
	eventually(s.t, 30*time.Second, 200*time.Millisecond, func() error {
		_, body, err := c.try("GET", s.originURL+"/grits/v1/peers", nil)
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), must) || strings.Count(string(body), "https://") < n {
			return fmt.Errorf("peers: %s", body)
		}
		return nil
	})
}

// visit loads url in Chromium with the site's profile and returns the DOM.
func (s *swSite) visit(url string) string {
	s.t.Helper()
	dom, log := chromiumDump(s.t, s.profile, []string{"--ignore-certificate-errors-spki-list=" + gateway.SPKIHash(s.leaf.Leaf)}, url)
	s.lastLog = log
	return dom
}

// chromiumDump runs headless Chromium on url with a profile and flags and
// returns the DOM it prints and its log. Headless Chromium on this kind
// of machine now and then crashes (SIGSEGV) at start or on its way out:
// a crash after the page was printed is fine, one before is retried.
func chromiumDump(t *testing.T, profile string, flags []string, url string) (string, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		args := append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile, "--no-first-run",
			"--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"}, flags...)
		b := exec.CommandContext(ctx, chromiumPath, append(args, "--dump-dom", url)...)
		var berr strings.Builder
		b.Stderr = &berr
		dom, err := b.Output()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || strings.Contains(string(dom), "</html>") {
			return string(dom), berr.String()
		}
		if attempt == 3 || timedOut {
			t.Fatalf("chromium: %v\n%.4000s", err, berr.String())
		}
		t.Logf("chromium: %v before printing the page; again", err)
	}
}

// visitControlled visits the check page until the worker controls it and
// it has printed its results (bounded).
func (s *swSite) visitControlled() string {
	s.t.Helper()
	for i := 0; ; i++ {
		page := s.visit(s.originURL + "/")
		if strings.Contains(page, `<pre id="out">done;`) {
			return page
		}
		if i == 5 {
			s.t.Fatalf("no visit was controlled by the service worker:\n%.2000s\nchromium log:\n%.4000s", page, s.lastLog)
		}
	}
}

// checkHashes fails the test unless the page printed the SHA-256 of
// every file but the page itself.
func checkHashes(t *testing.T, page string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		if p == "/index.html" {
			continue
		}
		sum := sha256.Sum256(b)
		if want := p + "=" + hex.EncodeToString(sum[:]); !strings.Contains(page, want) {
			t.Errorf("%s: wrong bytes through the worker; page says:\n%.1000s", p, page)
		}
	}
	sum := sha256.Sum256(files["/media/big.bin"][1000000:1100000])
	if want := "range=206:" + hex.EncodeToString(sum[:]); !strings.Contains(page, want) {
		t.Errorf("range request through the worker: want %s; page says:\n%.1000s", want, page)
	}
}

func checkFiles() map[string][]byte {
	return map[string][]byte{
		"/index.html":    []byte(checkPage),
		"/media/big.bin": randBytes(7, 2<<20), // 8 blocks
		"/css/site.css":  bytes.Repeat([]byte("body { color: #123 }\n"), 200),
		"/js/app.js":     []byte("console.log('app');\n"),
	}
}

// TestServiceWorkerSurvivesACorruptVolunteer: one of two volunteers is
// reached through a proxy that flips a byte in every block it passes.
// The page still gets every file byte-exact through the service worker,
// and the origin hears from the browser which volunteer lied.
// (Not parallel, like the other browser tests: a browser starved of CPU
// by other browsers may not finish installing the worker in a visit.)
func TestServiceWorkerSurvivesACorruptVolunteer(t *testing.T) {
	files := checkFiles()
	s := newSWSite(t, files)
	s.enrol() // an honest volunteer

	// The liar: a volunteer whose advertised URL is a proxy that flips a
	// byte in each block.
	var corrupted atomic.Int64
	liarURL, _ := s.faultyVolunteer(nil, func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, "/grits/v1/block/") || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if len(b) > 0 {
			b[len(b)/2] ^= 0x40
			corrupted.Add(1)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.Header.Del("Content-Encoding")
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	})
	s.waitPeers(2, liarURL)

	checkHashes(t, s.visitControlled(), files)
	if corrupted.Load() == 0 {
		t.Fatal("the liar was never asked for a block: the test proved nothing")
	}
	eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		r := s.o.run(t, "status", "--json")
		var st struct {
			Reports []struct {
				Peer  string `json:"peer"`
				Count int    `json:"count"`
			} `json:"reports"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			return err
		}
		for _, rep := range st.Reports {
			if rep.Peer == liarURL {
				return nil
			}
		}
		return fmt.Errorf("no report about %s: %s", liarURL, r.stdout)
	})
	t.Logf("the liar corrupted %d blocks; every file arrived intact and the origin got a report", corrupted.Load())
}

// TestServiceWorkerServesWithTheOriginDown: after a visit, the origin
// stops; the next visit (a new browser process with the same profile)
// still gets the page and every file, byte-exact, from the volunteers
// under a root the worker kept or the volunteers offered.
func TestServiceWorkerServesWithTheOriginDown(t *testing.T) {
	files := checkFiles()
	s := newSWSite(t, files)
	s.enrol()
	s.enrol()
	s.waitPeers(2, "")
	checkHashes(t, s.visitControlled(), files)

	s.origin.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.origin.exited:
	case <-time.After(serveStopTimeout):
		t.Fatal("origin did not stop")
	}
	page := s.visitControlled()
	if !strings.Contains(page, "done;") {
		t.Fatalf("page with the origin down:\n%.2000s", page)
	}
	checkHashes(t, page, files)
}

func writeLeaf(t *testing.T, c tls.Certificate) (string, string) {
	t.Helper()
	dir := t.TempDir()
	var cb bytes.Buffer
	for _, der := range c.Certificate {
		cb.Write(pemBlock("CERTIFICATE", der))
	}
	kd, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls.key")
	os.WriteFile(certPath, cb.Bytes(), 0o644)
	os.WriteFile(keyPath, pemBlock("PRIVATE KEY", kd), 0o600)
	return certPath, keyPath
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

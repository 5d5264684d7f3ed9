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
  out.textContent = 'done;' + lines.join(';');
})();
</script></body></html>`

// TestServiceWorkerSurvivesACorruptVolunteer: one of two volunteers is
// reached through a proxy that flips a byte in every block it passes.
// The page still gets every file byte-exact through the service worker,
// and the origin hears from the browser which volunteer lied.
func TestServiceWorkerSurvivesACorruptVolunteer(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v (apt-get install chromium; .ci/run does)", chromiumPath, err)
	}
	// Not parallel: a browser starved of CPU by other browsers may not
	// finish installing the worker within a visit.
	files := map[string][]byte{
		"/index.html":    []byte(checkPage),
		"/media/big.bin": randBytes(7, 2<<20), // 8 blocks
		"/css/site.css":  bytes.Repeat([]byte("body { color: #123 }\n"), 200),
		"/js/app.js":     []byte("console.log('app');\n"),
	}
	src := t.TempDir()
	for p, b := range files {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), b, 0o644)
	}
	o, _ := newOriginWithKey(t)
	o.must(t, "import", src)

	// One certificate for every server, accepted by Chromium by its key.
	ca, err := gateway.LoadDevCA(string(o))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := writeLeaf(t, leaf)
	tlsFlags := []string{"--tls-cert", certPath, "--tls-key", keyPath, "--gossip", "127.0.0.1:0", "--gossip-profile", "local"}

	os_ := startServe(t, o, tlsFlags...)
	originHTTPS, _ := gwHTTPS(t, os_)
	enrol := func(extra ...string) *server {
		tok := strings.TrimSpace(o.must(t, "token", "--origin-addr", os_.addr).stdout)
		v := dataDir(filepath.Join(t.TempDir(), "volunteer"))
		v.must(t, "join", tok)
		return startServe(t, v, append(tlsFlags, extra...)...)
	}
	enrol() // an honest volunteer

	// The liar: a volunteer whose advertised URL is a proxy that flips a
	// byte in each block.
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	liarURL := "https://" + proxyLn.Addr().String()
	liar := enrol("--url", liarURL)
	liarHTTPS, _ := gwHTTPS(t, liar)
	var corrupted atomic.Int64
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	target, _ := url.Parse("https://" + liarHTTPS)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	rp.ModifyResponse = func(resp *http.Response) error {
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
	}
	proxy := &http.Server{Handler: rp, TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"h2", "http/1.1"}}}
	go proxy.ServeTLS(proxyLn, "", "")
	t.Cleanup(func() { proxy.Close() })

	originURL := "https://" + originHTTPS
	c := gwNewH2(t, pool, nil)
	eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		_, body := c.get(t, originURL+"/grits/v1/peers")
		if !strings.Contains(string(body), liarURL) || strings.Count(string(body), "https://") < 2 {
			return fmt.Errorf("peers: %s", body)
		}
		return nil
	})

	profile := t.TempDir()
	var lastLog string
	visit := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		b := exec.CommandContext(ctx, chromiumPath, "--headless=new", "--no-sandbox", "--disable-gpu",
			"--user-data-dir="+profile, "--no-first-run",
			"--ignore-certificate-errors-spki-list="+gateway.SPKIHash(leaf.Leaf),
			"--enable-logging=stderr", "--v=0",
			"--virtual-time-budget=10000", "--dump-dom", originURL+"/")
		var berr strings.Builder
		b.Stderr = &berr
		dom, err := b.Output()
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, berr.String())
		}
		lastLog = berr.String()
		return string(dom)
	}
	var page string
	for i := 0; ; i++ {
		page = visit()
		if strings.Contains(page, `<pre id="out">done;`) {
			break
		}
		if i == 5 {
			t.Fatalf("no visit was controlled by the service worker:\n%.2000s\nchromium log:\n%.4000s", page, lastLog)
		}
	}
	for p, b := range files {
		if p == "/index.html" {
			continue
		}
		sum := sha256.Sum256(b)
		if want := p + "=" + hex.EncodeToString(sum[:]); !strings.Contains(page, want) {
			t.Errorf("%s: wrong bytes through the worker; page says:\n%.1000s", p, page)
		}
	}
	if corrupted.Load() == 0 {
		t.Fatal("the liar was never asked for a block: the test proved nothing")
	}
	eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		r := o.run(t, "status", "--json")
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

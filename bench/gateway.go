package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/gateway"
)

type blockCase struct {
	name  string
	size  int
	count int
}

// gatewaySuite: block GETs from gritsd's gateway against nginx serving
// the same bytes from disk at the same URL paths.
func gatewaySuite(ctx context.Context, work string, quick bool) ([]Result, error) {
	for _, tool := range []string{"nginx", "h2load"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: apt-get install nginx-light nghttp2-client", tool)
		}
	}
	bin, err := gritsdBinary(ctx, work)
	if err != nil {
		return nil, err
	}
	cases := []blockCase{{"16 KiB blocks", 16 << 10, 512}, {"256 KiB blocks", 256 << 10, 128}}
	requests := 40000
	if quick {
		requests = 4000
	}
	origin := filepath.Join(work, "origin")
	site := filepath.Join(work, "site")
	nroot := filepath.Join(work, "nginx-root")
	urls := map[string][]string{}
	for _, c := range cases {
		for i := range c.count {
			b := make([]byte, c.size)
			rand.Read(b)
			h := blockstore.Sum(b)
			p := filepath.Join(site, strings.ReplaceAll(c.name, " ", "-"), fmt.Sprintf("f%04d.bin", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return nil, err
			}
			np := filepath.Join(nroot, "grits", "v1", "block", h.String())
			os.MkdirAll(filepath.Dir(np), 0o755)
			if err := os.WriteFile(np, b, 0o644); err != nil {
				return nil, err
			}
			urls[c.name] = append(urls[c.name], "/grits/v1/block/"+h.String())
		}
	}
	if out, err := exec.CommandContext(ctx, bin, "--data", origin, "init", "--origin").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("init: %v: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, bin, "--data", origin, "import", site).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("import: %v: %s", err, out)
	}
	// One certificate (ECDSA P-256 from the origin's development CA) for
	// both servers: the same handshake cost.
	ca, err := gateway.LoadDevCA(origin)
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue([]string{"localhost", "127.0.0.1"}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(work, "tls.pem"), filepath.Join(work, "tls.key")
	if err := writePair(certPath, keyPath, leaf); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	gritsAddr, stopGrits, err := startGritsd(ctx, bin, origin, certPath, keyPath)
	if err != nil {
		return nil, err
	}
	defer stopGrits()
	nginxAddr, stopNginx, err := startNginx(ctx, work, nroot, certPath, keyPath)
	if err != nil {
		return nil, err
	}
	defer stopNginx()

	var results []Result
	for _, c := range cases {
		list := urls[c.name]
		var bases, gs []Result
		for range h2Rounds {
			base, err := h2load(ctx, work, "https://"+nginxAddr, list, requests)
			if err != nil {
				return nil, fmt.Errorf("h2load nginx: %w", err)
			}
			g, err := h2load(ctx, work, "https://"+gritsAddr, list, requests)
			if err != nil {
				return nil, fmt.Errorf("h2load gritsd: %w", err)
			}
			bases, gs = append(bases, base), append(gs, g)
			fmt.Fprintf(os.Stderr, "%s, h2load round %d: nginx %.0f req/s, gritsd %.0f req/s (%.2fx)\n",
				c.name, len(gs), base.ReqPerS, g.ReqPerS, g.ReqPerS/base.ReqPerS)
		}
		base, g := medianResult(bases), medianResult(gs)
		base.Suite, base.Case, base.Server, base.Protocol, base.Ratio = "gateway", c.name, "nginx", "h2 (h2load)", 1
		g.Suite, g.Case, g.Server, g.Protocol, g.Ratio = "gateway", c.name, "gritsd", "h2 (h2load)", g.ReqPerS/base.ReqPerS
		h2go, err := goLoad(ctx, "https://"+gritsAddr, list, requests, pool, false)
		if err != nil {
			return nil, fmt.Errorf("go h2 client: %w", err)
		}
		h2go.Suite, h2go.Case, h2go.Server, h2go.Protocol, h2go.Ratio = "gateway", c.name, "gritsd", "h2 (Go client)", h2go.ReqPerS/base.ReqPerS
		h3, err := goLoad(ctx, "https://"+gritsAddr, list, requests, pool, true)
		if err != nil {
			return nil, fmt.Errorf("go h3 client: %w", err)
		}
		h3.Suite, h3.Case, h3.Server, h3.Protocol, h3.Ratio = "gateway", c.name, "gritsd", "h3 (Go client)", h3.ReqPerS/base.ReqPerS
		results = append(results, base, g, h2go, h3)
	}
	return results, nil
}

// h2Rounds is how often the two servers are measured in turn with
// h2load; each is reported at its median round, since one round on a
// shared machine can land on another process's burst of load.
const h2Rounds = 3

// medianResult is the round with the median request rate.
func medianResult(rs []Result) Result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b Result) int { return cmp.Compare(a.ReqPerS, b.ReqPerS) })
	return s[len(s)/2]
}

func writePair(certPath, keyPath string, c tls.Certificate) error {
	var cb []byte
	for _, der := range c.Certificate {
		cb = append(cb, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, cb, 0o644)
}

func startGritsd(ctx context.Context, bin, data, cert, key string) (string, func(), error) {
	cmd := exec.CommandContext(ctx, bin, "--data", data, "serve", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--https", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--log-level", "error",
		"--rate-limit", "-1") // the load generator is one address
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "https on "); ok {
				found <- strings.Fields(rest)[0]
			}
		}
	}()
	select {
	case a := <-found:
		return a, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("gritsd serve did not start")
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startNginx(ctx context.Context, work, root, cert, key string) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path %[1]s/nginx-tmp;
  proxy_temp_path %[1]s/nginx-tmp;
  fastcgi_temp_path %[1]s/nginx-tmp;
  uwsgi_temp_path %[1]s/nginx-tmp;
  scgi_temp_path %[1]s/nginx-tmp;
  server {
    listen %[2]s ssl http2;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    # Debian's nginx.conf enables TLS 1.3, nginx 1.22's built-in default
    # does not: without this line nginx alone would speak TLS 1.2 to h2load.
    ssl_protocols TLSv1.2 TLSv1.3;
    root %[5]s;
    location /grits/v1/block/ {
      add_header Cache-Control "public, max-age=31536000, immutable";
      add_header Access-Control-Allow-Origin "*";
      etag on;
    }
  }
}
`, work, addr, cert, key, root)
	path := filepath.Join(work, "nginx.conf")
	os.MkdirAll(filepath.Join(work, "nginx-tmp"), 0o755)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, "nginx", "-c", path, "-p", work)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("nginx did not start: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var h2loadSummary = regexp.MustCompile(`finished in ([\d.]+)(m?s), ([\d.]+) req/s, ([\d.]+)([KMG]?B)/s`)
var h2loadDone = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed`)

// h2load runs h2load: 16 connections, 16 streams each, over the URLs.
func h2load(ctx context.Context, work, base string, paths []string, n int) (Result, error) {
	list := filepath.Join(work, "urls.txt")
	var sb strings.Builder
	for _, p := range paths {
		sb.WriteString(base + p + "\n")
	}
	if err := os.WriteFile(list, []byte(sb.String()), 0o644); err != nil {
		return Result{}, err
	}
	out, err := exec.CommandContext(ctx, "h2load", "-n", strconv.Itoa(n), "-c", "16", "-m", "16", "-i", list).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("%v: %s", err, out)
	}
	m := h2loadSummary.FindStringSubmatch(string(out))
	d := h2loadDone.FindStringSubmatch(string(out))
	if m == nil || d == nil {
		return Result{}, fmt.Errorf("cannot read h2load's summary:\n%s", out)
	}
	if d[3] != "0" {
		return Result{}, fmt.Errorf("h2load: %s requests failed:\n%s", d[3], out)
	}
	rps, _ := strconv.ParseFloat(m[3], 64)
	mbs, _ := strconv.ParseFloat(m[4], 64)
	switch m[5] {
	case "KB":
		mbs /= 1024
	case "GB":
		mbs *= 1024
	case "B":
		mbs /= 1 << 20
	}
	mbs *= (1 << 20) / 1e6 // h2load's MB are MiB
	total, _ := strconv.Atoi(d[1])
	return Result{Requests: total, ReqPerS: rps, MBPerS: mbs}, nil
}

// goLoad fetches n URLs with 64 concurrent requests over one client
// (HTTP/2 or HTTP/3), reading every body.
func goLoad(ctx context.Context, base string, paths []string, n int, pool *x509.CertPool, h3 bool) (Result, error) {
	tlsc := &tls.Config{RootCAs: pool}
	var rt http.RoundTripper
	if h3 {
		t := &http3.Transport{TLSClientConfig: tlsc}
		defer t.Close()
		rt = t
	} else {
		t := &http.Transport{TLSClientConfig: tlsc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}
		defer t.CloseIdleConnections()
		rt = t
	}
	client := &http.Client{Transport: rt, Timeout: 60 * time.Second}
	var next, bytes atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", base+paths[i%int64(len(paths))], nil)
				resp, err := client.Do(req)
				if err == nil {
					var k int64
					k, err = io.CopyBuffer(io.Discard, resp.Body, buf)
					resp.Body.Close()
					bytes.Add(k)
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	if firstErr != nil {
		return Result{}, firstErr
	}
	return Result{Requests: n, ReqPerS: float64(n) / el, MBPerS: float64(bytes.Load()) / el / 1e6}, nil
}

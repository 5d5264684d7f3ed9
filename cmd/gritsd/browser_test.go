package main_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/gateway"
)

// chromiumPath is Debian's Chromium (.ci/run installs it).
const chromiumPath = "/usr/bin/chromium"

// TestDemoInChromium loads the demo's site in a real Chromium, the way
// gritsd demo --open does it: a fresh profile that accepts the demo's
// certificate by its SPKI hash, HTTP/3 forced for the origin. The page
// renders, its script runs in a secure context (the service worker API
// is there), and the origin counts requests that came over HTTP/3.
func TestDemoInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v (apt-get install chromium; .ci/run does)", chromiumPath, err)
	}
	t.Parallel()
	port := gwFreePorts(t)
	dir := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(gritsdBin, "demo", "--port", strconv.Itoa(port), "--dir", dir)
	cmd.Env = baseEnv()
	var stderr lockedBuffer
	cmd.Stderr, cmd.Stdout = &stderr, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("gritsd demo stderr:\n%s", stderr.String())
		}
	})
	origin := fmt.Sprintf("https://127.0.0.1:%d", port)
	eventually(t, 90*time.Second, 100*time.Millisecond, func() error {
		if !strings.Contains(stderr.String(), "\n  open "+origin+"/\n") {
			return fmt.Errorf("demo has not printed its URL yet")
		}
		return nil
	})
	raw, err := os.ReadFile(filepath.Join(dir, "tls.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	browser := exec.CommandContext(ctx, chromiumPath, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--no-first-run",
		"--ignore-certificate-errors-spki-list="+gateway.SPKIHash(leaf),
		fmt.Sprintf("--origin-to-force-quic-on=127.0.0.1:%d", port),
		"--virtual-time-budget=5000", "--dump-dom", origin+"/")
	var berr strings.Builder
	browser.Stderr = &berr
	dom, err := browser.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, berr.String())
	}
	page := string(dom)
	if !strings.Contains(page, "Welcome to the grits demo") {
		t.Fatalf("Chromium did not render the demo page:\n%.2000s\nchromium stderr:\n%.2000s", page, berr.String())
	}
	// status.js ran, in a context where service workers exist (HTTPS
	// the browser trusts: a certificate error would hide the API).
	if strings.Contains(page, "checking…") || strings.Contains(page, "not supported") {
		t.Fatalf("the page's script did not run in a secure context:\n%.2000s", page)
	}
	st := dataDir(filepath.Join(dir, "origin")).mustHTTP3(t)
	if st == 0 {
		t.Fatal("the origin served no request over HTTP/3 although Chromium was told to use it")
	}
	t.Logf("origin served %d requests over HTTP/3 to Chromium", st)
}

// mustHTTP3 is the number of HTTP/3 requests the daemon on d served.
func (d dataDir) mustHTTP3(t *testing.T) int64 {
	t.Helper()
	r := d.run(t, "status", "--json")
	if r.code != 0 {
		t.Fatalf("status: %s", r)
	}
	var st struct {
		Served struct {
			HTTP3 *int64 `json:"http3_requests"`
		} `json:"served"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Served.HTTP3 == nil {
		t.Fatalf("status has no served.http3_requests (%v):\n%s", err, r.stdout)
	}
	return *st.Served.HTTP3
}

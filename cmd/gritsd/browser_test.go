package main_test

import (
	"context"
	"crypto/x509"
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
	"github.com/grits-cdn/grits/internal/chromium"
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
	// Not parallel: a browser starved of CPU by other browsers may not
	// finish installing the worker within a visit.
	dir, port := startDemo(t)
	origin := fmt.Sprintf("https://127.0.0.1:%d", port)
	ca := demoCA(t, dir)

	page, log := chromiumDump(t, t.TempDir(), []string{
		"--ignore-certificate-errors-spki-list=" + gateway.SPKIHash(ca),
		fmt.Sprintf("--origin-to-force-quic-on=127.0.0.1:%d", port),
	}, origin+"/")
	if !strings.Contains(page, "Welcome to the grits demo") {
		t.Fatalf("Chromium did not render the demo page:\n%.2000s\nchromium stderr:\n%.2000s", page, log)
	}
	// status.js ran, in a context where service workers exist (HTTPS
	// the browser trusts: a certificate error would hide the API).
	if strings.Contains(page, "checking…") || strings.Contains(page, "not supported") {
		t.Fatalf("the page's script did not run in a secure context:\n%.2000s", page)
	}
	st := dataDir(filepath.Join(dir, "origin")).counts(t).HTTP3
	if st == 0 {
		t.Fatal("the origin served no request over HTTP/3 although Chromium was told to use it")
	}
	t.Logf("origin served %d requests over HTTP/3 to Chromium", st)
}

// TestServiceWorkerFetchesFromVolunteers: gritsd demo in Chromium. The
// first visit registers the service worker; the gallery page, visited
// next, gets its pictures through the worker from the volunteers
// (counted on the nodes), verified.
func TestServiceWorkerFetchesFromVolunteers(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v (apt-get install chromium; .ci/run does)", chromiumPath, err)
	}
	// Not parallel: a browser starved of CPU by other browsers may not
	// finish installing the worker within a visit.
	dir, port := startDemo(t)
	origin := fmt.Sprintf("https://127.0.0.1:%d", port)
	ca := demoCA(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := chromium.Start(ctx, chromium.Options{Profile: t.TempDir(), SPKI: gateway.SPKIHash(ca),
		ForceQUIC: []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1), fmt.Sprintf("127.0.0.1:%d", port+2)}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	nodes := []dataDir{dataDir(filepath.Join(dir, "origin")), dataDir(filepath.Join(dir, "volunteer1")), dataDir(filepath.Join(dir, "volunteer2"))}
	// The origin lists the volunteers before the worker can use them.
	eventually(t, swarmWait, 200*time.Millisecond, func() error {
		c := gwNewH2(t, gwCAPool(t, filepath.Join(dir, "origin", "ca.pem")), nil)
		_, body, err := c.try("GET", origin+"/grits/v1/peers", nil)
		if err != nil {
			return err
		}
		if strings.Count(string(body), "https://") < 2 {
			return fmt.Errorf("peers: %s", body)
		}
		return nil
	})
	// The first visit registers the worker, which claims the page.
	if err := b.Navigate(ctx, origin+"/"); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, `navigator.serviceWorker.controller !== null`); err != nil {
		t.Fatalf("the worker never controlled the demo page: %v", err)
	}
	var before [3]int64
	for i, d := range nodes {
		before[i] = d.counts(t).Bytes
	}
	// The gallery's pictures are new to this browser: the worker gets
	// them from the volunteers.
	if err := b.Navigate(ctx, origin+"/gallery/"); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(ctx, `[...document.images].every((i) => i.complete && i.naturalWidth > 0)`); err != nil {
		t.Fatalf("the gallery's pictures did not load: %v", err)
	}
	var delta [3]int64
	for i, d := range nodes {
		delta[i] = d.counts(t).Bytes - before[i]
	}
	vol := delta[1] + delta[2]
	share := float64(vol) / float64(vol+delta[0])
	t.Logf("gallery visit: origin %d B, volunteers %d B + %d B (%.0f%% from volunteers)", delta[0], delta[1], delta[2], 100*share)
	if vol == 0 || share < 0.9 {
		t.Fatalf("volunteers served %d of %d bytes of the gallery visit", vol, vol+delta[0])
	}
}

// startDemo runs gritsd demo on three free ports until the test ends.
// Ports picked free can be taken by another process before the demo
// binds them (other tests' random ports): a start that fails on a busy
// address is retried on new ones.
func startDemo(t *testing.T) (dir string, port int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port = gwFreePorts(t)
		dir = filepath.Join(t.TempDir(), "demo")
		cmd := exec.Command(gritsdBin, "demo", "--port", strconv.Itoa(port), "--dir", dir)
		cmd.Env = baseEnv()
		stderr := &lockedBuffer{}
		cmd.Stderr, cmd.Stdout = stderr, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		stop := func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		want := fmt.Sprintf("\n  open https://127.0.0.1:%d/\n", port)
		deadline := time.Now().Add(90 * time.Second)
		for !strings.Contains(stderr.String(), want) {
			select {
			case <-done:
				if strings.Contains(stderr.String(), "address already in use") && attempt < 3 {
					t.Logf("demo ports taken meanwhile; retrying: %s", stderr.String())
					goto retry
				}
				t.Fatalf("demo exited:\n%s", stderr.String())
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("demo printed no URL:\n%s", stderr.String())
			}
		}
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("gritsd demo stderr:\n%s", stderr.String())
			}
		})
		return dir, port
	retry:
	}
}

// demoCA is the origin's development CA of gritsd demo --dir: every
// node's certificate comes from it, and demo --open pins its SPKI.
func demoCA(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "origin", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	if blk == nil {
		t.Fatalf("%s: no PEM block", filepath.Join(dir, "origin", "ca.pem"))
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

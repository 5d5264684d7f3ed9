package main_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/tree"
)

var gwServedRE = regexp.MustCompile(`served to browsers: origin ([0-9.]+ [KMGTPE]?i?B)`)

// TestDemoCommand runs gritsd demo: the origin serves the sample site
// over HTTPS on the given port, a volunteer on the next one serves the
// API with a certificate from the same CA, the demo reports the bytes
// served, and SIGINT stops it all cleanly; run again in its --dir, the
// demo serves the same site with the same keys.
func TestDemoCommand(t *testing.T) {
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
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("gritsd demo stderr:\n%s", stderr.String())
		}
	})
	waitFor := func(what string, timeout time.Duration, f func(string) bool) {
		t.Helper()
		eventually(t, timeout, 100*time.Millisecond, func() error {
			select {
			case <-exited:
				t.Fatalf("demo exited (%v) while waiting for %s\n%s", cmd.ProcessState, what, stderr.String())
			default:
			}
			if !f(stderr.String()) {
				return fmt.Errorf("no %s on the demo's stderr yet", what)
			}
			return nil
		})
	}
	origin := fmt.Sprintf("https://127.0.0.1:%d", port)
	waitFor("\"  open "+origin+"/\"", 90*time.Second, func(s string) bool {
		return strings.Contains(s, "\n  open "+origin+"/\n")
	})

	// The origin's dashboard, on its admin listener.
	if m := regexp.MustCompile(`dashboard \(the swarm, and the bytes volunteers served\): http://(127\.0\.0\.1:\d+)/\n`).FindStringSubmatch(stderr.String()); m == nil {
		t.Errorf("the demo does not print the origin's dashboard\n%s", stderr.String())
	} else if code, _, err := adminGet(m[1], "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("the demo's dashboard address: /healthz %d %v", code, err)
	}

	pool := gwCAPool(t, filepath.Join(dir, "origin", "ca.pem"))
	c := gwNewH2(t, pool, nil)
	resp, body := c.get(t, origin+"/")
	if gwWant(t, "demo GET /", resp, body, http.StatusOK) {
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(bytes.ToLower(body), []byte("<html")) {
			t.Errorf("demo GET /: want an HTML page, got %s %.200q", resp.Header.Get("Content-Type"), body)
		}
	}
	video, err := os.ReadFile(filepath.Join(dir, "site", "media", "testcard.webm"))
	if err != nil {
		t.Fatal(err)
	}
	resp, body = c.get(t, origin+"/media/testcard.webm", "Range: bytes=0-1023")
	if gwWant(t, "demo GET testcard.webm Range", resp, body, http.StatusPartialContent) {
		if !bytes.Equal(body, video[:1024]) {
			t.Errorf("demo testcard.webm bytes=0-1023: got %d bytes (first difference at %d)", len(body), firstDiff(body, video[:1024]))
		}
		if want := fmt.Sprintf("bytes 0-1023/%d", len(video)); resp.Header.Get("Content-Range") != want {
			t.Errorf("demo testcard.webm: Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "video/webm" {
			t.Errorf("demo testcard.webm: Content-Type %q, want video/webm", ct)
		}
	}
	resp, body = c.get(t, origin+"/grits/v1/root")
	gwWant(t, "demo origin /grits/v1/root", resp, body, http.StatusOK)
	oroot, err := tree.DecodeRoot(body)
	if err != nil {
		t.Fatalf("demo origin /grits/v1/root: %v", err)
	}
	// The volunteer: a certificate from the same CA, the same root.
	vol := fmt.Sprintf("https://127.0.0.1:%d", port+1)
	resp, body = c.get(t, vol+"/grits/v1/root")
	volSPKI := gateway.SPKIHash(resp.TLS.PeerCertificates[0])
	if gwWant(t, "demo volunteer /grits/v1/root", resp, body, http.StatusOK) {
		r, err := tree.DecodeRoot(body)
		if err != nil || r.Tree != oroot.Tree || r.SiteKey != oroot.SiteKey {
			t.Errorf("demo volunteer root: %v (err %v), want the origin's tree %s", r, err, oroot.Tree)
		}
	}

	waitFor("a report of bytes the origin served", 30*time.Second, func(s string) bool {
		for _, m := range gwServedRE.FindAllStringSubmatch(s, -1) {
			if m[1] != "0 B" {
				return true
			}
		}
		return false
	})

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not exit within 30s of SIGINT\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("demo after SIGINT: exit %d, want 0\n%s", code, stderr.String())
	}
	t.Logf("demo exited %v after SIGINT", time.Since(start).Round(time.Millisecond))

	// Run again in the same --dir: the same nodes, keys and CA, so a
	// browser's pin (demo --open pins the CA) still holds.
	stderr.Reset()
	cmd = exec.Command(gritsdBin, "demo", "--port", strconv.Itoa(port), "--dir", dir)
	cmd.Env = baseEnv()
	cmd.Stderr, cmd.Stdout = &stderr, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	waitFor("\"  open "+origin+"/\" again", 90*time.Second, func(s string) bool {
		return strings.Contains(s, "\n  open "+origin+"/\n")
	})
	c = gwNewH2(t, pool, nil)
	resp, body = c.get(t, origin+"/")
	gwWant(t, "demo run again: GET /", resp, body, http.StatusOK)
	resp, body = c.get(t, vol+"/grits/v1/root")
	if gwWant(t, "demo run again: volunteer /grits/v1/root", resp, body, http.StatusOK) && gateway.SPKIHash(resp.TLS.PeerCertificates[0]) != volSPKI {
		t.Errorf("the demo's volunteer has another key after a restart")
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("demo run again did not exit within 30s of SIGINT\n%s", stderr.String())
	}
}

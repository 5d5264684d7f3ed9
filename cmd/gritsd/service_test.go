package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/gateway"
)

// notifySocket is a socket standing in for systemd's $NOTIFY_SOCKET.
type notifySocket struct {
	path string
	c    *net.UnixConn
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// A short path: sun_path holds 108 bytes, and TempDir's names are long.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{path: p, c: c}
}

// next reads the next state gritsd sends, within timeout.
func (s *notifySocket) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	s.c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 4096)
	n, err := s.c.Read(b)
	if err != nil {
		t.Fatalf("no notification within %v: %v", timeout, err)
	}
	return string(b[:n])
}

// startServeNotify starts gritsd serve with NOTIFY_SOCKET set. The
// test must not be parallel: the variable is the process's.
func startServeNotify(t *testing.T, d dataDir, sock *notifySocket, extra ...string) *server {
	t.Helper()
	t.Setenv("NOTIFY_SOCKET", sock.path)
	return startServe(t, d, extra...)
}

// TestServiceNotify: under systemd (Type=notify) gritsd serve says
// READY=1 once it serves, RELOADING=1 then READY=1 around a SIGHUP, and
// STOPPING=1 when told to stop.
func TestServiceNotify(t *testing.T) {
	d := newOrigin(t)
	sock := newNotifySocket(t)
	s := startServeNotify(t, d, sock, "--gossip", "127.0.0.1:0", "--gossip-profile", "local")
	if got := sock.next(t, serveStartTimeout); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1\n%s", got, s)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := sock.next(t, serveStopTimeout); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 and MONOTONIC_USEC\n%s", got, s)
	}
	if got := sock.next(t, serveStopTimeout); got != "READY=1" {
		t.Fatalf("after the reload: %q, want READY=1\n%s", got, s)
	}
	s.stop(t, syscall.SIGTERM)
	if got := sock.next(t, serveStopTimeout); got != "STOPPING=1" {
		t.Fatalf("after SIGTERM: %q, want STOPPING=1\n%s", got, s)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0\n%s", code, s)
	}
}

// TestHangupStopsOtherCommands: SIGHUP reloads serve but stops any other
// command, as a closed terminal should: interrupted, exit 130.
func TestHangupStopsOtherCommands(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	d.importTree(t, newSource(t, []entry{{path: "a", data: []byte("a")}}))
	startServe(t, d, "--gossip", "127.0.0.1:0", "--gossip-profile", "local")
	cmd := exec.Command(gritsdBin, "status", "--wait-replicas", "5", "--data", string(d))
	cmd.Env = baseEnv()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	// Its first report shows it runs (its signal handlers are set).
	eventually(t, serveStartTimeout, 20*time.Millisecond, func() error {
		if !strings.Contains(stderr.String(), "waiting") {
			return fmt.Errorf("status --wait-replicas has not reported yet: %q", stderr.String())
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(serveStopTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("status still running %v after SIGHUP\n%s", serveStopTimeout, stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("after SIGHUP: exit %d (want 130) and stderr %q (want \"interrupted\")", code, stderr.String())
	}
}

// TestReload: SIGHUP to a real gritsd serve applies what gritsd.toml
// changed and can change live (the worker's settings, TLS files, the log
// level), names what waits for a restart, and leaves the node as it was
// when the file has an error.
func TestReload(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	ca, err := gateway.LoadDevCA(string(d))
	if err != nil {
		t.Fatal(err)
	}
	var certs [2]*x509.Certificate
	var files [2][2]string
	for i := range certs {
		leaf, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if certs[i], err = x509.ParseCertificate(leaf.Certificate[0]); err != nil {
			t.Fatal(err)
		}
		files[i][0], files[i][1] = writeLeaf(t, leaf)
	}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	d.setConfig(t, "tls_cert", q(files[0][0]))
	d.setConfig(t, "tls_key", q(files[0][1]))
	d.setConfig(t, "sw_paths", `["/first/"]`)
	s := startServe(t, d, "--gossip", "127.0.0.1:0", "--gossip-profile", "local")
	addr, _ := gwHTTPS(t, s)
	pool := gwCAPool(t, d.path("ca.pem"))
	servedCert := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	client := gwNewH2(t, pool, nil)
	worker := func() string {
		t.Helper()
		_, body := client.get(t, "https://"+addr+"/grits/v1/sw-lib.js") // the settings live there
		return string(body)
	}
	if !servedCert().Equal(certs[0]) || !strings.Contains(worker(), "/first/") {
		t.Fatalf("before the reload: want the first certificate and sw_paths /first/\n%s", s)
	}

	d.setConfig(t, "tls_cert", q(files[1][0]))
	d.setConfig(t, "tls_key", q(files[1][1]))
	d.setConfig(t, "sw_paths", `["/second/"]`)
	d.setConfig(t, "log_level", `"debug"`)
	d.setConfig(t, "cache_quota_bytes", "1000000")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var line string
	eventually(t, serveStopTimeout, 20*time.Millisecond, func() error {
		for _, l := range strings.Split(s.stderr.String(), "\n") {
			if strings.Contains(l, `"msg":"reloaded gritsd.toml"`) {
				line = l
				return nil
			}
		}
		return fmt.Errorf("no \"reloaded gritsd.toml\" in the log yet")
	})
	for _, want := range []string{`"changed":["tls_cert","tls_key","sw_paths","log_level"]`, `"need_restart":["cache_quota_bytes"]`} {
		if !strings.Contains(line, want) {
			t.Errorf("reload log line: want %s in\n%s", want, line)
		}
	}
	if !servedCert().Equal(certs[1]) {
		t.Errorf("after the reload: the old certificate is still served")
	}
	if w := worker(); !strings.Contains(w, "/second/") || strings.Contains(w, "/first/") {
		t.Errorf("after the reload: the worker still has the old sw_paths")
	}

	// A mistake in the file changes nothing and says where it is.
	d.setConfig(t, "sw_paths", `["/third/"]`)
	d.setConfig(t, "bogus", "1")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, serveStopTimeout, 20*time.Millisecond, func() error {
		if !strings.Contains(s.stderr.String(), "gritsd.toml has errors; nothing changed") {
			return fmt.Errorf("no error logged for the bad file yet")
		}
		return nil
	})
	if !strings.Contains(s.stderr.String(), "bogus: unknown setting") {
		t.Errorf("the reload error does not name the key\n%s", s)
	}
	if w := worker(); !strings.Contains(w, "/second/") {
		t.Errorf("a bad file changed the worker")
	}
	s.stop(t, syscall.SIGTERM)
}

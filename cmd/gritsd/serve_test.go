package main_test

// Integration tests for gritsd serve and gritsd get: real processes
// talking grits/1 over QUIC on the loopback interface.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// serveStartTimeout bounds the wait for "listening on" from serve.
	serveStartTimeout = 30 * time.Second
	// serveStopTimeout bounds the wait for serve to exit after a signal.
	serveStopTimeout = 15 * time.Second
	// dialTimeout is the client's default handshake timeout, which a
	// dead peer costs.
	dialTimeout = 5 * time.Second
	// inlineMax is the largest file a lookup carries inline (proto.InlineMax).
	inlineMax = 64 << 10
)

// lockedBuffer is a bytes.Buffer safe for one writer goroutine and
// readers in the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// Reset empties the buffer (for a new writer).
func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// server is a running gritsd serve process.
type server struct {
	args   []string
	addr   string // 127.0.0.1:PORT, from its "listening on" line
	cmd    *exec.Cmd
	stderr lockedBuffer
	stdout lockedBuffer
	// exited is closed once the process has exited and its stderr is
	// drained; cmd.ProcessState is set then.
	exited chan struct{}
}

// String describes the process for failure messages.
func (s *server) String() string {
	return fmt.Sprintf("gritsd %s (%s)\n--- serve stdout:\n%s--- serve stderr:\n%s---",
		strings.Join(s.args, " "), s.addr, s.stdout.String(), s.stderr.String())
}

// startServe starts gritsd serve --listen 127.0.0.1:0 [extra...] on d
// and waits (bounded) until it says where it listens. The process is
// killed when the test ends, if it is still running.
func startServe(t *testing.T, d dataDir, extra ...string) *server {
	t.Helper()
	s := &server{args: append([]string{"serve", "--listen", "127.0.0.1:0", "--data", string(d)}, extra...), exited: make(chan struct{})}
	s.cmd = exec.Command(gritsdBin, s.args...)
	s.cmd.Env = baseEnv()
	s.cmd.Stdout = &s.stdout
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("kill serve: %v", err)
			}
			select {
			case <-s.exited:
			case <-time.After(serveStopTimeout):
				t.Errorf("serve did not exit within %v of SIGKILL\n%s", serveStopTimeout, s)
			}
		}
		if t.Failed() {
			t.Logf("%s", s)
		}
	})
	addrs := make(chan string, 1)
	go func() {
		defer close(s.exited)
		r := bufio.NewReader(pipe)
		for {
			line, err := r.ReadString('\n')
			s.stderr.Write([]byte(line))
			if a, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "listening on "); ok {
				select {
				case addrs <- a:
				default:
				}
			}
			if err != nil {
				break
			}
		}
		s.cmd.Wait() // the exit status is read from ProcessState
	}()
	select {
	case s.addr = <-addrs:
	case <-s.exited:
		t.Fatalf("serve exited (%v) before it listened\n%s", s.cmd.ProcessState, s)
	case <-time.After(serveStartTimeout):
		t.Fatalf("serve did not say \"listening on\" within %v\n%s", serveStartTimeout, s)
	}
	if host, port, err := net.SplitHostPort(s.addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("serve: want \"listening on 127.0.0.1:PORT\", got address %q\n%s", s.addr, s)
	}
	return s
}

// stop sends sig and waits (bounded) for the process to exit. It returns
// how long the exit took.
func (s *server) stop(t *testing.T, sig syscall.Signal) time.Duration {
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v\n%s", sig, err, s)
	}
	select {
	case <-s.exited:
	case <-time.After(serveStopTimeout):
		t.Fatalf("serve did not exit within %v of %v\n%s", serveStopTimeout, sig, s)
	}
	return time.Since(start)
}

// runIn runs gritsd with dir as its working directory.
func runIn(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gritsdBin, args...)
	cmd.Env = baseEnv()
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	return outcome(t, ctx, err, r)
}

var siteKeyRE = regexp.MustCompile(`(?m)^site-key: (ed25519-[0-9a-f]{64})$`)

// newOriginWithKey initializes an origin and returns its site key as
// init printed it.
func newOriginWithKey(t *testing.T) (dataDir, string) {
	t.Helper()
	d := dataDir(filepath.Join(t.TempDir(), "data"))
	r := d.must(t, "init", "--origin")
	m := siteKeyRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("init --origin: want \"site-key: ed25519-<64 hex>\" on stdout\n%s", r)
	}
	return d, m[1]
}

// deadPeer returns a loopback UDP address nobody listens on: a socket
// is bound there and closed again.
func deadPeer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// peerArgs turns addresses into --peer flags.
func peerArgs(addrs ...string) []string {
	var args []string
	for _, a := range addrs {
		args = append(args, "--peer", a)
	}
	return args
}

// summary is get's last line on stderr.
type summary struct {
	path   string
	size   string
	seq    string
	inline bool
	from   map[string]string // peer -> human-readable bytes
}

var summaryRE = regexp.MustCompile(`(?m)^get: (.+) \(([0-9.]+ [KMGTPE]?i?B), root seq (\d+)\) (inline in the lookup|from (.+)) in [0-9.]+[µnm]?s$`)

// parseSummary finds and parses the summary line of a successful get.
func parseSummary(t *testing.T, r result) summary {
	t.Helper()
	m := summaryRE.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("want a summary line \"get: PATH (SIZE, root seq N) inline in the lookup|from PEER SIZE, ... in DURATION\" on stderr\n%s", r)
	}
	s := summary{path: m[1], size: m[2], seq: m[3], inline: m[4] == "inline in the lookup", from: map[string]string{}}
	if !s.inline {
		for _, part := range strings.Split(m[5], ", ") {
			peer, n, ok := strings.Cut(part, " ")
			if !ok {
				t.Fatalf("summary: cannot parse %q as \"PEER SIZE\"\n%s", part, r)
			}
			s.from[peer] = n
		}
	}
	return s
}

// checkFile checks that the file at p holds want, with mode 0644.
func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("want the fetched file at %s: %v", p, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: want %d bytes of the source file, got %d different bytes (first difference at %d)",
			p, len(want), len(got), firstDiff(got, want))
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o644 {
		t.Errorf("%s: want mode 0644, got %v", p, fi.Mode().Perm())
	}
}

// dirNames lists the names in dir (temporary files included).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// eventually calls f until it returns nil, every interval, for at most
// timeout; then it fails the test with f's last error.
func eventually(t *testing.T, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// TestServeAndGet fetches every file of the standard fixture from a
// serving origin into a client that has no data directory: small files
// arrive inline in the lookup, larger ones as blocks; every byte
// matches, -o - streams to stdout and the default output is the base
// name in the working directory.
func TestServeAndGet(t *testing.T) {
	t.Parallel()
	d, key := newOriginWithKey(t)
	entries := standardEntries()
	d.importTree(t, newSource(t, entries))
	srv := startServe(t, d)

	for _, e := range entries {
		if !e.isFile() {
			continue
		}
		t.Run(e.path, func(t *testing.T) {
			t.Parallel()
			wantInline := len(e.data) <= inlineMax
			check := func(t *testing.T, r result) {
				t.Helper()
				if r.code != 0 {
					t.Fatalf("want exit 0\n%s", r)
				}
				s := parseSummary(t, r)
				if s.path != "/"+e.path || s.seq != "1" {
					t.Errorf("summary: want path /%s and root seq 1, got %+v\n%s", e.path, s, r)
				}
				switch {
				case wantInline && !s.inline:
					t.Errorf("summary: a %d-byte file should come \"inline in the lookup\"\n%s", len(e.data), r)
				case !wantInline && (s.inline || len(s.from) != 1 || s.from[srv.addr] == ""):
					t.Errorf("summary: a %d-byte file should come \"from %s\" alone, got %+v\n%s", len(e.data), srv.addr, s, r)
				}
			}

			// -o FILE, no data directory at all: the site key from the flag.
			out := t.TempDir()
			dest := filepath.Join(out, "fetched")
			r := run(t, append([]string{"get", "/" + e.path, "-o", dest, "--site-key", key}, peerArgs(srv.addr)...)...)
			check(t, r)
			if r.stdout != "" {
				t.Errorf("get -o FILE: want nothing on stdout\n%s", r)
			}
			checkFile(t, dest, e.data)
			if names := dirNames(t, out); len(names) != 1 {
				t.Errorf("get -o %s: want only the file in its directory, got %q", dest, names)
			}

			// -o -: the file on stdout; an empty data directory is as
			// good as none.
			empty := t.TempDir()
			r = run(t, append([]string{"get", "/" + e.path, "-o", "-", "--site-key", key, "--data", empty}, peerArgs(srv.addr)...)...)
			check(t, r)
			if r.stdout != string(e.data) {
				t.Errorf("get -o -: want the %d bytes of the file on stdout, got %d (first difference at %d)",
					len(e.data), len(r.stdout), firstDiff([]byte(r.stdout), e.data))
			}
			if names := dirNames(t, empty); len(names) != 0 {
				t.Errorf("get --data on an empty directory wrote into it: %q", names)
			}

			// No -o: the base name, in the working directory.
			wd := t.TempDir()
			r = runIn(t, wd, append([]string{"get", "/" + e.path, "--site-key", key}, peerArgs(srv.addr)...)...)
			check(t, r)
			base := filepath.Base(e.path)
			checkFile(t, filepath.Join(wd, base), e.data)
			if names := dirNames(t, wd); len(names) != 1 || names[0] != base {
				t.Errorf("get without -o: want only %q in the working directory, got %q", base, names)
			}
		})
	}
}

// TestGetFromTwoServes runs two serve processes on one data directory
// (serve only reads it, and takes no lock) and fetches a 64-chunk file
// from both: the blocks are spread over the two peers.
func TestGetFromTwoServes(t *testing.T) {
	t.Parallel()
	d, key := newOriginWithKey(t)
	data := randBytes(20, 64*chunkSize)
	d.importTree(t, newSource(t, []entry{{path: "big/16m.bin", data: data}}))
	a, b := startServe(t, d), startServe(t, copyDir(t, d)) // one daemon per data directory

	dest := filepath.Join(t.TempDir(), "16m.bin")
	r := run(t, append([]string{"get", "/big/16m.bin", "-o", dest, "--site-key", key}, peerArgs(a.addr, b.addr)...)...)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	checkFile(t, dest, data)
	s := parseSummary(t, r)
	t.Logf("%s", strings.TrimSpace(r.stderr))
	if s.inline || s.size != "16.0 MiB" {
		t.Errorf("summary: want 16.0 MiB fetched as blocks, got %+v\n%s", s, r)
	}
	if s.from[a.addr] == "" || s.from[b.addr] == "" || len(s.from) != 2 {
		t.Errorf("summary: want bytes from both %s and %s, got %v\n%s", a.addr, b.addr, s.from, r)
	}
}

// TestGetDeadPeers checks that a peer nobody answers for costs one dial
// timeout and is skipped with a message, and that only dead peers make
// get fail in bounded time.
func TestGetDeadPeers(t *testing.T) {
	t.Parallel()
	d, key := newOriginWithKey(t)
	entries := standardEntries()
	d.importTree(t, newSource(t, entries))
	big := entries[4]
	if big.path != "media/big.bin" {
		t.Fatalf("fixture changed: entry 4 is %s", big.path)
	}
	live := startServe(t, d)

	tests := []struct {
		name  string
		peers func(dead1, dead2 string) []string
		ok    bool
	}{
		{"dead then live", func(d1, _ string) []string { return []string{d1, live.addr} }, true},
		{"live then dead", func(d1, _ string) []string { return []string{live.addr, d1} }, true},
		{"only dead", func(d1, d2 string) []string { return []string{d1, d2} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dead1, dead2 := deadPeer(t), deadPeer(t)
			peers := tt.peers(dead1, dead2)
			dest := filepath.Join(t.TempDir(), "big.bin")
			start := time.Now()
			r := run(t, append([]string{"get", "/" + big.path, "-o", dest, "--site-key", key}, peerArgs(peers...)...)...)
			took := time.Since(start)
			t.Logf("peers %v: exit %d in %v", peers, r.code, took.Round(time.Millisecond))

			var dead []string
			for _, p := range peers {
				if p != live.addr {
					dead = append(dead, p)
				}
			}
			for _, p := range dead {
				// A dead peer is reported once: its dial failed, or, after
				// a live peer answered, it did not answer in time.
				msg := "peer " + p + ": dial: "
				if !strings.Contains(r.stderr, msg) {
					msg = "peer " + p + ": no answer within"
				}
				if n := strings.Count(r.stderr, msg); n == 0 || !strings.Contains(r.stderr, "(skipped)") {
					t.Errorf("want the dead peer reported as %q... (skipped)\n%s", msg, r)
				} else if n > 1 && tt.ok {
					t.Errorf("dead peer %s reported %d times; want once\n%s", p, n, r)
				}
			}
			// Dead peers are dialled at the same time, each once: one
			// dial timeout, plus the fetch.
			if limit := dialTimeout + 3*time.Second; took > limit {
				t.Errorf("took %v with %d dead peers; want about one dial timeout (%v), at most %v",
					took.Round(time.Millisecond), len(dead), dialTimeout, limit)
			}
			if tt.ok {
				if r.code != 0 {
					t.Fatalf("want exit 0\n%s", r)
				}
				checkFile(t, dest, big.data)
				if s := parseSummary(t, r); len(s.from) != 1 || s.from[live.addr] == "" {
					t.Errorf("summary: want every byte from the live peer %s, got %v\n%s", live.addr, s.from, r)
				}
				return
			}
			if r.code != 1 || !strings.Contains(r.stderr, "no peer could answer") {
				t.Errorf("want exit 1 and \"no peer could answer\"\n%s", r)
			}
			for _, p := range dead {
				if n := strings.Count(r.stderr, "peer "+p+": dial: "); n != 2 { // "(skipped)" and the final list
					t.Errorf("dead peer %s mentioned %d times; want twice (when skipped and in the final list)\n%s", p, n, r)
				}
			}
			if _, err := os.Stat(dest); err == nil {
				t.Errorf("a failed get wrote %s", dest)
			}
		})
	}
}

// TestGetFailures checks the answers that are not a file, and a site key
// that does not match: exit 1, a message that says why, nothing written.
func TestGetFailures(t *testing.T) {
	t.Parallel()
	d, key := newOriginWithKey(t)
	d.importTree(t, newSource(t, standardEntries()))
	a, b := startServe(t, d), startServe(t, copyDir(t, d)) // one daemon per data directory
	_, otherKey := newOriginWithKey(t)

	tests := []struct {
		name string
		path string
		key  string
		want []string // on stderr
	}{
		{"missing", "/no such file", key, []string{`/no such file: no such file or directory (proven absent: / has no "no such file") (root seq 1)`}},
		{"missing in a subdirectory", "/a/b/nothing", key, []string{"proven absent", `/a/b has no "nothing"`}},
		{"directory", "/media", key, []string{"/media is a directory"}},
		{"empty directory", "/a/b/empty-dir", key, []string{"/a/b/empty-dir is a directory"}},
		{"symlink", "/link", key, []string{`/link is a symlink to "a/b/c/deep.txt"`, "does not follow symlinks"}},
		{"dangling symlink", "/a/dangling", key, []string{"/a/dangling is a symlink"}},
		{"through a symlink", "/link/x", key, []string{"/link/x: path crosses a symlink"}},
		{"through a file", "/index.html/x", key, []string{"not a directory", "/index.html is a file"}},
		{"wrong site key", "/index.html", otherKey, []string{
			"peer " + a.addr + " sent bad data", "peer " + b.addr + " sent bad data",
			"signed by the wrong key", "no peer could answer the lookup of /index.html"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			r := run(t, append([]string{"get", tt.path, "-o", filepath.Join(out, "out"), "--site-key", tt.key}, peerArgs(a.addr, b.addr)...)...)
			if r.code != 1 || r.stdout != "" {
				t.Errorf("want exit 1 and nothing on stdout\n%s", r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("want %q on stderr\n%s", w, r)
				}
			}
			if names := dirNames(t, out); len(names) != 0 {
				t.Errorf("a failed get left %q in the output directory", names)
			}
		})
	}
}

// TestServeFollowsNewRoots imports new content into an origin while it
// serves: within a few of serve's once-a-second looks at roots.log, get
// returns the new content under root seq 2.
func TestServeFollowsNewRoots(t *testing.T) {
	t.Parallel()
	d, key := newOriginWithKey(t)
	entries := standardEntries()
	d.importTree(t, newSource(t, entries))
	srv := startServe(t, d)

	get := func(t *testing.T, p string) (result, summary) {
		t.Helper()
		r := run(t, append([]string{"get", p, "-o", "-", "--site-key", key}, peerArgs(srv.addr)...)...)
		if r.code != 0 {
			t.Fatalf("want exit 0\n%s", r)
		}
		return r, parseSummary(t, r)
	}
	if r, s := get(t, "/index.html"); r.stdout != string(entries[0].data) || s.seq != "1" {
		t.Fatalf("before the second import: want the first content under seq 1, got %+v\n%s", s, r)
	}

	newIndex := []byte("<!doctype html>\n<h1>hello again, grits</h1>\n")
	newBig := randBytes(21, 5*chunkSize+99)
	changed := replaceEntry(replaceEntry(entries, "index.html", newIndex), "media/big.bin", newBig)
	d.importTree(t, newSource(t, changed))
	imported := time.Now()

	eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		r, s := get(t, "/index.html")
		if s.seq != "2" || r.stdout != string(newIndex) {
			return fmt.Errorf("get still answers root seq %s with %q", s.seq, r.stdout)
		}
		return nil
	})
	t.Logf("serve answered with the new root %v after the import", time.Since(imported).Round(time.Millisecond))

	// Blocks stored by the import after serve started are served too.
	r, s := get(t, "/media/big.bin")
	if s.seq != "2" || r.stdout != string(newBig) {
		t.Errorf("get /media/big.bin: want the %d new bytes under seq 2, got %d bytes (first difference at %d) under seq %s\n%s",
			len(newBig), len(r.stdout), firstDiff([]byte(r.stdout), newBig), s.seq, r)
	}
	// Unchanged files are still there.
	if r, s := get(t, "/a/b/c/deep.txt"); s.seq != "2" || r.stdout != "deep down\n" {
		t.Errorf("get /a/b/c/deep.txt after the second import: got %+v\n%s", s, r)
	}
}

// copyDir copies a data directory as cp -a does.
func copyDir(t *testing.T, src dataDir) dataDir {
	t.Helper()
	dst := dataDir(filepath.Join(t.TempDir(), "copy"))
	if out, err := exec.Command("cp", "-a", string(src), string(dst)).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
	return dst
}

// TestGetRefusesRollback serves a copy of an origin taken before its
// second import: a client whose data directory holds the newer root
// refuses that peer as a rollback, while one that knows no root takes
// the newest root any peer offers.
func TestGetRefusesRollback(t *testing.T) {
	t.Parallel()
	d, key := newOriginWithKey(t)
	v1 := []entry{{path: "index.html", data: []byte("version 1\n")}}
	v2 := []entry{{path: "index.html", data: []byte("version 2\n")}}
	d.importTree(t, newSource(t, v1))
	stale := copyDir(t, d)
	d.importTree(t, newSource(t, v2))
	client := copyDir(t, d) // has accepted seq 2
	staleSrv, freshSrv := startServe(t, stale), startServe(t, d)

	tests := []struct {
		name    string
		peers   []string
		data    dataDir // the client's data directory; "" for none (--site-key)
		want    string  // content, "" for a failure
		seq     string
		stderr  []string
		noPeers []string // peers that must not appear in the summary
	}{
		{"stale peer, client knows seq 2", []string{staleSrv.addr}, client, "", "", []string{
			"peer " + staleSrv.addr + " sent bad data", "root seq 1 is older than the accepted seq 2", "refusing a rollback"}, nil},
		{"fresh peer, client knows seq 2", []string{freshSrv.addr}, client, "version 2\n", "2", nil, nil},
		{"stale then fresh, client knows seq 2", []string{staleSrv.addr, freshSrv.addr}, client, "version 2\n", "2", []string{
			"peer " + staleSrv.addr + " sent bad data", "refusing a rollback", "(skipped)"}, nil},
		// The refusal comes from the local root: without it the stale
		// peer's root is valid...
		{"stale peer, client knows nothing", []string{staleSrv.addr}, "", "version 1\n", "1", nil, nil},
		// ...unless another peer offers a newer one.
		{"stale then fresh, client knows nothing", []string{staleSrv.addr, freshSrv.addr}, "", "version 2\n", "2", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"get", "/index.html", "-o", "-"}, peerArgs(tt.peers...)...)
			if tt.data != "" {
				args = append(args, "--data", string(tt.data))
			} else {
				args = append(args, "--site-key", key)
			}
			r := run(t, args...)
			for _, w := range tt.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("want %q on stderr\n%s", w, r)
				}
			}
			if tt.want == "" {
				if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "no peer could answer") {
					t.Errorf("want exit 1, nothing on stdout and \"no peer could answer\"\n%s", r)
				}
				return
			}
			if r.code != 0 || r.stdout != tt.want {
				t.Fatalf("want exit 0 and %q on stdout\n%s", tt.want, r)
			}
			if s := parseSummary(t, r); s.seq != tt.seq {
				t.Errorf("summary: want root seq %s, got %s\n%s", tt.seq, s.seq, r)
			}
		})
	}
	// get only reads the client's data directory.
	if got := seqs(client.log(t)); len(got) != 2 || got[0] != 2 {
		t.Errorf("client log after the gets: want seqs [2 1], got %v", got)
	}
}

// TestServeShutdown stops serve with SIGTERM (graceful: exit 0, "gritsd
// stopped") and with SIGKILL (the data directory stays clean and serves
// again).
func TestServeShutdown(t *testing.T) {
	t.Parallel()
	entries := standardEntries()
	big := entries[4]
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}[sig]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d, key := newOriginWithKey(t)
			d.importTree(t, newSource(t, entries))
			srv := startServe(t, d)
			getBig := func(t *testing.T, addr string) {
				t.Helper()
				dest := filepath.Join(t.TempDir(), "big.bin")
				if r := run(t, append([]string{"get", "/" + big.path, "-o", dest, "--site-key", key}, peerArgs(addr)...)...); r.code != 0 {
					t.Fatalf("want exit 0\n%s", r)
				}
				checkFile(t, dest, big.data)
			}
			getBig(t, srv.addr)

			took := srv.stop(t, sig)
			t.Logf("serve exited %v after %s", took.Round(time.Millisecond), name)
			ps := srv.cmd.ProcessState
			if sig == syscall.SIGTERM {
				stderr := srv.stderr.String()
				if ps.ExitCode() != 0 || !strings.Contains(stderr, "shutting down") || !strings.Contains(stderr, "gritsd stopped") {
					t.Errorf("after SIGTERM: want exit 0, \"shutting down\" and \"gritsd stopped\", got %v\n%s", ps, srv)
				}
				if took > 5*time.Second {
					t.Errorf("after SIGTERM: serve took %v to exit; want a few seconds at most", took)
				}
				return
			}
			if ws, ok := ps.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("want serve killed by SIGKILL, got %v\n%s", ps, srv)
			}
			d.fsckClean(t)
			if got := seqs(d.log(t)); len(got) != 1 || got[0] != 1 {
				t.Errorf("log after SIGKILL: want only seq 1, got %v", got)
			}
			// The dead process left nothing in the way of the next one.
			getBig(t, startServe(t, d).addr)
		})
	}
}

// TestServeGetUsageErrors checks bad get and serve command lines.
func TestServeGetUsageErrors(t *testing.T) {
	t.Parallel()
	d, key := newOriginWithKey(t)
	volunteer := dataDir(filepath.Join(t.TempDir(), "volunteer"))
	volunteer.must(t, "init")
	busy := startServe(t, d)

	tests := []struct {
		name string
		args []string
		code int
		want []string // on stderr
	}{
		{"get without --peer", []string{"get", "/index.html", "--site-key", key}, 2,
			[]string{"at least one --peer", "usage: gritsd get"}},
		{"get without a path", []string{"get", "--peer", busy.addr, "--site-key", key}, 2,
			[]string{"missing argument", "usage: gritsd get"}},
		{"get of the root", []string{"get", "/", "--peer", busy.addr, "--site-key", key}, 2,
			[]string{"root directory", "usage: gritsd get"}},
		{"get with an invalid path", []string{"get", "/a/../b", "--peer", busy.addr, "--site-key", key}, 2,
			[]string{"invalid name", "usage: gritsd get"}},
		{"get without a site key or data directory", []string{"get", "/index.html", "--peer", busy.addr}, 2,
			[]string{"no site key", "--site-key", "usage: gritsd get"}},
		{"get with a volunteer that has no site key", []string{"get", "/index.html", "--peer", busy.addr, "--data", string(volunteer)}, 2,
			[]string{"no site key", "usage: gritsd get"}},
		{"get with an invalid site key", []string{"get", "/index.html", "--peer", busy.addr, "--site-key", "ed25519-xyz"}, 2,
			[]string{"--site-key", "usage: gritsd get"}},
		{"serve --listen garbage", []string{"serve", "--listen", "garbage", "--data", string(d)}, 2,
			[]string{`--listen "garbage"`, "usage: gritsd serve"}},
		{"serve --listen bad port", []string{"serve", "--listen", "127.0.0.1:99999", "--data", string(d)}, 2,
			[]string{`--listen "127.0.0.1:99999"`, "usage: gritsd serve"}},
		{"serve with an argument", []string{"serve", "extra", "--data", string(d)}, 2,
			[]string{"takes no arguments", "usage: gritsd serve"}},
		{"serve on a busy port", []string{"serve", "--listen", busy.addr, "--data", string(d)}, 1,
			[]string{"listen on " + busy.addr, "address already in use"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := run(t, tt.args...)
			if r.code != tt.code || r.stdout != "" {
				t.Errorf("want exit %d and nothing on stdout\n%s", tt.code, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("want %q on stderr\n%s", w, r)
				}
			}
			if took := time.Since(start); took > dialTimeout {
				t.Errorf("took %v; a usage error should not wait for anything", took)
			}
		})
	}
}

// TestGetOutputKinds: -o onto something that is not a plain new file.
// A device or a pipe is written to, never renamed over (get -o /dev/null
// once replaced the machine's /dev/null with a regular file); a symlink's
// target is replaced and the link stays; a directory is refused.
func TestGetOutputKinds(t *testing.T) {
	t.Parallel()
	d, key := newOriginWithKey(t)
	data := randBytes(7, 300<<10) // several blocks
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	d.importTree(t, src)
	srv := startServe(t, d)
	get := func(dest string) result {
		return run(t, append([]string{"get", "/f.bin", "-o", dest, "--site-key", key}, peerArgs(srv.addr)...)...)
	}
	dir := t.TempDir()

	// A pipe: the reader gets the verified bytes and the pipe stays one.
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	if r := get(fifo); r.code != 0 {
		t.Fatalf("get -o FIFO: want exit 0\n%s", r)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, data) {
			t.Errorf("the pipe's reader got %d bytes, want the file's %d (first difference at %d)", len(b), len(data), firstDiff(b, data))
		}
	case <-time.After(cmdTimeout):
		t.Fatal("nothing read from the pipe")
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("after get -o FIFO: %v, %v; want the named pipe still there", st.Mode(), err)
	}

	// A symlink: its target gets the file, the link stays a link.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if r := get(link); r.code != 0 {
		t.Fatalf("get -o SYMLINK: want exit 0\n%s", r)
	}
	checkFile(t, target, data)
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("after get -o SYMLINK: %v, %v; want the link kept", st.Mode(), err)
	}

	// A directory: refused, nothing written into it.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	if r := get(sub); r.code != 1 || !strings.Contains(r.stderr, "is a directory") {
		t.Errorf("get -o DIR: want exit 1 naming the directory\n%s", r)
	}
	if names := dirNames(t, sub); len(names) != 0 {
		t.Errorf("get -o DIR wrote into it: %q", names)
	}
}

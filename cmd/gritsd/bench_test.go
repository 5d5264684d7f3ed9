package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleVolunteerRSS measures the resident memory of an idle
// volunteer process holding 10,000 cached blocks (target: under 100 MB),
// against the same volunteer with an empty cache in the same run:
//
//	go test -run '^$' -bench IdleVolunteerRSS -benchtime 1x ./cmd/gritsd
func BenchmarkIdleVolunteerRSS(b *testing.B) {
	files := 5000 // each a chunk and a file node: 10,000 blocks and the directories
	if v, err := strconv.Atoi(os.Getenv("GRITS_BENCH_FILES")); err == nil && v > 0 {
		files = v
	}
	for range b.N {
		dir := b.TempDir()
		o, v := filepath.Join(dir, "origin"), filepath.Join(dir, "volunteer")
		benchRun(b, "--data", o, "init", "--origin")
		origin := benchServe(b, o)
		tok := strings.TrimSpace(benchRun(b, "--data", o, "token", "--origin-addr", origin.addr))
		benchRun(b, "--data", v, "join", tok)
		vol := benchServe(b, v)
		empty := idleRSS(b, vol.cmd.Process.Pid)

		src := filepath.Join(dir, "site")
		for i := range files {
			p := filepath.Join(src, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%05d.txt", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, fmt.Appendf(nil, "file %d %s\n", i, strings.Repeat("x", 200+i%300)), 0o644)
		}
		benchRun(b, "--data", o, "import", src)
		// The volunteer warms its cache with every block it is home for:
		// as the only volunteer, all of them.
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var st struct {
				Upstream struct{ Fetched int64 }
			}
			if err := json.Unmarshal([]byte(benchRun(b, "--data", v, "status", "--json")), &st); err != nil {
				b.Fatal(err)
			}
			if st.Upstream.Fetched >= int64(2*files) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("volunteer fetched only %d blocks", st.Upstream.Fetched)
			}
			time.Sleep(500 * time.Millisecond)
		}
		// Restart it: the idle steady state of a volunteer that holds
		// the blocks, not the garbage of having fetched them.
		vol.stop(b)
		vol = benchServe(b, v)
		full := idleRSS(b, vol.cmd.Process.Pid)
		vol.stop(b)
		origin.stop(b)
		b.ReportMetric(float64(full)/(1<<20), "MB-rss-full")
		b.ReportMetric(float64(empty)/(1<<20), "MB-rss-empty")
		b.ReportMetric(float64(full)/float64(empty), "full/empty")
		b.ReportMetric(0, "ns/op")
	}
}

func benchRun(b *testing.B, args ...string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gritsdBin, args...)
	cmd.Env = baseEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == notReadyCode && slices.Contains(args, "status") {
		err = nil // status of a daemon that is running but not ready yet
	}
	if err != nil {
		b.Fatalf("gritsd %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

type benchServer struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func benchServe(b *testing.B, data string) *benchServer {
	b.Helper()
	s := &benchServer{cmd: exec.Command(gritsdBin, "--data", data, "serve", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--gossip-profile", "local", "--log-level", "warn"), done: make(chan struct{})}
	s.cmd.Env = baseEnv()
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
		s.cmd.Wait()
	}()
	select {
	case s.addr = <-addr:
	case <-time.After(30 * time.Second):
		b.Fatal("serve did not start")
	}
	return s
}

func (s *benchServer) stop(b *testing.B) {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		b.Fatal("serve did not stop")
	}
}

// idleRSS waits for the process to settle and returns its resident set.
func idleRSS(b *testing.B, pid int) int64 {
	b.Helper()
	time.Sleep(5 * time.Second) // idle is the point: nothing to wait for
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The fuse suite measures gritsd mount against the disk under it, in the
// same run (root and /dev/fuse needed):
//
//   - sequential write (1 MiB writes, then fsync) and read of a large
//     file through the origin's read-write mount against a plain file
//     in a directory on the same file system; pages are evicted before
//     every read (posix_fadvise on the file, and on the mount's block
//     files), so both read from the disk;
//   - tar x of a 10,000-file source tree, made durable (fsync of the
//     mount's root, which commits; sync -f for the directory), then ls -lR
//     and rm -rf of it, against the same in a plain directory;
//   - the first read of a 100 MB file through a volunteer's read-only
//     mount (cold: every block comes from the swarm) against gritsd get
//     of the same file from the same peers.
const (
	fuseSeqSize    = 256 << 20
	fuseSeqSizeQ   = 64 << 20
	fuseTreeFiles  = 10000
	fuseTreeFilesQ = 2000
	fuseColdSize   = 100 << 20
	fuseColdSizeQ  = 32 << 20
)

func fuseSuite(ctx context.Context, work string, quick bool) ([]Result, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the fuse suite mounts file systems: run it as root")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	bin, err := gritsdBinary(ctx, work)
	if err != nil {
		return nil, err
	}
	seqSize, files, cold, reps := fuseSeqSize, fuseTreeFiles, fuseColdSize, 3
	if quick {
		seqSize, files, cold, reps = fuseSeqSizeQ, fuseTreeFilesQ, fuseColdSizeQ, 1
	}
	dir := filepath.Join(work, "fuse")
	data := filepath.Join(dir, "data")
	if out, err := exec.CommandContext(ctx, bin, "--data", data, "init", "--origin").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("gritsd init: %v: %s", err, out)
	}
	mp := filepath.Join(dir, "mnt")
	plain := filepath.Join(dir, "plain")
	for _, d := range []string{mp, plain} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(os.Stderr, "fuse: gritsd mount on the origin")
	m, err := startProc(ctx, bin, []string{"--data", data, "mount", mp, "--quiet", "1s", "--log-level", "warn"}, "mounted ")
	if err != nil {
		return nil, err
	}
	defer m.stop()

	var out []Result
	row := func(c, unit string, v, base float64, note string) {
		out = append(out, Result{Suite: "fuse", Case: c, Server: "gritsd mount", Protocol: "FUSE", Unit: unit, Value: v,
			Baseline: "plain directory", BaselineValue: base, Ratio: ratio(v, base), Note: note})
	}
	// Sequential write and read.
	fmt.Fprintf(os.Stderr, "fuse: sequential write and read, %d MiB\n", seqSize>>20)
	var wm, wp, rm, rp []float64
	for i := range reps {
		for _, side := range []struct {
			path   string
			w, r   *[]float64
			evicts []string
		}{
			{filepath.Join(plain, "seq.bin"), &wp, &rp, nil},
			{filepath.Join(mp, "seq.bin"), &wm, &rm, []string{filepath.Join(data, "blocks")}},
		} {
			w, err := seqWrite(side.path, seqSize, uint64(i))
			if err != nil {
				return nil, fmt.Errorf("write %s: %w", side.path, err)
			}
			*side.w = append(*side.w, w)
			evict(side.path)
			for _, e := range side.evicts {
				evictTree(e)
			}
			r, err := seqRead(side.path, seqSize)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", side.path, err)
			}
			*side.r = append(*side.r, r)
			os.Remove(side.path)
		}
	}
	row(fmt.Sprintf("sequential write %d MiB + fsync", seqSize>>20), "MB/s", median(wm), median(wp), "target >= 0.3x; "+fmtList(wm, "%.0f"))
	row(fmt.Sprintf("sequential read %d MiB, cold", seqSize>>20), "MB/s", median(rm), median(rp), "target >= 0.5x; "+fmtList(rm, "%.0f"))

	// A source tree: tar x, ls -lR, rm -rf.
	fmt.Fprintf(os.Stderr, "fuse: tar x, ls -lR, rm -rf of %d files\n", files)
	src := filepath.Join(dir, "src")
	if err := writeSourceTree(src, files); err != nil {
		return nil, err
	}
	tarball := filepath.Join(dir, "src.tar")
	if out, err := exec.CommandContext(ctx, "tar", "cf", tarball, "-C", dir, "src").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tar c: %v: %s", err, out)
	}
	var tm, tp, lm, lp, xm, xp []float64
	for range reps {
		for _, side := range []struct {
			dir         string
			t, l, x     *[]float64
			makeDurable func() error
		}{
			{plain, &tp, &lp, &xp, func() error { return syncfs(plain) }},
			{mp, &tm, &lm, &xm, func() error { return fsyncDir(mp) }},
		} {
			d, err := timed(func() error {
				if err := runQuiet(ctx, side.dir, "tar", "xf", tarball); err != nil {
					return err
				}
				return side.makeDurable()
			})
			if err != nil {
				return nil, fmt.Errorf("tar x into %s: %w", side.dir, err)
			}
			*side.t = append(*side.t, d)
			if d, err = timed(func() error { return runQuiet(ctx, side.dir, "ls", "-lR", "src") }); err != nil {
				return nil, err
			}
			*side.l = append(*side.l, d)
			if d, err = timed(func() error {
				if err := runQuiet(ctx, side.dir, "rm", "-rf", "src"); err != nil {
					return err
				}
				return side.makeDurable()
			}); err != nil {
				return nil, err
			}
			*side.x = append(*side.x, d)
		}
	}
	// For times, the ratio is baseline time over ours: like the speeds,
	// higher is better, and 1/3 is "3 times as long".
	trow := func(c string, ours, base []float64, target string) {
		o, b := median(ours), median(base)
		out = append(out, Result{Suite: "fuse", Case: c, Server: "gritsd mount", Protocol: "FUSE", Unit: "s", Value: o, Millis: o * 1000,
			Baseline: "plain directory", BaselineValue: b, Ratio: ratio(b, o), Note: fmt.Sprintf("%s; time %.1fx the plain directory's; %s", target, ratio(o, b), fmtList(ours, "%.2f"))})
	}
	trow(fmt.Sprintf("tar x of %d files + durable", files), tm, tp, "target <= 3x")
	trow("ls -lR of it", lm, lp, "target <= 3x")
	trow("rm -rf of it + durable", xm, xp, "target <= 3x")
	m.stop()

	fmt.Fprintf(os.Stderr, "fuse: first read of %d MiB on a volunteer's mount against gritsd get\n", cold>>20)
	rs, err := fuseColdRead(ctx, bin, filepath.Join(work, "fuse-swarm"), cold)
	if err != nil {
		return nil, err
	}
	return append(out, rs...), nil
}

// fuseColdRead: an origin and two volunteers hold a file; a third
// volunteer with a mount reads it first (cold), against gritsd get of the
// same file from the same three peers.
func fuseColdRead(ctx context.Context, bin, dir string, size int) ([]Result, error) {
	site, err := newBenchSite(ctx, bin, dir, map[string][]byte{"big.bin": randomBytes(21, size)}, 2, false)
	if err != nil {
		return nil, err
	}
	defer site.Close()
	key, err := site.siteKey(ctx)
	if err != nil {
		return nil, err
	}
	peers := []string{"--peer", site.origin.proto}
	for _, v := range site.vols {
		peers = append(peers, "--peer", v.proto)
	}
	// The volunteers pull the file through once: every peer holds it.
	for _, v := range site.vols {
		if err := runQuiet(ctx, dir, bin, "get", "--peer", v.proto, "--site-key", key.String(), "/big.bin", "-o", filepath.Join(dir, "warm-"+v.name)); err != nil {
			return nil, fmt.Errorf("warming %s: %w", v.name, err)
		}
	}
	getTime, err := timed(func() error {
		return runQuiet(ctx, dir, bin, append(append([]string{"get"}, peers...), "--site-key", key.String(), "/big.bin", "-o", filepath.Join(dir, "got.bin"))...)
	})
	if err != nil {
		return nil, fmt.Errorf("gritsd get: %w", err)
	}
	tok, err := exec.CommandContext(ctx, bin, "--data", filepath.Join(dir, "origin"), "token", "--origin-addr", site.origin.proto).Output()
	if err != nil {
		return nil, fmt.Errorf("gritsd token: %w", err)
	}
	rdata := filepath.Join(dir, "reader")
	if out, err := exec.CommandContext(ctx, bin, "--data", rdata, "join", strings.TrimSpace(string(tok))).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("gritsd join: %v: %s", err, out)
	}
	mp := filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return nil, err
	}
	reader, err := startProc(ctx, bin, []string{"--data", rdata, "serve", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--gossip-profile", "local", "--https", "off", "--log-level", "error", "--mount", mp}, "listening on ")
	if err != nil {
		return nil, err
	}
	defer reader.stop()
	p := filepath.Join(mp, "big.bin")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the volunteer's mount shows no big.bin after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Give the reader a moment to see the swarm (it asks home nodes
	// first); the read itself starts cold.
	time.Sleep(3 * time.Second)
	mountTime, err := timed(func() error {
		n, err := seqReadN(p)
		if err == nil && n != int64(size) {
			err = fmt.Errorf("read %d bytes, want %d", n, size)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read through the volunteer's mount: %w", err)
	}
	mb := func(d float64) float64 { return float64(size) / 1e6 / d }
	return []Result{{Suite: "fuse", Case: fmt.Sprintf("first read of %d MiB on a volunteer's mount", size>>20), Server: "gritsd serve --mount",
		Protocol: "FUSE", Unit: "MB/s", Value: mb(mountTime), Baseline: "gritsd get, same 3 peers", BaselineValue: mb(getTime),
		Ratio: ratio(getTime, mountTime), Note: "target >= 0.8x"}}, nil
}

// proc is a gritsd process of the suite.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	tail []string
}

// startProc starts gritsd and waits for a line starting with ready.
func startProc(ctx context.Context, bin string, args []string, ready string) (*proc, error) {
	p := &proc{cmd: exec.CommandContext(context.WithoutCancel(ctx), bin, args...), done: make(chan struct{})}
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	ok := make(chan struct{}, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), ready) {
				select {
				case ok <- struct{}{}:
				default:
				}
			}
			p.tail = append(p.tail, sc.Text())
		}
		p.cmd.Wait()
	}()
	select {
	case <-ok:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("gritsd %s exited: %s", args[2], strings.Join(p.tail, "\n"))
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("gritsd %s did not say %q in 60 s", args[2], ready)
	}
}

// stop interrupts the process (killing it after a minute).
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func timed(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return time.Since(start).Seconds(), err
}

func runQuiet(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout = io.Discard
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

// seqWrite writes size bytes in 1 MiB writes, fsyncs, and returns MB/s.
func seqWrite(p string, size int, seed uint64) (float64, error) {
	buf := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(buf)
	start := time.Now()
	f, err := os.Create(p)
	if err != nil {
		return 0, err
	}
	for off := 0; off < size; off += len(buf) {
		buf[0]++ // every MiB differs: no chunk is stored twice
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return float64(size) / 1e6 / time.Since(start).Seconds(), nil
}

// seqRead reads p in 1 MiB reads and returns MB/s.
func seqRead(p string, size int) (float64, error) {
	start := time.Now()
	n, err := seqReadN(p)
	if err != nil {
		return 0, err
	}
	if n != int64(size) {
		return 0, fmt.Errorf("read %d bytes, want %d", n, size)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

func seqReadN(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
}

// evict drops a file's pages from the page cache.
func evict(p string) {
	if f, err := os.Open(p); err == nil {
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
	}
}

func evictTree(root string) {
	filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			evict(p)
		}
		return nil
	})
}

func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// fsyncDir fsyncs a directory: on the origin's mount, a commit.
func fsyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// writeSourceTree writes n files of source-like sizes in nested
// directories (about 20 files a directory).
func writeSourceTree(root string, n int) error {
	rng := rand.New(rand.NewPCG(5, 5))
	buf := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{5}).Read(buf)
	for i := range n {
		pkg := i / 20
		d := filepath.Join(root, fmt.Sprintf("mod%02d", pkg%23), fmt.Sprintf("pkg%03d", pkg))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		size := 200 + rng.IntN(8<<10)
		if i%50 == 0 {
			size = 16<<10 + rng.IntN(48<<10)
		}
		buf[0], buf[1] = byte(i), byte(i>>8)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file%05d.c", i)), buf[:size], 0o644); err != nil {
			return err
		}
	}
	return nil
}

package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// Size of the source tree the crash test imports: big enough that an
// import takes a while, so the kills land at different stages of it.
const (
	crashLargeFiles = 5
	crashLargeSize  = 50 << 20
	crashSmallDirs  = 20
	crashSmallFiles = 100 // per directory
	crashSmallMax   = 32 << 10
)

// writeCrashSource writes the big deterministic source tree into dir and
// returns the paths of its files relative to dir, slash-separated.
func writeCrashSource(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	write := func(rel string, size int64, seed uint64) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		var s [32]byte
		s[0], s[1], s[2] = byte(seed), byte(seed>>8), 0xc7
		_, err = io.CopyN(f, rand.NewChaCha8(s), size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, rel)
	}
	for i := range crashLargeFiles {
		write(fmt.Sprintf("large/part-%d.bin", i), crashLargeSize, uint64(i))
	}
	sizes := rand.New(rand.NewPCG(1, 2))
	for d := range crashSmallDirs {
		for f := range crashSmallFiles {
			size := sizes.Int64N(crashSmallMax)
			if f%25 == 0 {
				size = 0
			}
			write(fmt.Sprintf("small/d%02d/f%03d.txt", d, f), size, uint64(1000+d*crashSmallFiles+f))
		}
	}
	return files
}

// blockFiles reads blocks straight from an origin's pinned/ directory and
// verifies them, without any of the store's side effects (moving corrupt
// blocks aside, touching mtimes): the test's own view of what is on disk.
type blockFiles struct{ d dataDir }

func (b blockFiles) Get(_ context.Context, h blockstore.Hash) ([]byte, error) {
	data, err := os.ReadFile(b.d.blockPath(h))
	if err != nil {
		return nil, err
	}
	if got := blockstore.Sum(data); got != h {
		return nil, fmt.Errorf("block file of %s hashes to %s", h, got)
	}
	return data, nil
}

// inProcessMax is the size up to which checkTree reads a file in-process;
// larger ones it reads with gritsd cat, which hashes faster than the
// test binary does under the race detector.
const inProcessMax = 1 << 20

// checkBigTree checks that the tree treeHash of d holds exactly the
// source src: every directory the same names, every file the same size
// and bytes. It reads small files in-process, through the tree package
// and straight from the block files, because running gritsd cat a few
// thousand times would take minutes; it reads the large ones with gritsd
// cat.
func checkBigTree(t *testing.T, d dataDir, treeHash, src string) {
	t.Helper()
	ctx := context.Background()
	root, err := blockstore.ParseHash(treeHash)
	if err != nil {
		t.Fatal(err)
	}
	g := blockFiles{d}
	files := 0
	began := time.Now()
	var large []string // tree paths
	// compare checks the directory whose node is h against the source
	// directory dir.
	var compare func(h blockstore.Hash, dir string, tp tree.Path) error
	compare = func(h blockstore.Hash, dir string, tp tree.Path) error {
		got, err := tree.ListDir(ctx, g, h)
		if err != nil {
			return fmt.Errorf("list %s: %w", tp, err)
		}
		des, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var gotNames, wantNames []string
		for _, e := range got {
			gotNames = append(gotNames, e.Name)
		}
		for _, de := range des {
			wantNames = append(wantNames, de.Name())
		}
		slices.Sort(gotNames)
		if !slices.Equal(gotNames, wantNames) {
			return fmt.Errorf("%s: the tree lists %d names, the source %d (%v vs %v)", tp, len(gotNames), len(wantNames), gotNames, wantNames)
		}
		for _, e := range got {
			p := filepath.Join(dir, e.Name)
			ep := append(tp[:len(tp):len(tp)], e.Name)
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			switch {
			case fi.IsDir() && e.Kind == tree.KindDir:
				if err := compare(e.Hash, p, ep); err != nil {
					return err
				}
				continue
			case !fi.Mode().IsRegular() || e.Kind != tree.KindFile:
				return fmt.Errorf("%s: a %v in the tree, a %v in the source", ep, e.Kind, fi.Mode().Type())
			case e.Size != uint64(fi.Size()):
				return fmt.Errorf("%s: %d bytes in the tree, %d in the source", ep, e.Size, fi.Size())
			case fi.Size() > inProcessMax:
				large = append(large, ep.String())
				continue
			}
			fn := tree.DirectFile(e) // a one-chunk file names its chunk
			if !e.Direct {
				n, err := tree.LoadNode(ctx, g, e.Hash)
				if err != nil {
					return fmt.Errorf("%s: %w", ep, err)
				}
				f, ok := n.(*tree.FileNode)
				if !ok || f.Size != e.Size {
					return fmt.Errorf("%s: the entry's node is not a file node of %d bytes", ep, e.Size)
				}
				fn = f
			}
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := tree.ReadFile(ctx, g, fn, 0, fn.Size, &buf); err != nil {
				return fmt.Errorf("read %s: %w", ep, err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				return fmt.Errorf("%s: %d bytes differing from the source at %d", ep, buf.Len(), firstDiff(buf.Bytes(), want))
			}
			files++
		}
		return nil
	}
	if err := compare(root, src, tree.Path{}); err != nil {
		t.Errorf("tree %s does not hold the source %s: %v", treeHash, src, err)
	}
	t.Logf("read and compared %d files of tree %s in-process in %v", files, treeHash, time.Since(began).Round(time.Millisecond))

	began = time.Now()
	for _, tp := range large {
		want, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(tp[1:])))
		if err != nil {
			t.Fatal(err)
		}
		r := d.must(t, "cat", tp, "--root", treeHash)
		if r.stdout != string(want) {
			t.Errorf("cat %s --root %s: want the %d source bytes, got %d bytes differing at %d", tp, treeHash, len(want), len(r.stdout), firstDiff([]byte(r.stdout), want))
		}
	}
	t.Logf("read and compared %d large files with gritsd cat in %v", len(large), time.Since(began).Round(time.Millisecond))
}

// diskListing is expectedListing for a tree on disk: what gritsd ls of
// each directory should print after importing root.
func diskListing(t *testing.T, root string) listing {
	t.Helper()
	var entries []entry
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		e := entry{path: filepath.ToSlash(rel)}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		switch {
		case de.IsDir():
			e.dir = true
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			e.exec = fi.Mode()&0o111 != 0
			e.size = fi.Size()
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return expectedListing(entries)
}

// importAndKill starts gritsd import src and kills it with SIGKILL after
// delay, unless it has finished by then. It reports whether the kill
// ended it.
func importAndKill(t *testing.T, d dataDir, src string, delay time.Duration) (result, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	args := []string{"import", src, "--data", string(d)}
	cmd := exec.CommandContext(ctx, gritsdBin, args...)
	cmd.Env = baseEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(delay) // when to kill: the point of the test, not a wait for state
	defer timer.Stop()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-timer.C:
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatalf("kill: %v", err)
		}
		waitErr = <-done
	}
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		t.Fatalf("import did not finish within %v\n%s", cmdTimeout, r)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		t.Fatalf("import: %v\n%s", waitErr, r)
	}
	t.Logf("import killed=%v after %v", killed, time.Since(began).Round(time.Millisecond))
	return r, killed
}

// TestCrashDuringImport kills gritsd import with SIGKILL at several
// moments and checks after each kill that the store is consistent: fsck
// is clean, the log holds the old root or the complete new one and
// nothing in between, the latest root reads in full, and the dead
// process's lock does not block anyone.
func TestCrashDuringImport(t *testing.T) {
	if testing.Short() {
		t.Skip("imports and kills a 300 MB import several times; skipped with -short")
	}
	d := newOrigin(t)
	small := []entry{
		{path: "readme.txt", data: []byte("the small tree, committed before the crashes\n")},
		{path: "large/part-0.bin", data: randBytes(50, 3*chunkSize+7)},
		{path: "small/d00/f000.txt", data: []byte("same path as in the big tree, different content\n")},
	}
	smallTree, _ := d.importTree(t, newSource(t, small))

	big := filepath.Join(t.TempDir(), "big")
	start := time.Now()
	bigFiles := writeCrashSource(t, big)
	t.Logf("wrote %d files of source in %v", len(bigFiles), time.Since(start).Round(time.Millisecond))

	// Each delay is from starting the process to killing it. Later runs
	// find some blocks already stored by the killed ones and go faster.
	// The last one comes after the import finished: the kill finds the
	// process gone.
	delays := []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond,
		600 * time.Millisecond, time.Second, 1500 * time.Millisecond, cmdTimeout}
	var bigTrees []string // tree hashes found committed after a run
	killedMidway := 0
	for i, delay := range delays {
		name := fmt.Sprintf("kill after %v", delay)
		if delay == cmdTimeout {
			name = "kill after completion"
		}
		t.Run(name, func(t *testing.T) {
			r, killed := importAndKill(t, d, big, delay)
			if killed {
				killedMidway++
			} else if r.code != 0 {
				t.Fatalf("run %d: want the import killed by SIGKILL or finished with exit 0\n%s", i, r)
			}

			// The dead process's lock is gone with it: fsck takes it.
			d.fsckClean(t)

			l := d.log(t)
			switch got := seqs(l); {
			case len(got) == 0 || got[len(got)-1] != 1 || l[len(l)-1].tree != smallTree:
				t.Fatalf("log: want seq 1 with the small tree %s kept, got %+v", smallTree, l)
			case len(got) == 1:
				if !killed {
					t.Errorf("the import finished, but its root was not committed: log %+v\n%s", l, r)
				}
				if r.stdout != "" {
					t.Errorf("the import printed a tree hash but committed nothing\n%s", r)
				}
				d.checkFiles(t, small)
			case len(got) == 2 && got[0] == 2:
				h := l[0].tree
				if r.stdout != "" && strings.TrimSpace(r.stdout) != h {
					t.Errorf("the import printed %q, but seq 2 has tree %s\n%s", r.stdout, h, r)
				}
				if !slices.Contains(bigTrees, h) {
					checkBigTree(t, d, h, big)
				}
				bigTrees = append(bigTrees, h)
				d.checkFiles(t, small, "--root", smallTree)
			default:
				t.Fatalf("log: want seqs [1] or [2 1] after a killed import, got %v", got)
			}
		})
	}
	if killedMidway == 0 {
		t.Errorf("no run was killed before it finished: the kills tested nothing (the import is faster than %v)", delays[0])
	}

	// Finally, an import that runs to completion.
	final, r := d.importTree(t, big)
	l := d.log(t)
	if got := seqs(l); len(got) != 2 || got[0] != 2 || l[0].tree != final {
		t.Fatalf("log after the final import: want seqs [2 1] with tree %s at seq 2, got %+v\n%s", final, l, r)
	}
	if len(bigTrees) > 0 && !strings.Contains(r.stderr, "no changes") {
		t.Errorf("final import after a killed run had committed: want \"no changes\"\n%s", r)
	}
	for _, h := range bigTrees {
		if h != final {
			t.Errorf("a killed run committed tree %s, the complete import gives %s", h, final)
		}
	}
	d.fsckClean(t)
	if !slices.Contains(bigTrees, final) {
		checkBigTree(t, d, final, big)
	}
	// And as a user would look: some directories, a sample of the small
	// files (checkBigTree has read the large ones with gritsd cat).
	for dir, want := range diskListing(t, big) {
		if strings.HasPrefix(dir, "/small/") && dir != "/small/d00" && dir != "/small/d19" {
			continue
		}
		r := d.must(t, "ls", dir)
		if got := parseLs(t, r); !slices.Equal(got, want) {
			t.Errorf("ls %s: want %d entries\n  %s\ngot %d\n  %s", dir, len(want), strings.Join(want, "\n  "), len(got), strings.Join(got, "\n  "))
		}
	}
	for i, rel := range bigFiles[crashLargeFiles:] {
		if i%499 != 0 {
			continue
		}
		want, err := os.ReadFile(filepath.Join(big, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		r := d.must(t, "cat", "/"+rel)
		if r.stdout != string(want) {
			t.Errorf("cat /%s: want the %d source bytes, got %d bytes differing at %d", rel, len(want), len(r.stdout), firstDiff([]byte(r.stdout), want))
		}
	}
}

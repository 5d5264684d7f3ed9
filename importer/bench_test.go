package importer

// System benchmarks of a whole import against copying the same tree.
// Nothing here runs under plain `go test`.
//
//	go test -run '^$' -bench 'ImportVsCopy|Reimport' -benchtime 1x -count 3 ./importer
//
// The source is a generated "mixed tree" (see mixedTree) of about
// GRITS_BENCH_TREE_MB MiB (default 1024). Generating it is slow, so it is
// kept between runs in os.TempDir()/grits-bench-mixed-v1-<MB>MB and
// reused when its marker file is there. Nothing deletes it: remove it
// with `rm -rf "${TMPDIR:-/tmp}"/grits-bench-mixed-*` when done.
// GRITS_BENCH_IMPORT_WORKERS sets Config.Workers (default: GOMAXPROCS).
//
// When the process may write /proc/sys/vm/drop_caches (root), every
// timed iteration starts with a cold page cache; otherwise the source is
// read once beforehand so that all variants see a warm cache. Each
// benchmark logs which.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

// mixedTreeVersion is part of the cache directory's name: bump it when
// the generator changes, so an old tree is not mistaken for a new one.
const mixedTreeVersion = 1

// mixedTreeSpec is what mixedTree generates for a total of about
// totalMB MiB: four large files making up about 3/8 of it (64..128 MiB
// each at 1 GiB) and small files of 1..64 KiB filling the rest, about
// 100 to a directory, in two levels of directories (about 20,000 files
// in 200 directories at 1 GiB). Content is incompressible and fixed by
// the seed.
type mixedTreeSpec struct {
	totalMB int
}

type mixedTreeInfo struct {
	dir   string // the source to import or copy
	bytes int64
	files int
}

var (
	mixedOnce sync.Once
	mixed     mixedTreeInfo
	mixedErr  error
)

// benchTreeMB reads GRITS_BENCH_TREE_MB.
func benchTreeMB() (int, error) {
	s := os.Getenv("GRITS_BENCH_TREE_MB")
	if s == "" {
		return 1024, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("GRITS_BENCH_TREE_MB=%q: want a positive number of MiB", s)
	}
	return n, nil
}

// benchWorkers reads GRITS_BENCH_IMPORT_WORKERS (default 0: the
// importer's own default), to try other degrees of parallelism.
func benchWorkers(b *testing.B) int {
	s := os.Getenv("GRITS_BENCH_IMPORT_WORKERS")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		b.Fatalf("GRITS_BENCH_IMPORT_WORKERS=%q: want a number of workers", s)
	}
	return n
}

// mixedTree returns the generated source tree, generating it on the
// first call of the process unless a complete copy is cached on disk.
func mixedTree(b *testing.B) mixedTreeInfo {
	b.Helper()
	mixedOnce.Do(func() {
		var mb int
		if mb, mixedErr = benchTreeMB(); mixedErr != nil {
			return
		}
		base := filepath.Join(os.TempDir(), fmt.Sprintf("grits-bench-mixed-v%d-%dMB", mixedTreeVersion, mb))
		mixed, mixedErr = mixedTreeSpec{totalMB: mb}.ensure(base)
	})
	if mixedErr != nil {
		b.Fatal(mixedErr)
	}
	return mixed
}

// ensure generates the tree in base/src, or reuses it if base/complete
// records a finished generation.
func (s mixedTreeSpec) ensure(base string) (mixedTreeInfo, error) {
	info := mixedTreeInfo{dir: filepath.Join(base, "src")}
	marker := filepath.Join(base, "complete")
	if m, err := os.ReadFile(marker); err == nil {
		if _, err := fmt.Sscanf(string(m), "%d %d", &info.files, &info.bytes); err == nil {
			return info, nil
		}
	}
	if err := os.RemoveAll(base); err != nil {
		return info, err
	}
	files, bytes, err := s.generate(info.dir)
	if err != nil {
		return info, fmt.Errorf("generate mixed tree in %s: %w", base, err)
	}
	info.files, info.bytes = files, bytes
	if err := os.WriteFile(marker, fmt.Appendf(nil, "%d %d\n", files, bytes), 0o644); err != nil {
		return info, err
	}
	return info, nil
}

func (s mixedTreeSpec) generate(dir string) (files int, total int64, err error) {
	const (
		largeFiles  = 4
		smallMin    = 1 << 10
		smallMax    = 64 << 10
		filesPerDir = 100
		subdirs     = 10 // per top-level directory
	)
	target := int64(s.totalMB) << 20
	rng := rand.New(rand.NewPCG(0x67726974, mixedTreeVersion))
	content := rand.NewChaCha8([32]byte{'m', 'i', 'x', 'e', 'd'})
	buf := make([]byte, 1<<20)

	write := func(path string, size int64) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			_, _ = content.Read(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return err
			}
			left -= n
		}
		files++
		total += size
		return f.Close()
	}

	// Large files: each between target/16 and target/8 bytes.
	for i := range largeFiles {
		size := target/16 + rng.Int64N(target/16+1)
		if err := write(filepath.Join(dir, "media", fmt.Sprintf("video-%d.mp4", i)), size); err != nil {
			return files, total, err
		}
	}
	exts := []string{"html", "css", "js", "jpg", "png", "json", "svg", "woff2"}
	for i := 0; total < target; i++ {
		d := i / filesPerDir
		path := filepath.Join(dir, fmt.Sprintf("site-%02d", d/subdirs), fmt.Sprintf("part-%02d", d%subdirs),
			fmt.Sprintf("f%05d.%s", i, exts[i%len(exts)]))
		size := int64(smallMin + rng.IntN(smallMax-smallMin+1))
		if err := write(path, size); err != nil {
			return files, total, err
		}
	}
	return files, total, nil
}

// coldCache makes the next read come from the disk: it writes back dirty
// pages and drops the page cache. Where that is not allowed it falls back
// to a warm cache: it reads src once (the first time) so that every
// variant starts with the source cached. It returns which it did.
func coldCache(b *testing.B, src string) string {
	b.Helper()
	if err := exec.Command("sync").Run(); err != nil {
		b.Fatalf("sync: %v", err)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err == nil {
		return "cold"
	}
	warmOnce.Do(func() { warmErr = readTree(src) })
	if warmErr != nil {
		b.Fatal(warmErr)
	}
	return "warm"
}

var (
	warmOnce sync.Once
	warmErr  error
)

func readTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		_, err = os.ReadFile(p)
		return err
	})
}

// cpuTime is the user+system CPU time this process has used so far. On a
// shared machine it varies much less than wall time, so the benchmarks
// report it beside ns/op (as cpu-s/op).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// run runs a command and returns the CPU time it used.
func run(b *testing.B, name string, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", name, err, out)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// copyTime and copyRuns sum the "cp" runs of this process, so that
// "import" can report its time as a ratio to their mean. (With -count N,
// go test runs "cp" N times and then "import" N times.)
var (
	copyTime time.Duration
	copyRuns int
)

// importOnce is what `gritsd import` does with the blocks: import into a
// fresh on-disk store, pinned and deferred, then one Sync.
func importOnce(ctx context.Context, b *testing.B, src, storeDir string, prev *State) *Result {
	b.Helper()
	store, err := blockstore.OpenDisk(ctx, storeDir, blockstore.DiskConfig{Quota: -1})
	if err != nil {
		b.Fatal(err)
	}
	res, err := Import(ctx, src, Config{
		Store:      store,
		PutOptions: blockstore.PutOptions{Residency: blockstore.Pinned, Deferred: true},
		Previous:   prev,
		Workers:    benchWorkers(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	return res
}

// removeAll deletes a benchmark's output, outside the timer (the sync in
// coldCache then writes the deletion back before the next timed run).
func removeAll(b *testing.B, dir string) {
	b.Helper()
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		b.Fatal(err)
	}
}

// BenchmarkImportVsCopy imports the mixed tree into a fresh store and,
// as the baseline, copies it with `cp -r` to the same disk; both end with
// a sync. "import" reports x-cp, its time over the mean "cp" run's.
func BenchmarkImportVsCopy(b *testing.B) {
	src := mixedTree(b)
	ctx := context.Background()

	b.Run("cp", func(b *testing.B) {
		dst := filepath.Join(b.TempDir(), "dst")
		b.SetBytes(src.bytes)
		var total, cpu time.Duration
		cache := ""
		for b.Loop() {
			b.StopTimer()
			removeAll(b, dst)
			cache = coldCache(b, src.dir)
			b.StartTimer()
			start := time.Now()
			cpu += run(b, "cp", "-r", src.dir, dst)
			cpu += run(b, "sync")
			total += time.Since(start)
		}
		b.StopTimer()
		removeAll(b, dst)
		copyTime += total
		copyRuns += b.N
		b.ReportMetric(float64(src.files), "files")
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		b.Logf("%s page cache, %d files, %d bytes", cache, src.files, src.bytes)
	})

	b.Run("import", func(b *testing.B) {
		store := filepath.Join(b.TempDir(), "store")
		b.SetBytes(src.bytes)
		var total, cpu time.Duration
		cache := ""
		for b.Loop() {
			b.StopTimer()
			removeAll(b, store)
			cache = coldCache(b, src.dir)
			b.StartTimer()
			start, cpu0 := time.Now(), cpuTime(b)
			res := importOnce(ctx, b, src.dir, store, nil)
			total += time.Since(start)
			cpu += cpuTime(b) - cpu0
			if res.Bytes != src.bytes || res.Files != int64(src.files) {
				b.Fatalf("imported %d files, %d bytes; want %d, %d", res.Files, res.Bytes, src.files, src.bytes)
			}
		}
		b.StopTimer()
		removeAll(b, store)
		b.ReportMetric(float64(src.files), "files")
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		if copyRuns > 0 {
			mean := copyTime / time.Duration(copyRuns)
			b.ReportMetric(float64(total/time.Duration(b.N))/float64(mean), "x-cp")
		}
		b.Logf("%s page cache", cache)
	})
}

// BenchmarkReimportUnchanged times a second import of the unchanged tree
// with the first one's State into the same store; x-first is its time
// over the first (untimed by the framework, but measured the same way).
// Both reopen the store, as each `gritsd import` process does.
func BenchmarkReimportUnchanged(b *testing.B) {
	src := mixedTree(b)
	ctx := context.Background()
	base := b.TempDir()
	var first, again, firstCPU, againCPU time.Duration
	cache := ""
	iter := 0
	for b.Loop() {
		b.StopTimer()
		store := filepath.Join(base, fmt.Sprint(iter))
		iter++
		coldCache(b, src.dir)
		start, cpu0 := time.Now(), cpuTime(b)
		res := importOnce(ctx, b, src.dir, store, nil)
		first += time.Since(start)
		firstCPU += cpuTime(b) - cpu0
		cache = coldCache(b, src.dir)
		b.StartTimer()

		start, cpu0 = time.Now(), cpuTime(b)
		res2 := importOnce(ctx, b, src.dir, store, res.State)
		again += time.Since(start)
		againCPU += cpuTime(b) - cpu0

		b.StopTimer()
		if res2.Unchanged != res.Files || res2.Entry.Hash != res.Entry.Hash {
			b.Fatalf("re-import: %d of %d files unchanged, root %s vs %s", res2.Unchanged, res.Files, res2.Entry.Hash.Short(), res.Entry.Hash.Short())
		}
		removeAll(b, store)
		b.StartTimer()
	}
	b.ReportMetric(float64(src.files), "files")
	b.ReportMetric(first.Seconds()/float64(b.N), "first-s/op")
	b.ReportMetric(float64(again)/float64(first), "x-first")
	b.ReportMetric(againCPU.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(againCPU)/float64(firstCPU), "cpu-x-first")
	b.Logf("%s page cache", cache)
}

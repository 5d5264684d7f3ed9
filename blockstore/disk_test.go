package blockstore_test

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/blockstore/storetest"
)

func TestDisk(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T, quota int64) blockstore.Store {
			return openDisk(t, t.TempDir(), blockstore.DiskConfig{Quota: quota})
		},
		storetest.Options{Corrupt: func(t *testing.T, s blockstore.Store, h blockstore.Hash) {
			flipByte(t, s.(*blockstore.Disk), h)
		}})
}

// openDisk opens a Disk that logs warnings to the test's output, unless
// cfg has a logger already.
func openDisk(t *testing.T, dir string, cfg blockstore.DiskConfig) *blockstore.Disk {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	d, err := blockstore.OpenDisk(t.Context(), dir, cfg)
	if err != nil {
		t.Fatalf("OpenDisk: %v", err)
	}
	return d
}

// blockPath is where the documented layout puts a block's file.
func blockPath(dir string, r blockstore.Residency, h blockstore.Hash) string {
	return filepath.Join(dir, r.String(), h.Hex()[:2], h.Hex())
}

// flipByte damages a block's file behind the store's back.
func flipByte(t *testing.T, d *blockstore.Disk, h blockstore.Hash) {
	t.Helper()
	info, err := d.Stat(t.Context(), h)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	p := blockPath(d.Dir(), info.Residency, h)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		data = []byte{0}
	} else {
		data[len(data)/2] ^= 0x01
	}
	// Block files are read-only; a failing disk does not ask.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects log output for tests that check what was logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func setMtime(t *testing.T, p string, mtime time.Time) {
	t.Helper()
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func mtime(t *testing.T, p string) time.Time {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func TestDiskReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	pinnedData, cachedData := storetest.Block(1, 3000), storetest.Block(2, 4000)
	p, err := d.Put(ctx, pinnedData, blockstore.PutOptions{Residency: blockstore.Pinned})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Put(ctx, cachedData, blockstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := d.Put(ctx, storetest.Block(3, 5000), blockstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetResidency(ctx, promoted, blockstore.Pinned); err != nil {
		t.Fatal(err)
	}
	before, err := d.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}

	d = openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	after, err := d.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("Stats after reopen = %+v, want %+v", after, before)
	}
	for _, tc := range []struct {
		h    blockstore.Hash
		data []byte
		res  blockstore.Residency
	}{
		{p, pinnedData, blockstore.Pinned},
		{c, cachedData, blockstore.Cached},
		{promoted, storetest.Block(3, 5000), blockstore.Pinned},
	} {
		got, err := d.Get(ctx, tc.h)
		if err != nil || !bytes.Equal(got, tc.data) {
			t.Errorf("Get(%s) after reopen: %d bytes, err %v", tc.h.Short(), len(got), err)
		}
		info, err := d.Stat(ctx, tc.h)
		if err != nil || info.Residency != tc.res {
			t.Errorf("Stat(%s) after reopen = %+v, %v; want residency %v", tc.h.Short(), info, err, tc.res)
		}
	}
}

// The LRU order lives in file mtimes across restarts: blocks load oldest
// first, and a read writes its time back to the file.
func TestDiskLRUSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	const size = 1000
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	var hs []blockstore.Hash // a b c
	for i := range 3 {
		h, err := d.Put(ctx, storetest.Block(uint64(i), size), blockstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	now := time.Now()
	for i, h := range hs {
		setMtime(t, blockPath(dir, blockstore.Cached, h), now.Add(time.Duration(i-3)*time.Hour))
	}

	// a is the oldest; reading it makes it the newest, on disk too.
	d = openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	if _, err := d.Get(ctx, hs[0]); err != nil {
		t.Fatal(err)
	}
	if got := mtime(t, blockPath(dir, blockstore.Cached, hs[0])); got.Before(now.Add(-time.Minute)) {
		t.Fatalf("mtime of a block just read is %v, want about %v", got, now)
	}

	d = openDisk(t, dir, blockstore.DiskConfig{Quota: 3 * size})
	dh, err := d.Put(ctx, storetest.Block(3, size), blockstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range append(hs, dh) {
		want := i != 1 // b is now the least recently used
		if got, err := d.Has(ctx, h); err != nil || got != want {
			t.Errorf("block %c: Has = %v, %v; want %v", "abcd"[i], got, err, want)
		}
	}
}

// Reads rewrite mtimes at most once per TouchInterval, so a busy block
// does not turn every read into a metadata write.
func TestDiskTouchInterval(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		rewrite  bool
	}{
		{"default interval", 0, false},
		{"tiny interval", time.Nanosecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1, TouchInterval: tc.interval})
			h, err := d.Put(ctx, []byte("block"), blockstore.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p := blockPath(dir, blockstore.Cached, h)
			old := time.Now().Add(-3 * time.Hour)
			setMtime(t, p, old)
			if _, err := d.Get(ctx, h); err != nil {
				t.Fatal(err)
			}
			if rewritten := !mtime(t, p).Equal(old); rewritten != tc.rewrite {
				t.Errorf("mtime rewritten = %v, want %v", rewritten, tc.rewrite)
			}
		})
	}
}

func TestDiskCorruptFileMovedAside(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	var logs logBuffer
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1, Logger: logs.logger()})
	data := storetest.Block(1, 10000)
	h, err := d.Put(ctx, data, blockstore.PutOptions{Residency: blockstore.Pinned})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, h); err != nil {
		t.Fatal(err)
	}
	flipByte(t, d, h)

	_, err = d.Get(ctx, h)
	ce, ok := errors.AsType[*blockstore.CorruptError](err)
	if !ok {
		t.Fatalf("Get: err = %v, want a *CorruptError", err)
	}
	if _, err := d.Get(ctx, h); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("Get after the block was moved aside: err = %v, want ErrNotFound", err)
	}
	if got, want := d.Reads(), (blockstore.ReadStats{Hits: 1, Misses: 1, Corrupt: 1}); got != want {
		t.Errorf("Reads() = %+v, want %+v", got, want)
	}
	if want := filepath.Join(dir, "corrupt"); filepath.Dir(ce.MovedTo) != want ||
		!strings.HasPrefix(filepath.Base(ce.MovedTo), h.Hex()+".") {
		t.Errorf("MovedTo = %q, want %s/%s.<time>", ce.MovedTo, want, h.Hex())
	}
	bad, err := os.ReadFile(ce.MovedTo)
	if err != nil {
		t.Fatalf("reading the corrupt copy: %v", err)
	}
	if blockstore.Sum(bad) != ce.Actual || bytes.Equal(bad, data) {
		t.Error("the file moved aside is not the corrupt copy")
	}
	if _, err := os.Stat(blockPath(dir, blockstore.Pinned, h)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("corrupt file still in place: %v", err)
	}
	if !strings.Contains(logs.String(), "corrupt block") || !strings.Contains(logs.String(), h.String()) {
		t.Errorf("no warning naming the block logged; got %q", logs.String())
	}

	// Never served again, not even after a restart.
	d = openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	if _, err := d.Get(ctx, h); !errors.Is(err, blockstore.ErrNotFound) {
		t.Errorf("Get after reopen: err = %v, want ErrNotFound", err)
	}
}

// A file bigger than any block is corrupt by definition; Get must say so
// without reading all of it.
func TestDiskOversizedFile(t *testing.T) {
	dir := t.TempDir()
	h := blockstore.Sum([]byte("the real block"))
	p := blockPath(dir, blockstore.Cached, h)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, 2*blockstore.MaxBlockSize), 0o444); err != nil {
		t.Fatal(err)
	}
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	if _, err := d.Get(t.Context(), h); !errors.Is(err, blockstore.ErrCorrupt) {
		t.Fatalf("Get: err = %v, want ErrCorrupt", err)
	}
	if ok, _ := d.Has(t.Context(), h); ok {
		t.Error("oversized file still stored")
	}
}

// A file of the wrong size (a deferred write cut short by a crash) is
// replaced by the next Put of the block, keeping its residency.
func TestDiskPutRepairsWrongSize(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	data := storetest.Block(1, 8000)
	h := blockstore.Sum(data)
	p := blockPath(dir, blockstore.Pinned, h)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data[:100], 0o444); err != nil {
		t.Fatal(err)
	}
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1, Logger: slog.New(slog.DiscardHandler)})
	if _, err := d.Put(ctx, data, blockstore.PutOptions{Residency: blockstore.Cached}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Get(ctx, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %d bytes, err %v", len(got), err)
	}
	if info, err := d.Stat(ctx, h); err != nil || info.Residency != blockstore.Pinned || info.Size != 8000 {
		t.Errorf("Stat = %+v, %v; want pinned, 8000 bytes", info, err)
	}
	if _, err := os.Stat(blockPath(dir, blockstore.Cached, h)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a cached copy was written too: %v", err)
	}
}

func TestDiskOpenCleansTmp(t *testing.T) {
	dir := t.TempDir()
	openDisk(t, dir, blockstore.DiskConfig{})
	old, fresh := filepath.Join(dir, "tmp", "old"), filepath.Join(dir, "tmp", "fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	setMtime(t, old, time.Now().Add(-2*time.Hour))
	openDisk(t, dir, blockstore.DiskConfig{})
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abandoned temporary file not removed: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("recent temporary file (maybe another process's) removed: %v", err)
	}
}

func TestDiskOpenIgnoresStrays(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	h, err := d.Put(ctx, []byte("real"), blockstore.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := blockstore.Sum([]byte("other")).Hex()
	shard := h.Hex()[:2]
	wrongShard := "00"
	if shard == wrongShard {
		wrongShard = "01"
	}
	strays := []struct{ file, logged string }{
		{filepath.Join("cached", shard, "notes.txt"), ""},
		{filepath.Join("cached", shard, strings.ToUpper(other)), ""},
		{filepath.Join("pinned", "README"), ""},
		{filepath.Join("pinned", "zz", other), filepath.Join("pinned", "zz")}, // not a shard
		{filepath.Join("pinned", wrongShard, other), ""},
	}
	for _, s := range strays {
		p := filepath.Join(dir, s.file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("other"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var logs logBuffer
	d = openDisk(t, dir, blockstore.DiskConfig{Quota: -1, Logger: logs.logger()})
	var walked []blockstore.Hash
	if err := d.Walk(ctx, func(info blockstore.Info) error {
		walked = append(walked, info.Hash)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(walked) != 1 || walked[0] != h {
		t.Errorf("Walk visited %v, want just %s", walked, h.Short())
	}
	if st, _ := d.Stats(ctx); st.CachedBlocks != 1 || st.PinnedBlocks != 0 {
		t.Errorf("Stats = %+v, want one cached block", st)
	}
	for _, s := range strays {
		if _, err := os.Stat(filepath.Join(dir, s.file)); err != nil {
			t.Errorf("stray %s touched: %v", s.file, err)
		}
		logged := s.logged
		if logged == "" {
			logged = s.file
		}
		if !strings.Contains(logs.String(), "path="+filepath.Join(dir, logged)+"\n") {
			t.Errorf("stray %s not logged", logged)
		}
	}
}

// A block in both trees (two processes raced, or a crash came between the
// two halves of a promotion) is pinned, and the cached copy goes at open.
func TestDiskOpenResolvesDuplicates(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	data := storetest.Block(1, 3000)
	h := blockstore.Sum(data)
	for _, r := range []blockstore.Residency{blockstore.Cached, blockstore.Pinned} {
		p := blockPath(dir, r, h)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	if _, err := os.Stat(blockPath(dir, blockstore.Cached, h)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cached duplicate still there: %v", err)
	}
	if info, err := d.Stat(ctx, h); err != nil || info.Residency != blockstore.Pinned {
		t.Errorf("Stat = %+v, %v; want pinned", info, err)
	}
	if st, _ := d.Stats(ctx); st.PinnedBlocks != 1 || st.CachedBlocks != 0 {
		t.Errorf("Stats = %+v, want one pinned block", st)
	}
}

// Shard directories are created as needed, so an operator deleting one
// (or all of cached/) does not break the store.
func TestDiskRecreatesShardDirectory(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	data := []byte("block")
	h := blockstore.Sum(data)
	if err := os.RemoveAll(filepath.Join(dir, "pinned")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "pinned"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, r := range []blockstore.Residency{blockstore.Cached, blockstore.Pinned} {
		if _, err := d.Put(ctx, data, blockstore.PutOptions{Residency: r}); err != nil {
			t.Fatalf("Put %v: %v", r, err)
		}
		if _, err := os.Stat(blockPath(dir, r, h)); err != nil {
			t.Errorf("after Put %v: %v", r, err)
		}
	}
}

func TestDiskDeferred(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	d := openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	var hs []blockstore.Hash
	for i := range 100 {
		h, err := d.Put(ctx, storetest.Block(uint64(i), 1000), blockstore.PutOptions{Deferred: true})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil || len(tmp) != 0 {
		t.Errorf("tmp/ holds %d entries (%v) after all puts returned", len(tmp), err)
	}
	d = openDisk(t, dir, blockstore.DiskConfig{Quota: -1})
	for i, h := range hs {
		if got, err := d.Get(ctx, h); err != nil || !bytes.Equal(got, storetest.Block(uint64(i), 1000)) {
			t.Errorf("block %d after reopen: %d bytes, err %v", i, len(got), err)
		}
	}
}

func TestOpenDiskErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		cfg  blockstore.DiskConfig
	}{
		{"dir is a file", file, blockstore.DiskConfig{}},
		{"negative touch interval", t.TempDir(), blockstore.DiskConfig{TouchInterval: -time.Second}},
		{"negative tmp age", t.TempDir(), blockstore.DiskConfig{TmpMaxAge: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := blockstore.OpenDisk(t.Context(), tc.dir, tc.cfg); err == nil {
				t.Errorf("OpenDisk succeeded: %v", d)
			}
		})
	}
}

// TestDiskSetQuotaAndEvictable: lowering the quota evicts at once, least
// recently used first, and a block the Evictable check refuses stays
// whatever the quota says, until the check allows it.
func TestDiskSetQuotaAndEvictable(t *testing.T) {
	ctx := t.Context()
	d := openDisk(t, t.TempDir(), blockstore.DiskConfig{Quota: -1})
	var hs []blockstore.Hash
	for i := range 4 {
		h, err := d.Put(ctx, storetest.Block(uint64(i), 1000), blockstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	var mu sync.Mutex
	protected := map[blockstore.Hash]bool{hs[0]: true}
	d.SetEvictable(func(h blockstore.Hash) bool {
		mu.Lock()
		defer mu.Unlock()
		return !protected[h]
	})
	d.SetQuota(2000)
	has := func(h blockstore.Hash) bool {
		ok, err := d.Has(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// hs[0] is the oldest but protected: hs[1] and hs[2] go instead, even
	// though 3000 bytes then remain over a 2000-byte quota.
	if !has(hs[0]) || has(hs[1]) || has(hs[2]) || !has(hs[3]) {
		t.Errorf("after SetQuota(2000) with the oldest block protected: have %v %v %v %v, want true false false true",
			has(hs[0]), has(hs[1]), has(hs[2]), has(hs[3]))
	}
	if st, _ := d.Stats(ctx); st.Quota != 2000 || st.CachedBytes != 2000 {
		t.Errorf("Stats: quota %d, cached %d bytes; want 2000 and 2000", st.Quota, st.CachedBytes)
	}
	mu.Lock()
	protected = map[blockstore.Hash]bool{}
	mu.Unlock()
	d.SetQuota(1000)
	if has(hs[0]) || !has(hs[3]) {
		t.Errorf("after the check allows it and the quota drops to 1000: have hs[0] %v, hs[3] %v; want false, true", has(hs[0]), has(hs[3]))
	}
	// Only a Put spares the block it stored; a quota of 0 set from
	// outside empties the cache.
	d.SetEvictable(nil)
	d.SetQuota(0)
	if has(hs[3]) {
		t.Errorf("after SetQuota(0): want every cached block gone, %s is still there", hs[3].Short())
	}
}

// TestDiskPeekIsNotAUse: Peek reads and verifies like Get, but leaves the
// LRU order alone, so an audit reading every block evicts nothing new.
func TestDiskPeekIsNotAUse(t *testing.T) {
	ctx := t.Context()
	d := openDisk(t, t.TempDir(), blockstore.DiskConfig{Quota: -1})
	a, _ := d.Put(ctx, storetest.Block(1, 1000), blockstore.PutOptions{})
	b, _ := d.Put(ctx, storetest.Block(2, 1000), blockstore.PutOptions{})
	data, err := d.Peek(ctx, a)
	if err != nil || !bytes.Equal(data, storetest.Block(1, 1000)) {
		t.Fatalf("Peek: %v", err)
	}
	d.SetQuota(1000)
	if ok, _ := d.Has(ctx, a); ok {
		t.Errorf("the peeked block survived eviction: Peek counted as a use")
	}
	if ok, _ := d.Has(ctx, b); !ok {
		t.Errorf("the newer block was evicted")
	}
	flipByte(t, d, b)
	if _, err := d.Peek(ctx, b); !errors.Is(err, blockstore.ErrCorrupt) {
		t.Errorf("Peek of a damaged block: want ErrCorrupt, got %v", err)
	}
}

// TestDiskUnpinKeepsUseOrder: blocks unpinned in a batch keep the order
// of their last uses among the cached blocks, so the quota evicts the
// least recently used of them, wherever they came from.
func TestDiskUnpinKeepsUseOrder(t *testing.T) {
	ctx := t.Context()
	d := openDisk(t, t.TempDir(), blockstore.DiskConfig{Quota: -1, TouchInterval: time.Nanosecond})
	var hs []blockstore.Hash
	for i := range 4 {
		res := blockstore.Pinned
		if i == 1 {
			res = blockstore.Cached
		}
		h, err := d.Put(ctx, storetest.Block(uint64(i), 1000), blockstore.PutOptions{Residency: res})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	// Use order, oldest first: 1 (cached), 2, 0, 3.
	for _, i := range []int{2, 0, 3} {
		if _, err := d.Get(ctx, hs[i]); err != nil {
			t.Fatal(err)
		}
	}
	n, err := d.Unpin(ctx, []blockstore.Hash{hs[3], hs[0], hs[2], blockstore.Sum(storetest.Block(9, 10))})
	if err != nil || n != 3 {
		t.Fatalf("Unpin: %d, %v; want 3 moved (the unknown block skipped)", n, err)
	}
	d.SetQuota(2000)
	for i, want := range []bool{true, false, false, true} {
		if ok, _ := d.Has(ctx, hs[i]); ok != want {
			t.Errorf("block %d (use order 1, 2, 0, 3) after quota 2000: present %v, want %v", i, ok, want)
		}
	}
	if info, _ := d.Stat(ctx, hs[0]); info.Residency != blockstore.Cached {
		t.Errorf("unpinned block: residency %v, want cached", info.Residency)
	}
}

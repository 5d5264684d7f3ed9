package importer

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// writeTree creates files from a map: path -> content; "symlink:X" makes
// a symlink to X; a path ending in "/" an empty directory.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case p[len(p)-1] == '/':
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
		case len(content) > 8 && content[:8] == "symlink:":
			if err := os.Symlink(content[8:], full); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func randomString(n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return string(b)
}

var sample = map[string]string{
	"index.html":          "<h1>hello</h1>",
	"empty.txt":           "",
	"css/site.css":        "body{}",
	"img/big.bin":         randomString(3*tree.MinChunkSize*64+123, 1),
	"docs/guide/intro.md": "# intro",
	"docs/latest":         "symlink:guide/intro.md",
	"docs/drafts/":        "",
	"名前 with space.txt":   "utf-8",
}

func importDir(t *testing.T, store blockstore.Store, src string, prev *State) *Result {
	t.Helper()
	res, err := Import(context.Background(), src, Config{Store: store, ChunkSize: tree.MinChunkSize, Previous: prev, Now: later})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return res
}

func TestImportMatchesSource(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sample)
	if err := os.Chmod(filepath.Join(src, "css/site.css"), 0o700); err != nil {
		t.Fatal(err)
	}
	store := blockstore.NewMem(-1)
	res := importDir(t, store, src, nil)
	if res.Files != 6 || res.Symlinks != 1 || res.Dirs != 6 {
		t.Fatalf("counted %d files, %d symlinks, %d dirs", res.Files, res.Symlinks, res.Dirs)
	}
	ctx := context.Background()
	root := res.Entry.Hash
	var total uint64
	for p, content := range sample {
		r, err := tree.Lookup(ctx, store, root, tree.MustParsePath(p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		switch {
		case p[len(p)-1] == '/':
			if r.Entry.Kind != tree.KindDir || r.Entry.Size != 0 {
				t.Fatalf("%s: %+v, want an empty dir", p, r.Entry)
			}
		case len(content) > 8 && content[:8] == "symlink:":
			if r.Entry.Kind != tree.KindSymlink || r.Entry.Target != content[8:] {
				t.Fatalf("%s: %+v", p, r.Entry)
			}
			total += uint64(len(content) - 8)
		default:
			var buf bytes.Buffer
			f := r.Node.(*tree.FileNode)
			if err := tree.ReadFile(ctx, store, f, 0, f.Size, &buf); err != nil {
				t.Fatal(err)
			}
			if buf.String() != content {
				t.Fatalf("%s: content differs", p)
			}
			total += uint64(len(content))
		}
	}
	if res.Entry.Size != total {
		t.Fatalf("root size %d, want %d", res.Entry.Size, total)
	}
	r, _ := tree.Lookup(ctx, store, root, tree.MustParsePath("css/site.css"))
	if r.Entry.Mode != 0o755 {
		t.Fatalf("executable file mode %#o, want 0755", r.Entry.Mode)
	}
}

// TestImportIsDeterministic: the same content gives the same hash
// whatever the permissions' non-execute bits and mtimes, unless mtimes
// are asked for.
func TestImportIsDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, a, sample)
	writeTree(t, b, sample)
	if err := os.Chmod(filepath.Join(b, "index.html"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(b, "empty.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	store := blockstore.NewMem(-1)
	ha := importDir(t, store, a, nil).Entry.Hash
	hb := importDir(t, store, b, nil).Entry.Hash
	if ha != hb {
		t.Fatalf("same content, different trees: %s vs %s", ha, hb)
	}
	ctx := context.Background()
	ra, err := Import(ctx, a, Config{Store: store, ChunkSize: tree.MinChunkSize, KeepMTimes: true})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Import(ctx, b, Config{Store: store, ChunkSize: tree.MinChunkSize, KeepMTimes: true})
	if err != nil {
		t.Fatal(err)
	}
	if ra.Entry.Hash == rb.Entry.Hash {
		t.Fatal("--keep-mtimes ignored the mtimes")
	}
}

func TestReimportSkipsUnchanged(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sample)
	store := blockstore.NewMem(-1)
	first := importDir(t, store, src, nil)

	again := importDir(t, store, src, first.State)
	if again.Unchanged != first.Files || again.Entry.Hash != first.Entry.Hash {
		t.Fatalf("unchanged re-import: %d of %d reused, hash equal %v", again.Unchanged, first.Files, again.Entry.Hash == first.Entry.Hash)
	}

	if err := os.WriteFile(filepath.Join(src, "index.html"), []byte("<h1>changed</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := importDir(t, store, src, again.State)
	if changed.Unchanged != first.Files-1 || changed.Entry.Hash == first.Entry.Hash {
		t.Fatalf("one file changed: %d reused (want %d), hash changed %v", changed.Unchanged, first.Files-1, changed.Entry.Hash != first.Entry.Hash)
	}

	// A reused hash must never point at blocks that are gone.
	ctx := context.Background()
	r, err := tree.Lookup(ctx, store, changed.Entry.Hash, tree.MustParsePath("img/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var victim blockstore.Hash
	_ = tree.Chunks(ctx, store, r.Node.(*tree.FileNode), 0, 1, func(c tree.Chunk) error { victim = c.Hash; return nil })
	if err := store.Delete(ctx, victim); err != nil {
		t.Fatal(err)
	}
	healed := importDir(t, store, src, changed.State)
	if healed.Unchanged != first.Files-1 {
		t.Fatalf("file with a missing chunk was reused: %d reused", healed.Unchanged)
	}
	if ok, _ := store.Has(ctx, victim); !ok {
		t.Fatal("re-import did not restore the missing chunk")
	}
}

// later is a clock for imports that pretends the files were written long
// ago, so that the racy-file rule does not apply.
func later() time.Time { return time.Now().Add(time.Hour) }

// TestRecentFilesAreNotTrusted: a file changed within racyMargin of an
// import may change again without its size or times changing, so the
// import does not remember it and the next one reads it again.
func TestRecentFilesAreNotTrusted(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"a.txt": "one"})
	store := blockstore.NewMem(-1)
	ctx := context.Background()
	first, err := Import(ctx, src, Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.State.Files) != 0 {
		t.Fatalf("a file written just now was remembered: %v", first.State.Files)
	}
	// Rewrite with the same size and restore the mtime: only re-reading
	// can notice.
	fi, _ := os.Stat(filepath.Join(src, "a.txt"))
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "a.txt"), fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	second, err := Import(ctx, src, Config{Store: store, Previous: first.State})
	if err != nil {
		t.Fatal(err)
	}
	if second.Entry.Hash == first.Entry.Hash {
		t.Fatal("same-size rewrite with a restored mtime was missed")
	}
}

func TestImportRefuses(t *testing.T) {
	cases := map[string]struct {
		setup func(t *testing.T, dir string)
		want  error
	}{
		"fifo": {func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrSpecialFile},
		"invalid utf-8 name": {func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "bad\xffname"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, tree.ErrBadName},
		"missing source": {func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}, os.ErrNotExist},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src")
			writeTree(t, dir, map[string]string{"ok.txt": "fine"})
			c.setup(t, dir)
			store := blockstore.NewMem(-1)
			_, err := Import(context.Background(), dir, Config{Store: store})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestImportSingleFileAndCancel(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sample)
	store := blockstore.NewMem(-1)
	res, err := Import(context.Background(), filepath.Join(dir, "index.html"), Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entry.Kind != tree.KindFile || res.Entry.Name != "index.html" || res.Entry.Size != uint64(len(sample["index.html"])) {
		t.Fatalf("single file entry %+v", res.Entry)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, dir, Config{Store: store}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled import: err = %v", err)
	}
}

func TestStateSaveLoad(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sample)
	res := importDir(t, blockstore.NewMem(-1), src, nil)
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	if err := res.State.Save(path); err != nil {
		t.Fatal(err)
	}
	got := LoadState(path)
	if got == nil || len(got.Files) != len(res.State.Files) {
		t.Fatalf("loaded %v", got)
	}
	for k, v := range res.State.Files {
		if got.Files[k] != v {
			t.Fatalf("%s: %+v != %+v", k, got.Files[k], v)
		}
	}
	if err := os.WriteFile(path, []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if LoadState(path) != nil {
		t.Fatal("garbage state accepted")
	}
}

// TestReimportWithNewChunkSize: after the chunk size changes, unchanged
// files are chunked again, so an incremental import gives the same tree
// as a fresh one.
func TestReimportWithNewChunkSize(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, sample)
	store := blockstore.NewMem(-1)
	ctx := context.Background()
	first := importDir(t, store, src, nil)
	again, err := Import(ctx, src, Config{Store: store, ChunkSize: 2 * tree.MinChunkSize, Previous: first.State, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Import(ctx, src, Config{Store: blockstore.NewMem(-1), ChunkSize: 2 * tree.MinChunkSize, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if again.Entry.Hash != fresh.Entry.Hash {
		t.Fatalf("incremental import with a new chunk size differs from a fresh one (%d files reused)", again.Unchanged)
	}
}

// TestImportDecidesTypes: each file's entry carries its media type, from
// its name or (no known extension) its first bytes; an unchanged file
// keeps the type it got without being read again; a file imported
// under another name gets that name's type.
func TestImportDecidesTypes(t *testing.T) {
	src := t.TempDir()
	png := "\x89PNG\r\n\x1a\n" + randomString(2000, 7)
	writeTree(t, src, map[string]string{
		"index.html": "<h1>hi</h1>", "notes.md": "# notes", "font.woff2": "wOF2", "CNAME": "example.org\n",
		"photo": png, "page": "<!doctype html><p>not run</p>", "docs/x.PDF": "%PDF-1.7",
	})
	want := map[string]string{
		"index.html": "text/html; charset=utf-8", "notes.md": "text/markdown; charset=utf-8", "font.woff2": "font/woff2",
		"CNAME": "text/plain; charset=utf-8", "photo": "image/png", "page": "text/plain; charset=utf-8", "docs/x.PDF": "application/pdf",
	}
	store := blockstore.NewMem(-1)
	check := func(res *Result) {
		t.Helper()
		for p, typ := range want {
			r, err := tree.Lookup(context.Background(), store, res.Entry.Hash, tree.MustParsePath(p))
			if err != nil {
				t.Fatal(err)
			}
			if r.Entry.Type != typ {
				t.Errorf("%s: type %q, want %q", p, r.Entry.Type, typ)
			}
		}
	}
	first := importDir(t, store, src, nil)
	check(first)
	again := importDir(t, store, src, first.State)
	if again.Unchanged != int64(len(want)) {
		t.Fatalf("re-import read %d files again; want none", int64(len(want))-again.Unchanged)
	}
	check(again)
	if again.Entry.Hash != first.Entry.Hash {
		t.Fatal("an unchanged source gave another tree")
	}

	res, err := Import(context.Background(), filepath.Join(src, "photo"), Config{Store: store, TopName: "photo.webp", Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entry.Name != "photo.webp" || res.Entry.Type != "image/webp" {
		t.Errorf("a file imported as photo.webp: %q, %q", res.Entry.Name, res.Entry.Type)
	}
}

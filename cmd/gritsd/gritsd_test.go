package main_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

var keyLineRE = regexp.MustCompile(`^(node-id|site-key): ed25519-[0-9a-f]{64}$`)

func TestInit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		wantLines []string // the key names printed, in order
		wantFiles []string
		noFiles   []string
		role      string
	}{
		{"origin", []string{"init", "--origin"}, []string{"node-id", "site-key"},
			[]string{"gritsd.toml", "node.key", "site.key", "swarm.key"}, nil, "origin"},
		{"volunteer", []string{"init"}, []string{"node-id"},
			[]string{"gritsd.toml", "node.key"}, []string{"site.key", "swarm.key"}, "volunteer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dataDir(filepath.Join(t.TempDir(), "data"))
			r := d.must(t, tt.args...)
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("want %d lines (%s) on stdout, got %d\n%s", len(tt.wantLines), strings.Join(tt.wantLines, ", "), len(lines), r)
			}
			for i, l := range lines {
				if !keyLineRE.MatchString(l) || !strings.HasPrefix(l, tt.wantLines[i]+": ") {
					t.Errorf("stdout line %d: want \"%s: ed25519-<64 hex>\", got %q\n%s", i+1, tt.wantLines[i], l, r)
				}
			}
			if !strings.Contains(r.stderr, "initialized "+tt.role) {
				t.Errorf("stderr: want it to say \"initialized %s\"\n%s", tt.role, r)
			}
			for _, f := range tt.wantFiles {
				fi, err := os.Stat(d.path(f))
				if err != nil {
					t.Errorf("want %s after %v: %v", f, tt.args, err)
					continue
				}
				if strings.HasSuffix(f, ".key") && fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: want mode 0600, got %v", f, fi.Mode().Perm())
				}
			}
			for _, f := range tt.noFiles {
				if _, err := os.Stat(d.path(f)); err == nil {
					t.Errorf("%s exists after %v; want it only for an origin", f, tt.args)
				}
			}
			// A fresh directory has no roots, and says so.
			if r := d.must(t, "log"); r.stdout != "" || !strings.Contains(r.stderr, "no roots yet") {
				t.Errorf("log of a new directory: want empty stdout and \"no roots yet\"\n%s", r)
			}
		})
	}
}

func TestInitRefusesToReinitialize(t *testing.T) {
	t.Parallel()
	files := []string{"gritsd.toml", "node.key", "site.key", "swarm.key"}
	tests := []struct {
		name string
		args []string
	}{
		{"init --origin again", []string{"init", "--origin"}},
		{"init as volunteer over an origin", []string{"init"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newOrigin(t)
			before := map[string][]byte{}
			for _, f := range files {
				b, err := os.ReadFile(d.path(f))
				if err != nil {
					t.Fatal(err)
				}
				before[f] = b
			}
			r := d.run(t, tt.args...)
			if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "already initialized") {
				t.Errorf("want a non-zero exit, nothing on stdout and \"already initialized\" on stderr\n%s", r)
			}
			for _, f := range files {
				b, err := os.ReadFile(d.path(f))
				if err != nil {
					t.Fatalf("%s after a refused init: %v", f, err)
				}
				if !bytes.Equal(b, before[f]) {
					t.Errorf("%s changed although init was refused", f)
				}
			}
		})
	}
}

func TestInitRefusesNonEmptyDirectory(t *testing.T) {
	t.Parallel()
	d := dataDir(t.TempDir())
	if err := os.WriteFile(d.path("notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := d.run(t, "init", "--origin")
	if r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("want a non-zero exit and \"not empty\" on stderr\n%s", r)
	}
	if _, err := os.Stat(d.path("gritsd.toml")); err == nil {
		t.Errorf("gritsd.toml was written into a non-empty directory")
	}
}

// TestDataDirSources checks the ways to name the data directory:
// GRITS_DATA, --data before the command, --data=DIR.
func TestDataDirSources(t *testing.T) {
	t.Parallel()
	d := dataDir(filepath.Join(t.TempDir(), "data"))
	env := []string{"GRITS_DATA=" + string(d)}
	if r := runEnv(t, env, "init", "--origin"); r.code != 0 {
		t.Fatalf("init with GRITS_DATA: want exit 0\n%s", r)
	}
	if _, err := os.Stat(d.path("site.key")); err != nil {
		t.Fatalf("init with GRITS_DATA=%s did not create the site key there: %v", d, err)
	}
	src := newSource(t, []entry{{path: "hello.txt", data: []byte("hello\n")}})
	r := runEnv(t, env, "import", src)
	if r.code != 0 || !treeHashRE.MatchString(strings.TrimSpace(r.stdout)) {
		t.Fatalf("import with GRITS_DATA: want exit 0 and a tree hash\n%s", r)
	}
	treeHash := strings.TrimSpace(r.stdout)

	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{"GRITS_DATA", env, []string{"cat", "/hello.txt"}},
		{"--data before the command", nil, []string{"--data", string(d), "cat", "/hello.txt"}},
		{"--data=DIR before the command", nil, []string{"--data=" + string(d), "cat", "/hello.txt"}},
		{"--data after the argument", nil, []string{"cat", "/hello.txt", "--data", string(d)}},
		{"--data wins over GRITS_DATA", []string{"GRITS_DATA=" + t.TempDir()}, []string{"cat", "--data", string(d), "/hello.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runEnv(t, tt.env, tt.args...)
			if r.code != 0 || r.stdout != "hello\n" {
				t.Errorf("want exit 0 and \"hello\\n\"\n%s", r)
			}
		})
	}
	if l := d.log(t); len(l) != 1 || l[0].tree != treeHash {
		t.Errorf("log: want one root with tree %s, got %+v", treeHash, l)
	}
}

var importSummaryRE = regexp.MustCompile(`(\d+) files \([^,]*, (\d+) unchanged\)`)

// importCounts returns the files and unchanged counts of an import summary.
func importCounts(t *testing.T, r result) (files, unchanged int) {
	t.Helper()
	m := importSummaryRE.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("import: want a summary \"N files (SIZE, M unchanged)\" on stderr\n%s", r)
	}
	files, _ = strconv.Atoi(m[1])
	unchanged, _ = strconv.Atoi(m[2])
	return files, unchanged
}

func TestImportDirectory(t *testing.T) {
	t.Parallel()
	entries := standardEntries()
	src := newSource(t, entries)
	settle(t, src)
	d := newOrigin(t)
	nfiles := fileCount(entries)

	first, r := d.importTree(t, src)
	if !strings.Contains(r.stderr, "committed root seq 1") {
		t.Errorf("first import: want \"committed root seq 1\" on stderr\n%s", r)
	}
	if files, unchanged := importCounts(t, r); files != nfiles || unchanged != 0 {
		t.Errorf("first import: want %d files, 0 unchanged; got %d, %d\n%s", nfiles, files, unchanged, r)
	}
	log1 := d.log(t)
	if len(log1) != 1 || log1[0].seq != 1 || log1[0].tree != first {
		t.Fatalf("log after the first import: want seq 1 with tree %s, got %+v", first, log1)
	}
	d.checkTree(t, entries)

	t.Run("again, unchanged", func(t *testing.T) {
		again, r := d.importTree(t, src)
		if again != first {
			t.Errorf("re-import of an unchanged source: want the same tree %s, got %s\n%s", first, again, r)
		}
		if !strings.Contains(r.stderr, "no changes") {
			t.Errorf("re-import of an unchanged source: want \"no changes\" on stderr\n%s", r)
		}
		if files, unchanged := importCounts(t, r); files != nfiles || unchanged != nfiles {
			t.Errorf("re-import: want all %d files unchanged, got %d of %d\n%s", nfiles, unchanged, files, r)
		}
		if got := seqs(d.log(t)); len(got) != 1 {
			t.Errorf("log after a no-change import: want only seq 1, got %v", got)
		}
	})

	newIndex := []byte("<!doctype html>\n<h1>hello again, grits: version two</h1>\n")
	entries2 := replaceEntry(entries, "index.html", newIndex)
	if err := os.WriteFile(filepath.Join(src, "index.html"), newIndex, 0o644); err != nil {
		t.Fatal(err)
	}
	second, r := d.importTree(t, src)
	if second == first {
		t.Fatalf("import after changing index.html: want a new tree hash, got the old one %s\n%s", first, r)
	}
	if !strings.Contains(r.stderr, "committed root seq 2") {
		t.Errorf("import after a change: want \"committed root seq 2\" on stderr\n%s", r)
	}
	if files, unchanged := importCounts(t, r); files != nfiles || unchanged != nfiles-1 {
		t.Errorf("import after changing one file: want %d of %d files unchanged, got %d of %d\n%s", nfiles-1, nfiles, unchanged, files, r)
	}
	log2 := d.log(t)
	if got := seqs(log2); len(got) != 2 || got[0] != 2 || got[1] != 1 {
		t.Fatalf("log: want seqs [2 1] (newest first), got %v", got)
	}
	if log2[0].tree != second || log2[1].tree != first || log2[1].root != log1[0].root {
		t.Errorf("log: want seq 2 tree %s and seq 1 tree %s root %s, got %+v", second, first, log1[0].root, log2)
	}
	d.checkTree(t, entries2)

	// Older versions stay readable, named by tree hash or root hash.
	for _, tt := range []struct{ name, root string }{
		{"--root old tree hash", first},
		{"--root old root hash", log2[1].root},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d.checkTree(t, entries, "--root", tt.root)
		})
	}
	t.Run("--root new root hash", func(t *testing.T) {
		r := d.must(t, "cat", "/index.html", "--root", log2[0].root)
		if r.stdout != string(newIndex) {
			t.Errorf("want the new index.html\n%s", r)
		}
	})
	d.fsckClean(t)
}

func TestImportFile(t *testing.T) {
	t.Parallel()
	data := randBytes(7, 2*chunkSize+100)
	srcDir := newSource(t, []entry{{path: "clip.bin", data: data}})
	file := filepath.Join(srcDir, "clip.bin")
	d := newOrigin(t)

	t.Run("--at /x/y.bin", func(t *testing.T) {
		d.importTree(t, file, "--at", "/x/y.bin")
		want := []entry{{path: "x/y.bin", data: data}}
		d.checkTree(t, want)
		r := d.must(t, "ls", "/x/y.bin")
		if got := parseLs(t, r); len(got) != 1 || got[0] != fmt.Sprintf("-rw-r--r-- %d y.bin", len(data)) {
			t.Errorf("ls of a file: want its one entry, got %q\n%s", got, r)
		}
	})
	t.Run("default /NAME", func(t *testing.T) {
		d.importTree(t, file)
		// Added to the latest tree, next to what is there.
		d.checkTree(t, []entry{{path: "x/y.bin", data: data}, {path: "clip.bin", data: data}})
		if got := seqs(d.log(t)); len(got) != 2 || got[0] != 2 {
			t.Errorf("log: want seqs [2 1], got %v", got)
		}
	})
	t.Run("directory --at /site/v1", func(t *testing.T) {
		entries := standardEntries()[:4]
		d.importTree(t, newSource(t, entries), "--at", "/site/v1")
		want := []entry{{path: "x/y.bin", data: data}, {path: "clip.bin", data: data}}
		for _, e := range entries {
			e.path = "site/v1/" + e.path
			want = append(want, e)
		}
		d.checkTree(t, want)
	})
	d.fsckClean(t)
}

func TestCatRefusesNonFiles(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	d.importTree(t, newSource(t, standardEntries()))
	tests := []struct {
		path string
		want string
	}{
		{"/", "is a directory"},
		{"/a/b", "is a directory"},
		{"/a/b/empty-dir", "is a directory"},
		{"/link", "is a symlink"},
		{"/a/dangling", "is a symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := d.run(t, "cat", tt.path)
			if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("cat %s: want exit 1, empty stdout and %q on stderr\n%s", tt.path, tt.want, r)
			}
		})
	}
}

var (
	proofHeadRE  = regexp.MustCompile(`^proof that (\S+) (exists|does not exist) under tree (b3-[0-9a-f]{64}): (.*)\n`)
	proofSizeRE  = regexp.MustCompile(`(?m)^verified: (\d+) nodes, (\d+) bytes$`)
	proofNodesRE = regexp.MustCompile(`(?m)^ +\d+ +\d+ bytes  b3-[0-9a-f]{12}  (dir|shard|file) .*$`)
)

func TestProof(t *testing.T) {
	t.Parallel()
	entries := standardEntries()
	d := newOrigin(t)
	treeHash, _ := d.importTree(t, newSource(t, entries))
	root, err := blockstore.ParseHash(treeHash)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		exists bool
		detail string // in the first line
		kinds  []string
	}{
		// One-chunk files are direct entries: no file node of their own.
		{"/index.html", true, "a file of 38 bytes", []string{"dir"}},
		{"/a/b/c/deep.txt", true, "a file of 10 bytes", []string{"dir", "dir", "dir", "dir"}},
		{"/media/big.bin", true, fmt.Sprintf("a file of %d bytes", 12*chunkSize+12345), []string{"dir", "dir", "file"}},
		{"/a/b/empty-dir", true, "a dir of 0 bytes", []string{"dir", "dir", "dir", "dir"}},
		{"/link", true, "a symlink of 14 bytes", []string{"dir"}},
		{"/a/nope", false, `no such file or directory (proven absent: /a has no "nope")`, []string{"dir", "dir"}},
		{"/index.html/x", false, "not a directory", []string{"dir"}},
		{"/link/x", false, "symlink", []string{"dir"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "proof.bin")
			r := d.must(t, "proof", tt.path, "-o", out)
			head := proofHeadRE.FindStringSubmatch(r.stdout)
			wantVerb := map[bool]string{true: "exists", false: "does not exist"}[tt.exists]
			if head == nil || head[1] != tt.path || head[2] != wantVerb || head[3] != treeHash || !strings.Contains(head[4], tt.detail) {
				t.Errorf("want a first line \"proof that %s %s under tree %s: ...%s...\"\n%s", tt.path, wantVerb, treeHash, tt.detail, r)
			}
			size := proofSizeRE.FindStringSubmatch(r.stdout)
			if size == nil {
				t.Fatalf("want \"verified: N nodes, B bytes\"\n%s", r)
			}
			nodes, _ := strconv.Atoi(size[1])
			nbytes, _ := strconv.Atoi(size[2])
			var kinds []string
			for _, m := range proofNodesRE.FindAllStringSubmatch(r.stdout, -1) {
				kinds = append(kinds, m[1])
			}
			if nodes != len(tt.kinds) || strings.Join(kinds, " ") != strings.Join(tt.kinds, " ") {
				t.Errorf("want %d nodes listed (%v), got %d nodes said and %v listed\n%s", len(tt.kinds), tt.kinds, nodes, kinds, r)
			}

			// -o wrote the proof itself: a client can verify it alone.
			enc, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("proof -o %s: %v\n%s", out, err, r)
			}
			if len(enc) != nbytes {
				t.Errorf("proof -o: file has %d bytes, the output says %d\n%s", len(enc), nbytes, r)
			}
			p, err := tree.DecodeProof(enc)
			if err != nil {
				t.Fatalf("proof -o: decoding the written proof: %v", err)
			}
			res, err := tree.Verify(root, tree.MustParsePath(tt.path), p)
			if err != nil {
				t.Fatalf("proof -o: verifying the written proof against %s: %v", treeHash, err)
			}
			if got := res.Status == tree.Found; got != tt.exists {
				t.Errorf("proof -o: the written proof says found=%v, want %v (status %v)", got, tt.exists, res.Status)
			}
		})
	}
}

// TestImportKeepMTimes checks that by default content alone decides the
// tree hash, and that --keep-mtimes makes modification times count.
func TestImportKeepMTimes(t *testing.T) {
	t.Parallel()
	entries := standardEntries()
	src := newSource(t, entries)
	settle(t, src)
	touch := func() {
		t.Helper()
		p := filepath.Join(src, "index.html")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		mt := fi.ModTime().Add(-time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}

	d := newOrigin(t)
	plain, _ := d.importTree(t, src)
	touch()
	again, r := d.importTree(t, src)
	if again != plain || !strings.Contains(r.stderr, "no changes") {
		t.Errorf("after only an mtime change: want the same tree %s and \"no changes\", got %s\n%s", plain, again, r)
	}
	if files, unchanged := importCounts(t, r); unchanged != files-1 {
		t.Errorf("after an mtime change of one file: want it read again (%d of %d unchanged), got %d unchanged\n%s", files-1, files, unchanged, r)
	}

	k := newOrigin(t)
	kept, _ := k.importTree(t, src, "--keep-mtimes")
	if kept == plain {
		t.Errorf("--keep-mtimes: want a tree hash that differs from the content-only one %s", plain)
	}
	touch()
	kept2, r := k.importTree(t, src, "--keep-mtimes")
	if kept2 == kept || !strings.Contains(r.stderr, "committed root seq 2") {
		t.Errorf("--keep-mtimes after an mtime change: want a new tree and root seq 2, got %s (before %s)\n%s", kept2, kept, r)
	}
	k.checkTree(t, entries)
}

// TestImportSeesRewriteInSameTick rewrites a file in place with content
// of the same size and the same mtime as when the last import read it.
// That is what happens when a file is rewritten within one tick of the
// file system's clock (a jiffy on kernels without fine-grained
// timestamps) of the import that read it: size, mtime and inode all
// match the saved import state, and only the content differs. The
// import must not keep the old content: a file whose mtime was not older
// than the import that recorded it cannot be trusted by its metadata
// later (git's "racy clean" entries).
func TestImportSeesRewriteInSameTick(t *testing.T) {
	t.Parallel()
	entries := []entry{{path: "status.json", data: []byte(`{"state":"old"}`)}, {path: "other.txt", data: []byte("other\n")}}
	src := newSource(t, entries)
	p := filepath.Join(src, "status.json")
	// The tick the file was written in, as seen by the import that runs
	// now: not before the import started.
	tick := time.Now().Add(time.Second).Truncate(time.Millisecond)
	if err := os.Chtimes(p, tick, tick); err != nil {
		t.Fatal(err)
	}
	d := newOrigin(t)
	first, _ := d.importTree(t, src)

	// Rewritten in place, in the same tick.
	if err := os.WriteFile(p, []byte(`{"state":"new"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, tick, tick); err != nil {
		t.Fatal(err)
	}
	second, r := d.importTree(t, src)
	if second == first {
		t.Errorf("import after status.json was rewritten: want a new tree, got the old one %s\n%s", first, r)
	}
	if r := d.must(t, "cat", "/status.json"); r.stdout != `{"state":"new"}` {
		t.Errorf("cat /status.json: want the new content {\"state\":\"new\"}\n%s", r)
	}
}

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

	"github.com/grits-cdn/grits/blockstore"
)

// blockPath is where an origin keeps block h.
func (d dataDir) blockPath(h blockstore.Hash) string {
	x := h.Hex()
	return d.path("blocks", "pinned", x[:2], x)
}

// flipByte damages a block file in place, the way bit rot would.
func flipByte(t *testing.T, p string, off int) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading the block to damage: %v", err)
	}
	b[off%len(b)] ^= 0x20
	// Block files are read-only; an owner may still change that.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o444); err != nil {
		t.Fatal(err)
	}
	return b
}

// findBlockByShortHash finds the one block file whose name starts with
// the hex of a short hash as gritsd ls prints it (b3-<12 hex>).
func (d dataDir) findBlockByShortHash(t *testing.T, short string) (blockstore.Hash, string) {
	t.Helper()
	x := strings.TrimPrefix(short, "b3-")
	matches, err := filepath.Glob(d.path("blocks", "pinned", x[:2], x+"*"))
	if err != nil || len(matches) != 1 {
		t.Fatalf("want one block file for %s, got %v (%v)", short, matches, err)
	}
	h, err := blockstore.ParseHash("b3-" + filepath.Base(matches[0]))
	if err != nil {
		t.Fatal(err)
	}
	return h, matches[0]
}

var oneProblemRE = regexp.MustCompile(`\b1 problems? found`)

// TestCorruptBlock damages one block on disk and checks that it is found,
// reported with the path that needs it, moved aside, never served, and
// repaired by importing the source again.
func TestCorruptBlock(t *testing.T) {
	t.Parallel()
	const victimChunk = 2
	tests := []struct {
		name string
		// file is the tree path whose block is damaged.
		file string
		// node: damage the file node rather than a chunk; direct: the
		// file is one chunk, named by its entry.
		node, direct bool
		// catFirst: the damage is met by a reader before fsck runs.
		catFirst bool
	}{
		{"chunk, fsck first", "/media/big.bin", false, false, false},
		{"chunk, cat first", "/media/big.bin", false, false, true},
		{"file node, fsck first", "/media/big.bin", true, false, false},
		{"file node, cat first", "/media/big.bin", true, false, true},
		{"direct file, fsck first", "/index.html", false, true, false},
		{"direct file, cat first", "/a/b/c/deep.txt", false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entries := standardEntries()
			src := newSource(t, entries)
			d := newOrigin(t)
			treeHash, _ := d.importTree(t, src)
			want, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(tt.file[1:])))
			if err != nil {
				t.Fatal(err)
			}

			var h blockstore.Hash
			var p, where string
			switch {
			case tt.node:
				ls := parseLsHashes(t, d.must(t, "ls", tt.file))
				h, p = d.findBlockByShortHash(t, ls[filepath.Base(tt.file)])
				where = "file node of " + tt.file
			case tt.direct:
				h = blockstore.Sum(want)
				p = d.blockPath(h)
				where = "chunk at offset 0 of " + tt.file
			default:
				off := victimChunk * chunkSize
				h = blockstore.Sum(want[off : off+chunkSize])
				p = d.blockPath(h)
				where = fmt.Sprintf("chunk at offset %d of %s", off, tt.file)
			}
			if fi, err := os.Stat(p); err != nil {
				t.Fatalf("want the block of %s at %s: %v", where, p, err)
			} else if !tt.node && !tt.direct && fi.Size() != chunkSize {
				t.Fatalf("%s: want a full chunk of %d bytes, got %d", p, chunkSize, fi.Size())
			}
			damaged := flipByte(t, p, 1000)

			checkCat := func() {
				t.Helper()
				r := d.run(t, "cat", tt.file)
				if r.code == 0 {
					t.Errorf("cat %s of a damaged file: want a non-zero exit\n%s", tt.file, r)
				}
				// Whatever it wrote before it failed must be right.
				if len(r.stdout) >= len(want) || !bytes.HasPrefix(want, []byte(r.stdout)) {
					t.Errorf("cat %s of a damaged file: stdout must be a strict prefix of the content, got %d bytes differing at %d of %d\n%s",
						tt.file, len(r.stdout), firstDiff([]byte(r.stdout), want), len(want), r)
				}
				if !strings.Contains(r.stderr, h.Short()) {
					t.Errorf("cat %s: want the damaged block %s named on stderr\n%s", tt.file, h.Short(), r)
				}
			}
			checkFsck := func(wantWord string) {
				t.Helper()
				r := d.run(t, "fsck")
				if r.code != 1 {
					t.Errorf("fsck with a damaged block: want exit 1\n%s", r)
				}
				// A missing node is named by its short hash (in the load
				// error), everything else by its full one.
				for _, w := range []string{wantWord, h.Short(), where} {
					if !strings.Contains(r.stdout, w) {
						t.Errorf("fsck: want %q in its report\n%s", w, r)
					}
				}
				if !oneProblemRE.MatchString(r.stderr) {
					t.Errorf("fsck: want \"1 problem found\" on stderr\n%s", r)
				}
			}
			if tt.catFirst {
				checkCat()
				checkFsck("missing")
			} else {
				checkFsck("corrupt block")
				checkCat()
			}

			// The damaged copy was moved aside, where an operator can look.
			if _, err := os.Stat(p); err == nil {
				t.Errorf("the damaged block is still at %s", p)
			}
			aside, err := filepath.Glob(d.path("blocks", "corrupt", h.Hex()+"*"))
			if err != nil || len(aside) != 1 {
				t.Fatalf("want the damaged block in blocks/corrupt/, found %v (%v)", aside, err)
			}
			if b, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(b, damaged) {
				t.Errorf("%s: want the damaged bytes (%d), got %d bytes (%v)", aside[0], len(damaged), len(b), err)
			}
			// Other files are not affected.
			if r := d.must(t, "cat", "/one byte"); r.stdout != "x" {
				t.Errorf("cat /one byte: want \"x\"\n%s", r)
			}

			// Importing the source again stores the block again.
			again, r := d.importTree(t, src)
			if again != treeHash {
				t.Errorf("re-import: want the same tree %s, got %s\n%s", treeHash, again, r)
			}
			d.fsckClean(t)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("re-import did not restore %s: %v", p, err)
			}
			d.checkTree(t, entries)
		})
	}
}

// parseLsHashes maps names in gritsd ls output to their short hashes.
func parseLsHashes(t *testing.T, r result) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		m := lsLineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("ls: line %q does not look like MODE SIZE HASH NAME\n%s", l, r)
		}
		out[strings.TrimSuffix(m[4], "/")] = strings.TrimSpace(m[3])
	}
	return out
}

var gcRE = regexp.MustCompile(`^gc: kept (\d+) blocks \([^)]*\) for roots seq (\d+)\.\.(\d+); (removed|would remove) (\d+) blocks \([^)]*\)\n$`)

// gcCounts runs gc and returns the kept and removed counts it reports.
func (d dataDir) gc(t *testing.T, args ...string) (kept, removed int) {
	t.Helper()
	r := d.must(t, append([]string{"gc"}, args...)...)
	m := gcRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("gc: want \"gc: kept N blocks (...) for roots seq A..B; removed M blocks (...)\"\n%s", r)
	}
	kept, _ = strconv.Atoi(m[1])
	removed, _ = strconv.Atoi(m[5])
	return kept, removed
}

func TestGC(t *testing.T) {
	t.Parallel()
	entries := standardEntries()
	src := newSource(t, entries)
	d := newOrigin(t)
	var versions [][]entry
	for i := range 3 {
		// Each version changes a multi-chunk file and a small one.
		entries = replaceEntry(entries, "media/chunk-plus-one.bin", randBytes(uint64(100+i), chunkSize+1))
		entries = replaceEntry(entries, "index.html", fmt.Appendf(nil, "<h1>version %d</h1>\n", i+1))
		writeTree(t, src, entries)
		d.importTree(t, src)
		versions = append(versions, entries)
	}
	if got := seqs(d.log(t)); len(got) != 3 {
		t.Fatalf("log: want 3 roots, got %v", got)
	}
	before := d.countBlocks(t)

	kept, wouldRemove := d.gc(t, "--keep", "1", "--dry-run")
	if wouldRemove == 0 {
		t.Errorf("gc --dry-run --keep 1: want blocks of the two older roots to be garbage, got 0")
	}
	if kept+wouldRemove != before {
		t.Errorf("gc --dry-run: kept %d + would remove %d != %d blocks in the store", kept, wouldRemove, before)
	}
	if n := d.countBlocks(t); n != before {
		t.Errorf("gc --dry-run removed blocks: %d before, %d after", before, n)
	}
	d.checkTree(t, versions[0], "--root", d.log(t)[2].tree)

	kept2, removed := d.gc(t, "--keep", "1")
	if removed != wouldRemove || kept2 != kept {
		t.Errorf("gc --keep 1: removed %d and kept %d, but --dry-run said %d and %d", removed, kept2, wouldRemove, kept)
	}
	if n := d.countBlocks(t); n != before-removed {
		t.Errorf("gc --keep 1: %d blocks before, reported %d removed, %d left", before, removed, n)
	}
	d.checkTree(t, versions[2])
	// Nothing of the newest root is gone, and fsck agrees nothing is
	// missing: gc was told only the newest root matters.
	d.fsckClean(t)
	// A plain gc (keeping retain_roots roots) afterwards still works.
	if r := d.run(t, "gc"); r.code != 0 {
		t.Errorf("gc after gc --keep 1: want exit 0\n%s", r)
	}
	if _, removed := d.gc(t, "--keep", "1"); removed != 0 {
		t.Errorf("second gc --keep 1: want nothing left to remove, removed %d", removed)
	}
}

// Integration tests for the gritsd binary. TestMain builds it once; every
// test then drives it as a user would, each in its own data directory,
// and checks its exit codes, its output and the bytes it reads back.
package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// gritsdBin is the binary built by TestMain; fakeHome is the HOME every
// run gets, which does not exist, so that no run finds a real data
// directory by default.
var gritsdBin, fakeHome string

// cmdTimeout bounds one gritsd command, so a hung command fails its test
// instead of the whole run.
const cmdTimeout = 2 * time.Minute

// chunkSize is the default chunk size a new data directory gets.
const chunkSize = 256 << 10

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gritsd-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	gritsdBin = filepath.Join(dir, "gritsd")
	fakeHome = filepath.Join(dir, "no-home")
	build := exec.Command("go", "build", "-o", gritsdBin, "github.com/grits-cdn/grits/cmd/gritsd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building gritsd: %v\n", err)
		return 1
	}
	return m.Run()
}

// result is what one gritsd run produced.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

// String describes the run for failure messages.
func (r result) String() string {
	out := r.stdout
	switch {
	case !utf8.ValidString(out):
		out = fmt.Sprintf("(%d bytes, not text)\n", len(out))
	case len(out) > 2000:
		out = out[:2000] + fmt.Sprintf("... (%d bytes)\n", len(r.stdout))
	}
	return fmt.Sprintf("gritsd %s: exit %d\n--- stdout:\n%s--- stderr:\n%s---", strings.Join(r.args, " "), r.code, out, r.stderr)
}

// baseEnv is the environment of every gritsd run: the test's own, minus
// anything that could make gritsd find a real data directory.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GRITS_DATA", "XDG_DATA_HOME", "HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+fakeHome, "XDG_DATA_HOME="+filepath.Join(fakeHome, "xdg"))
}

// runEnv runs gritsd with extra environment variables.
func runEnv(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gritsdBin, args...)
	cmd.Env = append(baseEnv(), extraEnv...)
	// stdout goes to a file: gritsd writes it directly, which for the
	// megabytes cat prints is far cheaper than copying through a pipe
	// (under the race detector, several times over).
	out, err := os.CreateTemp("", "gritsd-stdout-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	err = cmd.Run()
	stdout, rerr := os.ReadFile(out.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	r := result{args: args, stdout: string(stdout), stderr: stderr.String()}
	return outcome(t, ctx, err, r)
}

// run runs gritsd with args and returns what it printed and its exit code.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runEnv(t, nil, args...)
}

// dataDir is a gritsd data directory; its methods pass it with --data.
type dataDir string

func (d dataDir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// run runs gritsd ARGS --data D.
func (d dataDir) run(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, append(slices.Clip(args), "--data", string(d))...)
}

// must runs gritsd ARGS --data D and fails the test unless it exits 0.
func (d dataDir) must(t *testing.T, args ...string) result {
	t.Helper()
	r := d.run(t, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0, got %d\n%s", r.code, r)
	}
	return r
}

// newOrigin initializes an origin data directory in a new temporary
// directory.
func newOrigin(t *testing.T) dataDir {
	t.Helper()
	d := dataDir(filepath.Join(t.TempDir(), "data"))
	d.must(t, "init", "--origin")
	return d
}

var treeHashRE = regexp.MustCompile(`^b3-[0-9a-f]{64}$`)

// importTree runs gritsd import and returns the tree hash it printed,
// checking that stdout is that hash alone.
func (d dataDir) importTree(t *testing.T, args ...string) (string, result) {
	t.Helper()
	r := d.must(t, append([]string{"import"}, args...)...)
	h := strings.TrimSuffix(r.stdout, "\n")
	if !treeHashRE.MatchString(h) || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("import: want exactly one line b3-<64 hex> on stdout\n%s", r)
	}
	return h, r
}

// logEntry is one root as gritsd log prints it.
type logEntry struct {
	seq  uint64
	tree string
	root string
}

var logLineRE = regexp.MustCompile(`(?m)^seq (\d+)\n  signed  .*\n  expires .*\n  tree    (b3-[0-9a-f]{64})\n  root    (b3-[0-9a-f]{64})\n`)

// log runs gritsd log and parses it, newest first.
func (d dataDir) log(t *testing.T) []logEntry {
	t.Helper()
	r := d.must(t, "log")
	var out []logEntry
	matches := logLineRE.FindAllStringSubmatch(r.stdout, -1)
	for _, m := range matches {
		seq, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			t.Fatalf("log: bad seq %q\n%s", m[1], r)
		}
		out = append(out, logEntry{seq: seq, tree: m[2], root: m[3]})
	}
	if got := strings.Count(r.stdout, "seq "); got != len(out) {
		t.Fatalf("log: parsed %d roots but stdout has %d \"seq \" lines\n%s", len(out), got, r)
	}
	return out
}

// seqs returns the seqs of a log, in its order.
func seqs(l []logEntry) []uint64 {
	var s []uint64
	for _, e := range l {
		s = append(s, e.seq)
	}
	return s
}

// countBlocks counts the block files in the store of d.
func (d dataDir) countBlocks(t *testing.T) int {
	t.Helper()
	n := 0
	for _, res := range []string{"pinned", "cached"} {
		files, err := filepath.Glob(d.path("blocks", res, "*", "*"))
		if err != nil {
			t.Fatal(err)
		}
		n += len(files)
	}
	return n
}

// fsckClean runs fsck and fails the test unless it finds no problems.
func (d dataDir) fsckClean(t *testing.T) {
	t.Helper()
	r := d.run(t, "fsck")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no problems found") {
		t.Errorf("fsck: want exit 0, no report on stdout and \"no problems found\"\n%s", r)
	}
}

// ---- Source trees ----

// entry is one thing in a source tree. Parent directories are implied.
type entry struct {
	path string // slash-separated, relative to the source root
	data []byte // a regular file's content
	size int64  // a file's size, if data is not kept
	exec bool   // an executable file
	link string // a symlink's target
	dir  bool   // an (empty) directory
}

func (e entry) isFile() bool { return !e.dir && e.link == "" }

func (e entry) fileSize() int64 {
	if e.data == nil {
		return e.size
	}
	return int64(len(e.data))
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// standardEntries is the fixture most tests import: every kind of entry,
// names with spaces and UTF-8, files of zero, one, exactly one chunk,
// one byte more, and many chunks, an executable, nested and empty
// directories, symlinks.
func standardEntries() []entry {
	return []entry{
		{path: "index.html", data: []byte("<!doctype html>\n<h1>hello, grits</h1>\n")},
		{path: "empty", data: []byte{}},
		{path: "one byte", data: []byte("x")},
		{path: "héllo wörld ✓.txt", data: []byte("spaces and UTF-8 in the name\n")},
		{path: "media/big.bin", data: randBytes(1, 12*chunkSize+12345)},
		{path: "media/one-chunk.bin", data: randBytes(2, chunkSize)},
		{path: "media/chunk-plus-one.bin", data: randBytes(3, chunkSize+1)},
		{path: "bin/run.sh", data: []byte("#!/bin/sh\necho hello\n"), exec: true},
		{path: "a/b/c/deep.txt", data: []byte("deep down\n")},
		{path: "a/b/empty-dir", dir: true},
		{path: "a/dangling", link: "../nowhere"},
		{path: "link", link: "a/b/c/deep.txt"},
	}
}

// writeTree creates entries under root (which may exist).
func writeTree(t *testing.T, root string, entries []entry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		dir := p
		if !e.dir {
			dir = filepath.Dir(p)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case e.dir:
		case e.link != "":
			if err = os.Remove(p); errors.Is(err, os.ErrNotExist) {
				err = nil
			}
			if err == nil {
				err = os.Symlink(e.link, p)
			}
		default:
			mode := os.FileMode(0o644)
			if e.exec {
				mode = 0o755
			}
			err = os.WriteFile(p, e.data, mode)
			if err == nil {
				err = os.Chmod(p, mode) // whatever the umask
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// newSource writes entries into a new temporary directory.
func newSource(t *testing.T, entries []entry) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, src, entries)
	return src
}

// listing is what gritsd ls should print for one directory of a tree:
// "MODE SIZE NAME" per entry (the hash column left out), sorted.
type listing map[string][]string

// expectedListing computes the ls output of every directory of entries.
func expectedListing(entries []entry) listing {
	type node struct {
		kind     byte // 'd', 'f', 'l'
		exec     bool
		size     int64
		target   string
		children map[string]*node
	}
	root := &node{kind: 'd', children: map[string]*node{}}
	for _, e := range entries {
		parts := strings.Split(e.path, "/")
		n := root
		for _, p := range parts[:len(parts)-1] {
			c := n.children[p]
			if c == nil {
				c = &node{kind: 'd', children: map[string]*node{}}
				n.children[p] = c
			}
			n = c
		}
		leaf := &node{kind: 'f', exec: e.exec, size: e.fileSize()}
		switch {
		case e.dir:
			leaf = &node{kind: 'd', children: map[string]*node{}}
		case e.link != "":
			leaf = &node{kind: 'l', size: int64(len(e.link)), target: e.link}
		}
		n.children[parts[len(parts)-1]] = leaf
	}
	var size func(n *node) int64
	size = func(n *node) int64 {
		if n.kind != 'd' {
			return n.size
		}
		var s int64
		for _, c := range n.children {
			s += size(c)
		}
		return s
	}
	out := listing{}
	var walk func(p string, n *node)
	walk = func(p string, n *node) {
		lines := []string{}
		for name, c := range n.children {
			var line string
			switch c.kind {
			case 'd':
				line = fmt.Sprintf("drwxr-xr-x %d %s/", size(c), name)
				walk(strings.TrimSuffix(p, "/")+"/"+name, c)
			case 'l':
				line = fmt.Sprintf("lrwxrwxrwx %d %s -> %s", c.size, name, c.target)
			default:
				mode := "-rw-r--r--"
				if c.exec {
					mode = "-rwxr-xr-x"
				}
				line = fmt.Sprintf("%s %d %s", mode, c.size, name)
			}
			lines = append(lines, line)
		}
		slices.Sort(lines)
		out[p] = lines
	}
	walk("/", root)
	return out
}

var lsLineRE = regexp.MustCompile(`^(\S{10}) +(\d+)  (b3-[0-9a-f]{12}|- {14})  (.+)$`)

// parseLs turns gritsd ls output into sorted "MODE SIZE NAME" lines,
// checking the hash column on the way: "-" for a symlink, a short hash
// for anything else.
func parseLs(t *testing.T, r result) []string {
	t.Helper()
	lines := []string{}
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if l == "" {
			continue
		}
		m := lsLineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("ls: line %q does not look like MODE SIZE HASH NAME\n%s", l, r)
		}
		if isLink := m[1][0] == 'l'; isLink != (strings.TrimSpace(m[3]) == "-") {
			t.Errorf("ls: line %q: want hash column \"-\" for symlinks only\n%s", l, r)
		}
		lines = append(lines, m[1]+" "+m[2]+" "+m[4])
	}
	slices.Sort(lines)
	return lines
}

// checkTree checks, through gritsd ls and cat, that the tree (the latest
// root, or rootFlag's) holds exactly entries: every directory lists what
// it should, every file reads back byte for byte.
func (d dataDir) checkTree(t *testing.T, entries []entry, rootFlag ...string) {
	t.Helper()
	want := expectedListing(entries)
	for dir, lines := range want {
		r := d.must(t, append([]string{"ls", dir}, rootFlag...)...)
		if got := parseLs(t, r); !slices.Equal(got, lines) {
			t.Errorf("ls %s: want\n  %s\ngot\n  %s\n%s", dir, strings.Join(lines, "\n  "), strings.Join(got, "\n  "), r)
		}
	}
	d.checkFiles(t, entries, rootFlag...)
}

// checkFiles checks that gritsd cat of every file of entries prints its
// content.
func (d dataDir) checkFiles(t *testing.T, entries []entry, rootFlag ...string) {
	t.Helper()
	for _, e := range entries {
		if !e.isFile() {
			continue
		}
		r := d.must(t, append([]string{"cat", "/" + e.path}, rootFlag...)...)
		if r.stdout != string(e.data) {
			t.Errorf("cat /%s: want %d bytes of the source file, got %d different bytes (first difference at %d)\n%s",
				e.path, len(e.data), len(r.stdout), firstDiff([]byte(r.stdout), e.data), r)
		}
	}
}

// firstDiff returns the offset of the first byte where a and b differ.
func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// fileCount is the number of regular files in entries.
func fileCount(entries []entry) int {
	n := 0
	for _, e := range entries {
		if e.isFile() {
			n++
		}
	}
	return n
}

// replaceEntry returns entries with the one at path given new data.
func replaceEntry(entries []entry, path string, data []byte) []entry {
	out := slices.Clone(entries)
	for i := range out {
		if out[i].path == path {
			out[i].data = data
		}
	}
	return out
}

// settle waits until every file under dir is older than the importer's
// racy margin (2 s): an import does not remember files that changed more
// recently than that (they could change again without their size or
// times changing), so tests that check that re-imports skip unchanged
// files must let the fixture age first. The wait is for the clock, not
// for any state, and is bounded.
func settle(t *testing.T, dir string) {
	t.Helper()
	var newest time.Time
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		for _, ts := range []syscall.Timespec{st.Mtim, st.Ctim} {
			if tt := time.Unix(ts.Sec, ts.Nsec); tt.After(newest) {
				newest = tt
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if wait := time.Until(newest.Add(2*time.Second + 100*time.Millisecond)); wait > 0 {
		time.Sleep(wait)
	}
}

// outcome turns cmd.Run's error into r's exit code, and fails the test
// for a command that hung past its timeout or could not run at all.
func outcome(t *testing.T, ctx context.Context, err error, r result) result {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("gritsd %s: did not finish within %v\n%s", strings.Join(r.args, " "), cmdTimeout, r)
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("gritsd %s: %v\n%s", strings.Join(r.args, " "), err, r)
	}
	return r
}

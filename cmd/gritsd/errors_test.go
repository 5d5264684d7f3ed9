package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestUsageErrors checks that bad command lines exit 2 with a message
// and the usage, and print nothing on stdout.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	src := newSource(t, standardEntries())
	d.importTree(t, src)
	file := filepath.Join(src, "index.html")
	const usage = "usage: gritsd"

	tests := []struct {
		name string
		args []string // --data D is appended unless noData
		// noData: run without --data (the data directory does not matter)
		noData bool
		want   []string // on stderr
	}{
		{"no command", nil, true, []string{"usage: gritsd COMMAND"}},
		{"unknown command", []string{"frobnicate"}, true, []string{`unknown command "frobnicate"`, "usage: gritsd COMMAND", "import"}},
		{"unknown flag", []string{"ls", "--bogus"}, false, []string{"flag provided but not defined: -bogus", "usage: gritsd ls"}},
		{"unknown flag after argument", []string{"import", src, "--bogus"}, false, []string{"flag provided but not defined: -bogus", "usage: gritsd import"}},
		{"flag without value", []string{"gc", "--keep"}, true, []string{"flag needs an argument: -keep"}},
		{"bad flag value", []string{"gc", "--keep", "many"}, false, []string{"invalid value \"many\" for flag -keep"}},
		{"cat without path", []string{"cat"}, false, []string{"missing argument", "usage: gritsd cat PATH"}},
		{"import without source", []string{"import"}, false, []string{"missing argument", "usage: gritsd import SRC"}},
		{"proof without path", []string{"proof"}, false, []string{"missing argument", "usage: gritsd proof PATH"}},
		{"too many arguments", []string{"cat", "/index.html", "/empty"}, false, []string{"too many arguments", "/empty"}},
		{"arguments to log", []string{"log", "extra"}, false, []string{"takes no arguments", "usage: gritsd log"}},
		{"arguments to init", []string{"init", "extra"}, false, []string{"takes no arguments"}},
		{"invalid --root", []string{"ls", "--root", "nothash"}, false, []string{"--root", `invalid hash "nothash"`}},
		{"--root with upper-case hex", []string{"cat", "/index.html", "--root", "b3-" + strings.Repeat("AB", 32)}, false, []string{"--root", "invalid hash"}},
		{"--root too short", []string{"proof", "/index.html", "--root", "b3-abcd"}, false, []string{"--root", "invalid hash"}},
		{"path with empty component", []string{"cat", "/a//b"}, false, []string{"invalid name"}},
		{"path with dot-dot", []string{"ls", "/a/../b"}, false, []string{"invalid name", "dot names"}},
		{"--at with dot-dot", []string{"import", src, "--at", "/x/../y"}, false, []string{"--at", "invalid name"}},
		{"file imported as the root", []string{"import", file, "--at", "/"}, false, []string{"the root must be a directory", "--at /index.html"}},
		{"gc --keep negative", []string{"gc", "--keep", "-1"}, false, []string{"--keep must be at least 1"}},
		{"serve --sw-paths relative", []string{"serve", "--sw-paths", "static/"}, false, []string{"--sw-", "static/"}},
		{"serve --sw-scope relative", []string{"serve", "--sw-scope", "app/"}, false, []string{"--sw-", "scope", "app/"}},
		{"serve --sw-cache-mb negative", []string{"serve", "--sw-cache-mb", "-5"}, false, []string{"--sw-cache-mb -5"}},
		{"mount without mount point", []string{"mount"}, false, []string{"missing argument", "usage: gritsd mount MOUNTPOINT"}},
		{"mount --publish unknown", []string{"mount", "/mnt", "--publish", "some"}, false, []string{"--publish", "world-readable"}},
		{"mount --owner unknown", []string{"mount", "/mnt", "--owner", "no-such-user-here"}, false, []string{"--owner", "no such user"}},
		{"mount --at with dot-dot", []string{"mount", "/mnt", "--at", "/a/../b"}, false, []string{"--at", "invalid name"}},
		{"serve --publish unknown", []string{"serve", "--mount", "/mnt", "--publish", "some"}, false, []string{"--publish"}},
		{"serve --sw-root-check too short", []string{"serve", "--sw-root-check", "10ms"}, false, []string{"--sw-root-check 10ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r result
			if tt.noData {
				r = run(t, tt.args...)
			} else {
				r = d.run(t, tt.args...)
			}
			if r.code != 2 || r.stdout != "" {
				t.Errorf("want exit 2 and nothing on stdout\n%s", r)
			}
			for _, w := range append(tt.want, usage) {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("want %q on stderr\n%s", w, r)
				}
			}
		})
	}
	// None of that changed anything.
	if got := seqs(d.log(t)); len(got) != 1 {
		t.Errorf("log after bad command lines: want only seq 1, got %v", got)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := run(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "usage: gritsd COMMAND") {
			t.Errorf("want exit 0 and the usage on stdout\n%s", r)
		}
		for _, c := range []string{"init", "import", "ls", "cat", "proof", "log", "fsck", "gc"} {
			if !strings.Contains(r.stdout, "\n  "+c+" ") {
				t.Errorf("usage: want command %s listed\n%s", c, r)
			}
		}
	}
	r := run(t, "import", "-h")
	if r.code != 0 || !strings.Contains(r.stderr, "usage: gritsd import") || !strings.Contains(r.stderr, "-at") {
		t.Errorf("import -h: want exit 0 and the command's usage with its flags\n%s", r)
	}
}

// TestFailures checks commands that parse but cannot do what they are
// asked: exit 1, a message that says why, nothing on stdout.
func TestFailures(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	src := newSource(t, standardEntries())
	d.importTree(t, src)
	empty := newOrigin(t)
	volunteer := dataDir(filepath.Join(t.TempDir(), "volunteer"))
	volunteer.must(t, "init")
	uninit := dataDir(filepath.Join(t.TempDir(), "nothing-here"))
	missing := filepath.Join(t.TempDir(), "no", "such", "source")

	tests := []struct {
		name string
		d    dataDir
		args []string
		want []string
	}{
		{"import of a missing path", d, []string{"import", missing}, []string{missing, "no such file or directory"}},
		{"import on a volunteer", volunteer, []string{"import", src}, []string{"not an origin", "gritsd init --origin"}},
		{"cat of a missing file", d, []string{"cat", "/nope"}, []string{"/nope", "no such file"}},
		{"cat below a file", d, []string{"cat", "/index.html/x"}, []string{"not a directory"}},
		{"ls of a missing dir", d, []string{"ls", "/a/nope"}, []string{"/a/nope", "no such file"}},
		{"--root not in the store", d, []string{"ls", "--root", "b3-" + strings.Repeat("01", 32)}, []string{"neither a root in the log nor a tree in the store"}},
		{"cat before any import", empty, []string{"cat", "/index.html"}, []string{"nothing imported yet", "gritsd import"}},
		{"ls before any import", empty, []string{"ls"}, []string{"nothing imported yet"}},
	}
	for _, c := range [][]string{{"import", src}, {"ls"}, {"cat", "/x"}, {"proof", "/x"}, {"log"}, {"fsck"}, {"gc"}} {
		tests = append(tests, struct {
			name string
			d    dataDir
			args []string
			want []string
		}{c[0] + " uninitialized", uninit, c, []string{"not initialized", "gritsd init"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.d.run(t, tt.args...)
			if r.code != 1 || r.stdout != "" {
				t.Errorf("want exit 1 and nothing on stdout\n%s", r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("want %q on stderr\n%s", w, r)
				}
			}
		})
	}
	if _, err := os.Stat(string(uninit)); err == nil {
		t.Errorf("commands on an uninitialized data directory created %s", uninit)
	}
	if got := seqs(d.log(t)); len(got) != 1 {
		t.Errorf("log after failed commands: want only seq 1, got %v", got)
	}
	if got := volunteer.log(t); len(got) != 0 {
		t.Errorf("volunteer log after a refused import: want no roots, got %+v", got)
	}
}

// TestImportRefusesBadSources checks that an import that meets something
// it cannot store fails naming it, and commits nothing: the log is as it
// was and the previous root reads as before.
func TestImportRefusesBadSources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// add puts the bad thing into src and returns its path.
		add  func(t *testing.T, src string) string
		want []string
	}{
		{"fifo", func(t *testing.T, src string) string {
			p := filepath.Join(src, "a", "b", "pipe")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return p
		}, []string{"named pipe", "not a regular file, directory or symlink"}},
		{"invalid UTF-8 name", func(t *testing.T, src string) string {
			p := filepath.Join(src, "media", "bad\xff\xfename.txt")
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Skipf("the file system refuses a non-UTF-8 name: %v", err)
			}
			return p
		}, []string{"not valid UTF-8"}},
		{"unreadable file", func(t *testing.T, src string) string {
			p := filepath.Join(src, "secret.txt")
			if err := os.WriteFile(p, []byte("secret"), 0o000); err != nil {
				t.Fatal(err)
			}
			if f, err := os.Open(p); err == nil {
				f.Close()
				t.Skip("running as a user who can read a mode 000 file (root)")
			}
			return p
		}, []string{"permission denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			entries := standardEntries()
			src := newSource(t, entries)
			d := newOrigin(t)
			treeHash, _ := d.importTree(t, src)
			before := d.log(t)
			blocks := d.countBlocks(t)

			// A changed file too, so that a partial commit would show.
			changed := replaceEntry(entries, "index.html", []byte("changed, and must not be committed\n"))
			writeTree(t, src, changed[:1])
			bad := tt.add(t, src)

			r := d.run(t, "import", src)
			if r.code != 1 || r.stdout != "" {
				t.Errorf("want exit 1 and nothing on stdout\n%s", r)
			}
			for _, w := range append(tt.want, bad) {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("want %q on stderr\n%s", w, r)
				}
			}
			if r.code == 0 {
				return
			}
			after := d.log(t)
			if len(after) != len(before) || after[0] != before[0] {
				t.Errorf("a failed import changed the log: before %+v, after %+v", before, after)
			}
			d.checkTree(t, entries)
			if r := d.must(t, "ls", "--root", treeHash); !strings.Contains(r.stdout, "index.html") {
				t.Errorf("ls --root of the previous tree: want index.html\n%s", r)
			}
			d.fsckClean(t)
			if n := d.countBlocks(t); n < blocks {
				t.Errorf("a failed import removed blocks: %d before, %d after", blocks, n)
			}
		})
	}
}

// TestLocked checks that a command that writes refuses to run while
// another holds the data directory's lock, and runs once it is released.
func TestLocked(t *testing.T) {
	t.Parallel()
	d := newOrigin(t)
	src := newSource(t, standardEntries())
	d.importTree(t, src)
	writeTree(t, src, []entry{{path: "new.txt", data: []byte("new\n")}})

	// Hold the lock the way a running gritsd import does.
	f, err := os.OpenFile(d.path("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("flock %s: %v", f.Name(), err)
	}
	for _, args := range [][]string{{"import", src}, {"fsck"}, {"gc"}} {
		r := d.run(t, args...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "locked") {
			t.Errorf("while the lock is held: want exit 1, nothing on stdout and \"locked\" on stderr\n%s", r)
		}
	}
	if got := seqs(d.log(t)); len(got) != 1 {
		t.Errorf("log after a refused import: want only seq 1, got %v", got)
	}
	// Readers do not need the lock.
	if r := d.must(t, "cat", "/index.html"); r.stdout == "" {
		t.Errorf("cat while locked: want the file\n%s", r)
	}

	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	_, r := d.importTree(t, src)
	if !strings.Contains(r.stderr, "committed root seq 2") {
		t.Errorf("import after the lock was released: want \"committed root seq 2\"\n%s", r)
	}
	if r := d.must(t, "cat", "/new.txt"); r.stdout != "new\n" {
		t.Errorf("cat /new.txt: want \"new\\n\"\n%s", r)
	}
}

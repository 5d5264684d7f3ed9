package main_test

// Integration tests for gritsd mount: real FUSE mounts (we run as root
// with /dev/fuse), real gritsd processes, real signals, and the tools an
// operator's programs are: tar, git, rsync.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
)

// mountWait bounds waiting for a commit to reach a root (the quiet
// period is short in tests) or a volunteer to serve it.
const mountWait = 30 * time.Second

// needFUSE skips a test on a machine where FUSE cannot be mounted.
func needFUSE(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mount tests run as root (DirectMount)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

// mounted reports whether dir is a mount point now.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// startMount runs gritsd mount MP --data D [extra...] and waits until it
// says it mounted. When the test ends the process is killed if it still
// runs and a mount it left is detached.
func startMount(t *testing.T, d dataDir, mp string, extra ...string) *server {
	t.Helper()
	// A dead mount (its process killed) answers ENOTCONN: leave it for
	// gritsd to clear.
	if _, err := os.Lstat(mp); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(mp, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &server{args: append([]string{"mount", mp, "--data", string(d)}, extra...), exited: make(chan struct{})}
	s.cmd = exec.Command(gritsdBin, s.args...)
	s.cmd.Env = baseEnv()
	s.cmd.Stdout = &s.stdout
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if mounted(t, mp) {
			exec.Command("umount", "-l", mp).Run()
		}
		if t.Failed() {
			t.Logf("%s", s)
		}
	})
	ready := make(chan struct{}, 1)
	go func() {
		defer close(s.exited)
		r := bufio.NewReader(pipe)
		for {
			line, err := r.ReadString('\n')
			s.stderr.Write([]byte(line))
			if strings.HasPrefix(line, "mounted ") {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
			if err != nil {
				break
			}
		}
		s.cmd.Wait()
	}()
	select {
	case <-ready:
	case <-s.exited:
		t.Fatalf("mount exited (%v) before it mounted\n%s", s.cmd.ProcessState, s)
	case <-time.After(serveStartTimeout):
		t.Fatalf("mount did not say \"mounted\" within %v\n%s", serveStartTimeout, s)
	}
	if !mounted(t, mp) {
		t.Fatalf("gritsd says it mounted, but %s is not a mount point\n%s", mp, s)
	}
	return s
}

// unmount stops a mount with SIGTERM and checks that it exits 0 and
// leaves no mount behind.
func unmount(t *testing.T, s *server, mp string) {
	t.Helper()
	s.stop(t, syscall.SIGTERM)
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("mount exited %d after SIGTERM, want 0\n%s", code, s)
	}
	if mounted(t, mp) {
		t.Fatalf("%s is still mounted after gritsd mount exited\n%s", mp, s)
	}
}

// mustWrite writes a file (through the mount) and fails the test on
// any error, close included: close is where the mount reports errors.
func mustWrite(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
}

// fileState is what compareTrees checks of one entry.
type fileState struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
	data  string // a file's content, a symlink's target
}

// snapshotTree records every entry under root (modes, sizes, mtimes of
// files and symlinks, contents), skipping names for which skip is true.
func snapshotTree(t *testing.T, root string, skip func(rel string) bool) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fileState{mode: fi.Mode(), size: fi.Size()}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			st.data, st.mtime = string(b), fi.ModTime()
		case fi.Mode()&fs.ModeSymlink != 0:
			tgt, err := os.Readlink(p)
			if err != nil {
				return err
			}
			st.data, st.mtime = tgt, fi.ModTime()
		default:
			st.size = 0 // directory sizes differ between file systems
		}
		out[rel] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTrees fails the test where got differs from want.
func compareTrees(t *testing.T, what string, want, got map[string]fileState) {
	t.Helper()
	bad := 0
	for rel, w := range want {
		g, ok := got[rel]
		switch {
		case !ok:
			t.Errorf("%s: %s is missing", what, rel)
		case g.mode != w.mode:
			t.Errorf("%s: %s: mode %v, want %v", what, rel, g.mode, w.mode)
		case g.size != w.size || g.data != w.data:
			t.Errorf("%s: %s: %d bytes, want %d (first difference at %d)", what, rel, g.size, w.size, firstDiff([]byte(g.data), []byte(w.data)))
		case !w.mtime.IsZero() && !g.mtime.Equal(w.mtime):
			t.Errorf("%s: %s: mtime %v, want %v", what, rel, g.mtime, w.mtime)
		default:
			continue
		}
		if bad++; bad > 10 {
			t.Fatalf("%s: too many differences", what)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("%s: unexpected %s", what, rel)
		}
	}
}

// runTool runs an external program and fails the test unless it exits 0.
func runTool(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// originStatus reads the held-back counters from the origin's daemon.
func heldBack(t *testing.T, d dataDir) (files, bytes int64, err error) {
	t.Helper()
	r := d.run(t, "status", "--json")
	if r.code != 0 {
		return 0, 0, fmt.Errorf("status: %s", r)
	}
	var st struct {
		HeldBack *struct {
			Files int64 `json:"files"`
			Bytes int64 `json:"bytes"`
		} `json:"held_back"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		return 0, 0, err
	}
	if st.HeldBack == nil {
		return 0, 0, nil
	}
	return st.HeldBack.Files, st.HeldBack.Bytes, nil
}

// getFrom fetches p from peer into a file and returns its content, or an
// error (not a test failure) when get fails, for use in eventually.
func getFrom(t *testing.T, key, peer, p string) ([]byte, result, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "got")
	r := run(t, "get", "--peer", peer, "--site-key", key, p, "-o", out)
	if r.code != 0 {
		return nil, r, fmt.Errorf("get %s from %s: %s", p, peer, r)
	}
	b, err := os.ReadFile(out)
	return b, r, err
}

// TestMountMastodonMedia drives the origin's mount the way Mastodon
// writes its media (id-partitioned directories, a temp name renamed into
// place, chmod 0644; deletion with the emptied parents; chmod 0600 when
// an account is suspended) and checks what a volunteer serves: every
// uploaded file byte-exact (gritsd get, and HTTP/3 as a browser), the
// deleted one gone, the hidden one absent
// until it is readable again, and the origin's status counting it.
func TestMountMastodonMedia(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	origin, key := startOrigin(t, nil)
	vol := enrol(t, origin, "volunteer")
	mp := filepath.Join(t.TempDir(), "system")
	startMount(t, origin.d, mp, "--quiet", "200ms")

	type upload struct {
		path string
		data []byte
	}
	uploads := []upload{
		{"media_attachments/files/109/234/567/original/a1b2c3.png", randBytes(11, 40<<10)},
		{"media_attachments/files/109/234/567/small/a1b2c3.png", randBytes(12, 9<<10)},
		{"media_attachments/files/109/234/568/original/d4e5f6.mp4", randBytes(13, 3*chunkSize+777)},
		{"accounts/avatars/000/000/001/original/me.jpg", randBytes(14, 100<<10)},
		{"cache/preview_cards/images/000/000/042/original/card.jpg", randBytes(15, 1)},
	}
	for i, u := range uploads {
		p := filepath.Join(mp, u.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(filepath.Dir(p), fmt.Sprintf(".tmp-%d", i))
		mustWrite(t, tmp, u.data, 0o600)
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Delete one, and the parents it leaves empty, as Mastodon does.
	gone := uploads[2].path
	if err := os.Remove(filepath.Join(mp, gone)); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(gone); d != "media_attachments/files/109/234"; d = filepath.Dir(d) {
		if err := os.Remove(filepath.Join(mp, d)); err != nil {
			t.Fatalf("rmdir %s: %v", d, err)
		}
	}

	for _, u := range uploads {
		if u.path == gone {
			continue
		}
		eventually(t, mountWait, 200*time.Millisecond, func() error {
			b, r, err := getFrom(t, key, vol.srv.addr, "/"+u.path)
			if err != nil {
				return err
			}
			if !bytes.Equal(b, u.data) {
				return fmt.Errorf("get /%s: %d bytes, want %d (first difference at %d)\n%s", u.path, len(b), len(u.data), firstDiff(b, u.data), r)
			}
			return nil
		})
	}
	// And as a browser gets them: over HTTP/3 from the volunteer's
	// gateway, every proof and block verified.
	vaddr, _ := gwHTTPS(t, vol.srv)
	h3 := gwNewH3(t, gwCAPool(t, origin.d.path("ca.pem"))) // volunteers get their certificates from the origin's CA
	for _, u := range uploads {
		if u.path == gone {
			continue
		}
		_, f, inline, nodes := gwLookup(t, h3, "https://"+vaddr, u.path, gwParseKey(t, key), len(u.data))
		got := inline
		if len(u.data) > inlineMax {
			got, _ = gwFetchFile(t, h3, "https://"+vaddr, f, nodes)
		}
		if !bytes.Equal(got, u.data) {
			t.Errorf("HTTP/3 from the volunteer: /%s: %d bytes, want %d", u.path, len(got), len(u.data))
		}
	}
	if _, r, err := getFrom(t, key, vol.srv.addr, "/"+gone); err == nil {
		t.Errorf("the deleted /%s still loads from the volunteer\n%s", gone, r)
	}
	if r := origin.d.run(t, "ls", "/media_attachments/files/109/234"); !strings.Contains(r.stdout, " 567/\n") || strings.Contains(r.stdout, " 568/") { // names, not the hash column
		t.Errorf("ls of the parent: want 567/ and no 568 (its emptied directories removed)\n%s", r)
	}

	// Suspension: chmod 0600 hides the file from the swarm, and the
	// origin's status says a file is held back; 0644 publishes it again.
	hidden := uploads[3]
	if err := os.Chmod(filepath.Join(mp, hidden.path), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, mountWait, 200*time.Millisecond, func() error {
		if _, r, err := getFrom(t, key, vol.srv.addr, "/"+hidden.path); err == nil {
			return fmt.Errorf("/%s (chmod 0600) still loads from the volunteer\n%s", hidden.path, r)
		}
		return nil
	})
	eventually(t, mountWait, 200*time.Millisecond, func() error {
		files, n, err := heldBack(t, origin.d)
		if err == nil && (files != 1 || n != int64(len(hidden.data))) {
			err = fmt.Errorf("status: held back %d files, %d bytes; want 1, %d", files, n, len(hidden.data))
		}
		return err
	})
	if b, err := os.ReadFile(filepath.Join(mp, hidden.path)); err != nil || !bytes.Equal(b, hidden.data) {
		t.Errorf("the hidden file through the origin's mount: %d bytes, %v; want it kept", len(b), err)
	}
	if r := origin.d.must(t, "status"); !strings.Contains(r.stdout, "held back: 1 files") {
		t.Errorf("status: want a \"held back: 1 files\" line\n%s", r)
	}
	if err := os.Chmod(filepath.Join(mp, hidden.path), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, mountWait, 200*time.Millisecond, func() error {
		b, r, err := getFrom(t, key, vol.srv.addr, "/"+hidden.path)
		if err == nil && !bytes.Equal(b, hidden.data) {
			err = fmt.Errorf("get: wrong bytes\n%s", r)
		}
		return err
	})
	origin.d.fsckClean(t)
}

// TestMountRefusals: what a tree cannot hold fails clearly and changes
// nothing; gc and import do not run under a mount; a second mount of a
// mounted path is refused.
func TestMountRefusals(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	d := newOrigin(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	s := startMount(t, d, mp)
	mustWrite(t, filepath.Join(mp, "f"), []byte("x"), 0o644)

	want := func(what string, err, errno error) {
		t.Helper()
		if !errors.Is(err, errno) {
			t.Errorf("%s: got %v, want %v", what, err, errno)
		}
	}
	want("link", os.Link(filepath.Join(mp, "f"), filepath.Join(mp, "g")), syscall.EPERM)
	want("mkfifo", syscall.Mkfifo(filepath.Join(mp, "fifo"), 0o644), syscall.EPERM)
	want("mknod char", syscall.Mknod(filepath.Join(mp, "dev"), syscall.S_IFCHR|0o644, 0x0101), syscall.EPERM)
	want("setxattr", syscall.Setxattr(filepath.Join(mp, "f"), "user.x", []byte("1"), 0), syscall.ENOTSUP)
	_, err := os.Create(filepath.Join(mp, "bad\xffname"))
	want("a name that is not UTF-8", err, syscall.EILSEQ)
	if names := dirNames(t, mp); !slices.Equal(names, []string{".grits", "f"}) {
		t.Errorf("after the refusals the mount holds %q, want just f (and .grits)", names)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mp, &st); err != nil || st.Blocks == 0 || st.Bavail == 0 {
		t.Errorf("statfs: %v, %d blocks, %d available; want the data directory's file system", err, st.Blocks, st.Bavail)
	}

	if r := d.run(t, "gc"); r.code != 1 || !strings.Contains(r.stderr, "mounted at "+mp) {
		t.Errorf("gc under a mount: want exit 1 naming the mount\n%s", r)
	}
	src := newSource(t, []entry{{path: "x", data: []byte("y")}})
	if r := d.run(t, "import", src, "--at", "/sub"); r.code != 1 || !strings.Contains(r.stderr, "write through the mount") {
		t.Errorf("import into the mounted tree: want exit 1\n%s", r)
	}
	if r := d.run(t, "mount", filepath.Join(t.TempDir(), "other")); r.code != 1 || !strings.Contains(r.stderr, "already mounted") {
		t.Errorf("a second mount of the same tree path: want exit 1 \"already mounted\"\n%s", r)
	}
	if r := newOrigin(t).run(t, "mount", mp); r.code != 1 || !strings.Contains(r.stderr, "already mounted") {
		t.Errorf("a mount on a live mount point: want exit 1 \"already mounted\"\n%s", r)
	}
	vol := dataDir(filepath.Join(t.TempDir(), "vol"))
	vol.must(t, "init")
	if r := vol.run(t, "mount", filepath.Join(t.TempDir(), "v")); r.code != 1 || !strings.Contains(r.stderr, "serve --mount") {
		t.Errorf("gritsd mount on a volunteer: want exit 1 pointing to serve --mount\n%s", r)
	}
	unmount(t, s, mp)
	if r := d.run(t, "cat", "/f"); r.stdout != "x" {
		t.Errorf("after unmount: cat /f\n%s", r)
	}
}

// writeWorkloadSource writes a small source tree: nested directories,
// files of many sizes (empty, one byte, several chunks), executables, a
// private file, symlinks, and whole-second mtimes in the past (tar keeps
// seconds).
func writeWorkloadSource(t *testing.T, root string) {
	t.Helper()
	var entries []entry
	for i := range 120 {
		size := []int{0, 1, 100, 4096, 70 << 10, 3*chunkSize + 5}[i%6]
		if i%6 == 5 && i > 12 {
			size = 1000 + i // only two big files
		}
		entries = append(entries, entry{path: fmt.Sprintf("pkg%d/sub%d/file%03d.c", i%5, i%3, i), data: randBytes(uint64(100+i), size), exec: i%17 == 0})
	}
	entries = append(entries,
		entry{path: "README", data: []byte("a workload\n")},
		entry{path: "docs/empty-dir", dir: true},
		entry{path: "link-to-readme", link: "README"},
		entry{path: "pkg0/dangling", link: "../nowhere/at/all"},
	)
	writeTree(t, root, entries)
	if err := os.Chmod(filepath.Join(root, "pkg1/sub1/file001.c"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	i := 0
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.Type()&fs.ModeSymlink != 0 {
			return err
		}
		i++
		mt := base.Add(time.Duration(i) * 97 * time.Second)
		return os.Chtimes(p, mt, mt)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// noSymlinkTimes drops symlink mtimes (tar and rsync set them, but the
// source's come from the clock with nanoseconds that tar does not keep).
func noSymlinkTimes(m map[string]fileState) map[string]fileState {
	for k, v := range m {
		if v.mode&fs.ModeSymlink != 0 {
			v.mtime = time.Time{}
			m[k] = v
		}
	}
	return m
}

// secondTimes truncates mtimes to seconds (what tar keeps).
func secondTimes(m map[string]fileState) map[string]fileState {
	for k, v := range m {
		v.mtime = v.mtime.Truncate(time.Second)
		m[k] = v
	}
	return m
}

// fsx runs a bounded fsx-style loop on p: random writes, reads,
// truncations, reopenings and fsyncs, each checked against a reference
// kept in memory, and returns the reference.
func fsx(t *testing.T, p string, seed uint64, ops int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var ref []byte
	open := func() *os.File {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f := open()
	defer func() { f.Close() }()
	for i := range ops {
		switch op := rng.IntN(10); {
		case op < 4:
			off, n := rng.IntN(len(ref)+(200<<10)), 1+rng.IntN(300<<10)
			data := randBytes(seed*1000+uint64(i), n)
			if _, err := f.WriteAt(data, int64(off)); err != nil {
				t.Fatalf("fsx op %d: write %d at %d: %v", i, n, off, err)
			}
			if end := off + n; end > len(ref) {
				ref = append(ref, make([]byte, end-len(ref))...)
			}
			copy(ref[off:], data)
		case op < 6:
			if len(ref) == 0 {
				continue
			}
			off := rng.IntN(len(ref))
			buf := make([]byte, 1+rng.IntN(400<<10))
			k, err := f.ReadAt(buf, int64(off))
			if err != nil && k != min(len(buf), len(ref)-off) {
				t.Fatalf("fsx op %d: read %d at %d: %d bytes, %v", i, len(buf), off, k, err)
			}
			if want := ref[off:min(len(ref), off+len(buf))]; !bytes.Equal(buf[:k], want) {
				t.Fatalf("fsx op %d: read %d at %d: differs from the reference at %d", i, len(buf), off, off+firstDiff(buf[:k], want))
			}
		case op < 7:
			size := rng.IntN(len(ref) + (100 << 10))
			if err := f.Truncate(int64(size)); err != nil {
				t.Fatalf("fsx op %d: truncate to %d: %v", i, size, err)
			}
			if size < len(ref) {
				ref = ref[:size]
			} else {
				ref = append(ref, make([]byte, size-len(ref))...)
			}
		case op < 8:
			if err := f.Close(); err != nil {
				t.Fatalf("fsx op %d: close: %v", i, err)
			}
			f = open()
		case op < 9:
			if err := f.Sync(); err != nil {
				t.Fatalf("fsx op %d: fsync: %v", i, err)
			}
		default:
			fi, err := f.Stat()
			if err != nil || fi.Size() != int64(len(ref)) {
				t.Fatalf("fsx op %d: stat: size %d, %v; want %d", i, fi.Size(), err, len(ref))
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, ref) {
		t.Fatalf("fsx: the file after the loop: %d bytes, %v; want the %d-byte reference (first difference at %d)", len(got), err, len(ref), firstDiff(got, ref))
	}
	return ref
}

// TestMountWorkload runs real tools on the origin's mount: tar x of a
// source tarball, git init/add/commit in it, rsync -a in and back out,
// an fsx loop; everything reads back identically after unmount and
// remount, and fsck is clean.
func TestMountWorkload(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	for _, tool := range []string{"tar", "git", "rsync"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (.ci/run installs it): %v", tool, err)
		}
	}
	d := newOrigin(t)
	work := t.TempDir()
	src := filepath.Join(work, "src")
	writeWorkloadSource(t, src)
	want := noSymlinkTimes(snapshotTree(t, src, nil))
	mp := filepath.Join(work, "mnt")
	s := startMount(t, d, mp, "--quiet", "300ms")

	runTool(t, work, "tar", "czf", "src.tar.gz", "src")
	runTool(t, mp, "tar", "xzf", filepath.Join(work, "src.tar.gz"))
	compareTrees(t, "tar x into the mount", want, noSymlinkTimes(snapshotTree(t, filepath.Join(mp, "src"), nil)))

	runTool(t, filepath.Join(mp, "src"), "git", "init", "-q")
	runTool(t, filepath.Join(mp, "src"), "git", "add", "-A")
	runTool(t, filepath.Join(mp, "src"), "git", "commit", "-qm", "import")
	if out := runTool(t, filepath.Join(mp, "src"), "git", "status", "--porcelain"); out != "" {
		t.Errorf("git status after the commit: want a clean tree, got\n%s", out)
	}
	runTool(t, filepath.Join(mp, "src"), "git", "fsck", "--full", "--no-progress")

	runTool(t, work, "rsync", "-a", src+"/", filepath.Join(mp, "rs")+"/")
	runTool(t, work, "rsync", "-a", filepath.Join(mp, "rs")+"/", filepath.Join(work, "out")+"/")
	compareTrees(t, "rsync -a in", want, snapshotTree(t, filepath.Join(mp, "rs"), nil))
	compareTrees(t, "rsync -a in and out", want, snapshotTree(t, filepath.Join(work, "out"), nil))

	ref := fsx(t, filepath.Join(mp, "fsx.bin"), 7, 300)

	notGrits := func(rel string) bool { return rel == ".grits" }
	before := snapshotTree(t, mp, notGrits)
	unmount(t, s, mp)
	d.fsckClean(t)
	s = startMount(t, d, mp)
	compareTrees(t, "after unmount and remount", before, snapshotTree(t, mp, notGrits))
	if got, err := os.ReadFile(filepath.Join(mp, "fsx.bin")); err != nil || !bytes.Equal(got, ref) {
		t.Errorf("fsx.bin after remount: %d bytes, %v; want the %d-byte reference", len(got), err, len(ref))
	}
	if out := runTool(t, filepath.Join(mp, "src"), "git", "status", "--porcelain"); out != "" {
		t.Errorf("git status after remount: want a clean tree, got\n%s", out)
	}
	runTool(t, filepath.Join(mp, "src"), "git", "fsck", "--full", "--no-progress")
	unmount(t, s, mp)
}

// TestMountKillAfterFsync kills the mount with SIGKILL right after fsync
// returns, three times: every synced file (a private one too) is there
// after the restart, which clears the dead mount with a message; a file
// closed but not synced is either absent or whole; fsck is clean.
func TestMountKillAfterFsync(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	d := newOrigin(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	synced := map[string][]byte{}
	unsynced := map[string][]byte{}
	for round := range 3 {
		// A quiet period longer than the test: only fsync commits.
		s := startMount(t, d, mp, "--quiet", "1h")
		if round > 0 && !strings.Contains(s.stderr.String(), "cleared a stale mount") {
			t.Errorf("round %d: want the dead mount cleared with a message\n%s", round, s)
		}
		for i, private := range []bool{false, true} {
			name := fmt.Sprintf("r%d-%d", round, i)
			data := randBytes(uint64(round*10+i), (round+1)*chunkSize+i*333)
			f, err := os.OpenFile(filepath.Join(mp, name), os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			if private {
				if err := f.Chmod(0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("fsync: %v", err)
			}
			f.Close()
			synced[name] = data
		}
		name := fmt.Sprintf("u%d", round)
		unsynced[name] = randBytes(uint64(900+round), 2*chunkSize+1)
		mustWrite(t, filepath.Join(mp, name), unsynced[name], 0o644)
		s.cmd.Process.Kill()
		<-s.exited
	}
	s := startMount(t, d, mp, "--quiet", "1h")
	for name, data := range synced {
		if got, err := os.ReadFile(filepath.Join(mp, name)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("synced %s after kill -9: %d bytes, %v; want %d", name, len(got), err, len(data))
		}
	}
	for name, data := range unsynced {
		got, err := os.ReadFile(filepath.Join(mp, name))
		if err == nil && !bytes.Equal(got, data) {
			t.Errorf("unsynced %s after kill -9: %d bytes, not the %d written: half-written", name, len(got), len(data))
		}
	}
	unmount(t, s, mp)
	d.fsckClean(t)
	if r := d.must(t, "cat", "/r2-0"); r.stdout != string(synced["r2-0"]) {
		t.Errorf("cat /r2-0: want the synced bytes from the published tree")
	}
	if r := d.run(t, "cat", "/r2-1"); r.code == 0 {
		t.Errorf("cat /r2-1 (mode 0600): want it absent from the published tree\n%s", r)
	}
}

// asUser runs sh -c script as uid:gid and returns its error.
func asUser(uid, gid uint32, dir, script string) error {
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestMountOwner: with --owner, the application's user writes to the
// mount and others read what the mode bits let them, as on a disk.
func TestMountOwner(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	d := newOrigin(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	// Other users must reach the mount point through the test's
	// temporary directories.
	for p := filepath.Dir(mp); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := startMount(t, d, mp, "--owner", "65534:65534")
	if err := asUser(65534, 65534, mp, "mkdir -p media/1 && echo hello > media/1/a.txt && echo secret > media/1/s.txt && chmod 0600 media/1/s.txt"); err != nil {
		t.Fatalf("the owner writes: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mp, "media/1/a.txt"), &st); err != nil || st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("a.txt: owner %d:%d (%v), want 65534:65534", st.Uid, st.Gid, err)
	}
	if err := asUser(65533, 65533, mp, "cat media/1/a.txt"); err != nil {
		t.Errorf("another user reads a 0644 file: %v", err)
	}
	if err := asUser(65533, 65533, mp, "cat media/1/s.txt"); err == nil {
		t.Errorf("another user read a 0600 file")
	}
	if err := asUser(65533, 65533, mp, "echo x > media/1/b.txt"); err == nil {
		t.Errorf("another user wrote into the owner's 0755 directory")
	}
	unmount(t, s, mp)
	if r := d.must(t, "cat", "/media/1/a.txt"); r.stdout != "hello\n" {
		t.Errorf("cat /media/1/a.txt\n%s", r)
	}
}

// TestMountSIGTERMWithOpenFile: SIGTERM while a program still writes to
// an open file detaches the mount, keeps serving that file, and exits
// once it is closed, with everything it wrote committed.
func TestMountSIGTERMWithOpenFile(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	d := newOrigin(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	s := startMount(t, d, mp, "--quiet", "1h")
	f, err := os.OpenFile(filepath.Join(mp, "upload.bin"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	first, second := randBytes(31, chunkSize+7), randBytes(32, 2*chunkSize)
	if _, err := f.Write(first); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, mountWait, 50*time.Millisecond, func() error {
		if !strings.Contains(s.stderr.String(), "still open") {
			return fmt.Errorf("want gritsd to say files are still open\n%s", s)
		}
		return nil
	})
	select {
	case <-s.exited:
		t.Fatalf("gritsd mount exited while a file was open\n%s", s)
	default:
	}
	if _, err := f.Write(second); err != nil {
		t.Fatalf("writing on after SIGTERM: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(serveStopTimeout):
		t.Fatalf("gritsd mount did not exit within %v of the last close\n%s", serveStopTimeout, s)
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, s)
	}
	want := append(slices.Clone(first), second...)
	if r := d.must(t, "cat", "/upload.bin"); r.stdout != string(want) {
		t.Errorf("cat /upload.bin after the unmount: %d bytes, want the %d written before and after SIGTERM", len(r.stdout), len(want))
	}
	d.fsckClean(t)
}

// TestMountAtSubtreeBesideImports: a mount of /system and imports of
// /static share the tree; each commit keeps what the other published,
// commits wait for the lock rather than fail, and the mount starts from
// what is already at its path.
func TestMountAtSubtreeBesideImports(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	d := newOrigin(t)
	d.importTree(t, newSource(t, []entry{{path: "a.txt", data: []byte("existing\n")}}), "--at", "/system")
	mp := filepath.Join(t.TempDir(), "system")
	s := startMount(t, d, mp, "--at", "/system", "--quiet", "100ms")
	if b, err := os.ReadFile(filepath.Join(mp, "a.txt")); err != nil || string(b) != "existing\n" {
		t.Fatalf("the mount of /system: a.txt is %q, %v; want what was imported there", b, err)
	}
	for i := range 5 {
		mustWrite(t, filepath.Join(mp, fmt.Sprintf("m%d.txt", i)), []byte(fmt.Sprintf("mount %d\n", i)), 0o644)
		// import does not wait for the lock: while the mount commits it
		// says so, and the operator runs it again.
		src := newSource(t, []entry{{path: fmt.Sprintf("s%d.css", i), data: []byte(fmt.Sprintf("static %d\n", i))}})
		eventually(t, mountWait, 50*time.Millisecond, func() error {
			r := d.run(t, "import", src, "--at", fmt.Sprintf("/static/%d", i))
			switch {
			case r.code == 0:
				return nil
			case strings.Contains(r.stderr, "locked"):
				return fmt.Errorf("import: %s", r)
			}
			t.Fatalf("import beside the mount\n%s", r)
			return nil
		})
	}
	unmount(t, s, mp)
	for i := range 5 {
		if r := d.run(t, "cat", fmt.Sprintf("/system/m%d.txt", i)); r.stdout != fmt.Sprintf("mount %d\n", i) {
			t.Errorf("cat /system/m%d.txt\n%s", i, r)
		}
		if r := d.run(t, "cat", fmt.Sprintf("/static/%d/s%d.css", i, i)); r.stdout != fmt.Sprintf("static %d\n", i) {
			t.Errorf("cat /static/%d/s%d.css\n%s", i, i, r)
		}
	}
	d.fsckClean(t)
}

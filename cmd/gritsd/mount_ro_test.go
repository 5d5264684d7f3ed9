package main_test

// Integration tests for read-only mounts: gritsd serve --mount on
// volunteers, fed by an origin that writes through its own mount.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startMountNode starts gritsd serve for a swarm node with --mount mp
// (and extra flags) and waits until it says it mounted.
func startMountNode(t *testing.T, d dataDir, id, mp string, extra ...string) *swarmNode {
	t.Helper()
	if _, err := os.Lstat(mp); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(mp, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if mounted(t, mp) {
			exec.Command("umount", "-l", mp).Run()
		}
	})
	s := startServe(t, d, append([]string{"--gossip", "127.0.0.1:0", "--gossip-profile", "local", "--mount", mp}, extra...)...)
	m := gossipLineRE.FindStringSubmatch(s.stderr.String())
	if m == nil || !strings.Contains(s.stderr.String(), "mounted ") || !mounted(t, mp) {
		t.Fatalf("serve --mount: want \"gossip on\" and \"mounted\" lines and a mount at %s\n%s", mp, s)
	}
	return &swarmNode{d: d, id: id, srv: s, gossip: m[1]}
}

// waitFile waits until p holds want.
func waitFile(t *testing.T, p string, want []byte) {
	t.Helper()
	eventually(t, mountWait, 100*time.Millisecond, func() error {
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: %d bytes, want %d (first difference at %d)", p, len(got), len(want), firstDiff(got, want))
		}
		return nil
	})
}

// TestMountVolunteerReadOnly: an origin serving with a read-write mount,
// a volunteer serving with a read-only one. What the origin's programs
// write shows on the volunteer's mount within seconds, with the same
// metadata (private files left out); writes there fail with EROFS; an
// open file keeps the version it opened; every retained root is a
// snapshot under .grits/roots; tar, cp -a, rsync -a, find and du read
// the volunteer's mount as they read the origin's.
func TestMountVolunteerReadOnly(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	d, _ := newOriginWithKey(t)
	work := t.TempDir()
	omp, vmp := filepath.Join(work, "origin"), filepath.Join(work, "volunteer")
	origin := startMountNode(t, d, "", omp, "--mount-quiet", "200ms")
	origin.id = d.mustStatus(t).Node
	vd, vid := join(t, newToken(t, d, origin.srv.addr, "--role", "volunteer"))
	vol := startMountNode(t, vd, vid, vmp)

	src := filepath.Join(work, "src")
	writeWorkloadSource(t, src)
	runTool(t, work, "rsync", "-a", src+"/", omp+"/site/")
	mustWrite(t, filepath.Join(omp, "private.txt"), []byte("not for volunteers"), 0o600)
	big := randBytes(77, 9*chunkSize+99)
	mustWrite(t, filepath.Join(omp, "site/big.bin"), big, 0o644)
	waitFile(t, filepath.Join(vmp, "site/big.bin"), big)
	// private.txt and the private file inside the source stay home.
	isPrivate := func(rel string) bool {
		return rel == "private.txt" || rel == "site/pkg1/sub1/file001.c" || rel == ".grits"
	}
	want := snapshotTree(t, omp, isPrivate)
	eventually(t, mountWait, 200*time.Millisecond, func() error {
		if _, err := os.Stat(filepath.Join(vmp, "site/README")); err != nil {
			return err
		}
		return nil
	})
	compareTrees(t, "the volunteer's mount", want, snapshotTree(t, vmp, func(rel string) bool { return rel == ".grits" }))
	for _, p := range []string{"private.txt", "site/pkg1/sub1/file001.c"} {
		if _, err := os.Lstat(filepath.Join(vmp, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s (private on the origin) on the volunteer's mount: %v, want it absent", p, err)
		}
	}

	// Link counts as on a disk; statfs shows the volunteer's cache.
	for _, p := range []string{"site", "site/pkg0", "site/docs/empty-dir"} {
		var o, v syscall.Stat_t
		if err := errors.Join(syscall.Stat(filepath.Join(omp, p), &o), syscall.Stat(filepath.Join(vmp, p), &v)); err != nil || o.Nlink != v.Nlink {
			t.Errorf("%s: %d links on the volunteer's mount, %d on the origin's (%v)", p, v.Nlink, o.Nlink, err)
		}
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(vmp, &sfs); err != nil || sfs.Blocks == 0 || sfs.Bfree > sfs.Blocks {
		t.Errorf("statfs of the volunteer's mount: %d blocks, %d free (%v); want the cache quota", sfs.Blocks, sfs.Bfree, err)
	}

	// Read-only.
	for what, err := range map[string]error{
		"create": os.WriteFile(filepath.Join(vmp, "new"), []byte("x"), 0o644),
		"write":  os.WriteFile(filepath.Join(vmp, "site/README"), []byte("x"), 0o644),
		"mkdir":  os.Mkdir(filepath.Join(vmp, "d"), 0o755),
		"chmod":  os.Chmod(filepath.Join(vmp, "site/README"), 0o600),
		"remove": os.Remove(filepath.Join(vmp, "site/README")),
		"rename": os.Rename(filepath.Join(vmp, "site/README"), filepath.Join(vmp, "site/R")),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on the volunteer's mount: %v, want EROFS", what, err)
		}
	}

	// Tools that walk a tree see it as on a local disk.
	runTool(t, work, "rsync", "-a", vmp+"/site/", filepath.Join(work, "rsync-out")+"/")
	runTool(t, work, "cp", "-a", filepath.Join(vmp, "site"), filepath.Join(work, "cp-out"))
	runTool(t, work, "tar", "cf", "out.tar", "-C", vmp, "site")
	runTool(t, work, "mkdir", "tar-out")
	runTool(t, filepath.Join(work, "tar-out"), "tar", "xf", filepath.Join(work, "out.tar"))
	wantSite := snapshotTree(t, filepath.Join(omp, "site"), func(rel string) bool { return rel == "pkg1/sub1/file001.c" })
	compareTrees(t, "rsync -a from the volunteer's mount", wantSite, snapshotTree(t, filepath.Join(work, "rsync-out"), nil))
	compareTrees(t, "cp -a from the volunteer's mount", wantSite, snapshotTree(t, filepath.Join(work, "cp-out"), nil))
	compareTrees(t, "tar c from the volunteer's mount", secondTimes(noSymlinkTimes(wantSite)), noSymlinkTimes(snapshotTree(t, filepath.Join(work, "tar-out/site"), nil)))
	files, total := 0, int64(0)
	for _, st := range wantSite {
		if st.mode.IsRegular() {
			files++
			total += st.size
		}
	}
	if out := runTool(t, vmp, "find", "site", "-type", "f"); strings.Count(out, "\n") != files {
		t.Errorf("find site -type f on the volunteer's mount: %d files, want %d\n%s", strings.Count(out, "\n"), files, out)
	}
	var du int64
	if _, err := fmt.Sscan(runTool(t, vmp, "du", "-sb", "site"), &du); err != nil || du < total {
		t.Errorf("du -sb site on the volunteer's mount: %d (%v), want at least the %d bytes of its files", du, err, total)
	}

	// An open file keeps its version; a new open sees the new one; the
	// directory's inode number stays.
	var dirBefore syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vmp, "site"), &dirBefore); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(vmp, "site/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, chunkSize)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, big[:chunkSize]) {
		t.Fatalf("first chunk of big.bin: %v", err)
	}
	big2 := randBytes(78, 5*chunkSize)
	mustWrite(t, filepath.Join(omp, "site/big.bin"), big2, 0o644)
	waitFile(t, filepath.Join(vmp, "site/big.bin"), big2)
	rest, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(rest, big[chunkSize:]) {
		t.Errorf("the file opened before the change: read %d more bytes (%v), want the old version's %d", len(rest), err, len(big)-chunkSize)
	}
	var dirAfter syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vmp, "site"), &dirAfter); err != nil || dirAfter.Ino != dirBefore.Ino {
		t.Errorf("site's inode number: %d before the new root, %d after (%v); want it stable", dirBefore.Ino, dirAfter.Ino, err)
	}

	// Snapshots: the root before the change still has the old bytes.
	var seqs []int
	for _, n := range dirNames(t, filepath.Join(vmp, ".grits/roots")) {
		s, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf(".grits/roots lists %q, want sequence numbers", n)
		}
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	if len(seqs) < 2 {
		t.Fatalf(".grits/roots: %v, want at least two roots", seqs)
	}
	old := filepath.Join(vmp, ".grits/roots", strconv.Itoa(seqs[len(seqs)-2]), "site/big.bin")
	if got, err := os.ReadFile(old); err != nil || !bytes.Equal(got, big) {
		t.Errorf("%s: %d bytes, %v; want the version before the change", old, len(got), err)
	}
	newest := filepath.Join(vmp, ".grits/roots", strconv.Itoa(seqs[len(seqs)-1]), "site/big.bin")
	if got, err := os.ReadFile(newest); err != nil || !bytes.Equal(got, big2) {
		t.Errorf("%s: %d bytes, %v; want the new version", newest, len(got), err)
	}

	// A chmod on the origin (same content, same inode) shows on the
	// volunteer's mount.
	if err := os.Chmod(filepath.Join(omp, "site/README"), 0o755); err != nil {
		t.Fatal(err)
	}
	eventually(t, mountWait, 100*time.Millisecond, func() error {
		fi, err := os.Stat(filepath.Join(vmp, "site/README"))
		if err == nil && fi.Mode().Perm() != 0o755 {
			err = fmt.Errorf("site/README on the volunteer's mount: mode %v, want 0755", fi.Mode().Perm())
		}
		return err
	})
	_ = vol
}

// TestMountReaderSurvivesPeerKill: a volunteer's mount reads a large
// file whose blocks live on two other volunteers (its home nodes, asked
// first); one of them is killed mid-read, and the reader gets every
// byte, verified, from the others.
func TestMountReaderSurvivesPeerKill(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	big := randBytes(99, 96*chunkSize+5)
	origin, _ := startOrigin(t, []entry{{path: "video/big.bin", data: big}})
	v1 := enrol(t, origin, "volunteer")
	v2 := enrol(t, origin, "volunteer")
	vd, vid := join(t, newToken(t, origin.d, origin.srv.addr, "--role", "volunteer"))
	mp := filepath.Join(t.TempDir(), "mnt")
	reader := startMountNode(t, vd, vid, mp)
	waitAlive(t, reader, origin, v1, v2, reader)
	p := filepath.Join(mp, "video/big.bin")
	eventually(t, mountWait, 100*time.Millisecond, func() error {
		_, err := os.Stat(p)
		return err
	})
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(big))
	half := len(big) / 3
	if _, err := io.ReadFull(f, got[:half]); err != nil {
		t.Fatalf("first third: %v", err)
	}
	v1.srv.cmd.Process.Kill()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(f, got[half:])
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("reading on after a peer was killed: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the read did not finish within 2 minutes of the peer's death")
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("read %d bytes, first difference at %d", len(got), firstDiff(got, big))
	}
	st := reader.d.mustStatus(t)
	if st.Upstream.Fetched == 0 {
		t.Errorf("the reader fetched nothing from the swarm: %+v", st.Upstream)
	}
}

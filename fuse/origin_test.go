package fuse

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// memPublisher keeps the published directory in memory.
type memPublisher struct {
	mu      sync.Mutex
	dir     tree.Entry
	have    bool
	commits int
}

func (p *memPublisher) Published(context.Context) (blockstore.Hash, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dir.Hash, p.have, nil
}

func (p *memPublisher) Publish(_ context.Context, dir tree.Entry) (tree.Root, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dir, p.have = dir, true
	p.commits++
	return tree.Root{Seq: uint64(p.commits), Tree: dir.Hash}, nil
}

func needFUSE(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

func mountForTest(t *testing.T, store Store, pub Publisher, state, dir string) *Mount {
	t.Helper()
	m, err := MountOrigin(context.Background(), dir, OriginConfig{Store: store, Publisher: pub, StateDir: state, Quiet: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m != nil {
			m.Close(context.Background())
		}
	})
	return m
}

// refTree builds, from what the mount shows, the published and held-back
// trees a from-scratch build must give: the commit's incremental work
// must end in the same (canonical) hashes.
func refTree(t *testing.T, b *tree.Builder, dir string, published bool) (pub, hid *tree.Entry) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var pe, he []tree.Entry
	for _, de := range des {
		if de.Name() == gritsDir {
			continue // the snapshots, never in the tree
		}
		p := filepath.Join(dir, de.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		e := tree.Entry{Name: de.Name(), Mode: uint32(fi.Mode().Perm()), MTime: storableTime(fi.ModTime())}
		var cp bool
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Kind = tree.KindSymlink
			e.Target, _ = os.Readlink(p)
			e.Size = uint64(len(e.Target))
			cp = published
		case fi.IsDir():
			e.Kind = tree.KindDir
			cp = published && e.Mode&0o005 == 0o005
			sp, sh := refTree(t, b, p, cp)
			if sp != nil {
				ep := e
				ep.Hash, ep.Size = sp.Hash, sp.Size
				pe = append(pe, ep)
			}
			if sh != nil {
				eh := e
				eh.Hash, eh.Size = sh.Hash, sh.Size
				he = append(he, eh)
			}
			continue
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			e.Kind = tree.KindFile
			// As an import writes it: a one-chunk file is direct.
			fe, err := b.WriteFileEntry(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			e.Hash, e.Size, e.Direct = fe.Hash, fe.Size, fe.Direct
			cp = published && e.Mode&0o004 != 0
		}
		if cp {
			pe = append(pe, e)
		} else {
			he = append(he, e)
		}
	}
	mk := func(es []tree.Entry) *tree.Entry {
		h, err := b.BuildDir(context.Background(), es)
		if err != nil {
			t.Fatal(err)
		}
		var size uint64
		for _, e := range es {
			size += e.Size
		}
		return &tree.Entry{Kind: tree.KindDir, Hash: h, Size: size}
	}
	if published {
		pub = mk(pe)
	}
	if !published || len(he) > 0 {
		hid = mk(he)
	}
	return pub, hid
}

// TestRandomOpsCommitCanonicalTrees applies random operations through a
// real mount (creates, writes, truncates, chmods of files and
// directories, renames, removals, symlinks, utimes), committing now and
// then, and checks after each commit that the published and held-back
// trees are exactly the ones built from scratch from what the mount
// shows; after a remount the mount shows the same.
func TestRandomOpsCommitCanonicalTrees(t *testing.T) {
	needFUSE(t)
	store := blockstore.NewMem(-1)
	pub := &memPublisher{}
	state := t.TempDir()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := mountForTest(t, store, pub, state, dir)
	rng := rand.New(rand.NewPCG(42, 7))
	dirs := []string{"."}
	var files []string
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	modes := []os.FileMode{0o644, 0o600, 0o640, 0o755, 0o444}
	// Half the directory modes publish: directories must go both ways.
	dmodes := []os.FileMode{0o755, 0o755, 0o755, 0o700, 0o750, 0o711}
	check := func(step int) {
		t.Helper()
		if err := m.Commit(); err != nil {
			t.Fatalf("step %d: commit: %v", step, err)
		}
		b := &tree.Builder{Store: blockstore.NewMem(-1)}
		wp, wh := refTree(t, b, dir, true)
		gotPub, _, _ := pub.Published(context.Background())
		if gotPub != wp.Hash {
			t.Fatalf("step %d: published tree %s, a build from scratch gives %s", step, gotPub.Short(), wp.Hash.Short())
		}
		st, err := readState(state)
		if err != nil {
			t.Fatal(err)
		}
		if (wh == nil) != (st.Hid == nil) || wh != nil && *st.Hid != wh.Hash {
			t.Fatalf("step %d: held-back tree %v, a build from scratch gives %v", step, st.Hid, wh)
		}
	}
	for step := range 400 {
		p := func(name string) string { return filepath.Join(dir, name) }
		var err error
		switch op := rng.IntN(12); {
		case op < 3:
			name := filepath.Join(pick(dirs), fmt.Sprintf("f%d", step))
			data := make([]byte, rng.IntN(600<<10))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			if err = os.WriteFile(p(name), data, 0o644); err == nil {
				err = os.Chmod(p(name), modes[rng.IntN(len(modes))])
				files = append(files, name)
			}
		case op < 4:
			parent := pick(dirs[:min(len(dirs), 3)]) // a wide tree, not one deep path
			if rng.IntN(2) == 0 {
				parent = pick(dirs)
			}
			name := filepath.Join(parent, fmt.Sprintf("d%d", step))
			if err = os.Mkdir(p(name), 0o755); err == nil {
				dirs = append(dirs, name)
			}
		case op < 5 && len(files) > 0:
			err = os.Chmod(p(pick(files)), modes[rng.IntN(len(modes))])
		case op < 6 && len(dirs) > 1:
			err = os.Chmod(p(dirs[1+rng.IntN(len(dirs)-1)]), dmodes[rng.IntN(len(dmodes))])
		case op < 7 && len(files) > 0:
			i := rng.IntN(len(files))
			to := filepath.Join(pick(dirs), fmt.Sprintf("r%d", step))
			if err = os.Rename(p(files[i]), p(to)); err == nil {
				files[i] = to
			}
		case op < 8 && len(files) > 0:
			i := rng.IntN(len(files))
			if err = os.Remove(p(files[i])); err == nil {
				files = append(files[:i], files[i+1:]...)
			}
		case op < 9 && len(files) > 0:
			err = os.Truncate(p(pick(files)), int64(rng.IntN(400<<10)))
		case op < 10 && len(files) > 0:
			mt := time.Unix(int64(1e9+rng.IntN(1e9)), int64(rng.IntN(1e9)))
			err = os.Chtimes(p(pick(files)), mt, mt)
		case op < 11:
			name := filepath.Join(pick(dirs), fmt.Sprintf("l%d", step))
			err = os.Symlink(fmt.Sprintf("target-%d", step), p(name))
		default:
			check(step)
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	check(400)
	before := snapshot(t, dir)
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m = mountForTest(t, store, pub, state, dir)
	after := snapshot(t, dir)
	if len(before) != len(after) {
		t.Fatalf("after remount: %d entries, want %d", len(after), len(before))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("after remount: %s is %q, want %q", k, after[k], v)
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every entry under dir in one string each.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Name() == gritsDir && de.IsDir() && filepath.Dir(p) == dir {
			return filepath.SkipDir // the snapshots, which a remount may add to
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := fmt.Sprintf("%v %d", fi.Mode(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" %d %x", len(b), blockstore.Sum(b))
		} else if fi.IsDir() {
			s = fmt.Sprintf("%v", fi.Mode())
		}
		out[p] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConcurrentWritersAndCommits: writers in parallel (each in its own
// directory: create, write, read back, rename, chmod, truncate) while
// commits run; under -race this checks the mount's locking, and at the
// end every file holds what its writer last wrote and the trees are the
// canonical ones.
func TestConcurrentWritersAndCommits(t *testing.T) {
	needFUSE(t)
	store := blockstore.NewMem(-1)
	pub := &memPublisher{}
	state := t.TempDir()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := mountForTest(t, store, pub, state, dir)
	const workers, ops = 6, 60
	stop := make(chan struct{})
	committed := make(chan error, 1)
	go func() {
		var err error
		for {
			select {
			case <-stop:
				committed <- err
				return
			case <-time.After(20 * time.Millisecond):
			}
			if e := m.Commit(); e != nil && err == nil {
				err = e
			}
		}
	}()
	var wg sync.WaitGroup
	final := make([]map[string][]byte, workers)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			own := filepath.Join(dir, fmt.Sprintf("w%d", w))
			if err := os.Mkdir(own, 0o755); err != nil {
				errs <- err
				return
			}
			files := map[string][]byte{}
			for i := range ops {
				name := fmt.Sprintf("f%d", rng.IntN(8))
				p := filepath.Join(own, name)
				switch rng.IntN(5) {
				case 0, 1:
					data := make([]byte, rng.IntN(300<<10))
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					if err := os.WriteFile(p, data, 0o644); err != nil {
						errs <- fmt.Errorf("worker %d op %d: %w", w, i, err)
						return
					}
					files[name] = data
				case 2:
					if want, ok := files[name]; ok {
						got, err := os.ReadFile(p)
						if err != nil || !bytes.Equal(got, want) {
							errs <- fmt.Errorf("worker %d op %d: %s reads %d bytes (%v), want %d", w, i, name, len(got), err, len(want))
							return
						}
					}
				case 3:
					to := fmt.Sprintf("f%d", rng.IntN(8))
					if data, ok := files[name]; ok && to != name {
						if err := os.Rename(p, filepath.Join(own, to)); err != nil {
							errs <- err
							return
						}
						files[to] = data
						delete(files, name)
					}
				default:
					if data, ok := files[name]; ok {
						size := rng.IntN(len(data) + 1)
						if err := os.Truncate(p, int64(size)); err != nil {
							errs <- err
							return
						}
						files[name] = data[:size]
						os.Chmod(p, []os.FileMode{0o644, 0o600}[rng.IntN(2)])
					}
				}
			}
			final[w] = files
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-committed; err != nil {
		t.Fatalf("a commit failed: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w, files := range final {
		for name, data := range files {
			got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("w%d", w), name))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("w%d/%s: %d bytes (%v), want %d", w, name, len(got), err, len(data))
			}
		}
	}
	if err := m.Commit(); err != nil {
		t.Fatal(err)
	}
	refStore := blockstore.NewMem(-1)
	wp, _ := refTree(t, &tree.Builder{Store: refStore}, dir, true)
	if got, _, _ := pub.Published(context.Background()); got != wp.Hash {
		t.Errorf("published tree %s, a build from scratch gives %s", got.Short(), wp.Hash.Short())
		diffTrees(t, "", store, got, refStore, wp.Hash)
	}
}

// diffTrees reports the entries where two trees differ.
func diffTrees(t *testing.T, p string, ga tree.Getter, a blockstore.Hash, gb tree.Getter, b blockstore.Hash) {
	t.Helper()
	ea, err1 := tree.ListDir(context.Background(), ga, a)
	eb, err2 := tree.ListDir(context.Background(), gb, b)
	if err1 != nil || err2 != nil {
		t.Errorf("%s: %v %v", p, err1, err2)
		return
	}
	byName := map[string]tree.Entry{}
	for _, e := range eb {
		byName[e.Name] = e
	}
	for _, e := range ea {
		o, ok := byName[e.Name]
		delete(byName, e.Name)
		switch {
		case !ok:
			t.Errorf("%s/%s: only in the published tree", p, e.Name)
		case e.Kind == tree.KindDir && o.Kind == tree.KindDir && e.Hash != o.Hash:
			if e.Mode != o.Mode || !e.MTime.Equal(o.MTime) || e.Size != o.Size {
				t.Errorf("%s/%s: dir mode %o/%o mtime %v/%v size %d/%d", p, e.Name, e.Mode, o.Mode, e.MTime, o.MTime, e.Size, o.Size)
			}
			diffTrees(t, p+"/"+e.Name, ga, e.Hash, gb, o.Hash)
		case e.Hash != o.Hash || e.Mode != o.Mode || !e.MTime.Equal(o.MTime) || e.Size != o.Size:
			t.Errorf("%s/%s: mode %o/%o mtime %v/%v size %d/%d hash %s/%s", p, e.Name, e.Mode, o.Mode, e.MTime, o.MTime, e.Size, o.Size, e.Hash.Short(), o.Hash.Short())
		}
	}
	for name := range byName {
		t.Errorf("%s/%s: only in the build from scratch", p, name)
	}
}

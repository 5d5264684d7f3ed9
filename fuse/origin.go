package fuse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// PublishRule says which entries of the origin's mount are published.
type PublishRule string

const (
	// PublishWorldReadable publishes what a web server would serve:
	// files others may read (o+r) in directories others may list and
	// enter (o+rx), all the way up. The default.
	PublishWorldReadable PublishRule = "world-readable"
	// PublishAll publishes every entry whatever its mode.
	PublishAll PublishRule = "all"
)

// ParsePublishRule checks a rule's name; "" is the default.
func ParsePublishRule(s string) (PublishRule, error) {
	switch PublishRule(s) {
	case "":
		return PublishWorldReadable, nil
	case PublishWorldReadable, PublishAll:
		return PublishRule(s), nil
	}
	return "", fmt.Errorf("publish rule %q: want %s or %s", s, PublishWorldReadable, PublishAll)
}

// Publisher puts the mount's published directory into the site's tree.
type Publisher interface {
	// Published returns the directory at the mount's path in the newest
	// root; ok is false when there is no root or nothing there.
	Published(ctx context.Context) (h blockstore.Hash, ok bool, err error)
	// Publish signs a root whose tree holds dir at the mount's path and
	// appends it to the root log durably. dir's blocks are durable
	// already. It may wait (bounded) for another command that holds the
	// data directory's lock.
	Publish(ctx context.Context, dir tree.Entry) (tree.Root, error)
}

// OriginConfig configures the origin's read-write mount.
type OriginConfig struct {
	Store Store
	// Reader, if set, reads file content instead of Store: on an origin
	// that offloads, content it let go comes back from storage nodes.
	Reader tree.Getter
	// StateDir holds the mount's state (the held-back tree, the last
	// commit) and its staging files; one per mounted path.
	StateDir  string
	Publisher Publisher
	ChunkSize uint32
	Rule      PublishRule
	// Quiet is how long the tree must be unchanged before changes are
	// committed as one root (default 1s); MaxDelay bounds how long a
	// steady stream of changes waits (default 10s).
	Quiet, MaxDelay time.Duration
	// StatfsPath is the directory whose file system statfs reports
	// (the data directory).
	StatfsPath string
	// At is the tree path mounted, for messages and ActiveMounts.
	At string
	// Owner is who every entry belongs to (default: this process's
	// user); with the mode bits it decides who may write.
	Owner *Owner
	// Snapshots lists the roots .grits/roots shows, oldest first: the
	// retained roots whose mounted directory Reader can still read,
	// each Root's Tree being that directory. Nil shows none.
	Snapshots func(ctx context.Context) ([]tree.Root, error)
	Logger    *slog.Logger
}

func (c *OriginConfig) defaults() error {
	if c.Store == nil || c.Publisher == nil || c.StateDir == "" {
		return errors.New("mount: Store, Publisher and StateDir are required")
	}
	if c.Quiet <= 0 {
		c.Quiet = time.Second
	}
	if c.MaxDelay < c.Quiet {
		c.MaxDelay = max(10*time.Second, c.Quiet)
	}
	if c.Rule == "" {
		c.Rule = PublishWorldReadable
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StatfsPath == "" {
		c.StatfsPath = c.StateDir
	}
	return nil
}

// state is what the mount records, durably, before every root it
// publishes: enough to finish an interrupted commit, and the held-back
// tree, which no root names.
type state struct {
	Version int `json:"version"`
	// Base is the published directory before this commit (absent for
	// the first).
	Base *blockstore.Hash `json:"base,omitempty"`
	Pub  blockstore.Hash  `json:"pub"`
	Size uint64           `json:"pub_size"`
	// Hid is the tree of entries kept but not published.
	Hid   *blockstore.Hash `json:"hid,omitempty"`
	HSize uint64           `json:"hid_size,omitempty"`
	Mode  uint32           `json:"mode"`
	MTime time.Time        `json:"mtime"`
	// HeldFiles and HeldBytes count the files in Hid, for gritsd status.
	HeldFiles int64 `json:"held_files"`
	HeldBytes int64 `json:"held_bytes"`
}

const stateFile = "state.json"

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mount state: %w", err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("mount state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("mount state %s: version %d, this gritsd understands 1", filepath.Join(dir, stateFile), s.Version)
	}
	return &s, nil
}

// writeState replaces the state file atomically and durably.
func writeState(dir string, s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("mount state: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("mount state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return fmt.Errorf("mount state: %w", err)
	}
	return syncDir(dir)
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// countFiles counts the files under directory h and their bytes.
func countFiles(ctx context.Context, g tree.Getter, h blockstore.Hash) (files, bytes int64, err error) {
	es, err := tree.ListDir(ctx, g, h)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range es {
		switch e.Kind {
		case tree.KindFile:
			files++
			bytes += int64(e.Size)
		case tree.KindDir:
			f, b, err := countFiles(ctx, g, e.Hash)
			if err != nil {
				return 0, 0, err
			}
			files += f
			bytes += b
		}
	}
	return files, bytes, nil
}

// HeldBack sums, over the mounts whose state lives under stateRoot, the
// files and bytes kept but not published, as of each one's last commit.
func HeldBack(stateRoot string) (files, bytes int64, err error) {
	des, err := os.ReadDir(stateRoot)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		s, err := readState(filepath.Join(stateRoot, de.Name()))
		if err != nil {
			return 0, 0, err
		}
		if s != nil && s.Hid != nil {
			files += s.HeldFiles
			bytes += s.HeldBytes
		}
	}
	return files, bytes, nil
}

// HeldBackRoots returns the held-back trees recorded under stateDir
// (one per mounted path, in subdirectories): gc must keep their blocks
// and fsck check them, though no root names them.
func HeldBackRoots(stateDir string) ([]blockstore.Hash, error) {
	des, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []blockstore.Hash
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		s, err := readState(filepath.Join(stateDir, de.Name()))
		if err != nil {
			return nil, err
		}
		if s != nil && s.Hid != nil {
			out = append(out, *s.Hid)
		}
	}
	return out, nil
}

// origin is the commit side of the read-write mount: it turns the
// working tree into roots.
type origin struct {
	cfg OriginConfig
	w   *work

	commitMu sync.Mutex // one commit at a time
	last     state      // what the last commit made durable

	smu      sync.Mutex
	cond     *sync.Cond
	durable  uint64 // every change up to this gen is durable
	failGen  uint64 // the commit covering changes up to failGen failed
	failErr  error
	now      chan struct{} // asks the loop to commit at once
	loopDone chan struct{}
}

func openOrigin(ctx context.Context, cfg OriginConfig) (*origin, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "staging"), 0o700); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	// Unsynced data may be lost, never half-written: a staging file left
	// by a crash was never part of a commit.
	stale, _ := filepath.Glob(filepath.Join(cfg.StateDir, "staging", "*"))
	for _, p := range stale {
		os.Remove(p)
	}
	w, err := newWork(ctx, cfg.Store, cfg.Reader, cfg.ChunkSize, cfg.Rule, cfg.Logger)
	if err != nil {
		return nil, err
	}
	o := &origin{cfg: cfg, w: w, now: make(chan struct{}, 1), loopDone: make(chan struct{})}
	o.cond = sync.NewCond(&o.smu)
	st, err := readState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	latest, have, err := cfg.Publisher.Published(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	switch {
	case st == nil:
		// First mount of this path: what is published is the tree.
		w.setRoot(ref{hash: latest, ok: have}, ref{}, 0o755, now)
		if have {
			o.last = state{Version: 1, Pub: latest, Mode: 0o755, MTime: now}
			o.last.Size, _ = dirSize(ctx, cfg.Store, latest)
			w.root.pub.size = o.last.Size
		}
	case have && latest == st.Pub:
		w.setRoot(ref{hash: st.Pub, size: st.Size, ok: true}, hidRef(st), st.Mode, st.MTime)
		o.last = *st
	case st.Base != nil && have && latest == *st.Base || st.Base == nil && !have:
		// The last commit recorded its state but its root never made it
		// to the log: its blocks are durable (synced before the state),
		// so finish it.
		cfg.Logger.Warn("mount: finishing a commit a crash interrupted", "tree", st.Pub.Short())
		if _, err := cfg.Publisher.Publish(ctx, rootEntry(st)); err != nil {
			return nil, fmt.Errorf("mount: finish the interrupted commit: %w", err)
		}
		w.setRoot(ref{hash: st.Pub, size: st.Size, ok: true}, hidRef(st), st.Mode, st.MTime)
		o.last = *st
	default:
		// Something else (gritsd import) changed the published side
		// while nothing was mounted: take it, and keep our held-back
		// entries beside it.
		cfg.Logger.Warn("mount: the published tree changed since the last mount; taking the new one and keeping the held-back entries")
		w.setRoot(ref{hash: latest, ok: have}, hidRef(st), st.Mode, st.MTime)
		w.root.pub.size, _ = dirSize(ctx, cfg.Store, latest)
		w.touch(w.root)
		o.last = *st
		o.last.Pub = latest
	}
	return o, nil
}

func hidRef(s *state) ref {
	if s.Hid == nil {
		return ref{}
	}
	return ref{hash: *s.Hid, size: s.HSize, ok: true}
}

func rootEntry(s *state) tree.Entry {
	return tree.Entry{Name: "root", Kind: tree.KindDir, Mode: s.Mode, MTime: storableTime(s.MTime), Size: s.Size, Hash: s.Pub}
}

func dirSize(ctx context.Context, g tree.Getter, h blockstore.Hash) (uint64, error) {
	es, err := tree.ListDir(ctx, g, h)
	var n uint64
	for _, e := range es {
		n += e.Size
	}
	return n, err
}

// commit builds the working tree and makes it durable: blocks synced,
// then the state (with the held-back tree), then the root.
func (o *origin) commit(ctx context.Context) error {
	o.commitMu.Lock()
	defer o.commitMu.Unlock()
	w := o.w
	w.mu.Lock()
	gen := w.gen
	pub, hid, err := w.build(ctx, w.root, true)
	next := state{Version: 1, Pub: pub.hash, Size: pub.size, Mode: w.root.mode, MTime: w.root.mtime}
	w.mu.Unlock()
	if err != nil {
		o.failed(gen, err)
		return err
	}
	if hid.ok {
		next.Hid, next.HSize = &hid.hash, hid.size
		next.HeldFiles, next.HeldBytes = o.last.HeldFiles, o.last.HeldBytes
		if !sameHash(next.Hid, o.last.Hid) {
			if next.HeldFiles, next.HeldBytes, err = countFiles(ctx, o.cfg.Store, hid.hash); err != nil {
				o.failed(gen, err)
				return err
			}
		}
	}
	if o.last.Version != 0 {
		base := o.last.Pub
		next.Base = &base
	}
	samePub := o.last.Version != 0 && next.Pub == o.last.Pub && next.Mode == o.last.Mode && next.MTime.Equal(o.last.MTime)
	if samePub && sameHash(next.Hid, o.last.Hid) {
		o.done(gen)
		return nil
	}
	if err := o.cfg.Store.Sync(ctx); err != nil {
		o.failed(gen, err)
		return fmt.Errorf("mount: sync blocks: %w", err)
	}
	if err := writeState(o.cfg.StateDir, &next); err != nil {
		o.failed(gen, err)
		return err
	}
	if !samePub {
		r, err := o.cfg.Publisher.Publish(ctx, rootEntry(&next))
		if err != nil {
			o.failed(gen, err)
			return fmt.Errorf("mount: publish: %w", err)
		}
		o.cfg.Logger.Info("mount: committed", "seq", r.Seq, "tree", r.Tree.Short())
	}
	o.last = next
	o.done(gen)
	return nil
}

func sameHash(a, b *blockstore.Hash) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (o *origin) done(gen uint64) {
	o.smu.Lock()
	if gen > o.durable {
		o.durable = gen
	}
	o.smu.Unlock()
	o.cond.Broadcast()
}

func (o *origin) failed(gen uint64, err error) {
	o.cfg.Logger.Error("mount: commit failed; retrying after the next change or quiet period", "err", err)
	o.smu.Lock()
	o.failGen, o.failErr = gen, err
	o.smu.Unlock()
	o.cond.Broadcast()
}

// waitDurable asks for a commit now and waits until every change up to
// gen is durable, or the commit that covered it failed.
func (o *origin) waitDurable(gen uint64) error {
	select {
	case o.now <- struct{}{}:
	default:
	}
	o.smu.Lock()
	defer o.smu.Unlock()
	for o.durable < gen {
		if o.failGen >= gen && o.failErr != nil {
			return o.failErr
		}
		select {
		case <-o.loopDone:
			return errors.New("mount: stopped before the commit")
		default:
		}
		o.cond.Wait()
	}
	return nil
}

// run commits after a quiet period (at most MaxDelay after the first
// change), or at once when asked, until ctx ends.
func (o *origin) run(ctx context.Context) {
	defer func() {
		close(o.loopDone)
		o.cond.Broadcast()
	}()
	var timer *time.Timer
	var fire <-chan time.Time
	var first time.Time
	arm := func(d time.Duration) {
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		fire = timer.C
	}
	commit := func() {
		first = time.Time{}
		fire = nil
		if err := o.commit(ctx); err != nil && ctx.Err() == nil {
			arm(o.cfg.Quiet)
			first = time.Now()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.w.changed:
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			arm(max(0, min(o.cfg.Quiet, first.Add(o.cfg.MaxDelay).Sub(now))))
		case <-o.now:
			commit()
		case <-fire:
			commit()
		}
	}
}

// Active describes a running mount of a data directory.
type Active struct {
	At  string `json:"at"`  // the tree path mounted
	Dir string `json:"dir"` // the mount point
	PID int    `json:"pid"`
}

const activeFile = "active"

// holdActive records that this process mounts at under stateDir; the
// returned file holds an flock for as long as the mount runs (the kernel
// drops it when the process dies, so a killed mount is never "active").
func holdActive(stateDir string, a Active) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(stateDir, activeFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if cur, ok := readActive(stateDir); ok {
			return nil, fmt.Errorf("tree path %s is already mounted at %s by gritsd (pid %d): %w", cur.At, cur.Dir, cur.PID, ErrMounted)
		}
		return nil, fmt.Errorf("tree path %s is already mounted by another gritsd: %w", a.At, ErrMounted)
	}
	b, _ := json.Marshal(a)
	if err := f.Truncate(0); err == nil {
		f.WriteAt(b, 0)
	}
	return f, nil
}

func readActive(stateDir string) (Active, bool) {
	var a Active
	b, err := os.ReadFile(filepath.Join(stateDir, activeFile))
	if err != nil || json.Unmarshal(b, &a) != nil {
		return a, false
	}
	return a, true
}

// ActiveMounts lists the mounts running on the data directory whose
// mount state lives under stateRoot. gc must not run beside one (blocks
// it wrote may not be in any root yet), and import must not write into
// a mounted path.
func ActiveMounts(stateRoot string) ([]Active, error) {
	des, err := os.ReadDir(stateRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Active
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		dir := filepath.Join(stateRoot, de.Name())
		f, err := os.Open(filepath.Join(dir, activeFile))
		if err != nil {
			continue
		}
		lerr := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		f.Close()
		if lerr == nil {
			continue // nobody holds it
		}
		a, _ := readActive(dir)
		out = append(out, a)
	}
	return out, nil
}

// StateDirFor is the state directory of the mount of tree path at under
// stateRoot.
func StateDirFor(stateRoot string, at tree.Path) string {
	h := blockstore.Sum([]byte(at.String()))
	return filepath.Join(stateRoot, h.Hex()[:16])
}

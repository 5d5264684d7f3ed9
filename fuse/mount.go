package fuse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/grits-cdn/grits/tree"
)

// ErrMounted is returned when the mount point already has a live mount.
var ErrMounted = errors.New("already mounted")

// Mount is a mounted grits file system.
type Mount struct {
	dir    string
	ctx    context.Context // store operations; ends after the last commit
	cancel context.CancelFunc
	server *fuse.Server
	log    *slog.Logger
	uid    uint32
	gid    uint32

	origin     *origin
	staging    string
	statfsPath string
	loopCancel context.CancelFunc
	memStaged  atomic.Int64 // bytes reserved by in-memory stages
	active     *os.File     // holds the flock that marks the mount running
	replica    *replica
}

// Dir is the mount point.
func (m *Mount) Dir() string { return m.dir }

// kernelTimeout is how long the kernel may trust what it was told about
// names and attributes. On the origin every change passes through the
// mount, so the kernel's cache is never wrong there; read-only mounts
// invalidate explicitly when a root changes.
const kernelTimeout = time.Second

// originKernelTimeout is the same on the origin's mount, where only the
// kernel changes the tree.
const originKernelTimeout = time.Minute

// mountOptions: other users may use the mount (the application writing
// media runs as its own user, the web server reading it as another), and
// the kernel checks the mode bits against the owner the mount reports.
func mountOptions(name string) fuse.MountOptions {
	return fuse.MountOptions{
		DirectMount:   true, // no fusermount needed when running as root
		FsName:        "grits",
		Name:          name,
		MaxWrite:      1 << 20,
		MaxReadAhead:  1 << 20,
		MaxBackground: 64,
		AllowOther:    os.Geteuid() == 0,
		// A tree entry has no room for extended attributes. Saying so
		// once (ENOSYS: the kernel answers EOPNOTSUPP from then on)
		// spares ls -l two round trips a file asking for ACLs.
		DisableXAttrs: true,
		Options:       []string{"default_permissions"},
	}
}

// Owner is the user and group every entry of a mount belongs to: the
// tree stores no ownership.
type Owner struct {
	UID, GID uint32
}

func ownerOr(o *Owner) (uint32, uint32) {
	if o == nil {
		return uint32(os.Getuid()), uint32(os.Getgid())
	}
	return o.UID, o.GID
}

// MountOrigin mounts the origin's working tree read-write at dir. A
// stale mount left there by a process that died is cleared first (and
// logged); a live one is ErrMounted.
func MountOrigin(ctx context.Context, dir string, cfg OriginConfig) (*Mount, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	active, err := holdActive(cfg.StateDir, Active{At: cfg.At, Dir: dir, PID: os.Getpid()})
	if err != nil {
		return nil, err
	}
	o, err := openOrigin(ctx, cfg)
	if err != nil {
		active.Close()
		return nil, err
	}
	cfg = o.cfg
	uid, gid := ownerOr(cfg.Owner)
	m := &Mount{dir: dir, log: cfg.Logger, uid: uid, gid: gid, active: active,
		origin: o, staging: filepath.Join(cfg.StateDir, "staging"), statfsPath: cfg.StatfsPath}
	m.ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.replica = snapshotReader(m, o.w.reader)
	o.w.mu.Lock()
	err = o.w.load(m.ctx, o.w.root)
	o.w.mu.Unlock()
	if err == nil {
		err = ClearStale(dir, m.log)
	}
	if err != nil {
		m.cancel()
		active.Close()
		return nil, fmt.Errorf("mount: %w", err)
	}
	// Every change to the origin's tree passes through this kernel, so
	// what it caches (names, absent names, attributes, written pages) is
	// never stale: it may keep it long, and gather small writes into
	// large ones (writeback cache; close and fsync still write back
	// first, so close-to-open and fsync hold).
	long := originKernelTimeout
	mo := mountOptions("grits")
	mo.ExtraCapabilities = fuse.CAP_WRITEBACK_CACHE
	opts := &fs.Options{MountOptions: mo, EntryTimeout: &long, AttrTimeout: &long, NegativeTimeout: &long,
		UID: m.uid, GID: m.gid, RootStableAttr: &fs.StableAttr{Ino: 1}, NullPermissions: true}
	m.server, err = fs.Mount(dir, &rwNode{m: m, n: o.w.root}, opts)
	if err != nil {
		m.cancel()
		active.Close()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	loopCtx, loopCancel := context.WithCancel(m.ctx)
	m.loopCancel = loopCancel
	go o.run(loopCtx)
	return m, nil
}

// Commit makes every change so far durable now (what fsync of the mount
// root does).
func (m *Mount) Commit() error {
	if m.origin == nil {
		return nil
	}
	return m.origin.commit(m.ctx)
}

// Close commits what is pending, unmounts (lazily when files are still
// open, waiting until they are closed, or ctx ends), and commits what
// the last writers flushed. Nothing written and closed is lost.
func (m *Mount) Close(ctx context.Context) error {
	var errs []error
	if m.origin != nil {
		if err := m.origin.commit(m.ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.server.Unmount(); err != nil {
		m.log.Warn("mount: files are still open; unmounting lazily and waiting for them to close", "dir", m.dir, "err", err)
		if err := syscall.Unmount(m.dir, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.dir, err))
		}
		done := make(chan struct{})
		go func() { m.server.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("unmount %s: files still open: %w", m.dir, ctx.Err()))
		}
	}
	if m.replica != nil {
		m.replica.close()
	}
	if m.origin != nil {
		m.loopCancel()
		<-m.origin.loopDone
		if err := m.origin.flushAll(m); err != nil {
			errs = append(errs, err)
		}
		if err := m.origin.commit(m.ctx); err != nil {
			errs = append(errs, err)
		}
	}
	m.cancel()
	if m.active != nil {
		m.active.Close()
	}
	return errors.Join(errs...)
}

// flushAll chunks every file that still has unflushed writes (a writer
// that was killed, or files still open at a forced unmount).
func (o *origin) flushAll(m *Mount) error {
	var staged []*node
	o.w.mu.Lock()
	var walk func(d *node)
	walk = func(d *node) {
		for _, c := range d.children {
			switch c.kind {
			case tree.KindDir:
				walk(c)
			default:
				staged = append(staged, c)
			}
		}
	}
	walk(o.w.root)
	o.w.mu.Unlock()
	var errs []error
	for _, n := range staged {
		n.cmu.Lock()
		if n.stage != nil {
			errs = append(errs, m.chunk(n))
			m.dropStage(n)
		}
		n.cmu.Unlock()
	}
	return errors.Join(errs...)
}

func (m *Mount) statfs(out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(m.statfsPath, &st); err != nil {
		return syscall.EIO
	}
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
	out.Files, out.Ffree = st.Files, st.Ffree
	out.Bsize, out.Frsize = uint32(st.Bsize), uint32(st.Frsize)
	out.NameLen = 255
	return 0
}

// ClearStale looks for a mount at dir. A dead one (its process was
// killed: the kernel answers ENOTCONN) is detached and logged; a live
// one is ErrMounted.
func ClearStale(dir string, log *slog.Logger) error {
	mounted, err := isMountPoint(dir)
	if err != nil || !mounted {
		return err
	}
	_, serr := os.Stat(dir)
	if !errors.Is(serr, syscall.ENOTCONN) && !errors.Is(serr, syscall.ECONNABORTED) {
		return fmt.Errorf("%s: %w (unmount it first: umount %s)", dir, ErrMounted, dir)
	}
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("%s: a stale mount left by a process that died is there and cannot be cleared: %w (try umount -l %s)", dir, err, dir)
	}
	log.Warn("mount: cleared a stale mount left by a process that died", "dir", dir)
	return nil
}

// isMountPoint reports whether /proc/self/mountinfo lists dir.
func isMountPoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if unescapeMount(fields[4]) == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

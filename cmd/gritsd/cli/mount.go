package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grits-cdn/grits/fuse"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/node"
	"github.com/grits-cdn/grits/tree"
)

const mountStateDir = node.MountStateDir

func runMount(ctx context.Context, c *cmdContext) error {
	at := c.flags.String("at", "/", "origin: the tree path the mount shows")
	quiet := c.flags.Duration("quiet", time.Second, "origin: commit changes as one root once the mount has been quiet this long")
	publish := c.flags.String("publish", "", "origin: which entries are published: world-readable (default: what a web server would serve) or all")
	owner := c.flags.String("owner", "", "USER[:GROUP] every entry belongs to, e.g. the application that writes there (default: yours)")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	mc, err := mountConfig(c.args[0], *at, *quiet, *publish, *owner)
	if err != nil {
		return err
	}
	atPath, rule := mc.At, mc.Publish
	if err := c.setLogging("info"); err != nil {
		return err
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if d.Config.Role != datadir.RoleOrigin {
		return fmt.Errorf("gritsd mount alone mounts an origin's tree; on a %s run gritsd serve --mount %s (the mount needs the swarm)", d.Config.Role, c.args[0])
	}
	m, err := mountOrigin(ctx, d, mc, c.logger)
	if err != nil {
		return err
	}
	c.errorf("mounted %s at %s (read-write, publishing %s; Ctrl-C or SIGTERM unmounts)\n", atPath, m.Dir(), rule)
	<-ctx.Done()
	c.errorf("unmounting %s\n", m.Dir())
	// The signal ended ctx; the flush and unmount get their own bound
	// (a second signal forces exit).
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := m.Close(cctx); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	c.errorf("unmounted %s; every change is committed\n", m.Dir())
	return nil
}

// parseOwner reads USER[:GROUP] (names or numbers); "" is nil (the
// process's own user).
func parseOwner(s string) (*fuse.Owner, error) {
	if s == "" {
		return nil, nil
	}
	name, group, hasGroup := strings.Cut(s, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, usagef("--owner %q: no such user", s)
		}
	}
	gid := u.Gid
	if hasGroup {
		g, err := user.LookupGroup(group)
		if err != nil {
			if g, err = user.LookupGroupId(group); err != nil {
				return nil, usagef("--owner %q: no such group %q", s, group)
			}
		}
		gid = g.Gid
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	g, err2 := strconv.ParseUint(gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, usagef("--owner %q: not a numeric user or group id on this system", s)
	}
	return &fuse.Owner{UID: uint32(uid), GID: uint32(g)}, nil
}

// mountConfig checks the mount flags shared by mount and serve --mount.
func mountConfig(dir, at string, quiet time.Duration, publish, owner string) (node.MountConfig, error) {
	o, err := parseOwner(owner)
	if err != nil {
		return node.MountConfig{}, err
	}
	atPath, err := tree.ParsePath(at)
	if err != nil {
		return node.MountConfig{}, usagef("--at: %v", err)
	}
	rule, err := fuse.ParsePublishRule(publish)
	if err != nil {
		return node.MountConfig{}, usagef("--publish: %v", err)
	}
	if quiet <= 0 {
		return node.MountConfig{}, usagef("quiet period %v: must be positive", quiet)
	}
	return node.MountConfig{Dir: dir, At: atPath, Quiet: quiet, Publish: rule, Owner: o}, nil
}

// mountOrigin mounts the origin's tree read-write, standalone: its roots
// go to a running daemon through the admin socket, as import's do.
func mountOrigin(ctx context.Context, d *datadir.Dir, mc node.MountConfig, logger *slog.Logger) (*fuse.Mount, error) {
	lock := func(ctx context.Context, fn func(*datadir.Dir) error) error {
		if err := lockWaiting(ctx, d); err != nil {
			return err
		}
		defer d.Unlock()
		return fn(d)
	}
	committed := func(tree.Root) {
		if err := pokeDaemon(ctx, d); err != nil {
			logger.Debug("no running daemon took the new root", "err", err)
		}
	}
	return node.MountOrigin(ctx, d, mc, lock, committed, logger)
}

// lockWaiting takes the data directory's lock, waiting (bounded) while
// a short command (import, the daemon's re-signing) holds it.
func lockWaiting(ctx context.Context, d *datadir.Dir) error {
	deadline := time.Now().Add(node.MountLockWait)
	wait := 10 * time.Millisecond
	for {
		err := d.Lock()
		if err == nil || !errors.Is(err, datadir.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// heldBackRoots returns the mounts' held-back trees as pseudo-roots
// (seq 0) for gc and fsck to walk.
func heldBackRoots(d *datadir.Dir) ([]tree.Root, error) {
	hs, err := fuse.HeldBackRoots(d.FilePath(mountStateDir))
	if err != nil {
		return nil, fmt.Errorf("mount state: %w", err)
	}
	var out []tree.Root
	for _, h := range hs {
		out = append(out, tree.Root{Tree: h})
	}
	return out, nil
}

// refuseWhileMounted fails when a mount runs on d: it writes blocks that
// no root names until its next commit.
func refuseWhileMounted(d *datadir.Dir, what string) error {
	as, err := fuse.ActiveMounts(d.FilePath(mountStateDir))
	if err != nil || len(as) == 0 {
		return err
	}
	return fmt.Errorf("%s: tree path %s is mounted at %s (gritsd pid %d); unmount it first", what, as[0].At, as[0].Dir, as[0].PID)
}

// refuseMountedPath fails when p is inside or above a mounted tree path:
// the mount owns what is there, and would overwrite an import.
func refuseMountedPath(d *datadir.Dir, p tree.Path) error {
	as, err := fuse.ActiveMounts(d.FilePath(mountStateDir))
	if err != nil {
		return err
	}
	for _, a := range as {
		mp, err := tree.ParsePath(a.At)
		if err != nil {
			continue
		}
		n := min(len(mp), len(p))
		if slices.Equal(mp[:n], p[:n]) {
			return fmt.Errorf("import at %s: tree path %s is mounted at %s (gritsd pid %d); write through the mount, or unmount it first", p, a.At, a.Dir, a.PID)
		}
	}
	return nil
}

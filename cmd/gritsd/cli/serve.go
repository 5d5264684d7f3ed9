package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// DefaultListen is where gritsd serve answers grits/1 (UDP).
const DefaultListen = ":7433"

func runServe(ctx context.Context, c *cmdContext) error {
	listen := c.flags.String("listen", DefaultListen, "UDP address for the grits/1 protocol")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	if *c.logLevel == "" {
		*c.logLevel = "info"
	}
	addr, err := net.ResolveUDPAddr("udp", *listen)
	if err != nil {
		return usagef("--listen %q: %v", *listen, err)
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	// The goroutines below use d; they must be gone before it closes,
	// however Serve ends.
	ctx, cancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	cert, err := transport.Certificate(d.NodeKey)
	if err != nil {
		return err
	}
	roots := d.FollowRoots(ctx, time.Second)
	bg.Go(func() { <-roots.Done() })
	srv, err := transport.NewServer(transport.ServerConfig{Identity: cert, Store: d.Store, Roots: roots, Logger: c.logger.With("component", "transport")})
	if err != nil {
		return err
	}
	pc, err := net.ListenUDP("udp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	defer pc.Close()
	latest := "none yet"
	if r, ok := roots.Latest(); ok {
		latest = fmt.Sprintf("seq %d, tree %s", r.Seq, r.Tree)
	}
	c.logger.Info("gritsd serving", "role", d.Config.Role, "listen", pc.LocalAddr().String(),
		"node", tree.PublicKeyOf(d.NodeKey).String(), "site", d.Config.SiteKey.String(), "root", latest)
	// Scripts and tests wait for this line to know the port.
	c.errorf("listening on %s\n", pc.LocalAddr())
	if d.Config.Role == datadir.RoleOrigin {
		bg.Go(func() { keepRootFresh(ctx, c, d, roots) })
	}
	if err := srv.Serve(ctx, pc); err != nil {
		return err
	}
	c.logger.Info("gritsd stopped", "requests", srv.Stats().Requests)
	return nil
}

// keepRootFresh re-signs the current tree before its root expires, so an
// origin that publishes nothing new keeps serving a valid root. It skips a
// round when an import holds the lock (the import signs a fresh root).
func keepRootFresh(ctx context.Context, c *cmdContext, d *datadir.Dir, roots *datadir.RootFollower) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if r, ok := roots.Latest(); ok && time.Until(r.Expires) < d.Config.RootTTL.Duration/4 {
			if err := d.Lock(); err == nil {
				if cur, ok := d.Log.Latest(); ok && cur.Seq == r.Seq {
					nr, err := d.Commit(ctx, r.Tree, time.Now())
					if err != nil {
						c.logger.Error("re-signing the root failed", "err", err)
					} else {
						roots.Offer(nr)
						c.logger.Info("re-signed the root before it expires", "seq", nr.Seq, "expires", nr.Expires)
					}
				}
				d.Unlock()
			} else if !errors.Is(err, datadir.ErrLocked) {
				c.logger.Warn("cannot take the lock to re-sign the root", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

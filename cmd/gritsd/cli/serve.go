package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/grits-cdn/grits/fuse"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// DefaultListen is where gritsd serve answers grits/1 (UDP); gossip
// defaults to the next port.
const DefaultListen = ":7433"

func runServe(ctx context.Context, c *cmdContext) error {
	listenFlag := c.flags.String("listen", "", "UDP address for the grits/1 protocol (default: config listen, else "+DefaultListen+")")
	gossipFlag := c.flags.String("gossip", "", "address for swarm gossip, TCP and UDP (default: config gossip, else the listen port + 1)")
	advertiseFlag := c.flags.String("advertise", "", "host other nodes reach this one at (default: config advertise, else the listen host)")
	urlFlag := c.flags.String("url", "", "public HTTPS base URL of this node for browsers (default: config public_url)")
	profileFlag := c.flags.String("gossip-profile", "", "gossip timers: lan, wan or local (default: config gossip_profile, else lan)")
	wflags := addWebFlags(c)
	if err := c.parse(0, 0); err != nil {
		return err
	}
	if _, err := wflags.swSettings(""); err != nil {
		return err
	}
	if *c.logLevel == "" {
		*c.logLevel = "info"
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := d.Config
	listen := first(*listenFlag, cfg.Listen, DefaultListen)
	addr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return usagef("--listen %q: %v", listen, err)
	}
	gossip := first(*gossipFlag, cfg.Gossip)
	if gossip == "" {
		port := 0
		if addr.Port != 0 {
			port = addr.Port + 1
		}
		gossip = net.JoinHostPort(hostOf(listen), strconv.Itoa(port))
	}
	if _, _, err := net.SplitHostPort(gossip); err != nil {
		return usagef("--gossip %q: want HOST:PORT", gossip)
	}
	advertise := first(*advertiseFlag, cfg.Advertise)
	if *wflags.https == "" && cfg.HTTPSListen == "" && addr.Port == 0 {
		// A node on a random port (tests, several on one machine) gets
		// a random HTTPS port too.
		*wflags.https = net.JoinHostPort(hostOf(listen), "0")
	}
	if *wflags.watch != "" {
		if !origin0(cfg) {
			return usagef("--watch is for the origin")
		}
		if st, err := os.Stat(*wflags.watch); err != nil || !st.IsDir() {
			return usagef("--watch %q: not a directory", *wflags.watch)
		}
	}
	profile := membership.Profile(first(*profileFlag, cfg.GossipProfile))
	origin := cfg.Role == datadir.RoleOrigin

	// The node's credential: an origin issues its own; others got theirs
	// from gritsd join.
	var cert membership.NodeCert
	if origin {
		cert, err = membership.IssueCert(d.SiteKey, tree.PublicKeyOf(d.NodeKey), membership.RoleOrigin, time.Now(), certTTL(d))
	} else {
		cert, err = loadCert(d)
	}
	if err != nil {
		return err
	}
	ring, err := loadRing(d)
	if err != nil {
		return err
	}
	if !origin {
		// A cache or storage node appends the roots it accepts: it must
		// be the only writer for as long as it runs.
		if err := d.Lock(); err != nil {
			return fmt.Errorf("%w (stop the other command first; a serving node holds the lock while it runs)", err)
		}
		defer d.Unlock()
	}
	ident, err := transport.CertificateWithCredential(d.NodeKey, cert.Encode())
	if err != nil {
		return err
	}

	// The goroutines below use d; they must be gone before it closes,
	// however Serve ends.
	ctx, cancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()

	wb, err := listenWeb(ctx, c, d, wflags, advertise, first(*urlFlag, cfg.PublicURL))
	if err != nil {
		return err
	}
	publicURL := ""
	if wb != nil {
		publicURL = wb.url
	}

	var swarm *membership.Swarm
	client, err := transport.NewClient(transport.ClientConfig{SiteKey: cfg.SiteKey, Identity: &ident,
		DialTimeout: 3 * time.Second, StallTimeout: 10 * time.Second, Logger: c.logger.With("component", "client"),
		VerifyServer: func(id transport.NodeID, cred []byte) error { return swarm.VerifyServer(id, cred) }})
	if err != nil {
		return err
	}
	defer client.Close()

	pc, err := net.ListenUDP("udp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	protoAddr := net.JoinHostPort(first(advertise, specificHost(listen)), strconv.Itoa(port))

	var rootLog membership.RootLog
	var serverRoots transport.Roots
	var follower *datadir.RootFollower
	if origin {
		follower = d.FollowRoots(ctx, 250*time.Millisecond)
		bg.Go(func() { <-follower.Done() })
		or := &originRoots{f: follower, path: d.FilePath("roots.log")}
		rootLog, serverRoots = or, or
	} else {
		rootLog, serverRoots = d.Log, d.Log
	}
	gossipAdvertise := ""
	if advertise != "" {
		_, gp, _ := net.SplitHostPort(gossip)
		gossipAdvertise = net.JoinHostPort(advertise, gp)
	}
	seeds := cfg.Seeds
	swarm, err = membership.Start(ctx, membership.Config{NodeKey: d.NodeKey, Site: cfg.SiteKey, Cert: cert,
		Gossip: gossip, Advertise: gossipAdvertise, ProtoAddr: protoAddr, URL: publicURL,
		Capacity: uint64(max(cfg.CacheQuota, 0)), Pins: cfg.Pins, Ring: ring, Seeds: seeds, Profile: profile,
		Replication: cfg.Replication, Roots: rootLog, Client: client, OriginAddr: cfg.OriginAddr,
		SaveRing: func(k membership.Keyring) error { return d.WriteFile(ringFile, k.Encode(), 0o600) },
		Logger:   c.logger.With("component", "swarm")})
	if err != nil {
		return err
	}
	defer swarm.Close()

	fetcher := membership.NewFetcher(swarm, d.Store, client, 30*time.Second, c.logger.With("component", "fetch"))
	scfg := transport.ServerConfig{Identity: ident, Store: fetcher, Roots: serverRoots,
		Authorize: swarm.Authorize, SwarmKeys: swarm.KeysFor, Logger: c.logger.With("component", "transport")}
	if origin {
		scfg.Store = d.Store
		enrol, err := membership.NewEnroller(d.SiteKey, swarm, d.FilePath(usedFile), certTTL(d), c.logger.With("component", "enroll"))
		if err != nil {
			return err
		}
		scfg.Enroll = enrol.Enroll
	}
	srv, err := transport.NewServer(scfg)
	if err != nil {
		return err
	}
	swarm.SetServer(srv)

	var keeper *membership.Keeper
	if !origin {
		var pins []string
		if cfg.Role == datadir.RoleStorage {
			pins = cfg.Pins
			if len(pins) == 0 {
				pins = []string{"/"}
			}
		}
		keeper = membership.NewKeeper(membership.KeeperConfig{Swarm: swarm, Fetcher: fetcher, Store: d.Store, Pins: pins,
			StatePath: d.FilePath(syncFile), WarmMax: cfg.WarmMaxBytes, WarmRate: cfg.WarmRateBytes, PinRate: cfg.PinRateBytes,
			Logger: c.logger.With("component", "keeper")})
		bg.Go(func() { keeper.Run(ctx) })
	} else {
		bg.Go(func() { announceRoots(ctx, swarm, follower) })
		bg.Go(func() { watchRing(ctx, c, d, swarm) })
		bg.Go(func() { keepRootFresh(ctx, c, d, follower) })
	}
	bg.Go(func() { reportLoad(ctx, swarm, srv) })
	if wb != nil {
		if err := wb.start(c, d, wflags, scfg.Store, serverRoots, swarm); err != nil {
			return err
		}
		bg.Go(func() {
			if err := wb.srv.Serve(ctx); err != nil {
				c.logger.Error("https stopped", "err", err)
				cancel()
			}
		})
	}
	if *wflags.watch != "" {
		bg.Go(func() { watchImport(ctx, c, d, *wflags.watch, *wflags.watchQuiet) })
	}
	var reread func(context.Context) error
	if follower != nil {
		reread = follower.Reread
	}
	if err := serveAdmin(ctx, d, func() Status { return nodeStatus(d, swarm, fetcher, srv, serverRoots, wb) }, reread); err != nil {
		return err
	}

	latest := "none yet"
	if r, ok := serverRoots.Latest(); ok {
		latest = fmt.Sprintf("seq %d, tree %s", r.Seq, r.Tree)
	}
	c.logger.Info("gritsd serving", "role", cfg.Role, "listen", pc.LocalAddr().String(), "advertise", protoAddr,
		"gossip", swarm.GossipAddr(), "node", tree.PublicKeyOf(d.NodeKey).String(), "site", cfg.SiteKey.String(), "root", latest)
	// Scripts and tests wait for these lines to know the ports.
	c.errorf("gossip on %s\n", swarm.GossipAddr())
	if wb != nil {
		c.errorf("https on %s (%s)\n", wb.srv.Addr(), wb.url)
	}
	c.errorf("listening on %s\n", pc.LocalAddr())
	if err := srv.Serve(ctx, pc); err != nil {
		return err
	}
	c.logger.Info("gritsd stopped", "requests", srv.Stats().Requests)
	return nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func hostOf(hostport string) string {
	h, _, _ := net.SplitHostPort(hostport)
	return h
}

// specificHost is the listen host if it names one address, else "" (the
// swarm then advertises the address its gossip chose).
func specificHost(listen string) string {
	h := hostOf(listen)
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		return ""
	}
	return h
}

// originRoots gives the origin's swarm and server the latest root from
// the follower (imports append in another process) and the history from
// the log file.
type originRoots struct {
	f    *datadir.RootFollower
	path string
}

func (o *originRoots) Latest() (tree.Root, bool) { return o.f.Latest() }

func (o *originRoots) Append(context.Context, tree.Root) error {
	return errors.New("the origin's roots come from gritsd import")
}

func (o *originRoots) Roots() []tree.Root {
	l, err := tree.ReadLog(context.Background(), o.path)
	if err != nil {
		if r, ok := o.f.Latest(); ok {
			return []tree.Root{r}
		}
		return nil
	}
	defer l.Close()
	return l.Roots()
}

// announceRoots spreads each root an import commits.
func announceRoots(ctx context.Context, s *membership.Swarm, f *datadir.RootFollower) {
	var seq uint64
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if r, ok := f.Latest(); ok && r.Seq > seq {
			seq = r.Seq
			s.Announce(r)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchRing puts a ban (gritsd ban rewrites the keyring file) into force.
func watchRing(ctx context.Context, c *cmdContext, d *datadir.Dir, s *membership.Swarm) {
	var lastMod time.Time
	var lastSize int64 = -1
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(d.FilePath(ringFile))
		if err != nil || st.ModTime().Equal(lastMod) && st.Size() == lastSize {
			continue
		}
		lastMod, lastSize = st.ModTime(), st.Size()
		k, err := loadRing(d)
		if err != nil {
			c.logger.Error("cannot read the swarm keys", "err", err)
			continue
		}
		if err := s.Adopt(k); err != nil {
			c.logger.Error("cannot put the new ban list in force", "err", err)
		}
	}
}

// reportLoad advertises how busy this node is: requests per second
// against a nominal 2,000, in percent.
func reportLoad(ctx context.Context, s *membership.Swarm, srv *transport.Server) {
	const every = 5 * time.Second
	t := time.NewTicker(every)
	defer t.Stop()
	last := srv.Stats().Requests
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := srv.Stats().Requests
		rate := float64(n-last) / every.Seconds()
		last = n
		s.Update(func(m *membership.Meta) { m.Load = uint8(min(100, rate/20)) })
	}
}

func origin0(cfg datadir.Config) bool { return cfg.Role == datadir.RoleOrigin }

func nodeStatus(d *datadir.Dir, s *membership.Swarm, f *membership.Fetcher, srv *transport.Server, roots transport.Roots, wb *web) Status {
	st := Status{Node: s.ID(), Role: d.Config.Role, Site: d.Config.SiteKey, Upstream: f.Stats()}
	ss := srv.Stats()
	st.Served = ServedStats{Requests: ss.Requests, Blocks: ss.Blocks, Lookups: ss.Lookups, Bytes: ss.BytesSent, Refused: ss.Refused}
	if wb != nil {
		st.URL = wb.url
		st.Served.HTTPRequests, st.Served.HTTPBytes, st.Served.HTTP3Requests = wb.requests.Load(), wb.bytes.Load(), wb.h3.Load()
		st.Served.HTTPByKind = wb.byKind()
		st.Reports = wb.reportList()
	}
	if d.Config.Role == datadir.RoleOrigin {
		if files, bytes, err := fuse.HeldBack(d.FilePath(mountStateDir)); err == nil && (files > 0 || bytes > 0) {
			st.HeldBack = &StatusHeld{Files: files, Bytes: bytes}
		}
	}
	var seq uint64
	if r, ok := roots.Latest(); ok {
		seq = r.Seq
		st.Root = &StatusRoot{Seq: r.Seq, Hash: r.Hash().String(), Tree: r.Tree.String(), Expires: r.Expires}
	}
	if b := s.Bans(); b != nil {
		st.Bans, st.BanList = len(b.Nodes), int64(b.Version)
	}
	for _, m := range s.Members() {
		if holdsAll(m, seq) {
			st.Replicas++
		}
		st.Members = append(st.Members, StatusMember{ID: m.ID, Role: m.Role.String(), State: string(m.State), Since: m.Since,
			Addr: m.Meta.ProtoAddr, URL: m.Meta.URL, RootSeq: m.Meta.RootSeq, Complete: m.Meta.Complete, Lacking: m.Meta.Lacking,
			Pins: m.Meta.Pins, Load: m.Meta.Load, Capacity: m.Meta.Capacity, Self: m.Self})
	}
	return st
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

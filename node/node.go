package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/grits-cdn/grits/admin"
	"github.com/grits-cdn/grits/fuse"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/offload"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// Node is one running gritsd node.
type Node struct {
	cfg    Config
	dir    *datadir.Dir
	log    *slog.Logger
	origin bool

	client    *transport.Client
	server    *transport.Server
	swarm     *membership.Swarm
	fetcher   *membership.Fetcher
	refs      *membership.Refs // nil on the origin
	keeper    *membership.Keeper
	offload   *offload.Manager // origin only
	store     tree.Getter      // what grits/1 and the gateway read
	roots     transport.Roots
	follower  *datadir.RootFollower // origin only
	web       *web                  // nil with HTTPS off
	devTLS    *devTLS               // nil unless a development certificate serves
	admin     *adminServer
	mount     *fuse.Mount    // nil without --mount
	metrics   *admin.Metrics // the admin listener's instruments, fed by the hot paths
	adminHTTP *admin.Server  // nil when off
	started   time.Time
	pc        *net.UDPConn
	protoAddr string

	ctx     context.Context
	cancel  context.CancelFunc
	bg      sync.WaitGroup
	closers []func() error
	closed  sync.Once
	lockMu  sync.Mutex // serializes this process's users of the data directory lock

	reloadMu sync.Mutex // one Reload at a time; it alone changes cfg.Web and seeds
	certs    certSlot   // the TLS pair from files, when TLS comes from files
	seeds    []string
}

// Start assembles the node described by cfg and starts its background
// jobs; every listening socket is bound when it returns. On error
// everything it started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Dir == nil {
		return nil, errors.New("node: no data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := cfg.Dir
	dc := d.Config
	n := &Node{cfg: cfg, dir: d, log: cfg.Logger, origin: dc.Role == datadir.RoleOrigin, metrics: admin.NewMetrics(), started: time.Now(), seeds: dc.Seeds}
	n.ctx, n.cancel = context.WithCancel(ctx)
	n.closers = append(n.closers, func() error { n.cancel(); n.bg.Wait(); return nil })
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	listen := first(cfg.Listen, dc.Listen, DefaultListen)
	addr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, configErrorf("--listen %q: %v", listen, err)
	}
	gossip := first(cfg.Gossip, dc.Gossip)
	if gossip == "" {
		port := 0
		if addr.Port != 0 {
			port = addr.Port + 1
		}
		gossip = net.JoinHostPort(hostOf(listen), strconv.Itoa(port))
	}
	if _, _, err := net.SplitHostPort(gossip); err != nil {
		return nil, configErrorf("--gossip %q: want HOST:PORT", gossip)
	}
	advertise := first(cfg.Advertise, dc.Advertise)
	if cfg.Web.HTTPS == "" && dc.HTTPSListen == "" && addr.Port == 0 {
		// A node on a random port (tests, several on one machine) gets
		// a random HTTPS port too.
		cfg.Web.HTTPS = net.JoinHostPort(hostOf(listen), "0")
		n.cfg.Web.HTTPS = cfg.Web.HTTPS
	}
	if cfg.Watch != "" {
		if !n.origin {
			return nil, configErrorf("--watch is for the origin")
		}
		if st, err := os.Stat(cfg.Watch); err != nil || !st.IsDir() {
			return nil, configErrorf("--watch %q: not a directory", cfg.Watch)
		}
	}
	profile := membership.Profile(first(string(cfg.Profile), dc.GossipProfile))

	// The node's credential: an origin issues its own; others got theirs
	// from gritsd join.
	var cert membership.NodeCert
	if n.origin {
		cert, err = membership.IssueCert(d.SiteKey, tree.PublicKeyOf(d.NodeKey), membership.RoleOrigin, time.Now(), CertTTL(d))
	} else {
		cert, err = LoadCert(d)
	}
	if err != nil {
		return nil, err
	}
	ring, err := LoadRing(d)
	if err != nil {
		return nil, err
	}
	if !n.origin {
		// A cache or storage node appends the roots it accepts: it must
		// be the only writer for as long as it runs.
		if err := d.Lock(); err != nil {
			return nil, fmt.Errorf("%w (stop the other command first; a serving node holds the lock while it runs)", err)
		}
		n.closers = append(n.closers, func() error { d.Unlock(); return nil })
	}
	ident, err := transport.CertificateWithCredential(d.NodeKey, cert.Encode())
	if err != nil {
		return nil, err
	}

	if n.web, err = listenWeb(n.ctx, n, advertise, first(cfg.URL, dc.PublicURL)); err != nil {
		return nil, err
	}
	publicURL := ""
	if n.web != nil {
		publicURL = n.web.url
	}

	verifier := membership.NewVerifier()
	n.client, err = transport.NewClient(transport.ClientConfig{SiteKey: dc.SiteKey, Identity: &ident,
		DialTimeout: 3 * time.Second, StallTimeout: 10 * time.Second, Logger: n.log.With("component", "client"),
		VerifyServer: verifier.VerifyServer})
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, n.client.Close)

	n.pc, err = net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", listen, err)
	}
	n.closers = append(n.closers, n.pc.Close)
	port := n.pc.LocalAddr().(*net.UDPAddr).Port
	n.protoAddr = net.JoinHostPort(first(advertise, specificHost(listen)), strconv.Itoa(port))

	var rootLog membership.RootLog
	var or *originRoots
	if n.origin {
		n.follower = d.FollowRoots(n.ctx, 250*time.Millisecond)
		n.bg.Go(func() { <-n.follower.Done() })
		or = &originRoots{f: n.follower, path: d.FilePath("roots.log")}
		rootLog, n.roots = or, or
	} else {
		rootLog, n.roots = d.Log, d.Log
	}
	gossipAdvertise := ""
	if advertise != "" {
		_, gp, _ := net.SplitHostPort(gossip)
		gossipAdvertise = net.JoinHostPort(advertise, gp)
	}
	n.swarm, err = membership.Start(n.ctx, membership.Config{NodeKey: d.NodeKey, Site: dc.SiteKey, Cert: cert,
		Gossip: gossip, Advertise: gossipAdvertise, ProtoAddr: n.protoAddr, URL: publicURL,
		Capacity: uint64(max(dc.CacheQuota, 0)), Pins: dc.Pins, Ring: ring, Seeds: dc.Seeds, Profile: profile,
		Replication: dc.Replication, Roots: rootLog, Client: n.client, OriginAddr: dc.OriginAddr,
		SnapshotPath: d.FilePath(MembersFile), ForgetAfter: dc.ForgetMembersAfter.Duration, Verifier: verifier,
		SaveRing: func(k membership.Keyring) error { return d.WriteFile(RingFile, k.Encode(), 0o600) },
		Logger:   n.log.With("component", "swarm")})
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, n.swarm.Close)

	n.fetcher = membership.NewFetcher(n.swarm, d.Store, n.client, 30*time.Second, n.log.With("component", "fetch"))
	n.store = n.fetcher
	if n.origin {
		if err := n.startOffload(or); err != nil {
			return nil, err
		}
	} else {
		// Strangers (browsers, gritsd get) make this node fetch only
		// what its trees reference.
		n.refs = membership.NewRefs(n.swarm, n.fetcher, n.log.With("component", "refs"))
		n.fetcher.SetRefs(n.refs)
		n.Go(n.refs.Run)
	}
	grits1Rate := dc.Grits1RateLimit
	if grits1Rate == 0 {
		grits1Rate = DefaultGrits1RateLimit
	}
	scfg := transport.ServerConfig{Identity: ident, Store: n.store, Roots: n.roots,
		Authorize: n.swarm.Authorize, SwarmKeys: n.swarm.KeysFor, Logger: n.log.With("component", "transport"),
		OnAnswer: n.metrics.Answer, RateLimit: grits1Rate, Exempt: membership.IsMemberPeer}
	if n.origin {
		enrol, err := membership.NewEnroller(d.SiteKey, n.swarm, d.FilePath(UsedFile), CertTTL(d), n.log.With("component", "enroll"))
		if err != nil {
			return nil, err
		}
		scfg.Enroll = enrol.Enroll
		scfg.TLSCert = n.issueTLSCert
	}
	if n.server, err = transport.NewServer(scfg); err != nil {
		return nil, err
	}
	n.swarm.SetServer(n.server)

	if !n.origin {
		var pins []string
		if dc.Role == datadir.RoleStorage {
			pins = dc.Pins
			if len(pins) == 0 {
				pins = []string{"/"}
			}
		}
		n.keeper = membership.NewKeeper(membership.KeeperConfig{Swarm: n.swarm, Fetcher: n.fetcher, Store: d.Store, Pins: pins,
			StatePath: d.FilePath(SyncFile), WarmMax: dc.WarmMaxBytes, WarmRate: dc.WarmRateBytes, PinRate: dc.PinRateBytes,
			Logger: n.log.With("component", "keeper")})
		n.Go(n.keeper.Run)
	} else {
		n.Go(n.announceRoots)
		n.Go(n.watchRing)
		n.Go(n.watchGrants)
		n.Go(n.keepRootFresh)
	}
	n.Go(n.reportLoad)
	n.Go(n.reportServed)
	if n.devTLS != nil {
		n.devTLS.start(n.ctx)
	}
	if n.web != nil {
		if err := n.web.start(n); err != nil {
			return nil, err
		}
		if n.origin {
			n.Go(n.followTreePaths)
		}
		n.bg.Go(func() {
			if err := n.web.srv.Serve(n.ctx); err != nil {
				n.log.Error("https stopped", "err", err)
				n.cancel()
			}
		})
	}
	if cfg.Watch != "" {
		n.Go(func(ctx context.Context) { n.watchImport(ctx, cfg.Watch, cfg.WatchQuiet) })
	}
	if cfg.Mount.Dir != "" {
		if err := n.mountTree(cfg.Mount); err != nil {
			return nil, err
		}
	}
	if n.admin, err = n.serveAdmin(); err != nil {
		return nil, err
	}
	if err := n.startAdmin(listen); err != nil {
		return nil, err
	}
	return n, nil
}

// Serve answers grits/1 until ctx (or the node) is done.
func (n *Node) Serve(ctx context.Context) error {
	latest := "none yet"
	if r, ok := n.roots.Latest(); ok {
		latest = fmt.Sprintf("seq %d, tree %s", r.Seq, r.Tree)
	}
	n.log.Info("gritsd serving", "role", n.dir.Config.Role, "listen", n.pc.LocalAddr().String(), "advertise", n.protoAddr,
		"gossip", n.swarm.GossipAddr(), "node", tree.PublicKeyOf(n.dir.NodeKey).String(), "site", n.dir.Config.SiteKey.String(), "root", latest)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()
	if err := n.server.Serve(sctx, n.pc); err != nil {
		return err
	}
	n.log.Info("gritsd stopped", "requests", n.server.Stats().Requests)
	return nil
}

// Close stops the node's jobs and releases what Start took, newest
// first. It is safe to call more than once.
func (n *Node) Close() error {
	var errs []error
	n.closed.Do(func() {
		n.cancel()
		for i := len(n.closers) - 1; i >= 0; i-- {
			if err := n.closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Go runs job in the background until the node stops; Close waits for
// it to return.
func (n *Node) Go(job func(ctx context.Context)) {
	n.bg.Go(func() { job(n.ctx) })
}

// Dir is the node's data directory.
func (n *Node) Dir() *datadir.Dir { return n.dir }

// Logger is the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// IsOrigin reports whether this node is its site's origin.
func (n *Node) IsOrigin() bool { return n.origin }

// Swarm is the node's membership.
func (n *Node) Swarm() *membership.Swarm { return n.swarm }

// Fetcher fetches blocks from the swarm into the node's store.
func (n *Node) Fetcher() *membership.Fetcher { return n.fetcher }

// Client is the node's grits/1 client (it presents the node's
// certificate).
func (n *Node) Client() *transport.Client { return n.client }

// Server is the node's grits/1 server.
func (n *Node) Server() *transport.Server { return n.server }

// Store is what the node serves from: on the origin the data
// directory's store with evicted blocks fetched back from storage nodes
// (Offload), elsewhere the store with pull-through from the swarm.
func (n *Node) Store() tree.Getter { return n.store }

// Roots is the node's view of the latest root and the history.
func (n *Node) Roots() transport.Roots { return n.roots }

// ListenAddr is the bound grits/1 address.
func (n *Node) ListenAddr() net.Addr { return n.pc.LocalAddr() }

// ProtoAddr is the grits/1 address other nodes are told.
func (n *Node) ProtoAddr() string { return n.protoAddr }

// GossipAddr is the address other nodes join through.
func (n *Node) GossipAddr() string { return n.swarm.GossipAddr() }

// HTTPSAddr is the bound browser-facing address ("" with HTTPS off).
func (n *Node) HTTPSAddr() string {
	if n.web == nil {
		return ""
	}
	return n.web.srv.Addr()
}

// URL is the public HTTPS base URL browsers are given ("" with HTTPS
// off).
func (n *Node) URL() string {
	if n.web == nil {
		return ""
	}
	return n.web.url
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

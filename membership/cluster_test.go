package membership

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// cluster is an in-process swarm on loopback: real memberlist gossip,
// real QUIC between nodes, fast timers.
type cluster struct {
	t           testing.TB
	siteKey     ed25519.PrivateKey
	site        tree.PublicKey
	ring        Keyring
	warmMax     int64 // for volunteers' keepers; -1 (the default here) disables warming
	profile     Profile
	replication int
	forgetAfter time.Duration // for the nodes to come; 0 for the default
	capacity    uint64        // advertised by the nodes to come; 0 for 1 GiB
	stall       bool          // the nodes to come take grits/1 requests and never answer
	origin      *node
	nodes       []*node // origin first

	mu      sync.Mutex
	builder *tree.Builder
	tree    blockstore.Hash
}

type node struct {
	c        *cluster
	key      ed25519.PrivateKey
	id       NodeID
	role     Role
	cert     NodeCert
	dir      string
	store    blockstore.Store
	log      *tree.Log
	swarm    *Swarm
	srv      *transport.Server
	addr     string // grits/1, kept across restarts
	gossip   string // gossip, kept across restarts
	client   *transport.Client
	fetcher  *Fetcher
	keeper   *Keeper
	enrol    *Enroller
	pins     []string
	alone    bool   // started without seeds
	capacity uint64 // advertised; 1 GiB if 0
	stall    bool   // its server takes requests and never answers
	pc       *net.UDPConn
	cancel   context.CancelFunc
	done     sync.WaitGroup
	stopped  bool
}

// The nodes' grits/1 client timeouts.
const (
	clientDialTimeout  = time.Second
	clientStallTimeout = 2 * time.Second
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("GRITS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	return newClusterWith(t, ProfileLocal, -1)
}

// newClusterWith starts an origin with the given gossip timers and
// warming budget for the volunteers to come.
func newClusterWith(t testing.TB, profile Profile, warmMax int64) *cluster {
	t.Helper()
	_, sk, _ := ed25519.GenerateKey(nil)
	key := make([]byte, KeySize)
	rand.Read(key)
	c := &cluster{t: t, warmMax: warmMax, profile: profile, siteKey: sk, site: tree.PublicKeyOf(sk), ring: Keyring{Keys: [][]byte{key}}}
	c.origin = c.add(RoleOrigin, nil, nil)
	ob := &tree.Builder{Store: c.origin.store.(tree.ReadWriter), ChunkSize: 16 << 10}
	c.builder = ob
	var err error
	if c.tree, err = ob.EmptyDir(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// lowPorts are the ports lowPort handed out in this test process.
var lowPorts struct {
	sync.Mutex
	taken map[int]bool
}

// lowPort returns a loopback port free for TCP and UDP in 10000..19999,
// below Linux's ephemeral range (32768 and up), where bind(":0") never
// lands: a node that restarts finds its ports still free. (The real-
// process tests in cmd/gritsd use 20000..31999.)
func lowPort(t testing.TB) int {
	t.Helper()
	lowPorts.Lock()
	defer lowPorts.Unlock()
	if lowPorts.taken == nil {
		lowPorts.taken = map[int]bool{}
	}
	for range 1000 {
		p := 10000 + mrand.IntN(10000)
		if lowPorts.taken[p] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		lowPorts.taken[p] = true
		return p
	}
	t.Fatal("no free loopback port in 10000..19999")
	return 0
}

// add starts a node; key nil makes a new one.
func (c *cluster) add(role Role, key ed25519.PrivateKey, pins []string) *node {
	c.t.Helper()
	return c.addNode(role, key, pins, false)
}

// addAlone starts a member that knows nobody: no seeds, no snapshot.
func (c *cluster) addAlone(role Role) *node {
	c.t.Helper()
	return c.addNode(role, nil, nil, true)
}

func (c *cluster) addNode(role Role, key ed25519.PrivateKey, pins []string, alone bool) *node {
	c.t.Helper()
	if key == nil {
		_, key, _ = ed25519.GenerateKey(nil)
	}
	n := &node{c: c, key: key, id: tree.PublicKeyOf(key), role: role, dir: c.t.TempDir(), pins: pins, alone: alone, capacity: c.capacity, stall: c.stall}
	cert, err := IssueCert(c.siteKey, n.id, role, time.Now(), time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	n.cert = cert
	n.store = blockstore.NewMem(-1)
	n.start()
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

func (n *node) start() {
	t := n.c.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	var err error
	if n.log, err = tree.OpenLog(ctx, filepath.Join(n.dir, "roots.log"), nil); err != nil {
		t.Fatal(err)
	}
	ident, err := transport.CertificateWithCredential(n.key, n.cert.Encode())
	if err != nil {
		t.Fatal(err)
	}
	verifier := NewVerifier()
	n.client, err = transport.NewClient(transport.ClientConfig{SiteKey: n.c.site, Identity: &ident,
		DialTimeout: clientDialTimeout, StallTimeout: clientStallTimeout, VerifyServer: verifier.VerifyServer})
	if err != nil {
		t.Fatal(err)
	}
	// A restarted node comes back on its ports, as an operator's would;
	// they are below the kernel's ephemeral range, so that nothing else
	// binds them while the node is down.
	if n.addr == "" {
		n.addr = fmt.Sprintf("127.0.0.1:%d", lowPort(t))
	}
	if n.gossip == "" {
		n.gossip = fmt.Sprintf("127.0.0.1:%d", lowPort(t))
	}
	laddr, _ := net.ResolveUDPAddr("udp", n.addr)
	pc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		t.Fatal(err)
	}
	n.addr, n.pc = pc.LocalAddr().String(), pc
	var seeds []string
	if o := n.c.origin; o != nil && o != n && !n.alone {
		seeds = []string{o.gossip} // as gritsd join writes it
	}
	n.swarm, err = Start(ctx, Config{NodeKey: n.key, Site: n.c.site, Cert: n.cert, Gossip: cmp(n.gossip, "127.0.0.1:0"),
		ProtoAddr: n.addr, Capacity: cmpOr(n.capacity, 1<<30), Pins: n.pins, Ring: n.c.ring, Seeds: seeds, Profile: n.c.profile, Replication: n.c.replication,
		Roots: n.log, Client: n.client, SnapshotPath: filepath.Join(n.dir, "members.json"), ForgetAfter: n.c.forgetAfter, Verifier: verifier,
		Logger: testLogger(t).With("node", n.id.String()[8:16])})
	if err != nil {
		t.Fatal(err)
	}
	n.gossip = n.swarm.GossipAddr()
	n.fetcher = NewFetcher(n.swarm, n.store, n.client, 5*time.Second, nil)
	cfg := transport.ServerConfig{Identity: ident, Store: n.fetcher, Roots: n.log,
		Authorize: n.swarm.Authorize, SwarmKeys: n.swarm.KeysFor, MaxConnsPerIP: 1000}
	if n.stall {
		cfg.Store = stallGetter{}
	}
	if n.role == RoleOrigin {
		cfg.Store = n.store
		n.enrol, err = NewEnroller(n.c.siteKey, n.swarm, filepath.Join(n.dir, "tokens.used"), time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Enroll = n.enrol.Enroll
	}
	if n.srv, err = transport.NewServer(cfg); err != nil {
		t.Fatal(err)
	}
	n.swarm.SetServer(n.srv)
	n.done.Go(func() { n.srv.Serve(ctx, pc) })
	if n.role != RoleOrigin {
		n.keeper = NewKeeper(KeeperConfig{Swarm: n.swarm, Fetcher: n.fetcher, Store: n.store, Pins: n.pins,
			StatePath: filepath.Join(n.dir, "sync.json"), WarmMax: n.c.warmMax})
		n.done.Go(func() { n.keeper.Run(ctx) })
	}
	n.stopped = false
	t.Cleanup(n.stop)
}

// stop shuts the node down gracefully (leaving the swarm).
func (n *node) stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	n.swarm.Close()
	n.cancel()
	n.done.Wait()
	n.pc.Close()
	n.client.Close()
	n.log.Close()
}

// kill stops the node the way a crash would: no goodbye.
func (n *node) kill() {
	if n.stopped {
		return
	}
	n.stopped = true
	n.swarm.Kill()
	n.cancel()
	n.done.Wait()
	n.pc.Close()
	n.client.Close()
	n.log.Close()
}

// publish adds files to the origin's tree and announces a new root.
func (c *cluster) publish(files map[string][]byte) tree.Root {
	c.t.Helper()
	ctx := context.Background()
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, data := range files {
		h, size, err := c.builder.WriteFile(ctx, bytes.NewReader(data))
		if err != nil {
			c.t.Fatal(err)
		}
		if c.tree, err = c.builder.Set(ctx, c.tree, tree.MustParsePath(p), tree.Entry{Kind: tree.KindFile, Mode: 0o644, Size: size, Hash: h}); err != nil {
			c.t.Fatal(err)
		}
	}
	now := time.Now()
	r := tree.Root{Seq: 1, Time: now, Expires: now.Add(time.Hour), Tree: c.tree}
	if last, ok := c.origin.log.Latest(); ok {
		r.Seq, r.Prev = last.Seq+1, last.Hash()
		if !r.Time.After(last.Time) {
			r.Time = last.Time.Add(time.Second)
			r.Expires = r.Time.Add(time.Hour)
		}
	}
	r, err := tree.SignRoot(c.siteKey, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.origin.log.Append(ctx, r); err != nil {
		c.t.Fatal(err)
	}
	c.origin.swarm.Announce(r)
	return r
}

func (c *cluster) live() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*node
	for _, n := range c.nodes {
		if !n.stopped {
			out = append(out, n)
		}
	}
	return out
}

// eventually retries check until it passes or the deadline expires.
// A wait that lasts says what it is still waiting for every 10 s, so a
// slow pass shows its cause too.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	said := start
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		if time.Since(said) >= 10*time.Second {
			said = time.Now()
			t.Logf("%s: still waiting after %v: %v", what, time.Since(start).Round(time.Second), err)
		}
		// Quick at first; then gentler: checking fifty nodes' views fifty
		// times a second takes the CPU the gossip needs on a small machine.
		if time.Since(start) < time.Second {
			time.Sleep(20 * time.Millisecond)
		} else {
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// slack is the margin the tests give the protocol's bounds (Timing):
// under the race detector Go code runs several times slower, and the
// test machine is small and shared (two cores, other processes).
const slack = 10

// timing is the cluster's gossip bounds at its current size.
func (c *cluster) timing() Timing {
	c.t.Helper()
	t, err := c.profile.Timing(len(c.live()))
	if err != nil {
		c.t.Fatal(err)
	}
	return t
}

// waitConverged waits until every live node sees every other live node
// alive, for at most slack times bound.
func (c *cluster) waitConverged(bound time.Duration) {
	c.t.Helper()
	live := c.live()
	start := time.Now()
	defer func() { c.t.Logf("%d nodes converged after %v", len(live), time.Since(start).Round(time.Millisecond)) }()
	eventually(c.t, slack*bound, "membership converges", func() error {
		for _, n := range live {
			seen := map[NodeID]Member{}
			for _, m := range n.swarm.Members() {
				seen[m.ID] = m
			}
			for _, o := range live {
				m, ok := seen[o.id]
				if !ok {
					return fmt.Errorf("node %s does not know %s at all (%d members)", n.id.String()[8:16], o.id.String()[8:16], len(seen))
				}
				if m.State != StateAlive && m.State != StateSuspect {
					return fmt.Errorf("node %s sees %s %s since %v ago", n.id.String()[8:16], o.id.String()[8:16], m.State, time.Since(m.Since).Round(time.Millisecond))
				}
			}
		}
		return nil
	})
}

// waitRoot waits until every live node has logged r, for at most slack
// times the protocol's bound: the root's gossip, and a node that missed
// it fetching it from a member (one dial and one request, bounded by the
// nodes' client timeouts).
func (c *cluster) waitRoot(r tree.Root) {
	c.t.Helper()
	eventually(c.t, slack*(c.timing().Root+clientDialTimeout+clientStallTimeout), fmt.Sprintf("root seq %d reaches every node", r.Seq), func() error {
		for _, n := range c.live() {
			if l, ok := n.log.Latest(); !ok || l.Hash() != r.Hash() {
				return fmt.Errorf("node %s (%v) has seq %d", n.id.String()[8:16], n.role, l.Seq)
			}
		}
		return nil
	})
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func generateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) { return ed25519.GenerateKey(nil) }

// chunksOf lists the chunk hashes of file p in root r, from the origin's
// store.
func (c *cluster) chunksOf(r tree.Root, p string) []blockstore.Hash {
	c.t.Helper()
	ctx := context.Background()
	res, err := tree.Lookup(ctx, c.origin.store, r.Tree, tree.MustParsePath(p))
	if err != nil {
		c.t.Fatal(err)
	}
	f := res.Node.(*tree.FileNode)
	var chunks []blockstore.Hash
	if err := tree.Chunks(ctx, c.origin.store, f, 0, f.Size, func(ch tree.Chunk) error {
		chunks = append(chunks, ch.Hash)
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}
	return chunks
}

// snapshot reads the node's snapshot file.
func (n *node) snapshot() Snapshot {
	n.c.t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "members.json"))
	if err != nil {
		n.c.t.Fatal(err)
	}
	snap, err := DecodeSnapshot(b)
	if err != nil {
		n.c.t.Fatal(err)
	}
	return snap
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// stallGetter never answers: a member that takes requests and stalls.
type stallGetter struct{}

func (stallGetter) Get(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

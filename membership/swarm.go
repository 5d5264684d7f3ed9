// Package membership is the trusted swarm: who is in it (SWIM gossip
// through hashicorp/memberlist, encrypted with the swarm's keys), who may
// be (site-signed node certificates, join tokens, ban lists), which root
// is current (announced by gossip, verified before use), and where each
// block lives (rendezvous hashing over the live members).
package membership

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// RootLog is where a node keeps the roots it accepted. *tree.Log
// satisfies it. On the origin it is read-only here: roots come from
// imports, and Announce spreads them.
type RootLog interface {
	Latest() (tree.Root, bool)
	Append(ctx context.Context, r tree.Root) error
}

// Config configures a Swarm.
type Config struct {
	NodeKey ed25519.PrivateKey
	Site    tree.PublicKey
	Cert    NodeCert // this node's, issued by the site key
	// Gossip is the host:port memberlist binds (TCP and UDP); Advertise,
	// if set, is the address others reach it at.
	Gossip, Advertise string
	ProtoAddr         string // grits/1 address others dial
	URL               string // public HTTPS base URL for browsers, if any
	Capacity          uint64 // bytes offered; placement weight
	Pins              []string
	Ring              Keyring
	Seeds             []string // gossip addresses to join through
	// SnapshotPath, if set, is the file where the node keeps the members
	// it has seen (read at Start to re-join them; see snapshot.go).
	SnapshotPath string
	// ForgetAfter is how long a member that is not seen alive is still
	// re-joined and remembered; default DefaultForgetAfter (72h).
	ForgetAfter time.Duration
	// OriginAddr, if set, is the origin's grits/1 address, asked last for
	// blocks even while gossip has not (yet) shown the origin alive.
	OriginAddr string
	Profile    Profile
	// Replication is how many home nodes each block has; default 2.
	Replication int
	Roots       RootLog
	// Client fetches roots and keys from peers; it must present this
	// node's certificate (transport.CertificateWithCredential), and judge
	// servers with Verifier.VerifyServer.
	Client *transport.Client
	// Verifier, made with NewVerifier and given to the Client before
	// the swarm exists, is bound to the swarm by Start before any of the
	// swarm's goroutines can dial.
	Verifier *Verifier
	// Server, if set, has connections of banned nodes dropped.
	Server *transport.Server
	// SaveRing persists a keyring adopted from the swarm (rotation).
	SaveRing func(Keyring) error
	// KeyGrace is how long after adopting a new gossip key the old one is
	// still used and accepted; default 5s (Local: 1s).
	KeyGrace time.Duration
	// SyncEvery is how often the node compares its root and ban list with
	// what members advertise; default 2s (Local: 200ms).
	SyncEvery time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// State of a member as this node sees it.
type State string

// Member states.
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// Member is one node of the swarm as this node sees it.
type Member struct {
	ID         NodeID
	Role       Role
	State      State
	Since      time.Time // of the last state change seen
	GossipAddr string
	Meta       Meta
	Self       bool
	// Signed: its metadata carried a valid claim signed by its own key
	// (claim.go); unsigned only while the swarm is being upgraded.
	Signed bool
	// readsClaims: its gossip says it reads signed claims (a delegate
	// protocol version of at least claimsVersion).
	readsClaims bool
}

// Swarm is this node's membership in the swarm.
type Swarm struct {
	cfg   Config
	id    NodeID
	name  string
	ml    *memberlist.Memberlist
	ring  *memberlist.Keyring
	queue *memberlist.TransmitLimitedQueue
	log   *slog.Logger

	mc *memberlist.Config // its timers, read-only after Start

	gossipIP, gossipAddr string // as memberlist advertises them

	mu      sync.Mutex
	meta    Meta
	ringNow Keyring
	view    map[NodeID]Member // from memberlist's events
	known   map[NodeID]Known  // the address book: snapshot and gossip
	seeds   []string          // gossip addresses to re-join, from the config
	pending []keyStep

	// served holds members' latest Served reports; servedSeq numbers
	// this node's own.
	served    map[NodeID]Served
	servedSeq uint64

	certMu  sync.Mutex
	certsOK map[string]struct{} // encoded certificates whose signature verified

	// signing: this node signs its metadata and refuses members' unsigned
	// metadata (claim.go). It is set once and kept (in the snapshot too).
	signing atomic.Bool
	// selfIP, selfPort: the gossip address memberlist advertises, which
	// the claim covers (guarded by mu; unset until memberlist is made).
	selfIP    net.IP
	selfPort  uint16
	lastClaim time.Time // guarded by mu: claims' times strictly increase
	signAfter time.Time // guarded by mu: maybeSign decides no earlier (zero until joined)
	claimMu   sync.Mutex
	claimAt   map[NodeID]time.Time // the newest claim accepted from each member
	claimsOK  map[string]time.Time // metadata+address whose claim verified, by claim time
	refused   atomic.Int64         // alive messages admission refused

	grantMu      sync.Mutex
	grants       map[NodeID]CapacityGrant // the newest verified grant of each node
	grantsSpread time.Time                // when the origin last spread them
	grantsJoined bool                     // a node joined since (the origin spreads them again)

	rootMu   sync.Mutex       // serializes root acceptance
	rootSubs []chan tree.Root // guarded by mu

	msgs       chan []byte
	joined     chan struct{} // closed once the node has joined (or has nobody to join)
	joinedOnce sync.Once
	pulls      chan string // gossip addresses of members that said they are here
	metaDirty  chan struct{}
	snapDirty  chan struct{}
	killed     atomic.Bool // Kill: no farewell snapshot, as in a crash
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

type keyStep struct {
	at  time.Time
	use []byte   // make this the primary
	del [][]byte // then drop these
}

// ErrClosed is returned by a Swarm after Close.
var ErrClosed = errors.New("membership: swarm closed")

// Start creates the node's gossip endpoint and joins, in the background,
// the members it knows (the seeds, and those in the snapshot file),
// retrying for as long as one of them is not seen alive (rejoin.go), so
// the order in which nodes start or restart does not matter.
func Start(ctx context.Context, cfg Config) (*Swarm, error) {
	if cfg.Verifier != nil {
		defer cfg.Verifier.bind(nil) // a Start that fails leaves nobody to judge with; no-op once bound
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Replication <= 0 {
		cfg.Replication = 2
	}
	mc, err := cfg.Profile.config()
	if err != nil {
		return nil, err
	}
	if cfg.SyncEvery <= 0 {
		cfg.SyncEvery = timingOf(mc, cfg.Profile, 1).Sync
	}
	if cfg.KeyGrace <= 0 {
		cfg.KeyGrace = timingOf(mc, cfg.Profile, 1).KeyGrace
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = DefaultForgetAfter
	}
	if cfg.Roots == nil || cfg.Client == nil {
		return nil, errors.New("membership: swarm needs a root log and a client")
	}
	if err := cfg.Ring.Validate(); err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	s := &Swarm{cfg: cfg, id: tree.PublicKeyOf(cfg.NodeKey), log: cfg.Logger, mc: mc,
		view: map[NodeID]Member{}, known: map[NodeID]Known{}, certsOK: map[string]struct{}{},
		claimAt: map[NodeID]time.Time{}, claimsOK: map[string]time.Time{}, grants: map[NodeID]CapacityGrant{}, msgs: make(chan []byte, 64), joined: make(chan struct{}),
		pulls: make(chan string, 16), metaDirty: make(chan struct{}, 1), snapDirty: make(chan struct{}, 1)}
	s.name = s.id.String()
	if cfg.Cert.Node != s.id {
		return nil, fmt.Errorf("membership: the certificate is for node %s, this node is %s", cfg.Cert.Node.String()[:16], s.name[:16])
	}
	if err := cfg.Cert.Verify(cfg.Site, cfg.Now()); err != nil {
		return nil, fmt.Errorf("membership: own %w", err)
	}
	s.ringNow = cfg.Ring
	s.meta = Meta{Cert: cfg.Cert.Encode(), ProtoAddr: cfg.ProtoAddr, URL: cfg.URL, Capacity: cfg.Capacity,
		Pins: cfg.Pins, Bans: cfg.Ring.BanVersion()}
	if r, ok := cfg.Roots.Latest(); ok {
		s.meta.RootSeq = r.Seq
	}
	if err := checkMetaSize(s.meta); err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}

	if cfg.SnapshotPath != "" {
		snap, err := readSnapshot(cfg.SnapshotPath, cfg.Site, s.id)
		if err != nil {
			// Only a list of addresses: the seeds, and the members that
			// retry this node, still bring it back.
			s.log.Warn("ignoring the member snapshot", "err", err)
		}
		for _, k := range snap.Members {
			if !cfg.Ring.Bans.Banned(k.ID) {
				s.known[k.ID] = k
			}
		}
		if snap.Signed {
			s.signing.Store(true)
		}
	}
	remembered := len(s.known)
	s.seeds = slices.Clone(cfg.Seeds)
	mc.Name = s.name
	host, port, err := splitHostPort(cfg.Gossip)
	if err != nil {
		return nil, fmt.Errorf("membership: gossip address: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if cfg.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.Advertise); err != nil {
			return nil, fmt.Errorf("membership: advertise address: %w", err)
		}
	}
	s.ring, err = memberlist.NewKeyring(cfg.Ring.Keys, cfg.Ring.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("membership: keyring: %w", err)
	}
	mc.Keyring = s.ring
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = (*delegate)(s)
	mc.Events = (*events)(s)
	mc.Alive = (*admission)(s)
	// The delegate protocol version says, in every alive message, what a
	// node reads: at claimsVersion, signed claims. The current version
	// stays 0 so that memberlist still talks to nodes of the previous
	// release, whose maximum is 0.
	mc.DelegateProtocolMin, mc.DelegateProtocolVersion, mc.DelegateProtocolMax = 0, 0, claimsVersion
	mc.Logger = log.New(&logBridge{s.log.With("component", "gossip")}, "", 0)
	mc.DeadNodeReclaimTime = time.Second // a restarted node may come back at a new port
	s.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: mc.RetransmitMult,
		NumNodes: func() int {
			if s.ml == nil {
				return 1
			}
			return s.ml.NumMembers()
		}}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.ml, err = memberlist.Create(mc)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.Gossip, err)
	}
	// Read once: memberlist updates its own Node in place, under its lock.
	local := s.ml.LocalNode()
	s.gossipIP, s.gossipAddr = local.Addr.String(), net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	s.mu.Lock()
	s.selfIP, s.selfPort = slices.Clone(local.Addr), local.Port
	update := s.signing.Load() // the first metadata went out unsigned: the address was not known
	s.mu.Unlock()
	if h, p, err := net.SplitHostPort(cfg.ProtoAddr); err == nil {
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
			// Listening on every address: advertise the one gossip chose.
			s.mu.Lock()
			s.meta.ProtoAddr = net.JoinHostPort(s.gossipIP, p)
			s.mu.Unlock()
			update = true
		}
	}
	if update {
		if err := s.ml.UpdateNode(time.Second); err != nil {
			s.log.Debug("spreading metadata", "err", err)
		}
	}
	if cfg.Verifier != nil {
		cfg.Verifier.bind(s) // before any goroutine below can dial
	}
	s.wg.Add(5)
	go s.metaLoop()
	go s.handleMessages()
	go s.syncLoop()
	go s.rejoinLoop()
	go s.snapshotLoop()
	s.log.Info("swarm started", "node", s.name[:16], "role", cfg.Cert.Role, "gossip", s.GossipAddr(),
		"profile", cmp(string(cfg.Profile), "lan"), "known members", remembered)
	return s, nil
}

func cmp(a, b string) string {
	if a == "" {
		return b
	}
	return a
}

func splitHostPort(a string) (string, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q", p)
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, n, nil
}

// SetServer names the transport server whose connections of banned
// nodes are dropped (it is made after the swarm, which authorizes it).
func (s *Swarm) SetServer(srv *transport.Server) {
	s.mu.Lock()
	s.cfg.Server = srv
	s.mu.Unlock()
}

// ID is this node's ID.
func (s *Swarm) ID() NodeID { return s.id }

// Role is this node's role.
func (s *Swarm) Role() Role { return s.cfg.Cert.Role }

// GossipAddr is the address other nodes join through.
func (s *Swarm) GossipAddr() string { return s.gossipAddr }

// Close leaves the swarm (telling the others, briefly) and stops.
func (s *Swarm) Close() error {
	s.cancel()
	err := s.ml.Leave(time.Second)
	s.wg.Wait()
	return errors.Join(err, s.ml.Shutdown())
}

// Kill stops without saying goodbye, as a crash would (for tests).
func (s *Swarm) Kill() {
	s.killed.Store(true)
	s.cancel()
	s.wg.Wait()
	_ = s.ml.Shutdown()
}

// Joined is closed once this node has joined the swarm (at once for a
// node with nobody to join, such as a new origin).
func (s *Swarm) Joined() <-chan struct{} { return s.joined }

// Members returns every member this node knows, itself included, with
// dead and departed ones it saw go (until they come back). Banned nodes
// are left out.
func (s *Swarm) Members() []Member {
	s.mu.Lock()
	bans := s.ringNow.Bans
	out := make([]Member, 0, len(s.view))
	for _, m := range s.view {
		if !bans.Banned(m.ID) {
			m.Meta.Pins = slices.Clone(m.Meta.Pins)
			out = append(out, m)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int {
		if a.Role != b.Role {
			return int(a.Role) - int(b.Role)
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	return out
}

// memberOf decodes what gossip says about n. It must run inside a
// memberlist callback: memberlist changes its Node values in place, so
// they are read only while it holds its lock.
func (s *Swarm) memberOf(n *memberlist.Node, st State) (Member, bool) {
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		return Member{}, false
	}
	cert, err := DecodeCert(meta.Cert)
	if err != nil {
		return Member{}, false
	}
	_, err = s.claimOf(n, meta, cert.Node)
	return Member{ID: cert.Node, Role: cert.Role, State: st, Since: s.cfg.Now(), GossipAddr: n.Address(), Meta: meta, Self: cert.Node == s.id,
		Signed: err == nil, readsClaims: n.DMax >= claimsVersion}, true
}

// Alive returns the members that are alive or suspect (still trusted to
// answer), not banned.
func (s *Swarm) Alive() []Member {
	var out []Member
	for _, m := range s.Members() {
		if m.State == StateAlive || m.State == StateSuspect {
			out = append(out, m)
		}
	}
	return out
}

// Local returns this node's own metadata as it advertises it.
func (s *Swarm) Local() Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.meta
	m.Pins = slices.Clone(m.Pins)
	return m
}

// Update changes this node's advertised metadata and spreads it.
func (s *Swarm) Update(f func(*Meta)) {
	s.mu.Lock()
	old := s.meta
	f(&s.meta)
	s.meta.Cert, s.meta.ProtoAddr, s.meta.Ext = old.Cert, old.ProtoAddr, old.Ext
	if err := checkMetaSize(s.meta); err != nil {
		s.log.Error("metadata update refused", "err", err)
		s.meta = old
	}
	same := s.meta.Load == old.Load && s.meta.RootSeq == old.RootSeq && s.meta.Complete == old.Complete &&
		s.meta.Lacking == old.Lacking && s.meta.Bans == old.Bans && s.meta.Capacity == old.Capacity
	s.mu.Unlock()
	if !same {
		s.spreadMeta()
	}
}

// spreadMeta has the metadata re-advertised in the background:
// memberlist's UpdateNode blocks until the change has been gossiped,
// which must not hold up whoever changed it (a root being passed on).
func (s *Swarm) spreadMeta() {
	select {
	case s.metaDirty <- struct{}{}:
	default: // an update is already due; it will carry this change too
	}
}

func (s *Swarm) metaLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.metaDirty:
		}
		if err := s.ml.UpdateNode(time.Second); err != nil {
			s.log.Debug("spreading metadata", "err", err)
		}
	}
}

// Bans returns the ban list in force (nil if none).
func (s *Swarm) Bans() *BanList {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ringNow.Bans
}

// Ring returns the keyring in force.
func (s *Swarm) Ring() Keyring {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ringNow
}

// checkCert verifies a presented certificate for id.
func (s *Swarm) checkCert(id NodeID, raw []byte) (NodeCert, error) {
	if len(raw) == 0 {
		return NodeCert{}, fmt.Errorf("node %s presented no certificate: %w", id.String()[:16], ErrNotMember)
	}
	c, err := DecodeCert(raw)
	if err != nil {
		return NodeCert{}, fmt.Errorf("%w: %w", ErrNotMember, err)
	}
	if err := s.verifyCert(raw, c); err != nil {
		return NodeCert{}, fmt.Errorf("%w: %w", ErrNotMember, err)
	}
	if c.Node != id {
		return NodeCert{}, fmt.Errorf("%w: certificate of node %s presented by node %s", ErrNotMember, c.Node.String()[:16], id.String()[:16])
	}
	if s.Bans().Banned(id) {
		return NodeCert{}, fmt.Errorf("node %s: %w", id.String()[:16], ErrBanned)
	}
	return c, nil
}

// maxVerifiedCerts bounds the cache of verified certificates (the
// cache is emptied when full: it only saves work).
const maxVerifiedCerts = 4096

// verifyCert is c.Verify, remembering the certificates (as encoded)
// whose signature checked out. memberlist admits every member's alive
// message again at each push-pull and each refutation, and an ed25519
// verification each time was a sixth of a test swarm's CPU. The expiry
// is checked every time.
func (s *Swarm) verifyCert(raw []byte, c NodeCert) error {
	now := s.cfg.Now()
	s.certMu.Lock()
	_, ok := s.certsOK[string(raw)]
	s.certMu.Unlock()
	if ok {
		return c.current(now)
	}
	if err := c.Verify(s.cfg.Site, now); err != nil {
		return err
	}
	s.certMu.Lock()
	if len(s.certsOK) >= maxVerifiedCerts {
		clear(s.certsOK)
	}
	s.certsOK[string(raw)] = struct{}{}
	s.certMu.Unlock()
	return nil
}

// Authorize is the transport server's admission check: connections
// presenting a certificate must present a valid one of their own key,
// and banned nodes are refused however they come. Read-only clients
// without a certificate are welcome: the content is public and
// verified.
func (s *Swarm) Authorize(_ context.Context, p transport.Peer) error {
	if p.HasID && s.Bans().Banned(p.ID) {
		return fmt.Errorf("node %s: %w", p.ID.String()[:16], ErrBanned)
	}
	if len(p.Credential) == 0 {
		return nil
	}
	_, err := s.checkCert(p.ID, p.Credential)
	return err
}

// Verifier is the transport client's check of servers (its
// ClientConfig.VerifyServer) before the Swarm exists. The client must be
// made first, since the swarm uses it; and the swarm's goroutines can
// dial before Start has returned (a node that restarts re-joins at once
// and may fetch the roots it missed), so a closure reading a variable
// that Start's result is assigned to would race with that assignment.
type Verifier struct {
	ready chan struct{}
	once  sync.Once
	s     *Swarm
}

// NewVerifier returns a Verifier for Config.Verifier.
func NewVerifier() *Verifier { return &Verifier{ready: make(chan struct{})} }

// bind makes v judge for s (nil: the swarm did not start).
func (v *Verifier) bind(s *Swarm) {
	v.once.Do(func() {
		v.s = s
		close(v.ready)
	})
}

// VerifyServer is Swarm.VerifyServer once Start has bound the swarm; it
// waits for that (Start does it before it returns).
func (v *Verifier) VerifyServer(id NodeID, credential []byte) error {
	<-v.ready
	if v.s == nil {
		return ErrClosed
	}
	return v.s.VerifyServer(id, credential)
}

// VerifyServer is the transport client's check of the node it dialled:
// members fetch only from members.
func (s *Swarm) VerifyServer(id NodeID, credential []byte) error {
	_, err := s.checkCert(id, credential)
	return err
}

// IsMember reports whether a request came from a member node (a
// connection that passed Authorize with a certificate).
func IsMember(ctx context.Context) bool {
	p, ok := transport.PeerFromContext(ctx)
	return ok && len(p.Credential) > 0
}

// KeysFor answers a member's GetSwarmKeys: the current keyring, to
// members only.
func (s *Swarm) KeysFor(_ context.Context, p transport.Peer) ([]byte, error) {
	if !p.HasID {
		return nil, fmt.Errorf("%w: keys are for members: %w", proto.ErrUnauthorized, ErrNotMember)
	}
	if _, err := s.checkCert(p.ID, p.Credential); err != nil {
		s.log.Warn("refused the swarm keys to a non-member", "node", p.ID.String()[:16], "remote", p.Addr, "err", err)
		return nil, fmt.Errorf("%w: %w", proto.ErrUnauthorized, err)
	}
	return s.Ring().Encode(), nil
}

// Adopt installs a newer keyring (and its ban list): the origin's after
// gritsd ban, or one fetched from a member. New keys are accepted at
// once, used after KeyGrace (by then every member has fetched them) and
// the old ones dropped after twice that: from then on a banned node can
// neither read nor write the gossip.
func (s *Swarm) Adopt(k Keyring) error {
	if err := k.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	if k.BanVersion() <= s.ringNow.BanVersion() {
		s.mu.Unlock()
		return nil
	}
	if k.Bans != nil {
		if err := k.Bans.Verify(s.cfg.Site); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	old := s.ringNow
	s.ringNow = k
	s.meta.Bans = k.BanVersion()
	for _, key := range k.Keys {
		if err := s.ring.AddKey(key); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("membership: add gossip key: %w", err)
		}
	}
	var drop [][]byte
	for _, key := range old.Keys {
		if !slices.ContainsFunc(k.Keys, func(n []byte) bool { return string(n) == string(key) }) {
			drop = append(drop, key)
		}
	}
	now := s.cfg.Now()
	s.pending = append(s.pending, keyStep{at: now.Add(s.cfg.KeyGrace), use: k.Keys[0]},
		keyStep{at: now.Add(2 * s.cfg.KeyGrace), del: drop})
	s.mu.Unlock()
	if s.cfg.SaveRing != nil {
		if err := s.cfg.SaveRing(k); err != nil {
			s.log.Error("saving the new swarm keys failed", "err", err)
		}
	}
	if k.Bans != nil {
		s.mu.Lock()
		srv := s.cfg.Server
		s.mu.Unlock()
		for _, id := range k.Bans.Nodes {
			if srv != nil {
				if n := srv.Disconnect(id); n > 0 {
					s.log.Info("dropped a banned node's connections", "node", id.String()[:16], "conns", n)
				}
			}
		}
		s.dropBannedPeers(k.Bans)
		s.log.Info("ban list in force", "version", k.Bans.Version, "banned", len(k.Bans.Nodes))
	}
	s.spreadMeta()
	return nil
}

func (s *Swarm) dropBannedPeers(bans *BanList) {
	s.mu.Lock()
	var addrs []string
	for _, m := range s.view {
		if bans.Banned(m.ID) {
			addrs = append(addrs, m.Meta.ProtoAddr)
		}
	}
	for id := range s.known {
		if bans.Banned(id) {
			delete(s.known, id) // never re-joined, not remembered
			s.snapshotSoon()
		}
	}
	s.mu.Unlock()
	for _, a := range addrs {
		s.cfg.Client.DropPeer(a)
	}
}

func (s *Swarm) runKeySteps() {
	s.mu.Lock()
	now := s.cfg.Now()
	var keep []keyStep
	var due []keyStep
	for _, st := range s.pending {
		if now.Before(st.at) {
			keep = append(keep, st)
		} else {
			due = append(due, st)
		}
	}
	s.pending = keep
	s.mu.Unlock()
	for _, st := range due {
		if st.use != nil {
			if err := s.ring.UseKey(st.use); err != nil {
				s.log.Error("switching the gossip key", "err", err)
			}
		}
		for _, k := range st.del {
			if err := s.ring.RemoveKey(k); err != nil {
				s.log.Debug("dropping an old gossip key", "err", err)
			}
		}
		if len(st.del) > 0 {
			s.log.Info("old gossip keys dropped", "count", len(st.del))
		}
	}
}

// logBridge sends memberlist's log lines ("[LEVEL] memberlist: ...") to
// slog at the matching level.
type logBridge struct{ l *slog.Logger }

func (b *logBridge) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for pre, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if rest, ok := strings.CutPrefix(msg, pre); ok {
			msg, level = strings.TrimSpace(rest), l
			break
		}
	}
	b.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// JoinSeeds contacts more gossip addresses (a reloaded seeds setting):
// memberlist merges what they know. It returns how many answered; a
// seed that does not is only logged, since the swarm may already be
// whole without it. They become seeds the node keeps re-joining too.
func (s *Swarm) JoinSeeds(seeds []string) (int, error) {
	var others []string
	for _, a := range seeds {
		if a != "" && a != s.GossipAddr() {
			others = append(others, a)
		}
	}
	if len(others) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	for _, a := range others {
		if !slices.Contains(s.seeds, a) {
			s.seeds = append(s.seeds, a)
		}
	}
	s.mu.Unlock()
	n, err := s.ml.Join(others)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("join through %v: %w", others, err)
	}
	return n, nil
}

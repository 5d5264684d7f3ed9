package membership

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// Gossip message types (first byte of a user message or push-pull state).
const (
	msgRoot  = 'R' // a signed root, tree.RootSize bytes
	msgState = 'S' // push-pull state: a root, or nothing
	msgHere  = 'H' // a node that joined says where it is (rejoin.go)
)

// delegate carries grits' state on memberlist's gossip.
type delegate Swarm

func (d *delegate) NodeMeta(limit int) []byte {
	s := (*Swarm)(d)
	s.mu.Lock()
	b, err := s.signedMeta().Encode()
	s.mu.Unlock()
	if err != nil || len(b) > limit {
		// Checked at Start and on Update; unreachable unless the limit
		// shrinks.
		s.log.Error("node metadata over the limit", "limit", limit, "err", err)
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) {
	s := (*Swarm)(d)
	select {
	case s.msgs <- append([]byte(nil), b...):
	default: // gossip repeats itself; dropping under load is safe
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	s := (*Swarm)(d)
	b := []byte{msgState}
	if r, ok := s.cfg.Roots.Latest(); ok {
		b = append(b, r.Encode()...)
	}
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) == 1+tree.RootSize && buf[0] == msgState {
		d.NotifyMsg(append([]byte{msgRoot}, buf[1:]...))
	}
}

func (s *Swarm) handleMessages() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case b := <-s.msgs:
			if len(b) == 1+tree.RootSize && b[0] == msgRoot {
				r, err := tree.DecodeRoot(b[1:])
				if err != nil {
					s.log.Warn("dropped a malformed root from gossip", "err", err)
					continue
				}
				if err := s.OfferRoot(s.ctx, r); err != nil && !errors.Is(err, tree.ErrSameRoot) && !errors.Is(err, tree.ErrRollback) {
					s.log.Warn("dropped a root from gossip", "seq", r.Seq, "err", err)
				}
				continue
			}
			if len(b) > 0 && b[0] == msgGrant {
				if err := s.acceptGrant(b[1:]); err != nil {
					s.log.Debug("dropped a capacity grant from gossip", "err", err)
				}
				continue
			}
			if len(b) > 0 && b[0] == msgHere {
				s.heard(b)
				continue
			}
			if len(b) > 0 && b[0] == msgServed {
				if err := s.acceptServed(b[1:]); err != nil {
					s.log.Debug("dropped a served report from gossip", "err", err)
				}
				continue
			}
			s.log.Debug("dropped an unknown gossip message", "len", len(b))
		}
	}
}

// latestBroadcast is a gossip message of which only the latest matters:
// queued, it replaces a queued one of the same kind about the same node
// (a newer root, grant or served report makes the older one pointless).
type latestBroadcast struct {
	node NodeID // the node it is about; zero for a root, which is the site's
	msg  []byte // type byte first
}

func (b *latestBroadcast) Invalidates(o memberlist.Broadcast) bool {
	x, ok := o.(*latestBroadcast)
	return ok && x.msg[0] == b.msg[0] && x.node == b.node
}
func (b *latestBroadcast) Message() []byte { return b.msg }
func (b *latestBroadcast) Finished()       {}

// Announce spreads r, which this node already holds (the origin after
// an import, or any node that accepted it), to the swarm.
func (s *Swarm) Announce(r tree.Root) {
	s.queue.QueueBroadcast(&latestBroadcast{msg: append([]byte{msgRoot}, r.Encode()...)})
	s.Update(func(m *Meta) { m.RootSeq = max(m.RootSeq, r.Seq) })
	s.notifyRoot(r)
}

// SubscribeRoots returns a channel that receives each new latest root
// (only the newest when the reader falls behind).
func (s *Swarm) SubscribeRoots() <-chan tree.Root {
	ch := make(chan tree.Root, 1)
	s.mu.Lock()
	s.rootSubs = append(s.rootSubs, ch)
	s.mu.Unlock()
	return ch
}

func (s *Swarm) notifyRoot(r tree.Root) {
	s.mu.Lock()
	subs := s.rootSubs
	s.mu.Unlock()
	for _, ch := range subs {
		select {
		case <-ch: // replace a stale one
		default:
		}
		select {
		case ch <- r:
		default:
		}
	}
}

// OfferRoot considers a root heard from the swarm: it must verify under
// the site key (signature, expiry) and follow the latest accepted one.
// A root further ahead makes the node fetch the roots in between from a
// member that has them, so its log stays one unbroken chain. The origin
// takes roots only from its own imports and ignores offers.
func (s *Swarm) OfferRoot(ctx context.Context, r tree.Root) error {
	if s.Role() == RoleOrigin {
		return nil
	}
	if err := r.Verify(s.cfg.Site, s.cfg.Now()); err != nil {
		return err
	}
	s.rootMu.Lock()
	defer s.rootMu.Unlock()
	last, ok := s.cfg.Roots.Latest()
	if ok {
		if err := r.CheckSuccessor(last); err != nil {
			return err
		}
		if r.Seq > last.Seq+1 {
			if err := s.fillGap(ctx, last, r); err != nil {
				return fmt.Errorf("root seq %d: catching up from seq %d: %w", r.Seq, last.Seq, err)
			}
		}
	}
	if err := s.cfg.Roots.Append(ctx, r); err != nil {
		return err
	}
	s.log.Info("new root", "seq", r.Seq, "tree", r.Tree.Short())
	s.Announce(r)
	return nil
}

// fillGap appends the roots between last and r, fetched from members that
// advertise r's seq (the origin last, to spare it).
func (s *Swarm) fillGap(ctx context.Context, last, r tree.Root) error {
	var errs []error
	for _, m := range s.sourcesFor(r.Seq) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		roots, err := s.cfg.Client.Roots(transport.ExpectNode(rctx, m.ID), m.Meta.ProtoAddr, last.Seq, int(r.Seq-last.Seq-1))
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, x := range roots {
			if x.Seq >= r.Seq {
				break
			}
			if err := s.cfg.Roots.Append(ctx, x); err != nil {
				return err
			}
		}
		if l, _ := s.cfg.Roots.Latest(); l.Seq == r.Seq-1 {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s gave roots up to seq %d only", m.Meta.ProtoAddr, lastSeq(s.cfg.Roots)))
	}
	if len(errs) == 0 {
		return errors.New("no member advertises the missing roots")
	}
	return errors.Join(errs...)
}

func lastSeq(l RootLog) uint64 {
	r, _ := l.Latest()
	return r.Seq
}

// sourcesFor lists alive members other than this one that advertise at
// least root seq, origin last.
func (s *Swarm) sourcesFor(seq uint64) []Member {
	var out, origin []Member
	for _, m := range s.Alive() {
		if m.Self || m.Meta.RootSeq < seq || m.Meta.ProtoAddr == "" {
			continue
		}
		if m.Role == RoleOrigin {
			origin = append(origin, m)
		} else {
			out = append(out, m)
		}
	}
	return append(out, origin...)
}

// syncLoop is anti-entropy: roots and ban lists that members advertise
// and this node lacks are fetched over grits/1, so a node that was away
// or missed a broadcast catches up within one round.
func (s *Swarm) syncLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.runKeySteps()
		s.maybeSign()
		if s.grantsDue() {
			s.spreadGrants()
		}
		root, bans := s.behind()
		if bans {
			s.catchUpBans()
		}
		if root {
			s.catchUpRoot()
		}
	}
}

// behind reports whether a live member advertises a newer root or ban
// list than this node holds: the cheap test of every round (no copy, no
// sort of the member list), before any catching up.
func (s *Swarm) behind() (root, bans bool) {
	mine := lastSeq(s.cfg.Roots)
	s.mu.Lock()
	defer s.mu.Unlock()
	myBans := s.ringNow.BanVersion()
	for _, m := range s.view {
		if m.Self || m.State != StateAlive && m.State != StateSuspect || s.ringNow.Bans.Banned(m.ID) {
			continue
		}
		root = root || m.Meta.RootSeq > mine
		bans = bans || m.Meta.Bans > myBans
	}
	return root, bans
}

func (s *Swarm) catchUpRoot() {
	if s.Role() == RoleOrigin {
		return
	}
	mine := lastSeq(s.cfg.Roots)
	var best uint64
	for _, m := range s.Alive() {
		best = max(best, m.Meta.RootSeq)
	}
	if best <= mine {
		return
	}
	for _, m := range s.sourcesFor(best) {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		roots, err := s.cfg.Client.Roots(transport.ExpectNode(ctx, m.ID), m.Meta.ProtoAddr, max(mine, best-1), 1)
		cancel()
		if err != nil || len(roots) == 0 {
			s.log.Debug("fetching the latest root", "from", m.Meta.ProtoAddr, "err", err)
			continue
		}
		err = s.OfferRoot(s.ctx, roots[len(roots)-1])
		if err == nil || errors.Is(err, tree.ErrSameRoot) {
			return
		}
		s.log.Warn("root from a member refused", "from", m.Meta.ProtoAddr, "err", err)
	}
}

func (s *Swarm) catchUpBans() {
	mine := s.Ring().BanVersion()
	for _, m := range s.Alive() {
		if m.Self || m.Meta.Bans <= mine || m.Meta.ProtoAddr == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		raw, err := s.cfg.Client.SwarmKeys(transport.ExpectNode(ctx, m.ID), m.Meta.ProtoAddr)
		cancel()
		if err != nil {
			s.log.Debug("fetching swarm keys", "from", m.Meta.ProtoAddr, "err", err)
			continue
		}
		k, err := DecodeKeyring(raw, s.cfg.Site)
		if err != nil {
			s.log.Warn("bad swarm keys from a member", "from", m.Meta.ProtoAddr, "err", err)
			continue
		}
		if err := s.Adopt(k); err != nil {
			s.log.Warn("swarm keys from a member refused", "from", m.Meta.ProtoAddr, "err", err)
			continue
		}
		return
	}
}

// events keeps this node's view of the swarm. memberlist calls these
// with its lock held, the one safe moment to read the Node.
type events Swarm

func (e *events) NotifyJoin(n *memberlist.Node) {
	s := (*Swarm)(e)
	m, ok := s.memberOf(n, StateAlive)
	if !ok {
		return
	}
	s.mu.Lock()
	s.view[m.ID] = m
	s.remember(m)
	s.mu.Unlock()
	s.maybeSign()
	if !m.Self {
		s.grantMu.Lock()
		s.grantsJoined = true
		s.grantMu.Unlock()
		s.markJoined() // joined by another member, or through it
		s.log.Info("member joined", "node", m.ID.String()[:16], "role", m.Role, "addr", m.Meta.ProtoAddr)
	}
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	s := (*Swarm)(e)
	st := StateDead
	if n.State == memberlist.StateLeft {
		st = StateLeft
	}
	m, ok := s.memberOf(n, st)
	if !ok {
		return
	}
	s.mu.Lock()
	s.view[m.ID] = m
	s.remember(m)
	s.mu.Unlock()
	// A node that comes back may sign with a clock set back meanwhile;
	// its claims are still bound to its address.
	s.claimMu.Lock()
	delete(s.claimAt, m.ID)
	s.claimMu.Unlock()
	s.cfg.Client.DropPeer(m.Meta.ProtoAddr)
	s.log.Info("member gone", "node", m.ID.String()[:16], "state", m.State, "addr", m.Meta.ProtoAddr)
}

func (e *events) NotifyUpdate(n *memberlist.Node) {
	s := (*Swarm)(e)
	m, ok := s.memberOf(n, StateAlive)
	if !ok {
		return
	}
	s.mu.Lock()
	if old, had := s.view[m.ID]; had && old.State == StateAlive {
		m.Since = old.Since
	}
	s.view[m.ID] = m
	s.remember(m)
	s.mu.Unlock()
	s.maybeSign()
}

// admission checks every node gossip tells about: a valid certificate
// for the name it uses, not banned, and what it says about itself signed
// by the key of that name (claim.go).
type admission Swarm

func (a *admission) check(n *memberlist.Node) error {
	s := (*Swarm)(a)
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		return err
	}
	id, err := tree.ParsePublicKey(n.Name)
	if err != nil {
		return fmt.Errorf("node name %q is not a node ID: %w", n.Name, err)
	}
	if _, err := s.checkCert(id, meta.Cert); err != nil {
		return err
	}
	if id == s.id {
		return nil // memberlist itself refutes what others say about this node
	}
	return s.checkClaim(n, meta, id)
}

func (a *admission) NotifyAlive(n *memberlist.Node) error {
	if err := a.check(n); err != nil {
		(*Swarm)(a).refused.Add(1)
		(*Swarm)(a).log.Debug("refused a node in gossip", "name", n.Name, "addr", n.Address(), "err", err)
		return err
	}
	return nil
}

package membership

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/grits-cdn/grits/internal/wire"
)

// Staying joined. memberlist only talks to members it sees alive: a node
// that restarts knows nobody, and members that saw a node leave or die
// never contact it again, so an origin restart (the origin has no seeds)
// used to split the swarm for good. Every node therefore keeps an
// address book (known: the snapshot file, gossip, the seeds) and, while
// a member in it is not alive in the view, keeps joining it: at once at
// start, then with a per-address backoff from Timing.RejoinMin doubling
// to RejoinMax, jittered, as Consul's retry_join does. Whichever side
// comes back first is found by the other: a restarted node joins the
// members it remembers; the members retry the node they saw go.
//
// A join also reaches every member quickly. memberlist spreads a new
// node's alive message by gossip, which misses a member now and then
// (each holder passes it to a few random members a few times); the
// member then learns of the node only at its next push-pull, a minute
// apart in a swarm of 50. So a node that joined sends every member it
// knows a small "here" message once its broadcast has had time to
// spread (Timing.Spread); a member that does not see it alive pulls its
// state (one push-pull) at once.

// rejoinParallel bounds the joins in flight; one push-pull brings the
// whole swarm's state, so more would only repeat it.
const rejoinParallel = 4

const hereWho = "a member that said it is here"

// maxPendingPulls bounds the here messages waiting for a pull.
const maxPendingPulls = 64

// forgetEvery is how often members unseen for ForgetAfter are dropped
// (more often if ForgetAfter is short).
const forgetEvery = time.Minute

type rejoinAttempt struct {
	wait   time.Duration // before the next attempt after a failure
	next   time.Time
	last   time.Time // of the last attempt
	busy   bool
	warned bool
}

type joinResult struct {
	addr, who string
	pull      bool // answering a here message, not joining
	n         int
	err       error
}

// jitter spreads d by ±20%, so that members that saw a node go do not
// all knock at once when it comes back.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

func (s *Swarm) rejoinLoop() {
	defer s.wg.Done()
	tm := timingOf(s.mc, s.cfg.Profile, 1)
	tick := time.NewTicker(tm.RejoinMin / 2)
	defer tick.Stop()
	attempts := map[string]*rejoinAttempt{}
	pulls := map[string]bool{} // addresses of members that said they are here
	results := make(chan joinResult, rejoinParallel)
	running := 0
	first := true
	var here <-chan time.Time
	lastForget := time.Now()
	for {
		now := time.Now()
		if now.Sub(lastForget) >= min(forgetEvery, s.cfg.ForgetAfter/4) {
			lastForget = now
			s.forget(now)
		}
		targets := s.rejoinTargets()
		if first && len(targets) == 0 {
			s.markJoined() // nobody to join: the first node of a swarm
		}
		for addr, a := range attempts {
			if _, ok := targets[addr]; !ok && !a.busy && !pulls[addr] {
				delete(attempts, addr)
			}
		}
		for addr := range pulls {
			if _, ok := targets[addr]; !ok {
				targets[addr] = hereWho
			}
		}
		for addr, who := range targets {
			a := attempts[addr]
			if a == nil {
				a = &rejoinAttempt{wait: tm.RejoinMin, next: now}
				if !first && !pulls[addr] {
					// A member that just went: give it a moment.
					a.next = now.Add(jitter(tm.RejoinMin))
				}
				attempts[addr] = a
			}
			pull := pulls[addr]
			if pull && !a.busy && now.Sub(a.last) >= tm.RejoinMin {
				a.next = now // but not more than once a RejoinMin per address
			}
			if a.busy || now.Before(a.next) || running >= rejoinParallel {
				continue
			}
			delete(pulls, addr)
			a.busy, a.last = true, now
			running++
			go func() {
				n, err := s.ml.Join([]string{addr})
				results <- joinResult{addr: addr, who: who, pull: pull, n: n, err: err}
			}()
		}
		first = false

		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-here:
			here = nil
			s.sayHere()
		case addr := <-s.pulls:
			// Pulled at the top of the loop, before the next attempt
			// would have come.
			if len(pulls) < maxPendingPulls {
				pulls[addr] = true
			}
		case r := <-results:
			running--
			a := attempts[r.addr]
			if a == nil {
				a = &rejoinAttempt{wait: tm.RejoinMin}
				attempts[r.addr] = a
			}
			a.busy = false
			// Success or not, the address is tried again only if it is
			// still a target then (joined, the member is alive).
			a.next = time.Now().Add(jitter(a.wait))
			a.wait = min(2*a.wait, tm.RejoinMax)
			if r.n > 0 {
				s.markJoined()
				a.warned = false
				if r.pull {
					s.log.Debug("pulled the state of a member that said it is here", "addr", r.addr)
					continue
				}
				s.log.Info("joined the swarm", "through", r.addr, "member", r.who, "members", s.ml.NumMembers())
				here = time.After(timingOf(s.mc, s.cfg.Profile, s.ml.NumMembers()).Spread)
				continue
			}
			if !a.warned {
				a.warned = true
				s.log.Warn("cannot reach a known member; retrying with backoff", "member", r.who, "addr", r.addr,
					"err", r.err, "retry within", tm.RejoinMax)
			} else {
				s.log.Debug("re-join failed", "member", r.who, "addr", r.addr, "err", r.err)
			}
		}
	}
}

func (s *Swarm) markJoined() { s.joinedOnce.Do(func() { close(s.joined) }) }

// rejoinTargets lists the gossip addresses worth joining, with whom each
// is for (for the log): members this node knows that are not alive in
// its view, then seeds that are no alive member's address. Never itself,
// never a banned node.
func (s *Swarm) rejoinTargets() map[string]string {
	self := s.GossipAddr()
	out := map[string]string{}
	s.mu.Lock()
	bans := s.ringNow.Bans
	alive := map[string]bool{self: true}
	for _, m := range s.view {
		if m.State == StateAlive || m.State == StateSuspect {
			alive[m.GossipAddr] = true
		}
	}
	for id, k := range s.known {
		if id == s.id || bans.Banned(id) || alive[k.GossipAddr] {
			continue
		}
		if m, ok := s.view[id]; ok && (m.State == StateAlive || m.State == StateSuspect) {
			continue
		}
		out[k.GossipAddr] = id.String()[:16]
	}
	for _, a := range s.seeds {
		if _, ok := out[a]; a != "" && !ok && !alive[a] {
			out[a] = "seed"
		}
	}
	s.mu.Unlock()
	return out
}

// remember records in the address book a member gossip showed alive (at
// the time of the event) or gone; s.mu must be held.
func (s *Swarm) remember(m Member) {
	if m.Self {
		return
	}
	k, had := s.known[m.ID]
	changed := !had || k.GossipAddr != m.GossipAddr || k.Role != m.Role || k.ProtoAddr != m.Meta.ProtoAddr
	s.known[m.ID] = Known{ID: m.ID, Role: m.Role, GossipAddr: m.GossipAddr, ProtoAddr: m.Meta.ProtoAddr, LastSeen: time.Now()}
	if changed || m.State == StateDead || m.State == StateLeft {
		s.snapshotSoon()
	}
}

// forget drops members not seen alive for ForgetAfter, from the address
// book and from the view, and banned ones from the address book.
func (s *Swarm) forget(now time.Time) {
	cut := now.Add(-s.cfg.ForgetAfter)
	dropped := 0
	s.mu.Lock()
	for id, k := range s.known {
		m, inView := s.view[id]
		aliveNow := inView && (m.State == StateAlive || m.State == StateSuspect)
		if s.ringNow.Bans.Banned(id) || !aliveNow && k.LastSeen.Before(cut) {
			delete(s.known, id)
			dropped++
		}
	}
	for id, m := range s.view {
		if (m.State == StateDead || m.State == StateLeft) && m.Since.Before(cut) {
			delete(s.view, id)
		}
	}
	s.mu.Unlock()
	if dropped > 0 {
		s.log.Info("forgot members not seen for a long time", "count", dropped, "after", s.cfg.ForgetAfter)
		s.snapshotSoon()
	}
}

// The here message (msgHere): a node that joined tells a member where it
// is. Layout: 'H', node ID [32], gossip address (u8 length, bytes). Only
// members read it (gossip is encrypted with the swarm key), and it only
// ever makes the reader pull state from that address, which proves
// nothing by itself: a node enters the view only with a valid
// certificate.
func encodeHere(id NodeID, addr string) []byte {
	b := append([]byte{msgHere}, id[:]...)
	b = append(b, byte(len(addr)))
	return append(b, addr...)
}

// decodeHere parses a here message.
func decodeHere(b []byte) (NodeID, string, error) {
	var id NodeID
	r := wire.NewReader(b, ErrMalformed)
	if r.U8() != msgHere && r.Err == nil {
		r.Fail("not a here message")
	}
	copy(id[:], r.Bytes(uint64(len(id))))
	addr := string(r.Bytes(uint64(r.U8())))
	if err := r.Done(); err != nil {
		return NodeID{}, "", fmt.Errorf("here message: %w", err)
	}
	if err := checkHostPort(addr); err != nil {
		return NodeID{}, "", fmt.Errorf("here message: %w: gossip address: %w", ErrMalformed, err)
	}
	return id, addr, nil
}

// sayHere sends the here message to every member this node sees alive.
func (s *Swarm) sayHere() {
	msg := encodeHere(s.id, s.GossipAddr())
	sent := 0
	for _, m := range s.Alive() {
		host, port, err := net.SplitHostPort(m.GossipAddr)
		ip := net.ParseIP(host)
		p, perr := strconv.Atoi(port)
		if m.Self || err != nil || ip == nil || perr != nil {
			continue
		}
		if err := s.ml.SendBestEffort(&memberlist.Node{Name: m.ID.String(), Addr: ip, Port: uint16(p)}, msg); err != nil {
			s.log.Debug("saying here", "to", m.GossipAddr, "err", err)
			continue
		}
		sent++
	}
	s.log.Debug("said here", "members", sent)
}

// heard handles a here message: a member this node does not see alive
// gets its state pulled (by the re-join loop, which bounds the pulls).
func (s *Swarm) heard(b []byte) {
	id, addr, err := decodeHere(b)
	if err != nil {
		s.log.Debug("dropped a malformed here message", "err", err)
		return
	}
	s.mu.Lock()
	m, ok := s.view[id]
	known := ok && (m.State == StateAlive || m.State == StateSuspect)
	banned := s.ringNow.Bans.Banned(id)
	s.mu.Unlock()
	if id == s.id || known || banned {
		return
	}
	select {
	case s.pulls <- addr:
	default: // pulls pending already; the re-join loop will get there
	}
}

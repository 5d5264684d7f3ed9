package membership

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/grits-cdn/grits/internal/wire"
	"github.com/grits-cdn/grits/tree"
)

// Capacity grants. Placement weighs a node by the capacity it offers,
// which it advertises itself; a node advertising 2^63 bytes would be home
// for every block. So the weight is at most what the origin granted the
// node: a site-signed grant, set by the operator (gritsd grant), or
// DefaultGrant without one. The origin spreads grants in gossip (every
// node needs every member's, whatever that member says), and again when a node joins and every
// grantRefreshRounds anti-entropy rounds.

// DefaultGrant is the capacity placement counts for a node the origin
// granted nothing: the default cache quota, so a volunteer on defaults
// weighs what it offers, and more counts only once the operator grants
// it.
const DefaultGrant = 10 << 30

const (
	tagGrantCap    = 'Q'
	domainGrantCap = "grits-capacity-grant-v1\x00"
	msgGrant       = 'Q' // gossip message type: an encoded CapacityGrant follows
	// GrantSize bounds an encoded grant (the capacity is a uvarint).
	GrantSize = 2 + nodeIDSize + 10 + 8 + sigSize
)

// CapacityGrant is the site key's statement of the most capacity
// placement counts for a node. The newest (by Issued) wins.
type CapacityGrant struct {
	Node     NodeID
	Capacity uint64 // bytes
	Issued   time.Time
	Sig      [sigSize]byte
}

func (g CapacityGrant) body() []byte {
	b := make([]byte, 0, GrantSize)
	b = append(b, tagGrantCap, formatV1)
	b = append(b, g.Node[:]...)
	b = binary.AppendUvarint(b, g.Capacity)
	return appendUnix(b, g.Issued)
}

// Encode returns the signed record.
func (g CapacityGrant) Encode() []byte { return append(g.body(), g.Sig[:]...) }

// IssueGrant signs a grant of capacity bytes to node, issued at now.
func IssueGrant(site ed25519.PrivateKey, node NodeID, capacity uint64, now time.Time) CapacityGrant {
	g := CapacityGrant{Node: node, Capacity: capacity, Issued: now.Truncate(time.Second).UTC()}
	copy(g.Sig[:], sign(site, domainGrantCap, g.body()))
	return g
}

// DecodeGrantCap parses a capacity grant without checking its signature.
func DecodeGrantCap(b []byte) (CapacityGrant, error) {
	var g CapacityGrant
	r := wire.NewReader(b, ErrMalformed)
	readHeader(r, tagGrantCap, "capacity grant")
	copy(g.Node[:], r.Bytes(uint64(nodeIDSize)))
	g.Capacity = r.Uvarint()
	g.Issued = readUnix(r)
	copy(g.Sig[:], r.Bytes(sigSize))
	if err := r.Done(); err != nil {
		return CapacityGrant{}, fmt.Errorf("capacity grant: %w", err)
	}
	return g, nil
}

// Verify checks the site's signature.
func (g CapacityGrant) Verify(site tree.PublicKey) error {
	if !verify(site, domainGrantCap, g.body(), g.Sig[:]) {
		return fmt.Errorf("capacity grant for %s: %w", g.Node.String()[:16], ErrBadSignature)
	}
	return nil
}

// grantRefreshRounds is how many anti-entropy rounds (Config.SyncEvery:
// 30 s by default) pass before the origin spreads every grant again, for
// nodes that restarted or missed a broadcast (gossip is best effort).
const grantRefreshRounds = 15

// Granted is the capacity placement counts at most for node id.
func (s *Swarm) Granted(id NodeID) uint64 {
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	if g, ok := s.grants[id]; ok {
		return g.Capacity
	}
	return DefaultGrant
}

// SetGrants puts the operator's grants into force on the origin and
// spreads them. Grants are never withdrawn, only replaced by newer ones
// (gritsd grant NODE --capacity default issues one of DefaultGrant).
func (s *Swarm) SetGrants(gs []CapacityGrant) error {
	for _, g := range gs {
		if err := g.Verify(s.cfg.Site); err != nil {
			return err
		}
	}
	for _, g := range gs {
		s.keepGrant(g)
	}
	s.spreadGrants()
	return nil
}

// keepGrant records g if it is newer than the one held for its node.
func (s *Swarm) keepGrant(g CapacityGrant) bool {
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	if old, ok := s.grants[g.Node]; ok && !g.Issued.After(old.Issued) {
		return false
	}
	s.grants[g.Node] = g
	return true
}

// acceptGrant takes a grant from gossip: the site's signature makes it
// the origin's, whoever relayed it.
func (s *Swarm) acceptGrant(b []byte) error {
	g, err := DecodeGrantCap(b)
	if err != nil {
		return err
	}
	if err := g.Verify(s.cfg.Site); err != nil {
		return err
	}
	if s.keepGrant(g) {
		s.log.Debug("capacity grant", "node", g.Node.String()[:16], "capacity", g.Capacity)
	}
	return nil
}

// spreadGrants queues every grant held for gossip (the origin's).
func (s *Swarm) spreadGrants() {
	if s.Role() != RoleOrigin {
		return
	}
	s.grantMu.Lock()
	msgs := make([]*latestBroadcast, 0, len(s.grants))
	for id, g := range s.grants {
		msgs = append(msgs, &latestBroadcast{node: id, msg: append([]byte{msgGrant}, g.Encode()...)})
	}
	s.grantsSpread, s.grantsJoined = s.cfg.Now(), false
	s.grantMu.Unlock()
	for _, m := range msgs {
		s.queue.QueueBroadcast(m)
	}
}

// grantsDue reports whether the origin should spread its grants again.
func (s *Swarm) grantsDue() bool {
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	return len(s.grants) > 0 && (s.grantsJoined || s.cfg.Now().Sub(s.grantsSpread) >= grantRefreshRounds*s.cfg.SyncEvery)
}

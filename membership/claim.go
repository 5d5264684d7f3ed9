package membership

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/grits-cdn/grits/internal/wire"
)

// A node's signed claim: what it says about itself in gossip (its
// metadata: grits/1 address, URL, capacity, state) together with the
// gossip address memberlist lists it at, signed with its own node key.
// Certificates are public, so a valid certificate in metadata proves
// nothing about who sent it; the claim does, and binding the gossip
// address and a time keeps a claim from being replayed from another
// address or after a newer one (docs/design.md, "Membership").

// Metadata extension types (Meta.Ext).
const (
	ExtClaim = 1 // the node's signed claim: claimSize bytes
)

const (
	domainClaim = "grits-node-claim-v1\x00"
	// claimSize is a claim record: the time it was made (Unix
	// milliseconds, 8 bytes big-endian) and the node's signature.
	claimSize = 8 + sigSize
	// claimExtSize is what a claim adds to the encoded metadata: type,
	// length, record.
	claimExtSize = 1 + 1 + claimSize
)

// ErrUnsigned: node metadata without a signed claim, refused once the
// swarm signs (an impostor under a member's name cannot sign).
var ErrUnsigned = errors.New("membership: metadata not signed by the node")

// Claim is a decoded claim record.
type Claim struct {
	Time time.Time // millisecond precision
	Sig  [sigSize]byte
}

// DecodeClaim parses a claim record (the data of an ExtClaim extension).
func DecodeClaim(b []byte) (Claim, error) {
	var c Claim
	r := wire.NewReader(b, ErrMalformed)
	ms := r.Bytes(8)
	copy(c.Sig[:], r.Bytes(sigSize))
	if err := r.Done(); err != nil {
		return Claim{}, fmt.Errorf("signed claim: %w", err)
	}
	u := binary.BigEndian.Uint64(ms)
	if u > 1<<62 {
		return Claim{}, fmt.Errorf("signed claim: %w: time %d", ErrMalformed, u)
	}
	c.Time = time.UnixMilli(int64(u)).UTC()
	return c, nil
}

// Encode returns the claimSize bytes of c.
func (c Claim) Encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, claimSize), uint64(c.Time.UnixMilli()))
	return append(b, c.Sig[:]...)
}

// claimBody is what a claim signs: the gossip address, the time, and the
// metadata without the claim itself.
func claimBody(m Meta, ip net.IP, port uint16, t time.Time) ([]byte, error) {
	m.Ext = slices.DeleteFunc(slices.Clone(m.Ext), func(e MetaExt) bool { return e.Type == ExtClaim })
	meta, err := m.Encode()
	if err != nil {
		return nil, err
	}
	ip16 := ip.To16()
	if ip16 == nil {
		return nil, fmt.Errorf("signed claim: gossip address %v is not an IP address", ip)
	}
	b := make([]byte, 0, 16+2+8+len(meta))
	b = append(b, ip16...)
	b = binary.BigEndian.AppendUint16(b, port)
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixMilli()))
	return append(b, meta...), nil
}

// SignClaim returns m with a claim made at t (millisecond precision) by
// key, for a node at gossip address ip:port. Any claim m had is replaced.
func SignClaim(key ed25519.PrivateKey, m Meta, ip net.IP, port uint16, t time.Time) (Meta, error) {
	t = time.UnixMilli(t.UnixMilli()).UTC()
	body, err := claimBody(m, ip, port, t)
	if err != nil {
		return Meta{}, err
	}
	c := Claim{Time: t}
	copy(c.Sig[:], sign(key, domainClaim, body))
	m.Ext = slices.DeleteFunc(slices.Clone(m.Ext), func(e MetaExt) bool { return e.Type == ExtClaim })
	m.Ext = append(m.Ext, MetaExt{Type: ExtClaim, Data: c.Encode()})
	slices.SortFunc(m.Ext, func(a, b MetaExt) int { return int(a.Type) - int(b.Type) })
	return m, nil
}

// VerifyClaim checks that m carries a claim signed by node id for gossip
// address ip:port, and returns it. ErrUnsigned: m has none.
func VerifyClaim(m Meta, id NodeID, ip net.IP, port uint16) (Claim, error) {
	i := slices.IndexFunc(m.Ext, func(e MetaExt) bool { return e.Type == ExtClaim })
	if i < 0 {
		return Claim{}, fmt.Errorf("node %s: %w", id.String()[:16], ErrUnsigned)
	}
	c, err := DecodeClaim(m.Ext[i].Data)
	if err != nil {
		return Claim{}, err
	}
	body, err := claimBody(m, ip, port, c.Time)
	if err != nil {
		return Claim{}, err
	}
	if !verify(id, domainClaim, body, c.Sig[:]) {
		return Claim{}, fmt.Errorf("claim of node %s at %s: %w (not signed by that node's key, or for another address)",
			id.String()[:16], net.JoinHostPort(ip.String(), fmt.Sprint(port)), ErrBadSignature)
	}
	return c, nil
}

// claimsVersion is the memberlist delegate protocol version from which
// a node reads signed claims (Member.readsClaims).
const claimsVersion = 1

// upgradeWindow is how long a member of the previous release (one that
// does not read claims) that was seen go still keeps the swarm from
// signing: a rolling upgrade restarts each node within it, and a node
// of the previous release that comes back later finds itself refused
// (docs/design.md, "Upgrades").
const upgradeWindow = 10 * time.Minute

// maxVerifiedClaims bounds the cache of verified claims (emptied when
// full: it only saves work).
const maxVerifiedClaims = 4096

// checkMetaSize refuses metadata that would not fit memberlist's limit
// once signed.
func checkMetaSize(m Meta) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	if len(b)+claimExtSize > MetaMaxSize {
		return fmt.Errorf("node metadata is %d bytes and its signature %d more, memberlist allows %d (shorten the URL or the pinned paths)", len(b), claimExtSize, MetaMaxSize)
	}
	return nil
}

// Signing reports whether this node signs its metadata and refuses
// members' unsigned metadata.
func (s *Swarm) Signing() bool { return s.signing.Load() }

// startSigning makes this node sign from now on (and say so in its
// snapshot). It may run inside a memberlist callback: it only signals.
func (s *Swarm) startSigning(why string) {
	if s.signing.CompareAndSwap(false, true) {
		s.log.Info("signing node metadata from now on; unsigned metadata is refused", "because", why)
		s.spreadMeta()
		s.snapshotSoon()
	}
}

// maybeSign starts signing once every member seen alive, or seen go
// within upgradeWindow, reads signed claims (the swarm has been
// upgraded), and there is at least one such member (a node alone, or
// just restarted, has not seen its swarm yet). Members its address book
// saw within upgradeWindow must have been seen since this start: a
// restarted node learns the members one by one, and the first ones it
// learns may all be upgraded while one it has not heard of yet is not.
//
// It decides only a push-pull interval after the node joined (syncLoop
// asks each round): memberlist announces the members of a join's state
// one by one, so a node restarted from a release without members.json
// would otherwise see one upgraded member, sign, and refuse the old
// origin announced a moment later: a split swarm in the middle of a
// rolling upgrade (TestRollingUpgrade saw it).
func (s *Swarm) maybeSign() {
	if s.signing.Load() {
		return
	}
	select {
	case <-s.joined:
	default:
		return
	}
	now := s.cfg.Now()
	others := 0
	s.mu.Lock()
	if s.signAfter.IsZero() {
		s.signAfter = now.Add(s.mc.PushPullInterval)
	}
	if now.Before(s.signAfter) {
		s.mu.Unlock()
		return
	}
	for id, k := range s.known {
		if _, seen := s.view[id]; !seen && time.Since(k.LastSeen) <= upgradeWindow {
			s.mu.Unlock()
			return
		}
	}
	for _, m := range s.view {
		if m.Self {
			continue
		}
		live := m.State == StateAlive || m.State == StateSuspect
		if !live && now.Sub(m.Since) > upgradeWindow {
			continue
		}
		if !m.readsClaims {
			s.mu.Unlock()
			return
		}
		if live {
			others++
		}
	}
	s.mu.Unlock()
	if others > 0 {
		s.startSigning("every member reads signed claims")
	}
}

// signedMeta is the metadata to advertise: signed once the swarm signs
// and the gossip address is known. s.mu must be held.
func (s *Swarm) signedMeta() Meta {
	if !s.signing.Load() || s.selfIP == nil {
		return s.meta
	}
	t := s.cfg.Now()
	if !t.After(s.lastClaim) {
		t = s.lastClaim.Add(time.Millisecond)
	}
	t = time.UnixMilli(t.UnixMilli())
	m, err := SignClaim(s.cfg.NodeKey, s.meta, s.selfIP, s.selfPort, t)
	if err != nil {
		s.log.Error("signing node metadata", "err", err)
		return s.meta
	}
	s.lastClaim = t
	return m
}

// claimOf verifies the claim in the metadata of n (decoded: meta), for
// node id, remembering what verified.
func (s *Swarm) claimOf(n *memberlist.Node, meta Meta, id NodeID) (time.Time, error) {
	key := string(n.Meta) + "\x00" + n.Address()
	s.claimMu.Lock()
	t, ok := s.claimsOK[key]
	s.claimMu.Unlock()
	if ok {
		return t, nil
	}
	c, err := VerifyClaim(meta, id, n.Addr, n.Port)
	if err != nil {
		return time.Time{}, err
	}
	s.claimMu.Lock()
	if len(s.claimsOK) >= maxVerifiedClaims {
		clear(s.claimsOK)
	}
	s.claimsOK[key] = c.Time
	s.claimMu.Unlock()
	return c.Time, nil
}

// checkClaim is admission's part for claims: a signed claim must verify
// and be no older than the newest accepted from that node (an old claim
// replayed, at the address it was made for); unsigned metadata is
// refused once this node signs.
func (s *Swarm) checkClaim(n *memberlist.Node, meta Meta, id NodeID) error {
	t, err := s.claimOf(n, meta, id)
	if errors.Is(err, ErrUnsigned) {
		if s.signing.Load() {
			return fmt.Errorf("%w: it runs a release older than the swarm, which signs what each node says of itself since every member was upgraded; upgrade it (docs/operator.md, \"Upgrades\")", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	s.claimMu.Lock()
	last := s.claimAt[id]
	if t.Before(last) {
		s.claimMu.Unlock()
		return fmt.Errorf("claim of node %s made at %s, older than the one of %s already seen: %w",
			id.String()[:16], t.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano), ErrBadSignature)
	}
	s.claimAt[id] = t
	s.claimMu.Unlock()
	// A member that signs decided the swarm has been upgraded (maybeSign,
	// with everything it saw); a node that has not decided yet follows
	// it at once. Otherwise a node killed before its snapshot said it
	// signs would come back unsigned and be refused by everyone, while
	// maybeSign waits up to upgradeWindow for a member that died meanwhile.
	if !s.signing.Load() {
		s.startSigning("a member signs: the swarm has been upgraded")
	}
	return nil
}

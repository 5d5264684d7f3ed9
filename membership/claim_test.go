package membership

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/grits-cdn/grits/tree"
)

// rawMeta is the delegate of a memberlist run by hand, as a member with
// the swarm's gossip key could: it advertises whatever metadata the
// attacker chose.
type rawMeta struct {
	mu   sync.Mutex
	meta []byte
}

func (d *rawMeta) NodeMeta(int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}
func (d *rawMeta) NotifyMsg([]byte)                {}
func (d *rawMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (d *rawMeta) LocalState(bool) []byte          { return nil }
func (d *rawMeta) MergeRemoteState([]byte, bool)   {}

// rawMember starts a memberlist named name on a loopback port with the
// swarm's gossip key, advertising meta.
func rawMember(t *testing.T, c *cluster, name string, meta []byte) (*memberlist.Memberlist, *rawMeta) {
	t.Helper()
	mc := memberlist.DefaultLocalConfig()
	mc.Name = name
	mc.BindAddr, mc.BindPort = "127.0.0.1", lowPort(t)
	mc.AdvertiseAddr, mc.AdvertisePort = mc.BindAddr, mc.BindPort
	ring, err := memberlist.NewKeyring(c.ring.Keys, c.ring.Keys[0])
	if err != nil {
		t.Fatal(err)
	}
	mc.Keyring, mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = ring, true, true
	d := &rawMeta{meta: meta}
	mc.Delegate = d
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return ml, d
}

// memberOn is node n's view of member id.
func memberOn(n *node, id NodeID) (Member, bool) {
	for _, m := range n.swarm.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

func waitSigning(t *testing.T, nodes ...*node) {
	t.Helper()
	eventually(t, 30*time.Second, "every node signing its metadata", func() error {
		for _, n := range nodes {
			if !n.swarm.Signing() {
				return fmt.Errorf("node %s does not sign yet", n.id.String()[:16])
			}
			for _, o := range nodes {
				if m, ok := memberOn(n, o.id); o != n && (!ok || !m.Signed || m.State != StateAlive) {
					return fmt.Errorf("node %s sees %s as %+v", n.id.String()[:16], o.id.String()[:16], m.State)
				}
			}
		}
		return nil
	})
}

// A member that runs memberlist by hand under a departed member's name,
// with that member's public certificate (and even its last signed
// metadata, copied from gossip), at its own address: every node refuses
// it, and the real node, back, keeps its place. Before signed claims,
// the origin listed the impostor as the departed node, and went on
// listing it after the real node came back.
func TestImpostorUnderDepartedNameIsRefused(t *testing.T) {
	c := newCluster(t)
	v1 := c.add(RoleVolunteer, nil, nil)
	victim := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(30 * time.Second)
	waitSigning(t, c.origin, v1, victim)
	watchers := []*node{c.origin, v1}

	// What the attacker copies from gossip: the victim's metadata as
	// signed, and (variant) the same facts unsigned or signed with the
	// attacker's own key.
	stolen := victim.swarm.signedMetaBytes(t)
	m, err := DecodeMeta(stolen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyClaim(m, victim.id, net.ParseIP("127.0.0.1"), gossipPort(t, victim)); err != nil {
		t.Fatalf("the victim's own metadata: %v", err)
	}
	unsigned := m
	unsigned.Ext = nil
	unsignedBytes, _ := unsigned.Encode()
	_, otherKey, _ := ed25519.GenerateKey(nil)

	victimGossip := victim.gossip
	victim.stop()
	eventually(t, 30*time.Second, "the victim seen gone", func() error {
		for _, w := range watchers {
			if m, ok := memberOn(w, victim.id); !ok || m.State == StateAlive || m.State == StateSuspect {
				return fmt.Errorf("%s sees the victim %v", w.id.String()[:16], m.State)
			}
		}
		return nil
	})
	gone := time.Now()

	ml, d := rawMember(t, c, victim.id.String(), stolen)
	attackerAddr := ml.LocalNode().Address()
	forged, err := SignClaim(otherKey, m, net.ParseIP("127.0.0.1"), uint16(ml.LocalNode().Port), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forgedBytes, _ := forged.Encode()
	variants := [][]byte{stolen, unsignedBytes, forgedBytes}

	// The attack, again and again, past memberlist's reclaim time of a
	// dead node's name (1 s), in each variant; every node must refuse
	// it each time, and never list the victim at the attacker's address.
	refusedBefore := map[*node]int64{}
	for _, w := range watchers {
		refusedBefore[w] = w.swarm.refused.Load()
	}
	round := 0
	eventually(t, 60*time.Second, "the impostor refused, past the reclaim time, in every variant", func() error {
		d.mu.Lock()
		d.meta = variants[round%len(variants)]
		d.mu.Unlock()
		round++
		if err := ml.UpdateNode(time.Second); err != nil {
			t.Logf("attacker update: %v", err)
		}
		if _, err := ml.Join([]string{c.origin.gossip, v1.gossip}); err != nil {
			return fmt.Errorf("attacker join: %w", err)
		}
		for _, w := range watchers {
			if m, ok := memberOn(w, victim.id); ok && m.GossipAddr == attackerAddr {
				t.Fatalf("node %s lists the impostor as %s at %s (%s)", w.id.String()[:16], victim.id.String()[:16], attackerAddr, m.State)
			}
		}
		if time.Since(gone) < 3*time.Second || round < 3*len(variants) {
			return fmt.Errorf("round %d, %v since the victim left", round, time.Since(gone).Round(time.Millisecond))
		}
		for _, w := range watchers {
			if n := w.swarm.refused.Load() - refusedBefore[w]; n < int64(len(variants)) {
				return fmt.Errorf("node %s refused %d alive messages", w.id.String()[:16], n)
			}
		}
		return nil
	})

	// The real node comes back (the attacker still there) and is listed,
	// at its own address, everywhere.
	victim.start()
	eventually(t, 30*time.Second, "the real node back in its place", func() error {
		d.mu.Lock()
		d.meta = stolen
		d.mu.Unlock()
		ml.Join([]string{c.origin.gossip})
		for _, w := range watchers {
			m, ok := memberOn(w, victim.id)
			if !ok || m.State != StateAlive || m.GossipAddr != victimGossip || !m.Signed {
				return fmt.Errorf("node %s sees the victim %v at %s (signed %v), want alive at %s", w.id.String()[:16], m.State, m.GossipAddr, m.Signed, victimGossip)
			}
		}
		return nil
	})
	// Whoever reads the member list to ban a node finds the victim at its
	// own addresses: a ban of the node misbehaving at the attacker's
	// address cannot name the victim.
	for _, w := range watchers {
		m, _ := memberOn(w, victim.id)
		if m.Meta.ProtoAddr != victim.addr {
			t.Errorf("node %s lists the victim's grits/1 address as %s, want %s", w.id.String()[:16], m.Meta.ProtoAddr, victim.addr)
		}
	}
}

func gossipPort(t *testing.T, n *node) uint16 {
	t.Helper()
	_, p, err := net.SplitHostPort(n.gossip)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := strconv.Atoi(p)
	return uint16(u)
}

// signedMetaBytes is the metadata s advertises now, as gossip carries it.
func (s *Swarm) signedMetaBytes(t *testing.T) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.signedMeta().Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestClaimBindsAddressTimeAndContent(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	var id NodeID
	copy(id[:], pub)
	ip := net.ParseIP("192.0.2.7")
	now := time.Now()
	m := Meta{Cert: make([]byte, CertSize), ProtoAddr: "192.0.2.7:7433", URL: "https://v.example", Capacity: 1 << 30, Pins: []string{"/"}}
	signed, err := SignClaim(key, m, ip, 7946, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := signed.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MetaMaxSize {
		t.Fatalf("signed metadata of %d bytes", len(b))
	}
	t.Logf("signed metadata: %d bytes of memberlist's %d (the claim adds %d)", len(b), MetaMaxSize, claimExtSize)
	back, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := VerifyClaim(back, id, ip, 7946)
	if err != nil {
		t.Fatal(err)
	}
	if c.Time.UnixMilli() != now.UnixMilli() {
		t.Fatalf("claim time %v, want %v", c.Time, now)
	}
	if _, err := VerifyClaim(m, id, ip, 7946); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	changed := back
	changed.Capacity <<= 10
	for name, tc := range map[string]struct {
		m    Meta
		ip   string
		port uint16
	}{
		"another port":     {back, "192.0.2.7", 7947},
		"another address":  {back, "192.0.2.8", 7946},
		"changed capacity": {changed, "192.0.2.7", 7946},
	} {
		if _, err := VerifyClaim(tc.m, id, net.ParseIP(tc.ip), tc.port); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	_, other, _ := ed25519.GenerateKey(nil)
	forged, _ := SignClaim(other, m, ip, 7946, now)
	if _, err := VerifyClaim(forged, id, ip, 7946); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signed by another key: %v", err)
	}
	// Re-signing replaces the claim; other extensions stay, in order.
	m.Ext = []MetaExt{{Type: 7, Data: []byte("x")}}
	s1, _ := SignClaim(key, m, ip, 7946, now)
	s2, _ := SignClaim(key, s1, ip, 7946, now.Add(time.Second))
	if len(s2.Ext) != 2 || s2.Ext[0].Type != ExtClaim || s2.Ext[1].Type != 7 {
		t.Fatalf("extensions after re-signing: %+v", s2.Ext)
	}
	if _, err := VerifyClaim(s2, id, ip, 7946); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s2.Ext[1].Data, []byte("x")) {
		t.Fatal("extension data changed")
	}
}

// BenchmarkClaim is the cost of signing (at every metadata change) and
// verifying (at every new alive message, before the cache) a claim,
// beside verifying a certificate, which admission did already.
func BenchmarkClaim(b *testing.B) {
	v := recFixture(b)
	ip := net.ParseIP("192.0.2.1")
	key := recKey(recNodeSeed)
	signed, err := SignClaim(key, v.Meta, ip, 7946, recTime)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := SignClaim(key, v.Meta, ip, 7946, recTime); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := VerifyClaim(signed, recID(recNodeSeed), ip, 7946); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cert", func(b *testing.B) {
		for b.Loop() {
			if err := v.Cert.Verify(tree.PublicKeyOf(recSite), recTime); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestUnrecordedSignerRejoins: a node killed before its snapshot said
// the swarm signs comes back unsigned, and a member it knew is dead
// meanwhile, so it cannot decide for itself (maybeSign waits for every
// member it saw recently). It follows the members that sign instead of
// being refused by all of them.
func TestUnrecordedSignerRejoins(t *testing.T) {
	c := newCluster(t)
	gone := c.add(RoleVolunteer, nil, nil)
	back := c.add(RoleStorage, nil, []string{"/"})
	c.waitConverged(c.timing().Join)
	waitSigning(t, c.origin, gone, back)

	gone.kill()
	back.kill()
	snap := back.snapshot() // killed: what it last wrote, maybe before it signed
	snap.Signed = false
	// And a member it saw a moment ago that the others have already
	// dropped from their state, so no push-pull ever shows it.
	_, lostKey, _ := ed25519.GenerateKey(nil)
	snap.Members = append(snap.Members, Known{ID: tree.PublicKeyOf(lostKey), Role: RoleVolunteer,
		GossipAddr: fmt.Sprintf("127.0.0.1:%d", lowPort(t)), LastSeen: time.Now()})
	slices.SortFunc(snap.Members, func(a, b Known) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	if err := os.WriteFile(filepath.Join(back.dir, "members.json"), snap.Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	back.start()
	eventually(t, 2*c.timing().Reform, "the restarted node alive on the origin, signing", func() error {
		if !back.swarm.Signing() {
			return fmt.Errorf("the restarted node does not sign")
		}
		if m, ok := memberOn(c.origin, back.id); !ok || m.State != StateAlive {
			return fmt.Errorf("the origin sees the restarted node as %v (known %v)", m.State, ok)
		}
		return nil
	})
}

package membership

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// plainClient is a client with a node key and no credential: a joiner,
// or a read-only client.
func plainClient(t *testing.T, site tree.PublicKey, key ed25519.PrivateKey) *transport.Client {
	t.Helper()
	cfg := transport.ClientConfig{SiteKey: site, DialTimeout: userDialTimeout, StallTimeout: userDialTimeout}
	if key != nil {
		cert, err := transport.Certificate(key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Identity = &cert
	}
	c, err := transport.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// userDialTimeout bounds a handshake of the clients the tests drive as a
// user would: the transport's default, since a QUIC handshake under the
// race detector on a busy machine can take over a second.
const userDialTimeout = 5 * time.Second

// credClient presents key with credential cred.
func credClient(t *testing.T, site tree.PublicKey, key ed25519.PrivateKey, cred []byte) *transport.Client {
	t.Helper()
	cert, err := transport.CertificateWithCredential(key, cred)
	if err != nil {
		t.Fatal(err)
	}
	c, err := transport.NewClient(transport.ClientConfig{SiteKey: site, Identity: &cert, DialTimeout: userDialTimeout, StallTimeout: userDialTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestJoinWithToken(t *testing.T) {
	c := newCluster(t)
	r := c.publish(map[string][]byte{"index.html": []byte("hi")})
	ctx := context.Background()
	tok, err := NewToken(c.siteKey, c.origin.id, c.origin.addr, RoleStorage, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseToken(tok.String())
	if err != nil || parsed != tok {
		t.Fatalf("token text round trip: %v", err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	self := tree.PublicKeyOf(key)
	g, err := Join(ctx, plainClient(t, tok.Site, key), parsed, self)
	if err != nil {
		t.Fatal(err)
	}
	if g.Cert.Node != self || g.Cert.Role != RoleStorage || g.Cert.Verify(c.site, time.Now()) != nil {
		t.Fatalf("grant certificate %+v", g.Cert)
	}
	if g.Root == nil || g.Root.Hash() != r.Hash() {
		t.Fatalf("grant root %v, want %v", g.Root, r)
	}
	if len(g.Seeds) == 0 || g.Seeds[0] != c.origin.swarm.GossipAddr() {
		t.Fatalf("seeds %v", g.Seeds)
	}
	if string(g.Ring.Keys[0]) != string(c.ring.Keys[0]) {
		t.Fatal("grant carries the wrong gossip key")
	}

	// The same token again, from another node: refused, and the reason
	// reaches the joiner.
	_, key2, _ := ed25519.GenerateKey(nil)
	_, err = Join(ctx, plainClient(t, tok.Site, key2), parsed, tree.PublicKeyOf(key2))
	if !errors.Is(err, proto.ErrUnauthorized) || !containsText(err, "already used") {
		t.Fatalf("replayed token: %v", err)
	}
	// ...also after the origin restarts: the nonce was recorded durably.
	e2, err := NewEnroller(c.siteKey, c.origin.swarm, filepath.Join(c.origin.dir, "tokens.used"), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e2.enroll(ctx, transport.Peer{ID: tree.PublicKeyOf(key2), HasID: true}, tok.Encode()); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("replay after restart: %v", err)
	}
}

func containsText(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

func TestBadTokensAreRefusedAndChangeNothing(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	_, otherSite, _ := ed25519.GenerateKey(nil)
	good, _ := NewToken(c.siteKey, c.origin.id, c.origin.addr, RoleVolunteer, time.Now().Add(time.Hour))
	expired, _ := NewToken(c.siteKey, c.origin.id, c.origin.addr, RoleVolunteer, time.Now().Add(-time.Minute))
	foreign, _ := NewToken(otherSite, c.origin.id, c.origin.addr, RoleVolunteer, time.Now().Add(time.Hour))
	// The other site's token claiming to be ours: a signature that does
	// not verify.
	forged := foreign
	forged.Site = c.site
	flipped := good
	flipped.Sig[3] ^= 1
	usedBefore, _ := os.ReadFile(filepath.Join(c.origin.dir, "tokens.used"))

	for _, tc := range []struct {
		name string
		tok  Token
		want error
	}{
		{"expired", expired, ErrExpired},
		{"other site", foreign, ErrBadSignature},
		{"forged signature", forged, ErrBadSignature},
		{"flipped signature byte", flipped, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, key, _ := ed25519.GenerateKey(nil)
			_, err := c.origin.enrol.Enroll(ctx, transport.Peer{ID: tree.PublicKeyOf(key), HasID: true}, tc.tok.Encode())
			if !errors.Is(err, tc.want) || !errors.Is(err, proto.ErrUnauthorized) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// Over the network too, through Join (for the tokens whose
			// site key is ours: Join checks the grant against it).
			if tc.tok.Site == c.site {
				_, err = Join(ctx, plainClient(t, c.site, key), tc.tok, tree.PublicKeyOf(key))
				if !errors.Is(err, proto.ErrUnauthorized) {
					t.Fatalf("join: %v", err)
				}
			}
		})
	}
	usedAfter, _ := os.ReadFile(filepath.Join(c.origin.dir, "tokens.used"))
	if string(usedBefore) != string(usedAfter) {
		t.Fatal("refused tokens changed the used-token record")
	}
	// A joiner without a node key cannot enroll.
	if _, err := Join(ctx, plainClient(t, c.site, nil), good, NodeID{}); err == nil {
		t.Fatal("enrolled a client without a key")
	}
	// A token naming a different origin key: the joiner refuses to talk
	// to the impostor, and the token stays usable.
	_, impostor, _ := ed25519.GenerateKey(nil)
	redirected, _ := NewToken(c.siteKey, tree.PublicKeyOf(impostor), c.origin.addr, RoleVolunteer, time.Now().Add(time.Hour))
	_, key, _ := ed25519.GenerateKey(nil)
	if _, err := Join(ctx, plainClient(t, c.site, key), redirected, tree.PublicKeyOf(key)); !errors.Is(err, ErrNotMember) {
		t.Fatalf("token for another origin key: %v", err)
	}
	if _, err := Join(ctx, plainClient(t, c.site, key), good, tree.PublicKeyOf(key)); err != nil {
		t.Fatalf("good token after the refusals: %v", err)
	}
	// Garbage.
	for _, s := range []string{"", "grits-join-1.", "grits-join-1.!!!", "hello", good.String()[:40]} {
		if _, err := ParseToken(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseToken(%q): %v", s, err)
		}
	}
}

func TestConnectionsNeedAValidCertificateOfTheirOwnKey(t *testing.T) {
	c := newCluster(t)
	v := c.add(RoleVolunteer, nil, nil)
	r := c.publish(map[string][]byte{"a": []byte("content")})
	c.waitRoot(r)
	ctx := context.Background()
	_, otherSite, _ := ed25519.GenerateKey(nil)
	_, attacker, _ := ed25519.GenerateKey(nil)
	aid := tree.PublicKeyOf(attacker)
	foreignCert, _ := IssueCert(otherSite, aid, RoleVolunteer, time.Now(), time.Hour)
	expiredCert, _ := IssueCert(c.siteKey, aid, RoleVolunteer, time.Now().Add(-2*time.Hour), time.Hour)

	for _, tc := range []struct {
		name string
		cred []byte
	}{
		{"certificate from another site", foreignCert.Encode()},
		{"expired certificate", expiredCert.Encode()},
		{"another node's certificate", v.cert.Encode()},
		{"garbage credential", []byte("not a certificate")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := credClient(t, c.site, attacker, tc.cred)
			if _, err := cl.GetBlock(ctx, c.origin.addr, r.Tree); err == nil {
				t.Fatal("the origin served a connection with a bad certificate")
			}
			if _, err := cl.SwarmKeys(ctx, v.addr); err == nil {
				t.Fatal("a volunteer handed out the swarm keys")
			}
		})
	}
	// A read-only client without a certificate may read, not get keys.
	ro := plainClient(t, c.site, nil)
	if _, err := ro.GetBlock(ctx, c.origin.addr, r.Tree); err != nil {
		t.Fatalf("read-only client refused: %v", err)
	}
	if _, err := ro.SwarmKeys(ctx, c.origin.addr); !errors.Is(err, proto.ErrUnauthorized) {
		t.Fatalf("keys to a read-only client: %v", err)
	}
	// A member's own certificate works.
	if _, err := v.client.SwarmKeys(ctx, c.origin.addr); err != nil {
		t.Fatalf("member refused keys: %v", err)
	}
	// Members refuse to fetch from a server presenting someone else's
	// certificate.
	if err := v.swarm.VerifyServer(aid, v.cert.Encode()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("impostor server: %v", err)
	}
}

func TestNodeWithForeignCertificateNeverJoinsTheView(t *testing.T) {
	c := newCluster(t)
	c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	// A node that somehow holds the gossip key but whose certificate the
	// site did not issue.
	_, otherSiteKey, _ := ed25519.GenerateKey(nil)
	_, key, _ := ed25519.GenerateKey(nil)
	id := tree.PublicKeyOf(key)
	cert, _ := IssueCert(otherSiteKey, id, RoleVolunteer, time.Now(), time.Hour)
	cl := credClient(t, tree.PublicKeyOf(otherSiteKey), key, cert.Encode())
	log, err := tree.OpenLog(context.Background(), filepath.Join(t.TempDir(), "roots.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	rogue, err := Start(context.Background(), Config{NodeKey: key, Site: tree.PublicKeyOf(otherSiteKey), Cert: cert,
		Gossip: "127.0.0.1:0", ProtoAddr: "127.0.0.1:9", Ring: c.ring, Seeds: []string{c.origin.swarm.GossipAddr()},
		Profile: ProfileLocal, Roots: log, Client: cl})
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Kill()
	// Wait until a legitimate node that starts after the rogue is seen
	// by all: the rogue had as long to be let in, and must not be.
	c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	for _, n := range c.live() {
		for _, m := range n.swarm.Members() {
			if m.ID == id {
				t.Fatalf("node %v lists the rogue as %s", n.role, m.State)
			}
		}
		for _, m := range n.swarm.ml.Members() {
			if m.Name == id.String() {
				t.Fatalf("memberlist of %v holds the rogue", n.role)
			}
		}
	}
}

func TestBanDropsTheNodeEverywhereAndRotatesTheGossipKey(t *testing.T) {
	c := newCluster(t)
	a := c.add(RoleVolunteer, nil, nil)
	b := c.add(RoleStorage, nil, []string{"/"})
	victim := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	r := c.publish(map[string][]byte{"a": []byte("content")})
	c.waitRoot(r)
	ctx := context.Background()
	// The victim talks to the origin: a live connection to drop.
	if _, err := victim.client.GetBlock(ctx, c.origin.addr, r.Tree); err != nil {
		t.Fatal(err)
	}

	newKey := make([]byte, KeySize)
	rand.Read(newKey)
	bans, err := SignBans(c.siteKey, nil, []NodeID{victim.id}, newKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.origin.swarm.Adopt(Keyring{Bans: bans, Keys: [][]byte{newKey}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	honest := []*node{c.origin, a, b}
	eventually(t, slack*c.timing().Root, "every honest node enforces the ban", func() error {
		for _, n := range honest {
			if !n.swarm.Bans().Banned(victim.id) {
				return fmt.Errorf("%v has ban list version %d", n.role, n.swarm.Ring().BanVersion())
			}
			for _, m := range n.swarm.Members() {
				if m.ID == victim.id {
					return fmt.Errorf("%v still lists the banned node", n.role)
				}
			}
		}
		return nil
	})
	t.Logf("ban in force on every node after %v", time.Since(start).Round(time.Millisecond))
	// Refused everywhere, as client and as server; no keys for it.
	for _, n := range honest {
		if _, err := victim.client.GetBlock(ctx, n.addr, r.Tree); err == nil {
			t.Fatalf("%v served the banned node", n.role)
		}
		if err := n.swarm.VerifyServer(victim.id, victim.cert.Encode()); !errors.Is(err, ErrBanned) {
			t.Fatalf("%v would fetch from the banned node: %v", n.role, err)
		}
	}
	if _, err := victim.client.SwarmKeys(ctx, a.addr); err == nil {
		t.Fatal("the banned node got the new keys")
	}
	// After the grace period only the new key is in use anywhere honest,
	// and the banned node, holding only the old one, loses the swarm.
	eventually(t, slack*(2*c.timing().KeyGrace+c.timing().Sync), "old gossip key dropped", func() error {
		for _, n := range honest {
			keys := n.swarm.ring.GetKeys()
			if len(keys) != 1 || string(keys[0]) != string(newKey) {
				return fmt.Errorf("%v holds %d keys", n.role, len(keys))
			}
		}
		return nil
	})
	eventually(t, slack*c.timing().Dead, "the banned node is cut off", func() error {
		for _, m := range victim.swarm.Alive() {
			if !m.Self {
				return fmt.Errorf("the banned node still sees %v alive", m.Role)
			}
		}
		for _, n := range honest {
			for _, m := range n.swarm.ml.Members() {
				if m.Name == victim.id.String() {
					return fmt.Errorf("%v's memberlist still has it", n.role) // (its State changes in place: not read here)
				}
			}
		}
		return nil
	})
	// The swarm works on: a new root reaches the honest nodes.
	r2 := c.publish(map[string][]byte{"b": []byte("more")})
	victim.kill()
	c.waitRoot(r2)
	// A node that joins later gets the current keys in its grant.
	tok, _ := NewToken(c.siteKey, c.origin.id, c.origin.addr, RoleVolunteer, time.Now().Add(time.Hour))
	_, key, _ := ed25519.GenerateKey(nil)
	g, err := Join(ctx, plainClient(t, c.site, key), tok, tree.PublicKeyOf(key))
	if err != nil {
		t.Fatal(err)
	}
	if string(g.Ring.Keys[0]) != string(newKey) || g.Ring.BanVersion() != 1 {
		t.Fatal("a new node was given the old keys")
	}
	// And the banned node cannot enroll again with a fresh token.
	tok2, _ := NewToken(c.siteKey, c.origin.id, c.origin.addr, RoleVolunteer, time.Now().Add(time.Hour))
	// (Its connection is refused before any request: "not authorized".)
	if _, err := Join(ctx, plainClient(t, c.site, victim.key), tok2, victim.id); !containsText(err, "not authorized") {
		t.Fatalf("banned node re-enrolled: %v", err)
	}
}

package membership

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// knows reports whether n's snapshot file lists every node of want, at
// its gossip address.
func knows(t *testing.T, n *node, want ...*node) error {
	t.Helper()
	snap := n.snapshot()
	for _, w := range want {
		i := slices.IndexFunc(snap.Members, func(k Known) bool { return k.ID == w.id })
		if i < 0 {
			return fmt.Errorf("%s's snapshot does not list %s", n.id.String()[8:16], w.id.String()[8:16])
		}
		if k := snap.Members[i]; k.GossipAddr != w.gossip || k.Role != w.role || k.ProtoAddr != w.addr {
			return fmt.Errorf("%s's snapshot lists %+v, want gossip %s, role %v, addr %s", n.id.String()[8:16], k, w.gossip, w.role, w.addr)
		}
	}
	return nil
}

// TestOriginRestartReformsTheSwarm: the origin has no seeds. Stopped
// and started again on its ports, it re-joins the volunteers its
// snapshot lists, and roots flow again.
func TestOriginRestartReformsTheSwarm(t *testing.T) {
	c := newCluster(t)
	vols := []*node{c.add(RoleVolunteer, nil, nil), c.add(RoleVolunteer, nil, nil), c.add(RoleStorage, nil, []string{"/"})}
	c.waitConverged(c.timing().Join)
	c.waitRoot(c.publish(map[string][]byte{"a": []byte("one")}))

	c.origin.stop()
	if err := knows(t, c.origin, vols...); err != nil {
		t.Fatalf("the origin's farewell snapshot: %v", err)
	}
	c.origin.start()
	start := time.Now()
	c.waitConverged(c.timing().Reform)
	t.Logf("the swarm re-formed %v after the origin restarted", time.Since(start).Round(time.Millisecond))
	c.waitRoot(c.publish(map[string][]byte{"a": []byte("two")}))
}

// TestOriginBackOnAnotherPort: the volunteers' seeds and snapshots name
// the origin's old gossip address, so only the origin's own snapshot
// can bring the swarm together again.
func TestOriginBackOnAnotherPort(t *testing.T) {
	c := newCluster(t)
	c.add(RoleVolunteer, nil, nil)
	c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	old := c.origin.gossip
	c.origin.stop()
	c.origin.gossip = ""
	c.origin.start()
	if c.origin.gossip == old {
		t.Fatalf("the origin came back on its old gossip address %s", old)
	}
	c.waitConverged(c.timing().Reform)
	c.waitRoot(c.publish(map[string][]byte{"a": []byte("after")}))
}

// TestEveryNodeRestarts stops the whole swarm and starts it again, the
// origin first and then last: whichever order, the node that comes up
// last finds the others, from its snapshot.
func TestEveryNodeRestarts(t *testing.T) {
	for _, originFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("origin first %v", originFirst), func(t *testing.T) {
			c := newCluster(t)
			vols := []*node{c.add(RoleVolunteer, nil, nil), c.add(RoleVolunteer, nil, nil)}
			c.waitConverged(c.timing().Join)
			for _, n := range slices.Backward(c.live()) {
				n.stop()
			}
			order := append(slices.Clone(vols), c.origin)
			if originFirst {
				order = append([]*node{c.origin}, vols...)
			}
			for _, n := range order {
				n.start()
			}
			c.waitConverged(c.timing().Reform)
			c.waitRoot(c.publish(map[string][]byte{"a": []byte("after")}))
		})
	}
}

// TestHereMakesAMemberPull: a member that hears "here" from a node it
// does not see alive pulls that node's state at once, so it does not
// wait for a push-pull that, in a large swarm, comes a minute later.
func TestHereMakesAMemberPull(t *testing.T) {
	c := newCluster(t)
	v := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	x := c.addAlone(RoleVolunteer) // knows nobody, and nobody knows it
	if n := len(x.swarm.Members()); n != 1 {
		t.Fatalf("the lone node sees %d members", n)
	}
	v.swarm.heard(encodeHere(x.id, x.gossip))
	c.waitConverged(c.timing().Join)
}

// TestRejoinTargets: what a node tries to join: known members not alive
// and seeds no alive member answers at; never itself, never a banned or
// forgotten node.
func TestRejoinTargets(t *testing.T) {
	c := newCluster(t)
	v := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	o := c.origin.swarm
	now := time.Now()
	gone, banned, old, twin := recID(0x11), recID(0x12), recID(0x13), recID(0x14)
	o.mu.Lock()
	o.known[gone] = Known{ID: gone, Role: RoleVolunteer, GossipAddr: "127.0.0.1:9", LastSeen: now.Add(-time.Hour)}
	o.known[banned] = Known{ID: banned, Role: RoleVolunteer, GossipAddr: "127.0.0.1:10", LastSeen: now}
	o.known[old] = Known{ID: old, Role: RoleStorage, GossipAddr: "127.0.0.1:11", LastSeen: now.Add(-DefaultForgetAfter - time.Minute)}
	o.known[twin] = Known{ID: twin, Role: RoleVolunteer, GossipAddr: v.gossip, LastSeen: now} // v answers there
	o.mu.Unlock()
	o.mu.Lock()
	o.seeds = []string{"127.0.0.1:9", "127.0.0.1:12", v.gossip, o.GossipAddr(), ""}
	o.mu.Unlock()
	got := o.rejoinTargets()
	want := map[string]string{"127.0.0.1:9": gone.String()[:16], "127.0.0.1:10": banned.String()[:16],
		"127.0.0.1:11": old.String()[:16], "127.0.0.1:12": "seed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("targets before the ban:\n got %v\nwant %v", got, want)
	}

	key := make([]byte, KeySize)
	rand.Read(key)
	bans, err := SignBans(c.siteKey, nil, []NodeID{banned}, key, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Adopt(Keyring{Bans: bans, Keys: [][]byte{key}}); err != nil {
		t.Fatal(err)
	}
	o.forget(now)
	o.mu.Lock()
	o.seeds = nil
	o.mu.Unlock()
	got = o.rejoinTargets()
	want = map[string]string{"127.0.0.1:9": gone.String()[:16]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("targets after the ban and forgetting:\n got %v\nwant %v", got, want)
	}
	for _, k := range o.Snapshot().Members {
		if k.ID == banned || k.ID == old {
			t.Errorf("the snapshot still lists %s", k.ID.String()[:16])
		}
	}
}

// TestDeadMembersAreForgotten: a member not seen for ForgetAfter leaves
// the view and the snapshot, and is no longer re-joined.
func TestDeadMembersAreForgotten(t *testing.T) {
	c := newCluster(t)
	c.forgetAfter = 2 * time.Second
	c.origin.stop()
	c.origin.start() // with the short ForgetAfter
	v := c.add(RoleVolunteer, nil, nil)
	w := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	v.kill()
	eventually(t, slack*(c.timing().Dead+c.forgetAfter), "the killed node is forgotten", func() error {
		for _, n := range []*node{c.origin, w} {
			for _, m := range n.swarm.Members() {
				if m.ID == v.id {
					return fmt.Errorf("%s still lists it %s", n.id.String()[8:16], m.State)
				}
			}
			for _, k := range n.swarm.Snapshot().Members {
				if k.ID == v.id {
					return fmt.Errorf("%s still remembers it", n.id.String()[8:16])
				}
			}
			if _, ok := n.swarm.rejoinTargets()[v.gossip]; ok {
				return fmt.Errorf("%s still tries to join it", n.id.String()[8:16])
			}
		}
		return nil
	})
}

// TestDamagedSnapshotIsIgnored: a snapshot that cannot be read costs a
// warning, not the start; the node joins through its seeds and writes a
// good one again.
func TestDamagedSnapshotIsIgnored(t *testing.T) {
	c := newCluster(t)
	v := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	v.stop()
	p := filepath.Join(v.dir, "members.json")
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	v.start()
	c.waitConverged(c.timing().Reform)
	v.stop()
	if err := knows(t, v, c.origin); err != nil {
		t.Fatal(err)
	}
}

// TestVerifierWaitsForStart: the client's check of servers waits for
// Start to bind the swarm (a restarted node's swarm dials before Start
// returns), and says ErrClosed if Start failed.
func TestVerifierWaitsForStart(t *testing.T) {
	v := NewVerifier()
	done := make(chan error, 1)
	go func() { done <- v.VerifyServer(recID(recNodeSeed), nil) }()
	select {
	case err := <-done:
		t.Fatalf("answered %v before any swarm was bound", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := Start(context.Background(), Config{Verifier: v}); err == nil {
		t.Fatal("Start without a root log or a client succeeded")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("after a failed Start: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after Start failed")
	}
}

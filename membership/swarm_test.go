package membership

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

func TestClusterRootsReachEveryNode(t *testing.T) {
	c := newCluster(t)
	for range 16 {
		c.add(RoleVolunteer, nil, nil)
	}
	for range 3 {
		c.add(RoleStorage, nil, []string{"/"})
	}
	c.waitConverged(c.timing().Join)
	for i := range 3 {
		r := c.publish(map[string][]byte{fmt.Sprintf("v%d/index.html", i): []byte(fmt.Sprintf("<h1>version %d</h1>", i))})
		c.waitRoot(r)
	}
	// Every node's log is one unbroken chain of the same roots.
	want := c.origin.log.Roots()
	for _, n := range c.live() {
		got := n.log.Roots()
		if len(got) == 0 || got[len(got)-1].Hash() != want[len(want)-1].Hash() {
			t.Fatalf("node %v ends its log with %v", n.role, got)
		}
	}
}

func TestOfflineNodeCatchesUpThroughTheChain(t *testing.T) {
	c := newCluster(t)
	v := c.add(RoleVolunteer, nil, nil)
	other := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	r1 := c.publish(map[string][]byte{"a": []byte("one")})
	c.waitRoot(r1)
	v.kill()
	var last tree.Root
	for i := range 3 {
		last = c.publish(map[string][]byte{"a": fmt.Appendf(nil, "v%d", i+2)})
	}
	c.waitRoot(last)
	_ = other
	v.start() // same key, same log: the node comes back as itself
	c.waitConverged(c.timing().Reform)
	c.waitRoot(last)
	roots := v.log.Roots()
	for i := 1; i < len(roots); i++ {
		if roots[i].Seq != roots[i-1].Seq+1 || roots[i].Prev != roots[i-1].Hash() {
			t.Fatalf("the restarted node's log is not a chain at %d: %v", i, roots)
		}
	}
	if roots[len(roots)-1].Seq != last.Seq {
		t.Fatalf("latest seq %d, want %d", roots[len(roots)-1].Seq, last.Seq)
	}
}

func TestForgedAndOldRootsAreDropped(t *testing.T) {
	c := newCluster(t)
	v := c.add(RoleVolunteer, nil, nil)
	w := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	r1 := c.publish(map[string][]byte{"a": []byte("one")})
	r2 := c.publish(map[string][]byte{"a": []byte("two")})
	c.waitRoot(r2)

	// A member gossips a root signed by another key, and the old root.
	_, otherKey, _ := generateKey()
	now := time.Now()
	forged, err := tree.SignRoot(otherKey, tree.Root{Seq: r2.Seq + 1, Prev: r2.Hash(), Time: now, Expires: now.Add(time.Hour), Tree: r1.Tree})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []tree.Root{forged, r1} {
		w.swarm.queue.QueueBroadcast(&latestBroadcast{msg: append([]byte{msgRoot}, r.Encode()...)})
	}
	if err := v.swarm.OfferRoot(context.Background(), forged); !errors.Is(err, tree.ErrWrongKey) {
		t.Fatalf("forged root: %v, want ErrWrongKey", err)
	}
	if err := v.swarm.OfferRoot(context.Background(), r1); !errors.Is(err, tree.ErrRollback) {
		t.Fatalf("old root: %v, want ErrRollback", err)
	}
	// A later real root still arrives, and nothing forged got in.
	r3 := c.publish(map[string][]byte{"b": []byte("three")})
	c.waitRoot(r3)
	for _, n := range c.live() {
		for _, r := range n.log.Roots() {
			if r.Hash() == forged.Hash() {
				t.Fatalf("node %v logged the forged root", n.role)
			}
		}
	}
}

func TestKilledNodeIsMarkedDeadAndComesBack(t *testing.T) {
	c := newCluster(t)
	var vs []*node
	for range 4 {
		vs = append(vs, c.add(RoleVolunteer, nil, nil))
	}
	c.waitConverged(c.timing().Join)
	victim := vs[0]
	victim.kill()
	eventually(t, slack*c.timing().Dead, "the killed node is marked dead everywhere", func() error {
		for _, n := range c.live() {
			for _, m := range n.swarm.Members() {
				if m.ID == victim.id && m.State != StateDead {
					return fmt.Errorf("%s sees it %s", n.id.String()[8:16], m.State)
				}
			}
		}
		return nil
	})
	// Its blocks are still served: placement moves on to the live nodes.
	r := c.publish(map[string][]byte{"big": randomData(200 << 10)})
	c.waitRoot(r)
	for _, n := range c.live() {
		if n.role == RoleOrigin {
			continue
		}
		for _, h := range n.fetcher.swarm.Homes(r.Tree) {
			if h.ID == victim.id {
				t.Fatal("a dead node is still a home node")
			}
		}
	}
	victim.start()
	c.waitConverged(c.timing().Reform)
	c.waitRoot(r)
}

func TestPullThroughCoalescesConcurrentRequests(t *testing.T) {
	c := newCluster(t)
	v := c.add(RoleVolunteer, nil, nil)
	c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	data := randomData(64 << 10)
	r := c.publish(map[string][]byte{"f": data})
	c.waitRoot(r)
	chunks := c.chunksOf(r, "f")
	// Not warmed (warming is off in these tests): the chunk is fetched on
	// demand, once, however many ask at the same time.
	h := chunks[0]
	if ok, _ := v.store.Has(context.Background(), h); ok {
		t.Skip("already warmed")
	}
	before := v.fetcher.Stats()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			b, err := v.fetcher.Get(context.Background(), h)
			if err == nil && blockstore.Sum(b) != h {
				err = fmt.Errorf("wrong bytes")
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	after := v.fetcher.Stats()
	if got := after.Fetched - before.Fetched; got != 1 {
		t.Fatalf("%d upstream fetches for 50 concurrent requests of one block, want 1", got)
	}
}

func TestStorageNodePinsTheWholeTreeAndAdvertisesIt(t *testing.T) {
	c := newCluster(t)
	s := c.add(RoleStorage, nil, []string{"/"})
	c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	files := map[string][]byte{"a/big": randomData(300 << 10), "a/small": []byte("small"), "b/c/d": randomData(40 << 10)}
	r := c.publish(files)
	c.waitRoot(r)
	eventually(t, 40*time.Second, "the origin sees the storage node complete", func() error {
		for _, m := range c.origin.swarm.Members() {
			if m.ID == s.id {
				if m.Meta.Complete != r.Seq || m.Meta.Lacking != 0 {
					return fmt.Errorf("complete %d lacking %d", m.Meta.Complete, m.Meta.Lacking)
				}
				return nil
			}
		}
		return errors.New("storage node not in the origin's member list")
	})
	// Every block of the tree is on the storage node, pinned.
	err := tree.Walk(context.Background(), s.store, r.Tree, func(v tree.Visit) (bool, error) {
		if v.Err != nil {
			return false, v.Err
		}
		info, err := s.store.Stat(context.Background(), v.Hash)
		if err != nil {
			return false, fmt.Errorf("%s %s: %w", v.Kind, v.Path, err)
		}
		if info.Residency != blockstore.Pinned {
			return false, fmt.Errorf("%s %s is %v", v.Kind, v.Path, info.Residency)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A change syncs only the difference.
	before := s.fetcher.Stats()
	r2 := c.publish(map[string][]byte{"b/c/e": []byte("new")})
	eventually(t, 40*time.Second, "second sync", func() error {
		if s.keeper.Complete() != r2.Seq {
			return fmt.Errorf("complete %d", s.keeper.Complete())
		}
		return nil
	})
	fetched := s.fetcher.Stats().Fetched - before.Fetched
	// New: the file's chunk and node, b/c, b and the root directory.
	if fetched > 6 {
		t.Fatalf("synced %d blocks for a one-file change", fetched)
	}
}

func TestVolunteersWarmTheBlocksTheyAreHomeFor(t *testing.T) {
	c := newClusterWith(t, ProfileLocal, 1<<30)
	var vols []*node
	for range 3 {
		vols = append(vols, c.add(RoleVolunteer, nil, nil))
	}
	c.waitConverged(c.timing().Join)
	data := randomData(1 << 20)
	r := c.publish(map[string][]byte{"media/video.mp4": data})
	c.waitRoot(r)
	chunks := c.chunksOf(r, "media/video.mp4")
	byID := map[NodeID]*node{}
	for _, v := range vols {
		byID[v.id] = v
	}
	eventually(t, 40*time.Second, "every chunk warmed at its home nodes", func() error {
		for _, h := range chunks {
			homes := vols[0].swarm.Homes(h)
			if len(homes) != 2 {
				return fmt.Errorf("%d homes", len(homes))
			}
			for _, m := range homes {
				if ok, _ := byID[m.ID].store.Has(context.Background(), h); !ok {
					return fmt.Errorf("chunk %s not at its home", h.Short())
				}
			}
		}
		return nil
	})
	// Warming fetched only what each volunteer is home for: a third of
	// the chunks stay away from each.
	for _, v := range vols {
		held := 0
		for _, h := range chunks {
			if ok, _ := v.store.Has(context.Background(), h); ok {
				held++
			}
		}
		if held == len(chunks) {
			t.Errorf("a volunteer warmed all %d chunks, not just its share", held)
		}
	}
}

func TestMemberRequestsCannotLoop(t *testing.T) {
	c := newCluster(t)
	vols := []*node{c.add(RoleVolunteer, nil, nil), c.add(RoleVolunteer, nil, nil), c.add(RoleVolunteer, nil, nil)}
	c.waitConverged(c.timing().Join)
	r := c.publish(map[string][]byte{"f": randomData(200 << 10)})
	c.waitRoot(r)
	// A block that one volunteer is not home for.
	var h blockstore.Hash
	var outsider *node
	tree.Walk(context.Background(), c.origin.store, r.Tree, func(v tree.Visit) (bool, error) {
		if outsider != nil {
			return false, nil
		}
		for _, n := range vols {
			if !n.fetcher.IsHome(v.Hash) {
				if ok, _ := n.store.Has(context.Background(), v.Hash); !ok {
					h, outsider = v.Hash, n
					return false, nil
				}
			}
		}
		return true, nil
	})
	if outsider == nil {
		t.Fatal("no block outside some volunteer's share")
	}
	member := transport.ContextWithPeer(context.Background(), transport.Peer{HasID: true, Credential: vols[0].cert.Encode()})
	before := outsider.fetcher.Stats()
	if _, err := outsider.fetcher.Get(member, h); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("member request for a block outside its share: %v, want not found", err)
	}
	if outsider.fetcher.Stats().Fetched != before.Fetched {
		t.Fatal("a member's request made a non-home volunteer fetch")
	}
	// A browser's request (no credential) is pulled through.
	if b, err := outsider.fetcher.Get(context.Background(), h); err != nil || blockstore.Sum(b) != h {
		t.Fatalf("anonymous request: %v", err)
	}
}

// TestLatestBroadcastInvalidates: a queued message gives way only to a
// newer one of its kind about the same node (any root to a newer root).
func TestLatestBroadcastInvalidates(t *testing.T) {
	a, b := NodeID{1}, NodeID{2}
	root := &latestBroadcast{msg: []byte{msgRoot, 1}}
	grantA := &latestBroadcast{node: a, msg: []byte{msgGrant, 1}}
	for _, tc := range []struct {
		name     string
		new, old *latestBroadcast
		want     bool
	}{
		{"root over root", &latestBroadcast{msg: []byte{msgRoot, 2}}, root, true},
		{"grant over grant, same node", &latestBroadcast{node: a, msg: []byte{msgGrant, 2}}, grantA, true},
		{"grant over grant, another node", &latestBroadcast{node: b, msg: []byte{msgGrant, 2}}, grantA, false},
		{"served over grant, same node", &latestBroadcast{node: a, msg: []byte{msgServed, 2}}, grantA, false},
		{"grant over root", grantA, root, false},
	} {
		if got := tc.new.Invalidates(tc.old); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

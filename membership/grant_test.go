package membership

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/transport"
)

// firstHomeShare is the share of blocks (of a fixed sample) whose first
// home is id, as node n places them.
func firstHomeShare(n *node, id NodeID) float64 {
	const blocks = 4000
	cands := n.swarm.candidates()
	won := 0
	for i := range blocks {
		h := blockstore.Sum(fmt.Appendf(nil, "block %d", i))
		if hs := Homes(h, cands, 1); len(hs) == 1 && hs[0].ID == id {
			won++
		}
	}
	return float64(won) / blocks
}

// A volunteer advertising an absurd capacity (2^63 bytes) is weighed
// by the capacity the origin granted it: DefaultGrant without a grant,
// the operator's grant once there is one. Before grants it was the first
// home of nearly every block.
func TestHugeCapacityGetsOnlyGrantedShare(t *testing.T) {
	c := newCluster(t)
	c.capacity = DefaultGrant
	var honest []*node
	for range 3 {
		honest = append(honest, c.add(RoleVolunteer, nil, nil))
	}
	c.capacity = 1 << 63
	greedy := c.add(RoleVolunteer, nil, nil)
	c.capacity = 0
	c.waitConverged(30 * time.Second)
	views := append([]*node{c.origin}, honest...)
	eventually(t, 30*time.Second, "every node placing the four volunteers", func() error {
		for _, v := range views {
			if n := len(v.swarm.candidates()); n != 4 {
				return fmt.Errorf("node %s places among %d nodes", v.id.String()[:16], n)
			}
		}
		return nil
	})

	// Without a grant: weighed as DefaultGrant, as much as each honest
	// node offers, so about a quarter.
	for _, v := range views {
		if s := firstHomeShare(v, greedy.id); s > 0.25+0.05 {
			t.Errorf("node %s makes the greedy node first home of %.1f%% of blocks, want at most about 25%%", v.id.String()[:16], 100*s)
		}
	}

	// The operator grants it 1 GiB: a tenth of each honest node's weight,
	// 1/31 of the blocks.
	if err := c.origin.swarm.SetGrants([]CapacityGrant{IssueGrant(c.siteKey, greedy.id, 1<<30, time.Now())}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the grant known everywhere", func() error {
		for _, v := range views {
			if g := v.swarm.Granted(greedy.id); g != 1<<30 {
				return fmt.Errorf("node %s counts %d bytes for the greedy node", v.id.String()[:16], g)
			}
		}
		return nil
	})
	for _, v := range views {
		if s := firstHomeShare(v, greedy.id); s > 1.0/31+0.03 {
			t.Errorf("node %s makes the greedy node first home of %.1f%% of blocks after a grant of 1 GiB, want about 3%%", v.id.String()[:16], 100*s)
		}
	}
}

// A volunteer home that takes requests and never answers is skipped
// after HomeWait, not waited for: the reader gets the block from the
// origin well within its fetch budget, even with a client that would
// wait a minute for a response. Before, the stalled home held every
// miss of its blocks for the whole budget.
func TestStalledHomeIsSkipped(t *testing.T) {
	c := newCluster(t)
	c.replication = 1
	reader := c.add(RoleVolunteer, nil, nil)
	c.stall = true
	staller := c.add(RoleVolunteer, nil, nil)
	c.stall = false
	r := c.publish(map[string][]byte{"big.bin": randomData(1 << 20)})
	c.waitRoot(r)
	eventually(t, 30*time.Second, "the reader placing both volunteers", func() error {
		if n := len(reader.swarm.candidates()); n != 2 {
			return fmt.Errorf("%d candidates", n)
		}
		return nil
	})
	var h blockstore.Hash
	found := false
	for _, x := range c.chunksOf(r, "big.bin") {
		if hs := Homes(x, reader.swarm.candidates(), 1); hs[0].ID == staller.id {
			h, found = x, true
			break
		}
	}
	if !found {
		t.Fatal("no chunk of the file has the stalling node as its home")
	}
	client, err := transport.NewClient(transport.ClientConfig{SiteKey: c.site, DialTimeout: userDialTimeout, StallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	f := NewFetcher(reader.swarm, blockstore.NewMem(-1), client, 20*time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.Fetch(ctx, h, blockstore.Cached); err != nil {
		t.Fatalf("fetch of a block whose home stalls: %v", err)
	}
	if st := f.Stats(); st.SourceErrors != 1 || st.Fetched != 1 {
		t.Errorf("fetch stats %+v: want the stalled home asked and given up once, the block fetched once", st)
	}
}

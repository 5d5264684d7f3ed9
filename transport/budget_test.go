package transport

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
)

// TestRequestBudget: a client outside the swarm gets its burst, then
// Overloaded with a time to retry, whatever it asks; a GetBlocks of many
// hashes costs as many requests as the HTTP API would take for them; a
// peer the server exempts (a member) is never limited.
func TestRequestBudget(t *testing.T) {
	s := newSite(t, map[string][]byte{"a": []byte("a")})
	const burst = 5
	member := func(p Peer) bool { return len(p.Credential) > 0 }
	srv, addr := startServer(t, ServerConfig{Store: s.store, RateLimit: 0.01, RateBurst: burst, Exempt: member})
	ctx := context.Background()
	stranger := newClient(t, s.pub, nil)

	ok, limited := 0, 0
	for range 3 * burst {
		_, err := stranger.GetBlock(ctx, addr, s.root.Tree)
		switch {
		case err == nil:
			ok++
		case errors.Is(err, proto.ErrOverloaded):
			limited++
		default:
			t.Fatalf("GetBlock: %v", err)
		}
	}
	if ok != burst || limited != 2*burst {
		t.Fatalf("%d answered and %d refused of %d requests, want %d and %d", ok, limited, 3*burst, burst, 2*burst)
	}
	if got := srv.Stats().Limited; got != int64(2*burst) {
		t.Errorf("Stats().Limited = %d, want %d", got, 2*burst)
	}

	// A member is not a stranger: its requests are never charged.
	_, cert := memberCert(t, []byte("a credential"))
	memberClient := newClient(t, s.pub, func(c *ClientConfig) { c.Identity = &cert })
	for i := range 3 * burst {
		if _, err := memberClient.GetBlock(ctx, addr, s.root.Tree); err != nil {
			t.Fatalf("member's request %d: %v", i, err)
		}
	}
}

func TestRequestCost(t *testing.T) {
	hashes := func(n int) []blockstore.Hash { return make([]blockstore.Hash, n) }
	for _, c := range []struct {
		req  proto.Message
		want float64
	}{
		{&proto.GetRoot{}, 1},
		{&proto.GetBlocks{Hashes: hashes(1)}, 1},
		{&proto.GetBlocks{Hashes: hashes(16)}, 1},
		{&proto.GetBlocks{Hashes: hashes(17)}, 2},
		{&proto.GetBlocks{Hashes: hashes(proto.MaxBatch)}, 16},
	} {
		if got := requestCost(c.req); got != c.want {
			t.Errorf("cost of %v with %v: %v, want %v", c.req.Type(), c.req, got, c.want)
		}
	}
	// A request dearer than the whole burst still gets through once the
	// bucket is full.
	b := newRequestBudget(1, 4)
	if ok, _ := b.take(budgetKey(mustAddr("192.0.2.1")), 16, timeZero); !ok {
		t.Error("a 16-token request refused by a full 4-token bucket")
	}
}

var timeZero = time.Unix(1e9, 0)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

package transport

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/grits-cdn/grits/proto"
)

// budgetBlocksPerRequest is how many hashes of a GetBlocks count as one
// request against a client's budget: as many as the HTTP API's
// /grits/v1/blocks/ takes in one request.
const budgetBlocksPerRequest = 16

// Bounds of the budget's memory: at most this many client addresses are
// tracked (the oldest idle ones make room), swept of full buckets once a
// minute.
const (
	budgetMaxClients = 1 << 16
	budgetSweepEvery = time.Minute
)

// requestBudget is a token bucket per client address (an IPv4 address,
// or the /64 of an IPv6 one): what one client outside the swarm may ask
// of this node per second.
type requestBudget struct {
	rate, burst float64

	mu        sync.Mutex
	clients   map[netip.Addr]budgetBucket
	lastSweep time.Time
}

type budgetBucket struct {
	tokens float64
	last   time.Time
}

func newRequestBudget(rate float64, burst int) *requestBudget {
	b := float64(burst)
	if b <= 0 {
		b = max(1, 2*rate)
	}
	return &requestBudget{rate: rate, burst: b, clients: map[netip.Addr]budgetBucket{}}
}

func budgetKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// take spends cost tokens of ip's bucket, or says how long until it has
// them.
func (b *requestBudget) take(ip netip.Addr, cost float64, now time.Time) (bool, time.Duration) {
	key := budgetKey(ip)
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.clients[key]
	if !ok {
		if now.Sub(b.lastSweep) >= budgetSweepEvery || len(b.clients) >= budgetMaxClients {
			b.sweep(now)
		}
		c = budgetBucket{tokens: b.burst, last: now}
	} else if dt := now.Sub(c.last); dt > 0 {
		c.tokens = min(b.burst, c.tokens+dt.Seconds()*b.rate)
		c.last = now
	}
	cost = min(cost, b.burst) // a large request is slow, never impossible
	if c.tokens >= cost {
		c.tokens -= cost
		b.clients[key] = c
		return true, 0
	}
	b.clients[key] = c
	return false, time.Duration((cost - c.tokens) / b.rate * float64(time.Second))
}

// sweep forgets the buckets that have refilled (they are the same as new
// ones) and, if the map is still full, the longest idle.
func (b *requestBudget) sweep(now time.Time) {
	b.lastSweep = now
	full := time.Duration(b.burst / b.rate * float64(time.Second))
	var oldest netip.Addr
	var oldestAt time.Time
	for k, c := range b.clients {
		if now.Sub(c.last) >= full {
			delete(b.clients, k)
			continue
		}
		if oldestAt.IsZero() || c.last.Before(oldestAt) {
			oldest, oldestAt = k, c.last
		}
	}
	if len(b.clients) >= budgetMaxClients {
		delete(b.clients, oldest)
	}
}

// requestCost is what req takes from a budget: one, or one per 16
// hashes of a GetBlocks.
func requestCost(req proto.Message) float64 {
	if gb, ok := req.(*proto.GetBlocks); ok {
		return float64(max(1, (len(gb.Hashes)+budgetBlocksPerRequest-1)/budgetBlocksPerRequest))
	}
	return 1
}

// charge takes req's cost from its client's budget: nil, or an error
// wrapping proto.ErrOverloaded (the client is told when to retry).
// Peers ServerConfig.Exempt exempts are never charged.
func (s *Server) charge(ctx context.Context, req proto.Message) error {
	if s.budget == nil {
		return nil
	}
	p, _ := PeerFromContext(ctx)
	if s.cfg.Exempt != nil && s.cfg.Exempt(p) {
		return nil
	}
	ok, wait := s.budget.take(addrIP(p.Addr), requestCost(req), time.Now())
	if ok {
		return nil
	}
	s.limited.Add(1)
	return fmt.Errorf("%w: this address's request budget is spent; retry in %v", proto.ErrOverloaded, wait.Round(time.Millisecond))
}

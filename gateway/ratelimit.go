package gateway

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ipRateLimiter is a token bucket per client address. Buckets that have
// refilled are indistinguishable from new ones and are swept; the map is
// bounded, and when it is full of active clients an arbitrary one is
// dropped (it starts again with a full bucket) rather than refusing new
// clients.
type ipRateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	// maxBuckets bounds the map; sweepEvery paces the idle sweep.
	maxBuckets int
	sweepEvery time.Duration

	mu        sync.Mutex
	buckets   map[netip.Addr]ipBucket
	lastSweep time.Time
}

type ipBucket struct {
	tokens float64
	last   time.Time
}

const (
	defaultMaxRateBuckets = 1 << 16
	rateSweepEvery        = time.Minute
	// rateMaxForwarded bounds the X-Forwarded-For entries walked.
	rateMaxForwarded = 32
)

func newIPRateLimiter(rate, burst float64) *ipRateLimiter {
	return &ipRateLimiter{
		rate: rate, burst: burst,
		maxBuckets: defaultMaxRateBuckets, sweepEvery: rateSweepEvery,
		buckets: map[netip.Addr]ipBucket{},
	}
}

// rateLimitKey groups an address with its neighbours that one client
// plausibly controls: the address itself for IPv4, its /64 for IPv6.
func rateLimitKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, err := ip.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return ip
}

// allow takes a token from ip's bucket, or says how long until there is
// one.
func (l *ipRateLimiter) allow(ip netip.Addr, now time.Time) (bool, time.Duration) {
	key := rateLimitKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if now.Sub(l.lastSweep) >= l.sweepEvery || len(l.buckets) >= l.maxBuckets && now.Sub(l.lastSweep) >= time.Second {
			l.sweep(now)
		}
		for k := range l.buckets {
			if len(l.buckets) < l.maxBuckets {
				break
			}
			delete(l.buckets, k)
		}
		b = ipBucket{tokens: l.burst, last: now}
	} else if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		l.buckets[key] = b
		return true, 0
	}
	l.buckets[key] = b
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep drops the buckets that have refilled.
func (l *ipRateLimiter) sweep(now time.Time) {
	l.lastSweep = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
}

// size is the number of buckets held, for tests.
func (l *ipRateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// rateLimitClientIP is the address a request is counted against: the
// peer's, unless the peer is a trusted proxy; then the right-most
// X-Forwarded-For entry that is not a trusted proxy (entries further left
// are the client's to write, and so to forge).
func (h *Handler) rateLimitClientIP(r *http.Request) netip.Addr {
	ip := parseRemoteIP(r.RemoteAddr)
	if !h.isTrustedProxy(ip) {
		return ip
	}
	xff := r.Header.Values("X-Forwarded-For")
	walked := 0
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			var entry string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				list, entry = list[:j], list[j+1:]
			} else {
				list, entry = "", list
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			if walked++; walked > rateMaxForwarded {
				return ip
			}
			a, ok := parseForwardedIP(entry)
			if !ok {
				// Garbage appended by a trusted hop: count it against
				// the closest address we know.
				return ip
			}
			ip = a
			if !h.isTrustedProxy(a) {
				return a
			}
		}
	}
	return ip
}

func (h *Handler) isTrustedProxy(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range h.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseRemoteIP reads http.Request.RemoteAddr ("ip:port"); an address it
// cannot read is the zero Addr, one shared bucket.
func parseRemoteIP(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// parseForwardedIP reads one X-Forwarded-For entry: an address, possibly
// with a port ("1.2.3.4:5", "[::1]:5").
func parseForwardedIP(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	s := newGWSite(t)
	const burst = 3
	cfg := s.config()
	cfg.RateLimit, cfg.RateBurst = 0.01, burst // no refill during the test

	t.Run("untrusted XFF ignored", func(t *testing.T) {
		g := startGW(t, cfg)
		for i := range burst + 1 {
			resp, _ := g.do(t, http.MethodGet, "/grits/v1/root", map[string]string{"X-Forwarded-For": "203.0.113." + strconv.Itoa(i)})
			if i < burst {
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
				continue
			}
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("request %d: status %d, want 429", i, resp.StatusCode)
			}
			ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("429 not readable cross-origin")
			}
		}
	})

	t.Run("trusted XFF honoured", func(t *testing.T) {
		cfg := cfg
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		g := startGW(t, cfg)
		for i := range 3 * burst {
			resp, _ := g.do(t, http.MethodGet, "/grits/v1/root", map[string]string{"X-Forwarded-For": "203.0.113." + strconv.Itoa(i)})
			if resp.StatusCode != 200 {
				t.Fatalf("client %d: status %d", i, resp.StatusCode)
			}
		}
		for i := range burst + 1 {
			// A forged left-most entry does not help: the proxy appended
			// the real client on the right.
			xff := "198.51.100." + strconv.Itoa(i) + ", 192.0.2.1"
			resp, _ := g.do(t, http.MethodGet, "/grits/v1/root", map[string]string{"X-Forwarded-For": xff})
			want := 200
			if i == burst {
				want = http.StatusTooManyRequests
			}
			if resp.StatusCode != want {
				t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, want)
			}
		}
	})

	t.Run("disabled", func(t *testing.T) {
		cfg := cfg
		cfg.RateLimit = -1
		g := startGW(t, cfg)
		if g.h.limiter != nil {
			t.Fatal("limiter with a negative rate")
		}
		for i := range 2 * burst {
			if resp, _ := g.get(t, "/grits/v1/root"); resp.StatusCode != 200 {
				t.Fatalf("request %d: status %d", i, resp.StatusCode)
			}
		}
	})

	t.Run("defaults", func(t *testing.T) {
		h, err := NewHandler(Config{Store: s.store})
		if err != nil {
			t.Fatal(err)
		}
		if h.limiter == nil || h.limiter.rate != DefaultRateLimit || h.limiter.burst != DefaultRateBurst {
			t.Fatalf("limiter %+v", h.limiter)
		}
	})
}

func TestRateLimiterBuckets(t *testing.T) {
	l := newIPRateLimiter(10, 2)
	l.maxBuckets = 4
	now := time.Unix(1000, 0)
	a := netip.MustParseAddr("192.0.2.1")
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allow(a, now); ok != want {
			t.Fatalf("request %d: %v", i, ok)
		}
	}
	if ok, wait := l.allow(a, now); ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("empty bucket: %v, wait %v", ok, wait)
	}
	if ok, _ := l.allow(a, now.Add(100*time.Millisecond)); !ok {
		t.Fatal("no refill after 1/rate")
	}
	// One IPv6 /64 shares a bucket.
	b1, b2 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff:2")
	l.allow(b1, now)
	l.allow(b2, now)
	if ok, _ := l.allow(b1, now); ok {
		t.Fatal("a /64 got more than its burst")
	}
	if ok, _ := l.allow(netip.MustParseAddr("2001:db8:0:1::1"), now); !ok {
		t.Fatal("another /64 limited")
	}
	// Bounded: many clients never grow the map past maxBuckets.
	for i := range 100 {
		l.allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
		if n := l.size(); n > l.maxBuckets {
			t.Fatalf("%d buckets, bound %d", n, l.maxBuckets)
		}
	}
	// Idle buckets are swept.
	later := now.Add(time.Hour)
	l.allow(netip.MustParseAddr("192.0.2.200"), later)
	if n := l.size(); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
}

func TestRateLimitClientIP(t *testing.T) {
	h := &Handler{trusted: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	}}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "192.0.2.7:443", nil, "192.0.2.7"},
		{"direct ignores XFF", "192.0.2.7:443", []string{"198.51.100.1"}, "192.0.2.7"},
		{"trusted without XFF", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"trusted one hop", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted", "10.1.2.3:5000", []string{"6.6.6.6, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers", "10.1.2.3:5000", []string{"6.6.6.6", "198.51.100.2, 10.0.0.1"}, "198.51.100.2"},
		{"all trusted", "10.1.2.3:5000", []string{"10.0.0.9, 10.0.0.8"}, "10.0.0.9"},
		{"with port", "10.1.2.3:5000", []string{"198.51.100.3:1234"}, "198.51.100.3"},
		{"v6 with port", "10.1.2.3:5000", []string{"[2001:db8::5]:1234"}, "2001:db8::5"},
		{"garbage", "10.1.2.3:5000", []string{"198.51.100.1, garbage"}, "10.1.2.3"},
		{"mapped", "[::ffff:192.0.2.9]:443", nil, "192.0.2.9"},
		{"v6 proxy", "[2001:db8:ffff::1]:443", []string{"2001:db8:1::9"}, "2001:db8:1::9"},
		{"empty entries", "10.1.2.3:5000", []string{"198.51.100.4, ,"}, "198.51.100.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := h.rateLimitClientIP(r); got != netip.MustParseAddr(tc.want) {
				t.Fatalf("client %v, want %s", got, tc.want)
			}
		})
	}
}

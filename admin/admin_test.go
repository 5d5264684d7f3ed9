package admin

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// testSwarm is a fixed membership view.
type testSwarm struct {
	id      membership.NodeID
	members []membership.Member
	served  []membership.Served
}

func (s *testSwarm) ID() membership.NodeID        { return s.id }
func (s *testSwarm) Members() []membership.Member { return s.members }
func (s *testSwarm) Served() []membership.Served  { return s.served }
func (s *testSwarm) Health() membership.Health {
	return membership.Health{Score: 1, Queued: 2, Members: len(s.members)}
}
func (s *testSwarm) add(role membership.Role) membership.NodeID {
	pub, _, _ := ed25519.GenerateKey(nil)
	id := tree.PublicKey(pub)
	m := membership.Member{ID: id, Role: role, State: membership.StateAlive}
	if role == membership.RoleStorage {
		m.Meta.Pins = []string{"/"}
	}
	s.members = append(s.members, m)
	return id
}

type testRoots struct{ r tree.Root }

func (r testRoots) Latest() (tree.Root, bool) { return r.r, r.r.Seq > 0 }

type testCache struct{ st gateway.CacheStats }

func (c testCache) CacheStats() gateway.CacheStats { return c.st }

// testServer is an admin Server over a fixed swarm: an origin, a
// volunteer and a storage node.
func testServer(t *testing.T, ready func() []string) (*Server, *testSwarm) {
	t.Helper()
	sw := &testSwarm{}
	sw.id = sw.add(membership.RoleOrigin)
	sw.members[0].Self = true
	sw.add(membership.RoleVolunteer)
	st := sw.add(membership.RoleStorage)
	now := time.Now()
	root := tree.Root{Seq: 3, Time: now.Add(-time.Minute), Expires: now.Add(time.Hour)}
	for i := range sw.members {
		if sw.members[i].ID == st {
			sw.members[i].Meta.Complete = 3
		}
		sw.members[i].Meta.RootSeq = 3
	}
	store := blockstore.NewMem(-1)
	if _, err := store.Put(t.Context(), []byte("a block"), blockstore.PutOptions{Residency: blockstore.Pinned}); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	s, err := Listen(Config{Addr: "127.0.0.1:0", Metrics: m, Series: NewSeries(now.Add(-time.Hour)), Sources: Sources{
		Role: "origin", Swarm: sw, Roots: testRoots{root}, Ready: ready, Store: store,
		Cache: testCache{gateway.CacheStats{Hits: 3, Misses: 1, Bytes: 100}},
		Reports: func() []Report {
			return []Report{{Peer: "https://v1.example", Count: 2, Last: now, Reason: "<b>bad</b> hash"}}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, sw
}

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

// TestMetricsNamesLint drives every instrument and runs promlint, from
// client_golang's testutil, over everything /metrics serves.
func TestMetricsNamesLint(t *testing.T) {
	s, _ := testServer(t, nil)
	m := s.cfg.Metrics
	h := m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	for _, p := range []string{"/grits/v1/block/x", "/grits/v1/lookup/x/y", "/index.html", "/grits-sw.js"} {
		get(t, h, p)
	}
	m.Answer(transport.Answer{Type: proto.TypeLookup, Bytes: 300, Duration: time.Millisecond})
	m.Answer(transport.Answer{Type: proto.TypeGetBlock, Bytes: 5, Err: fmt.Errorf("x: %w", blockstore.ErrNotFound)})
	m.Report()
	s.observe()

	resp := get(t, s.Handler(), "http://127.0.0.1/metrics")
	if resp.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.Code, resp.Body)
	}
	text := resp.Body.String()
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, want := range []string{
		`grits_served_requests_total{endpoint="block",protocol="h1",result="ok"} 1`,
		`grits_served_bytes_total{endpoint="lookup",protocol="grits1",result="ok"} 300`,
		`grits_served_requests_total{endpoint="block",protocol="grits1",result="not_found"} 1`,
		`grits_served_requests_total{endpoint="script",protocol="h1",result="ok"} 1`,
		`grits_request_duration_seconds_count{endpoint="lookup",protocol="grits1"} 1`,
		`grits_browser_reports_total 1`,
		`grits_members{role="storage",state="alive"} 1`,
		`grits_root_seq 3`,
		`grits_replicas_complete 1`,
		`grits_ready 1`,
		`grits_gateway_cache_requests_total{result="hit"} 3`,
		`grits_blockstore_bytes{residency="pinned"} 7`,
		`grits_verification_failures_total{cause="proof"} 0`,
		`grits_memberlist_health_score 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

// TestHTTPWrapper: the wrapper counts by endpoint, protocol and result,
// counts body bytes, and keeps Flush and Hijack reachable (a proxied
// WebSocket needs them).
func TestHTTPWrapper(t *testing.T) {
	m := NewMetrics()
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/grits/v1/block/missing":
			http.Error(w, "no", http.StatusNotFound)
		case "/ws":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("Hijack through the wrapper: %v", err)
				return
			}
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			conn.Close()
		default:
			io.WriteString(w, "twelve bytes")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("Flush through the wrapper: %v", err)
			}
		}
	})
	srv := httptest.NewServer(m.HTTP(inner))
	defer srv.Close()
	for _, p := range []string{"/grits/v1/block/h", "/grits/v1/block/h", "/grits/v1/block/missing", "/page"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	line, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 101") {
		t.Errorf("upgrade through the wrapper answered %q", line)
	}
	eventuallyTrue(t, func() bool { n, _ := m.HTTPTotals(); return n == 5 }, "the upgraded request is counted once its handler returns")
	for _, c := range []struct {
		labels []string
		req    float64
		bytes  float64
	}{
		{[]string{"block", "h1", "ok"}, 2, 24},
		{[]string{"block", "h1", "not_found"}, 1, 3},
		{[]string{"site", "h1", "ok"}, 2, 12}, // the page, and the upgrade (its bytes are the proxy's)
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.labels...)); got != c.req {
			t.Errorf("requests %v = %v, want %v", c.labels, got, c.req)
		}
		if got := testutil.ToFloat64(m.bytes.WithLabelValues(c.labels...)); got != c.bytes {
			t.Errorf("bytes %v = %v, want %v", c.labels, got, c.bytes)
		}
	}
	if _, b := m.HTTPTotals(); b != 39 {
		t.Errorf("HTTPTotals bytes %d, want 39", b)
	}
}

func eventuallyTrue(t *testing.T, f func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthAndReadiness: /healthz answers while the process lives;
// /readyz says what is missing until nothing is.
func TestHealthAndReadiness(t *testing.T) {
	var why []string
	s, _ := testServer(t, func() []string { return why })
	h := s.Handler()
	why = []string{"no root yet", "gossip not joined"}
	if r := get(t, h, "http://127.0.0.1:7435/readyz"); r.Code != http.StatusServiceUnavailable || !strings.Contains(r.Body.String(), "no root yet; gossip not joined") {
		t.Errorf("/readyz while not ready: %d %q", r.Code, r.Body)
	}
	if r := get(t, h, "http://127.0.0.1:7435/healthz"); r.Code != http.StatusOK {
		t.Errorf("/healthz: %d", r.Code)
	}
	why = nil
	if r := get(t, h, "http://[::1]:7435/readyz"); r.Code != http.StatusOK || r.Body.String() != "ready\n" {
		t.Errorf("/readyz when ready: %d %q", r.Code, r.Body)
	}
	// A name that is not loopback: a page reaching the listener through
	// DNS rebinding gets nothing.
	for _, host := range []string{"http://evil.example:7435/api/dashboard", "http://10.0.0.1/metrics"} {
		if r := get(t, h, host); r.Code != http.StatusMisdirectedRequest {
			t.Errorf("%s: %d, want 421", host, r.Code)
		}
	}
	if r := get(t, h, "http://localhost:7435/healthz"); r.Code != http.StatusOK {
		t.Errorf("localhost: %d", r.Code)
	}
}

// TestDashboardPage: the page carries its style and script inline and a
// policy that allows exactly those; the data merges members with their
// served reports.
func TestDashboardPage(t *testing.T) {
	s, sw := testServer(t, nil)
	r := get(t, s.Handler(), "http://127.0.0.1/")
	body := r.Body.String()
	csp := r.Header().Get("Content-Security-Policy")
	if r.Code != http.StatusOK || !strings.Contains(body, "<script>") || !strings.Contains(body, "<style>") ||
		strings.Contains(body, "<!--script-->") || strings.Contains(body, `src="http`) || strings.Contains(body, `href="http`) {
		t.Fatalf("dashboard: %d\n%.500s", r.Code, body)
	}
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	start := time.Now().Add(-time.Minute)
	sw.served = []membership.Served{{Node: sw.members[1].ID, Start: start, Seq: 2, HTTPRequests: 4, HTTPBytes: 4000, ProtoBytes: 10}}
	r = get(t, s.Handler(), "http://127.0.0.1/api/dashboard")
	var d Dashboard
	if err := json.Unmarshal(r.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Members) != 3 || !d.Members[1].Reported || d.Members[1].HTTPBytes != 4000 || d.Members[0].Reported {
		t.Errorf("members %+v", d.Members)
	}
	if d.Root == nil || d.Root.Seq != 3 || d.Replicas != 1 || !d.Node.Ready || d.Totals.CacheHitRatio != 0.75 || len(d.Reports) != 1 {
		t.Errorf("dashboard %+v", d)
	}
	if len(d.Hour.Buckets) != hourBuckets || len(d.Day.Buckets) != dayBuckets {
		t.Errorf("%d and %d buckets, want %d and %d", len(d.Hour.Buckets), len(d.Day.Buckets), hourBuckets, dayBuckets)
	}
}

// TestServeAndClose: the listener serves over TCP and stops with its
// context.
func TestServeAndClose(t *testing.T) {
	s, _ := testServer(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz over TCP: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// On the origin a replica counts only once its audits verified it: a
// storage node's claim to hold the whole root is not enough.
func TestReplicasOnlyAsVerified(t *testing.T) {
	s, sw := testServer(t, nil)
	src := s.cfg.Sources
	if v := viewOf(&src, time.Now()); v.replicas != 1 {
		t.Fatalf("%d replicas without audits to ask, want the claim's 1", v.replicas)
	}
	var asked []membership.NodeID
	src.Verified = func(id membership.NodeID, seq uint64) bool { asked = append(asked, id); return false }
	if v := viewOf(&src, time.Now()); v.replicas != 0 {
		t.Errorf("%d replicas when the audits verified none, want 0", v.replicas)
	}
	if len(asked) != 1 || asked[0] != sw.members[2].ID {
		t.Errorf("asked about %v, want the storage node only", asked)
	}
}

package admin

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/transport"
)

// Swarm is what the admin listener reads of the node's membership.
// *membership.Swarm satisfies it.
type Swarm interface {
	ID() membership.NodeID
	Members() []membership.Member
	Served() []membership.Served
	Health() membership.Health
}

// Sources are the node's parts the admin listener reads, at scrape time
// and for the dashboard. Every field but Swarm and Roots may be nil (a
// node without HTTPS has no Cache, only the origin has Reports).
type Sources struct {
	// Role is this node's role (origin, volunteer, storage).
	Role  string
	Swarm Swarm
	Roots transport.Roots
	// Ready lists what keeps the node from being ready; none: ready.
	Ready   func() []string
	Server  interface{ Stats() transport.ServerStats }
	Client  interface{ Stats() transport.ClientStats }
	Fetcher interface{ Stats() membership.FetchStats }
	Store   blockstore.Store // Stats; Reads() when it is a *blockstore.Disk
	Cache   interface{ CacheStats() gateway.CacheStats }
	// Reports are browsers' reports about volunteers (origin only).
	Reports func() []Report
	// Verified, if set (the origin), reports whether its audits verified
	// node id at root seq: a replica counts only then, never on the
	// node's claim alone.
	Verified func(id membership.NodeID, seq uint64) bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Report sums browsers' reports about one volunteer.
type Report struct {
	Peer   string    `json:"peer"`
	Count  int       `json:"count"`
	Last   time.Time `json:"last"`
	Reason string    `json:"reason"`
	Hash   string    `json:"hash,omitempty"`
}

func (s *Sources) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sources) notReady() []string {
	if s.Ready == nil {
		return nil
	}
	return s.Ready()
}

// collector turns the Sources into metrics at scrape time.
type collector struct {
	src    *Sources
	series *Series
	descs  map[string]*prometheus.Desc
}

// The families the collector makes, with their help and labels.
var scraped = []struct {
	name, help string
	labels     []string
}{
	{"grits_ready", "1 when the node is ready (store open, root loaded, gossip joined), else 0.", nil},
	{"grits_members", "Members this node knows, by role and state.", []string{"role", "state"}},
	{"grits_memberlist_health_score", "memberlist's awareness score: 0 is healthy; higher means this node is slow to answer probes.", nil},
	{"grits_memberlist_broadcasts_queued", "Gossip broadcasts waiting to be sent.", nil},
	{"grits_root_seq", "Sequence number of the latest root this node holds (0: none).", nil},
	{"grits_root_age_seconds", "Seconds since the latest root was signed.", nil},
	{"grits_root_expiry_seconds", "Seconds until the latest root expires (negative once expired).", nil},
	{"grits_replicas_complete", "Nodes other than the origin that pin the whole tree and hold all of the latest root (on the origin: as its audits verified; elsewhere: as the nodes claim).", nil},
	{"grits_replication_lacking_bytes", "Bytes that pinning members still lack of the latest root, summed over them.", nil},
	{"grits_members_behind", "Live members whose latest root is older than this node's.", nil},
	{"grits_blockstore_bytes", "Bytes of blocks stored, by residency (pinned, cached).", []string{"residency"}},
	{"grits_blockstore_blocks", "Blocks stored, by residency.", []string{"residency"}},
	{"grits_blockstore_quota_bytes", "The cache quota: the most bytes of cached blocks kept (absent when unlimited).", nil},
	{"grits_blockstore_reads_total", "Block reads from the store, by result (hit, miss, corrupt).", []string{"result"}},
	{"grits_gateway_cache_requests_total", "Block reads through the gateway's hot-block cache, by result (hit, miss).", []string{"result"}},
	{"grits_gateway_cache_bytes", "Bytes held by the gateway's hot-block cache.", nil},
	{"grits_swarm_fetches_total", "Blocks this node fetched from the swarm, by result (fetched, failed, coalesced).", []string{"result"}},
	{"grits_swarm_source_errors_total", "Requests to one source for a block that failed, the next source then asked (slow or broken members).", nil},
	{"grits_swarm_fetched_bytes_total", "Bytes of blocks fetched from the swarm.", nil},
	{"grits_verification_failures_total", "Data that failed verification, by cause: from peers (frame, block, proof, root, identity) or from this node's disk (disk).", []string{"cause"}},
	{"grits_grits1_connections_refused_total", "grits/1 connections refused (limits, or not authorized).", nil},
	{"grits_swarm_served_bytes_total", "Bytes members reported serving to browsers, by role, since this node started (from their gossiped reports).", []string{"role"}},
}

func newCollector(src *Sources, series *Series) *collector {
	c := &collector{src: src, series: series, descs: map[string]*prometheus.Desc{}}
	for _, f := range scraped {
		c.descs[f.name] = prometheus.NewDesc(f.name, f.help, f.labels, nil)
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, labels...)
	}
	counter := func(name string, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	src := c.src
	now := src.now()
	ready := 0.0
	if len(src.notReady()) == 0 {
		ready = 1
	}
	gauge("grits_ready", ready)

	v := viewOf(src, now)
	// Every combination, zeros included, so that an alert on dead
	// members sees 0 rather than no series.
	for _, role := range []membership.Role{membership.RoleOrigin, membership.RoleVolunteer, membership.RoleStorage} {
		for _, state := range []membership.State{membership.StateAlive, membership.StateSuspect, membership.StateDead, membership.StateLeft} {
			gauge("grits_members", float64(v.byRoleState[role.String()][string(state)]), role.String(), string(state))
		}
	}
	if src.Swarm != nil {
		h := src.Swarm.Health()
		gauge("grits_memberlist_health_score", float64(h.Score))
		gauge("grits_memberlist_broadcasts_queued", float64(h.Queued))
	}
	gauge("grits_root_seq", float64(v.rootSeq))
	if v.hasRoot {
		gauge("grits_root_age_seconds", now.Sub(v.root.Time).Seconds())
		gauge("grits_root_expiry_seconds", v.root.Expires.Sub(now).Seconds())
	}
	gauge("grits_replicas_complete", float64(v.replicas))
	gauge("grits_replication_lacking_bytes", float64(v.lacking))
	gauge("grits_members_behind", float64(v.behind))

	if src.Store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := src.Store.Stats(ctx)
		cancel()
		if err == nil {
			gauge("grits_blockstore_bytes", float64(st.PinnedBytes), "pinned")
			gauge("grits_blockstore_bytes", float64(st.CachedBytes), "cached")
			gauge("grits_blockstore_blocks", float64(st.PinnedBlocks), "pinned")
			gauge("grits_blockstore_blocks", float64(st.CachedBlocks), "cached")
			if st.Quota >= 0 {
				gauge("grits_blockstore_quota_bytes", float64(st.Quota))
			}
		}
	}
	var bad [transport.NumBadCauses]int64
	var corrupt int64
	if r, ok := src.Store.(interface{ Reads() blockstore.ReadStats }); ok {
		rs := r.Reads()
		counter("grits_blockstore_reads_total", rs.Hits, "hit")
		counter("grits_blockstore_reads_total", rs.Misses, "miss")
		counter("grits_blockstore_reads_total", rs.Corrupt, "corrupt")
		corrupt = rs.Corrupt
	}
	if src.Cache != nil {
		cs := src.Cache.CacheStats()
		counter("grits_gateway_cache_requests_total", cs.Hits, "hit")
		counter("grits_gateway_cache_requests_total", cs.Misses, "miss")
		gauge("grits_gateway_cache_bytes", float64(cs.Bytes))
	}
	if src.Fetcher != nil {
		fs := src.Fetcher.Stats()
		counter("grits_swarm_fetches_total", fs.Fetched, "fetched")
		counter("grits_swarm_fetches_total", fs.Failed, "failed")
		counter("grits_swarm_fetches_total", fs.Coalesced, "coalesced")
		counter("grits_swarm_fetched_bytes_total", fs.Bytes)
		counter("grits_swarm_source_errors_total", fs.SourceErrors)
	}
	if src.Client != nil {
		bad = src.Client.Stats().Bad
	}
	for cause := range transport.NumBadCauses {
		counter("grits_verification_failures_total", bad[cause], cause.String())
	}
	counter("grits_verification_failures_total", corrupt, "disk")
	if src.Server != nil {
		counter("grits_grits1_connections_refused_total", src.Server.Stats().Refused)
	}
	if c.series != nil {
		for role, n := range c.series.Totals() {
			counter("grits_swarm_served_bytes_total", int64(n), role)
		}
	}
}

// view is what the members say about the swarm and the latest root.
type view struct {
	root        rootInfo
	hasRoot     bool
	rootSeq     uint64
	byRoleState map[string]map[string]int
	replicas    int
	pinning     int
	lacking     uint64
	behind      int
}

type rootInfo struct {
	Seq           uint64
	Time, Expires time.Time
	Hash, Tree    string
}

func viewOf(src *Sources, now time.Time) view {
	v := view{byRoleState: map[string]map[string]int{}}
	if src.Roots != nil {
		if r, ok := src.Roots.Latest(); ok {
			v.hasRoot, v.rootSeq = true, r.Seq
			v.root = rootInfo{Seq: r.Seq, Time: r.Time, Expires: r.Expires, Hash: r.Hash().String(), Tree: r.Tree.String()}
		}
	}
	if src.Swarm == nil {
		return v
	}
	for _, m := range src.Swarm.Members() {
		role, state := m.Role.String(), string(m.State)
		if v.byRoleState[role] == nil {
			v.byRoleState[role] = map[string]int{}
		}
		v.byRoleState[role][state]++
		live := m.State == membership.StateAlive || m.State == membership.StateSuspect
		if !live {
			continue
		}
		if len(m.Meta.Pins) > 0 {
			v.pinning++
			v.lacking += m.Meta.Lacking
		}
		if holdsAll(m, v.rootSeq) && (src.Verified == nil || src.Verified(m.ID, v.rootSeq)) {
			v.replicas++
		}
		if m.Meta.RootSeq < v.rootSeq {
			v.behind++
		}
	}
	return v
}

// holdsAll is the replica rule gritsd status uses: a live node other
// than the origin that pins "/" and is complete at seq.
func holdsAll(m membership.Member, seq uint64) bool {
	if m.Role == membership.RoleOrigin || seq == 0 || m.Meta.Complete < seq {
		return false
	}
	for _, p := range m.Meta.Pins {
		if p == "/" {
			return true
		}
	}
	return false
}

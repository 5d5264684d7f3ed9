package admin

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/transport"
)

// The dashboard is one HTML page with its style and script inline (no
// asset from anywhere else); the script polls /api/dashboard and draws
// the tables and the chart (SVG) with textContent only, so nothing a
// member or a browser report says can become markup.
var (
	//go:embed dashboard.html
	dashboardHTML string
	//go:embed dashboard.css
	dashboardCSS string
	//go:embed dashboard.js
	dashboardJS string
)

// dashboardPage is the assembled page and the Content-Security-Policy
// that allows exactly its inline style and script.
func dashboardPage() (page []byte, csp string) {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	p := strings.Replace(dashboardHTML, "<!--style-->", "<style>"+dashboardCSS+"</style>", 1)
	p = strings.Replace(p, "<!--script-->", "<script>"+dashboardJS+"</script>", 1)
	csp = "default-src 'none'; style-src " + hash(dashboardCSS) + "; script-src " + hash(dashboardJS) +
		"; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return []byte(p), csp
}

func (s *Server) serveDashboard(w http.ResponseWriter, r *http.Request) {
	page, csp := dashboardPage()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.Write(page)
}

// Dashboard is what /api/dashboard returns and the page draws.
type Dashboard struct {
	Now      time.Time         `json:"now"`
	Node     DashboardNode     `json:"node"`
	Root     *DashboardRoot    `json:"root,omitempty"`
	Replicas int               `json:"replicas"`
	Pinning  int               `json:"pinning"`
	Lacking  uint64            `json:"lacking_bytes"`
	Members  []DashboardMember `json:"members"`
	Hour     Window            `json:"hour"`
	Day      Window            `json:"day"`
	Totals   Totals            `json:"totals"`
	Reports  []Report          `json:"reports"`
}

// DashboardNode is this node.
type DashboardNode struct {
	ID       string   `json:"id"`
	Role     string   `json:"role"`
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready,omitempty"`
	Uptime   float64  `json:"uptime_seconds"`
	Health   int      `json:"health_score"`
}

// DashboardRoot is the latest root.
type DashboardRoot struct {
	Seq       uint64  `json:"seq"`
	Hash      string  `json:"hash"`
	Tree      string  `json:"tree"`
	Age       float64 `json:"age_seconds"`
	ExpiresIn float64 `json:"expires_in_seconds"`
}

// DashboardMember is one member with what it last reported serving.
type DashboardMember struct {
	ID       string   `json:"id"`
	Role     string   `json:"role"`
	State    string   `json:"state"`
	Self     bool     `json:"self,omitempty"`
	Load     uint8    `json:"load"`
	RootSeq  uint64   `json:"root_seq"`
	Complete uint64   `json:"complete_seq"`
	Lacking  uint64   `json:"lacking_bytes"`
	Pins     []string `json:"pins,omitempty"`
	URL      string   `json:"url,omitempty"`
	// From its latest served report, if any.
	Reported       bool   `json:"reported"`
	HTTPRequests   uint64 `json:"http_requests"`
	HTTPBytes      uint64 `json:"http_bytes"`
	Grits1Bytes    uint64 `json:"grits1_bytes"`
	ServingSince   string `json:"serving_since,omitempty"`
	Grits1Requests uint64 `json:"grits1_requests"`
}

// Totals are this node's own counters.
type Totals struct {
	HTTPRequests         int64   `json:"http_requests"`
	HTTPBytes            int64   `json:"http_bytes"`
	Grits1Requests       int64   `json:"grits1_requests"`
	Grits1Bytes          int64   `json:"grits1_bytes"`
	CacheHitRatio        float64 `json:"cache_hit_ratio"` // -1: no reads yet
	VerificationFailures int64   `json:"verification_failures"`
	Reports              int     `json:"reports"`
}

// Dashboard gathers the dashboard's data now.
func (s *Server) Dashboard() Dashboard {
	src := s.src
	now := src.now()
	d := Dashboard{Now: now, Reports: []Report{}, Members: []DashboardMember{}}
	why := src.notReady()
	d.Node = DashboardNode{Role: src.Role, Ready: len(why) == 0, NotReady: why, Uptime: now.Sub(s.start).Seconds()}
	v := viewOf(src, now)
	if v.hasRoot {
		d.Root = &DashboardRoot{Seq: v.root.Seq, Hash: v.root.Hash, Tree: v.root.Tree,
			Age: now.Sub(v.root.Time).Seconds(), ExpiresIn: v.root.Expires.Sub(now).Seconds()}
	}
	d.Replicas, d.Pinning, d.Lacking = v.replicas, v.pinning, v.lacking
	if sw := src.Swarm; sw != nil {
		d.Node.ID = sw.ID().String()
		d.Node.Health = sw.Health().Score
		served := map[membership.NodeID]membership.Served{}
		for _, r := range sw.Served() {
			served[r.Node] = r
		}
		for _, m := range sw.Members() {
			dm := DashboardMember{ID: m.ID.String(), Role: m.Role.String(), State: string(m.State), Self: m.Self, Load: m.Meta.Load,
				RootSeq: m.Meta.RootSeq, Complete: m.Meta.Complete, Lacking: m.Meta.Lacking, Pins: m.Meta.Pins, URL: m.Meta.URL}
			if r, ok := served[m.ID]; ok {
				dm.Reported, dm.HTTPRequests, dm.HTTPBytes = true, r.HTTPRequests, r.HTTPBytes
				dm.Grits1Requests, dm.Grits1Bytes = r.ProtoRequests, r.ProtoBytes
				dm.ServingSince = r.Start.Format(time.RFC3339)
			}
			d.Members = append(d.Members, dm)
		}
	}
	if s.cfg.Series != nil {
		d.Hour, d.Day = s.cfg.Series.Windows(now)
	}
	d.Totals.HTTPRequests, d.Totals.HTTPBytes = s.cfg.Metrics.HTTPTotals()
	if src.Server != nil {
		ss := src.Server.Stats()
		d.Totals.Grits1Requests, d.Totals.Grits1Bytes = ss.Requests, ss.BytesSent
	}
	d.Totals.CacheHitRatio = -1
	if src.Cache != nil {
		if cs := src.Cache.CacheStats(); cs.Hits+cs.Misses > 0 {
			d.Totals.CacheHitRatio = float64(cs.Hits) / float64(cs.Hits+cs.Misses)
		}
	}
	if src.Client != nil {
		st := src.Client.Stats()
		for c := range transport.NumBadCauses {
			d.Totals.VerificationFailures += st.Bad[c]
		}
	}
	if src.Reports != nil {
		d.Reports = append(d.Reports, src.Reports()...)
		slices.SortFunc(d.Reports, func(a, b Report) int { return b.Last.Compare(a.Last) })
		for _, r := range d.Reports {
			d.Totals.Reports += r.Count
		}
		if len(d.Reports) > 50 {
			d.Reports = d.Reports[:50]
		}
	}
	return d
}

func (s *Server) serveDashboardData(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	json.NewEncoder(w).Encode(s.Dashboard())
}

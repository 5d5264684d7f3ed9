package node

import (
	"sort"
	"sync"
	"time"

	"github.com/grits-cdn/grits/gateway"
)

// What the origin keeps of browsers' reports about volunteers. Reports
// arrive only with a token of a recent visit (gateway), but a visit is
// cheap: the book must also keep one reporter, or many, from drowning
// the reports that matter.
const (
	// maxReported bounds the volunteers the origin keeps reports about;
	// only members' URLs are kept, so it is reached only by a swarm that
	// large.
	maxReported = 256
	// reportsPerClient is how many reports one address class
	// (gateway.ReportClass) may file per reportClientWindow; the rest
	// are dropped, so one client cannot pile up a volunteer's count.
	reportsPerClient   = 10
	reportClientWindow = time.Hour
	// maxReportClients bounds the reporters tracked for the quota (the
	// longest quiet go first).
	maxReportClients = 4096
	// reportAge is how long a volunteer's reports are kept after the
	// last one.
	reportAge = 24 * time.Hour
	// maxReportersPerPeer bounds the distinct reporters counted per
	// volunteer.
	maxReportersPerPeer = 1024
)

// reportBook is the origin's record of reports.
type reportBook struct {
	mu      sync.Mutex
	peers   map[string]*peerReports // by volunteer URL
	clients map[string][]time.Time  // by reporter class: its recent reports
}

type peerReports struct {
	StatusReport
	reporters map[string]struct{}
}

// add records a report from client about r.Peer if it may: the peer must
// be a volunteer of the swarm (isPeer) and the client within its quota.
// It reports whether the report was kept.
func (b *reportBook) add(now time.Time, client string, r gateway.Report, isPeer func(url string) bool) bool {
	if !isPeer(r.Peer) {
		return false // junk: no member serves browsers at that URL
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peers == nil {
		b.peers, b.clients = map[string]*peerReports{}, map[string][]time.Time{}
	}
	b.ageOut(now)
	recent := b.clients[client]
	for len(recent) > 0 && now.Sub(recent[0]) >= reportClientWindow {
		recent = recent[1:]
	}
	if len(recent) >= reportsPerClient {
		b.clients[client] = recent
		return false
	}
	if _, ok := b.clients[client]; !ok && len(b.clients) >= maxReportClients {
		b.forgetQuietestClient()
	}
	b.clients[client] = append(recent, now)

	p, ok := b.peers[r.Peer]
	if !ok {
		if len(b.peers) >= maxReported {
			b.forgetWeakestPeer()
		}
		p = &peerReports{StatusReport: StatusReport{Peer: r.Peer}, reporters: map[string]struct{}{}}
		b.peers[r.Peer] = p
	}
	p.Count++
	if len(p.reporters) < maxReportersPerPeer {
		p.reporters[client] = struct{}{}
	}
	p.Reporters = len(p.reporters)
	p.Last, p.Reason, p.Hash = now, r.Reason, r.Hash
	return true
}

// ageOut forgets volunteers not reported for reportAge and reporters
// whose window has passed.
func (b *reportBook) ageOut(now time.Time) {
	for k, p := range b.peers {
		if now.Sub(p.Last) >= reportAge {
			delete(b.peers, k)
		}
	}
	for k, ts := range b.clients {
		if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= reportClientWindow {
			delete(b.clients, k)
		}
	}
}

// forgetWeakestPeer makes room: the volunteer fewest reporters speak
// against, the least recent among those.
func (b *reportBook) forgetWeakestPeer() {
	var weakest *peerReports
	for _, p := range b.peers {
		if weakest == nil || p.Reporters < weakest.Reporters || p.Reporters == weakest.Reporters && p.Last.Before(weakest.Last) {
			weakest = p
		}
	}
	if weakest != nil {
		delete(b.peers, weakest.Peer)
	}
}

func (b *reportBook) forgetQuietestClient() {
	var quietest string
	var at time.Time
	for k, ts := range b.clients {
		if last := ts[len(ts)-1]; quietest == "" || last.Before(at) {
			quietest, at = k, last
		}
	}
	delete(b.clients, quietest)
}

// list is the reports, the most reporters first.
func (b *reportBook) list(now time.Time) []StatusReport {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ageOut(now)
	var out []StatusReport
	for _, p := range b.peers {
		out = append(out, p.StatusReport)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Reporters != out[j].Reporters {
			return out[i].Reporters > out[j].Reporters
		}
		return out[i].Peer < out[j].Peer
	})
	return out
}

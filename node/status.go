package node

import (
	"slices"
	"time"

	"github.com/grits-cdn/grits/fuse"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/offload"
	"github.com/grits-cdn/grits/tree"
)

// Status is what gritsd status shows, as the daemon reports it on its
// admin socket (DATA/gritsd.sock, reachable only by who can read DATA).
type Status struct {
	Node membership.NodeID `json:"node"`
	Role string            `json:"role"`
	Site tree.PublicKey    `json:"site"`
	URL  string            `json:"url,omitempty"`
	Root *StatusRoot       `json:"root,omitempty"`
	// Ready is false while something keeps the node from serving (see
	// Node.Ready); NotReady says what.
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready,omitempty"`
	// Admin is the admin listener's address (metrics, the dashboard).
	Admin   string         `json:"admin,omitempty"`
	Members []StatusMember `json:"members"`
	// Replicas counts the nodes other than the origin that hold the
	// whole current root, as the origin's audits verified them at that
	// seq (pinning "/", complete at it, and audited). Only the origin
	// audits: elsewhere it is 0, and ClaimedReplicas counts the nodes
	// that say they hold it, which is only what they say.
	Replicas        int   `json:"replicas"`
	ClaimedReplicas int   `json:"claimed_replicas,omitempty"`
	Bans            int   `json:"banned"`
	BanList         int64 `json:"ban_list_version"`
	// Upstream is what this node fetched from the swarm.
	Upstream membership.FetchStats `json:"upstream"`
	Served   ServedStats           `json:"served"`
	// Reports are browsers' complaints about volunteers (origin only).
	Reports []StatusReport `json:"reports,omitempty"`
	// Offload is the origin's budget and its audits of storage nodes.
	Offload *offload.Stats `json:"offload,omitempty"`
	// HeldBack counts what the origin's mounts keep but do not publish
	// (files others may not read), as of their last commit.
	HeldBack *StatusHeld `json:"held_back,omitempty"`
}

// StatusHeld is what the publish rule keeps out of the published tree.
type StatusHeld struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
}

// StatusReport sums the reports about one volunteer.
type StatusReport struct {
	Peer  string `json:"peer"`
	Count int    `json:"count"`
	// Reporters is how many address classes (gateway.ReportClass) sent
	// them: one client can file only a few.
	Reporters int       `json:"reporters"`
	Last      time.Time `json:"last"`
	Reason    string    `json:"reason"`
	Hash      string    `json:"hash,omitempty"`
}

// StatusRoot is the current root.
type StatusRoot struct {
	Seq     uint64    `json:"seq"`
	Hash    string    `json:"hash"`
	Tree    string    `json:"tree"`
	Expires time.Time `json:"expires"`
}

// ServedStats counts what this node served over grits/1.
type ServedStats struct {
	Requests int64 `json:"requests"`
	Blocks   int64 `json:"blocks"`
	Lookups  int64 `json:"lookups"`
	Bytes    int64 `json:"bytes"`
	Refused  int64 `json:"refused_connections"`
	// Over HTTPS/HTTP3 to browsers.
	HTTPRequests  int64 `json:"http_requests"`
	HTTPBytes     int64 `json:"http_bytes"`
	HTTP3Requests int64 `json:"http3_requests"`
	// HTTP answers by kind: block, lookup, site (the origin's pages and
	// files), root.
	HTTPByKind map[string]KindStats `json:"http_by_kind,omitempty"`
}

// KindStats counts one kind of HTTP answer.
type KindStats struct {
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

// StatusMember is one member.
type StatusMember struct {
	ID       membership.NodeID `json:"id"`
	Role     string            `json:"role"`
	State    string            `json:"state"`
	Since    time.Time         `json:"since"`
	Addr     string            `json:"addr"`
	URL      string            `json:"url,omitempty"`
	RootSeq  uint64            `json:"root_seq"`
	Complete uint64            `json:"complete_seq"`
	Lacking  uint64            `json:"lacking_bytes"`
	Pins     []string          `json:"pins,omitempty"`
	Load     uint8             `json:"load"`
	Capacity uint64            `json:"capacity_bytes"`
	// Granted is the most capacity placement counts for it (the origin's
	// grant, or membership.DefaultGrant).
	Granted uint64 `json:"granted_bytes,omitempty"`
	// Signed: what it says about itself is signed with its key.
	Signed bool `json:"signed,omitempty"`
	Self   bool `json:"self,omitempty"`
}

// HoldsAll reports whether m pins the whole tree and holds it
// completely at root seq.
func HoldsAll(m membership.Member, seq uint64) bool {
	return m.Role != membership.RoleOrigin && m.Meta.Complete >= seq && seq > 0 && slices.Contains(m.Meta.Pins, "/") &&
		(m.State == membership.StateAlive || m.State == membership.StateSuspect)
}

// Status reports the node's state, as the admin socket serves it.
func (n *Node) Status() Status {
	d, s, f, srv, wb := n.dir, n.swarm, n.fetcher, n.server, n.web
	st := Status{Node: s.ID(), Role: d.Config.Role, Site: d.Config.SiteKey, Upstream: f.Stats(), NotReady: n.Ready(), Admin: n.AdminAddr()}
	st.Ready = len(st.NotReady) == 0
	ss := srv.Stats()
	st.Served = ServedStats{Requests: ss.Requests, Blocks: ss.Blocks, Lookups: ss.Lookups, Bytes: ss.BytesSent, Refused: ss.Refused}
	if wb != nil {
		st.URL = wb.url
		st.Served.HTTPRequests, st.Served.HTTPBytes, st.Served.HTTP3Requests = wb.requests.Load(), wb.bytes.Load(), wb.h3.Load()
		st.Served.HTTPByKind = wb.byKind()
		st.Reports = wb.reportList()
	}
	if n.origin {
		if files, bytes, err := fuse.HeldBack(d.FilePath(MountStateDir)); err == nil && (files > 0 || bytes > 0) {
			st.HeldBack = &StatusHeld{Files: files, Bytes: bytes}
		}
	}
	var seq uint64
	if r, ok := n.roots.Latest(); ok {
		seq = r.Seq
		st.Root = &StatusRoot{Seq: r.Seq, Hash: r.Hash().String(), Tree: r.Tree.String(), Expires: r.Expires}
	}
	if n.offload != nil {
		o := n.offload.Stats()
		st.Offload = &o
	}
	if b := s.Bans(); b != nil {
		st.Bans, st.BanList = len(b.Nodes), int64(b.Version)
	}
	for _, m := range s.Members() {
		switch {
		case !HoldsAll(m, seq):
		case st.Offload != nil && auditedAt(st.Offload, m.ID, seq):
			st.Replicas++
		case st.Offload == nil:
			st.ClaimedReplicas++
		}
		var granted uint64
		if m.Role != membership.RoleOrigin {
			granted = s.Granted(m.ID)
		}
		st.Members = append(st.Members, StatusMember{ID: m.ID, Role: m.Role.String(), State: string(m.State), Since: m.Since,
			Addr: m.Meta.ProtoAddr, URL: m.Meta.URL, RootSeq: m.Meta.RootSeq, Complete: m.Meta.Complete, Lacking: m.Meta.Lacking,
			Pins: m.Meta.Pins, Load: m.Meta.Load, Capacity: m.Meta.Capacity, Granted: granted, Signed: m.Signed, Self: m.Self})
	}
	return st
}

package node

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/grits-cdn/grits/admin"
	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/membership"
)

// The admin listener (package admin): metrics, health, readiness and the
// dashboard, on loopback unless configured otherwise.

// adminAddr is where the admin listener goes: the setting, else
// loopback at the grits/1 port + 2 (7435 next to 7433 and gossip's
// 7434), a random port for a node on a random port; "" for off.
func (n *Node) adminAddr(listen string) (string, error) {
	a := first(n.cfg.Admin, n.dir.Config.AdminListen)
	if a == "off" {
		return "", nil
	}
	if a == "" {
		port := 0
		if _, p, err := net.SplitHostPort(listen); err == nil {
			if lp, err := strconv.Atoi(p); err == nil && lp != 0 {
				port = lp + 2
			}
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		return "", configErrorf("--admin %q: want HOST:PORT or off", a)
	}
	return a, nil
}

// startAdmin binds the admin listener and serves it until the node stops.
func (n *Node) startAdmin(listen string) error {
	addr, err := n.adminAddr(listen)
	if err != nil || addr == "" {
		return err
	}
	src := admin.Sources{Role: n.dir.Config.Role, Swarm: n.swarm, Roots: n.roots, Ready: n.Ready,
		Server: n.server, Client: n.client, Fetcher: n.fetcher, Store: n.dir.Store}
	if n.offload != nil {
		src.Verified = func(id membership.NodeID, seq uint64) bool {
			st := n.offload.Stats()
			return auditedAt(&st, id, seq)
		}
	}
	if n.web != nil {
		// The web's current handler, not the one at start: a reload
		// replaces it (and its cache).
		src.Cache = n.web
		if n.origin {
			src.Reports = func() []admin.Report {
				var out []admin.Report
				for _, r := range n.web.reportList() {
					out = append(out, admin.Report{Peer: r.Peer, Count: r.Count, Last: r.Last, Reason: r.Reason, Hash: r.Hash})
				}
				return out
			}
		}
	}
	s, err := admin.Listen(admin.Config{Addr: addr, Metrics: n.metrics, Sources: src, Series: admin.NewSeries(n.started),
		SampleEvery: n.servedEvery(), Logger: n.log.With("component", "admin")})
	if err != nil {
		return fmt.Errorf("%w (move it with --admin or admin_listen, or turn it off)", err)
	}
	n.adminHTTP = s
	n.closers = append(n.closers, s.Close)
	n.bg.Go(func() {
		if err := s.Serve(n.ctx); err != nil {
			n.log.Error("admin listener stopped", "err", err)
		}
	})
	n.log.Info("admin listener: metrics, health and the dashboard", "addr", "http://"+s.Addr()+"/")
	return nil
}

// AdminAddr is the bound admin listener address ("" when it is off).
func (n *Node) AdminAddr() string {
	if n.adminHTTP == nil {
		return ""
	}
	return n.adminHTTP.Addr()
}

// Ready lists what keeps the node from being ready to serve: the block
// store unreadable, no root (or an expired one), the swarm not joined
// yet. None means ready.
func (n *Node) Ready() []string {
	var why []string
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if _, err := n.dir.Store.Stats(ctx); err != nil {
		why = append(why, "block store: "+err.Error())
	}
	if r, ok := n.roots.Latest(); !ok {
		why = append(why, "no root yet")
	} else if !time.Now().Before(r.Expires) {
		why = append(why, fmt.Sprintf("root seq %d expired at %s", r.Seq, r.Expires.Format(time.RFC3339)))
	}
	select {
	case <-n.swarm.Joined():
	default:
		why = append(why, "not joined the swarm yet (no seed answered)")
	}
	return why
}

// servedEvery is how often the node tells the swarm what it served:
// often enough for a per-minute chart, rarely enough to be lost in the
// gossip (the local profile, for tests, reports every second).
func (n *Node) servedEvery() time.Duration {
	if membership.Profile(first(string(n.cfg.Profile), n.dir.Config.GossipProfile)) == membership.ProfileLocal {
		return time.Second
	}
	return 10 * time.Second
}

// reportServed gossips this node's served counters whenever they moved,
// and at least once a minute so that members who joined since hear them.
func (n *Node) reportServed(ctx context.Context) {
	t := time.NewTicker(n.servedEvery())
	defer t.Stop()
	var last membership.Served
	var told time.Time
	for {
		reqs, bytes := n.metrics.HTTPTotals()
		ss := n.server.Stats()
		v := membership.Served{Start: n.started, HTTPRequests: uint64(reqs), HTTPBytes: uint64(bytes),
			ProtoRequests: uint64(ss.Requests), ProtoBytes: uint64(ss.BytesSent)}
		if v != last || time.Since(told) >= time.Minute {
			n.swarm.ReportServed(v)
			last, told = v, time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var _ admin.Swarm = (*membership.Swarm)(nil)
var _ interface{ Reads() blockstore.ReadStats } = (*blockstore.Disk)(nil)

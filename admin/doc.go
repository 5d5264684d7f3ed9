// Package admin is a node's operator-facing HTTP: the admin listener
// (loopback by default, DefaultAddr) with Prometheus metrics at
// /metrics, liveness at /healthz, readiness at /readyz, and a status
// dashboard at / (one page, its style and script inline, drawing
// /api/dashboard).
//
// The core packages know nothing of Prometheus. They keep counters
// (transport.Server.Stats and Client.Stats, membership.Fetcher.Stats,
// gateway.Handler.CacheStats, blockstore.Disk.Reads and Stats) or offer
// a hook (transport.ServerConfig.OnAnswer); this package reads the
// counters at scrape time (Sources, the collector) and feeds the hooks
// into its own instruments (Metrics: the HTTP wrapper, Answer, Report).
// Label values come from closed sets (endpoint, protocol, result,
// cause, role, state): nothing a client or a peer sends becomes a label.
//
// # The dashboard's chart
//
// The share of bytes served by volunteers comes from the members'
// served reports (membership.Served), which every node gossips every few
// seconds: its HTTP requests and bytes to browsers and its grits/1
// traffic since its process started, signed by its node key. Series
// turns the growth of those counters into per-minute buckets for an hour
// and per-15-minute buckets for a day, origin against volunteers (and
// storage nodes). The figures are the nodes' own word, as served bytes
// on their HTTP side; a node that lies about itself can inflate its
// bar, and nothing else.
package admin

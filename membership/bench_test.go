package membership

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// Swarm benchmarks. Each iteration builds its own in-process swarm on
// loopback with the LAN gossip timers operators get by default:
//
//	go test -run '^$' -bench 'RootPropagation|DeadDetection' -benchtime 3x ./membership
//	go test -run '^$' -bench OriginOffload -benchtime 1x ./membership
//
// GRITS_BENCH_NODES (default 50), GRITS_BENCH_MB (default 50) and
// GRITS_BENCH_CLIENTS (default 100) change the sizes.

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkRootPropagation: time from the origin's announcement of a new
// root until every node of a 50-node swarm has logged it (target: 2 s).
func BenchmarkRootPropagation(b *testing.B) {
	nodes := envInt("GRITS_BENCH_NODES", 50)
	c := newClusterWith(b, ProfileLAN, -1)
	for range nodes - 1 {
		c.add(RoleVolunteer, nil, nil)
	}
	c.waitConverged(c.timing().Join)
	var total time.Duration
	var worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		r := c.publish(map[string][]byte{"index.html": fmt.Appendf(nil, "version %d", i)})
		c.waitRoot(r)
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/root")
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
	b.ReportMetric(total.Seconds()/float64(b.N)/2, "x-of-2s-target")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDeadDetection: time from a node's crash until every other node
// of the swarm marks it dead (target: 10 s).
func BenchmarkDeadDetection(b *testing.B) {
	nodes := envInt("GRITS_BENCH_NODES", 50)
	c := newClusterWith(b, ProfileLAN, -1)
	for range nodes - 1 {
		c.add(RoleVolunteer, nil, nil)
	}
	c.waitConverged(c.timing().Join)
	var total, worst time.Duration
	b.ResetTimer()
	for range b.N {
		live := c.live()
		victim := live[len(live)-1]
		start := time.Now()
		victim.kill()
		eventually(b, slack*c.timing().Dead, "victim marked dead", func() error {
			for _, n := range c.live() {
				for _, m := range n.swarm.Members() {
					if m.ID == victim.id && m.State != StateDead {
						return fmt.Errorf("still %s", m.State)
					}
				}
			}
			return nil
		})
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.StopTimer()
	b.ReportMetric(total.Seconds()/float64(b.N), "s/death")
	b.ReportMetric(worst.Seconds(), "worst-s")
	b.ReportMetric(total.Seconds()/float64(b.N)/10, "x-of-10s-target")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkOriginOffload: 3 volunteers (with the default replication of
// 2 and cache warming on) and 100 concurrent read-only clients fetch the
// same new 50 MB file from the volunteers. The figure is the origin's
// bytes sent in copies of the content: coalescing and placement should
// keep it near one copy (each block fetched from the origin once, by a
// home node).
func BenchmarkOriginOffload(b *testing.B) {
	mb := envInt("GRITS_BENCH_MB", 50)
	clients := envInt("GRITS_BENCH_CLIENTS", 100)
	for range b.N {
		c := newClusterWith(b, ProfileLocal, 1<<40)
		var vols []*node
		for range 3 {
			vols = append(vols, c.add(RoleVolunteer, nil, nil))
		}
		c.waitConverged(c.timing().Join)
		data := randomData(mb << 20)
		before := c.origin.srv.Stats().BytesSent
		r := c.publish(map[string][]byte{"video.mp4": data})
		c.waitRoot(r)
		var peers []string
		for _, v := range vols {
			peers = append(peers, v.addr)
		}
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i := range clients {
			wg.Go(func() {
				cl, err := transport.NewClient(transport.ClientConfig{SiteKey: c.site, StallTimeout: 30 * time.Second})
				if err != nil {
					errs <- err
					return
				}
				defer cl.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				// Each client starts at a different volunteer, as browsers
				// spread by their own choice.
				order := append(append([]string(nil), peers[i%3:]...), peers[:i%3]...)
				lr, err := cl.Lookup(ctx, order[0], &r, tree.MustParsePath("video.mp4"), 0)
				if err != nil {
					errs <- err
					return
				}
				f := lr.Result.Node.(*tree.FileNode)
				buf := &discardAt{}
				if _, err := cl.FetchFile(ctx, order, f, buf, transport.FetchOptions{}); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		sent := c.origin.srv.Stats().BytesSent - before
		var volSent int64
		for _, v := range vols {
			volSent += v.srv.Stats().BytesSent
		}
		b.ReportMetric(float64(sent)/float64(len(data)), "origin-copies")
		b.ReportMetric(float64(volSent)/float64(len(data)), "volunteer-copies")
		b.ReportMetric(float64(int64(clients)*int64(len(data)))/elapsed.Seconds()/1e6, "client-MB/s")
		b.ReportMetric(0, "ns/op")
	}
}

type discardAt struct{}

func (discardAt) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

// BenchmarkReform: in-process swarms over loopback, LAN and WAN timers.
// The origin stops (gracefully, as on SIGTERM) and starts again on its
// ports; reform-s is the time from its start until every member sees
// every member alive again. The baseline, from the same swarm and run,
// is join-s: the time from a new volunteer's start until every member
// sees it alive. Before the snapshot and the re-join loop, a restarted
// origin never re-formed (it has no seeds; the members saw it leave).
//
//	go test -run '^$' -bench Reform -benchtime 3x ./membership
func BenchmarkReform(b *testing.B) {
	for _, p := range []Profile{ProfileLAN, ProfileWAN} {
		b.Run(string(p), func(b *testing.B) {
			nodes := envInt("GRITS_BENCH_NODES", 50)
			c := newClusterWith(b, p, -1)
			for range nodes - 2 {
				c.add(RoleVolunteer, nil, nil)
			}
			c.waitConverged(c.timing().Join)
			var join, reform time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				c.add(RoleVolunteer, nil, nil)
				c.waitWhole(slack * c.timing().Join)
				join += time.Since(start)

				c.origin.stop()
				start = time.Now()
				c.origin.start()
				c.waitWhole(slack * c.timing().Reform)
				reform += time.Since(start)
			}
			b.StopTimer()
			n := time.Duration(b.N)
			b.ReportMetric((reform / n).Seconds(), "reform-s")
			b.ReportMetric((join / n).Seconds(), "join-s")
			b.ReportMetric(float64(reform)/float64(join), "x-join")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// waitWhole is waitConverged with a finer poll, for measuring: every
// live node sees every other alive.
func (c *cluster) waitWhole(timeout time.Duration) {
	c.t.Helper()
	live := c.live()
	deadline := time.Now().Add(timeout)
	for {
		missing := ""
		for _, n := range live {
			alive := map[NodeID]bool{}
			for _, m := range n.swarm.Alive() {
				alive[m.ID] = true
			}
			for _, o := range live {
				if !alive[o.id] {
					missing = fmt.Sprintf("%s does not see %s alive", n.id.String()[8:16], o.id.String()[8:16])
					break
				}
			}
			if missing != "" {
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the swarm is not whole within %v: %s", timeout, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

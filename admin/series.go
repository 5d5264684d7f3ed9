package admin

import (
	"sync"
	"time"

	"github.com/grits-cdn/grits/membership"
)

// Series keeps, in memory, the bytes members served to browsers over
// the last hour (per minute) and the last day (per 15 minutes), split
// between the origin and the volunteers (volunteer and storage nodes).
//
// It is fed the members' served reports (membership.Served, gossiped
// every few seconds by every node, this one included): each report's
// HTTP byte counter is compared with the one before from the same node,
// and the growth lands in the bucket of the time the report was seen.
// A node's first report counts whole if its process started after this
// one (it served everything while we watched), else it only sets the
// baseline; a report from a restarted process counts whole. So the
// share is of the bytes served while this node was up, as the nodes
// themselves report them, accurate to a report interval.
type Series struct {
	mu      sync.Mutex
	since   time.Time
	hour    ring
	day     ring
	last    map[membership.NodeID]seen
	totals  map[string]uint64 // by role name, monotonic
	reports int
}

type seen struct {
	start time.Time
	seq   uint64
	bytes uint64
}

// Bucket is the bytes served in one interval.
type Bucket struct {
	Start      time.Time `json:"start"`
	Origin     uint64    `json:"origin"`
	Volunteers uint64    `json:"volunteers"`
}

// ring is a fixed number of consecutive buckets, newest last.
type ring struct {
	step time.Duration
	n    int
	b    []Bucket
}

// Window sizes.
const (
	hourStep    = time.Minute
	hourBuckets = 60
	dayStep     = 15 * time.Minute
	dayBuckets  = 96
)

// NewSeries starts a series; since is when this node's process started
// (reports from processes started no earlier count whole).
func NewSeries(since time.Time) *Series {
	return &Series{since: since, hour: ring{step: hourStep, n: hourBuckets}, day: ring{step: dayStep, n: dayBuckets},
		last: map[membership.NodeID]seen{}, totals: map[string]uint64{}}
}

// at returns the bucket for t, adding empty ones up to it.
func (r *ring) at(t time.Time) *Bucket {
	start := t.Truncate(r.step)
	switch n := len(r.b); {
	case n > 0 && start.Before(r.b[n-1].Start):
		// A clock step backwards: keep adding to the newest bucket.
	case n == 0 || start.Sub(r.b[n-1].Start) >= time.Duration(r.n)*r.step:
		r.b = append(r.b[:0], Bucket{Start: start})
	default:
		for s := r.b[n-1].Start.Add(r.step); !s.After(start); s = s.Add(r.step) {
			r.b = append(r.b, Bucket{Start: s})
		}
	}
	if len(r.b) > r.n {
		r.b = append(r.b[:0], r.b[len(r.b)-r.n:]...)
	}
	return &r.b[len(r.b)-1]
}

// window returns copies of the buckets covering the n steps up to now,
// oldest first (empty ones included).
func (r *ring) window(now time.Time) []Bucket {
	end := now.Truncate(r.step)
	out := make([]Bucket, r.n)
	for i := range out {
		out[i].Start = end.Add(-time.Duration(r.n-1-i) * r.step)
	}
	for _, b := range r.b {
		i := r.n - 1 - int(end.Sub(b.Start)/r.step)
		if i >= 0 && i < r.n && b.Start.Equal(out[i].Start) {
			out[i] = b
		}
	}
	return out
}

// Observe takes the reports held now; roles maps each member to its role.
func (s *Series) Observe(now time.Time, reports []membership.Served, roles map[membership.NodeID]membership.Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = len(reports)
	for _, r := range reports {
		prev, known := s.last[r.Node]
		var grew uint64
		switch {
		case !known:
			if !r.Start.Before(s.since) {
				grew = r.HTTPBytes
			}
		case r.Start.Equal(prev.start):
			if r.Seq <= prev.seq {
				continue // seen already, or older
			}
			if r.HTTPBytes > prev.bytes {
				grew = r.HTTPBytes - prev.bytes
			}
		case r.Start.After(prev.start):
			grew = r.HTTPBytes // restarted: all of it is new
		default:
			continue // an older process's report
		}
		s.last[r.Node] = seen{start: r.Start, seq: r.Seq, bytes: r.HTTPBytes}
		if grew == 0 {
			continue
		}
		role, ok := roles[r.Node]
		if !ok {
			continue
		}
		s.totals[role.String()] += grew
		for _, rg := range []*ring{&s.hour, &s.day} {
			b := rg.at(now)
			if role == membership.RoleOrigin {
				b.Origin += grew
			} else {
				b.Volunteers += grew
			}
		}
	}
	// Forget nodes no longer reported, so the map stays bounded by the
	// members.
	if len(s.last) > 2*len(reports)+8 {
		keep := map[membership.NodeID]bool{}
		for _, r := range reports {
			keep[r.Node] = true
		}
		for id := range s.last {
			if !keep[id] {
				delete(s.last, id)
			}
		}
	}
}

// Totals is the bytes served by role since this node started.
func (s *Series) Totals() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.totals))
	for k, v := range s.totals {
		out[k] = v
	}
	return out
}

// Window is one chart's data.
type Window struct {
	Step    int64    `json:"step_seconds"`
	Buckets []Bucket `json:"buckets"`
	// Share is the volunteers' part of the bytes in the window, 0..1, or
	// -1 when nothing was served.
	Share float64 `json:"share"`
}

// Windows returns the last hour and the last day as of now.
func (s *Series) Windows(now time.Time) (hour, day Window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mk := func(r *ring) Window {
		w := Window{Step: int64(r.step / time.Second), Buckets: r.window(now)}
		var o, v uint64
		for _, b := range w.Buckets {
			o += b.Origin
			v += b.Volunteers
		}
		w.Share = -1
		if o+v > 0 {
			w.Share = float64(v) / float64(o+v)
		}
		return w
	}
	return mk(&s.hour), mk(&s.day)
}

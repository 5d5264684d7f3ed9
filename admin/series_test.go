package admin

import (
	"testing"
	"time"

	"github.com/grits-cdn/grits/membership"
)

// TestSeries: growth of each node's counter lands in the bucket of the
// time it was seen, by role; baselines, restarts and replays are handled;
// buckets age out of the hour and the day.
func TestSeries(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	since := t0.Add(-10 * time.Second)
	s := NewSeries(since)
	origin, vol, late := membership.NodeID{1}, membership.NodeID{2}, membership.NodeID{3}
	roles := map[membership.NodeID]membership.Role{origin: membership.RoleOrigin, vol: membership.RoleVolunteer, late: membership.RoleStorage}
	old := since.Add(-time.Hour) // started before this node: baseline only
	rep := func(id membership.NodeID, start time.Time, seq, bytes uint64) membership.Served {
		return membership.Served{Node: id, Start: start, Seq: seq, HTTPBytes: bytes}
	}

	s.Observe(t0, []membership.Served{rep(origin, since, 1, 100), rep(vol, old, 5, 1_000_000)}, roles)
	hour, _ := s.Windows(t0)
	if b := hour.Buckets[hourBuckets-1]; b.Origin != 100 || b.Volunteers != 0 {
		t.Fatalf("first sample: %+v, want the origin's 100 (its process started with ours) and no volunteer baseline", b)
	}
	t1 := t0.Add(time.Minute)
	s.Observe(t1, []membership.Served{rep(origin, since, 2, 150), rep(vol, old, 6, 1_000_900), rep(late, t0, 1, 70)}, roles)
	// A replay of an older report, and a restarted volunteer.
	t2 := t1.Add(10 * time.Second)
	s.Observe(t2, []membership.Served{rep(origin, since, 1, 100), rep(vol, t1, 1, 30), rep(late, t0, 1, 70)}, roles)
	hour, day := s.Windows(t2)
	if b := hour.Buckets[hourBuckets-1]; b.Origin != 50 || b.Volunteers != 900+70+30 {
		t.Fatalf("second minute: %+v, want origin 50, volunteers 1000", b)
	}
	if b := hour.Buckets[hourBuckets-2]; b.Origin != 100 {
		t.Fatalf("first minute: %+v", b)
	}
	if want := 1000.0 / 1150; hour.Share != want || day.Share != want {
		t.Errorf("shares %v, %v, want %v", hour.Share, day.Share, want)
	}
	if tot := s.Totals(); tot["origin"] != 150 || tot["volunteer"] != 930 || tot["storage"] != 70 {
		t.Errorf("totals %v", tot)
	}
	// An hour later the hour window is empty, the day still holds it.
	later := t2.Add(61 * time.Minute)
	hour, day = s.Windows(later)
	if hour.Share != -1 || day.Share <= 0 {
		t.Errorf("an hour on: hour share %v, day share %v", hour.Share, day.Share)
	}
	// A long silence does not leave stale buckets behind.
	s.Observe(t2.Add(48*time.Hour), []membership.Served{rep(origin, since, 3, 160)}, roles)
	_, day = s.Windows(t2.Add(48 * time.Hour))
	var o uint64
	for _, b := range day.Buckets {
		o += b.Origin + b.Volunteers
	}
	if o != 10 {
		t.Errorf("two days on the day window holds %d bytes, want 10", o)
	}
	if len(s.day.b) > dayBuckets || len(s.hour.b) > hourBuckets {
		t.Errorf("rings grew to %d and %d", len(s.hour.b), len(s.day.b))
	}
}

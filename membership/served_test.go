package membership

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// servedOf finds node id's report in what n holds.
func servedOf(n *node, id NodeID) (Served, bool) {
	for _, v := range n.swarm.Served() {
		if v.Node == id {
			return v, true
		}
	}
	return Served{}, false
}

// TestServedReportsSpread: each node's report reaches every other node
// through gossip; a newer one replaces it; a restart (later Start) wins
// over a higher Seq of the old process.
func TestServedReportsSpread(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	v1 := c.add(RoleVolunteer, nil, nil)
	v2 := c.add(RoleStorage, nil, nil)
	c.waitConverged(c.timing().Join)
	start := time.Now().Add(-time.Minute)
	for i, n := range c.nodes {
		n.swarm.ReportServed(Served{Start: start, HTTPRequests: uint64(i + 1), HTTPBytes: uint64(1000 * (i + 1)), ProtoBytes: 7})
	}
	waitServed := func(id NodeID, want func(Served) bool, what string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() error {
			for _, n := range c.nodes {
				v, ok := servedOf(n, id)
				if !ok || !want(v) {
					return fmt.Errorf("node %s holds %+v (%v) for %s", n.id.String()[8:16], v, ok, id.String()[8:16])
				}
			}
			return nil
		})
	}
	for i, n := range c.nodes {
		waitServed(n.id, func(v Served) bool { return v.HTTPBytes == uint64(1000*(i+1)) && v.Seq == 1 && v.ProtoBytes == 7 }, "first reports spread")
	}
	v1.swarm.ReportServed(Served{Start: start, HTTPRequests: 10, HTTPBytes: 5000})
	waitServed(v1.id, func(v Served) bool { return v.HTTPBytes == 5000 && v.Seq == 2 }, "a newer report replaces the older")
	if got, _ := servedOf(v2, v1.id); !got.Start.Equal(start.Truncate(time.Millisecond)) {
		t.Errorf("start %v arrived as %v", start, got.Start)
	}
}

// TestServedReportChecks: acceptServed keeps only a member's own signed,
// newer report.
func TestServedReportChecks(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	v1 := c.add(RoleVolunteer, nil, nil)
	c.waitConverged(c.timing().Join)
	o := c.origin
	start := time.Now().Truncate(time.Millisecond).UTC()
	good := Served{Node: v1.id, Start: start, Seq: 5, HTTPBytes: 500}
	if err := o.swarm.acceptServed(good.encode(v1.key)); err != nil {
		t.Fatalf("a member's signed report: %v", err)
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"signed by another key", Served{Node: v1.id, Start: start, Seq: 6, HTTPBytes: 1 << 40}.encode(stranger), ErrBadSignature},
		{"from a non-member", Served{Node: NodeID(stranger.Public().(ed25519.PublicKey)), Start: start, Seq: 1}.encode(stranger), ErrNotMember},
		{"older, replayed", Served{Node: v1.id, Start: start, Seq: 4, HTTPBytes: 1}.encode(v1.key), nil},
		{"same seq", Served{Node: v1.id, Start: start, Seq: 5, HTTPBytes: 2}.encode(v1.key), nil},
		{"earlier process", Served{Node: v1.id, Start: start.Add(-time.Hour), Seq: 99, HTTPBytes: 3}.encode(v1.key), nil},
		{"malformed", []byte{tagServed, formatV1, 1, 2}, ErrMalformed},
	} {
		err := o.swarm.acceptServed(tc.msg)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if got, _ := servedOf(o, v1.id); got != good {
			t.Fatalf("%s: the origin holds %+v, want %+v", tc.name, got, good)
		}
	}
	restart := Served{Node: v1.id, Start: start.Add(time.Second), Seq: 1, HTTPBytes: 9}
	if err := o.swarm.acceptServed(restart.encode(v1.key)); err != nil {
		t.Fatal(err)
	}
	if got, _ := servedOf(o, v1.id); got != restart {
		t.Fatalf("after a restart's report the origin holds %+v, want %+v", got, restart)
	}
}

func servedCorpus(t testing.TB) map[string][]byte {
	key := recKey(recNodeSeed)
	v := Served{Node: recID(recNodeSeed), Start: recTime, Seq: 3, HTTPRequests: 120, HTTPBytes: 9 << 20, ProtoRequests: 40, ProtoBytes: 3 << 20}
	c := map[string][]byte{
		"realistic": v.encode(key),
		"first":     Served{Node: v.Node, Start: recTime, Seq: 1}.encode(key),
		"max": Served{Node: v.Node, Start: time.UnixMilli(1 << 62), Seq: math.MaxUint64, HTTPRequests: math.MaxUint64,
			HTTPBytes: math.MaxUint64, ProtoRequests: math.MaxUint64, ProtoBytes: math.MaxUint64}.encode(key),
		"seq0": Served{Node: v.Node, Start: recTime}.encode(key),
	}
	truncAndTrail(c, v.encode(key))
	return c
}

func FuzzDecodeServed(f *testing.F) {
	addSeeds(f, servedCorpus(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeServed(data)
		if err != nil {
			wantErr(t, "decodeServed", err, ErrMalformed)
			return
		}
		if v.Seq == 0 {
			t.Fatal("accepted seq 0")
		}
		if re := v.Served.body(); !bytes.Equal(re, v.signed) || !bytes.Equal(append(re, v.sig...), data) {
			t.Fatalf("accepted a non-canonical report:\n in %x\nout %x", data, append(re, v.sig...))
		}
	})
}

func TestServedFuzzCorpus(t *testing.T) {
	checkFuzzCorpus(t, "FuzzDecodeServed", servedCorpus(t))
}

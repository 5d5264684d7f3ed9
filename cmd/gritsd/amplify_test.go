package main_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

// grits1Requests is the origin's count of grits/1 requests answered:
// what volunteers asked of it.
func grits1Requests(t *testing.T, admin string) float64 {
	t.Helper()
	m, _ := scrape(t, admin)
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, "grits_served_requests_total{") && strings.Contains(k, `protocol="grits1"`) {
			n += v
		}
	}
	return n
}

// TestVolunteerDoesNotAmplifyStrangers: a browser-side stranger asks a
// real volunteer, over HTTP, for blocks and trees no root has. Before,
// every random hash of a /grits/v1/blocks/ run and every lookup of a
// random tree made the volunteer ask its sources, the origin among
// them; now it answers from what its trees reference and asks no one,
// while a real file still comes through.
func TestVolunteerDoesNotAmplifyStrangers(t *testing.T) {
	t.Parallel()
	o, _ := newOriginWithKey(t)
	o.importTree(t, newSource(t, []entry{{path: "index.html", data: []byte("<h1>hello</h1>")}, {path: "big.bin", data: randBytes(7, 3*chunkSize)}}))
	osrv := startServe(t, o, gwGossip...)
	oadmin := adminAddr(t, osrv)
	v := gwEnrol(t, o, osrv.addr)
	c := v.clients[0]

	// A real file through the volunteer: its index walked, pulled
	// through as before.
	eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		resp, body, err := c.try(http.MethodGet, v.base+"/grits/v1/lookup/latest/index.html", nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("lookup of index.html at the volunteer: %s %q", resp.Status, body)
		}
		return nil
	})
	// Warming and the walk done: the origin's counter stands still.
	var before float64
	eventually(t, 60*time.Second, 500*time.Millisecond, func() error {
		a := grits1Requests(t, oadmin)
		time.Sleep(500 * time.Millisecond)
		if b := grits1Requests(t, oadmin); a != b {
			return fmt.Errorf("the origin still answers the volunteer: %v then %v requests", a, b)
		}
		before = a
		return nil
	})

	var hashes []string
	for range 16 {
		var h blockstore.Hash
		rand.Read(h[:])
		hashes = append(hashes, h.String())
	}
	resp, body := c.get(t, v.base+"/grits/v1/blocks/"+strings.Join(hashes, ","))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("16 random blocks: %s %q, want 404", resp.Status, body)
	}
	resp, body = c.get(t, v.base+"/grits/v1/lookup/"+hashes[0]+"/index.html")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a lookup in a random tree: %s %q, want 404", resp.Status, body)
	}
	for _, h := range hashes[1:4] {
		resp, body = c.get(t, v.base+"/grits/v1/block/"+h)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("a random block: %s %q, want 404", resp.Status, body)
		}
	}
	if got := grits1Requests(t, oadmin) - before; got != 0 {
		t.Errorf("a stranger's random blocks and tree made the volunteer send the origin %v requests, want 0", got)
	}
}

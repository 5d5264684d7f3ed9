package main_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Volunteers that attack the service worker (issue 17): they answer,
// but their bodies crawl or grow without end. Each is a proxy in front
// of a real volunteer (faultyVolunteer) that changes the bodies of the
// requests it picks.

// waitReportSaying waits until the origin lists a browser's report about
// the volunteer at url whose reason contains say. poke, if set, runs
// every few seconds meanwhile (to have the worker ask the volunteer
// again: on a loaded machine a request may time out before the
// volunteer's answer shows what it is).
func (s *swSite) waitReportSaying(url, say string, poke func()) string {
	s.t.Helper()
	var reason string
	last := time.Now()
	eventually(s.t, 60*time.Second, 200*time.Millisecond, func() error {
		if poke != nil && time.Since(last) > 5*time.Second {
			poke()
			last = time.Now()
		}
		for _, rep := range s.reports() {
			if rep.Peer == url && strings.Contains(rep.Reason, say) {
				reason = rep.Reason
				return nil
			}
		}
		return fmt.Errorf("no report about %s saying %q: %+v", url, say, s.reports())
	})
	return reason
}

// peerScore is the worker's view of one volunteer (grits-stats peers).
type peerScore struct {
	URL     string `json:"url"`
	Dropped bool   `json:"dropped"`
	Fail    int    `json:"fail"`
	OK      int    `json:"ok"`
}

func workerPeer(t *testing.T, b interface {
	Eval(context.Context, string, any) error
}, url string) peerScore {
	t.Helper()
	var peers []peerScore
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Eval(ctx, `new Promise((ok) => {
  const ch = new MessageChannel();
  ch.port1.onmessage = (e) => ok(e.data.peers);
  navigator.serviceWorker.controller.postMessage({ type: 'grits-stats' }, [ch.port2]);
})`, &peers); err != nil {
		t.Fatalf("grits-stats: %v", err)
	}
	for _, p := range peers {
		if p.URL == url {
			return p
		}
	}
	t.Fatalf("the worker does not know %s: %+v", url, peers)
	return peerScore{}
}

// slowBody hands out the body it wraps `chunk` bytes at a time, one
// chunk every `every`, until the request it answers ends.
type slowBody struct {
	r     io.ReadCloser
	ctx   context.Context
	chunk int
	every time.Duration
	sent  *atomic.Int64
}

func (d *slowBody) Read(p []byte) (int, error) {
	select {
	case <-d.ctx.Done():
		return 0, d.ctx.Err()
	case <-time.After(d.every):
	}
	if len(p) > d.chunk {
		p = p[:d.chunk]
	}
	n, err := d.r.Read(p)
	d.sent.Add(int64(n))
	return n, err
}

func (d *slowBody) Close() error { return d.r.Close() }

// TestServiceWorkerOutlastsASlowBody: the site's only volunteer answers
// every request at once, but sends the bodies of block runs
// (/grits/v1/blocks/) slowly: one byte every 2.5 s (a drip that never
// lets a stall timer fire), or 1 KB/s (a throttle). The worker gives the
// run's body a deadline from the slowest rate it accepts, takes the
// unfinished blocks elsewhere (one by one, here from the same
// volunteer's fast single-block answers, or the origin), benches the
// volunteer and tells the origin. Every file arrives byte-exact.
func TestServiceWorkerOutlastsASlowBody(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chunk int
		every time.Duration
	}{
		{"drip", 1, 2500 * time.Millisecond},
		{"1KBps", 100, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := checkFiles()
			// More runs than big.bin's: on a loaded machine a run whose
			// headers come late goes block by block before any drip.
			for i := 0; i < 3; i++ {
				files[fmt.Sprintf("/three/%d.bin", i)] = randBytes(uint64(50+i), 600<<10)
			}
			s := newSWSite(t, files)
			var runs, sent atomic.Int64
			slowURL, _ := s.faultyVolunteer(nil, func(resp *http.Response) error {
				if !strings.HasPrefix(resp.Request.URL.Path, "/grits/v1/blocks/") || resp.StatusCode != http.StatusOK {
					return nil
				}
				runs.Add(1)
				resp.Body = &slowBody{r: resp.Body, ctx: resp.Request.Context(), chunk: tc.chunk, every: tc.every, sent: &sent}
				return nil
			})
			s.waitPeers(1, slowURL)
			b := s.browser()
			s.open(b, "/")
			checkFilesLive(t, b, files)
			checkNosniff(t, b, "/css/site.css", "/media/big.bin")
			if runs.Load() == 0 {
				t.Fatal("the slow volunteer was never asked for a run of blocks: the test proved nothing")
			}
			reason := s.waitReportSaying(slowURL, "too slow", nil)
			p := workerPeer(t, b, slowURL)
			if p.Fail == 0 || p.Dropped {
				t.Errorf("the worker's score of the slow volunteer: %+v; want failures counted, not a drop (it sent no bad byte)", p)
			}
			t.Logf("%d runs asked of the slow volunteer, %d bytes of them sent; the origin heard %q; the worker's score: %+v", runs.Load(), sent.Load(), reason, p)
		})
	}
}

// checkNosniff fetches paths through the worker, whole and as a range,
// and fails unless each answer came verified from the swarm with the
// origin's X-Content-Type-Options: nosniff.
func checkNosniff(t *testing.T, b interface {
	Eval(context.Context, string, any) error
}, paths ...string) {
	t.Helper()
	var got []struct {
		Path     string `json:"path"`
		Status   int    `json:"status"`
		Verified string `json:"verified"`
		Nosniff  string `json:"nosniff"`
	}
	list, _ := json.Marshal(paths)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Eval(ctx, fmt.Sprintf(`(async (paths) => {
  const out = [];
  for (const p of paths) {
    for (const headers of [{}, { Range: 'bytes=1-100' }]) {
      const r = await fetch(p, { headers });
      await r.arrayBuffer();
      out.push({ path: p, status: r.status, verified: r.headers.get('X-Grits-Verified') || '', nosniff: r.headers.get('X-Content-Type-Options') || '' });
    }
  }
  return out;
})(%s)`, list), &got); err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if a.Verified == "" || a.Nosniff != "nosniff" || (a.Status != 200 && a.Status != 206) {
			t.Errorf("%s through the worker: %d, X-Grits-Verified %q, X-Content-Type-Options %q; want an answer from the swarm with nosniff", a.Path, a.Status, a.Verified, a.Nosniff)
		}
	}
}

// zeros64M is 64 MiB of zeros, gzip-compressed (about 64 KiB).
var zeros64M = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		zw.Write(zero)
	}
	zw.Close()
	return buf.Bytes()
})

// TestServiceWorkerRefusesAnOversizedBody: the site's only volunteer
// answers one kind of request (lookups, single blocks or roots) with a
// body far beyond what that answer can hold: 16 MiB as they are, or a
// gzip bomb (64 KiB that the browser inflates to 64 MiB, Content-Encoding:
// gzip). The worker reads no further than the limit, counts the body as
// a lie (the volunteer is dropped, the origin told why), and every file
// still arrives byte-exact.
func TestServiceWorkerRefusesAnOversizedBody(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		gzip       bool
	}{
		{"lookup", "/grits/v1/lookup/", false},
		{"lookup-gzip", "/grits/v1/lookup/", true},
		{"block-gzip", "/grits/v1/block/", true},
		{"root-gzip", "/grits/v1/root", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := checkFiles()
			// Files of two blocks: each costs a lookup at a volunteer (its
			// file node is not a directory's), so a lookup that times out
			// on a loaded machine is not the only chance.
			for i := 0; i < 4; i++ {
				files[fmt.Sprintf("/two/%d.bin", i)] = randBytes(uint64(40+i), 300<<10)
			}
			// Kept for later: each costs a fresh lookup (see below).
			spare := map[string][]byte{}
			for i := 0; i < 12; i++ {
				spare[fmt.Sprintf("/spare/%d.bin", i)] = randBytes(uint64(60+i), 300<<10)
			}
			maps.Copy(files, spare)
			s := newSWSite(t, files)
			var bombs atomic.Int64
			bombURL, _ := s.faultyVolunteer(nil, func(resp *http.Response) error {
				if !strings.HasPrefix(resp.Request.URL.Path, tc.path) || resp.StatusCode != http.StatusOK {
					return nil
				}
				bombs.Add(1)
				resp.Body.Close()
				if tc.gzip {
					resp.Body = io.NopCloser(bytes.NewReader(zeros64M()))
					resp.Header.Set("Content-Encoding", "gzip")
				} else {
					resp.Body = io.NopCloser(io.LimitReader(zeroReader{}, 16<<20))
					resp.Header.Del("Content-Encoding")
				}
				resp.ContentLength = -1
				resp.Header.Del("Content-Length")
				return nil
			})
			s.waitPeers(1, bombURL)
			b := s.browser()
			s.open(b, "/")
			live := maps.Clone(files)
			for p := range spare {
				delete(live, p)
			}
			checkFilesLive(t, b, live)
			if bombs.Load() == 0 {
				t.Fatalf("the volunteer was never asked for %s: the test proved nothing", tc.path)
			}
			// A root is asked for at install and on navigations, at most
			// every 15 s a volunteer: navigate again while waiting. On a
			// loaded machine the first lookups may time out before the
			// body shows its size (the volunteer is then benched for a
			// while): fetch a two-block file not read yet too, a new lookup
			// (checked byte-exact as any other).
			next := 0
			reason := s.waitReportSaying(bombURL, "body larger than", func() {
				s.open(b, "/")
				if p := fmt.Sprintf("/spare/%d.bin", next); next < len(spare) {
					next++
					checkThroughWorker(t, b, map[string][]byte{p: spare[p]})
				}
			})
			if p := workerPeer(t, b, bombURL); !p.Dropped {
				t.Errorf("the worker's score of the volunteer that sent an oversized body: %+v; want it dropped", p)
			}
			t.Logf("%d oversized answers; the origin heard %q", bombs.Load(), reason)
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

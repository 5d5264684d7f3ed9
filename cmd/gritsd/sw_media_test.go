package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/chromium"
)

// TestServiceWorkerServesAMediaHost: the origin serves its tree's
// /media/ under a second host name (--media-host, as Mastodon's
// S3_ALIAS_HOST), and the page names its pictures and its video by that
// host. Once the worker controls the page, those cross-origin requests
// come from volunteers too: an <img> without crossorigin (a no-cors
// request), one with crossorigin (CORS: a canvas can read it), a
// <video>'s range requests (a seek), and fetches in both modes; the
// origin serves no byte of them. Chromium resolves the media host to
// the origin's address (--host-resolver-rules).
func TestServiceWorkerServesAMediaHost(t *testing.T) {
	port := gwFreePorts(t)
	media := fmt.Sprintf("https://media.test:%d", port)
	demo := demoFiles(t)
	files := map[string][]byte{
		"/index.html": []byte(`<!doctype html><html><head><meta charset="utf-8"><title>media</title><script src="/grits/v1/register.js"></script></head><body>` +
			`<img id="plain" src="` + media + `/rings.png"><img id="cors" crossorigin="anonymous" src="` + media + `/gradient.png">` +
			`<video src="` + media + `/clip.webm" preload="metadata" muted></video></body></html>`),
		"/media/rings.png":    demo["/images/rings.png"],
		"/media/gradient.png": demo["/images/gradient.png"],
		"/media/clip.webm":    demo["/media/testcard.webm"],
		"/media/big.bin":      randBytes(17, 1<<20+777),
	}
	s, vs := newSWSwarm(t, files, "--https", fmt.Sprintf("127.0.0.1:%d", port), "--media-host", media+"=/media")

	// The origin itself: the media host's names map into /media, CORS open.
	c := gwNewH2(t, s.pool, nil)
	req, _ := http.NewRequest("GET", s.originURL+"/rings.png", nil)
	req.Host = fmt.Sprintf("media.test:%d", port)
	resp, body, err := c.send(req)
	if err != nil || resp.StatusCode != 200 || string(body) != string(files["/media/rings.png"]) || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET media.test/rings.png at the origin: %v %v, CORS %q", err, resp, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	req, _ = http.NewRequest("GET", s.originURL+"/index.html", nil)
	req.Host = fmt.Sprintf("media.test:%d", port)
	if resp, _, err := c.send(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("GET media.test/index.html (outside /media): %v %v; want 404", err, resp)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	originAddr := fmt.Sprintf("127.0.0.1:%d", port)
	b, err := chromium.Start(ctx, chromium.Options{Profile: s.profile, SPKI: gateway.SPKIHash(s.leaf.Leaf),
		ForceQUIC: []string{originAddr, fmt.Sprintf("media.test:%d", port), vs[0].addr, vs[1].addr},
		Flags:     map[string]string{"host-resolver-rules": "MAP media.test 127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	s.open(b, "/") // installs the worker
	before := served(t, vs, "lookup").Requests + served(t, vs, "block").Requests
	originBefore := s.o.counts(t).ByKind["site"]
	s.open(b, "/") // under the worker: both pictures load (open checks them)

	var canvas string
	eval(t, b, 20*time.Second, `(() => {
  const img = document.getElementById('cors');
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  try { ctx.getImageData(0, 0, 1, 1); return 'readable'; } catch (e) { return 'tainted: ' + e.name; }
})()`, &canvas)
	if canvas != "readable" {
		t.Errorf("the crossorigin picture through the worker: canvas %s", canvas)
	}
	var seek struct {
		Duration, Target, At float64
		Ready                int
	}
	eval(t, b, 60*time.Second, seekJS, &seek)
	if seek.Ready < 2 || seek.At < seek.Target-1 || seek.Duration <= 0 {
		t.Errorf("video on the media host, seek through the worker: %+v", seek)
	}

	var got struct {
		Sum, Verified, RangeSum, NoCORSType string
		RangeStatus, NoCORSStatus           int
	}
	eval(t, b, 60*time.Second, `(async (base) => {
  const hex = async (r) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', await r.arrayBuffer()))].map((x) => x.toString(16).padStart(2, '0')).join('');
  const r = await fetch(base + '/big.bin', { mode: 'cors' });
  const out = { verified: r.headers.get('X-Grits-Verified') || '', sum: await hex(r) };
  const rr = await fetch(base + '/big.bin', { mode: 'cors', headers: { Range: 'bytes=300000-700000' } });
  out.rangeStatus = rr.status; out.rangeSum = await hex(rr);
  const o = await fetch(base + '/big.bin', { mode: 'no-cors' });
  out.noCORSType = o.type; out.noCORSStatus = o.status;
  return out;
})('`+media+`')`, &got)
	sum := sha256.Sum256(files["/media/big.bin"])
	rsum := sha256.Sum256(files["/media/big.bin"][300000:700001])
	if got.Sum != hex.EncodeToString(sum[:]) || got.Verified == "" {
		t.Errorf("CORS fetch of the media host's big.bin: sha256 %s, X-Grits-Verified %q; want %x from the worker", got.Sum, got.Verified, sum)
	}
	if got.RangeStatus != 206 || got.RangeSum != hex.EncodeToString(rsum[:]) {
		t.Errorf("CORS range fetch: %d %s, want 206 %x", got.RangeStatus, got.RangeSum, rsum)
	}
	// A no-cors fetch the worker answers with its own response: the page
	// gets it as the worker made it (not opaque), status and all.
	t.Logf("no-cors fetch through the worker: type %q, status %d", got.NoCORSType, got.NoCORSStatus)
	if got.NoCORSStatus != 200 && got.NoCORSType != "opaque" {
		t.Errorf("no-cors fetch of the media host: type %q, status %d", got.NoCORSType, got.NoCORSStatus)
	}

	if n := served(t, vs, "lookup").Requests + served(t, vs, "block").Requests - before; n == 0 {
		t.Error("the volunteers answered nothing: the media host's files did not come from the swarm")
	}
	if d := s.o.counts(t).ByKind["site"]; d.Bytes-originBefore.Bytes > int64(len(files["/index.html"])) {
		t.Errorf("the origin served %d bytes of site files under the worker; want the page at most (%d)", d.Bytes-originBefore.Bytes, len(files["/index.html"]))
	}
	st := workerStats(t, b)
	t.Logf("worker: %+v", st)
	s.noReports()
}

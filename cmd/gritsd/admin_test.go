package main_test

// Integration tests for the admin listener: Prometheus metrics, health
// and readiness, gritsd status's exit code, and the dashboard in
// headless Chromium. Real gritsd processes, real gossip, real browsers'
// protocols against the gateways.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/grits-cdn/grits/internal/chromium"
)

// notReadyCode is gritsd status's exit code for a daemon that runs but
// is not ready (cli.ExitNotReady).
const notReadyCode = 3

var adminLineRE = regexp.MustCompile(`(?m)^admin on (127\.0\.0\.1:\d+) `)

// adminAddr is the admin listener address serve printed.
func adminAddr(t *testing.T, s *server) string {
	t.Helper()
	m := adminLineRE.FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("serve: want \"admin on 127.0.0.1:PORT (...)\" before \"listening on\"\n%s", s)
	}
	return m[1]
}

// adminGet fetches a path from an admin listener.
func adminGet(addr, path string) (int, string, error) {
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, string(b), err
}

// scrape reads /metrics into series → value, keyed as the exposition
// prints them (`name{label="v",...}`, labels sorted by name).
func scrape(t *testing.T, addr string) (map[string]float64, string) {
	t.Helper()
	code, text, err := adminGet(addr, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%.500s", code, err, text)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, text
}

// TestAdminMetrics: a real origin and volunteer; /metrics passes
// promlint, and after browser and grits/1 traffic the expected families
// move: requests and bytes by endpoint, protocol and result, lookup
// latency, the hot-block cache, members by role and state, the root,
// disk use, and on the origin the volunteer's bytes learnt from gossip.
// /healthz, /readyz and gritsd status agree on readiness.
func TestAdminMetrics(t *testing.T) {
	t.Parallel()
	o, keyStr := newOriginWithKey(t)
	key := gwParseKey(t, keyStr)
	big := randBytes(7, 3*chunkSize+100)
	o.importTree(t, newSource(t, []entry{
		{path: "index.html", data: []byte("<!doctype html>\n<h1>metrics</h1>\n")},
		{path: "big.bin", data: big},
	}))
	osrv := startServe(t, o, gwGossip...)
	oadmin := adminAddr(t, osrv)
	oaddr, _ := gwHTTPS(t, osrv)
	v := gwEnrol(t, o, osrv.addr)
	vadmin := adminAddr(t, v.srv)

	for _, a := range []string{oadmin, vadmin} {
		eventually(t, swarmWait, 200*time.Millisecond, func() error {
			if code, body, err := adminGet(a, "/healthz"); err != nil || code != http.StatusOK || body != "ok\n" {
				return fmt.Errorf("/healthz on %s: %d %q %v", a, code, body, err)
			}
			if code, body, err := adminGet(a, "/readyz"); err != nil || code != http.StatusOK {
				return fmt.Errorf("/readyz on %s: %d %q %v", a, code, body, err)
			}
			return nil
		})
	}
	if r := v.d.run(t, "status"); r.code != 0 || !strings.Contains(r.stdout, "ready; metrics and dashboard on http://"+vadmin+"/") {
		t.Errorf("status of a ready volunteer: want exit 0 and its dashboard's address\n%s", r)
	}

	before, text := scrape(t, oadmin)
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	vbefore, _ := scrape(t, vadmin)

	// Browser traffic: the page from the origin over HTTP/2; a lookup
	// and the big file's blocks from the volunteer over HTTP/2 and
	// HTTP/3, twice (the second time from the hot-block cache).
	oc := gwNewH2(t, gwCAPool(t, o.path("ca.pem")), nil)
	if resp, _ := oc.get(t, "https://"+oaddr+"/index.html"); resp.StatusCode != http.StatusOK {
		t.Fatalf("origin page: %s", resp.Status)
	}
	for _, c := range v.clients {
		for range 2 {
			_, f, _, nodes := gwLookup(t, c, v.base, "big.bin", key, len(big))
			gwFetchFile(t, c, v.base, f, nodes)
		}
	}
	// grits/1 traffic: gritsd get looks the file up at the volunteer.
	out := filepath.Join(t.TempDir(), "big.bin")
	run(t, "get", "--peer", v.srv.addr, "--site-key", keyStr, "/big.bin", "-o", out)
	if got, err := os.ReadFile(out); err != nil || len(got) != len(big) {
		t.Fatalf("gritsd get: %v, %d bytes", err, len(got))
	}

	vafter, vtext := scrape(t, vadmin)
	moved := func(what string, b, a map[string]float64, series string, min float64) {
		t.Helper()
		if d := a[series] - b[series]; d < min {
			t.Errorf("%s: %s moved by %v, want at least %v", what, series, d, min)
		}
	}
	moved("volunteer", vbefore, vafter, `grits_served_requests_total{endpoint="block",protocol="h2",result="ok"}`, 6)
	moved("volunteer", vbefore, vafter, `grits_served_requests_total{endpoint="block",protocol="h3",result="ok"}`, 6)
	moved("volunteer", vbefore, vafter, `grits_served_bytes_total{endpoint="block",protocol="h3",result="ok"}`, float64(2*len(big)))
	moved("volunteer", vbefore, vafter, `grits_request_duration_seconds_count{endpoint="lookup",protocol="h2"}`, 2)
	moved("volunteer", vbefore, vafter, `grits_request_duration_seconds_count{endpoint="lookup",protocol="grits1"}`, 1)
	moved("volunteer", vbefore, vafter, `grits_served_bytes_total{endpoint="lookup",protocol="grits1",result="ok"}`, 1)
	moved("volunteer", vbefore, vafter, `grits_gateway_cache_requests_total{result="hit"}`, 6)
	for series, want := range map[string]float64{
		`grits_members{role="origin",state="alive"}`:    1,
		`grits_members{role="volunteer",state="alive"}`: 1,
		`grits_root_seq`: 1,
		`grits_ready`:    1,
	} {
		if vafter[series] != want {
			t.Errorf("volunteer: %s = %v, want %v", series, vafter[series], want)
		}
	}
	if vafter[`grits_blockstore_bytes{residency="cached"}`] < float64(len(big)) {
		t.Errorf("volunteer caches %v bytes, want the big file's %d at least", vafter[`grits_blockstore_bytes{residency="cached"}`], len(big))
	}
	if age := vafter[`grits_root_age_seconds`]; age <= 0 || age > 3600 {
		t.Errorf("root age %v s", age)
	}

	// The origin learns what the volunteer served from its gossiped
	// reports (every second under the local gossip profile).
	eventually(t, swarmWait, 250*time.Millisecond, func() error {
		after, _ := scrape(t, oadmin)
		if d := after[`grits_swarm_served_bytes_total{role="volunteer"}`] - before[`grits_swarm_served_bytes_total{role="volunteer"}`]; d < float64(4*len(big)) {
			return fmt.Errorf("the origin counts %v bytes served by volunteers, want at least %d", d, 4*len(big))
		}
		moved("origin", before, after, `grits_served_requests_total{endpoint="site",protocol="h2",result="ok"}`, 1)
		return nil
	})
	if t.Failed() {
		t.Logf("volunteer /metrics:\n%s", vtext)
	}
}

// TestAdminNotReady: an origin with nothing imported runs but is not
// ready: /readyz says why with 503, /healthz is fine, gritsd status
// exits 3 (the JSON form too) and says what is missing; --admin off
// turns the listener off.
func TestAdminNotReady(t *testing.T) {
	t.Parallel()
	o, _ := newOriginWithKey(t)
	s := startServe(t, o, gwGossip...)
	a := adminAddr(t, s)
	if code, body, err := adminGet(a, "/readyz"); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "no root yet") {
		t.Errorf("/readyz without a root: %d %q %v", code, body, err)
	}
	if code, _, err := adminGet(a, "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz: %d %v", code, err)
	}
	for _, args := range [][]string{{"status"}, {"status", "--json"}} {
		r := o.run(t, args...)
		if r.code != notReadyCode || !strings.Contains(r.stderr, "not ready: no root yet") {
			t.Errorf("gritsd %v of an origin without a root: want exit %d and why\n%s", args, notReadyCode, r)
		}
	}
	if r := o.run(t, "status", "--json"); !strings.Contains(r.stdout, `"ready": false`) {
		t.Errorf("status --json: want \"ready\": false\n%s", r)
	}
	o.importTree(t, newSource(t, []entry{{path: "a.txt", data: []byte("now ready\n")}}))
	eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		if r := o.run(t, "status"); r.code != 0 {
			return fmt.Errorf("status after an import: %s", r)
		}
		return nil
	})
	s.stop(t, syscall.SIGINT)

	off := startServe(t, o, append([]string{"--admin", "off"}, gwGossip...)...)
	if adminLineRE.MatchString(off.stderr.String()) {
		t.Errorf("--admin off still printed an admin address\n%s", off)
	}
	if code, _, err := adminGet(a, "/healthz"); err == nil {
		t.Errorf("the old admin address still answers (%d) with --admin off", code)
	}
}

// TestDashboardInChromium: the origin's dashboard in headless Chromium
// renders the swarm, and after browsers fetch from the volunteer its
// numbers move: the volunteer's bytes served, the share from volunteers
// and the chart's volunteer bars. A screenshot is kept as the test's
// artifact (go test -artifacts; also copied to $GRITS_ARTIFACTS if set).
func TestDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v (apt-get install chromium; .ci/run does)", chromiumPath, err)
	}
	o, keyStr := newOriginWithKey(t)
	key := gwParseKey(t, keyStr)
	big := randBytes(9, 4*chunkSize)
	o.importTree(t, newSource(t, []entry{{path: "big.bin", data: big}}))
	osrv := startServe(t, o, gwGossip...)
	oadmin := adminAddr(t, osrv)
	v := gwEnrol(t, o, osrv.addr)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := chromium.Start(ctx, chromium.Options{Profile: t.TempDir(), Flags: map[string]string{"window-size": "1280,1400"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Navigate(ctx, "http://"+oadmin+"/"); err != nil {
		t.Fatal(err)
	}
	// Rendered: both members listed, the root shown, ready.
	if err := b.Wait(ctx, `document.querySelectorAll("#members tbody tr").length === 2 && document.getElementById("root-seq").textContent === "seq 1" && document.getElementById("ready").textContent === "ready"`); err != nil {
		var html string
		b.Eval(ctx, `document.body.innerText`, &html)
		t.Fatalf("the dashboard did not render the swarm: %v\n%s", err, html)
	}
	var share string
	if err := b.Eval(ctx, `document.getElementById("share-hour").textContent`, &share); err != nil {
		t.Fatal(err)
	}

	// Browsers' traffic at the volunteer.
	for _, c := range v.clients {
		_, f, _, nodes := gwLookup(t, c, v.base, "big.bin", key, len(big))
		gwFetchFile(t, c, v.base, f, nodes)
	}
	moved := `(() => {
		const row = [...document.querySelectorAll("#members tbody tr")].find((r) => r.dataset.role === "volunteer");
		const served = row && row.querySelector("td.served").textContent;
		return served && served !== "–" && !served.endsWith(" B") && document.getElementById("share-hour").textContent.endsWith("%") &&
			document.querySelectorAll("#chart-hour rect.vol").length > 0;
	})()`
	if err := b.Wait(ctx, moved); err != nil {
		var text string
		b.Eval(ctx, `document.body.innerText`, &text)
		t.Fatalf("the dashboard's numbers did not move after traffic (share before: %q): %v\n%s", share, err, text)
	}
	var after struct {
		Share  string `json:"share"`
		Served string `json:"served"`
	}
	b.Eval(ctx, `({share: document.getElementById("share-hour").textContent,
		served: [...document.querySelectorAll("#members tbody tr")].find((r) => r.dataset.role === "volunteer").querySelector("td.served").textContent})`, &after)
	t.Logf("dashboard: share from volunteers %q → %q; the volunteer served %s", share, after.Share, after.Served)

	png, err := b.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("GRITS_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			os.WriteFile(filepath.Join(dir, "dashboard.png"), png, 0o644)
		}
	}
	if len(png) < 10_000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot: %d bytes, not a PNG of a page", len(png))
	}
	t.Logf("screenshot: %s (%d bytes)", p, len(png))
}

package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// statusReports is what gritsd status on the origin lists of browsers'
// reports about volunteers.
type statusReports []struct {
	Peer   string `json:"peer"`
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

func (s *swSite) reports() statusReports {
	s.t.Helper()
	r := s.o.must(s.t, "status", "--json")
	var st struct {
		Reports statusReports `json:"reports"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		s.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st.Reports
}

// noReports fails the test if the origin heard any complaint about a
// volunteer: after a run with healthy volunteers there must be none.
func (s *swSite) noReports() {
	s.t.Helper()
	if reps := s.reports(); len(reps) > 0 {
		s.t.Errorf("the origin holds %d reports against healthy volunteers: %+v", len(reps), reps)
	}
}

// TestServiceWorkerSlowVolunteerIsNoFault: one of two volunteers is
// healthy but answers 400 ms late (a proxy holds each response). The
// worker's hedges go to the other one and win, again and again; every
// file arrives byte-exact, and the origin gets no report: losing races
// is not a fault, only a timeout or a lie is.
func TestServiceWorkerSlowVolunteerIsNoFault(t *testing.T) {
	files := moreFiles(checkFiles(), 16)
	s := newSWSite(t, files)
	s.volunteer()
	var asked atomic.Int64
	slowURL, _ := s.faultyVolunteer(nil, func(resp *http.Response) error {
		asked.Add(1)
		time.Sleep(400 * time.Millisecond) // the headers leave late
		return nil
	})
	s.waitPeers(2, slowURL)
	b := s.browser()
	s.open(b, "/")
	checkFilesLive(t, b, files)
	st := workerStats(t, b)
	t.Logf("the slow volunteer was asked %d times; the worker sent %d hedges: %+v", asked.Load(), st.HedgesSent, st)
	if asked.Load() == 0 || st.HedgesSent == 0 {
		t.Fatal("no request went to the slow volunteer, or none was hedged: the test proved nothing")
	}
	if st.ReportsSent != 0 {
		t.Errorf("the worker sent %d reports about healthy volunteers", st.ReportsSent)
	}
	s.noReports()
}

// originDownFiles is a site with a multi-block file, a small one (its
// bytes come inline with the lookup), a directory with an index and one
// without.
func originDownFiles() map[string][]byte {
	return map[string][]byte{
		"/index.html":     []byte(`<!doctype html><html><head><meta charset="utf-8"><title>down</title><script src="/grits/v1/register.js"></script></head><body>down</body></html>`),
		"/data/file.bin":  randBytes(31, 600<<10), // three blocks
		"/small.txt":      []byte("a small file, inline in its lookup\n"),
		"/dir/index.html": []byte("<!doctype html><p>the directory's page</p>"),
		"/noindex/x.txt":  []byte("a directory without an index\n"),
	}
}

// pageRequest is a request the page makes, and what came back.
type pageRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
}

type pageAnswer struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       []byte            `json:"body"` // base64 in JSON
	Redirected bool              `json:"redirected"`
	URL        string            `json:"url"`
	Error      string            `json:"error"`
}

// answerHeaders are the headers a worker's answer must share with the
// origin's.
var answerHeaders = []string{"Content-Type", "Content-Range", "Content-Length", "Etag", "Accept-Ranges", "Location", "X-Content-Type-Options"}

// normalized is an answer with its multipart boundary named BOUNDARY.
func normalized(status int, hdr func(string) string, body []byte) (int, map[string]string, string) {
	h := map[string]string{}
	boundary := ""
	if _, params, err := mime.ParseMediaType(hdr("Content-Type")); err == nil {
		boundary = params["boundary"]
	}
	for _, k := range answerHeaders {
		if v := hdr(k); v != "" {
			if boundary != "" {
				v = strings.ReplaceAll(v, boundary, "BOUNDARY")
			}
			h[k] = v
		}
	}
	if boundary != "" {
		body = bytes.ReplaceAll(body, []byte(boundary), []byte("BOUNDARY"))
	}
	return status, h, string(body)
}

// TestServiceWorkerAnswersForTheOriginWhenItIsDown: with the origin up,
// it answers a set of requests (Range headers of every kind, HEAD,
// If-None-Match, paths that are absent or directories); with the origin
// down, the page's same requests through the worker get the same
// answers, from the tree: a proven absence is a 404, not a network
// error; HEAD costs no block; several ranges come as multipart.
func TestServiceWorkerAnswersForTheOriginWhenItIsDown(t *testing.T) {
	files := originDownFiles()
	// A static site (no upstream app): by default every path is the
	// tree's, so the worker answers /missing.txt's 404 from the tree too.
	s, _ := newSWSwarm(t, files)
	c := gwNewH2(t, s.pool, nil)
	etag := ""
	reqs := []pageRequest{
		{"GET", "/small.txt", nil},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes=0-99"}},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes= 100 - 199 "}},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes=0-99,300000-300099, -10"}},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes=262100-262200"}},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes=-500"}},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes=614000-"}},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes=0-,0-"}},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes=abc"}},
		{"GET", "/data/file.bin", map[string]string{"Range": "bytes=9999999-"}},
		{"GET", "/small.txt", map[string]string{"Range": "bytes=0-1,5-6"}},
		{"HEAD", "/data/file.bin", nil},
		{"HEAD", "/small.txt", map[string]string{"Range": "bytes=2-5"}},
		{"HEAD", "/data/file.bin", map[string]string{"Range": "bytes=0-1,3-4"}},
		{"GET", "/missing.txt", nil},
		{"GET", "/noindex/", nil},
		{"GET", "/small.txt/", nil},
		{"GET", "/data/file.bin/x", nil},
		{"HEAD", "/missing.txt", nil},
	}
	// The origin's own answers, with it up.
	want := make([]pageAnswer, len(reqs))
	for i, r := range reqs {
		var hdr []string
		for k, v := range r.Headers {
			hdr = append(hdr, k+": "+v)
		}
		resp, body := c.do(t, r.Method, s.originURL+r.Path, nil, hdr...)
		want[i] = pageAnswer{Status: resp.StatusCode, Body: body, Headers: map[string]string{}}
		for _, k := range answerHeaders {
			want[i].Headers[k] = resp.Header.Get(k)
		}
		if r.Path == "/small.txt" && r.Method == "GET" && r.Headers == nil {
			etag = resp.Header.Get("Etag")
		}
	}
	reqs = append(reqs, pageRequest{"GET", "/small.txt", map[string]string{"If-None-Match": etag}})
	resp, body := c.do(t, "GET", s.originURL+"/small.txt", nil, "If-None-Match: "+etag)
	want = append(want, pageAnswer{Status: resp.StatusCode, Body: body, Headers: map[string]string{"Etag": resp.Header.Get("Etag")}})
	dirResp, dirBody := c.get(t, s.originURL+"/dir")
	if dirResp.StatusCode != http.StatusMovedPermanently || dirResp.Header.Get("Location") != "/dir/" {
		t.Fatalf("origin GET /dir: %s, Location %q", dirResp.Status, dirResp.Header.Get("Location"))
	}
	_, dirPage := c.get(t, s.originURL+"/dir/")
	_ = dirBody

	b := s.browser()
	s.open(b, "/")
	checkThroughWorker(t, b, map[string][]byte{"/small.txt": files["/small.txt"]}) // the worker is up and serving
	s.origin.stop(t, syscall.SIGINT)

	list, _ := json.Marshal(append(reqs, pageRequest{"GET", "/dir", nil}))
	var got []pageAnswer
	eval(t, b, 120*time.Second, fmt.Sprintf(`(async (reqs) => {
  const out = [];
  for (const q of reqs) {
    try {
      const r = await fetch(q.path, { method: q.method, headers: q.headers || {} });
      const body = new Uint8Array(await r.arrayBuffer());
      const headers = {};
      r.headers.forEach((v, k) => { headers[k] = v; });
      let bin = '';
      for (let i = 0; i < body.length; i += 8192) bin += String.fromCharCode(...body.subarray(i, i + 8192));
      out.push({ status: r.status, headers, body: btoa(bin), redirected: r.redirected, url: r.url });
    } catch (e) { out.push({ error: String(e) }); }
  }
  return out;
})(%s)`, list), &got)

	for i, r := range reqs {
		g := got[i]
		what := fmt.Sprintf("%s %s %v", r.Method, r.Path, r.Headers)
		if g.Error != "" {
			t.Errorf("%s through the worker, the origin down: %s; the origin answered %d", what, g.Error, want[i].Status)
			continue
		}
		ws, wh, wb := normalized(want[i].Status, func(k string) string { return want[i].Headers[k] }, want[i].Body)
		gs, gh, gb := normalized(g.Status, func(k string) string { return g.Headers[strings.ToLower(k)] }, g.Body)
		if gs != ws || gb != wb {
			t.Errorf("%s: the worker answered %d with %d bytes, the origin %d with %d bytes (%.80q / %.80q)", what, gs, len(gb), ws, len(wb), gb, wb)
		}
		for k, v := range wh {
			if gh[k] != v {
				t.Errorf("%s: %s %q from the worker, %q from the origin", what, k, gh[k], v)
			}
		}
	}
	d := got[len(got)-1]
	if d.Error != "" || !d.Redirected || !strings.HasSuffix(d.URL, "/dir/") || string(d.Body) != string(dirPage) {
		t.Errorf("GET /dir with the origin down: %+v; want a redirect to /dir/ and its page", d)
	}
}

package main_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"
)

// workerConfig is the paths and version the origin writes into the
// worker library it serves now.
func (s *swSite) workerConfig() (paths []string, version string) {
	s.t.Helper()
	c := gwNewH2(s.t, s.pool, nil)
	resp, body := c.get(s.t, s.originURL+"/grits/v1/sw-lib.js")
	if resp.StatusCode != 200 {
		s.t.Fatalf("sw-lib.js: %s", resp.Status)
	}
	m := regexp.MustCompile(`"paths":\[([^\]]*)\].*"version":"([0-9a-f]+)"`).FindSubmatch(body)
	if m == nil {
		s.t.Fatalf("sw-lib.js carries no paths and version: %.300s", body)
	}
	for _, p := range regexp.MustCompile(`"([^"]*)"`).FindAllSubmatch(m[1], -1) {
		paths = append(paths, string(p[1]))
	}
	return paths, string(m[2])
}

// TestServiceWorkerDefaultPathsAreTheTrees: an app behind --upstream,
// its static files in the tree, no sw_paths. The worker serves only the
// tree's top-level names from volunteers: the app's dynamic routes
// (/api/now, /u/alice) are never looked up, at a volunteer or in the
// worker's own cache, so volunteers never learn them; the tree's files
// still come from volunteers, verified. An import that adds a top-level
// name changes the worker's paths and version.
func TestServiceWorkerDefaultPathsAreTheTrees(t *testing.T) {
	app := newStandInApp(t)
	files := map[string][]byte{
		"/static/app.css":  bytes.Repeat([]byte("h1 { color: rgb(4, 5, 6) }\n"), 300),
		"/static/logo.png": gwPNG(t),
		"/static/big.bin":  randBytes(17, 600<<10),
		"/robots.txt":      []byte("User-agent: *\n"),
	}
	s, vs := newSWSwarm(t, files, "--upstream", app.url)
	if paths, _ := s.workerConfig(); !slices.Equal(paths, []string{"/robots.txt", "/static/"}) {
		t.Fatalf("the worker's paths: %q; want the tree's top level [/robots.txt /static/]", paths)
	}
	b := s.browser()
	s.open(b, "/") // the app's page registers the app's worker, which imports grits
	s.open(b, "/")

	lookups := func() int64 { return served(t, vs, "lookup").Requests }
	before, stBefore, apis := lookups(), workerStats(t, b), app.apis.Load()
	var statuses []int
	eval(t, b, 30*time.Second, `(async () => {
  const out = [];
  for (const p of ['/api/now', '/u/alice', '/u/bob?tab=2', '/api/now']) out.push((await fetch(p)).status);
  return out;
})()`, &statuses)
	st := workerStats(t, b)
	if n := lookups() - before; n != 0 {
		t.Errorf("volunteers answered %d lookups while the page fetched the app's dynamic routes; want none", n)
	}
	if d := (st.LookupsSent + st.LocalLookups) - (stBefore.LookupsSent + stBefore.LocalLookups); d != 0 {
		t.Errorf("the worker looked up the app's dynamic routes %d times (sent %d, local %d); want none", d, st.LookupsSent-stBefore.LookupsSent, st.LocalLookups-stBefore.LocalLookups)
	}
	if app.apis.Load()-apis != 2 || !slices.Equal(statuses, []int{200, 200, 200, 200}) {
		t.Errorf("the app's routes: %v, %d /api/now at the app; want 200s, 2", statuses, app.apis.Load()-apis)
	}

	// The tree's files: from volunteers, verified.
	before = lookups() + served(t, vs, "block").Requests
	checkThroughWorker(t, b, files)
	checkNosniff(t, b, "/static/app.css", "/robots.txt")
	if n := lookups() + served(t, vs, "block").Requests - before; n == 0 {
		t.Error("the volunteers answered no lookup or block: the tree's files did not come from the swarm")
	}

	// A new top-level name: the origin's worker names it, as a new version.
	_, v1 := s.workerConfig()
	src := t.TempDir()
	files["/fonts/a.woff2"] = randBytes(18, 1000)
	for p, body := range files {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), body, 0o644)
	}
	s.o.must(t, "import", src)
	eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		paths, v2 := s.workerConfig()
		if !slices.Equal(paths, []string{"/fonts/", "/robots.txt", "/static/"}) || v2 == v1 {
			return fmt.Errorf("after the import: paths %q, version %s (was %s)", paths, v2, v1)
		}
		return nil
	})
	s.noReports()
}

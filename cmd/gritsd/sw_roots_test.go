package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/grits-cdn/grits/internal/chromium"
)

// rootsFiles is a site whose /data.txt changes between imports, with
// small files for a page to ask volunteers for one by one.
func rootsFiles(version string) map[string][]byte {
	files := moreFiles(map[string][]byte{
		"/index.html": []byte(`<!doctype html><html><head><meta charset="utf-8"><title>spa</title><script src="/grits/v1/register.js"></script></head><body>spa</body></html>`),
		"/data.txt":   []byte("data " + version + "\n"),
	}, 40)
	return files
}

// reimport imports files on the origin as the whole site again.
func (s *swSite) reimport(files map[string][]byte) {
	s.t.Helper()
	src := s.t.TempDir()
	for p, body := range files {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), body, 0o644)
	}
	s.o.must(s.t, "import", src)
}

// pollJS makes the page (which never navigates again) fetch /data.txt
// every 250 ms, and, with more set, one of the /more/ files it has not
// asked for yet before it, recording when it saw which content.
const pollJS = `(() => {
  window.seen = [];
  let i = 0;
  const more = %t;
  setInterval(async () => {
    try {
      if (more) await (await fetch('/more/f' + String(i++ %% 40).padStart(2, '0') + '.txt')).text();
      const body = await (await fetch('/data.txt')).text();
      window.seen.push([Date.now(), body]);
    } catch (e) { window.seen.push([Date.now(), 'error: ' + e]); }
  }, 250);
  return true;
})()`

// firstSeen waits until the page has seen body and returns when (page
// clock, ms), failing the test after timeout.
func firstSeen(t *testing.T, b *chromium.Browser, body string, timeout time.Duration) int64 {
	t.Helper()
	var at int64
	deadline := time.Now().Add(timeout)
	for {
		eval(t, b, 10*time.Second, fmt.Sprintf(`(window.seen.find((s) => s[1] === %q) || [0])[0]`, body), &at)
		if at != 0 {
			return at
		}
		if time.Now().After(deadline) {
			var last []any
			eval(t, b, 10*time.Second, `window.seen.slice(-3)`, &last)
			t.Fatalf("the open page never saw %q in %v; last fetches: %v", body, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func pageNow(t *testing.T, b *chromium.Browser) int64 {
	t.Helper()
	var now int64
	eval(t, b, 10*time.Second, `Date.now()`, &now)
	return now
}

// TestServiceWorkerOpenPageSeesNewRoot: a page that never navigates
// (a single-page app) reads /data.txt through the worker; after an
// import on the origin its fetches return the new content within the
// default 10 s, and the worker pays at most one small conditional
// request (a 304 without a body) per 10 s for it.
func TestServiceWorkerOpenPageSeesNewRoot(t *testing.T) {
	s, _ := newSWSwarm(t, rootsFiles("v1"))
	b := s.browser()
	s.open(b, "/")
	var ok bool
	eval(t, b, 10*time.Second, fmt.Sprintf(pollJS, false), &ok)
	firstSeen(t, b, "data v1\n", 30*time.Second)

	// Quiet: the same root all along. The checks are 304s.
	before := s.o.counts(t).ByKind["root"]
	const quiet = 25 * time.Second
	time.Sleep(quiet) // a span of the page's life, measured in checks
	after := s.o.counts(t).ByKind["root"]
	checks := after.Requests - before.Requests
	t.Logf("%v with an open page: %d root checks at the origin, %d bytes", quiet, checks, after.Bytes-before.Bytes)
	if checks > int64(quiet/(10*time.Second))+1 || after.Bytes != before.Bytes {
		t.Errorf("in %v the worker made %d root checks (%d body bytes); want at most one 304 per 10 s", quiet, checks, after.Bytes-before.Bytes)
	}
	if checks == 0 {
		t.Error("no root check in 25 s: the open page could not learn of an import")
	}

	s.reimport(rootsFiles("v2"))
	imported := pageNow(t, b)
	seen := firstSeen(t, b, "data v2\n", 30*time.Second)
	lag := time.Duration(seen-imported) * time.Millisecond
	t.Logf("the open page saw the import after %v", lag)
	if lag > 10*time.Second+3*time.Second { // the interval, and margin for a loaded machine
		t.Errorf("the open page saw the import after %v; want within 10 s", lag)
	}
	s.noReports()
}

// TestServiceWorkerRootFromVolunteersForFree: with the origin's check
// every hour (--sw-root-check 1h, carried by the worker), an open page
// that keeps asking volunteers for files learns the new root from their
// answers (Grits-Root), with no request to the origin.
func TestServiceWorkerRootFromVolunteersForFree(t *testing.T) {
	s, vs := newSWSwarm(t, rootsFiles("v1"), "--sw-root-check", "1h")
	b := s.browser()
	s.open(b, "/")
	var ok bool
	eval(t, b, 10*time.Second, fmt.Sprintf(pollJS, true), &ok)
	firstSeen(t, b, "data v1\n", 30*time.Second)
	before := s.o.counts(t).ByKind["root"]

	s.reimport(rootsFiles("v2"))
	for _, v := range vs {
		eventually(t, swarmWait, 100*time.Millisecond, func() error {
			if st := v.d.mustStatus(t); st.Root == nil || st.Root.Seq < 2 {
				return fmt.Errorf("volunteer root: %+v", st.Root)
			}
			return nil
		})
	}
	have := pageNow(t, b)
	seen := firstSeen(t, b, "data v2\n", 30*time.Second)
	t.Logf("the page saw the import %v after both volunteers had it", time.Duration(seen-have)*time.Millisecond)
	if n := s.o.counts(t).ByKind["root"].Requests - before.Requests; n != 0 {
		t.Errorf("the worker asked the origin for its root %d times; the volunteers' answers should have told it", n)
	}
	if st := workerStats(t, b); st.RootsFromVolunteers == 0 {
		t.Errorf("the worker took no root from a volunteer's answer: %+v", st)
	}
	s.noReports()
}

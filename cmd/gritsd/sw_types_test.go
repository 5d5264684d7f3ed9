package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/internal/mediatype"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// typeFixture is a site with a file for every extension in gritsd's
// table and files whose type only their content can tell, with the
// type each must be served with.
func typeFixture() (files map[string][]byte, want map[string]string) {
	files = map[string][]byte{
		"/index.html": []byte(`<!doctype html><html><head><meta charset="utf-8"><title>types</title><script src="/grits/v1/register.js"></script></head><body>types</body></html>`),
	}
	want = map[string]string{"/index.html": "text/html; charset=utf-8"}
	for ext, typ := range mediatype.Table() {
		p := "/ext/file." + ext
		files[p] = []byte("content of a ." + ext + " file\n")
		want[p] = typ
	}
	png := append([]byte("\x89PNG\r\n\x1a\n"), randBytes(21, 3000)...)
	for p, c := range map[string][]byte{
		"/noext/CNAME":          []byte("example.org\n"),
		"/noext/LICENSE":        []byte("Permission is hereby granted\n"),
		"/noext/photo":          png,
		"/noext/page":           []byte("<!doctype html><script>document.title = 'ran'</script>"),
		"/noext/blob":           randBytes(22, 70<<10), // not inline: from blocks
		"/noext/doc":            []byte("%PDF-1.7\n"),
		"/noext/.htaccess":      []byte("Deny from all\n"),
		"/noext/x.unknownext":   png,
		"/noext/UPPER.HTM":      []byte("<p>upper-case extension</p>"),
		"/noext/archive.tar.gz": randBytes(23, 100),
	} {
		files[p] = c
		want[p] = mediatype.Detect(path.Base(p), c)
	}
	return files, want
}

// TestContentTypesAgree: every file of a site with every extension in
// gritsd's table, and files without one, gets the same Content-Type from
// the origin, from the service worker in Chromium (served from the
// volunteers) and in the volunteers' verified lookups, and that type is
// the one the table (or, without an extension, the content) decided at
// import.
func TestContentTypesAgree(t *testing.T) {
	files, want := typeFixture()
	s, vs := newSWSwarm(t, files)
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	// The origin.
	c := gwNewH2(t, s.pool, nil)
	origin := map[string]string{}
	for _, p := range paths {
		resp, body := c.get(t, s.originURL+gwURLPath(strings.TrimPrefix(p, "/")))
		if gwWant(t, "origin GET "+p, resp, body, http.StatusOK) {
			origin[p] = resp.Header.Get("Content-Type")
		}
	}

	// A volunteer: the type in the entry its proof carries.
	key := gwParseKey(t, s.siteKey)
	volunteer := map[string]string{}
	for _, p := range paths {
		volunteer[p] = lookupType(t, c, "https://"+vs[0].addr, p, key)
	}

	// The worker, in Chromium.
	b := s.browser()
	s.open(b, "/")
	list, _ := json.Marshal(paths)
	var worker map[string]struct {
		Status   int    `json:"status"`
		Type     string `json:"type"`
		Verified string `json:"verified"`
	}
	eval(t, b, 120*time.Second, fmt.Sprintf(`(async (paths) => {
  const out = {};
  await Promise.all(paths.map(async (p) => {
    const r = await fetch(p);
    await r.arrayBuffer();
    out[p] = { status: r.status, type: r.headers.get('Content-Type'), verified: r.headers.get('X-Grits-Verified') || '' };
  }));
  return out;
})(%s)`, list), &worker)

	for _, p := range paths {
		w := worker[p]
		if w.Verified == "" {
			t.Errorf("%s: the worker did not serve it from the swarm (status %d)", p, w.Status)
		}
		if origin[p] != want[p] || volunteer[p] != want[p] || w.Type != want[p] {
			t.Errorf("%s: origin %q, volunteer %q, worker %q; want %q", p, origin[p], volunteer[p], w.Type, want[p])
		}
	}
	t.Logf("%d files, %d extensions: one type each from the origin, the volunteer and the worker", len(paths), len(mediatype.Table()))
	s.noReports()
}

// lookupType asks a node for a latest lookup of p, verifies it with the
// site key and returns the type the file's entry carries, as the node
// serves it (the tree's, or the table's for a tree without one).
func lookupType(t *testing.T, c gwClient, base, p string, key tree.PublicKey) string {
	t.Helper()
	resp, body := c.get(t, base+"/grits/v1/lookup/latest"+gwURLPath(strings.TrimPrefix(p, "/")))
	if !gwWant(t, "lookup "+p, resp, body, http.StatusOK) {
		return ""
	}
	msg, err := proto.ReadResponse(bufio.NewReader(bytes.NewReader(body)), proto.TypeLookup)
	if err != nil {
		t.Fatalf("lookup %s: %v", p, err)
	}
	lr := msg.(*proto.LookupResult)
	if lr.Root == nil {
		t.Fatalf("lookup %s: no root", p)
	}
	root := gwDecodeRoot(t, "lookup "+p, lr.Root.Encode(), key)
	res, err := tree.Verify(root.Tree, tree.MustParsePath(p), lr.Proof)
	if err != nil || res.Status != tree.Found {
		t.Fatalf("lookup %s: %v, %v", p, res.Status, err)
	}
	return mediatype.Serve(res.Entry.Type, path.Base(p))
}

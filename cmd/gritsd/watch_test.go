package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeWatchReimports runs an origin with --watch: a file written
// to the watched directory appears on the site after the quiet period,
// a burst of writes makes one root (not one per write), and a removed
// file disappears.
func TestServeWatchReimports(t *testing.T) {
	t.Parallel()
	d, _ := newOriginWithKey(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "index.html"), []byte("<h1>v1</h1>"), 0o644)
	s := startServe(t, d, "--gossip", "127.0.0.1:0", "--gossip-profile", "local", "--watch", src, "--watch-quiet", "300ms")
	addr, _ := gwHTTPS(t, s)
	c := gwClientsFor(t, d.path("ca.pem"))[0]
	base := "https://" + addr

	fetch := func(p string) (int, string) {
		resp, body, err := c.try("GET", base+p, nil)
		if err != nil {
			return 0, err.Error()
		}
		return resp.StatusCode, string(body)
	}
	// The directory as it was at start is imported at once.
	eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if code, body := fetch("/index.html"); code != http.StatusOK || body != "<h1>v1</h1>" {
			return fmt.Errorf("index.html: %d %q", code, body)
		}
		return nil
	})
	seq0 := d.mustStatus(t).Root.Seq

	// A burst of 20 writes, closer together than the quiet period.
	for i := range 20 {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("post-%02d.html", i)), fmt.Appendf(nil, "post %d", i), 0o644)
		time.Sleep(20 * time.Millisecond) // pacing the writes, not waiting for gritsd
	}
	os.MkdirAll(filepath.Join(src, "new", "deep"), 0o755)
	os.WriteFile(filepath.Join(src, "new", "deep", "page.html"), []byte("deep"), 0o644)
	// Types are decided by the watched import too: by name, else by
	// content.
	os.WriteFile(filepath.Join(src, "notes.md"), []byte("# notes"), 0o644)
	os.WriteFile(filepath.Join(src, "badge"), gwPNG(t), 0o644)
	eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, p := range []string{"/post-00.html", "/post-19.html", "/new/deep/page.html", "/badge"} {
			if code, _ := fetch(p); code != http.StatusOK {
				return fmt.Errorf("%s: %d", p, code)
			}
		}
		return nil
	})
	for p, want := range map[string]string{"/notes.md": "text/markdown; charset=utf-8", "/badge": "image/png", "/new/deep/page.html": "text/html; charset=utf-8"} {
		resp, _, err := c.try("GET", base+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("Content-Type"); got != want {
			t.Errorf("%s after a watched import: Content-Type %q, want %q", p, got, want)
		}
	}
	if seq := d.mustStatus(t).Root.Seq; seq-seq0 > 3 {
		t.Errorf("a burst of 21 writes made %d roots; the quiet period should batch them", seq-seq0)
	}
	os.Remove(filepath.Join(src, "post-05.html"))
	eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if code, _ := fetch("/post-05.html"); code != http.StatusNotFound {
			return fmt.Errorf("removed file still served: %d", code)
		}
		return nil
	})
	// The watcher may still hold the lock (it saves its import state
	// after the root is served): fsck refuses rather than waits.
	var r result
	eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if r = d.run(t, "fsck"); strings.Contains(r.stderr, "locked") {
			return fmt.Errorf("%s", r.stderr)
		}
		return nil
	})
	if r.code != 0 {
		t.Fatalf("fsck after watched imports:\n%s", r)
	}
}

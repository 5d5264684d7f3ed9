package mediatype

import (
	"strings"
	"testing"

	"github.com/grits-cdn/grits/tree"
)

// TestTableSpelling: every type in the table is one a tree entry may
// store, so an import never fails on its own table.
func TestTableSpelling(t *testing.T) {
	for ext, typ := range table {
		if err := tree.ValidMediaType(typ); err != nil {
			t.Errorf(".%s: %v", ext, err)
		}
		if ext != strings.ToLower(ext) || strings.Contains(ext, ".") {
			t.Errorf("extension %q: want lower case without a dot", ext)
		}
	}
	// The issue that brought the table: each of these differed between
	// hosts or between the origin and the worker.
	for _, ext := range []string{"md", "ts", "scss", "jsonl", "map", "ttf", "otf", "xml", "pdf", "webmanifest", "htm", "html",
		"mp3", "ogg", "m4a", "wav", "mp4", "webm", "mov", "png", "jpg", "svg", "webp", "avif", "ico", "woff", "woff2", "wasm", "js", "css"} {
		if table[ext] == "" {
			t.Errorf(".%s is not in the table", ext)
		}
	}
}

func TestDetect(t *testing.T) {
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
	cases := []struct{ name, head, want string }{
		{"index.html", "", "text/html; charset=utf-8"},
		{"PAGE.HTM", "", "text/html; charset=utf-8"},
		{"notes.md", "# title", "text/markdown; charset=utf-8"},
		{"app.js.map", "{}", "application/json"},
		{"a.tar.gz", "", "application/gzip"},
		{"logo.png", "not a png at all", "image/png"}, // the name wins
		{"CNAME", "example.org\n", "text/plain; charset=utf-8"},
		{"LICENSE", "Copyright\n", "text/plain; charset=utf-8"},
		{"photo", png, "image/png"},
		{"doc", "%PDF-1.7\n", "application/pdf"},
		{"blob", "\x00\x01\x02\x03\xff", Default},
		{"page", "<!doctype html><script>alert(1)</script>", "text/plain; charset=utf-8"},
		{"feed", "<?xml version=\"1.0\"?><x/>", "text/plain; charset=utf-8"},
		{"empty", "", "text/plain; charset=utf-8"},
		{".htaccess", "Deny from all\n", "text/plain; charset=utf-8"},
		{"file.unknownext", png, "image/png"},
		{"trailingdot.", "hello", "text/plain; charset=utf-8"},
	}
	for _, c := range cases {
		if got := Detect(c.name, []byte(c.head)); got != c.want {
			t.Errorf("Detect(%q, %q) = %q, want %q", c.name, c.head, got, c.want)
		}
		if err := tree.ValidMediaType(Detect(c.name, []byte(c.head))); err != nil {
			t.Errorf("Detect(%q): %v", c.name, err)
		}
	}
}

func TestServe(t *testing.T) {
	cases := []struct{ stored, name, want string }{
		{"image/png", "a.txt", "image/png"}, // the tree's word
		{"", "a.txt", "text/plain; charset=utf-8"},
		{"", "index.html", "text/html; charset=utf-8"},
		{"", "CNAME", Default},
		{"", "x.unknownext", Default},
	}
	for _, c := range cases {
		if got := Serve(c.stored, c.name); got != c.want {
			t.Errorf("Serve(%q, %q) = %q, want %q", c.stored, c.name, got, c.want)
		}
	}
}

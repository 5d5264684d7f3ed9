package tree

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

func sampleNodes() map[string]Node {
	h1 := blockstore.Sum([]byte("one"))
	h2 := blockstore.Sum([]byte("two"))
	return map[string]Node{
		"empty dir": &DirNode{},
		"dir": &DirNode{Entries: []Entry{
			{Name: "a.txt", Kind: KindFile, Mode: 0o644, Size: 3, Hash: h1},
			{Name: "b", Kind: KindDir, Mode: 0o755, Size: 1 << 40, Hash: h2},
			{Name: "link", Kind: KindSymlink, Mode: 0o777, Size: 5, Target: "a.txt"},
			{Name: "mtime", Kind: KindFile, Mode: 0o600, Size: 0, Hash: h1, MTime: time.Unix(1700000000, 123).UTC()},
			{Name: "old", Kind: KindFile, Size: 0, Hash: h1, MTime: time.Unix(-86400, 0).UTC()},
			{Name: "ünïcode ✓", Kind: KindFile, Mode: 0o644, Size: 300, Hash: h2},
		}},
		"typed": &DirNode{Entries: []Entry{
			{Name: "index.html", Kind: KindFile, Mode: 0o644, Size: 3, Hash: h1, Type: "text/html; charset=utf-8"},
			{Name: "logo", Kind: KindFile, Mode: 0o644, Size: 300, Hash: h2, Type: "image/png", MTime: time.Unix(1700000000, 0).UTC()},
			{Name: "untyped.bin", Kind: KindFile, Mode: 0o644, Size: 1, Hash: h1},
		}},
		"shard": &ShardNode{Depth: 3, Children: []ShardRef{
			{Index: 0, Hash: h1, Count: 1, Bytes: 40},
			{Index: 7, Hash: h2, Count: 300, Bytes: 9000},
			{Index: 15, Hash: h1, Count: 2, Bytes: 80},
		}},
		"empty file":  &FileNode{ChunkSize: DefaultChunkSize},
		"small file":  &FileNode{ChunkSize: DefaultChunkSize, Size: 10, Hashes: []blockstore.Hash{h1}},
		"chunks":      &FileNode{ChunkSize: MinChunkSize, Size: 3*MinChunkSize + 1, Hashes: []blockstore.Hash{h1, h2, h1, h2}},
		"index level": &FileNode{Level: 1, ChunkSize: MinChunkSize, Size: FileFanout*MinChunkSize + 5, Hashes: []blockstore.Hash{h1, h2}},
	}
}

func TestNodeRoundTrip(t *testing.T) {
	for name, n := range sampleNodes() {
		t.Run(name, func(t *testing.T) {
			enc := n.Encode()
			got, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if re := got.Encode(); !bytes.Equal(re, enc) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", re, enc)
			}
		})
	}
}

func TestNodeTruncatedPrefixes(t *testing.T) {
	for name, n := range sampleNodes() {
		t.Run(name, func(t *testing.T) {
			enc := n.Encode()
			for i := 0; i < len(enc); i++ {
				if _, err := Decode(enc[:i]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("prefix of %d/%d bytes: err = %v, want ErrMalformed", i, len(enc), err)
				}
			}
			if _, err := Decode(append(enc, 0)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("trailing byte accepted: %v", err)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	h := blockstore.Sum(nil)
	file := func(name string) []byte {
		return (&DirNode{Entries: []Entry{{Name: name, Kind: KindFile, Hash: h}}}).Encode()
	}
	unsorted := (&DirNode{Entries: []Entry{{Name: "b", Kind: KindFile, Hash: h}, {Name: "a", Kind: KindFile, Hash: h}}}).Encode()
	dup := (&DirNode{Entries: []Entry{{Name: "a", Kind: KindFile, Hash: h}, {Name: "a", Kind: KindFile, Hash: h}}}).Encode()
	overlong := []byte{TagDir, FormatVersion, 0x80, 0x00} // count 0 spelled in two bytes
	badVersion := []byte{TagDir, 3, 0}
	shardV2 := []byte{TagShard, DirFormatVersion, 0, 0, 0}
	direct := func(kind Kind, size uint64) []byte {
		return (&DirNode{Entries: []Entry{{Name: "a", Kind: kind, Size: size, Hash: h, Direct: true}}}).Encode()
	}
	directInV1 := direct(KindFile, 10)
	directInV1[1] = FormatVersion
	badTag := []byte{0x7f, FormatVersion}
	wrongCount := (&FileNode{ChunkSize: MinChunkSize, Size: MinChunkSize + 1, Hashes: []blockstore.Hash{h}}).Encode()
	tinyChunk := (&FileNode{ChunkSize: 512, Size: 1, Hashes: []blockstore.Hash{h}}).Encode()
	noChildren := []byte{TagShard, FormatVersion, 0, 0, 0}
	tooBig := make([]byte, MaxNodeSize+1)
	tooBig[0], tooBig[1] = TagDir, FormatVersion
	unknownFlag := file("a")
	unknownFlag[6] = 0x80 // tag, version, count, name length, 'a', kind, flags
	badMode := (&DirNode{Entries: []Entry{{Name: "a", Kind: KindFile, Mode: 0o7777, Hash: h}}}).Encode()
	typed := func(kind Kind, typ string) []byte {
		e := Entry{Name: "a", Kind: kind, Hash: h, Type: typ}
		if kind == KindSymlink {
			e = Entry{Name: "a", Kind: kind, Size: 1, Target: "b", Type: typ}
		}
		return (&DirNode{Entries: []Entry{e}}).Encode()
	}
	emptyType := typed(KindFile, "a/b")
	// tag, version, count, name length, 'a', kind, flags, mode, size,
	// then the type's length (3) and bytes: length 0, no bytes.
	emptyType = append(emptyType[:10], emptyType[13:]...)
	emptyType[9] = 0

	cases := map[string][]byte{
		"empty input":          nil,
		"unsorted entries":     unsorted,
		"duplicate entries":    dup,
		"non-minimal varint":   overlong,
		"unknown version":      badVersion,
		"shard of version 2":   shardV2,
		"direct entry in v1":   directInV1,
		"direct empty file":    direct(KindFile, 0),
		"direct over a chunk":  direct(KindFile, MaxChunkSize+1),
		"direct directory":     direct(KindDir, 10),
		"unknown tag":          badTag,
		"wrong hash count":     wrongCount,
		"chunk size too small": tinyChunk,
		"shard with no child":  noChildren,
		"over size limit":      tooBig,
		"unknown entry flag":   unknownFlag,
		"mode outside 0777":    badMode,
		"dot-dot name":         file(".."),
		"slash in name":        file("a/b"),
		"NUL in name":          file("a\x00b"),
		"invalid utf-8":        file("\xff"),
		"name too long":        file(strings.Repeat("x", MaxNameLen+1)),
		"type on a directory":  typed(KindDir, "text/plain"),
		"type on a symlink":    typed(KindSymlink, "text/plain"),
		"upper-case type":      typed(KindFile, "Text/plain"),
		"type without subtype": typed(KindFile, "text"),
		"unsorted parameters":  typed(KindFile, "text/plain; z=1; a=2"),
		"type too long":        typed(KindFile, "text/"+strings.Repeat("x", MaxMediaTypeLen)),
		"empty type":           emptyType,
	}
	for name, enc := range cases {
		t.Run(name, func(t *testing.T) {
			if n, err := Decode(enc); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode accepted %x as %#v (err %v)", enc, n, err)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	good := map[string]string{
		"":          "/",
		"/":         "/",
		"a":         "/a",
		"/a/b/":     "/a/b",
		"a b/c.txt": "/a b/c.txt",
		"...":       "/...",
	}
	for in, want := range good {
		p, err := ParsePath(in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", in, err)
			continue
		}
		if p.String() != want {
			t.Errorf("ParsePath(%q) = %s, want %s", in, p, want)
		}
	}
	bad := []string{"a//b", "../a", "a/..", "./a", "a/./b", "//", "a\x00", "\xfe", strings.Repeat("x", 256), strings.Repeat("a/", MaxPathDepth+1), strings.Repeat("y", MaxPathLen+1)}
	for _, in := range bad {
		if p, err := ParsePath(in); !errors.Is(err, ErrBadName) {
			t.Errorf("ParsePath(%q) = %v, %v; want ErrBadName", clip(in), p, err)
		}
	}
}

func TestValidMediaType(t *testing.T) {
	good := []string{"text/html", "text/html; charset=utf-8", "application/vnd.api+json", "image/svg+xml",
		"text/plain; charset=UTF-8", "a/b; c=d; e=f", "multipart/x; b=1; b2=2", "application/x-www-form-urlencoded"}
	for _, s := range good {
		if err := ValidMediaType(s); err != nil {
			t.Errorf("ValidMediaType(%q): %v", s, err)
		}
	}
	bad := []string{"", "text", "text/", "/html", "Text/html", "text/HTML", "text/html;charset=utf-8", "text/html;  charset=utf-8",
		"text/html; charset", "text/html; charset=", "text/html; Charset=utf-8", `text/html; charset="utf-8"`, "text/html; b=1; a=2",
		"text/html; a=1; a=2", "text/html ", " text/html", "text/html; ", "text/ht ml", "text/html/x", "té/xt",
		"text/" + strings.Repeat("x", MaxMediaTypeLen)}
	for _, s := range bad {
		if err := ValidMediaType(s); err == nil {
			t.Errorf("ValidMediaType(%q) accepted it", s)
		}
	}
}

// TestSetKeepsType: an entry's type goes into the tree through Set and
// comes back from a lookup and a verified proof; a malformed one is
// refused before anything is written.
func TestSetKeepsType(t *testing.T) {
	ctx := context.Background()
	b := newBuilder(t)
	root, err := b.EmptyDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := fileEntry(t, b, "# hello\n")
	e.Type = "text/markdown; charset=utf-8"
	root, err = b.Set(ctx, root, MustParsePath("docs/README.md"), e)
	if err != nil {
		t.Fatal(err)
	}
	proof, res, err := BuildProof(ctx, b.Store, root, MustParsePath("docs/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(root, MustParsePath("docs/README.md"), proof)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entry.Type != e.Type || got.Entry.Type != e.Type {
		t.Fatalf("type after Set: lookup %q, proof %q; want %q", res.Entry.Type, got.Entry.Type, e.Type)
	}
	e.Type = "text/markdown;charset=utf-8"
	if _, err := b.Set(ctx, root, MustParsePath("docs/bad.md"), e); err == nil {
		t.Fatal("Set stored a media type in a spelling the format refuses")
	}
}

// TestDirectEntriesAndOldDirectories: a version 2 directory holds direct
// file entries; a version 1 directory (trees written before them) still
// decodes and re-encodes to its own bytes.
func TestDirectEntriesAndOldDirectories(t *testing.T) {
	h := blockstore.Sum([]byte("x"))
	d := &DirNode{Entries: []Entry{{Name: "a", Kind: KindFile, Size: 1, Hash: h, Direct: true}, {Name: "b", Kind: KindFile, Size: 5, Hash: h}}}
	enc := d.Encode()
	if enc[1] != DirFormatVersion {
		t.Fatalf("a new directory node has version %d, want %d", enc[1], DirFormatVersion)
	}
	n, err := Decode(enc)
	if err != nil || !bytes.Equal(n.Encode(), enc) || !n.(*DirNode).Entries[0].Direct || n.(*DirNode).Entries[1].Direct {
		t.Fatalf("round trip: %v, %#v", err, n)
	}
	old := []byte{TagDir, FormatVersion, 1, 1, 'b', byte(KindFile), 0, 0, 5}
	old = append(old, h[:]...)
	n, err = Decode(old)
	if err != nil || !bytes.Equal(n.Encode(), old) {
		t.Fatalf("a version 1 directory: %v, re-encoded %x, want %x", err, n.Encode(), old)
	}
	f := DirectFile(d.Entries[0])
	if f.Size != 1 || len(f.Hashes) != 1 || f.Hashes[0] != h || f.Level != 0 {
		t.Fatalf("DirectFile: %+v", f)
	}
}
